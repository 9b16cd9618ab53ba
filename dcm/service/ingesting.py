"""Ingest: read a file (or an already read frame) into an event as one dataset.

The dataset record, its rows, the dirty windows and the high-water mark are one unit of
work (:func:`ingest_frame`); the raw bytes are kept under ``data_dir/raw/<sha256>``
before it, so a run that dies anywhere leaves either nothing or the whole dataset.

A measurement file is never held whole in memory: the raw copy is copied file to file,
the file read chunk by chunk (:func:`dcm.ingest.chunks.iter_measurements`), the rows
kept on disk (:class:`dcm.ingest.chunks.MeasurementSpool`) and written
``Settings.ingest_batch_rows`` at a time, all in the one transaction.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from dcm.errors import Conflict, IngestError, ParameterError
from dcm.ingest.report import IngestReport
from dcm.service.updating import detection_params
from dcm.store import Dataset, Event, Principal, Store
from dcm.store.faults import fault_point


@dataclass
class IngestOutcome:
    """What :func:`ingest` did: the dataset record, the reader's report, rows added and
    windows marked for recomputation. ``new`` is False when the file was already known."""

    dataset: Dataset
    report: IngestReport | None
    added: int
    new: bool
    dirty_windows: int = 0


def _keep_source(
    store: Store,
    source: str | Path | BinaryIO | bytes,
    name: str | None,
    *,
    line_based: bool | Callable[[bytes], bool] = False,
) -> tuple[str, Path, str]:
    """Keep ``source`` as its raw copy (gzip stays gzip, see :meth:`Store.keep_raw`) and
    return (checksum, raw copy, name). A path is refused unread when it is larger than
    ``DCM_MAX_DECOMPRESSED_BYTES``, and, when ``line_based`` (or it says so of the first
    MiB), read through first, nothing kept, so that a line past ``DCM_MAX_LINE_BYTES`` or
    a gzip bomb is refused before a raw copy is kept. A path or a stream is copied a MiB
    at a time (a stream that cannot seek first to a file in ``data_dir``, unlinked at
    once)."""
    if isinstance(source, bytes):
        return (*store.keep_raw(source), name or "<upload>")
    if not isinstance(source, str | Path):
        label = name or str(getattr(source, "name", "<stream>"))
        if source.seekable():
            return (*store.keep_raw(source), label)
        folder = Path(store.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        # Unlinked from the start: a killed process leaves nothing behind.
        with tempfile.TemporaryFile(dir=folder, prefix="dcm-stream-") as copy:
            shutil.copyfileobj(source, copy, 1024**2)
            copy.seek(0)
            return (*store.keep_raw(copy), label)
    path = Path(source)
    label = name or str(path)
    if not path.is_file():
        raise IngestError("file not found" if not path.exists() else "not a file", path=str(path))
    from dcm.ingest._source import InputLimits, check_lines

    limits, size = InputLimits.from_settings(), path.stat().st_size
    if size > limits.max_bytes:  # refused unread: it would not fit once read
        raise limits.too_large(size, name=label)
    if line_based is not False:
        check_lines(path, name=label, limits=limits, line_based=line_based)
    return (*store.keep_raw(path), label)


def received_limit(store: Store, received: pd.Timestamp | None = None) -> pd.Timestamp:
    """The latest measurement time accepted from data received at ``received`` (now by
    default): ``received`` plus ``Settings.clock_allowance_minutes``."""
    at = pd.Timestamp.now(tz="UTC") if received is None else pd.Timestamp(received)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    return at + pd.Timedelta(minutes=store.settings.clock_allowance_minutes)


def ingest(
    store: Store,
    event: str | int,
    source: str | Path | BinaryIO | bytes,
    *,
    kind: str = "measurements",
    licence: str | None = None,
    visibility: str = "restricted",
    name: str | None = None,
    principal: Principal,
) -> IngestOutcome:
    """Read ``source`` with the dcm.ingest reader for ``kind`` and add it to ``event``.

    The raw bytes are kept under ``data_dir/raw/<sha256>``; a file already ingested for
    the event (same checksum and kind) adds nothing; measurement rows already stored (same
    measurement_id or content hash) are skipped. Measurements timed later than now plus
    ``Settings.clock_allowance_minutes`` are rejected (reported with their line). New
    event measurements mark the windows from their timestamp to timestamp + evidence span
    dirty; new baseline data or cells mark every computed window dirty (the baseline model
    changes). The dataset record, its rows, the dirty windows and the high-water mark are
    one transaction (see :func:`ingest_frame`).
    """
    ev = store.get_event(event)
    principal.require(principal.can_ingest(ev), f"ingest into {ev.name}")
    received = pd.Timestamp.now(tz="UTC")
    # The raw copy is written before the transaction: a run that dies after it leaves a
    # file the retry writes again (same name), never a dataset without rows.
    checksum, raw_path, label = _keep_source(
        store, source, name, line_based=_line_based(kind, name or source)
    )
    fault_point("ingest.raw_kept")
    known = store.find_dataset(ev.id, checksum, kind)
    if known is not None:
        return IngestOutcome(dataset=known, report=None, added=0, new=False)
    options: dict[str, Any] = {
        "kind": kind,
        "source": label,
        "checksum": checksum,
        "licence": licence,
        "visibility": visibility,
        "principal": principal,
    }
    if kind in ("measurements", "baseline"):
        from dcm.ingest.chunks import MeasurementSpool, iter_measurements, spool_measurements

        chunks = iter_measurements(
            raw_path,
            name=label,
            format=_format_hint(label),
            device_secret=store.device_secret().encode(),
            not_after=received_limit(store, received),
        )
        # The rows wait on disk, not in memory, while the file is read; the transaction
        # then writes them a batch at a time.
        spool = MeasurementSpool(
            folder=Path(store.data_dir), batch_rows=store.settings.ingest_batch_rows
        )
        with spool:
            report = spool_measurements(chunks, spool, name=label)
            return _commit(
                store, ev, spool.batches(), counts=_counts(report), report=report, **options
            )
    report: IngestReport | None = None
    frame: Any
    if kind == "cells":
        from dcm import ingest as readers

        result = readers.read_cells(raw_path, name=label)
        frame, report = result.frame, result.report
        counts = _counts(report)
    elif kind in ("population", "areas", "hazard"):
        frame = _read_file_kind(kind, raw_path, label)
        counts = {"rows_in": len(frame), "accepted": len(frame)}
    else:
        raise ParameterError(f"unknown dataset kind {kind!r}")
    return _commit(store, ev, [frame], counts=counts, report=report, **options)


def _counts(report: IngestReport) -> dict[str, int]:
    """The counts a dataset record keeps of a reader's report."""
    return {
        "rows_in": report.rows_in,
        "accepted": report.accepted,
        "rejected": report.rejected_count,
        "duplicates": report.duplicates,
    }


def ingest_frame(
    store: Store,
    event: str | int | Event,
    frame: Any,
    *,
    kind: str,
    source: str,
    checksum: str,
    counts: dict[str, int],
    report: IngestReport | None = None,
    licence: str | None = None,
    visibility: str = "restricted",
    received: pd.Timestamp | None = None,
    principal: Principal,
) -> IngestOutcome:
    """Add an already read ``frame`` of ``kind`` to ``event`` as one dataset: the second
    half of :func:`ingest`, for callers that read a file once and feed it in parts
    (``dcm replay``). ``checksum`` identifies the dataset (a known checksum and kind add
    nothing); ``counts`` are the reader's rows_in/accepted/rejected/duplicates.

    One unit of work: the dataset record, its rows, the dirty windows and the high-water
    mark commit together or not at all, so a run that dies half-way leaves no dataset and
    its retry does the whole work. Measurements timed after ``received`` (now by default)
    plus ``Settings.clock_allowance_minutes`` are left out (counted as rejected) and never
    move the event's clock.
    """
    ev = store.get_event(event)
    principal.require(principal.can_ingest(ev), f"ingest into {ev.name}")
    if kind in ("measurements", "baseline") and len(frame):
        late = pd.to_datetime(frame["timestamp"], utc=True) > received_limit(store, received)
        if late.any():
            frame = frame.loc[~late.to_numpy()]
            counts = {
                **counts,
                "accepted": int(counts.get("accepted", 0)) - int(late.sum()),
                "rejected": int(counts.get("rejected", 0)) + int(late.sum()),
            }
    return _commit(
        store,
        ev,
        [frame],
        kind=kind,
        source=source,
        checksum=checksum,
        counts=counts,
        report=report,
        licence=licence,
        visibility=visibility,
        principal=principal,
    )


def _commit(
    store: Store,
    ev: Event,
    batches: Iterable[Any],
    *,
    kind: str,
    source: str,
    checksum: str,
    counts: dict[str, int],
    report: IngestReport | None,
    licence: str | None,
    visibility: str,
    principal: Principal,
) -> IngestOutcome:
    """The unit of work of one dataset: its record, its rows (``batches``: frames of
    ``kind``, written one after the other), the dirty windows and the high-water mark
    commit together or not at all."""
    try:
        with store.db.transaction():
            known = store.find_dataset(ev.id, checksum, kind)
            if known is not None:
                return IngestOutcome(dataset=known, report=report, added=0, new=False)
            dataset = store.add_dataset(
                ev.id,
                kind=kind,
                source=source,
                checksum=checksum,
                licence=licence,
                visibility=visibility,
                counts=counts,
                principal=principal,
            )
            fault_point("ingest.dataset_recorded")
            added, dirty = _add_rows(store, ev, dataset.id, batches, kind)
            store.set_dataset_added(dataset.id, added)
            fault_point("ingest.windows_marked")
    except Conflict:  # the same file ingested concurrently: the other call did the work
        known = store.find_dataset(ev.id, checksum, kind)
        if known is None:
            raise
        return IngestOutcome(dataset=known, report=report, added=0, new=False)
    fault_point("ingest.committed")
    if kind in ("measurements", "baseline"):
        store.refresh_measurement_statistics(added)
    dataset = store.get_dataset(dataset.id)
    return IngestOutcome(dataset=dataset, report=report, added=added, new=True, dirty_windows=dirty)


def _add_rows(
    store: Store, ev: Event, dataset_id: int, batches: Iterable[Any], kind: str
) -> tuple[int, int]:
    """Insert the rows of one dataset, given in ``batches``, and mark what they change
    (inside the caller's transaction); returns (rows added, windows dirty now)."""
    if kind in ("measurements", "baseline"):
        return _add_measurements(store, ev, dataset_id, batches, kind)
    added = 0
    for frame in batches:
        if kind == "cells":
            added += store.insert_cells(ev.id, dataset_id, frame)
        elif kind == "population":
            added += store.insert_population(ev.id, dataset_id, frame)
        elif kind == "areas":
            added += store.insert_areas(ev.id, dataset_id, frame)
        else:
            added += store.insert_hazard(ev.id, dataset_id, frame)
    if kind == "population" or (kind == "cells" and added):
        return added, _invalidate_all(store, ev)  # people per outage change everywhere
    return added, 0


def _add_measurements(
    store: Store, ev: Event, dataset_id: int, batches: Iterable[pd.DataFrame], kind: str
) -> tuple[int, int]:
    """Insert measurement ``batches`` (rows not repeated between batches) one after the
    other; the high-water mark and the dirty windows are set once, from all rows added."""
    period = "event" if kind == "measurements" else "baseline"
    # Whether the period held rows before this dataset: if not, a row of a later batch
    # cannot be stored already (copies between batches were dropped before), so it is
    # not looked up.
    stored = store.time_range(ev.id, period=period)[0] is not None
    added = 0
    latest: pd.Timestamp | None = None
    touched: list[pd.DatetimeIndex] = []
    for i, frame in enumerate(batches):
        rows = store.insert_measurements(
            ev.id, dataset_id, frame, period=period, look_up=stored or i == 0
        )
        fault_point("ingest.rows_inserted")
        if rows.empty:
            continue
        added += len(rows)
        if period == "event":
            last = rows["timestamp"].max()
            latest = last if latest is None else max(latest, last)
            touched.append(touched_windows(rows["timestamp"], ev))
    if not added:
        return 0, 0
    if period == "baseline":
        return added, _invalidate_all(store, ev)
    assert latest is not None
    store.set_high_water(ev.id, latest)
    windows = touched[0].append(touched[1:]).unique() if len(touched) > 1 else touched[0]
    return added, store.mark_dirty(ev.id, windows)


def _line_based(kind: str, label: object) -> bool | Callable[[bytes], bool]:
    """Whether the file of a dataset of ``kind`` holds one record per line (or a
    function telling from the file's first bytes): CSV and NDJSON measurements, cells."""
    if kind == "cells":
        return True
    if kind not in ("measurements", "baseline"):
        return False
    from dcm.ingest.measurements import line_based

    text = str(label)
    return lambda head: line_based(text, head, _format_hint(text))


def _format_hint(label: str) -> str | None:
    lower = label.lower().removesuffix(".gz")
    for suffix, fmt in (
        (".csv", "csv"),
        (".geojson", "geojson"),
        (".json", "geojson"),
        (".ndjson", "ndjson"),
        (".jsonl", "ndjson"),
        (".parquet", "parquet"),
    ):
        if lower.endswith(suffix):
            return fmt
    return None  # the reader guesses from the content


def _read_file_kind(kind: str, raw_path: Path, label: str) -> Any:
    """Population raster or vector layer, read from the kept raw copy (named like the
    upload so readers that look at the suffix see it)."""
    from dcm import compare

    suffix = "".join(Path(label).suffixes[-2:]) or (".tif" if kind == "population" else ".json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.symlink_to(raw_path.resolve())
        if kind == "population":
            return compare._load_population(path, {})
        frame = compare._load_vector(path, kind, {})
    if frame is None:
        raise IngestError(f"no {kind} could be read", path=label)
    if kind == "areas" and "area_id" not in frame.columns:
        frame["area_id"] = np.arange(1, len(frame) + 1).astype(str)
    if kind == "hazard" and "hazard_id" not in frame.columns:
        frame["hazard_id"] = np.arange(1, len(frame) + 1).astype(str)
    return frame


def touched_windows(timestamps: pd.Series, event: Event) -> pd.DatetimeIndex:
    """Starts of the windows a measurement at each timestamp can change: from ``floor(t)``
    to ``floor(t + span)`` (the trailing evidence span), never before the event start."""
    params = detection_params(event)
    win = params.window_td
    first = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).floor(win).unique()
    offsets = np.arange(params.span_windows + 1) * win.value
    starts = (first.asi8[:, None] + offsets[None, :]).ravel()
    out = pd.DatetimeIndex(np.unique(starts)).tz_localize("UTC")
    return out[out >= event.start.floor(win)]


def _invalidate_all(store: Store, event: Event) -> int:
    computed = store.event_windows(event.id)["window_start"]
    return store.mark_dirty(event.id, pd.DatetimeIndex(computed))


def ingest_upload(
    store: Store,
    event: str | int,
    path: Path,
    *,
    checksum: str,
    kind: str = "measurements",
    licence: str | None = None,
    visibility: str = "restricted",
    name: str | None = None,
    principal: Principal,
) -> IngestOutcome:
    """:func:`ingest` of an upload already streamed to ``path`` (SHA-256 ``checksum``).
    When the upload is refused (bad rows, no rights, a failure), the raw copy it kept is
    removed again unless an earlier upload had kept it: no raw file without a dataset."""
    raw = Path(store.data_dir) / "raw" / checksum
    kept_before = raw.exists()
    try:
        return ingest(
            store,
            event,
            path,
            kind=kind,
            licence=licence,
            visibility=visibility,
            name=name,
            principal=principal,
        )
    except BaseException:
        if not kept_before:  # the raw copy of a refused upload: no dataset names it
            raw.unlink(missing_ok=True)
        raise
