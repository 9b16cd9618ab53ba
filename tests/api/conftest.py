"""Fixtures of the API tests: a real uvicorn server on a free loopback port, and a
populated store on each backend.

The server runs in a forked child process, not a thread: GDAL (through pyogrio) holds
the GIL while it fetches pages, which would starve a server thread in the same process.
The app is built in the child by a factory, so no database handle crosses the fork.

The populated store is parametrised like the store tests' (``tests/store/conftest.py``):
SQLite, and PostgreSQL + PostGIS in a throw-away schema of ``DCM_TEST_POSTGRES_URL``
(marked ``postgres``; skips when the variable is unset).
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

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI

from dcm.settings import Settings

from ..store.conftest import BACKENDS, backend_url

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


@contextmanager
def key_clients(base_url: str, tokens: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    """One HTTP client per API key name (``tokens``: name -> key), plus ``anonymous``."""
    made = {"anonymous": httpx.Client(base_url=base_url, timeout=60)}
    for name, token in tokens.items():
        made[name] = httpx.Client(base_url=base_url, timeout=60, headers={"X-API-Key": token})
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


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
    """A store holding the St Vincent sample event, computed, with API keys.

    Event measurements arrive in two slices (``-1``, ``-2``), each split by line into a
    ``public-N`` and a ``restricted-N`` dataset; the baseline is restricted.
    ``backend`` is ``sqlite`` or ``postgres``; ``database_url`` names the store and
    ``data_dir`` holds raw uploads. ``tokens`` maps key names to clear API keys.
    """

    backend: str
    data_dir: Path
    database_url: str
    datasets: dict[str, int]
    tokens: dict[str, str]

    def settings(self) -> Settings:
        return api_settings(self.data_dir, database_url=self.database_url)


def api_settings(data_dir: Path, *, database_url: str | None = None) -> Settings:
    """Test settings: the store at ``database_url`` (default: SQLite in ``data_dir``), a
    fixed secret, low alert thresholds."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite:///{data_dir / 'dcm.sqlite'}",
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


def _populate(
    settings: Settings, files: Path, slices: dict[str, Path]
) -> tuple[dict[str, int], dict[str, str]]:
    """Ingest the sample event into the store of ``settings``, update it after each
    slice and create the API keys of ``KEYS``; return dataset ids and clear tokens."""
    from dcm import live
    from dcm.store import Principal, open_store

    admin = Principal.system()
    datasets: dict[str, int] = {}
    tokens: dict[str, str] = {}
    with open_store(settings) as store:
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
    return datasets, tokens


@contextmanager
def populated_store(backend: str, folder: Path, files: Path) -> Iterator[Populated]:
    """The sample event in ``files`` ingested, updated and keyed in a new store on
    ``backend`` under ``folder`` (a PostgreSQL schema is dropped on exit)."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    slices = _split_event(files / "event.csv.gz", folder)
    with backend_url(backend, data_dir) as url:
        settings = api_settings(data_dir, database_url=url)
        datasets, tokens = _populate(settings, files, slices)
        yield Populated(backend, data_dir, url, datasets, tokens)


@contextmanager
def populated_copy(populated: Populated, folder: Path, files: Path) -> Iterator[Populated]:
    """A store like ``populated`` for a module that writes: a copy of the SQLite data
    directory, or on PostgreSQL the same event built again in a new schema."""
    if populated.backend != "sqlite":
        with populated_store(populated.backend, folder, files) as store:
            yield store
        return
    data_dir = folder / "data"
    shutil.copytree(populated.data_dir, data_dir)
    yield dataclasses.replace(
        populated, data_dir=data_dir, database_url=api_settings(data_dir).resolved_database_url()
    )


@pytest.fixture(scope="session", params=BACKENDS)
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_data: Path
) -> Iterator[Populated]:
    """The sample event ingested, updated and keyed once per test session and backend."""
    folder = tmp_path_factory.mktemp(f"populated-{request.param}")
    with populated_store(request.param, folder, sample_data / "stvincent") as store:
        yield store
