"""``dcm.convert``: measurement files → a partitioned Parquet dataset with H3 cells.

Each input is read in bounded chunks (:func:`dcm.ingest.chunks.iter_measurements`);
every chunk's H3 cell (at ``resolution``) and resolution-3 parent are computed once
(:mod:`dcm.analysis.grid`) and written by :class:`dcm.ingest.dataset.DatasetWriter`,
which renames the dataset into place only when it is whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcm import __version__
from dcm.analysis.grid import (
    DEFAULT_RESOLUTION,
    check_resolution,
    parent_cells,
    points_to_cells,
    to_strings,
)
from dcm.errors import IngestError
from dcm.ingest.chunks import CHUNK_BYTES, iter_measurements
from dcm.ingest.dataset import PARENT_RESOLUTION, DatasetWriter, check_target
from dcm.ingest.report import IngestReport

Progress = Callable[[str], None]


@dataclass
class ConversionResult:
    """Where the dataset went, its ``_dcm.json`` content and one report per input."""

    path: Path
    meta: dict[str, Any]
    reports: list[IngestReport]


def convert(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    overwrite: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    device_secret: bytes | None = None,
    progress: Progress | None = None,
) -> ConversionResult:
    """Convert measurement files (CSV, GeoJSON, NDJSON, Parquet; plain or gzip) into a
    dataset directory ``out`` (layout in :mod:`dcm.ingest.dataset`).

    Rejected rows go to ``out/_rejected.csv`` (file, line, field, reason, raw); each
    report counts one input's rows (``duplicates``: copies within a chunk; copies in
    different chunks are dropped when the dataset is read). Raises
    :class:`~dcm.errors.IngestError` for an unreadable input and
    :class:`~dcm.errors.Conflict` when ``out`` exists and not ``overwrite``; either
    way, and on any other failure, no dataset is left at ``out``.
    """
    say = progress or (lambda _msg: None)
    resolution = check_resolution(resolution)
    target = Path(out)
    if not inputs:
        raise IngestError("no input files given")
    for path in map(Path, inputs):
        if not path.exists():
            raise IngestError("file not found", path=str(path))
        if path.is_dir():
            raise IngestError("is a directory, not a measurement file", path=str(path))
    check_target(target, overwrite=overwrite)  # before any work
    reports: list[IngestReport] = []
    sources: list[dict[str, Any]] = []
    with DatasetWriter(target, resolution=resolution, overwrite=overwrite) as writer:
        for path in map(Path, inputs):
            say(f"converting {path.name}")
            totals = {"rows_in": 0, "accepted": 0, "duplicates": 0}
            rejected = []
            for chunk in iter_measurements(
                path, chunk_bytes=chunk_bytes, device_secret=device_secret
            ):
                frame = chunk.frame
                cells = points_to_cells(
                    frame["lat"].to_numpy("float64"), frame["lon"].to_numpy("float64"), resolution
                )
                parents = to_strings(parent_cells(cells, PARENT_RESOLUTION))
                writer.write(frame, h3=cells, h3_parent=parents)
                writer.reject(str(path), chunk.report.rejected)
                rejected += chunk.report.rejected
                for key in totals:
                    totals[key] += getattr(chunk.report, key)
                say(f"converting {path.name}: {totals['rows_in']:,} rows read")
            report = IngestReport(path=str(path), kind="measurements", rejected=rejected, **totals)
            reports.append(report)
            sources.append({"path": str(path), **totals, "rejected": report.rejected_count})
        meta = {
            "dcm_version": __version__,
            "sources": sources,
            "rejected": sum(r.rejected_count for r in reports),
        }
        say(f"moving the dataset into place at {target}")
        path = writer.commit(meta)
    return ConversionResult(path=path, meta=writer.meta, reports=reports)
