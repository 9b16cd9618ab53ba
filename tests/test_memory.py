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
