"""Incremental update: recompute the dirty windows of an event, then its alerts.

Evidence trails over ``DetectionParams.span``, so a measurement at ``t`` can change the
windows from ``floor(t)`` to ``floor(t + span)``. Ingest marks those windows dirty;
:func:`update` recomputes the dirty windows up to the data high-water mark (later ones
stay dirty until data reaches them), passing the outages of the window before as
``previous`` so outage ids carry over, then runs the alert lifecycle on the latest window.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import dcm
from dcm.errors import ParameterError
from dcm.schema import ALL_NETWORKS
from dcm.service.alerts import DEFAULT_SENDER, refresh_alerts
from dcm.store import Event, Principal, Store
from dcm.store.faults import fault_point


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


def detection_params(event: Event) -> Any:
    """Detection parameters of an event (its window length, defaults otherwise)."""
    from dcm.analysis import DetectionParams

    return DetectionParams(window=event.window)


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
