"""Schema migrations on a new database, on SQLite and PostgreSQL + PostGIS."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from dcm import live
from dcm.errors import StoreError
from dcm.settings import Settings
from dcm.store import Principal, Store, open_store
from dcm.store._db import Database
from dcm.store.migrations import (
    MIGRATIONS,
    SCRIPT_LOCATION,
    TYPES,
    current_revision,
    revision_id,
)

if TYPE_CHECKING:
    from conftest import Scenario

TABLES = (
    "events",
    "event_windows",
    "datasets",
    "measurements",
    "cells",
    "population",
    "areas",
    "hazard",
    "runs",
    "outages",
    "cell_status",
    "grid",
    "hexes",
    "coverage",
    "alerts",
    "api_keys",
    "grants",
    "event_grants",
    "audit_log",
    "schema_version",
)


def _tables(store: Store) -> set[str]:
    if store.backend == "postgresql":
        rows = store.db.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        rows = store.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in rows}


def test_new_database_is_migrated_to_the_last_step(store: Store) -> None:
    from alembic.script import ScriptDirectory

    assert store.schema_version() == MIGRATIONS[-1].number
    # Every step is an alembic revision shipped in the package, the last one applied.
    scripts = ScriptDirectory(str(SCRIPT_LOCATION))
    assert scripts.get_current_head() == revision_id(MIGRATIONS[-1].number)
    assert [r.revision for r in reversed(list(scripts.walk_revisions()))] == [
        revision_id(m.number) for m in MIGRATIONS
    ]
    assert current_revision(store.db) == scripts.get_current_head()
    assert set(TABLES) <= _tables(store)
    steps = store.db.query("SELECT version, description FROM schema_version ORDER BY version")
    assert [s[0] for s in steps] == [m.number for m in MIGRATIONS]
    assert all(s[1] for s in steps)


def test_reopening_applies_nothing_twice(store_url: str, settings: Settings) -> None:
    with open_store(settings, url=store_url) as first:
        applied = first.db.query("SELECT version, applied_at FROM schema_version")
    with open_store(settings, url=store_url) as second:
        assert second.db.query("SELECT version, applied_at FROM schema_version") == applied


def test_spatial_indexes_exist(store: Store) -> None:
    if store.backend == "postgresql":
        rows = store.db.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
        gist = {name for name, definition in rows if "USING gist" in definition}
        assert {"measurements_geom", "outages_geom", "hexes_geom", "areas_geom"} <= gist
        geom_type = store.db.scalar(
            "SELECT type FROM geometry_columns WHERE f_table_schema = current_schema() "
            "AND f_table_name = 'measurements' AND f_geometry_column = 'geom'"
        )
        assert geom_type == "POINT"
    else:
        assert store.db.scalar("PRAGMA journal_mode") == "wal"
        # Measurement points go to an R*Tree per event and visibility when inserted.
        admin = Principal.system()
        event = store.create_event("e", start="2021-04-09T00:00Z", principal=admin)
        dataset = store.add_dataset(
            event.id,
            kind="measurements",
            source="x",
            checksum="c",
            licence=None,
            visibility="partner",
            counts={},
            principal=admin,
        )
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(["2021-04-09T01:00Z"] * 2),
                "lat": [13.2, 13.3],
                "lon": [-61.2, -61.1],
                "status": "ok",
                "measurement_id": ["a", "b"],
            }
        )
        store.insert_measurements(event.id, dataset.id, frame, period="event")
        name = f"measurements_rtree_{event.id}_partner"
        sql = store.db.scalar("SELECT sql FROM sqlite_master WHERE name = :name", {"name": name})
        assert "rtree" in sql.lower()
        assert store.db.scalar(f"SELECT count(*) FROM {name}") == 2


def test_sqlite_file_defaults_to_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "dcm-data")
    with open_store(settings) as store:
        assert store.backend == "sqlite"
    assert (tmp_path / "dcm-data" / "dcm.sqlite").is_file()


def test_bad_urls_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        open_store(Settings(data_dir=tmp_path), url="mysql://x/y")
    with pytest.raises(StoreError):
        open_store(Settings(data_dir=tmp_path), url="postgresql://nobody@127.0.0.1:1/none")


def _store_before_alembic(url: str, settings: Settings, *, last: int) -> Store:
    """A store as dcm wrote it before alembic: migrations 1..``last`` applied in order by
    the former loop (the same DDL), each recorded only in ``schema_version``."""
    db = Database(url)
    with db.transaction():
        db.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT "
            f"NOT NULL, applied_at {TYPES[db.backend]['ts']} NOT NULL)"
        )
        for step in MIGRATIONS[:last]:
            step.apply(db)
            db.execute(
                "INSERT INTO schema_version (version, description, applied_at) "
                "VALUES (:v, :d, '2026-01-01T00:00:00Z')",
                {"v": step.number, "d": step.description},
            )
    return Store(db, settings)


def test_a_store_from_before_alembic_upgrades_in_place(
    store_url: str, settings: Settings, scenario: Scenario
) -> None:
    admin = Principal.system()
    with _store_before_alembic(store_url, settings, last=len(MIGRATIONS)) as old:
        assert old.schema_version() == MIGRATIONS[-1].number
        assert current_revision(old.db) is None
        old.create_event("vincent", start=scenario.start, principal=admin)
        for kind, path in (("cells", scenario.cells), ("baseline", scenario.baseline)):
            live.ingest(old, "vincent", path, kind=kind, principal=admin)
        live.ingest(old, "vincent", scenario.event_slice(0, 10), principal=admin)
        live.update(old, "vincent", principal=admin)
        before = {
            table: old.db.scalar(f"SELECT count(*) FROM {table}")
            for table in ("events", "datasets", "measurements", "cells", "outages", "grid")
        }
        outages = old.outages("vincent")
        windows = old.event_windows("vincent")
    assert before["measurements"] > 0 and before["outages"] > 0
    with open_store(settings, url=store_url) as store:
        assert current_revision(store.db) == revision_id(MIGRATIONS[-1].number)
        versions = store.db.query("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [m.number for m in MIGRATIONS]  # nothing twice
        after = {table: store.db.scalar(f"SELECT count(*) FROM {table}") for table in before}
        assert after == before
        pd.testing.assert_frame_equal(store.outages("vincent"), outages)
        pd.testing.assert_frame_equal(store.event_windows("vincent"), windows)
        # The upgraded store goes on: new rows, an incremental update, a bbox page.
        live.ingest(store, "vincent", scenario.event_slice(10, 12), principal=admin)
        assert live.update(store, "vincent", principal=admin).windows
        page = store.features(
            "measurements", "vincent", bbox=(-61.3, 13.1, -61.1, 13.3), principal=admin
        )
        assert page.number_matched > before["measurements"] // 2


def test_outage_tiers_upgrade_an_existing_store(store_url: str, settings: Settings) -> None:
    from dcm.store import migrations

    step = next(m for m in MIGRATIONS if m.apply is migrations._outage_tiers)
    # A store of the schema before the step (written before alembic), holding outages
    # and a cell status row.
    with _store_before_alembic(store_url, settings, last=step.number - 1) as old:
        event = old.create_event("e", start="2021-04-09T00:00Z", principal=Principal.system())
        assert old.schema_version() == step.number - 1
        rows = [(f"o{i}@x", f"o{i}", c) for i, c in enumerate((0.95, 0.7, 0.2, None))]
        old.db.executemany(
            "INSERT INTO outages (event_id, fid, outage_id, window_start, window_end, "
            "network, severity, confidence, geojson) VALUES (:event, :fid, :oid, :start, "
            ":end, 'all', 'outage', :c, :geojson)",
            [
                {
                    "event": event.id,
                    "fid": fid,
                    "oid": oid,
                    "start": "2021-04-09T00:00:00Z",
                    "end": "2021-04-09T01:00:00Z",
                    "c": c,
                    "geojson": '{"type":"Point","coordinates":[0,0]}',
                }
                for fid, oid, c in rows
            ],
        )
        old.db.execute(
            "INSERT INTO cell_status (event_id, fid, status, start_time, end_time) "
            "VALUES (:event, 'c@x', 'offline', '2021-04-09T00:00:00Z', "
            "'2021-04-09T01:00:00Z')",
            {"event": event.id},
        )
    with open_store(settings, url=store_url) as store:
        assert store.schema_version() == MIGRATIONS[-1].number
        outages = store.outages("e")
        assert outages["tier"].tolist() == ["confirmed"] * 4
        assert outages["certainty"].tolist()[:3] == ["observed", "likely", "possible"]
        assert pd.isna(outages["certainty"].iloc[3])
        status = store.cell_status("e")
        assert len(status) == 1 and np.isnan(status["silence_h_needed"].iloc[0])
        # The upgraded tables take rows of the new contract.
        store.db.execute(
            "UPDATE outages SET tier = 'suspected', certainty = 'possible' WHERE outage_id = 'o3'"
        )
        assert store.outages("e")["tier"].tolist()[3] == "suspected"


def test_offline_since_upgrades_an_existing_store(store_url: str, settings: Settings) -> None:
    from dcm.store import migrations

    step = next(m for m in MIGRATIONS if m.apply is migrations._offline_since)
    with _store_before_alembic(store_url, settings, last=step.number - 1) as old:
        event = old.create_event("e", start="2021-04-09T00:00Z", principal=Principal.system())
        assert old.schema_version() == step.number - 1
        old.db.executemany(
            "INSERT INTO cell_status (event_id, fid, cell, status, start_time, end_time) "
            "VALUES (:e, :f, :c, :s, :t0, :t1)",
            [
                {
                    "e": event.id,
                    "f": "c1@1",
                    "c": 1,
                    "s": "offline",
                    "t0": "2021-04-09T01:00:00Z",
                    "t1": "2021-04-09T02:00:00Z",
                },
                {
                    "e": event.id,
                    "f": "c2@1",
                    "c": 2,
                    "s": "online",
                    "t0": "2021-04-09T01:00:00Z",
                    "t1": "2021-04-09T02:00:00Z",
                },
            ],
        )
    with open_store(settings, url=store_url) as store:
        assert store.schema_version() == MIGRATIONS[-1].number
        status = store.cell_status("e").set_index("cell")
        # Rows stored before get their own window start; online rows none.
        assert status.loc[1, "offline_since"] == pd.Timestamp("2021-04-09T01:00:00Z")
        assert pd.isna(status.loc[2, "offline_since"])
