"""``dcm serve`` as a real subprocess on a free port of 127.0.0.1, for tests that kill,
starve or stall the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def dcm_serve(
    data_dir: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_level: str = "warning",
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``dcm serve --data-dir DATA_DIR ARGS`` (``DCM_`` variables of this process
    dropped, ``env`` added), wait until it answers, yield (base URL, process); stop it
    at the end unless it already died."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    environ |= {"DCM_SECRET": "s", **(env or {})}
    command = ["serve", "--port", str(port), "--log-level", log_level]
    command += ["--data-dir", str(data_dir), *args]
    process = subprocess.Popen(
        [sys.executable, "-m", "dcm.cli.main", *command],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=preexec_fn,
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
        process.communicate(timeout=30)
