"""A full disk under PostgreSQL: the store's tables live in a tablespace on a small tmpfs
the test mounts, which fills half-way through an ingest. The ingest fails with one clear
line and stores nothing; once there is room, the retry stores the whole file.

Needs root (to mount the tmpfs and to create the tablespace as the ``postgres`` superuser
through ``runuser``) and a PostgreSQL server on this machine; skips otherwise. Only the
tablespace fills: the server's own disk (its WAL) keeps room, as when a data volume fills.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from dcm import service
from dcm.errors import StoreError
from dcm.store import Principal, open_store

from .conftest import PG_ENV, Scenario, build_scenario, make_settings

pytestmark = pytest.mark.postgres

EVENT = "full"
_PSQL = ("runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1")


def _admin_sql(port: int, database: str, sql: str) -> None:
    """Run ``sql`` as the PostgreSQL superuser (peer authentication over the socket)."""
    done = subprocess.run(
        [*_PSQL, "-p", str(port), "-d", database, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip())


def _remount(folder: Path, size: int) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True
    )


@contextmanager
def small_disk_store(base: str) -> Iterator[tuple[str, Path]]:
    """URL of an empty store whose tables and indexes live on a tmpfs of its own (and
    the tmpfs, resizable with :func:`_remount`)."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root: mounts a tmpfs and creates a tablespace")
    parts = urlsplit(base)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the PostgreSQL server is not on this machine")
    port, database = parts.port or 5432, parts.path.lstrip("/")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user")
    folder = Path(tempfile.mkdtemp(prefix="dcm-pg-full-"))
    tag = uuid.uuid4().hex[:10]
    space, schema, role = f"full_{tag}", f"t_{tag}", parts.username
    options = f"uid={owner.pw_uid},gid={owner.pw_gid},mode=0700,size={64 * 1024**2}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        try:
            _admin_sql(
                port, database, f"CREATE TABLESPACE {space} OWNER {role} LOCATION '{folder}'"
            )
        except RuntimeError as exc:
            pytest.skip(f"cannot create a tablespace as postgres: {exc}")
        try:
            _admin_sql(port, database, f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
            settings = quote(f"-csearch_path={schema},public -cdefault_tablespace={space}")
            sep = "&" if "?" in base else "?"
            yield f"{base}{sep}options={settings}", folder
        finally:
            _admin_sql(port, database, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            _admin_sql(port, database, f"DROP TABLESPACE {space}")
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)
        folder.rmdir()


def _used(folder: Path) -> int:
    stats = os.statvfs(folder)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(
        tmp_path_factory.mktemp("full"),
        hours=12,
        onset=3,
        grow=6,
        restore=9,
        per_hour=2000,
        baseline_days=1,
    )


def test_a_full_postgresql_disk_rolls_the_whole_ingest_back(
    scenario: Scenario, tmp_path: Path
) -> None:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    admin = Principal.system()
    settings = make_settings(tmp_path / "data")
    event_file = scenario.event_slice(0, 12, "event.csv")
    with small_disk_store(base) as (url, folder), open_store(settings, url=url) as store:
        assert store.backend == "postgresql"
        store.create_event(EVENT, start=scenario.start, principal=admin)
        service.ingest(store, EVENT, scenario.cells, kind="cells", principal=admin)
        service.ingest(store, EVENT, scenario.baseline, kind="baseline", principal=admin)
        # Room for a few more pages only: the event rows (24,000) do not fit.
        _remount(folder, _used(folder) + 256 * 1024)
        with pytest.raises(StoreError) as caught:
            service.ingest(store, EVENT, event_file, principal=admin)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith("the disk holding the PostgreSQL database is full")
        assert "No space left on device" in message
        # Nothing of it: no dataset, no rows, no dirty window, no clock.
        assert [d.kind for d in store.list_datasets(EVENT)] == ["cells", "baseline"]
        assert store.time_range(EVENT)[0] is None
        assert store.get_event(EVENT).high_water is None
        assert store.event_windows(EVENT).empty

        _remount(folder, 64 * 1024**2)
        again = service.ingest(store, EVENT, event_file, principal=admin)
        assert again.new and again.added == len(scenario.event)
        assert len(store.measurements(EVENT, period="event")) == len(scenario.event)
        assert service.update(store, EVENT, principal=admin).windows
