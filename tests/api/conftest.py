"""Fixtures of the API tests: a real uvicorn server on a free loopback port.

The server runs in a forked child process, not a thread: GDAL (through pyogrio) holds
the GIL while it fetches pages, which would starve a server thread in the same process.
The app is built in the child by a factory, so no database handle crosses the fork.
"""

from __future__ import annotations

import dataclasses
import gzip
import multiprocessing
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI

from dcm.settings import Settings

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
    with warnings.catch_warnings():
        # Python >= 3.12 warns about forking with threads; the child only runs uvicorn.
        warnings.simplefilter("ignore", DeprecationWarning)
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


# -- a populated store -----------------------------------------------------------------------

EVENT = "stvincent"
EVENT_START = "2021-04-09T12:41:00Z"
#: Event measurements up to this time are loaded (a day and a half) so building the store
#: stays quick; they arrive in two slices split here, each followed by an update: the
#: first ends while outages are on (CAP Alerts), the second after they end (Cancels).
EVENT_SPLIT = "2021-04-10T08:30:00Z"
EVENT_CUTOFF = "2021-04-11T00:41:00Z"
KEYS = {  # name -> (role, granted dataset labels)
    "viewer": ("viewer", ()),
    "granted": ("viewer", ("restricted-1", "restricted-2", "baseline")),
    "partner": ("partner", ()),
    "analyst": ("analyst", ()),
}


@dataclass(frozen=True)
class Populated:
    """A data directory holding the St Vincent sample event, computed, with API keys.

    Event measurements arrive in two slices (``-1``, ``-2``), each split by line into a
    ``public-N`` and a ``restricted-N`` dataset; the baseline is restricted.
    ``tokens`` maps key names to clear API keys.
    """

    data_dir: Path
    datasets: dict[str, int]
    tokens: dict[str, str]

    def settings(self, data_dir: Path | None = None) -> Settings:
        return api_settings(data_dir or self.data_dir)

    def copy(self, target: Path) -> Populated:
        """The same store in ``target`` (for modules that write)."""
        shutil.copytree(self.data_dir, target)
        return dataclasses.replace(self, data_dir=target)


def api_settings(data_dir: Path) -> Settings:
    """Test settings: the store in ``data_dir``, a fixed secret, low alert thresholds."""
    return Settings(
        data_dir=data_dir,
        secret="api-test-secret",
        k_anonymity=3,
        alert_min_population=0.0,
        alert_min_area_km2=0.2,
        alert_min_confidence=0.5,
    )


def _split_event(source: Path, folder: Path) -> dict[str, Path]:
    """Event lines in two time slices (before and after ``EVENT_SPLIT``, up to the
    cut-off), each split alternately into a public and a restricted CSV."""
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        header, *lines = fh.read().splitlines()
    slices = {
        "1": [line for line in lines if line[:20] < EVENT_SPLIT],
        "2": [line for line in lines if EVENT_SPLIT <= line[:20] < EVENT_CUTOFF],
    }
    paths = {}
    for step, kept in slices.items():
        for label, part in (("public", kept[0::2]), ("restricted", kept[1::2])):
            path = paths[f"{label}-{step}"] = folder / f"event_{label}_{step}.csv"
            path.write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
    return paths


@pytest.fixture(scope="session")
def populated(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Populated:
    """The sample event ingested, updated and keyed once per test session."""
    from dcm import live
    from dcm.store import Principal, open_store

    folder = tmp_path_factory.mktemp("populated")
    files = sample_data / "stvincent"
    slices = _split_event(files / "event.csv.gz", folder)
    admin = Principal.system()
    data_dir = folder / "data"
    datasets: dict[str, int] = {}
    tokens: dict[str, str] = {}
    with open_store(api_settings(data_dir)) as store:
        store.create_event(EVENT, start=EVENT_START, principal=admin)
        for label, kind, path, visibility in (
            ("cells", "cells", files / "cells.csv.gz", "public"),
            ("baseline", "baseline", files / "baseline.csv.gz", "restricted"),
            ("areas", "areas", files / "areas.geojson", "public"),
            ("hazard", "hazard", files / "hazard.geojson", "public"),
            ("population", "population", files / "population.tif", "public"),
        ):
            outcome = live.ingest(
                store, EVENT, path, kind=kind, visibility=visibility, principal=admin
            )
            datasets[label] = outcome.dataset.id
        for step, now in (("1", EVENT_SPLIT), ("2", EVENT_CUTOFF)):
            for visibility in ("public", "restricted"):
                label = f"{visibility}-{step}"
                outcome = live.ingest(
                    store, EVENT, slices[label], visibility=visibility, principal=admin
                )
                datasets[label] = outcome.dataset.id
            live.update(store, EVENT, principal=admin, now=pd.Timestamp(now))
        for name, (role, granted) in KEYS.items():
            _, tokens[name] = store.create_key(
                name, role=role, grants=[datasets[g] for g in granted], principal=admin
            )
    return Populated(data_dir=data_dir, datasets=datasets, tokens=tokens)
