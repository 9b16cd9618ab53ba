"""Converted measurements: a Hive-partitioned Parquet dataset written by ``dcm convert``.

Layout of a dataset directory::

    DIR/_dcm.json                       what it holds (see :class:`DatasetWriter`)
    DIR/_rejected.csv                   file,line,field,reason,raw of every rejected row
    DIR/day=2021-04-09/h3_parent=<hex>/part-00000-0.parquet

Rows have the canonical columns (:data:`dcm.schema.MEASUREMENT_COLUMNS`) plus ``h3``
(int64 cell at the dataset's resolution, computed once) and ``row`` (their order in the
input files). ``day`` (UTC date of the timestamp) and ``h3_parent`` (resolution-3 parent
cell) are the partition keys. Files starting with ``_`` are invisible to Parquet readers.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from dcm.errors import Conflict, IngestError
from dcm.ingest.measurements import duplicated_measurements
from dcm.ingest.report import IngestReport, RejectedRow
from dcm.schema import MEASUREMENT_COLUMNS

META_FILE = "_dcm.json"
REJECTED_FILE = "_rejected.csv"
FORMAT = "dcm-measurements"
#: Resolution of the ``h3_parent`` partition key (cells of about 12 000 km²).
PARENT_RESOLUTION = 3
#: Rows per batch when a dataset is read back.
BATCH_ROWS = 256 * 1024


def _schema() -> Any:
    import pyarrow as pa

    types = {
        "timestamp": pa.timestamp("ns", tz="UTC"),
        "float64": pa.float64(),
        "Int64": pa.int64(),
        "string": pa.string(),
    }
    fields = [
        (c, types["timestamp" if c == "timestamp" else t]) for c, t in MEASUREMENT_COLUMNS.items()
    ]
    extra = [("h3", pa.int64()), ("row", pa.int64())]
    keys = [("day", pa.string()), ("h3_parent", pa.string())]
    return pa.schema(fields + extra + keys)


def is_dataset(path: str | Path) -> bool:
    """True when ``path`` is a directory holding a dcm dataset (its ``_dcm.json``)."""
    return (Path(path) / META_FILE).is_file()


class DatasetWriter:
    """Write a dataset into a hidden temporary directory, renamed into place on
    :meth:`commit`; an error (or a killed process) leaves no dataset at ``out``.

    Use as a context manager: leaving it without :meth:`commit` removes the
    temporary directory. Refuses (:class:`~dcm.errors.Conflict`) an existing ``out``
    unless ``overwrite``.
    """

    def __init__(self, out: str | Path, *, resolution: int, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.resolution = resolution
        self.overwrite = overwrite
        check_target(self.out, overwrite=overwrite)
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        self.rows = 0
        self.parts = 0
        self._rejected_fh: Any = None
        self.meta: dict[str, Any] = {}

    def __enter__(self) -> DatasetWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        self._rejected_fh = (self.tmp / REJECTED_FILE).open("w", newline="", encoding="utf-8")
        self._rejected = csv.writer(self._rejected_fh)
        self._rejected.writerow(["file", "line", "field", "reason", "raw"])
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rejected_fh is not None and not self._rejected_fh.closed:
            self._rejected_fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # gone already after commit

    def write(self, frame: pd.DataFrame, *, h3: np.ndarray, h3_parent: np.ndarray) -> None:
        """Append canonical rows with their H3 cell (int64) and parent cell (hex string)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        if not len(frame):
            return
        schema = _schema()
        # Column by column, without a pandas copy of the chunk.
        arrays = [
            pa.Array.from_pandas(frame[c], type=schema.field(c).type) for c in MEASUREMENT_COLUMNS
        ]
        arrays.append(pa.array(np.asarray(h3, dtype="int64")))
        arrays.append(pa.array(np.arange(self.rows, self.rows + len(frame), dtype="int64")))
        arrays.append(pc.strftime(arrays[0], format="%Y-%m-%d"))
        arrays.append(pa.array(np.asarray(h3_parent, dtype=object), type=pa.string()))
        table = pa.Table.from_arrays(arrays, schema=schema)
        ds.write_dataset(
            table,
            self.tmp,
            format="parquet",
            partitioning=ds.partitioning(
                pa.schema([schema.field("day"), schema.field("h3_parent")]), flavor="hive"
            ),
            basename_template=f"part-{self.parts:05d}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            max_partitions=1 << 20,
            max_rows_per_group=BATCH_ROWS,
        )
        self.rows += len(frame)
        self.parts += 1

    def reject(self, file: str, rows: list[RejectedRow]) -> None:
        """Add rejected rows of ``file`` to ``_rejected.csv``."""
        self._rejected.writerows((file, r.line, r.field, r.reason, r.raw) for r in rows)

    def commit(self, meta: dict[str, Any]) -> Path:
        """Write ``_dcm.json`` and move the dataset into place (replacing an old one only
        now, when the new one is whole)."""
        self._rejected_fh.close()
        meta = {"format": FORMAT, "resolution": self.resolution, "rows": self.rows} | meta
        meta["partitioning"] = {"day": "UTC date", "h3_parent": PARENT_RESOLUTION}
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        self.meta = meta
        old = None
        if self.out.exists():
            check_target(self.out, overwrite=self.overwrite)
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            self.out.rename(old)
        self.tmp.rename(self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out


def check_target(out: Path, *, overwrite: bool) -> None:
    """Refuse an ``out`` that exists, unless ``overwrite`` and it is a dataset."""
    if not out.exists():
        return
    if not overwrite:
        raise Conflict(f"{out} exists; use --overwrite to replace it")
    if not is_dataset(out):
        raise Conflict(f"{out} exists and is not a dcm dataset; refusing to replace it")


@dataclass
class DatasetRead:
    """Rows of a dataset (canonical columns plus ``h3``), its metadata and a report."""

    frame: pd.DataFrame
    meta: dict[str, Any]
    report: IngestReport


def read_dataset(path: str | Path, *, batch_rows: int = BATCH_ROWS) -> DatasetRead:
    """Read a dataset in batches of ``batch_rows``: rows in input order, copies across
    the input's chunks dropped, as :func:`~dcm.ingest.read_measurements` would give
    them for the original files, plus the stored ``h3`` column (int64).

    The report counts rows as the conversion saw them (``rejected`` rows come from
    ``_rejected.csv``). Raises :class:`IngestError` for a directory that is not a
    dataset or a dataset that cannot be read.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    root = Path(path)
    meta = read_meta(root)
    columns = [*MEASUREMENT_COLUMNS, "h3", "row"]
    schema = _schema()
    try:
        dataset = ds.dataset(
            root, format="parquet", partitioning="hive", schema=schema, exclude_invalid_files=False
        )
        scanner = dataset.scanner(columns=columns, batch_size=batch_rows, use_threads=True)
        frames = [
            batch.to_pandas(types_mapper=_pandas_type)
            for batch in scanner.to_batches()
            if batch.num_rows
        ]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IngestError(f"not a readable dcm dataset ({exc})", path=str(root)) from exc
    if frames:
        frame = pd.concat(frames, ignore_index=True)
    else:
        empty = pa.Table.from_batches([], schema=schema.remove(schema.get_field_index("day")))
        frame = empty.select(columns).to_pandas(types_mapper=_pandas_type)
    del frames
    if len(frame) != meta.get("rows", len(frame)):
        raise IngestError(
            f"holds {len(frame):,} rows but {META_FILE} says {meta['rows']:,}: "
            "an incomplete copy? convert again",
            path=str(root),
        )
    order = np.argsort(frame["row"].to_numpy("int64"), kind="stable")
    frame = frame.take(order).reset_index(drop=True)
    h3 = frame["h3"].to_numpy("int64")
    frame = frame.astype(MEASUREMENT_COLUMNS)[list(MEASUREMENT_COLUMNS)]
    frame["h3"] = h3
    dup = duplicated_measurements(frame)
    if dup.any():
        frame = frame.loc[~dup].reset_index(drop=True)
    rejected = read_rejected(root)
    sources = meta.get("sources", [])
    rows_in = sum(int(s.get("rows_in", 0)) for s in sources)
    duplicates = sum(int(s.get("duplicates", 0)) for s in sources) + int(dup.sum())
    if rows_in != len(frame) + len(rejected) + duplicates:
        raise IngestError(
            f"{META_FILE} and the rows stored disagree; convert again", path=str(root)
        )
    report = IngestReport(
        path=str(root),
        kind="measurements",
        rows_in=rows_in,
        accepted=len(frame),
        duplicates=duplicates,
        rejected=rejected,
    )
    return DatasetRead(frame=frame, meta=meta, report=report)


def read_meta(root: Path) -> dict[str, Any]:
    """The ``_dcm.json`` of a dataset; :class:`IngestError` when there is none."""
    if not root.is_dir():
        raise IngestError("no such dataset directory", path=str(root))
    if not is_dataset(root):
        raise IngestError(
            f"a directory without {META_FILE}, not a dcm dataset (make one with dcm convert)",
            path=str(root),
        )
    try:
        meta = json.loads((root / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IngestError(f"unreadable {META_FILE} ({exc})", path=str(root)) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IngestError(f"{META_FILE} does not describe a {FORMAT} dataset", path=str(root))
    return meta


def read_rejected(root: Path) -> list[RejectedRow]:
    """Rejected rows of a dataset as stored in ``_rejected.csv`` (which also names the
    input file of each; ``line`` is the line in that file)."""
    path = root / REJECTED_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [RejectedRow(int(r["line"]), r["field"], r["reason"], r["raw"]) for r in rows]


def _pandas_type(kind: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pd.StringDtype()
    if pa.types.is_int64(kind):
        return pd.Int64Dtype()
    return None
