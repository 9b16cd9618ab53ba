"""Measurements and the other input layers: cells, population, areas, hazard."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from dcm.errors import ParameterError
from dcm.schema import CELL_COLUMNS, CRS, MEASUREMENT_COLUMNS, POPULATION_COLUMNS, empty_frame
from dcm.store._db import frame_records, frame_rows, placeholders, to_ts, to_utc, ts_column, ts_text
from dcm.store.migrations import fill_rtree
from dcm.store.repositories.base import (
    _KEY_CHUNK,
    _MEASUREMENT_DB_COLUMNS,
    MEASUREMENT_H3_RESOLUTION,
    Repository,
    _bounds,
    _json,
    _typed,
    content_keys,
    geometry_columns,
)

#: PostgreSQL: an insert of at least this many rows (and a tenth of the table) refreshes
#: the planner's statistics (:meth:`MeasurementRepository.refresh_measurement_statistics`).
ANALYZE_MIN_ROWS = 10_000


class MeasurementRepository(Repository):
    """Rows of the input datasets, written in bulk and read back as frames."""

    # -- data rows -----------------------------------------------------------------------
    def insert_measurements(
        self,
        event: str | int,
        dataset_id: int,
        frame: pd.DataFrame,
        *,
        period: str,
        look_up: bool = True,
    ) -> pd.DataFrame:
        """Insert measurement rows (MEASUREMENT_COLUMNS) of ``period`` baseline|event.

        Rows already stored for the event (same measurement_id, else same content hash)
        are skipped. Returns the rows actually added. ``look_up=False``: the caller
        knows none of the rows is stored (the later batches of one dataset into a period
        that held no rows before it), so they are not looked up. A dataset may be
        inserted in several calls (batches) within one transaction.
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
        stored = look_up and self.db.one(
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
            # Ids grow: the rows of this call are those above the largest id before it.
            before = None if self.db.is_pg else self.db.scalar("SELECT max(id) FROM measurements")
            self.db.bulk_insert(
                "measurements", _MEASUREMENT_DB_COLUMNS, frame_rows(rows, _MEASUREMENT_DB_COLUMNS)
            )
            if not self.db.is_pg:  # PostGIS indexes the generated geom column itself
                fill_rtree(self.db, int(dataset_id), after=before)
        return new.drop(columns="mkey")

    def measurement_rows_estimate(self) -> float:
        """PostgreSQL: the planner's estimate of the measurement rows (``reltuples``; 0
        or below when unknown, e.g. never analysed)."""
        rows = self.db.scalar("SELECT reltuples FROM pg_class WHERE oid = 'measurements'::regclass")
        return float(rows or 0)

    def refresh_measurement_statistics(self, added: int) -> bool:
        """PostgreSQL: ``ANALYZE measurements`` after a large insert (at least
        :data:`ANALYZE_MIN_ROWS` rows and a tenth of the table), in its own short
        transaction; call it after the ingest has committed. Returns whether it ran.

        Without fresh statistics the planner takes a just-loaded event for a few rows
        and ANDs the event's whole index into every bbox query (36 ms instead of 5 ms
        on 500 k rows) until autovacuum catches up. Taken outside the ingest's
        transaction, the lock ANALYZE holds never waits on, nor blocks, another ingest's
        rows.
        """
        if not self.db.is_pg or added < ANALYZE_MIN_ROWS:
            return False
        if self.measurement_rows_estimate() > 10 * added:
            return False
        with self.db.transaction():
            self.db.execute("ANALYZE measurements")
        return True

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
