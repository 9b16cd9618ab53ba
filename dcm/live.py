"""The live service over the store: ingest files, incremental updates, alerts, gap reports.

::

    from dcm import live
    outcome = live.ingest(store, "vincent", "hour.csv", kind="measurements",
                          principal=principal)          # idempotent by checksum and row id
    summary = live.update(store, "vincent", principal=principal)   # dirty windows only
    gaps = live.gap_report(store, "vincent")             # DataFrame, ranked by people

Incremental updates: evidence trails over ``DetectionParams.span``, so a measurement at
``t`` can change the windows from ``floor(t)`` to ``floor(t + span)``. Ingest marks those
windows dirty in the store; :func:`update` recomputes the dirty windows up to the data
high-water mark (later ones stay dirty until data reaches them), passing the outages of
the window before as ``previous`` so outage ids carry over, then runs the alert lifecycle
on the latest window.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import dcm
from dcm.errors import Conflict, IngestError, ParameterError
from dcm.ingest.report import IngestReport
from dcm.schema import ALL_NETWORKS, CRS, suspected_outages
from dcm.store import AlertMessage, Dataset, Event, Principal, Store
from dcm.store.faults import fault_point

#: Columns of :func:`gap_report`.
GAP_COLUMNS = (
    "area_id",
    "area_name",
    "network",
    "people",
    "area_km2",
    "cells_offline",
    "since",
    "people_before",
    "trend",
)

#: CAP sender of the alerts this installation issues (overridable per call).
DEFAULT_SENDER = "dcm@disaster-connectivity-mapper.invalid"
#: A change of area or people by this share or more makes a CAP Update.
MATERIAL_CHANGE = 0.25
#: A trend moves when people affected change by more than this share (and 10 people).
TREND_SHARE = 0.1

#: Equal-area projection for km² of intersections (World Cylindrical Equal Area).
_EQUAL_AREA = "EPSG:6933"


@dataclass
class IngestOutcome:
    """What :func:`ingest` did: the dataset record, the reader's report, rows added and
    windows marked for recomputation. ``new`` is False when the file was already known."""

    dataset: Dataset
    report: IngestReport | None
    added: int
    new: bool
    dirty_windows: int = 0


@dataclass
class UpdateSummary:
    """What :func:`update` recomputed."""

    event: str
    run_id: int | None
    windows: list[pd.Timestamp] = field(default_factory=list)
    outages: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    baseline_rebuilt: bool = False


# -- ingest -------------------------------------------------------------------------------


def _read_source(source: str | Path | BinaryIO | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, name or "<upload>"
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise IngestError(
                "file not found" if not path.exists() else "not a file", path=str(path)
            )
        from dcm.ingest._source import InputLimits

        limits, size = InputLimits.from_settings(), path.stat().st_size
        if size > limits.max_bytes:  # refused unread: it would not fit once read
            raise limits.too_large(size, name=name or str(path))
        return path.read_bytes(), name or str(path)
    data = source.read()
    return (data.encode() if isinstance(data, str) else bytes(data)), name or str(
        getattr(source, "name", "<stream>")
    )


def detection_params(event: Event) -> Any:
    """Detection parameters of an event (its window length, defaults otherwise)."""
    from dcm.analysis import DetectionParams

    return DetectionParams(window=event.window)


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
    data, label = _read_source(source, name)
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


# -- update -------------------------------------------------------------------------------


def _baseline(store: Store, event: Event, params: Any) -> tuple[Any, bool]:
    """The baseline model, from the store's cache when its inputs did not change."""
    from dcm.analysis import build_baseline

    inputs = [
        f"{d.id}:{d.checksum}"
        for d in store.list_datasets(event.id)
        if d.kind in ("baseline", "cells")
    ]
    # The dcm version is part of the key: a new version may build a different model.
    key = hashlib.sha256(
        "|".join(
            [f"dcm {dcm.__version__}", *inputs, repr(sorted(params.as_dict().items()))]
        ).encode()
    ).hexdigest()
    cached = store.load_baseline(event.id, key)
    if cached is not None:
        return cached, False
    baseline_rows = store.measurements(event.id, period="baseline")
    if baseline_rows.empty:
        raise ParameterError(f"event {event.name}: no baseline measurements ingested yet")
    model = build_baseline(baseline_rows, store.cells(event.id), params)
    store.save_baseline(event.id, key, model)
    store.save_coverage(event.id, coverage(baseline_rows, resolution=params.resolution))
    return model, True


def coverage(baseline: pd.DataFrame, *, resolution: int) -> pd.DataFrame:
    """Baseline coverage per H3 cell and network (and ``"all"``): measurements, ok and
    failure counts, distinct devices."""
    from dcm.analysis.grid import points_to_cells, to_strings

    if baseline.empty:
        return pd.DataFrame(
            columns=["h3", "network", "measurements", "ok_count", "fail_count", "devices"]
        )
    frame = pd.DataFrame(
        {
            "h3": points_to_cells(
                baseline["lat"].to_numpy(), baseline["lon"].to_numpy(), resolution
            ),
            "network": baseline["network"].astype(object).fillna(ALL_NETWORKS),
            "ok": (baseline["status"] == "ok").to_numpy(dtype="int64"),
            "fail": (baseline["status"] != "ok").to_numpy(dtype="int64"),
            "device": baseline["device"].astype(object),
        }
    )
    both = pd.concat([frame, frame.assign(network=ALL_NETWORKS)], ignore_index=True)
    both = both[both["h3"] != 0]
    out = both.groupby(["h3", "network"], as_index=False).agg(
        measurements=("ok", "size"),
        ok_count=("ok", "sum"),
        fail_count=("fail", "sum"),
        devices=("device", "nunique"),
    )
    out = out.drop_duplicates(["h3", "network"])
    out["h3"] = to_strings(out["h3"].to_numpy())
    return out


def _ns(times: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds (a join key independent of the time unit)."""
    return pd.to_datetime(times, utc=True).dt.as_unit("ns").astype("int64").to_numpy()


def grid_devices(
    event_rows: pd.DataFrame, grid: pd.DataFrame, *, resolution: int, window: pd.Timedelta
) -> pd.Series:
    """Distinct devices behind each grid status row (same h3, network and window), the
    count k-anonymity is judged on; ``"all"`` rows count devices of every network."""
    from dcm.analysis.grid import from_strings, points_to_cells

    if grid.empty or event_rows.empty or event_rows["device"].isna().all():
        return pd.Series(0, index=grid.index, dtype="int64")
    rows = event_rows[event_rows["device"].notna()]
    keys = pd.DataFrame(
        {
            "h3": points_to_cells(rows["lat"].to_numpy(), rows["lon"].to_numpy(), resolution),
            "network": rows["network"].astype(object).fillna(ALL_NETWORKS).to_numpy(),
            "window_start": _ns(rows["timestamp"].dt.floor(window)),
            "device": rows["device"].astype(object).to_numpy(),
        }
    )
    both = pd.concat([keys, keys.assign(network=ALL_NETWORKS)], ignore_index=True)
    counts = (
        both.drop_duplicates()
        .groupby(["h3", "network", "window_start"], sort=False)
        .size()
        .rename("devices")
        .reset_index()
    )
    hexes = grid["h3"].astype(str)
    uniq = hexes.unique()
    codes = pd.Series(from_strings(uniq), index=uniq)
    wanted = pd.DataFrame(
        {
            "h3": codes.reindex(hexes).to_numpy(),
            "network": grid["network"].astype(object).to_numpy(),
            "window_start": _ns(grid["window_start"]),
        }
    )
    merged = wanted.merge(counts, on=["h3", "network", "window_start"], how="left")
    return pd.Series(merged["devices"].fillna(0).astype("int64").to_numpy(), index=grid.index)


def update(
    store: Store,
    event: str | int,
    *,
    principal: Principal,
    full: bool = False,
    now: pd.Timestamp | None = None,
    sender: str = DEFAULT_SENDER,
    until: pd.Timestamp | None = None,
) -> UpdateSummary:
    """Recompute the dirty windows of ``event`` up to the data high-water mark (all its
    windows with ``full``), keep outage ids stable by tracking from the window before,
    then run the alert lifecycle on the latest window. ``now`` is the CAP ``sent`` time.
    ``until`` takes the high-water mark from measurements timed before it only (a replay
    slice received at ``until``: its update is the same whether later slices are stored
    or not). Concurrent updates of one event wait for each other
    (:meth:`Store.event_lock`). Results, CAP messages and the run record are one unit of
    work; a run that died leaves its windows dirty for the next one."""
    started = time.perf_counter()
    ev = store.get_event(event)
    principal.require(principal.can_write(ev), f"update {ev.name}")
    with store.event_lock(ev.id):
        summary = _update_locked(
            store,
            store.get_event(ev.id),
            principal=principal,
            full=full,
            now=now,
            sender=sender,
            until=until,
        )
    summary.seconds = time.perf_counter() - started
    return summary


def _update_locked(
    store: Store,
    ev: Event,
    *,
    principal: Principal,
    full: bool,
    now: pd.Timestamp | None,
    sender: str,
    until: pd.Timestamp | None = None,
) -> UpdateSummary:
    from dcm.analysis import detect

    started = time.perf_counter()
    params = detection_params(ev)
    win = params.window_td
    summary = UpdateSummary(event=ev.name, run_id=None)
    high_water = ev.high_water
    if until is not None and high_water is not None and high_water >= until:
        high_water = store.time_range(ev.id, before=until)[1]
    if high_water is None:
        return summary
    last = high_water.floor(win)
    if full:
        earliest, _ = store.time_range(ev.id, period="event")
        first = max(earliest.floor(win), ev.start.floor(win))  # type: ignore[union-attr]
        store.mark_dirty(ev.id, pd.date_range(first, last, freq=win))
    store.fail_unfinished_runs(ev.id)  # runs of an update that died (results rolled back)
    marks = store.dirty_marks(ev.id)
    todo = pd.DatetimeIndex(marks.index[marks.index <= last])
    if len(todo) == 0:
        # Nothing to recompute, but the alert lifecycle of the latest window is checked
        # again: it issues nothing when up to date, and what a store written by an older
        # version missed (results saved, alerts not) otherwise.
        with store.db.transaction():
            summary.alerts = refresh_alerts(store, ev.id, now=now, sender=sender)
        return summary

    baseline, rebuilt = _baseline(store, ev, params)
    summary.baseline_rebuilt = rebuilt
    run = store.start_run(ev.id, info={"windows": len(todo), "params": params.as_dict()})
    fault_point("update.run_started")
    summary.run_id = run.id
    lookback = max(params.span_windows, params.volume_windows)
    rows = store.measurements(
        ev.id, period="event", start=todo.min() - lookback * win, end=todo.max() + win
    )
    previous = store.outages(ev.id, windows=[todo.min() - win])
    try:
        found = detect(
            baseline,
            rows,
            params=params,
            windows=todo,
            population=store.population(ev.id),
            previous=previous,
            hazard=store.hazard(ev.id),
        )
    except Exception as exc:
        store.finish_run(run.id, status="failed", info={"error": str(exc)[:500]})
        raise
    # Nobody loses service at sea: outages are stored (and alerted) cut to the land.
    from dcm.compare import clip_outages_to_land

    outages, _ = clip_outages_to_land(found.outages)
    grid = found.grid.copy()
    grid["devices"] = grid_devices(rows, grid, resolution=params.resolution, window=win)
    # One unit of work: the results of the windows, the CAP messages they cause and the
    # run record commit together, so a run that dies leaves the windows dirty and the
    # next run recomputes them and issues the alerts.
    with store.db.transaction():
        store.save_results(
            ev.id,
            run.id,
            windows=todo,
            outages=outages,
            cells=found.cells,
            grid=grid,
            marks=marks,
        )
        fault_point("update.results_saved")
        summary.windows = list(todo)
        summary.outages = len(outages)
        summary.alerts = refresh_alerts(store, ev.id, now=now, sender=sender)
        fault_point("update.alerts_written")
        summary.seconds = time.perf_counter() - started
        store.finish_run(
            run.id,
            windows=len(todo),
            info={
                "outages": summary.outages,
                "alerts": summary.alerts,
                "seconds": round(summary.seconds, 3),
            },
        )
        store.audit(
            principal, "event.update", f"event:{ev.name}", {"run": run.id, "windows": len(todo)}
        )
    fault_point("update.committed")
    return summary


# -- alerts -------------------------------------------------------------------------------


def cap_severity(properties: dict[str, Any], *, severe_population: float = 1000.0) -> str:
    """CAP severity of an outage, as :func:`dcm.publish.cap.outage_to_cap` decides it."""
    from dcm.publish.cap import cap_severity as publish_cap_severity

    return publish_cap_severity(properties, severe_population=severe_population)


#: Properties an Update compares with the message before it (kept as ``previous``).
_COMPARED = ("population", "area_km2", "tier", "severity", "network")


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Area or people changed by MATERIAL_CHANGE or more, or the severity or the tier
    (suspected → confirmed) changed."""
    if old.get("severity") != new.get("severity") or cap_severity(old) != cap_severity(new):
        return True
    if (old.get("tier") or "confirmed") != (new.get("tier") or "confirmed"):
        return True
    for key in ("area_km2", "population"):
        a, b = old.get(key), new.get(key)
        if a is None or b is None or a != a or b != b:
            continue
        if a == 0:
            if b != 0:
                return True
        elif abs(b - a) / abs(a) >= MATERIAL_CHANGE:
            return True
    return False


def _passes(row: pd.Series, store: Store) -> bool:
    """Whether an outage without an open chain gets an Alert. A suspected outage opens
    one only with ``alert_suspected``: it is on the map and in the layers, but alerts
    wait until the data confirm it (an open chain follows it through both tiers)."""
    s = store.settings
    tier = row.get("tier")
    if not s.alert_suspected and isinstance(tier, str) and tier == "suspected":
        return False
    people = row["population"]
    people_ok = s.alert_min_population <= 0 or (
        pd.notna(people) and people >= s.alert_min_population
    )
    return bool(
        people_ok
        and row["area_km2"] >= s.alert_min_area_km2
        and row["confidence"] >= s.alert_min_confidence
    )


def _properties(row: pd.Series, event: Event, sender: str) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ")

    def num(v: Any) -> float | None:
        return None if pd.isna(v) else float(v)

    return {
        "event": event.name,
        "sender": sender,
        "outage_id": str(row["outage_id"]),
        "network": str(row["network"]),
        "severity": str(row["severity"]),
        "tier": str(row["tier"]),
        "certainty": None if pd.isna(row["certainty"]) else str(row["certainty"]),
        "confidence": num(row["confidence"]),
        "area_km2": num(row["area_km2"]),
        "population": num(row["population"]),
        "cells_offline": None if pd.isna(row["cells_offline"]) else int(row["cells_offline"]),
        "window_start": iso(row["window_start"]),
        "window_end": iso(row["window_end"]),
        "onset": iso(row["onset"]),
    }


def _reference(message: AlertMessage) -> str:
    from dcm.publish.cap import cap_datetime

    sender = message.properties.get("sender", DEFAULT_SENDER)
    return f"{sender},{message.identifier},{cap_datetime(message.sent)}"


def refresh_alerts(
    store: Store, event: str | int, *, now: pd.Timestamp | None = None, sender: str = DEFAULT_SENDER
) -> dict[str, int]:
    """Alert lifecycle on the latest computed window; returns messages written per type.

    An outage passing the thresholds (``Settings.alert_min_population``,
    ``alert_min_area_km2``, ``alert_min_confidence``) without an open alert gets an
    ``Alert``; an open alert whose outage changed materially (area or people ±25 %,
    severity) an ``Update``; an open alert whose outage is gone from the latest window a
    ``Cancel``. Each message after the first references the ones before it.
    """
    ev = store.get_event(event)
    sent = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    sent = (sent.tz_localize("UTC") if sent.tzinfo is None else sent.tz_convert("UTC")).floor("s")
    windows = store.event_windows(ev.id)
    done = windows[~windows["dirty"]]
    counts = {"Alert": 0, "Update": 0, "Cancel": 0}
    if done.empty:
        return counts
    latest = done["window_start"].max()
    current = store.outages(ev.id, windows=[latest])
    chains: dict[str, list[AlertMessage]] = {}
    for message in store.alert_messages(ev.id):
        chains.setdefault(message.outage_id, []).append(message)
    open_chains = {k: v for k, v in chains.items() if v[-1].msg_type != "Cancel"}

    def write(
        msg_type: str,
        outage_id: str,
        network: str,
        geometry: dict[str, Any],
        properties: dict[str, Any],
    ) -> None:
        chain = chains.get(outage_id, [])
        # A cancelled outage that comes back opens a new chain: new identifiers.
        identifier = f"dcm-{ev.name}-{outage_id}-{len(chain) + 1}"
        refs = tuple(_reference(m) for m in open_chains.get(outage_id, []))
        message = AlertMessage(
            identifier=identifier,
            event_id=ev.id,
            outage_id=outage_id,
            network=network,
            msg_type=msg_type,
            sent=sent,
            references=refs if msg_type != "Alert" else (),
            geometry=geometry,
            properties=properties,
        )
        store.add_alert_message(message)
        chains.setdefault(outage_id, []).append(message)
        counts[msg_type] += 1

    seen: set[str] = set()
    for _, row in current.iterrows():  # a handful of outages per window
        outage_id = str(row["outage_id"])
        seen.add(outage_id)
        props = _properties(row, ev, sender)
        geometry = shapely.geometry.mapping(shapely.set_precision(row.geometry, 1e-6))
        geometry = _plain(geometry)
        if outage_id in open_chains:
            before = open_chains[outage_id][-1].properties
            if _changed(before, props):
                # The Update says what changed since the message before it.
                props["previous"] = {k: before.get(k) for k in _COMPARED}
                write("Update", outage_id, props["network"], geometry, props)
        elif _passes(row, store):
            write("Alert", outage_id, props["network"], geometry, props)
    for outage_id, chain in open_chains.items():
        if outage_id not in seen:
            last = chain[-1]
            props = {k: v for k, v in last.properties.items() if k != "previous"}
            props["restored"] = latest.strftime("%Y-%m-%dT%H:%M:%SZ")
            write("Cancel", outage_id, last.network, last.geometry, props)
    return counts


def _plain(value: Any) -> Any:
    """GeoJSON mapping with lists instead of tuples (JSON round-trips compare equal)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def latest_alerts(store: Store, event: str | int) -> list[AlertMessage]:
    """The latest message of each alert chain of ``event`` (open and cancelled)."""
    last: dict[str, AlertMessage] = {}
    for message in store.alert_messages(event):
        last[message.outage_id] = message
    return list(last.values())


def alerts_geojson(store: Store, event: str | int) -> dict[str, Any]:
    """The latest CAP message of each alert of ``event`` as a GeoJSON FeatureCollection."""
    features = [
        {
            "type": "Feature",
            "id": m.identifier,
            "geometry": m.geometry,
            "properties": {
                **m.properties,
                "identifier": m.identifier,
                "msg_type": m.msg_type,
                "sent": m.sent.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "references": list(m.references),
            },
        }
        for m in latest_alerts(store, event)
    ]
    return {"type": "FeatureCollection", "features": features}


def cap_message(message: AlertMessage) -> Any:
    """The :class:`dcm.publish.CapMessage` of a stored alert message (render it with
    :func:`dcm.publish.cap_alert`)."""
    from dcm.publish.cap import outage_to_cap

    props = message.properties
    outage = {**props, "geometry": shapely.geometry.shape(message.geometry)}
    for key in ("onset", "window_start", "window_end", "restored"):
        if outage.get(key):
            outage[key] = pd.Timestamp(outage[key])
    references = []
    for ref in message.references:
        sender, identifier, sent = ref.split(",")
        references.append((sender, identifier, pd.Timestamp(sent).to_pydatetime()))
    return outage_to_cap(
        outage,
        identifier=message.identifier,
        sender=props.get("sender", DEFAULT_SENDER),
        sent=message.sent.to_pydatetime(),
        msg_type=message.msg_type,
        references=references,
    )


# -- gap report ---------------------------------------------------------------------------


def _people_per_area(
    outages: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, population: pd.DataFrame | None
) -> pd.DataFrame:
    """People, km² and onset per (area, network) for one window's outages."""
    cols = ["area_id", "network", "people", "area_km2", "since"]
    if outages.empty:
        return pd.DataFrame(columns=cols)
    # People without service on a network: its own outages, plus places where no
    # network serves (network "all", severity outage). Degraded "all" polygons still
    # have service from some network, so they count for nobody.
    nobody = outages[(outages["network"] == ALL_NETWORKS) & (outages["severity"] == "outage")]
    per_net = outages[outages["network"] != ALL_NETWORKS]
    layers = {ALL_NETWORKS: nobody}
    for network, group in per_net.groupby("network"):
        layers[str(network)] = pd.concat([group, nobody])
    rows = []
    area_geoms = areas.geometry.to_numpy()
    area_eq = gpd.GeoSeries(area_geoms, crs=CRS).to_crs(_EQUAL_AREA).to_numpy()
    pts = None
    if population is not None and len(population):
        pts = gpd.GeoDataFrame(
            population[["population"]],
            geometry=gpd.points_from_xy(population["lon"], population["lat"]),
            crs=CRS,
        )
    for network, layer in layers.items():
        if layer.empty:
            continue
        shape = shapely.union_all(layer.geometry.to_numpy())
        shape_eq = gpd.GeoSeries([shape], crs=CRS).to_crs(_EQUAL_AREA).iloc[0]
        hit = shapely.intersects(area_geoms, shape)
        km2 = shapely.area(shapely.intersection(area_eq, shape_eq)) / 1e6
        people = np.zeros(len(areas))
        if pts is not None:
            inside = pts[shapely.contains_xy(shape, pts.geometry.x, pts.geometry.y)]
            if len(inside):
                joined = gpd.sjoin(
                    inside,
                    areas[["geometry"]].reset_index(drop=True),
                    how="inner",
                    predicate="within",
                )
                sums = joined.groupby("index_right")["population"].sum()
                people[sums.index.to_numpy()] = sums.to_numpy()
        since = _onset_per_area(layer, area_geoms)
        for i in np.nonzero(hit)[0]:  # one row per area touched (a few dozen at most)
            rows.append((areas["area_id"].iloc[i], network, people[i], km2[i], since[i]))
    return pd.DataFrame(rows, columns=cols)


def _onset_per_area(layer: gpd.GeoDataFrame, area_geoms: np.ndarray) -> pd.Series:
    """Earliest onset of the outages of ``layer`` that touch each area (NaT where none
    does): an area's outage began when the first outage reaching it did, not when the
    first outage anywhere on the network did."""
    area, outage = shapely.STRtree(layer.geometry.to_numpy()).query(
        area_geoms, predicate="intersects"
    )
    onset = pd.DatetimeIndex(pd.to_datetime(layer["onset"], utc=True))[outage]
    first = pd.Series(onset, index=area).groupby(level=0).min()
    return first.reindex(range(len(area_geoms)))


def gap_report(
    store: Store, event: str | int, *, at: pd.Timestamp | None = None, trend_hours: int = 6
) -> pd.DataFrame:
    """People without service per admin area and network (columns :data:`GAP_COLUMNS`).

    Population inside the confirmed outage polygons of the latest computed window (or the window
    holding ``at``), km² of outage inside the area, offline cells of the sites serving
    it (:func:`_cells_offline`), onset (``since``),
    people ``trend_hours`` earlier and the trend (``growing``/``shrinking``/``stable``),
    ranked by people affected, most first. Network ``"all"`` counts places where no
    network serves. Without stored areas, the whole event is one area (its name).
    """
    ev = store.get_event(event)
    win = pd.Timedelta(ev.window)
    windows = store.event_windows(ev.id)
    done = windows.loc[~windows["dirty"], "window_start"]
    if done.empty:
        return pd.DataFrame(columns=list(GAP_COLUMNS))
    if at is not None:
        at_ts = pd.Timestamp(at)
        at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
        latest = at_ts.floor(win)
    else:
        latest = done.max()
    before = latest - pd.Timedelta(hours=trend_hours)
    areas = store.areas(ev.id)
    if areas is None:
        outline = shapely.box(-180, -90, 180, 90)
        areas = gpd.GeoDataFrame(
            {"area_id": [ev.name], "name": [ev.name]}, geometry=[outline], crs=CRS
        )
    areas = areas.reset_index(drop=True)
    population = store.population(ev.id)
    outages = store.outages(ev.id, windows=[latest, before])
    # Planners act on confirmed outages; suspected ones are on the map and in the layers.
    outages = outages[~suspected_outages(outages)]
    now_rows = _people_per_area(outages[outages["window_start"] == latest], areas, population)
    if now_rows.empty:
        return pd.DataFrame(columns=list(GAP_COLUMNS))
    then_rows = _people_per_area(outages[outages["window_start"] == before], areas, population)
    report = now_rows.merge(
        then_rows[["area_id", "network", "people"]].rename(columns={"people": "people_before"}),
        on=["area_id", "network"],
        how="left",
    )
    report["people_before"] = report["people_before"].fillna(0.0)
    delta = report["people"] - report["people_before"]
    moved = delta.abs() > np.maximum(TREND_SHARE * report["people_before"], 10.0)
    report["trend"] = np.where(moved, np.where(delta > 0, "growing", "shrinking"), "stable")
    report["cells_offline"] = _cells_offline(store, ev, latest, areas, report)
    names = dict(zip(areas["area_id"], areas.get("name", areas["area_id"]), strict=True))
    report["area_name"] = report["area_id"].map(names)
    report["area_km2"] = report["area_km2"].round(3)
    report["people"] = report["people"].round(1)
    report["since"] = pd.to_datetime(report["since"], utc=True)
    report = report.sort_values(["people", "area_km2"], ascending=False, ignore_index=True)
    return report[list(GAP_COLUMNS)]


def gap_window(
    store: Store, event: str | int, *, at: pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Start and end of the window :func:`gap_report` reports (the one holding ``at``, or
    the latest computed); None before any window is computed."""
    ev = store.get_event(event)
    win = pd.Timedelta(ev.window)
    windows = store.event_windows(ev.id)
    done = windows.loc[~windows["dirty"], "window_start"]
    if done.empty:
        return None
    if at is None:
        start = pd.Timestamp(done.max())
    else:
        at_ts = pd.Timestamp(at)
        at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
        start = at_ts.floor(win)
    return start, start + win


def gap_document(
    store: Store,
    event: str | int,
    *,
    fmt: str = "html",
    at: pd.Timestamp | None = None,
    generated: pd.Timestamp | None = None,
) -> bytes:
    """The gap report for planners as an HTML page or a PDF (``fmt`` ``html`` | ``pdf``):
    :func:`gap_report`'s ranked table and :func:`gap_history`'s chart up to its window."""
    from dcm.publish.report import gap_report_pdf, render_gap_report

    ev = store.get_event(event)
    window = gap_window(store, ev.id, at=at)
    report = gap_report(store, ev.id, at=at)
    history = gap_history(store, ev.id, until=None if window is None else window[0])
    args = {
        "event": ev.name,
        "window": window,
        "generated": generated if generated is not None else pd.Timestamp.now(tz="UTC"),
    }
    if fmt == "pdf":
        return gap_report_pdf(report, history, **args)
    if fmt != "html":
        raise ParameterError(f"unknown report format {fmt!r} (use html or pdf)")
    return render_gap_report(report, history, **args).encode("utf-8")


def gap_history(
    store: Store, event: str | int, *, until: pd.Timestamp | None = None
) -> pd.DataFrame:
    """People without service per computed window and network, for the gap report's
    chart: ``window_start``, ``network``, ``people`` (a row for every computed window up
    to ``until`` and every network with an outage; 0 where none).

    Counted as :func:`gap_report` counts them: people inside the network's confirmed
    outages or where no network serves; ``"all"``: where no network serves. Without
    population, people are NaN.
    """
    ev = store.get_event(event)
    windows = store.event_windows(ev.id)
    done = pd.DatetimeIndex(windows.loc[~windows["dirty"], "window_start"]).sort_values()
    if until is not None:
        stop = pd.Timestamp(until)
        stop = stop.tz_localize("UTC") if stop.tzinfo is None else stop.tz_convert("UTC")
        done = done[done <= stop.floor(pd.Timedelta(ev.window))]
    cols = ["window_start", "network", "people"]
    outages = store.outages(ev.id, windows=list(done)) if len(done) else None
    if outages is None or outages.empty:
        return pd.DataFrame(columns=cols)
    outages = outages[~suspected_outages(outages)]
    population = store.population(ev.id)
    nobody = (outages["network"] == ALL_NETWORKS) & (outages["severity"] == "outage")
    networks = sorted(set(outages["network"].astype(str)) - {ALL_NETWORKS})
    networks += [ALL_NETWORKS] if nobody.any() else []
    pts = None
    if population is not None and len(population):
        pts = (
            population["lon"].to_numpy("float64"),
            population["lat"].to_numpy("float64"),
            population["population"].to_numpy("float64"),
        )
    rows = []
    for window, group in outages.groupby("window_start"):  # one union per window and network
        none_here = group[
            (group["network"] == ALL_NETWORKS) & (group["severity"] == "outage")
        ].geometry.to_numpy()
        for network in networks:
            own = group[group["network"] == network].geometry.to_numpy()
            shapes = none_here if network == ALL_NETWORKS else np.concatenate([own, none_here])
            people = 0.0
            if pts is None:
                people = np.nan
            elif len(shapes):
                shape = shapely.union_all(shapes)
                people = float(pts[2][shapely.contains_xy(shape, pts[0], pts[1])].sum())
            rows.append((window, network, people))
    found = pd.DataFrame(rows, columns=cols)
    # Windows without any confirmed outage are rows of 0 people, so the chart falls to 0.
    full = pd.MultiIndex.from_product([done, networks], names=["window_start", "network"])
    found = found.set_index(["window_start", "network"]).reindex(full)
    found["people"] = found["people"].fillna(0.0 if pts is not None else np.nan)
    return found.reset_index()


def _cells_offline(
    store: Store, event: Event, window: pd.Timestamp, areas: gpd.GeoDataFrame, report: pd.DataFrame
) -> np.ndarray:
    """Offline cells of the window whose site serves each report row's area (per
    network; all networks for ``"all"``): sites' service areas from the cached baseline
    model (:func:`dcm.analysis.serving.site_service_areas`)."""
    from dcm.analysis.serving import cells_serving_areas, site_service_areas

    status = store.cell_status(event.id, windows=[window])
    status = status[status["status"] == "offline"]
    if status.empty:
        return np.zeros(len(report), dtype="int64")
    baseline = store.cached_baseline(event.id)
    service = site_service_areas(
        store.cells(event.id),
        None if baseline is None else baseline.sites,
        params=detection_params(event),
    )
    counts = cells_serving_areas(areas, status, service)
    found = counts.set_index(["area_id", "network"])["cells"]
    keys = pd.MultiIndex.from_arrays([report["area_id"], report["network"]])
    return found.reindex(keys).fillna(0).to_numpy("int64")
