"""``dcm event``, ``dcm ingest``, ``dcm update`` and ``dcm keys`` against a SQLite store."""

from __future__ import annotations

import hashlib
import json
import pickle
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from dcm.analysis import DetectionParams
from dcm.cli.main import EXIT_NOT_FOUND, EXIT_USER_ERROR

from .livedata import START, run, write_cells, write_measurements


def test_event_ingest_update_flow(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ring = [[-61.3, 13.1], [-61.1, 13.1], [-61.1, 13.4], [-61.3, 13.1]]
    area = json.dumps({"type": "Polygon", "coordinates": [ring]})
    code, out, _ = run(
        [
            "event",
            "create",
            "vincent",
            "--start",
            "2021-04-09T00:00Z",
            "--area",
            area,
            "--description",
            "La Soufrière",
        ],
        capsys,
    )
    assert code == 0 and "event vincent" in out
    code, _, err = run(["event", "create", "vincent", "--start", "2021-04-09"], capsys)
    assert code == EXIT_USER_ERROR and "exists" in err and "Traceback" not in err

    event_file = tmp_path / "event.csv"
    write_measurements(event_file, START, 3, seed=1)
    code, out, _ = run(
        ["ingest", "--event", "vincent", "--licence", "CC-BY-4.0", str(event_file)], capsys
    )
    n_update = 3 + DetectionParams().span_windows  # 3 hours of data + the evidence span
    assert code == 0 and "450 added" in out and f"{n_update} window(s) to update" in out
    code, out, _ = run(["ingest", "--event", "vincent", str(event_file)], capsys)
    assert code == 0 and "already ingested" in out

    code, _, err = run(["update", "--event", "vincent"], capsys)
    assert code == EXIT_USER_ERROR and "no baseline" in err

    baseline = tmp_path / "baseline.csv"
    write_measurements(baseline, START - pd.Timedelta("2D"), 48, seed=2)
    for kind, path in (("baseline", baseline), ("cells", write_cells(tmp_path / "cells.csv"))):
        code, out, _ = run(
            ["ingest", "--event", "vincent", "--kind", kind, "--visibility", "public", str(path)],
            capsys,
        )
        assert code == 0, out
    code, out, _ = run(["update", "--event", "vincent"], capsys)
    assert code == 0 and "3 window(s) 2021-04-09T00:00Z to 2021-04-09T02:00Z recomputed" in out
    code, out, _ = run(["update", "--event", "vincent"], capsys)
    assert code == 0 and "nothing to update" in out
    code, out, _ = run(["update", "--event", "vincent", "--full"], capsys)
    assert code == 0 and "3 window(s)" in out

    code, out, _ = run(["event", "list", "--json"], capsys)
    (listed,) = json.loads(out)
    assert listed["name"] == "vincent" and listed["datasets"] == 3
    assert listed["high_water"].startswith("2021-04-09T02:")
    code, _, err = run(["update", "--event", "nowhere"], capsys)
    assert code == EXIT_NOT_FOUND and "nowhere" in err

    raw = list((data_dir / "raw").iterdir())
    assert len(raw) == 3
    assert hashlib.sha256(event_file.read_bytes()).hexdigest() in {p.name for p in raw}
    with sqlite3.connect(data_dir / "dcm.sqlite") as db:
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
        actors = {r[0] for r in db.execute("SELECT actor FROM audit_log")}
    assert actions.count("dataset.add") == 3 and "event.update" in actions
    assert all(a.startswith("cli:") for a in actors)


def test_keys_commands(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["keys", "create", "--name", "ngo", "--role", "partner"], capsys)
    token = out.strip()
    assert code == 0 and token.startswith("dcm_") and "not shown again" in err
    code, out, _ = run(["keys", "list", "--json"], capsys)
    (key,) = json.loads(out)
    assert key["name"] == "ngo" and key["role"] == "partner" and key["revoked_at"] is None
    assert token not in out and token.startswith(key["prefix"])
    with sqlite3.connect(data_dir / "dcm.sqlite") as db:
        stored = db.execute("SELECT token_sha256 FROM api_keys").fetchone()[0]
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    code, _, err = run(
        ["keys", "create", "--name", "x", "--role", "admin", "--grant", "99"], capsys
    )
    assert code == EXIT_NOT_FOUND and "dataset 99" in err
    code, out, _ = run(["keys", "revoke", "ngo"], capsys)
    assert code == 0 and "revoked" in out
    code, out, _ = run(["keys", "list"], capsys)
    assert "revoked" in out


class _Touch:
    """A pickle payload that creates a file when unpickled (as an attacker's would)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (self.path.touch, ())


def test_update_never_runs_a_pickle_from_the_baseline_cache(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["event", "create", "vincent", "--start", "2021-04-09T00:00Z"], capsys)[0] == 0
    baseline = tmp_path / "baseline.csv"
    write_measurements(baseline, START - pd.Timedelta("2D"), 48, seed=2)
    write_measurements(tmp_path / "event.csv", START, 3, seed=1)
    inputs = {
        "measurements": tmp_path / "event.csv",
        "baseline": baseline,
        "cells": write_cells(tmp_path / "cells.csv"),
    }
    for kind, path in inputs.items():
        code, out, _ = run(["ingest", "--event", "vincent", "--kind", kind, str(path)], capsys)
        assert code == 0, out
    assert run(["update", "--event", "vincent"], capsys)[0] == 0
    marker = tmp_path / "pickle-was-run"
    with sqlite3.connect(data_dir / "dcm.sqlite") as db:
        (key,) = db.execute("SELECT fingerprint FROM baselines").fetchone()
        db.execute("UPDATE baselines SET data = ?", (pickle.dumps(_Touch(marker)),))
    code, out, err = run(["update", "--event", "vincent", "--full"], capsys)
    assert code == 0 and "3 window(s)" in out and "Traceback" not in err
    assert not marker.exists()
    with sqlite3.connect(data_dir / "dcm.sqlite") as db:
        rows = db.execute("SELECT fingerprint, data FROM baselines").fetchall()
    assert [r[0] for r in rows] == [key] and rows[0][1][:2] == b"PK"  # rebuilt as Parquet+JSON
