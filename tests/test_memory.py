"""dcm.memory: freed heap pages go back to the system."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from dcm.memory import release_freed_memory


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_small_arrays_leave_the_resident_size() -> None:
    # 96 KB arrays come from malloc's heap (under the mmap threshold); the last one,
    # kept, sits above the others, so the heap cannot simply shrink from its top.
    arrays = [np.ones(12_000) for _ in range(2000)]
    keep = arrays[-1]
    del arrays
    before = _rss_mib()
    assert release_freed_memory() is True
    assert _rss_mib() < before - 100  # most of the ~190 MB freed went back
    assert keep.sum() == 12_000


def test_arrow_pool_pages_leave_the_resident_size_too() -> None:
    """Arrow's own allocator (mimalloc or jemalloc) keeps freed pages until told."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = [pc.add(pa.array(np.arange(20_000)), 1) for _ in range(1500)]  # ~240 MB
    keep = chunks[-1]
    del chunks
    before = _rss_mib()
    release_freed_memory()
    assert _rss_mib() < before - 100
    assert pc.sum(keep).as_py() == sum(range(1, 20_001))
