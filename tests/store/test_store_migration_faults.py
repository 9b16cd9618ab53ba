"""A store upgrade killed half-way (SIGKILL after a migration step, inside the upgrade's
one transaction) leaves the store as the older revision wrote it, and the next open
upgrades it cleanly with every row intact, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dcm import service
from dcm.store import Principal, Store, open_store
from dcm.store._db import Database, ts_text
from dcm.store.faults import FAULT_ENV
from dcm.store.migrations import MIGRATIONS, current_revision, migrate, revision_id

from .conftest import BACKENDS, Scenario, backend_url, build_scenario, make_settings

#: The revision the old store was written by: before outage tiers, window marks and
#: offline_since, whose steps rewrite existing rows.
OLD = 2
#: Steps an upgrade from OLD runs; a kill after each of them is tested.
STEPS = len(MIGRATIONS) - OLD
#: Upgrade bookkeeping: expected to change.
BOOKKEEPING = {"alembic_version", "schema_version"}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(
        tmp_path_factory.mktemp("upgrade"),
        hours=4,
        onset=1,
        grow=2,
        restore=3,
        per_hour=100,
        baseline_days=1,
    )


def _at(hour: int) -> str | None:
    """The scenario's hour as the store writes times."""
    return ts_text(pd.Timestamp("2021-04-09T00:00:00Z") + pd.Timedelta(hours=hour))


def _old_store(url: str, data_dir: Path, scenario: Scenario) -> None:
    """A store at revision OLD holding what that revision could hold: an event, cells and
    baseline measurements ingested by dcm, and rows of the tables the later steps rewrite
    (outages, cell status, event windows) as the older code stored them."""
    db = Database(url)
    try:
        assert migrate(db, revision=revision_id(OLD)) == OLD
        store = Store(db, make_settings(data_dir))
        admin = Principal.system()
        event = store.create_event("e", start=scenario.start, principal=admin)
        for kind, path in (("cells", scenario.cells), ("baseline", scenario.baseline)):
            assert service.ingest(store, "e", path, kind=kind, principal=admin).added
        with db.transaction():
            db.executemany(
                "INSERT INTO outages (event_id, fid, outage_id, window_start, window_end, "
                "network, severity, confidence, geojson) VALUES (:event, :fid, :oid, :start, "
                ":end, 'all', 'outage', :c, :geojson)",
                [
                    {
                        "event": event.id,
                        "fid": f"o{i}@x",
                        "oid": f"o{i}",
                        "c": c,
                        "start": _at(1),
                        "end": _at(2),
                        "geojson": '{"type":"Point","coordinates":[-61.23,13.23]}',
                    }
                    for i, c in enumerate((0.95, 0.7, 0.2, None))
                ],
            )
            db.executemany(
                "INSERT INTO cell_status (event_id, fid, cell, status, start_time, end_time) "
                "VALUES (:e, :f, :c, :s, :t0, :t1)",
                [
                    {"e": event.id, "f": f"c{c}@1", "c": c, "s": s, "t0": _at(1), "t1": _at(2)}
                    for c, s in ((1, "offline"), (2, "online"))
                ],
            )
            db.executemany(
                "INSERT INTO event_windows (event_id, window_start, window_end, dirty) "
                "VALUES (:e, :s, :t, :d)",
                [
                    {
                        "e": event.id,
                        "s": _at(h),
                        "t": _at(h + 1),
                        "d": h % 2,
                    }
                    for h in range(4)
                ],
            )
    finally:
        db.close()


def _tables(db: Database) -> list[str]:
    if db.is_pg:
        sql = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return sorted(name for (name,) in db.query(sql) if name not in BOOKKEEPING)


def _rows(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Every row of every table (only ``columns`` of each table when given), sorted,
    with the store's revision and schema version."""
    db = Database(url)
    try:
        if columns is None:
            columns = {
                t: list(db.execute(f"SELECT * FROM {t} LIMIT 0").keys()) for t in _tables(db)
            }
        rows = {
            table: sorted(
                (
                    tuple(map(repr, row))
                    for row in db.query(f"SELECT {', '.join(cols)} FROM {table}")
                ),
            )
            for table, cols in columns.items()
        }
        version = int(db.scalar("SELECT max(version) FROM schema_version"))
        return {
            "columns": columns,
            "rows": rows,
            "revision": current_revision(db),
            "version": version,
        }
    finally:
        db.close()


def _open_in_subprocess(url: str, data_dir: Path, fault: str) -> int:
    """Open the store (which upgrades it) in a fresh process stopped at ``fault``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env.update(
        DCM_DATA_DIR=str(data_dir),
        DCM_SECRET="test-secret",
        DCM_DATABASE_URL=url,
        **{FAULT_ENV: fault},
    )
    code = (
        "from dcm.settings import Settings\n"
        "from dcm.store import open_store\n"
        "open_store(Settings()).close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    return done.returncode


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nth", range(1, STEPS + 1))
def test_an_upgrade_killed_midway_is_redone_with_every_row_intact(
    backend: str, nth: int, tmp_path: Path, scenario: Scenario
) -> None:
    data_dir = tmp_path / "data"
    with backend_url(backend, tmp_path) as url:
        _old_store(url, data_dir, scenario)
        before = _rows(url)
        assert before["revision"] == revision_id(OLD) and before["version"] == OLD
        assert len(before["rows"]["measurements"]) > 1000 and len(before["rows"]["outages"]) == 4

        # Killed after the nth step of the upgrade (the last one: before its commit).
        _open_in_subprocess(url, data_dir, f"migrate.step_applied@{nth}")
        # One transaction: nothing of the steps that ran is left, not even a column.
        assert _rows(url) == before

        with open_store(make_settings(data_dir), url=url) as store:
            assert current_revision(store.db) == revision_id(MIGRATIONS[-1].number)
            versions = [
                v for (v,) in store.db.query("SELECT version FROM schema_version ORDER BY version")
            ]
            assert versions == [m.number for m in MIGRATIONS]  # each step once
            outages = store.outages("e").sort_values("outage_id")
            status = store.cell_status("e").set_index("cell")
            windows = store.event_windows("e")
        after = _rows(url, before["columns"])
        assert after["rows"] == before["rows"]  # every row as the older revision wrote it
        # ... and the rows the steps rewrite, rewritten once.
        assert outages["tier"].tolist() == ["confirmed"] * 4
        assert outages["certainty"].tolist()[:3] == ["observed", "likely", "possible"]
        assert pd.isna(outages["certainty"].iloc[3])
        assert status.loc[1, "offline_since"] == pd.Timestamp("2021-04-09T01:00:00Z")
        assert pd.isna(status.loc[2, "offline_since"])
        assert windows["dirty"].tolist() == [False, True, False, True]

        # The upgraded store goes on: event rows, an update with outages and alerts.
        admin = Principal.system()
        with open_store(make_settings(data_dir), url=url) as store:
            added = service.ingest(store, "e", scenario.event_slice(0, 4), principal=admin).added
            assert added == 400
            assert service.update(store, "e", principal=admin, full=True).windows
