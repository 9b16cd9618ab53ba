"""A thin connection wrapper that lets one set of SQL statements run on SQLite and PostgreSQL.

Statements are written once with ``?`` placeholders and the common subset of SQL that
both engines share (``INSERT … ON CONFLICT DO NOTHING``, ``RETURNING``); the PostgreSQL
side rewrites ``?`` to ``%s``. Timestamps are written as fixed-width ISO 8601 UTC text,
which sorts correctly in SQLite's TEXT columns and which PostgreSQL casts to timestamptz.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from dcm.errors import StoreError

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
FID_FORMAT = "%Y%m%dT%H%M%SZ"


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


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Database:
    """One connection to SQLite or PostgreSQL with a common execute/query/transaction API."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self._depth = 0
        if parts.scheme == "sqlite":
            self.backend = "sqlite"
            path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
            if not path:
                raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///path/to/file.sqlite")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.path: str | None = path
            try:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute("PRAGMA cache_size=-65536")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
            self._sqlite = conn
            self._errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        elif parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            import psycopg

            self.backend = "postgresql"
            dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
            try:
                self._pg = psycopg.connect(dsn, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._errors = (psycopg.Error,)
        else:
            raise StoreError(f"unsupported database URL {url!r} (sqlite:/// or postgresql://)")

    @property
    def is_pg(self) -> bool:
        return self.backend == "postgresql"

    def close(self) -> None:
        if self.is_pg:
            self._pg.close()
        else:
            self._sqlite.close()

    def _sql(self, sql: str) -> str:
        return _pg_sql(sql) if self.is_pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver cursor."""
        try:
            if self.is_pg:
                return self._pg.execute(self._sql(sql), tuple(params))
            return self._sqlite.execute(sql, tuple(params))
        except self._errors as exc:
            raise _store_error(exc, sql) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        try:
            if self.is_pg:
                with self._pg.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)
            else:
                self._sqlite.executemany(sql, rows)
        except self._errors as exc:
            raise _store_error(exc, sql) from exc

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
        """Insert many rows, skipping those that hit a unique constraint.

        PostgreSQL streams them with COPY into a temporary table first (an order of
        magnitude faster than row-wise inserts); SQLite inserts them row-wise in C.
        """
        if not rows:
            return
        cols = ", ".join(columns)
        if not self.is_pg:
            marks = ", ".join("?" * len(columns))
            self.executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows
            )
            return
        import psycopg

        try:
            with self.transaction(), self._pg.cursor() as cur:
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
        except psycopg.Error as exc:
            raise _store_error(exc, f"COPY {table}") from exc

    def script(self, statements: Iterable[str]) -> None:
        """Run DDL statements one by one (inside the caller's transaction)."""
        for statement in statements:
            if statement.strip():
                self.execute(statement)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cur = self.execute(sql, params)
        columns = [d[0] for d in cur.description]
        return pd.DataFrame.from_records(list(cur.fetchall()), columns=columns)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            if self.is_pg:
                with self._pg.transaction():
                    yield
            else:
                self._sqlite.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    # SQLite rolls back by itself on some errors (SQLITE_FULL).
                    if self._sqlite.in_transaction:
                        self._sqlite.execute("ROLLBACK")
                    raise
                self._sqlite.execute("COMMIT")
        finally:
            self._depth = 0


_UNIQUE = re.compile(r"unique|duplicate key", re.IGNORECASE)


def _store_error(exc: Exception, sql: str) -> Exception:
    from dcm.errors import Conflict

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if _UNIQUE.search(message):
        return Conflict(message)
    return StoreError(f"{message} (in: {' '.join(sql.split())[:120]})")
