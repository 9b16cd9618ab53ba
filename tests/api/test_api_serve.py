"""``dcm serve`` starts uvicorn with create_app and settings from DCM_ variables."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..store.conftest import BACKENDS, backend_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_dcm_serve_answers_on_loopback(tmp_path: Path, backend: str) -> None:
    if backend == "sqlite":  # the default store: a SQLite file in the data folder
        _serve_and_check(tmp_path / "data", None)
        assert (tmp_path / "data" / "dcm.sqlite").is_file()
        return
    with backend_url(backend, tmp_path) as url:
        _serve_and_check(tmp_path / "data", url)
        from dcm.settings import Settings
        from dcm.store import open_store

        settings = Settings(data_dir=tmp_path / "data", secret="s")
        with open_store(settings, url=url) as store:  # the server migrated this schema
            assert store.db.is_pg and store.list_events() == []
        assert not (tmp_path / "data" / "dcm.sqlite").exists()


def _serve_and_check(data_dir: Path, database_url: str | None) -> None:
    """Start ``dcm serve`` on a free port and check that it answers, then stop it."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env["DCM_SECRET"] = "s"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dcm.cli.main",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--data-dir",
            str(data_dir),
            *(["--database-url", database_url] if database_url else []),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time.monotonic() < deadline, "dcm serve did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["conformsTo"]
        assert httpx.get(f"http://127.0.0.1:{port}/events").json()["events"] == []
    finally:
        process.terminate()
        process.communicate(timeout=20)
