"""``dcm serve`` starts uvicorn with create_app and settings from DCM_ variables."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dcm_serve_answers_on_loopback(tmp_path: Path) -> None:
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
            str(tmp_path / "data"),
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
        assert (tmp_path / "data" / "dcm.sqlite").is_file()
    finally:
        process.terminate()
        process.communicate(timeout=20)
