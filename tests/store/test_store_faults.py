"""Nothing received is lost: a ``dcm`` command killed with SIGKILL at each commit point of
an ingest, an update or a replay (``DCM_FAULT_POINT``), then run again, leaves exactly the
rows, windows, results and CAP messages of a run that was never interrupted, on SQLite and
on PostgreSQL. Also: a full database, and measurements from the future."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dcm import live
from dcm.errors import StoreError
from dcm.publish import cap_alert
from dcm.schema import CELL_STATUS_COLUMNS, GRID_STATUS_COLUMNS, empty_frame
from dcm.store import AlertMessage, Principal, Store, open_store
from dcm.store.faults import FAULT_ENV, FAULT_POINTS, SIGNAL_ENV

from .conftest import BACKENDS, Scenario, backend_url, build_scenario, make_settings

EVENT = "fault"
#: 12 hours of 150 measurements on two networks, one day of baseline: an outage that
#: opens (Alert), grows (Update) and ends (Cancel) within seconds of computing.
SMALL = {"hours": 12, "onset": 3, "grow": 6, "restore": 9, "per_hour": 150, "baseline_days": 1}
HALF = 6  # hours in the first file; the command under test brings the rest


@dataclasses.dataclass
class Files:
    scenario: Scenario
    first: Path  # hours 0-6
    second: Path  # hours 6-12
    whole: Path  # hours 0-12


def make_files(folder: Path) -> Files:
    """The small scenario's files in ``folder``."""
    sc = build_scenario(folder, **SMALL)
    return Files(
        sc,
        sc.event_slice(0, HALF, "first.csv"),
        sc.event_slice(HALF, SMALL["hours"], "second.csv"),
        sc.event_slice(0, SMALL["hours"], "whole.csv"),
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return make_files(tmp_path_factory.mktemp("faults"))


def _env(url: str, data_dir: Path, fault: str | None = None) -> dict[str, str]:
    """Environment of a ``dcm`` subprocess with the settings of :func:`make_settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    settings = make_settings(data_dir)
    env.update(
        DCM_DATABASE_URL=url,
        DCM_DATA_DIR=str(data_dir),
        DCM_SECRET=str(settings.secret),
        DCM_K_ANONYMITY=str(settings.k_anonymity),
        DCM_ALERT_MIN_POPULATION=str(settings.alert_min_population),
        DCM_ALERT_MIN_AREA_KM2=str(settings.alert_min_area_km2),
        DCM_ALERT_MIN_CONFIDENCE=str(settings.alert_min_confidence),
    )
    if fault:
        env[FAULT_ENV] = fault
    return env


def dcm(args: list[str], url: str, data_dir: Path, fault: str | None = None) -> int:
    """Run ``dcm ARGS`` in a subprocess; returns its exit code (-9 when killed)."""
    done = subprocess.run(
        [sys.executable, "-m", "dcm.cli.main", *args],
        env=_env(url, data_dir, fault),
        capture_output=True,
        timeout=300,
    )
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(done.stderr.decode()[-2000:])
    return done.returncode


def _prepare(url: str, data_dir: Path, files: Files, *, first: bool) -> None:
    """Event with cells and baseline; with ``first``, hours 0-6 ingested and updated."""
    admin = Principal.system()
    with open_store(make_settings(data_dir), url=url) as store:
        store.create_event(EVENT, start=files.scenario.start, principal=admin)
        live.ingest(store, EVENT, files.scenario.cells, kind="cells", principal=admin)
        live.ingest(store, EVENT, files.scenario.baseline, kind="baseline", principal=admin)
        if first:
            live.ingest(store, EVENT, files.first, principal=admin)
            live.update(store, EVENT, principal=admin, now=_at(HALF))


def _at(hour: int) -> pd.Timestamp:
    return pd.Timestamp("2021-04-09T00:00:00Z") + pd.Timedelta(hours=hour)


def _without_clock(message: AlertMessage) -> AlertMessage:
    """The message with ``sent`` (and the times in its references) fixed: ``dcm update``
    stamps messages with the wall clock, which differs between two runs."""
    refs = tuple(
        ",".join([*r.split(",")[:2], "2000-01-01T00:00:00-00:00"]) for r in message.references
    )
    return dataclasses.replace(message, sent=pd.Timestamp("2000-01-01", tz="UTC"), references=refs)


def snapshot(url: str, data_dir: Path, *, wall_clock: bool = False) -> dict[str, Any]:
    """Everything an event holds, comparable between two stores."""
    with open_store(make_settings(data_dir), url=url) as store:
        ev = store.get_event(EVENT)
        outages = store.outages(EVENT)
        wkt = outages.geometry.to_wkt().to_numpy()
        outages = pd.DataFrame(outages.drop(columns="geometry")).assign(wkt=wkt)
        messages = store.alert_messages(EVENT)
        if wall_clock:
            messages = [_without_clock(m) for m in messages]
        unfinished = store.db.scalar(
            "SELECT count(*) FROM runs WHERE event_id = :event AND finished_at IS NULL",
            {"event": ev.id},
        )
        return {
            "high_water": ev.high_water,
            "datasets": sorted(
                (d.kind, d.source, d.checksum, d.rows_in, d.accepted, d.rejected, d.added)
                for d in store.list_datasets(EVENT)
            ),
            "measurements": store.measurements(EVENT).sort_values(
                ["timestamp", "measurement_id"], ignore_index=True
            ),
            "windows": store.event_windows(EVENT)[["window_start", "window_end", "dirty"]],
            "outages": outages,
            "cells": store.cell_status(EVENT),
            "grid": store.grid_status(EVENT),
            "alerts": [dataclasses.asdict(m) for m in messages],
            "cap": [cap_alert(live.cap_message(m)) for m in messages],
            "unfinished_runs": unfinished,
            "partial_raw_files": sorted(p.name for p in (data_dir / "raw").glob("*.tmp")),
        }


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], value, obj=key)
        else:
            assert got[key] == value, key


#: Reference snapshots of uninterrupted runs, per (flow, backend).
_REFERENCE: dict[tuple[str, str], dict[str, Any]] = {}


def reference(flow: str, backend: str, files: Files, folder: Path) -> dict[str, Any]:
    key = (flow, backend)
    if key not in _REFERENCE:
        with backend_url(backend, folder) as url:
            data_dir = folder / "data"
            _run_flow(flow, url, data_dir, files, fault=None)
            _REFERENCE[key] = snapshot(url, data_dir, wall_clock=flow == "update")
        want = _REFERENCE[key]
        types = {a["msg_type"] for a in want["alerts"]}
        assert {"Alert", "Cancel"} <= types, types  # the comparison means something
    return _REFERENCE[key]


def prepare_flow(flow: str, url: str, data_dir: Path, files: Files) -> list[str]:
    """Bring an empty store to the state before the command of ``flow`` (``ingest``,
    ``update`` or ``replay``) and return that command's arguments."""
    if flow == "ingest":
        _prepare(url, data_dir, files, first=True)
        return ["ingest", "--event", EVENT, str(files.second)]
    if flow == "update":
        _prepare(url, data_dir, files, first=True)
        with open_store(make_settings(data_dir), url=url) as store:
            live.ingest(store, EVENT, files.second, principal=Principal.system())
        return ["update", "--event", EVENT]
    _prepare(url, data_dir, files, first=False)
    return ["replay", "--event", EVENT, "--step", "2h", str(files.whole)]


def finish_flow(flow: str, url: str, data_dir: Path) -> None:
    """What follows the command: an ingest is followed by an update (fixed CAP clock)."""
    if flow == "ingest":
        with open_store(make_settings(data_dir), url=url) as store:
            live.update(store, EVENT, principal=Principal.system(), now=_at(SMALL["hours"]))


def _run_flow(flow: str, url: str, data_dir: Path, files: Files, fault: str | None) -> None:
    """The command of ``flow`` once with ``fault`` (it must die there), then again."""
    args = prepare_flow(flow, url, data_dir, files)
    if fault is not None:
        assert dcm(args, url, data_dir, fault) == -signal.SIGKILL, f"{fault} was not reached"
    assert dcm(args, url, data_dir) == 0
    finish_flow(flow, url, data_dir)


INGEST_POINTS = [p for p in FAULT_POINTS if p.startswith(("raw.", "ingest."))]
UPDATE_POINTS = [p for p in FAULT_POINTS if p.startswith("update.")]
REPLAY_POINTS = [
    "ingest.dataset_recorded@3",  # the slice record and rows are one transaction
    "ingest.rows_inserted@4",
    "ingest.windows_marked@2",
    "ingest.committed@5",
    "replay.slice_ingested@3",
    "update.run_started@4",
    "update.results_saved@3",  # results and alerts are one transaction
    "update.alerts_written@5",
    "replay.slice_updated@2",
]
CASES = [
    *(("ingest", p) for p in INGEST_POINTS),
    *(("update", p) for p in UPDATE_POINTS),
    *(("replay", p) for p in REPLAY_POINTS),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(("flow", "point"), CASES, ids=[f"{f}-{p}" for f, p in CASES])
def test_a_command_killed_at_a_commit_point_is_finished_by_running_it_again(
    flow: str,
    point: str,
    backend: str,
    files: Files,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    want = reference(flow, backend, files, tmp_path_factory.mktemp(f"ref-{flow}-{backend}"))
    with backend_url(backend, tmp_path) as url:
        _run_flow(flow, url, tmp_path / "data", files, fault=point)
        got = snapshot(url, tmp_path / "data", wall_clock=flow == "update")
    assert_same(got, want)


def test_every_fault_point_is_exercised() -> None:
    hit = {p.split("@")[0] for _, p in CASES}
    assert hit == set(FAULT_POINTS)


def _ctrl_c_as_in_a_shell() -> None:
    """In the child before exec: SIGINT handled by default and not blocked, as in a
    terminal. A disposition or mask left in the test process by other tests (children
    inherit both) would otherwise make the Ctrl-C a no-op."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.parametrize("point", ["ingest.dataset_recorded", "ingest.rows_inserted"])
def test_ctrl_c_during_an_ingest_rolls_it_back(
    point: str, backend: str, files: Files, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT: KeyboardInterrupt inside the transaction) stores nothing; the
    retry stores the whole file."""
    with backend_url(backend, tmp_path) as url:
        data_dir = tmp_path / "data"
        args = prepare_flow("ingest", url, data_dir, files)
        env = _env(url, data_dir, point) | {SIGNAL_ENV: "INT"}
        done = subprocess.run(
            [sys.executable, "-m", "dcm.cli.main", *args],
            env=env,
            capture_output=True,
            preexec_fn=_ctrl_c_as_in_a_shell,
        )
        assert done.returncode != 0
        with open_store(make_settings(data_dir), url=url) as store:
            assert len(store.list_datasets(EVENT)) == 3  # cells, baseline, the first file
        assert dcm(args, url, data_dir) == 0
        with open_store(make_settings(data_dir), url=url) as store:
            assert len(store.measurements(EVENT, period="event")) == len(files.scenario.event)


# -- an ingest written in batches -----------------------------------------------------------------


def _state(url: str, data_dir: Path) -> dict[str, Any]:
    """What an ingest changes: datasets (with their counts), rows, windows, high water."""
    with open_store(make_settings(data_dir), url=url) as store:
        ev = store.get_event(EVENT)
        return {
            "datasets": sorted(
                (d.kind, d.checksum, d.rows_in, d.accepted, d.rejected, d.duplicates, d.added)
                for d in store.list_datasets(EVENT)
            ),
            "measurements": store.measurements(EVENT).sort_values(
                ["timestamp", "measurement_id"], ignore_index=True
            ),
            "windows": store.event_windows(EVENT)[["window_start", "window_end", "dirty"]],
            "high_water": ev.high_water,
        }


@pytest.mark.parametrize("first", [True, False], ids=["rows-stored-before", "first-rows"])
def test_a_kill_between_the_batches_of_one_ingest_leaves_nothing_and_the_retry_is_whole(
    first: bool, backend: str, files: Files, tmp_path: Path
) -> None:
    """``dcm ingest`` writes 1,800 rows 250 at a time (``DCM_INGEST_BATCH_ROWS``), all in
    one transaction: killed after its third batch, it leaves the store as it was (no
    dataset, no row, no window, the same high-water mark); run again, it stores every
    row once and leaves what one uninterrupted, unbatched ingest leaves. With
    ``first``, half the rows were stored before (each batch looks its rows up)."""
    args = ["ingest", "--event", EVENT, str(files.whole)]
    batched = {"DCM_INGEST_BATCH_ROWS": "250"}
    (tmp_path / "ref").mkdir()
    with backend_url(backend, tmp_path / "ref") as url:
        _prepare(url, tmp_path / "ref" / "data", files, first=first)
        assert dcm(args, url, tmp_path / "ref" / "data") == 0
        want = _state(url, tmp_path / "ref" / "data")
    with backend_url(backend, tmp_path) as url:
        data_dir = tmp_path / "data"
        _prepare(url, data_dir, files, first=first)
        before = _state(url, data_dir)
        done = subprocess.run(
            [sys.executable, "-m", "dcm.cli.main", *args],
            env=_env(url, data_dir, "ingest.rows_inserted@3") | batched,
            capture_output=True,
            timeout=300,
        )
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
        assert_same(_state(url, data_dir), before)
        retry = subprocess.run(
            [sys.executable, "-m", "dcm.cli.main", *args],
            env=_env(url, data_dir) | batched,
            capture_output=True,
            timeout=300,
        )
        assert retry.returncode == 0, retry.stderr.decode()[-2000:]
        got = _state(url, data_dir)
    assert_same(got, want)
    rows = got["measurements"]
    assert rows["measurement_id"].is_unique
    assert rows["measurement_id"].str.startswith("e").sum() == len(files.scenario.event)
    assert len(got["datasets"]) == len(before["datasets"]) + 1


# -- an ingest while an update computes ----------------------------------------------------------


def test_a_window_marked_again_during_an_update_stays_dirty(store: Store) -> None:
    """Rows that arrive while an update computes their window are analysed by the next
    update: saving the results does not clear a mark made after the update read it."""
    store.create_event(EVENT, start=_at(0), principal=Principal.system())
    windows = pd.date_range(_at(0), _at(3), freq="1h", inclusive="left")
    store.mark_dirty(EVENT, windows)
    marks = store.dirty_marks(EVENT)  # what the update reads before computing
    store.mark_dirty(EVENT, windows[1:2])  # an ingest commits meanwhile
    nothing = {
        "outages": store.outages(EVENT),
        "cells": empty_frame(CELL_STATUS_COLUMNS),
        "grid": empty_frame(GRID_STATUS_COLUMNS),
    }
    run = store.start_run(EVENT)
    store.save_results(EVENT, run.id, windows=windows, marks=marks, **nothing)
    assert list(store.dirty_windows(EVENT)) == [windows[1]]
    store.save_results(
        EVENT, run.id, windows=windows[1:2], marks=store.dirty_marks(EVENT), **nothing
    )
    assert store.dirty_windows(EVENT).empty


# -- a full database ------------------------------------------------------------------------


def test_a_full_sqlite_database_rolls_the_whole_ingest_back(files: Files, tmp_path: Path) -> None:
    """SQLite answers 'database or disk is full' half-way through the rows: the retry,
    once there is room, ingests the file instead of calling it already ingested."""
    url, data_dir = f"sqlite:///{tmp_path / 'dcm.sqlite'}", tmp_path / "data"
    _prepare(url, data_dir, files, first=False)
    admin = Principal.system()
    with open_store(make_settings(data_dir), url=url) as store:
        pages = int(store.db.scalar("PRAGMA page_count"))
        store.db.execute(f"PRAGMA max_page_count = {pages + 8}")  # room for a few rows only
        with pytest.raises(StoreError, match="full"):
            live.ingest(store, EVENT, files.whole, principal=admin)
        assert store.list_datasets(EVENT)[-1].kind == "baseline"
        assert store.time_range(EVENT)[0] is None and store.get_event(EVENT).high_water is None
        store.db.execute("PRAGMA max_page_count = 1073741823")
        again = live.ingest(store, EVENT, files.whole, principal=admin)
        assert again.new and again.added == len(files.scenario.event)
        assert len(store.measurements(EVENT, period="event")) == len(files.scenario.event)


def test_a_raw_copy_that_does_not_fit_leaves_no_partial_file(files: Files, tmp_path: Path) -> None:
    """A file size limit (as a full disk) stops the raw copy: no ``.tmp`` file is left and
    the retry ingests every row."""
    url, data_dir = f"sqlite:///{tmp_path / 'dcm.sqlite'}", tmp_path / "data"
    _prepare(url, data_dir, files, first=False)
    limit = files.whole.stat().st_size // 2

    def small_files() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "dcm.cli.main", "ingest", "--event", EVENT, str(files.whole)],
        env=_env(url, data_dir),
        capture_output=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert done.returncode != 0
    assert not list((data_dir / "raw").glob(".*.tmp"))
    assert dcm(["ingest", "--event", EVENT, str(files.whole)], url, data_dir) == 0
    with open_store(make_settings(data_dir), url=url) as store:
        assert len(store.measurements(EVENT, period="event")) == len(files.scenario.event)


# -- measurements from the future -------------------------------------------------------------


@pytest.fixture
def alerting(store_url: str, files: Files, tmp_path: Path) -> Iterator[Store]:
    """An event whose first six hours are ingested and updated: alerts are open."""
    _prepare(store_url, tmp_path / "data", files, first=True)
    with open_store(make_settings(tmp_path / "data"), url=store_url) as store:
        yield store


def test_a_measurement_from_the_future_is_rejected_and_moves_no_clock(
    alerting: Store, files: Files, tmp_path: Path
) -> None:
    store, admin = alerting, Principal.system()
    open_before = {m.outage_id for m in live.latest_alerts(store, EVENT) if m.msg_type != "Cancel"}
    assert open_before
    high_water = store.get_event(EVENT).high_water
    lines = files.first.read_text().splitlines()
    stray = lines[1].split(",")
    stray[0] = "2035-01-01T00:00:00Z"
    stray[-1] = "from-2035"  # measurement_id
    path = tmp_path / "stray.csv"
    path.write_text("\n".join([lines[0], lines[2], ",".join(stray), lines[3]]) + "\n")

    outcome = live.ingest(store, EVENT, path, principal=admin)
    assert outcome.report is not None
    assert [(r.line, r.field) for r in outcome.report.rejected] == [(3, "timestamp")]
    assert "later than the time received" in outcome.report.rejected[0].reason
    assert outcome.dataset.rejected == 1
    assert store.get_event(EVENT).high_water == high_water
    summary = live.update(store, EVENT, principal=admin, now=_at(HALF))
    assert summary.alerts.get("Cancel", 0) == 0
    still_open = {m.outage_id for m in live.latest_alerts(store, EVENT) if m.msg_type != "Cancel"}
    assert still_open == open_before


def test_alerts_missing_beside_saved_results_are_issued_by_the_next_update(
    alerting: Store,
) -> None:
    """A store left by an older version, killed between saving results and issuing
    alerts: the next update issues them, though no window needs recomputing."""
    store, admin = alerting, Principal.system()
    want = [(m.identifier, m.msg_type, m.properties) for m in store.alert_messages(EVENT)]
    assert want
    store.db.execute("DELETE FROM alerts")
    summary = live.update(store, EVENT, principal=admin, now=_at(HALF))
    assert not summary.windows and summary.alerts["Alert"] == len(want)
    assert [(m.identifier, m.msg_type, m.properties) for m in store.alert_messages(EVENT)] == want
    assert not any(live.update(store, EVENT, principal=admin, now=_at(HALF)).alerts.values())


def test_the_clock_allowance_is_a_setting(files: Files, tmp_path: Path) -> None:
    """Within the allowance a measurement ahead of the receiver's clock is kept."""
    soon = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=10)
    path = tmp_path / "soon.csv"
    path.write_text(
        f"timestamp,lat,lon,status,mcc,mnc\n{soon:%Y-%m-%dT%H:%M:%SZ},13.23,-61.23,ok,360,10\n"
    )
    admin = Principal.system()
    for minutes, kept in ((15.0, 1), (5.0, 0)):
        settings = make_settings(tmp_path / f"data-{minutes}")
        settings.clock_allowance_minutes = minutes
        with (
            backend_url("sqlite", tmp_path / f"db-{minutes}") as url,
            open_store(settings, url=url) as store,
        ):
            store.create_event(EVENT, start=files.scenario.start, principal=admin)
            assert live.ingest(store, EVENT, path, principal=admin).added == kept
