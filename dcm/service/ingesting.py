"""Ingest: read a file (or an already read frame) into an event as one dataset.

The dataset record, its rows, the dirty windows and the high-water mark are one unit of
work (:func:`ingest_frame`); the raw bytes are kept under ``data_dir/raw/<sha256>``
before it, so a run that dies anywhere leaves either nothing or the whole dataset.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
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


def _read_source(
    source: str | Path | BinaryIO | bytes,
    name: str | None,
    *,
    line_based: bool | Callable[[bytes], bool] = False,
) -> tuple[bytes, str]:
    """The bytes of ``source`` as kept raw (gzip stays gzip) and its name. A path is
    refused unread when it is larger than ``DCM_MAX_DECOMPRESSED_BYTES``, and, when
    ``line_based`` (or it says so of the first MiB), read through first, nothing kept,
    so that a line past ``DCM_MAX_LINE_BYTES`` or a gzip bomb is refused before the
    file is read whole or a raw copy is kept."""
    if isinstance(source, bytes):
        return source, name or "<upload>"
    if isinstance(source, str | Path):
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise IngestError(
                "file not found" if not path.exists() else "not a file", path=str(path)
            )
        from dcm.ingest._source import InputLimits, check_lines

        limits, size = InputLimits.from_settings(), path.stat().st_size
        if size > limits.max_bytes:  # refused unread: it would not fit once read
            raise limits.too_large(size, name=label)
        if line_based is not False:
            check_lines(path, name=label, limits=limits, line_based=line_based)
        return path.read_bytes(), label
    data = source.read()
    return (data.encode() if isinstance(data, str) else bytes(data)), name or str(
        getattr(source, "name", "<stream>")
    )


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
    data, label = _read_source(source, name, line_based=_line_based(kind, name or source))
    # The raw copy is written before the transaction: a run that dies after it leaves a
    # file the retry writes again (same name), never a dataset without rows.
    checksum, raw_path = store.keep_raw(data)
    fault_point("ingest.raw_kept")
    known = store.find_dataset(ev.id, checksum, kind)
    if known is not None:
        return IngestOutcome(dataset=known, report=None, added=0, new=False)

    report: IngestReport | None = None
    frame: Any
    if kind in ("measurements", "baseline", "cells"):
        from dcm import ingest as readers

        if kind == "cells":
            result = readers.read_cells(io.BytesIO(data), name=label)
        else:
            secret = store.device_secret().encode()
            result = readers.read_measurements(
                io.BytesIO(data),
                name=label,
                device_secret=secret,
                format=_format_hint(label),
                not_after=received_limit(store, received),
            )
        frame, report = result.frame, result.report
        counts = {
            "rows_in": report.rows_in,
            "accepted": report.accepted,
            "rejected": report.rejected_count,
            "duplicates": report.duplicates,
        }
    elif kind in ("population", "areas", "hazard"):
        frame = _read_file_kind(kind, raw_path, label)
        counts = {"rows_in": len(frame), "accepted": len(frame)}
    else:
        raise ParameterError(f"unknown dataset kind {kind!r}")

    return ingest_frame(
        store,
        ev,
        frame,
        kind=kind,
        source=label,
        checksum=checksum,
        counts=counts,
        report=report,
        licence=licence,
        visibility=visibility,
        received=received,
        principal=principal,
    )


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
            added, dirty = _add_rows(store, ev, dataset.id, frame, kind)
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


def _add_rows(store: Store, ev: Event, dataset_id: int, frame: Any, kind: str) -> tuple[int, int]:
    """Insert the rows of one dataset and mark what they change (inside the caller's
    transaction); returns (rows added, windows dirty now)."""
    dirty = 0
    if kind in ("measurements", "baseline"):
        period = "event" if kind == "measurements" else "baseline"
        added_rows = store.insert_measurements(ev.id, dataset_id, frame, period=period)
        fault_point("ingest.rows_inserted")
        added = len(added_rows)
        if added and period == "event":
            store.set_high_water(ev.id, added_rows["timestamp"].max())
            dirty = store.mark_dirty(ev.id, touched_windows(added_rows["timestamp"], ev))
        elif added:
            dirty = _invalidate_all(store, ev)
    elif kind == "cells":
        added = store.insert_cells(ev.id, dataset_id, frame)
        if added:
            dirty = _invalidate_all(store, ev)
    elif kind == "population":
        added = store.insert_population(ev.id, dataset_id, frame)
        dirty = _invalidate_all(store, ev)  # people per outage change everywhere
    elif kind == "areas":
        added = store.insert_areas(ev.id, dataset_id, frame)
    else:
        added = store.insert_hazard(ev.id, dataset_id, frame)
    return added, dirty


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
