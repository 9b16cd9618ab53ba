"""The cached baseline model as data: Parquet tables and JSON parameters, no code.

A :class:`dcm.analysis.baseline.Baseline` is written as a ZIP archive (stored, not
deflated: Parquet is compressed already) holding ``baseline.json`` (format, dcm
version, detection parameters, period, networks, scalars) and one Parquet file per
frame or array. Reading it back only parses data, so whoever can write the cache
table can at worst make dcm rebuild the baseline: :func:`baseline_from_bytes` returns
None for anything that does not parse as this format and this dcm version.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import dcm
from dcm.analysis.baseline import Baseline
from dcm.analysis.params import DetectionParams

logger = logging.getLogger(__name__)

#: Name and revision of the payload layout (bump when it changes).
FORMAT = "dcm-baseline/3"
_FRAMES = ("grid", "cells", "cell_areas", "sites", "site_areas", "habits")
_ARRAYS = (
    "hour_profile",
    "cell_rate",
    "network_fail_share",
    "cell_site",
    "silence_scale",
    "silence_spread",
)
#: Largest member read back (bytes): a cache row is never a reason to exhaust memory.
_MAX_MEMBER = 2 << 30


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def baseline_to_bytes(model: Baseline) -> bytes:
    """The baseline model as a ZIP of ``baseline.json`` and Parquet tables."""
    header = {
        "format": FORMAT,
        "dcm_version": dcm.__version__,
        "params": model.params.as_dict(),
        "start": model.start.isoformat(),
        "end": model.end.isoformat(),
        "networks": list(model.networks),
        "site_dispersion": float(model.site_dispersion),
        "stats": {k: float(v) for k, v in model.stats.items()},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("baseline.json", json.dumps(header, sort_keys=True))
        for name in _FRAMES:
            frame = getattr(model, name)
            table = pa.Table.from_pandas(frame, preserve_index=True)
            archive.writestr(f"{name}.parquet", _parquet(table))
        for name in _ARRAYS:
            values = np.asarray(getattr(model, name))
            archive.writestr(f"{name}.parquet", _parquet(pa.table({"value": values})))
    return buffer.getvalue()


def baseline_from_bytes(data: bytes) -> Baseline | None:
    """The baseline model written by :func:`baseline_to_bytes` of this dcm version, or
    None (logged) when ``data`` is anything else."""
    try:
        return _read(data)
    except Exception as exc:  # any malformed payload only means "not cached"
        logger.warning("baseline cache entry ignored (%s: %s)", type(exc).__name__, exc)
        return None


def _member(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > _MAX_MEMBER:
        raise ValueError(f"{name} is {info.file_size} bytes")
    return archive.read(info)


def _read(data: bytes) -> Baseline | None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(_member(archive, "baseline.json"))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"not {FORMAT}")
        if header.get("dcm_version") != dcm.__version__:
            raise ValueError(f"written by dcm {header.get('dcm_version')}")
        known = {f.name for f in fields(DetectionParams)}
        params = {k: v for k, v in header["params"].items() if k in known}
        if set(params) != known:
            raise ValueError("detection parameters differ")
        parts: dict[str, Any] = {}
        for name in _FRAMES:
            table = pq.read_table(io.BytesIO(_member(archive, f"{name}.parquet")))
            parts[name] = table.to_pandas()
        for name in _ARRAYS:
            table = pq.read_table(io.BytesIO(_member(archive, f"{name}.parquet")))
            parts[name] = table.column("value").to_numpy()
    return Baseline(
        params=DetectionParams(**params),
        start=pd.Timestamp(header["start"]),
        end=pd.Timestamp(header["end"]),
        networks=tuple(str(n) for n in header["networks"]),
        site_dispersion=float(header["site_dispersion"]),
        stats={str(k): float(v) for k, v in header["stats"].items()},
        **parts,
    )
