"""The :class:`Store`: events, datasets, measurements, results, alerts, keys, audit log."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from dcm.errors import Conflict, NotFound, ParameterError, StoreError
from dcm.schema import (
    CELL_COLUMNS,
    CELL_STATUS_COLUMNS,
    CRS,
    GRID_STATUS_COLUMNS,
    MEASUREMENT_COLUMNS,
    OUTAGE_COLUMNS,
    POPULATION_COLUMNS,
    empty_frame,
    with_outage_tiers,
)
from dcm.settings import Settings
from dcm.store import _features
from dcm.store._db import (
    Database,
    fid_times,
    frame_records,
    frame_rows,
    placeholders,
    to_ts,
    to_utc,
    ts_column,
    ts_text,
)
from dcm.store.access import ROLES, Principal
from dcm.store.faults import fault_point
from dcm.store.migrations import fill_rtree, migrate
from dcm.store.models import (
    DATASET_KINDS,
    MSG_TYPES,
    VISIBILITIES,
    AlertMessage,
    ApiKey,
    AuditEntry,
    Dataset,
    Event,
    FeaturePage,
    Run,
)

if TYPE_CHECKING:
    from dcm.analysis.baseline import Baseline

BBox = tuple[float, float, float, float]
Interval = tuple[pd.Timestamp | None, pd.Timestamp | None]

#: H3 resolution of the per-measurement index (~0.015 km² hexes): fine enough to prefilter
#: any map viewport, coarse grids are its parents.
MEASUREMENT_H3_RESOLUTION = 10

_MEASUREMENT_DB_COLUMNS = (
    "event_id",
    "dataset_id",
    "period",
    "mkey",
    "ts",
    "lon",
    "lat",
    "h3",
    "status",
    "mcc",
    "mnc",
    "network",
    "radio",
    "area",
    "cell",
    "signal_dbm",
    "download_kbps",
    "upload_kbps",
    "latency_ms",
    "accuracy_m",
    "measurement_id",
    "device",
)
_KEY_CHUNK = 500
_EVENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def geometry_columns(geoms: Any) -> tuple[list[str], np.ndarray]:
    """GeoJSON text (≤ 7 decimals, RFC 7946) and (n, 4) bounds of shapely geometries."""
    arr = np.asarray(geoms, dtype=object)
    arr = shapely.set_precision(arr, 1e-7)
    return list(shapely.to_geojson(arr)), shapely.bounds(arr)


def _bounds(box: Sequence[float]) -> dict[str, float]:
    """``minx, miny, maxx, maxy`` of one geometry as INSERT parameters."""
    return dict(zip(("minx", "miny", "maxx", "maxy"), map(float, box), strict=True))


def content_keys(frame: pd.DataFrame) -> pd.Series:
    """Deduplication key per measurement: ``id:<measurement_id>``, else a content hash."""
    content = [c for c in MEASUREMENT_COLUMNS if c != "measurement_id" and c in frame.columns]
    hashes = pd.util.hash_pandas_object(frame[content], index=False).to_numpy()
    hashed = pd.Series(np.char.mod("h:%016x", hashes.astype("uint64")), index=frame.index)
    if "measurement_id" not in frame.columns:
        return hashed
    ids = frame["measurement_id"].astype("string")
    return ("id:" + ids).where(ids.notna(), hashed).astype(object)


class Store:
    """Persistent store of one dcm installation (SQLite file or PostgreSQL + PostGIS).

    Open it with :func:`dcm.store.open_store`. Methods that change data take the acting
    :class:`Principal`, check it, and write an audit log entry. Timestamps go in and out as
    tz-aware UTC ``pd.Timestamp``; geometries as GeoJSON dicts or shapely objects in
    EPSG:4326. Its database lends each thread (or each request bound with
    :meth:`~dcm.store._db.Database.bound`) a pooled connection of its own, so one store
    serves the whole API.
    """

    backend: str  #: ``"sqlite"`` or ``"postgresql"``
    settings: Settings

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.backend = db.backend
        self.settings = settings
        self._event_ids: dict[str | int, int] = {}
        self._population: dict[int, tuple[int, pd.DataFrame]] = {}
        self._extents: dict[tuple[Any, ...], tuple[BBox | None, Interval]] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The number of the last migration applied."""
        return int(self.db.scalar("SELECT coalesce(max(version), 0) FROM schema_version") or 0)

    @property
    def data_dir(self) -> Path:
        """Where raw uploads (``raw/<sha256>``) and the secret live."""
        return Path(self.settings.data_dir)

    def device_secret(self) -> str:
        """Secret used to hash device ids: ``Settings.secret``, else ``data_dir/secret``
        (generated once, mode 0600)."""
        if self.settings.secret:
            return self.settings.secret
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: two processes starting at once must not both write a secret
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
        return path.read_text().strip()

    # -- events --------------------------------------------------------------------------
    def create_event(
        self,
        name: str,
        *,
        start: pd.Timestamp | str,
        end: pd.Timestamp | str | None = None,
        area: dict[str, Any] | None = None,
        description: str | None = None,
        window: str = "1h",
        principal: Principal,
    ) -> Event:
        """Create an event; :class:`~dcm.errors.Conflict` if the name exists."""
        principal.require(principal.can_write(None), "create event")
        name = name.strip()
        # Names appear in URLs, collection ids and CAP identifiers (no spaces or commas).
        if not _EVENT_NAME.fullmatch(name) or name.isdigit():
            raise ParameterError(
                f"bad event name {name!r}: use letters, digits, '-', '_' and '.' (not only digits)"
            )
        start_ts = to_ts(start)
        end_ts = to_ts(end) if end is not None else None
        if end_ts is not None and start_ts is not None and end_ts <= start_ts:
            raise ParameterError("event end must be after its start")
        try:
            pd.Timedelta(window)
        except ValueError as exc:
            raise ParameterError(f"bad window length {window!r}") from exc
        if area is not None:
            try:
                shapely.from_geojson(_json(area))
            except shapely.errors.GEOSException as exc:
                raise ParameterError(f"event area is not a GeoJSON geometry: {exc}") from exc
        if self.db.scalar("SELECT id FROM events WHERE name = :name", {"name": name}) is not None:
            raise Conflict(f"event {name!r} exists")
        with self.db.transaction():
            event_id = self.db.scalar(
                "INSERT INTO events (name, start_time, end_time, description, area, "
                "window_length, created_at) VALUES (:name, :start, :end, :description, :area, "
                ":window, :created) RETURNING id",
                {
                    "name": name,
                    "start": ts_text(start_ts),
                    "end": ts_text(end_ts),
                    "description": description,
                    "area": _json(area) if area else None,
                    "window": window,
                    "created": ts_text(_now()),
                },
            )
            self.audit(principal, "event.create", f"event:{name}", {"id": event_id})
        return self.get_event(int(event_id))

    _EVENT_SQL = (
        "SELECT id, name, start_time, end_time, description, area, window_length, created_at, "
        "high_water FROM events"
    )

    @staticmethod
    def _event(row: Sequence[Any]) -> Event:
        return Event(
            id=int(row[0]),
            name=row[1],
            start=to_ts(row[2]),  # type: ignore[arg-type]
            end=to_ts(row[3]),
            description=row[4],
            area=json.loads(row[5]) if row[5] else None,
            window=row[6],
            created_at=to_ts(row[7]),  # type: ignore[arg-type]
            high_water=to_ts(row[8]),
        )

    def get_event(self, event: str | int | Event) -> Event:
        """An event by name or id; :class:`~dcm.errors.NotFound` otherwise."""
        if isinstance(event, Event):
            event = event.id
        if isinstance(event, int) or (isinstance(event, str) and event.isdigit()):
            row = self.db.one(f"{self._EVENT_SQL} WHERE id = :id", {"id": int(event)})
        else:
            row = self.db.one(f"{self._EVENT_SQL} WHERE name = :name", {"name": event})
        if row is None:
            raise NotFound(f"no event {event!r}")
        return self._event(row)

    def event_id(self, event: str | int | Event) -> int:
        """Numeric id of an event given by name, id or record (NotFound otherwise)."""
        if isinstance(event, Event):
            return event.id
        cached = self._event_ids.get(event)
        if cached is None:
            cached = self.get_event(event).id
            self._event_ids[event] = cached
        return cached

    def list_events(self) -> list[Event]:
        """All events, newest start first."""
        rows = self.db.query(f"{self._EVENT_SQL} ORDER BY start_time DESC, id DESC")
        return [self._event(r) for r in rows]

    def set_high_water(self, event: str | int, ts: pd.Timestamp) -> None:
        """Raise the event's data high-water mark to ``ts`` (never lowers it)."""
        eid = self.event_id(event)
        # One statement: two ingests committing at once can never lower the mark.
        text = ts_text(ts)
        self.db.execute(
            "UPDATE events SET high_water = :ts WHERE id = :id AND (high_water IS NULL OR "
            "high_water < :ts)",
            {"ts": text, "id": eid},
        )

    @contextmanager
    def event_lock(self, event: str | int) -> Iterator[None]:
        """Hold the update lock of an event (across processes): a second ``dcm update`` of
        the same event waits instead of computing and alerting the same windows twice.

        PostgreSQL: a session advisory lock; SQLite: ``flock`` on a file beside the
        database. Not re-entrant.
        """
        eid = self.event_id(event)
        if self.db.is_pg:
            self.db.execute("SELECT pg_advisory_lock(4242017, :id)", {"id": eid})
            try:
                yield
            finally:
                self.db.execute("SELECT pg_advisory_unlock(4242017, :id)", {"id": eid})
            return
        import fcntl

        base = self.db.path if self.db.path not in (None, ":memory:") else None
        lock = Path(f"{base}.event-{eid}.lock") if base else self.data_dir / f"event-{eid}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def event_windows(self, event: str | int) -> pd.DataFrame:
        """Windows of an event: ``window_start, window_end, dirty, computed_at, run_id``."""
        frame = self.db.frame(
            "SELECT window_start, window_end, dirty, computed_at, run_id FROM event_windows "
            "WHERE event_id = :event ORDER BY window_start",
            {"event": self.event_id(event)},
        )
        for col in ("window_start", "window_end", "computed_at"):
            frame[col] = to_utc(frame[col])
        frame["dirty"] = frame["dirty"].astype(bool)
        frame["run_id"] = frame["run_id"].astype("Int64")
        return frame

    # -- datasets and raw files ------------------------------------------------------------
    def keep_raw(self, data: bytes) -> tuple[str, Path]:
        """Write ``data`` to ``data_dir/raw/<sha256>`` (once) and return (checksum, path)."""
        checksum = hashlib.sha256(data).hexdigest()
        path = self.data_dir / "raw" / checksum
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{checksum}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(data)
                fault_point("raw.tmp_written")
                os.replace(tmp, path)  # atomic: a reader never sees half a file
            except BaseException:
                tmp.unlink(missing_ok=True)  # a full disk must not keep a partial copy
                raise
            _drop_stale_tmp(path)
        return checksum, path

    _DATASET_SQL = (
        "SELECT id, event_id, kind, source, licence, visibility, owner, checksum, rows_in, "
        "accepted, rejected, duplicates, added, ingested_at FROM datasets"
    )

    @staticmethod
    def _dataset(row: Sequence[Any]) -> Dataset:
        return Dataset(
            id=int(row[0]),
            event_id=int(row[1]),
            kind=row[2],
            source=row[3],
            licence=row[4],
            visibility=row[5],
            owner=row[6],
            checksum=row[7],
            rows_in=int(row[8]),
            accepted=int(row[9]),
            rejected=int(row[10]),
            duplicates=int(row[11]),
            added=int(row[12]),
            ingested_at=to_ts(row[13]),  # type: ignore[arg-type]
        )

    def find_dataset(self, event: str | int, checksum: str, kind: str) -> Dataset | None:
        """The dataset of ``event`` with this checksum and kind, if already ingested."""
        row = self.db.one(
            f"{self._DATASET_SQL} WHERE event_id = :event AND checksum = :checksum "
            "AND kind = :kind",
            {"event": self.event_id(event), "checksum": checksum, "kind": kind},
        )
        return None if row is None else self._dataset(row)

    def add_dataset(
        self,
        event: str | int,
        *,
        kind: str,
        source: str,
        checksum: str,
        licence: str | None,
        visibility: str,
        counts: dict[str, int],
        principal: Principal,
    ) -> Dataset:
        """Record a dataset (counts: rows_in, accepted, rejected, duplicates, added)."""
        if kind not in DATASET_KINDS:
            raise ParameterError(f"unknown dataset kind {kind!r} (use {', '.join(DATASET_KINDS)})")
        if visibility not in VISIBILITIES:
            raise ParameterError(f"unknown visibility {visibility!r} ({', '.join(VISIBILITIES)})")
        ev = self.get_event(event)
        principal.require(principal.can_ingest(ev), f"ingest into {ev.name}")
        with self.db.transaction():
            dataset_id = self.db.scalar(
                "INSERT INTO datasets (event_id, kind, source, licence, visibility, owner, "
                "checksum, rows_in, accepted, rejected, duplicates, added, ingested_at) "
                "VALUES (:event, :kind, :source, :licence, :visibility, :owner, :checksum, "
                ":rows_in, :accepted, :rejected, :duplicates, :added, :ingested_at) RETURNING id",
                {
                    "event": ev.id,
                    "kind": kind,
                    "source": source,
                    "licence": licence,
                    "visibility": visibility,
                    "owner": principal.name,
                    "checksum": checksum,
                    **{
                        k: int(counts.get(k, 0))
                        for k in ("rows_in", "accepted", "rejected", "duplicates", "added")
                    },
                    "ingested_at": ts_text(_now()),
                },
            )
            self.audit(
                principal,
                "dataset.add",
                f"dataset:{dataset_id}",
                {"event": ev.name, "kind": kind, "checksum": checksum, "visibility": visibility},
            )
        return self.get_dataset(int(dataset_id))

    def get_dataset(self, dataset_id: int) -> Dataset:
        row = self.db.one(f"{self._DATASET_SQL} WHERE id = :id", {"id": int(dataset_id)})
        if row is None:
            raise NotFound(f"no dataset {dataset_id}")
        return self._dataset(row)

    def list_datasets(
        self, event: str | int | None = None, *, principal: Principal | None = None
    ) -> list[Dataset]:
        """Datasets (of one event), only those ``principal`` may read when given."""
        if event is None:
            rows = self.db.query(f"{self._DATASET_SQL} ORDER BY id")
        else:
            rows = self.db.query(
                f"{self._DATASET_SQL} WHERE event_id = :event ORDER BY id",
                {"event": self.event_id(event)},
            )
        datasets = [self._dataset(r) for r in rows]
        if principal is not None:
            datasets = [d for d in datasets if principal.can_read_dataset(d)]
        return datasets

    def set_dataset_added(self, dataset_id: int, added: int) -> None:
        """Set how many rows of a dataset were new to the store."""
        self.db.execute(
            "UPDATE datasets SET added = :added WHERE id = :id",
            {"added": int(added), "id": int(dataset_id)},
        )

    def readable_dataset_ids(self, event: str | int, principal: Principal) -> list[int] | None:
        """Ids of the event's datasets ``principal`` may read; None when it may read all."""
        rows = self.db.query(
            "SELECT id, visibility FROM datasets WHERE event_id = :event",
            {"event": self.event_id(event)},
        )
        allowed = [int(i) for i, vis in rows if principal.can_read_visibility(vis, int(i))]
        return None if len(allowed) == len(rows) else allowed

    # -- data rows -----------------------------------------------------------------------
    def insert_measurements(
        self, event: str | int, dataset_id: int, frame: pd.DataFrame, *, period: str
    ) -> pd.DataFrame:
        """Insert measurement rows (MEASUREMENT_COLUMNS) of ``period`` baseline|event.

        Rows already stored for the event (same measurement_id, else same content hash)
        are skipped. Returns the rows actually added.
        """
        if period not in ("baseline", "event"):
            raise ParameterError(f"period must be baseline or event, got {period!r}")
        eid = self.event_id(event)
        if frame.empty:
            return frame.iloc[0:0]
        frame = frame.copy()
        frame["mkey"] = content_keys(frame).to_numpy()
        frame = frame[~frame["mkey"].duplicated()]
        known: set[str] = set()
        keys = frame["mkey"].tolist()
        stored = self.db.one(
            "SELECT 1 FROM measurements WHERE event_id = :event AND period = :period LIMIT 1",
            {"event": eid, "period": period},
        )
        for i in range(0, len(keys) if stored else 0, _KEY_CHUNK):
            known.update(
                r[0]
                for r in self.db.query(
                    "SELECT mkey FROM measurements WHERE event_id = :event AND period = :period "
                    "AND mkey IN :keys",
                    {"event": eid, "period": period, "keys": keys[i : i + _KEY_CHUNK]},
                )
            )
        new = frame[~frame["mkey"].isin(known)] if known else frame
        if new.empty:
            return new.drop(columns="mkey")
        from dcm.analysis.grid import points_to_cells

        rows = new.reindex(columns=list(MEASUREMENT_COLUMNS))
        rows["event_id"] = eid
        rows["dataset_id"] = int(dataset_id)
        rows["period"] = period
        rows["mkey"] = new["mkey"]
        rows["ts"] = ts_column(new["timestamp"])
        rows["h3"] = points_to_cells(
            rows["lat"].to_numpy(), rows["lon"].to_numpy(), MEASUREMENT_H3_RESOLUTION
        )
        # Rows of one batch are written in H3 order, so points near each other share
        # pages: a bbox query then reads few pages (PostgreSQL heap, SQLite table).
        rows = rows.sort_values("h3", kind="stable")
        with self.db.transaction():
            self.db.bulk_insert(
                "measurements", _MEASUREMENT_DB_COLUMNS, frame_rows(rows, _MEASUREMENT_DB_COLUMNS)
            )
            if not self.db.is_pg:  # PostGIS indexes the generated geom column itself
                fill_rtree(self.db, int(dataset_id))
        return new.drop(columns="mkey")

    def insert_cells(self, event: str | int, dataset_id: int, frame: pd.DataFrame) -> int:
        """Insert cells (CELL_COLUMNS); known (radio, mcc, net, area, cell) are skipped."""
        eid = self.event_id(event)
        if frame.empty:
            return 0
        before = self.db.scalar(
            "SELECT count(*) FROM cells WHERE event_id = :event", {"event": eid}
        )
        rows = frame.reindex(columns=list(CELL_COLUMNS)).copy()
        rows["created"] = ts_column(rows["created"])
        rows["updated"] = ts_column(rows["updated"])
        rows["event_id"] = eid
        rows["dataset_id"] = int(dataset_id)
        rows = rows.rename(columns={"range": "range_m", "averageSignal": "average_signal"})
        cols = [
            "event_id",
            "dataset_id",
            "radio",
            "mcc",
            "net",
            "area",
            "cell",
            "unit",
            "lon",
            "lat",
            "range_m",
            "samples",
            "changeable",
            "created",
            "updated",
            "average_signal",
            "network",
            "site_id",
        ]
        with self.db.transaction():
            self.db.executemany(
                f"INSERT INTO cells ({', '.join(cols)}) VALUES ({placeholders(cols)}) "
                "ON CONFLICT DO NOTHING",
                frame_records(rows, cols),
            )
        after = self.db.scalar("SELECT count(*) FROM cells WHERE event_id = :event", {"event": eid})
        return int(after) - int(before)

    def insert_population(self, event: str | int, dataset_id: int, frame: pd.DataFrame) -> int:
        """Insert population points (POPULATION_COLUMNS), replacing earlier ones."""
        eid = self.event_id(event)
        cols = ["event_id", "dataset_id", "lon", "lat", "population"]
        rows = frame.reindex(columns=list(POPULATION_COLUMNS)).copy()
        rows["event_id"] = eid
        rows["dataset_id"] = int(dataset_id)
        with self.db.transaction():
            self.db.execute("DELETE FROM population WHERE event_id = :event", {"event": eid})
            # A raster is tens of thousands of points: COPY on PostgreSQL.
            self.db.bulk_insert("population", cols, frame_rows(rows, cols))
        return len(rows)

    def _insert_shapes(
        self, table: str, id_col: str, extra: str, eid: int, dataset_id: int, gdf: Any
    ) -> int:
        if gdf is None or len(gdf) == 0:
            return 0
        gdf = gdf.to_crs(CRS) if gdf.crs is not None and str(gdf.crs) != CRS else gdf
        texts, bounds = geometry_columns(gdf.geometry.to_numpy())
        ids = (
            gdf[id_col].astype(str).to_numpy()
            if id_col in gdf.columns
            else np.arange(1, len(gdf) + 1).astype(str)
        )
        extra_values = gdf[extra].to_numpy() if extra in gdf.columns else [None] * len(gdf)
        props = gdf.drop(columns=[gdf.geometry.name]).astype(object)
        props = props.where(pd.notna(props), None)
        rows = [
            {
                "event_id": eid,
                "dataset_id": int(dataset_id),
                "id": str(ids[i]),
                "extra": None if v is None else str(v),
                "properties": _json(props.iloc[i].to_dict()),
                "geojson": texts[i],
                **_bounds(bounds[i]),
            }
            for i, v in enumerate(extra_values)
        ]
        with self.db.transaction():
            self.db.executemany(
                f"INSERT INTO {table} (event_id, dataset_id, {id_col}, {extra}, properties, "
                "geojson, minx, miny, maxx, maxy) VALUES (:event_id, :dataset_id, :id, :extra, "
                ":properties, :geojson, :minx, :miny, :maxx, :maxy) "
                f"ON CONFLICT ({'event_id'}, {id_col}) DO UPDATE SET "
                f"dataset_id = excluded.dataset_id, {extra} = excluded.{extra}, "
                "properties = excluded.properties, geojson = excluded.geojson, "
                "minx = excluded.minx, miny = excluded.miny, maxx = excluded.maxx, "
                "maxy = excluded.maxy",
                rows,
            )
        return len(rows)

    def insert_areas(self, event: str | int, dataset_id: int, gdf: gpd.GeoDataFrame) -> int:
        """Insert admin areas (area_id, name, geometry); an area_id seen before is replaced."""
        return self._insert_shapes(
            "areas", "area_id", "name", self.event_id(event), dataset_id, gdf
        )

    def insert_hazard(self, event: str | int, dataset_id: int, gdf: gpd.GeoDataFrame) -> int:
        """Insert hazard footprints (hazard_id, level, geometry)."""
        return self._insert_shapes(
            "hazard", "hazard_id", "level", self.event_id(event), dataset_id, gdf
        )

    def measurements(
        self,
        event: str | int,
        *,
        period: str | None = None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Stored measurements as a MEASUREMENT_COLUMNS frame (analysis input, all rows).

        ``start``/``end`` select ``start <= timestamp < end``. Internal: not filtered by
        principal, so never hand its output to an API caller.
        """
        where: list[str] = ["event_id = :event"]
        params: dict[str, Any] = {"event": self.event_id(event)}
        if period is not None:
            where.append("period = :period")
            params["period"] = period
        if start is not None:
            where.append("ts >= :start")
            params["start"] = ts_text(start)
        if end is not None:
            where.append("ts < :end")
            params["end"] = ts_text(end)
        cols = [c for c in MEASUREMENT_COLUMNS if c != "timestamp"]
        raw = self.db.frame(
            f"SELECT {self.db.ts_select('ts')}, {', '.join(cols)} FROM measurements "
            f"WHERE {' AND '.join(where)} ORDER BY ts, id",
            params,
        )
        if raw.empty:
            return empty_frame(MEASUREMENT_COLUMNS)
        raw = raw.rename(columns={"ts": "timestamp"})
        raw["timestamp"] = to_utc(raw["timestamp"])
        return _typed(raw, MEASUREMENT_COLUMNS)

    def time_range(
        self, event: str | int, *, period: str = "event", before: pd.Timestamp | None = None
    ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """Earliest and latest measurement time of an event period (None when empty),
        of measurements timed before ``before`` when given."""
        sql = (
            "SELECT min(ts), max(ts) FROM measurements WHERE event_id = :event AND period = :period"
        )
        params: dict[str, Any] = {"event": self.event_id(event), "period": period}
        if before is not None:
            sql += " AND ts < :before"
            params["before"] = ts_text(before)
        row = self.db.one(sql, params)
        return (to_ts(row[0]), to_ts(row[1])) if row else (None, None)

    def cells(self, event: str | int) -> pd.DataFrame:
        """Stored cells as a CELL_COLUMNS frame."""
        raw = self.db.frame(
            "SELECT radio, mcc, net, area, cell, unit, lon, lat, range_m AS range, samples, "
            'changeable, created, updated, average_signal AS "averageSignal", network, site_id '
            "FROM cells WHERE event_id = :event ORDER BY id",
            {"event": self.event_id(event)},
        )
        if raw.empty:
            return empty_frame(CELL_COLUMNS)
        raw["created"] = to_utc(raw["created"])
        raw["updated"] = to_utc(raw["updated"])
        return _typed(raw, CELL_COLUMNS)

    def population(self, event: str | int) -> pd.DataFrame | None:
        """Stored population points (POPULATION_COLUMNS) or None.

        Every update needs them and they change only with a new population dataset, so
        the frame is kept per event and dataset for the life of this store object.
        """
        eid = self.event_id(event)
        dataset = self.db.scalar(
            "SELECT max(dataset_id) FROM population WHERE event_id = :event", {"event": eid}
        )
        if dataset is None:
            return None
        cached = self._population.get(eid)
        if cached is not None and cached[0] == dataset:
            return cached[1].copy()
        raw = self.db.frame(
            "SELECT lon, lat, population FROM population WHERE event_id = :event", {"event": eid}
        )
        frame = _typed(raw, POPULATION_COLUMNS)
        self._population[eid] = (int(dataset), frame)
        return frame.copy()

    def _shapes(self, table: str, id_col: str, extra: str, event: str | int) -> Any:
        raw = self.db.frame(
            f"SELECT {id_col}, {extra}, properties, geojson FROM {table} "
            "WHERE event_id = :event ORDER BY id",
            {"event": self.event_id(event)},
        )
        if raw.empty:
            return None
        props = pd.DataFrame([json.loads(p) for p in raw["properties"]])
        props[id_col] = raw[id_col].to_numpy()
        props[extra] = raw[extra].to_numpy()
        geometry = shapely.from_geojson(raw["geojson"].to_numpy())
        return gpd.GeoDataFrame(props, geometry=geometry, crs=CRS)

    def areas(self, event: str | int) -> gpd.GeoDataFrame | None:
        """Stored admin areas (area_id, name, …, geometry) or None."""
        return self._shapes("areas", "area_id", "name", event)

    def hazard(self, event: str | int) -> gpd.GeoDataFrame | None:
        """Stored hazard footprints (hazard_id, level, …, geometry) or None."""
        return self._shapes("hazard", "hazard_id", "level", event)

    # -- incremental state -----------------------------------------------------------------
    def mark_dirty(self, event: str | int, windows: pd.DatetimeIndex) -> int:
        """Mark windows (by start) for recomputation; returns how many are dirty now."""
        ev = self.get_event(event)
        length = pd.Timedelta(ev.window)
        starts = pd.DatetimeIndex(windows).unique()
        if len(starts):
            rows = [
                {"event": ev.id, "start": ts_text(s), "end": ts_text(s + length)} for s in starts
            ]
            with self.db.transaction():
                self.db.executemany(
                    "INSERT INTO event_windows (event_id, window_start, window_end, dirty, "
                    "marks) VALUES (:event, :start, :end, 1, 1) ON CONFLICT (event_id, "
                    "window_start) DO "
                    "UPDATE SET dirty = 1, marks = event_windows.marks + 1",
                    rows,
                )
        return int(
            self.db.scalar(
                "SELECT count(*) FROM event_windows WHERE event_id = :event AND dirty = 1",
                {"event": ev.id},
            )
        )

    def dirty_windows(self, event: str | int) -> pd.DatetimeIndex:
        """Starts of windows waiting for recomputation, ascending."""
        return pd.DatetimeIndex(self.dirty_marks(event).index)

    def dirty_marks(self, event: str | int) -> pd.Series:
        """How often each window waiting for recomputation was marked dirty (indexed by
        window start, ascending): hand it to :meth:`save_results` so a window marked
        again while it was computed stays dirty."""
        rows = self.db.query(
            "SELECT window_start, marks FROM event_windows WHERE event_id = :event "
            "AND dirty = 1 ORDER BY window_start",
            {"event": self.event_id(event)},
        )
        index = pd.DatetimeIndex(to_utc([r[0] for r in rows]), name="window_start")
        return pd.Series([int(r[1]) for r in rows], index=index, dtype="int64", name="marks")

    # -- runs and results ------------------------------------------------------------------
    _RUN_SQL = "SELECT id, event_id, started_at, finished_at, windows, status, info FROM runs"

    def _run(self, run_id: int) -> Run:
        row = self.db.one(f"{self._RUN_SQL} WHERE id = :id", {"id": int(run_id)})
        if row is None:
            raise NotFound(f"no run {run_id}")
        return Run(
            id=int(row[0]),
            event_id=int(row[1]),
            started_at=to_ts(row[2]),  # type: ignore[arg-type]
            finished_at=to_ts(row[3]),
            windows=int(row[4]),
            status=row[5],
            info=json.loads(row[6]) if row[6] else {},
        )

    def start_run(self, event: str | int, *, info: dict[str, Any] | None = None) -> Run:
        run_id = self.db.scalar(
            "INSERT INTO runs (event_id, started_at, info) VALUES (:event, :started, :info) "
            "RETURNING id",
            {"event": self.event_id(event), "started": ts_text(_now()), "info": _json(info or {})},
        )
        return self._run(int(run_id))

    def finish_run(
        self,
        run_id: int,
        *,
        status: str = "ok",
        windows: int = 0,
        info: dict[str, Any] | None = None,
    ) -> Run:
        merged = self._run(run_id).info | (info or {})
        self.db.execute(
            "UPDATE runs SET finished_at = :finished, status = :status, windows = :windows, "
            "info = :info WHERE id = :id",
            {
                "finished": ts_text(_now()),
                "status": status,
                "windows": int(windows),
                "info": _json(merged),
                "id": int(run_id),
            },
        )
        return self._run(run_id)

    def fail_unfinished_runs(self, event: str | int) -> int:
        """Mark runs of ``event`` that never finished (their process died; their results
        were rolled back) as failed; returns how many. Call it holding the event lock."""
        eid = self.event_id(event)
        rows = self.db.query(
            "SELECT id FROM runs WHERE event_id = :event AND finished_at IS NULL",
            {"event": eid},
        )
        for (run_id,) in rows:  # rare: one per update that died
            self.finish_run(int(run_id), status="failed", info={"error": "interrupted"})
        return len(rows)

    def save_results(
        self,
        event: str | int,
        run_id: int,
        *,
        windows: pd.DatetimeIndex,
        outages: gpd.GeoDataFrame,
        cells: pd.DataFrame,
        grid: pd.DataFrame,
        marks: pd.Series | None = None,
    ) -> None:
        """Replace the results of ``windows`` (starts) in one transaction, mark them clean.

        ``outages`` follows OUTAGE_COLUMNS (+ geometry), ``cells`` CELL_STATUS_COLUMNS,
        ``grid`` GRID_STATUS_COLUMNS plus ``devices`` (distinct devices per row, used for
        k-anonymity). Rows outside ``windows`` are ignored. ``marks`` (from
        :meth:`dirty_marks`, read before computing) keeps a window dirty when new data
        marked it again since.
        """
        ev = self.get_event(event)
        starts = pd.DatetimeIndex(windows).unique().sort_values()
        if starts.tz is None:
            starts = starts.tz_localize("UTC")
        if len(starts) == 0:
            return
        length = pd.Timedelta(ev.window)
        lo, hi = starts.min(), starts.max() + length
        keys = [ts_text(s) for s in starts]
        in_outages = outages[outages["window_start"].isin(starts)] if len(outages) else outages
        in_grid = grid[grid["window_start"].isin(starts)] if len(grid) else grid
        # Cell status intervals are stored clipped to the recomputed span.
        in_cells = cells[(cells["end"] > lo) & (cells["start"] < hi)] if len(cells) else cells
        now = ts_text(_now())
        with self.db.transaction():
            for i in range(0, len(keys), _KEY_CHUNK):
                chunk = {"event": ev.id, "starts": keys[i : i + _KEY_CHUNK]}
                for table in ("outages", "grid"):
                    self.db.execute(
                        f"DELETE FROM {table} WHERE event_id = :event AND window_start IN :starts",
                        chunk,
                    )
                self.db.execute(
                    "DELETE FROM cell_status WHERE event_id = :event AND start_time IN :starts",
                    chunk,
                )
            self._write_outages(ev.id, run_id, in_outages)
            self._write_grid(ev.id, run_id, in_grid)
            self._write_cell_status(ev.id, run_id, in_cells, starts, length)
            # Without marks, a window is clean whatever happened meanwhile (-1 matches
            # any count).
            seen = (
                marks.reindex(starts).fillna(0).astype("int64").tolist()
                if marks is not None
                else [-1] * len(starts)
            )
            self.db.executemany(
                "INSERT INTO event_windows (event_id, window_start, window_end, dirty, "
                "computed_at, run_id, marks) VALUES (:event, :start, :end, 0, :now, :run, "
                ":marks) ON CONFLICT "
                "(event_id, window_start) DO UPDATE SET dirty = CASE WHEN excluded.marks "
                "IN (-1, event_windows.marks) THEN 0 ELSE event_windows.dirty END, "
                "computed_at = excluded.computed_at, run_id = excluded.run_id, "
                "marks = event_windows.marks",
                [
                    {
                        "event": ev.id,
                        "start": k,
                        "end": ts_text(s + length),
                        "now": now,
                        "run": run_id,
                        "marks": m,
                    }
                    for k, s, m in zip(keys, starts, seen, strict=True)
                ],
            )

    def _write_outages(self, eid: int, run_id: int, outages: gpd.GeoDataFrame) -> None:
        if outages is None or len(outages) == 0:
            return
        frame = pd.DataFrame(with_outage_tiers(outages).drop(columns=outages.geometry.name))
        texts, bounds = geometry_columns(outages.geometry.to_numpy())
        frame = frame.reindex(columns=list(OUTAGE_COLUMNS))
        starts = fid_times(frame["window_start"])
        frame["fid"] = [
            f"{o}@{s}" for o, s in zip(frame["outage_id"].astype(str), starts, strict=True)
        ]
        for col in ("window_start", "window_end", "onset"):
            frame[col] = ts_column(frame[col])
        frame["event_id"], frame["run_id"], frame["geojson"] = eid, run_id, texts
        frame[["minx", "miny", "maxx", "maxy"]] = bounds
        cols = [
            "event_id",
            "run_id",
            "fid",
            *OUTAGE_COLUMNS,
            "geojson",
            "minx",
            "miny",
            "maxx",
            "maxy",
        ]
        self.db.executemany(
            f"INSERT INTO outages ({', '.join(cols)}) VALUES ({placeholders(cols)})",
            frame_records(frame, cols),
        )

    def _write_grid(self, eid: int, run_id: int, grid: pd.DataFrame) -> None:
        if grid is None or len(grid) == 0:
            return
        frame = grid.reindex(columns=[*GRID_STATUS_COLUMNS, "devices"]).copy()
        frame["devices"] = frame["devices"].fillna(0).astype("int64")
        self._ensure_hexes(frame["h3"].astype(str).unique())
        frame["window_start"] = ts_column(frame["window_start"])
        frame["window_end"] = ts_column(frame["window_end"])
        frame["event_id"], frame["run_id"] = eid, run_id
        cols = ["event_id", "run_id", *GRID_STATUS_COLUMNS, "devices"]
        self.db.bulk_insert("grid", cols, frame_rows(frame, cols))

    def _ensure_hexes(self, hexes: Iterable[str]) -> None:
        """Store the polygon of each H3 cell once (shared by grid and coverage layers)."""
        import h3

        wanted = list(dict.fromkeys(hexes))
        known: set[str] = set()
        for i in range(0, len(wanted), _KEY_CHUNK):
            known.update(
                r[0]
                for r in self.db.query(
                    "SELECT h3 FROM hexes WHERE h3 IN :hexes",
                    {"hexes": wanted[i : i + _KEY_CHUNK]},
                )
            )
        missing = [h for h in wanted if h not in known]
        if not missing:
            return
        # cell_to_boundary gives (lat, lng) pairs; GeoJSON wants closed (lon, lat) rings.
        rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(h)] for h in missing]
        polygons = shapely.polygons([r + r[:1] for r in rings])
        texts, bounds = geometry_columns(polygons)
        self.db.executemany(
            "INSERT INTO hexes (h3, geojson, minx, miny, maxx, maxy) VALUES (:h3, :geojson, "
            ":minx, :miny, :maxx, :maxy) ON CONFLICT DO NOTHING",
            [
                {"h3": h, "geojson": t, **_bounds(b)}
                for h, t, b in zip(missing, texts, bounds, strict=True)
            ],
        )

    def _write_cell_status(
        self,
        eid: int,
        run_id: int,
        cells: pd.DataFrame,
        starts: pd.DatetimeIndex,
        length: pd.Timedelta,
    ) -> None:
        """Store cell status per recomputed window (intervals split at window bounds)."""
        if cells is None or len(cells) == 0:
            return
        frame = cells.reindex(columns=list(CELL_STATUS_COLUMNS)).reset_index(drop=True)
        # One row per (cell interval, window it overlaps): an interval spanning several
        # recomputed windows is split so each window can be replaced on its own later.
        win = pd.DataFrame({"w": starts})
        pairs = frame.reset_index().merge(win, how="cross")
        pairs = pairs[(pairs["start"] < pairs["w"] + length) & (pairs["end"] > pairs["w"])]
        if pairs.empty:
            return
        pairs["start"] = pairs["w"]
        pairs["end"] = pairs["w"] + length
        located = self.db.frame(
            "SELECT radio, mcc, net, area, cell, lon, lat, network FROM cells "
            "WHERE event_id = :event",
            {"event": eid},
        )
        keys = ["radio", "mcc", "net", "area", "cell"]
        for k in keys[1:]:
            pairs[k] = pairs[k].astype("int64")
            located[k] = located[k].astype("int64")
        pairs = pairs.merge(located.drop_duplicates(keys), on=keys, how="left")
        pairs["fid"] = [
            f"{r}-{m}-{n}-{a}-{c}@{s}"
            for r, m, n, a, c, s in zip(
                pairs["radio"],
                pairs["mcc"],
                pairs["net"],
                pairs["area"],
                pairs["cell"],
                fid_times(pairs["start"]),
                strict=True,
            )
        ]
        pairs["start_time"] = ts_column(pairs["start"])
        pairs["end_time"] = ts_column(pairs["end"])
        pairs["event_id"], pairs["run_id"] = eid, run_id
        cols = [
            "event_id",
            "run_id",
            "fid",
            "radio",
            "mcc",
            "net",
            "area",
            "cell",
            "network",
            "site_id",
            "status",
            "start_time",
            "end_time",
            "p_offline",
            "silence_h_needed",
            "lon",
            "lat",
        ]
        self.db.bulk_insert("cell_status", cols, frame_rows(pairs, cols))

    def save_coverage(self, event: str | int, coverage: pd.DataFrame) -> None:
        """Replace the baseline coverage layer: per h3 and network ``measurements``,
        ``ok_count``, ``fail_count``, ``devices``."""
        eid = self.event_id(event)
        cols = ["event_id", "h3", "network", "measurements", "ok_count", "fail_count", "devices"]
        frame = coverage.copy()
        frame["event_id"] = eid
        with self.db.transaction():
            self.db.execute("DELETE FROM coverage WHERE event_id = :event", {"event": eid})
            if len(frame):
                self._ensure_hexes(frame["h3"].astype(str).unique())
                self.db.executemany(
                    f"INSERT INTO coverage ({', '.join(cols)}) VALUES ({placeholders(cols)})",
                    frame_records(frame, cols),
                )

    def outages(
        self, event: str | int, *, windows: Sequence[pd.Timestamp] | None = None
    ) -> gpd.GeoDataFrame:
        """Stored outage polygons (all windows, or those starting at ``windows``)."""
        where = "event_id = :event"
        params: dict[str, Any] = {"event": self.event_id(event)}
        if windows is not None:
            keys = [ts_text(w) for w in windows]
            if not keys:
                return _empty_outages()
            where += " AND window_start IN :windows"
            params["windows"] = keys
        raw = self.db.frame(
            f"SELECT {', '.join(OUTAGE_COLUMNS)}, geojson FROM outages WHERE {where} "
            "ORDER BY window_start, outage_id",
            params,
        )
        if raw.empty:
            return _empty_outages()
        for col in ("window_start", "window_end", "onset"):
            raw[col] = to_utc(raw[col])
        geometry = shapely.from_geojson(raw.pop("geojson").to_numpy())
        return gpd.GeoDataFrame(_typed(raw, OUTAGE_COLUMNS), geometry=geometry, crs=CRS)

    def cell_status(self, event: str | int) -> pd.DataFrame:
        """Stored cell status per window (CELL_STATUS_COLUMNS + network, lon, lat)."""
        raw = self.db.frame(
            "SELECT radio, mcc, net, area, cell, site_id, status, start_time AS start, "
            'end_time AS "end", p_offline, silence_h_needed, network, lon, lat FROM cell_status '
            "WHERE event_id = :event ORDER BY start_time, id",
            {"event": self.event_id(event)},
        )
        if raw.empty:
            return empty_frame(CELL_STATUS_COLUMNS)
        raw["start"] = to_utc(raw["start"])
        raw["end"] = to_utc(raw["end"])
        return _typed(raw, CELL_STATUS_COLUMNS)

    def grid_status(self, event: str | int) -> pd.DataFrame:
        """Stored grid status (GRID_STATUS_COLUMNS + devices); internal, no k-anonymity."""
        raw = self.db.frame(
            f"SELECT {', '.join(GRID_STATUS_COLUMNS)}, devices FROM grid "
            "WHERE event_id = :event ORDER BY window_start, h3, network",
            {"event": self.event_id(event)},
        )
        if raw.empty:
            return empty_frame({**GRID_STATUS_COLUMNS, "devices": "int64"})
        raw["window_start"] = to_utc(raw["window_start"])
        raw["window_end"] = to_utc(raw["window_end"])
        return _typed(raw, {**GRID_STATUS_COLUMNS, "devices": "int64"})

    # -- baseline cache ------------------------------------------------------------------
    def load_baseline(self, event: str | int, key: str) -> Baseline | None:
        """The cached baseline model of ``key`` (its inputs, parameters and dcm version),
        or None when there is none or it does not parse (it is then rebuilt)."""
        from dcm.store.baselines import baseline_from_bytes

        value = self.db.scalar(
            "SELECT data FROM baselines WHERE event_id = :event AND fingerprint = :key",
            {"event": self.event_id(event), "key": key},
        )
        return None if value is None else baseline_from_bytes(bytes(value))

    def save_baseline(self, event: str | int, key: str, model: Baseline) -> None:
        """Cache the baseline model (Parquet and JSON, see :mod:`dcm.store.baselines`);
        earlier ones of the event are dropped."""
        from dcm.store.baselines import baseline_to_bytes

        eid = self.event_id(event)
        data = baseline_to_bytes(model)
        with self.db.transaction():
            self.db.execute("DELETE FROM baselines WHERE event_id = :event", {"event": eid})
            self.db.execute(
                "INSERT INTO baselines (event_id, fingerprint, created_at, data) "
                "VALUES (:event, :key, :created, :data)",
                {"event": eid, "key": key, "created": ts_text(_now()), "data": data},
            )

    # -- alerts --------------------------------------------------------------------------
    def add_alert_message(self, message: AlertMessage) -> None:
        """Store one CAP message (identifiers are unique: Conflict otherwise)."""
        if message.msg_type not in MSG_TYPES:
            raise ParameterError(f"unknown CAP msgType {message.msg_type!r}")
        with self.db.transaction():
            seq = self.db.scalar("SELECT coalesce(max(seq), 0) + 1 FROM alerts")
            self.db.execute(
                "INSERT INTO alerts (identifier, event_id, outage_id, network, msg_type, sent, "
                "refs, geojson, properties, seq) VALUES (:identifier, :event, :outage, :network, "
                ":msg_type, :sent, :refs, :geojson, :properties, :seq)",
                {
                    "identifier": message.identifier,
                    "event": message.event_id,
                    "outage": message.outage_id,
                    "network": message.network,
                    "msg_type": message.msg_type,
                    "sent": ts_text(message.sent),
                    "refs": _json(list(message.references)),
                    "geojson": _json(message.geometry),
                    "properties": _json(message.properties),
                    "seq": int(seq),
                },
            )

    _ALERT_SQL = (
        "SELECT identifier, event_id, outage_id, network, msg_type, sent, refs, geojson, "
        "properties FROM alerts"
    )

    @staticmethod
    def _alert(row: Sequence[Any]) -> AlertMessage:
        return AlertMessage(
            identifier=row[0],
            event_id=int(row[1]),
            outage_id=row[2],
            network=row[3],
            msg_type=row[4],
            sent=to_ts(row[5]),  # type: ignore[arg-type]
            references=tuple(json.loads(row[6])),
            geometry=json.loads(row[7]),
            properties=json.loads(row[8]),
        )

    def alert_messages(
        self, event: str | int | None = None, *, outage_id: str | None = None
    ) -> list[AlertMessage]:
        """Stored CAP messages (of one event / outage), oldest first."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if event is not None:
            where.append("event_id = :event")
            params["event"] = self.event_id(event)
        if outage_id is not None:
            where.append("outage_id = :outage")
            params["outage"] = outage_id
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.query(f"{self._ALERT_SQL}{clause} ORDER BY seq", params)
        return [self._alert(r) for r in rows]

    def alert_message(self, identifier: str) -> AlertMessage:
        """One CAP message by identifier; NotFound otherwise."""
        row = self.db.one(f"{self._ALERT_SQL} WHERE identifier = :id", {"id": identifier})
        if row is None:
            raise NotFound(f"no alert {identifier!r}")
        return self._alert(row)

    # -- features for the API ----------------------------------------------------------------
    def features(
        self,
        kind: str,
        event: str | int,
        *,
        bbox: BBox | None = None,
        interval: Interval | None = None,
        limit: int = 10,
        offset: int = 0,
        principal: Principal,
        filters: dict[str, Any] | None = None,
        count: bool = True,
    ) -> FeaturePage:
        """A page of GeoJSON Feature dicts of a collection and the number matched.

        ``kind`` is one of :data:`COLLECTION_KINDS`. ``bbox`` is (minlon, minlat, maxlon,
        maxlat); ``interval`` (start, end) with None for open ends. ``filters`` may hold
        ``network``, ``window`` (a window start, or ``"latest"``), ``state`` (grid),
        ``status`` (cells, measurements), ``period`` (measurements). Rows the principal
        may not read are never returned nor counted; the grid and coverage layers hide
        hexes with fewer than ``k_anonymity`` distinct devices from viewers and partners.
        ``count=False`` skips numberMatched (returned as -1).
        """
        query = _features.build(
            self,
            kind,
            event,
            bbox=bbox,
            interval=interval,
            principal=principal,
            filters=filters or {},
        )
        if limit < 0 or offset < 0:
            raise ParameterError("limit and offset must not be negative")
        return _features.page(self, query, limit=limit, offset=offset, count=count)

    def feature(
        self, kind: str, event: str | int, feature_id: str, *, principal: Principal
    ) -> dict[str, Any]:
        """One GeoJSON Feature; NotFound if absent or not readable by ``principal``."""
        query = _features.build(
            self,
            kind,
            event,
            bbox=None,
            interval=None,
            principal=principal,
            filters={"fid": feature_id},
        )
        found = _features.page(self, query, limit=1, offset=0, count=False).features
        if not found:
            raise NotFound(f"no feature {feature_id!r} in {kind} of event {event!r}")
        return found[0]

    def extent(
        self, kind: str, event: str | int, *, principal: Principal
    ) -> tuple[BBox | None, Interval]:
        """Spatial (bbox) and temporal extent of a collection for its metadata.

        The measurements extent scans every row of the event, so it is kept until a
        measurement is added (keyed by the readable datasets and the largest row id).
        """
        query = _features.build(
            self, kind, event, bbox=None, interval=None, principal=principal, filters={}
        )
        if kind != "measurements":
            return _features.extent(self, query)
        key = (
            self.event_id(event),
            tuple(query.params.values()),
            query.empty,
            self.db.scalar("SELECT max(id) FROM measurements"),
        )
        found = self._extents.get(key)
        if found is None:
            found = _features.extent(self, query)
            self._extents = {key: found}  # only the latest state is worth keeping
        return found

    # -- keys, grants, audit ---------------------------------------------------------------
    def create_key(
        self,
        name: str,
        *,
        role: str,
        grants: Iterable[int] = (),
        principal: Principal,
    ) -> tuple[ApiKey, str]:
        """Create an API key; returns the record and the clear token (shown once).

        Only the sha256 of the token is stored.
        """
        principal.require(principal.can_manage_keys(), "create API key")
        if role not in ROLES:
            raise ParameterError(f"unknown role {role!r} (use {', '.join(ROLES)})")
        grants = [int(g) for g in grants]
        for dataset_id in grants:
            self.get_dataset(dataset_id)
        token = "dcm_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        if self.db.scalar("SELECT id FROM api_keys WHERE name = :name", {"name": name}) is not None:
            raise Conflict(f"an API key named {name!r} exists")
        with self.db.transaction():
            key_id = self.db.scalar(
                "INSERT INTO api_keys (name, role, token_sha256, prefix, created_at) "
                "VALUES (:name, :role, :digest, :prefix, :created) RETURNING id",
                {
                    "name": name,
                    "role": role,
                    "digest": digest,
                    "prefix": token[:8],
                    "created": ts_text(_now()),
                },
            )
            self.db.executemany(
                "INSERT INTO grants (key_id, dataset_id) VALUES (:key, :dataset) "
                "ON CONFLICT DO NOTHING",
                [{"key": key_id, "dataset": g} for g in grants],
            )
            self.audit(
                principal,
                "key.create",
                f"key:{key_id}",
                {"name": name, "role": role, "grants": grants},
            )
        return self._key_by("id", int(key_id)), token

    def _key_by(self, column: str, value: Any) -> ApiKey:
        row = self.db.one(
            f"SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys "
            f"WHERE {column} = :value",
            {"value": value},
        )
        if row is None:
            raise NotFound(f"no API key {value!r}")
        grants = frozenset(
            int(r[0])
            for r in self.db.query(
                "SELECT dataset_id FROM grants WHERE key_id = :key", {"key": row[0]}
            )
        )
        return ApiKey(
            id=int(row[0]),
            name=row[1],
            role=row[2],
            prefix=row[3],
            created_at=to_ts(row[4]),  # type: ignore[arg-type]
            revoked_at=to_ts(row[5]),
            grants=grants,
        )

    def get_key(self, key: int | str) -> ApiKey:
        """A key by id or name."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            return self._key_by("id", int(key))
        return self._key_by("name", key)

    def list_keys(self) -> list[ApiKey]:
        rows = self.db.query("SELECT id FROM api_keys ORDER BY id")
        return [self._key_by("id", int(r[0])) for r in rows]

    def revoke_key(self, key: int | str, *, principal: Principal) -> ApiKey:
        """Revoke a key by id or name."""
        principal.require(principal.can_manage_keys(), "revoke API key")
        record = self.get_key(key)
        with self.db.transaction():
            self.db.execute(
                "UPDATE api_keys SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
                {"at": ts_text(_now()), "id": record.id},
            )
            self.audit(principal, "key.revoke", f"key:{record.id}", {"name": record.name})
        return self.get_key(record.id)

    def grant(self, key: int | str, dataset_id: int, *, principal: Principal) -> None:
        principal.require(principal.can_manage_keys(), "grant dataset")
        record, dataset = self.get_key(key), self.get_dataset(dataset_id)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO grants (key_id, dataset_id) VALUES (:key, :dataset) "
                "ON CONFLICT DO NOTHING",
                {"key": record.id, "dataset": dataset.id},
            )
            self.audit(principal, "grant.add", f"key:{record.id}", {"dataset": dataset.id})

    def revoke_grant(self, key: int | str, dataset_id: int, *, principal: Principal) -> None:
        principal.require(principal.can_manage_keys(), "revoke grant")
        record = self.get_key(key)
        with self.db.transaction():
            self.db.execute(
                "DELETE FROM grants WHERE key_id = :key AND dataset_id = :dataset",
                {"key": record.id, "dataset": int(dataset_id)},
            )
            self.audit(principal, "grant.remove", f"key:{record.id}", {"dataset": dataset_id})

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a clear API key; anonymous for None.

        Raises :class:`~dcm.errors.AuthenticationRequired` for an unknown or revoked key.
        """
        from dcm.errors import AuthenticationRequired

        if token is None or token == "":
            return Principal.anonymous()
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        row = self.db.one(
            "SELECT id, name, role, revoked_at FROM api_keys WHERE token_sha256 = :digest",
            {"digest": digest},
        )
        if row is None or row[3] is not None:
            raise AuthenticationRequired("unknown or revoked API key")
        grants = frozenset(
            int(r[0])
            for r in self.db.query(
                "SELECT dataset_id FROM grants WHERE key_id = :key", {"key": row[0]}
            )
        )
        return Principal(name=row[1], role=row[2], key_id=int(row[0]), grants=grants)

    def audit(
        self, principal: Principal, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit log entry."""
        self.db.execute(
            "INSERT INTO audit_log (at, key_id, actor, action, target, detail) "
            "VALUES (:at, :key, :actor, :action, :target, :detail)",
            {
                "at": ts_text(_now()),
                "key": principal.key_id,
                "actor": principal.name,
                "action": action,
                "target": target,
                "detail": _json(detail or {}),
            },
        )

    def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Latest audit entries, newest first."""
        rows = self.db.query(
            "SELECT id, at, key_id, actor, action, target, detail FROM audit_log "
            "ORDER BY id DESC LIMIT :limit",
            {"limit": int(limit)},
        )
        return [
            AuditEntry(
                id=int(r[0]),
                at=to_ts(r[1]),  # type: ignore[arg-type]
                key_id=None if r[2] is None else int(r[2]),
                actor=r[3],
                action=r[4],
                target=r[5],
                detail=json.loads(r[6]) if r[6] else {},
            )
            for r in rows
        ]


def _drop_stale_tmp(path: Path) -> None:
    """Remove partial copies of ``path`` left by processes that died while writing them
    (``.<sha256>.<pid>.tmp`` of a pid no longer running)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError, IndexError):
            continue


def _empty_outages() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(empty_frame(OUTAGE_COLUMNS), geometry=[], crs=CRS)


def _typed(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Cast columns read back from the database to the contract's dtypes."""
    for col, dtype in columns.items():
        if col not in frame.columns or dtype.startswith("datetime64"):
            continue
        if dtype == "string":
            frame[col] = frame[col].astype("string")
        elif dtype in ("Int64", "int64"):
            values = pd.to_numeric(frame[col]).astype("Int64")
            frame[col] = (
                values.astype("int64") if dtype == "int64" and values.notna().all() else values
            )
        else:
            frame[col] = pd.to_numeric(frame[col]).astype(dtype)  # type: ignore[call-overload]
    return frame


def open_store(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> Store:
    """Open (and migrate) the store named by ``url`` or ``settings``.

    ``sqlite:///path`` opens a SQLite file in WAL mode; ``postgresql://...`` a PostgreSQL
    database with PostGIS. Without either, ``Settings().resolved_database_url()``.
    ``pool_size`` and ``max_overflow`` bound the connections of its engine's pool.
    """
    settings = settings or Settings()
    db = Database(
        url or settings.resolved_database_url(),
        busy_timeout_s=settings.store_busy_timeout_s,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
    try:
        migrate(db)
    except StoreError:
        db.close()
        raise
    return Store(db, settings)
