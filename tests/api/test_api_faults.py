"""``dcm serve`` killed with SIGKILL in the middle of storing an upload: the client's retry
stores every row (the dataset record and its rows are one transaction)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from dcm.settings import Settings
from dcm.store import Principal, open_store
from dcm.store.faults import FAULT_ENV

from ..store.conftest import BACKENDS, backend_url

ROWS = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(data_dir: Path, url: str, fault: str | None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``dcm serve`` in a subprocess (uvicorn), with ``DCM_FAULT_POINT`` = ``fault``."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env["DCM_SECRET"] = "s"
    if fault:
        env[FAULT_ENV] = fault
    args = ["serve", "--port", str(port), "--log-level", "warning"]
    args += ["--data-dir", str(data_dir), "--database-url", url]
    process = subprocess.Popen(
        [sys.executable, "-m", "dcm.cli.main", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/conformance", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time.monotonic() < deadline, "dcm serve did not start"
                time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=20)


def _upload_body() -> bytes:
    rng = np.random.default_rng(3)
    ts = pd.Timestamp("2021-04-09T00:00:00Z") + pd.to_timedelta(
        rng.integers(0, 6 * 3600, ROWS), unit="s"
    )
    frame = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": rng.uniform(13.20, 13.26, ROWS).round(6),
            "lon": rng.uniform(-61.26, -61.20, ROWS).round(6),
            "status": "ok",
            "mcc": 360,
            "mnc": rng.choice([10, 50], ROWS),
            "measurement_id": [f"u{i}" for i in range(ROWS)],
        }
    )
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_upload_cut_by_a_server_crash_is_stored_whole_on_retry(
    backend: str, tmp_path: Path
) -> None:
    with backend_url(backend, tmp_path) as url:
        data_dir = tmp_path / "data"
        with open_store(Settings(data_dir=data_dir, secret="s"), url=url) as store:
            admin = Principal.system()
            store.create_event("quake", start="2021-04-09T00:00:00Z", principal=admin)
            _, token = store.create_key("uploader", role="partner", principal=admin)
        body = _upload_body()
        request = {
            "url": "/events/quake/measurements",
            "content": body,
            "headers": {"Content-Type": "text/csv", "X-API-Key": token},
            "params": {"name": "hour.csv"},
        }
        with serving(data_dir, url, fault="ingest.rows_inserted") as (base, process):
            with (
                httpx.Client(base_url=base, timeout=120) as client,
                pytest.raises(httpx.TransportError),
            ):
                client.post(**request)
            assert process.wait(timeout=30) == -signal.SIGKILL
        with (
            serving(data_dir, url, fault=None) as (base, _),
            httpx.Client(base_url=base, timeout=120) as client,
        ):
            retry = client.post(**request)
            assert retry.status_code == 201, retry.text
            assert retry.json()["new"] is True and retry.json()["added"] == ROWS
            again = client.post(**request)
            assert again.status_code == 200 and again.json()["added"] == 0
        with open_store(Settings(data_dir=data_dir, secret="s"), url=url) as store:
            assert len(store.measurements("quake", period="event")) == ROWS
            assert len(store.list_datasets("quake")) == 1
