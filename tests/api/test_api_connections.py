"""The API holds a bounded number of database connections per process, however many
requests arrive at once: PostgreSQL allows 100 connections by default, and
``dcm serve --workers 3`` runs three processes."""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest

from dcm.api import create_app
from dcm.api.app import API_CONNECTIONS, StorePool
from dcm.settings import Settings

from ..store.conftest import PG_ENV, backend_url
from .conftest import EVENT, running_server

#: Connections one process may hold: those lent to requests, plus the start-up one.
BOUND = API_CONNECTIONS + 1
CONCURRENT = 100


def _tagged(url: str, tag: str) -> str:
    # Other test runs share the database: count only this server's connections.
    return f"{url}&application_name={tag}"


def _connections(tag: str) -> int:
    with psycopg.connect(os.environ[PG_ENV], autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (tag,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_concurrent_requests_keep_connections_bounded(populated) -> None:
    if populated.backend != "postgres":
        pytest.skip("counts PostgreSQL connections")
    tag = f"dcm-conn-{uuid.uuid4().hex[:8]}"
    settings = populated.settings().model_copy(
        update={"database_url": _tagged(populated.database_url, tag)}
    )
    with running_server(lambda: create_app(settings)) as base_url:
        statuses = _all_at_once(base_url, populated.tokens["analyst"])
        held = _connections(tag)
    assert statuses == [200] * CONCURRENT
    assert 1 <= held <= BOUND, f"{held} connections after {CONCURRENT} concurrent requests"
    assert _connections_settle(tag) == 0  # the stopped server left none open


def _connections_settle(tag: str, *, seconds: float = 10.0) -> int:
    """Connections of ``tag`` once the server has gone; the backend notices closed
    sockets a moment after the process ends, so poll briefly."""
    deadline = time.monotonic() + seconds
    while (count := _connections(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return count


def _all_at_once(base_url: str, token: str) -> list[int]:
    """Send CONCURRENT requests together: sync routes that each read the store."""
    paths = [
        "/events",
        f"/collections/{EVENT}-measurements/items?limit=50",
        f"/collections/{EVENT}-cells/items?limit=50",
        f"/collections/{EVENT}-outages/items?limit=50",
    ]
    barrier = threading.Barrier(CONCURRENT)

    def get(i: int) -> int:
        with httpx.Client(base_url=base_url, timeout=120, headers={"X-API-Key": token}) as client:
            barrier.wait(timeout=60)
            return client.get(paths[i % len(paths)]).status_code

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(get, range(CONCURRENT)))


@pytest.mark.postgres
def test_pool_lends_stores_to_requests_not_threads(tmp_path: Path) -> None:
    tag = f"dcm-pool-{uuid.uuid4().hex[:8]}"
    with backend_url("postgres", tmp_path) as base:
        url = _tagged(base, tag)
        pool = StorePool(Settings(data_dir=tmp_path, database_url=url, secret="s"), size=3)
        seen: list[bool] = []

        def connection() -> object:
            assert pool.list_events() == []
            return pool.db.connection

        async def request() -> None:
            async with pool.lease():
                on_thread = await anyio.to_thread.run_sync(connection)
                await anyio.sleep(0.01)  # others run meanwhile
                # One connection for the whole request, whichever thread queries.
                seen.append(connection() is on_thread)

        async def many() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(30):
                    group.start_soon(request)

        try:
            anyio.run(many)
            assert seen == [True] * 30
            assert 1 <= _connections(tag) <= 3
        finally:
            pool.close()
        assert _connections_settle(tag) == 0
