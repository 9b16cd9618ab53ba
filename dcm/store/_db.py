"""The store's database: a SQLAlchemy Core engine over SQLite or PostgreSQL (psycopg).

Statements are written once, with named ``:name`` parameters bound by
:func:`sqlalchemy.text`, in the common subset of SQL that both engines share
(``INSERT … ON CONFLICT DO NOTHING``, ``RETURNING``). Timestamps are written as
fixed-width ISO 8601 UTC text, which sorts correctly in SQLite's TEXT columns and which
PostgreSQL casts to timestamptz.

Connections come from the engine's pool. A :class:`Database` lends the calling thread
one connection until :meth:`Database.release`; inside :meth:`Database.bound` (one API
request) the code uses the connection of that binding, on whichever thread it runs.
Outside a transaction each statement commits on its own (SQLite's own autocommit, DBAPI
autocommit on PostgreSQL); :meth:`Database.transaction` opens one (``BEGIN IMMEDIATE``
on SQLite, so writers queue at its start), and a nested call opens a SAVEPOINT.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import pool as sa_pool

from dcm.errors import StoreBusy, StoreError

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
FID_FORMAT = "%Y%m%dT%H%M%SZ"

#: How long a SQLite writer waits in all for another one to finish before giving up with
#: :class:`StoreBusy` (``Settings.store_busy_timeout_s`` sets it per installation).
BUSY_TIMEOUT_S = 120.0
#: SQLite waits this long inside one attempt (its busy handler); between attempts dcm
#: sleeps a little, so a writer that SQLite refuses at once (a stale snapshot) is retried too.
_BUSY_SLICE_MS = 2000
#: SQLite primary result codes: another connection holds the lock; the disk is full.
_SQLITE_BUSY = (5, 6)
_SQLITE_FULL = 13
#: Extended result codes of a UNIQUE or PRIMARY KEY violation (SQLite); SQLSTATE (PostgreSQL).
_SQLITE_UNIQUE = (2067, 1555)
_PG_UNIQUE = "23505"
#: PostgreSQL's disk_full: a table or index file of the store could not grow.
_PG_DISK_FULL = "53100"

Params = Mapping[str, Any]


def ts_text(value: pd.Timestamp | datetime | str | None) -> str | None:
    """One timestamp as fixed-width UTC text (naive input is taken as UTC)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime(TS_FORMAT)


def ts_column(values: pd.Series) -> list[str | None]:
    """A timestamp column as fixed-width UTC text (vectorised), None for missing."""
    ts = pd.to_datetime(values, utc=True)
    text = ts.dt.strftime(TS_FORMAT)
    return [None if v is None or v is pd.NA or (isinstance(v, float)) else v for v in text]


def fid_times(values: pd.Series) -> list[str]:
    """Compact UTC times (``20210409T120000Z``) used inside feature ids."""
    return list(pd.to_datetime(values, utc=True).dt.strftime(FID_FORMAT))


def to_utc(values: Any) -> pd.Series:
    """Timestamps read back from either backend (text or datetime) as UTC ``datetime64``."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    nonnull = series.dropna()
    if pd.api.types.is_integer_dtype(series.dtype):  # epoch microseconds (ts_select)
        return pd.to_datetime(series, unit="us", utc=True).astype("datetime64[ns, UTC]")
    if not nonnull.empty and isinstance(nonnull.iloc[0], str):
        out = pd.to_datetime(series, utc=True, format="ISO8601")
    else:
        out = pd.to_datetime(series, utc=True)
    return out.astype("datetime64[ns, UTC]")


def to_ts(value: Any) -> pd.Timestamp | None:
    """One timestamp read back from either backend."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def py_value(value: Any) -> Any:
    """A numpy/pandas scalar as a plain Python value both drivers accept."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def frame_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``frame[columns]`` as parameter dicts of plain Python values (NA → None)."""
    return [dict(zip(columns, row, strict=True)) for row in frame_rows(frame, columns)]


def placeholders(columns: Sequence[str]) -> str:
    """``:a, :b, …``: the named parameters of an INSERT of ``columns``."""
    return ", ".join(f":{c}" for c in columns)


def frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Rows of ``frame[columns]`` as tuples of plain Python values (NA → None)."""
    if frame.empty:
        return []
    lists = []
    for col in columns:
        series = frame[col]
        values = series.tolist()  # plain Python scalars for numpy and nullable dtypes
        if series.hasnans or series.dtype == object:
            values = [py_value(v) for v in values]
        lists.append(values)
    return list(zip(*lists, strict=True))


class _Binding:
    """One connection checked out of the pool, and how deep its transactions are."""

    __slots__ = ("conn", "depth", "usable")

    def __init__(self) -> None:
        self.conn: sa.Connection | None = None
        self.depth = 0
        self.usable = True


def _engine(url: str, *, busy_timeout_s: float, pool_size: int, max_overflow: int) -> sa.Engine:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///path/to/file.sqlite")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        slice_ms = int(min(_BUSY_SLICE_MS, busy_timeout_s * 1000))
        engine = sa.create_engine(
            sa.URL.create("sqlite", database=path),
            # Transactions are begun by dcm (BEGIN IMMEDIATE), not by the driver.
            connect_args={
                "check_same_thread": False,
                "timeout": slice_ms / 1000,
                "isolation_level": None,
            },
            poolclass=sa_pool.StaticPool if path == ":memory:" else sa_pool.QueuePool,
            **(
                {} if path == ":memory:" else {"pool_size": pool_size, "max_overflow": max_overflow}
            ),
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Write-ahead log: readers never wait for the writer, and writers queue behind
            # one another (busy handler plus dcm's bounded retry) instead of failing.
            dbapi_conn.execute(f"PRAGMA busy_timeout={slice_ms}")
            _retry_busy(lambda: dbapi_conn.execute("PRAGMA journal_mode=WAL"), busy_timeout_s)
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA foreign_keys=ON")
            dbapi_conn.execute("PRAGMA cache_size=-65536")

        return engine
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        sa_url = sa.make_url(url).set(drivername="postgresql+psycopg")
        return sa.create_engine(
            sa_url,
            poolclass=sa_pool.QueuePool,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
    raise StoreError(f"unsupported database URL {url!r} (sqlite:/// or postgresql://)")


class Database:
    """A SQLAlchemy engine (and its pool) with execute/query/transaction for the store."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        pool_size: int = 5,
        max_overflow: int = 10,
    ) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.engine = _engine(
            url, busy_timeout_s=busy_timeout_s, pool_size=pool_size, max_overflow=max_overflow
        )
        self.backend = "postgresql" if self.engine.dialect.name == "postgresql" else "sqlite"
        self.path: str | None = None if self.is_pg else self.engine.url.database
        self._bound: ContextVar[_Binding | None] = ContextVar(f"dcm_db_{id(self)}", default=None)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._thread_bindings: list[_Binding] = []
        try:
            self.release(self._binding(connect=True))  # fail now on a bad URL or file
        except StoreError:
            self.engine.dispose()
            raise

    @property
    def is_pg(self) -> bool:
        return self.backend == "postgresql"

    # -- connections ---------------------------------------------------------------------
    def _binding(self, *, connect: bool = True) -> _Binding:
        binding = self._bound.get()
        if binding is None:
            binding = getattr(self._local, "binding", None)
            if binding is None:
                binding = self._local.binding = _Binding()
                with self._lock:
                    self._thread_bindings.append(binding)
        if not binding.usable:  # a bug: the request gave its connection back and still queries
            raise RuntimeError("the store was used by a request that holds no connection")
        if connect and binding.conn is None:
            binding.conn = self._connect()
        return binding

    def _connect(self) -> sa.Connection:
        try:
            conn = self.engine.connect()
        except sa_exc.DBAPIError as exc:
            error = _store_error(exc, "connect", self)
            if type(error) is StoreError:
                where = (
                    f"open SQLite database {self.path}" if self.path else "connect to PostgreSQL"
                )
                error = StoreError(f"cannot {where}: {_first_line(exc.orig)}")
            raise error from exc
        if self.is_pg:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    @property
    def connection(self) -> sa.Connection:
        """The connection of the current binding (checked out of the pool when first used)."""
        conn = self._binding().conn
        assert conn is not None
        return conn

    @contextmanager
    def bound(self) -> Iterator[_Binding]:
        """Run the code inside with a connection of its own (one API request), given back
        to the pool at the end or by :meth:`release`."""
        binding = _Binding()
        token = self._bound.set(binding)
        try:
            yield binding
        finally:
            self._bound.reset(token)
            self.release(binding)

    def release(self, binding: _Binding | None = None, *, usable: bool = True) -> None:
        """Give the connection of ``binding`` (the current one by default) back to the
        pool; with ``usable=False`` the binding refuses further use until reopened."""
        binding = binding if binding is not None else self._binding(connect=False)
        binding.usable = usable
        conn, binding.conn = binding.conn, None
        if conn is not None:
            binding.depth = 0
            conn.close()

    def close(self) -> None:
        """Give back every connection and close the pool."""
        with self._lock:
            bindings, self._thread_bindings = self._thread_bindings, []
        for binding in bindings:
            self.release(binding)
        self._local = threading.local()
        self.engine.dispose()

    # -- statements ----------------------------------------------------------------------
    def _run(self, sql: str, params: Params | Sequence[Params] | None) -> sa.CursorResult[Any]:
        binding = self._binding()
        conn = binding.conn
        assert conn is not None
        lists: tuple[str, ...] = ()
        if isinstance(params, Mapping):
            # A list or tuple value is an ``IN :name`` list (one parameter per item).
            lists = tuple(k for k, v in params.items() if isinstance(v, list | tuple))
        statement = _text(sql, lists)
        try:
            if binding.depth:
                return conn.execute(statement, params)
            if self.is_pg:  # DBAPI autocommit: the statement commits on its own
                result = conn.execute(statement, params)
                conn.commit()
                return result

            def once() -> sa.CursorResult[Any]:
                try:
                    return conn.execute(statement, params)
                except sa_exc.OperationalError:
                    conn.rollback()
                    raise

            result = self._retry(once)
            conn.commit()  # ends SQLAlchemy's bookkeeping: SQLite committed already
            return result
        except sa_exc.DBAPIError as exc:
            raise _store_error(exc, sql, self) from exc

    def execute(self, sql: str, params: Params | None = None) -> sa.CursorResult[Any]:
        """Run one statement with named ``:parameters``; returns its result.

        On SQLite a statement outside a transaction that finds the store locked by
        another writer is retried (one statement is atomic, so retrying is safe) until
        ``busy_timeout_s`` has passed, then :class:`StoreBusy` is raised.
        """
        return self._run(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement for each parameter dict of ``rows``, all or none."""
        rows = list(rows)
        if not rows:
            return
        with self.transaction():
            self._run(sql, rows)

    def _retry(self, run: Any) -> Any:
        return _retry_busy(run, self.busy_timeout_s)

    def ts_select(self, column: str) -> str:
        """A SELECT expression for a timestamp column that :func:`to_utc` reads fast:
        the text itself on SQLite, epoch microseconds on PostgreSQL (no per-row
        datetime objects in the driver)."""
        if self.is_pg:
            return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint AS {column}"
        return column

    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows (tuples in ``columns`` order), skipping those that hit a
        unique constraint.

        Both go to the driver directly, like COPY, past SQLAlchemy's per-row parameter
        handling: PostgreSQL streams them with COPY into a temporary table first (an
        order of magnitude faster than row-wise inserts); SQLite inserts the tuples
        row-wise in C (its own ``?`` parameters, written here for SQLite only).
        """
        if not rows:
            return
        cols = ", ".join(columns)
        if not self.is_pg:
            sql = (
                f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))}) "
                "ON CONFLICT DO NOTHING"
            )
            with self.transaction():
                cursor = self.connection.connection.cursor()
                try:
                    cursor.executemany(sql, rows)
                except sqlite3.Error as exc:
                    wrapped = sa_exc.DBAPIError.instance(sql, None, exc, sqlite3.Error)
                    raise _store_error(wrapped, sql, self) from exc
                finally:
                    cursor.close()
            return
        import psycopg

        with self.transaction():
            try:
                with self.connection.connection.cursor() as cur:
                    # Column types only, no constraints: the real table checks them below.
                    cur.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS _bulk_{table} ON COMMIT DELETE ROWS "
                        f"AS SELECT {cols} FROM {table} WITH NO DATA"
                    )
                    with cur.copy(f"COPY _bulk_{table} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    cur.execute(
                        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _bulk_{table} "
                        "ON CONFLICT DO NOTHING"
                    )
                    # Emptied now, not only at commit: the next call of the same
                    # transaction (the next batch of one dataset) must not copy these again.
                    cur.execute(f"TRUNCATE _bulk_{table}")
            except psycopg.Error as exc:
                wrapped = sa_exc.DBAPIError.instance(f"COPY {table}", None, exc, psycopg.Error)
                raise _store_error(wrapped, f"COPY {table}", self) from exc

    def script(self, statements: Iterable[str]) -> None:
        """Run DDL statements (no parameters) one by one, inside the caller's transaction."""
        conn = self.connection
        for statement in statements:
            if statement.strip():
                try:
                    conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
                except sa_exc.DBAPIError as exc:
                    raise _store_error(exc, statement, self) from exc

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._run(sql, params).fetchall()]

    def one(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        row = self._run(sql, params).first()
        return tuple(row) if row is not None else None

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def frame(self, sql: str, params: Params | None = None) -> pd.DataFrame:
        result = self._run(sql, params)
        columns = list(result.keys())
        return pd.DataFrame.from_records(result.fetchall(), columns=columns)

    def _driver_in_transaction(self, conn: sa.Connection) -> bool:
        if self.is_pg:
            return True
        return bool(conn.connection.driver_connection.in_transaction)  # type: ignore[union-attr]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; a nested call runs in a SAVEPOINT of the outer one."""
        binding = self._binding()
        conn = binding.conn
        assert conn is not None
        if binding.depth:
            binding.depth += 1
            try:
                savepoint = conn.begin_nested()
                try:
                    yield
                except BaseException:
                    # SQLite rolls the whole transaction back itself on some errors (a
                    # full disk): then there is no savepoint left to return to.
                    if savepoint.is_active and self._driver_in_transaction(conn):
                        savepoint.rollback()
                    raise
                savepoint.commit()
            except sa_exc.DBAPIError as exc:
                raise _store_error(exc, "SAVEPOINT", self) from exc
            finally:
                binding.depth -= 1
            return
        if conn.in_transaction():
            conn.commit()
        if self.is_pg:
            conn.execution_options(isolation_level=conn.default_isolation_level)
        binding.depth = 1
        try:
            trans = conn.begin()
            if not self.is_pg:
                # IMMEDIATE: take the write lock now, so two writers queue here rather
                # than one failing half-way when it first writes.
                try:
                    self._retry(lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"))
                except sa_exc.DBAPIError as exc:
                    trans.rollback()
                    raise _store_error(exc, "BEGIN IMMEDIATE", self) from exc
            try:
                yield
            except BaseException:
                if binding.conn is conn:  # not given back meanwhile
                    trans.rollback()
                raise
            try:
                trans.commit()
            except sa_exc.DBAPIError as exc:
                if trans.is_active:
                    trans.rollback()
                raise _store_error(exc, "COMMIT", self) from exc
        finally:
            binding.depth = 0
            if self.is_pg and binding.conn is conn and not conn.closed:
                conn.execution_options(isolation_level="AUTOCOMMIT")


@lru_cache(maxsize=1024)
def _text(sql: str, lists: tuple[str, ...] = ()) -> sa.TextClause:
    """The :func:`sqlalchemy.text` of ``sql`` (its ``IN :name`` lists expanding), parsed
    once per statement: building it scans the SQL for parameters each time."""
    statement = sa.text(sql)
    if lists:
        statement = statement.bindparams(*(sa.bindparam(k, expanding=True) for k in lists))
    return statement


def _retry_busy(run: Any, busy_timeout_s: float) -> Any:
    """``run()`` again while SQLite says another connection holds the lock, with a
    short random pause between attempts, for at most ``busy_timeout_s`` in all."""
    deadline = time.monotonic() + busy_timeout_s
    pause = 0.01
    while True:
        try:
            return run()
        except (sqlite3.OperationalError, sa_exc.OperationalError) as exc:
            if not _is_busy(exc) or time.monotonic() + pause >= deadline:
                raise
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.5)


def _driver_error(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(_driver_error(exc), "sqlite_errorcode", None)
    return int(code) if code is not None else None


def _is_busy(exc: BaseException) -> bool:
    code = _sqlite_code(exc)
    return code is not None and code & 0xFF in _SQLITE_BUSY


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _store_error(exc: sa_exc.DBAPIError, sql: str, db: Database | None = None) -> Exception:
    from dcm.errors import Conflict

    orig = _driver_error(exc)
    message = _first_line(orig)
    code = _sqlite_code(exc)
    if _is_busy(exc):
        waited = f" for {db.busy_timeout_s:g} s" if db is not None else ""
        return StoreBusy(
            f"the store is busy: another process has held its write lock{waited}; try again"
        )
    if code is not None and code & 0xFF == _SQLITE_FULL:
        where = f" {db.path}" if db is not None and db.path else ""
        return StoreError(f"the disk holding the database{where} is full: nothing was written")
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return StoreError(
            f"the disk holding the PostgreSQL database is full: nothing was written ({message})"
        )
    if isinstance(exc, sa_exc.IntegrityError) and (
        code in _SQLITE_UNIQUE or getattr(orig, "sqlstate", None) == _PG_UNIQUE
    ):
        return Conflict(message)
    return StoreError(f"{message} (in: {' '.join(sql.split())[:120]})")
