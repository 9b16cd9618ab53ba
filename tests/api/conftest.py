"""Fixtures of the API tests: a real uvicorn server on a free loopback port.

The server runs in a forked child process, not a thread: GDAL (through pyogrio) holds
the GIL while it fetches pages, which would starve a server thread in the same process.
The app is built in the child by a factory, so no database handle crosses the fork.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI

AppFactory = Callable[[], FastAPI]


def _serve(factory: AppFactory, sock: socket.socket) -> None:
    config = uvicorn.Config(factory(), log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def running_server(factory: AppFactory) -> Iterator[str]:
    """Serve ``factory()`` on 127.0.0.1:<free port> in a child process; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    process = multiprocessing.get_context("fork").Process(
        target=_serve, args=(factory, sock), daemon=True
    )
    process.start()
    sock.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if not process.is_alive() or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the test server did not start") from None
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[[AppFactory], str]]:
    """Start servers for app factories within a module; all stop when the module ends."""
    managers: list = []

    def start(factory: AppFactory) -> str:
        manager = running_server(factory)
        url = manager.__enter__()
        managers.append(manager)
        return url

    yield start
    for manager in reversed(managers):
        manager.__exit__(None, None, None)
