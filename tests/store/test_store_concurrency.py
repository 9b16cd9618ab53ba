"""Several writers at once: ``dcm ingest`` processes queue for the store and all their
rows are kept; a store that stays busy gives one clear line (CLI) or a 503 (API)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from dcm.cli.main import EXIT_BUSY
from dcm.settings import Settings
from dcm.store import Principal, open_store

from ..api.conftest import running_server
from .conftest import BACKENDS, backend_url

START = pd.Timestamp("2021-04-09T00:00:00Z")
ROWS = 20_000
WRITERS = 3


def _write_file(path: Path, seed: int, rows: int = ROWS) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "timestamp": (START + pd.to_timedelta(rng.uniform(0, 48 * 3600, rows), unit="s"))
            .floor("s")
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": rng.uniform(13.20, 13.26, rows).round(6),
            "lon": rng.uniform(-61.26, -61.20, rows).round(6),
            "status": "ok",
            "mcc": 360,
            "mnc": rng.choice([10, 50], rows),
            "measurement_id": [f"{seed}-{i}" for i in range(rows)],
        }
    ).to_csv(path, index=False)


def _env(data_dir: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env |= {"DCM_DATA_DIR": str(data_dir), "DCM_DATABASE_URL": url, "DCM_SECRET": "s"}
    return env | extra


def _dcm(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dcm.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _create_event(env: dict[str, str]) -> None:
    _, err = (
        process := _dcm("event", "create", "ev", "--start", START.isoformat(), env=env)
    ).communicate(timeout=120)
    assert process.returncode == 0, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_ingests_keep_every_row(tmp_path: Path, backend: str) -> None:
    with backend_url(backend, tmp_path) as url:
        env = _env(tmp_path / "data", url)
        _create_event(env)
        files = []
        for seed in range(WRITERS):
            files.append(tmp_path / f"m{seed}.csv")
            _write_file(files[-1], seed)
        runs = [_dcm("ingest", "--event", "ev", str(f), env=env) for f in files]
        results = [p.communicate(timeout=300) for p in runs]
        for process, (out, err) in zip(runs, results, strict=True):
            assert process.returncode == 0, err
            assert f"{ROWS} added" in out and "Traceback" not in err
        with open_store(Settings(data_dir=tmp_path / "data", secret="s"), url=url) as store:
            assert store.db.scalar("SELECT count(*) FROM measurements") == WRITERS * ROWS
            assert len(store.list_datasets("ev")) == WRITERS


def test_store_that_stays_busy_is_one_line_and_exit_75(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dcm.sqlite'}"
    env = _env(tmp_path / "data", url, DCM_STORE_BUSY_TIMEOUT_S="1")
    _create_event(env)
    _write_file(tmp_path / "m.csv", 0, rows=100)
    holder = sqlite3.connect(tmp_path / "dcm.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
    try:
        busy = _dcm("ingest", "--event", "ev", str(tmp_path / "m.csv"), env=env)
        _, err = busy.communicate(timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.returncode == EXIT_BUSY
    lines = err.strip().splitlines()
    assert lines == [
        "dcm: error: the store is busy: another process has held its write lock for 1 s; try again"
    ], err
    again = _dcm("ingest", "--event", "ev", str(tmp_path / "m.csv"), env=env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "100 added" in out, err


def test_busy_store_is_503_with_retry_after(tmp_path: Path) -> None:
    from dcm.api import create_app
    from dcm.api.errors import RETRY_AFTER_S

    settings = Settings(data_dir=tmp_path, secret="s", store_busy_timeout_s=0.5)
    with open_store(settings) as store:
        store.create_event("ev", start=START, principal=Principal.system())
        _, token = store.create_key("uploader", role="admin", principal=Principal.system())
    holder = sqlite3.connect(tmp_path / "dcm.sqlite", isolation_level=None)
    with running_server(lambda: create_app(settings)) as base:
        holder.execute("BEGIN IMMEDIATE")
        try:
            response = httpx.post(
                f"{base}/events/ev/measurements",
                content=b"timestamp,lat,lon,status\n2021-04-09T01:00:00Z,13.2,-61.2,ok\n",
                headers={"Content-Type": "text/csv", "X-API-Key": token},
                timeout=60,
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert "the store is busy" in response.json()["detail"]
