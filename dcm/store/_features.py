"""SQL for the API's collections: one query builder per kind, GeoJSON Feature dicts out.

Every query carries the access rules: dataset visibility for raw layers (measurements,
areas, hazard), the k-anonymity threshold on grid and coverage hexes, and the device
column only for admins. Bbox filters use the R*Tree (SQLite measurements), bbox columns
(SQLite polygons) or the PostGIS GiST indexes (``geom && ST_MakeEnvelope``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from dcm.errors import NotFound, ParameterError
from dcm.store._db import FID_FORMAT, to_ts, ts_text
from dcm.store.migrations import rtree_name
from dcm.store.models import COLLECTION_KINDS

if TYPE_CHECKING:
    from dcm.store.access import Principal
    from dcm.store.core import BBox, Interval, Store

Row = dict[str, Any]


@dataclass
class Query:
    """A SELECT split in parts so the same query can page, count and measure its extent."""

    source: str
    columns: list[str]
    to_feature: Callable[[Row], dict[str, Any]]
    order: str
    extent_bbox: str
    extent_time: str | None
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    empty: bool = False
    #: An id-only query (SQL, params) that finds the same rows from an index alone; the
    #: page then joins only the rows it returns.
    ids: tuple[str, list[Any]] | None = None
    #: PostgreSQL: the rows match a selective spatial filter (see :func:`page`).
    spatial: bool = False

    def add(self, clause: str, *params: Any) -> None:
        self.where.append(clause)
        self.params.extend(params)

    @property
    def where_sql(self) -> str:
        return " AND ".join(self.where) if self.where else "1 = 1"


def shown_id(feature_id: str, *, limit: int = 80) -> str:
    """A feature id for an error message: quoted, cut to ``limit`` characters."""
    text = feature_id if len(feature_id) <= limit else feature_id[: limit - 1] + "…"
    return repr(text)


def _iso(value: Any) -> str | None:
    ts = to_ts(value)
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: Any) -> Any:
    """Numbers for JSON: NaN and infinities (PostgreSQL keeps them) become None."""
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return value


def _parse_fid_time(text: str) -> str:
    try:
        return ts_text(pd.Timestamp(pd.to_datetime(text, format=FID_FORMAT, utc=True)))  # type: ignore[return-value]
    except ValueError as exc:
        raise NotFound(f"no feature with time {shown_id(text)}") from exc


def _bbox_polygons(store: Store, q: Query, alias: str, bbox: BBox) -> None:
    minx, miny, maxx, maxy = bbox
    if store.db.is_pg:
        q.add(f"{alias}.geom && ST_MakeEnvelope(?, ?, ?, ?, 4326)", minx, miny, maxx, maxy)
    else:
        q.add(
            f"{alias}.maxx >= ? AND {alias}.minx <= ? AND {alias}.maxy >= ? AND {alias}.miny <= ?",
            minx,
            maxx,
            miny,
            maxy,
        )


def _bbox_points(store: Store, q: Query, alias: str, bbox: BBox) -> None:
    minx, miny, maxx, maxy = bbox
    if store.db.is_pg:
        q.add(f"{alias}.geom && ST_MakeEnvelope(?, ?, ?, ?, 4326)", minx, miny, maxx, maxy)
    else:
        q.add(
            f"{alias}.lon BETWEEN ? AND ? AND {alias}.lat BETWEEN ? AND ?", minx, maxx, miny, maxy
        )


def _interval(q: Query, start_col: str, end_col: str, interval: Interval | None) -> None:
    """Keep rows whose [start, end) overlaps the interval (open ends allowed)."""
    if interval is None:
        return
    lo, hi = interval
    if lo is not None:
        q.add(f"{end_col} > ?", ts_text(lo))
    if hi is not None:
        q.add(f"{start_col} <= ?", ts_text(hi))


def _window_filter(q: Query, col: str, eid: int, value: Any) -> None:
    """Rows of one window (its start), or of the latest window that has results (which
    may have no outage at all: then nothing is returned, not an older window)."""
    if value is None:
        return
    if value == "latest":
        q.add(
            f"{col} = (SELECT max(window_start) FROM event_windows WHERE event_id = ? "
            "AND computed_at IS NOT NULL)",
            eid,
        )
    else:
        q.add(f"{col} = ?", ts_text(value))


def _readable(store: Store, q: Query, alias: str, event: str | int, principal: Principal) -> None:
    ids = store.readable_dataset_ids(event, principal)
    if ids is None:
        return
    if not ids:
        q.empty = True
        return
    q.add(f"{alias}.dataset_id IN ({', '.join('?' * len(ids))})", *ids)


def _rtree_bbox(store: Store, q: Query, eid: int, bbox: BBox, principal: Principal) -> None:
    """Measurement ids in ``bbox`` from the SQLite R*Trees of the event, one per visibility.

    Trees the caller reads in full are scanned alone (fast); where only some datasets
    are granted, candidates are joined to their rows to test the dataset. R*Tree bounds
    are 32-bit floats rounded outwards, so points within ~4e-6° (~0.4 m) outside the box
    edge can match; no exact re-test is made, so that pages and counts stay index-only.
    """
    minx, miny, maxx, maxy = bbox
    box = "x0 <= ? AND x1 >= ? AND y0 <= ? AND y1 >= ?"
    box_params = [maxx, minx, maxy, miny]
    datasets = store.db.query(
        "SELECT id, visibility FROM datasets WHERE event_id = ? AND kind IN "
        "('measurements', 'baseline')",
        (eid,),
    )
    tables = {
        name
        for (name,) in store.db.query(
            "SELECT name FROM sqlite_master WHERE name LIKE ?", (f"measurements_rtree_{eid}_%",)
        )
    }
    parts: list[str] = []
    params: list[Any] = []
    for visibility in ("public", "partner", "restricted"):
        table = rtree_name(eid, visibility)
        if table not in tables:
            continue
        ids = [int(i) for i, vis in datasets if vis == visibility]
        readable = [i for i in ids if principal.can_read_visibility(visibility, i)]
        if not readable:
            continue
        if len(readable) == len(ids):
            parts.append(f"SELECT id FROM {table} WHERE {box}")
            params.extend(box_params)
        else:
            marks = ", ".join("?" * len(readable))
            parts.append(
                f"SELECT r.id FROM {table} r JOIN measurements d ON d.id = r.id "
                f"WHERE r.{box.replace(' AND ', ' AND r.')} AND d.dataset_id IN ({marks})"
            )
            params.extend([*box_params, *readable])
    if not parts:
        q.empty = True
        return
    union = " UNION ALL ".join(parts)
    q.ids = (union, params)
    q.add(f"m.id IN ({union})", *params)


def _outage_feature(r: Row) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": r["fid"],
        "geometry": json.loads(r["geojson"]),
        "properties": {
            "outage_id": r["outage_id"],
            "window_start": _iso(r["window_start"]),
            "window_end": _iso(r["window_end"]),
            "network": r["network"],
            "severity": r["severity"],
            "tier": r["tier"],
            "certainty": r["certainty"],
            "confidence": _num(r["confidence"]),
            "area_km2": _num(r["area_km2"]),
            "population": _num(r["population"]),
            "cells_offline": r["cells_offline"],
            "onset": _iso(r["onset"]),
        },
    }


def _cell_feature(r: Row) -> dict[str, Any]:
    geometry = (
        None
        if r["lon"] is None or r["lat"] is None
        else {"type": "Point", "coordinates": [round(r["lon"], 7), round(r["lat"], 7)]}
    )
    return {
        "type": "Feature",
        "id": r["fid"],
        "geometry": geometry,
        "properties": {
            "radio": r["radio"],
            "mcc": r["mcc"],
            "net": r["net"],
            "area": r["area"],
            "cell": r["cell"],
            "network": r["network"],
            "site_id": r["site_id"],
            "status": r["status"],
            "start": _iso(r["start_time"]),
            "end": _iso(r["end_time"]),
            "p_offline": _num(r["p_offline"]),
            "silence_h_needed": _num(r["silence_h_needed"]),
            "offline_since": _iso(r["offline_since"]),
        },
    }


def _grid_feature(r: Row) -> dict[str, Any]:
    start = to_ts(r["window_start"])
    fid = f"{r['h3']}_{r['network']}_{start.strftime(FID_FORMAT)}"  # type: ignore[union-attr]
    return {
        "type": "Feature",
        "id": fid,
        "geometry": json.loads(r["geojson"]),
        "properties": {
            "h3": r["h3"],
            "network": r["network"],
            "window_start": _iso(r["window_start"]),
            "window_end": _iso(r["window_end"]),
            "expected_count": _num(r["expected_count"]),
            "observed_count": r["observed_count"],
            "ok_count": r["ok_count"],
            "fail_count": r["fail_count"],
            "state": r["state"],
            "p_down": _num(r["p_down"]),
        },
    }


def _coverage_feature(r: Row) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f"{r['h3']}_{r['network']}",
        "geometry": json.loads(r["geojson"]),
        "properties": {
            "h3": r["h3"],
            "network": r["network"],
            "measurements": r["measurements"],
            "ok_count": r["ok_count"],
            "fail_count": r["fail_count"],
            "ok_share": (r["ok_count"] / r["measurements"]) if r["measurements"] else None,
        },
    }


_MEASUREMENT_PROPS = (
    "dataset_id",
    "period",
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
)


def _measurement_feature(r: Row) -> dict[str, Any]:
    props = {"timestamp": _iso(r["ts"])}
    props.update({k: _num(r[k]) for k in _MEASUREMENT_PROPS})
    if "device" in r:
        props["device"] = r["device"]
    return {
        "type": "Feature",
        "id": str(r["id"]),
        "geometry": {"type": "Point", "coordinates": [round(r["lon"], 7), round(r["lat"], 7)]},
        "properties": props,
    }


def _shape_feature(id_col: str, extra: str) -> Callable[[Row], dict[str, Any]]:
    def feature(r: Row) -> dict[str, Any]:
        props = json.loads(r["properties"]) if r["properties"] else {}
        props[id_col] = r[id_col]
        props[extra] = r[extra]
        return {
            "type": "Feature",
            "id": r[id_col],
            "geometry": json.loads(r["geojson"]),
            "properties": props,
        }

    return feature


def build(
    store: Store,
    kind: str,
    event: str | int,
    *,
    bbox: BBox | None,
    interval: Interval | None,
    principal: Principal,
    filters: dict[str, Any],
) -> Query:
    """The query of collection ``kind`` of ``event`` as seen by ``principal``."""
    if kind not in COLLECTION_KINDS:
        raise NotFound(f"no collection kind {kind!r} (use {', '.join(COLLECTION_KINDS)})")
    if bbox is not None:
        if len(bbox) != 4 or bbox[0] > bbox[2] or bbox[1] > bbox[3]:
            raise ParameterError(f"bbox must be minlon,minlat,maxlon,maxlat, got {bbox}")
        bbox = tuple(float(v) for v in bbox)  # type: ignore[assignment]
    eid = store.event_id(event)
    k = int(store.settings.k_anonymity)
    fid = filters.get("fid")

    if kind == "outages":
        q = Query(
            source="outages o",
            columns=[
                "o.fid",
                "o.outage_id",
                "o.window_start",
                "o.window_end",
                "o.network",
                "o.severity",
                "o.tier",
                "o.certainty",
                "o.confidence",
                "o.area_km2",
                "o.population",
                "o.cells_offline",
                "o.onset",
                "o.geojson",
            ],
            to_feature=_outage_feature,
            order="o.window_start, o.outage_id",
            extent_bbox="min(o.minx), min(o.miny), max(o.maxx), max(o.maxy)",
            extent_time="min(o.window_start), max(o.window_end)",
        )
        q.add("o.event_id = ?", eid)
        if bbox:
            _bbox_polygons(store, q, "o", bbox)
        _interval(q, "o.window_start", "o.window_end", interval)
        _window_filter(q, "o.window_start", eid, filters.get("window"))
        if filters.get("network"):
            q.add("o.network = ?", filters["network"])
        for name in ("severity", "tier"):
            if filters.get(name):
                q.add(f"o.{name} = ?", filters[name])
        if fid is not None:
            q.add("o.fid = ?", fid)
    elif kind == "cells":
        q = Query(
            source="cell_status c",
            columns=[
                "c.fid",
                "c.radio",
                "c.mcc",
                "c.net",
                "c.area",
                "c.cell",
                "c.network",
                "c.site_id",
                "c.status",
                "c.start_time",
                "c.end_time",
                "c.p_offline",
                "c.silence_h_needed",
                "c.offline_since",
                "c.lon",
                "c.lat",
            ],
            to_feature=_cell_feature,
            order="c.start_time, c.id",
            extent_bbox="min(c.lon), min(c.lat), max(c.lon), max(c.lat)",
            extent_time="min(c.start_time), max(c.end_time)",
        )
        q.add("c.event_id = ?", eid)
        if bbox:
            _bbox_points(store, q, "c", bbox)
        _interval(q, "c.start_time", "c.end_time", interval)
        _window_filter(q, "c.start_time", eid, filters.get("window"))
        for name in ("network", "status"):
            if filters.get(name):
                q.add(f"c.{name} = ?", filters[name])
        if fid is not None:
            q.add("c.fid = ?", fid)
    elif kind == "grid":
        q = Query(
            source="grid g JOIN hexes h ON h.h3 = g.h3",
            columns=[
                "g.h3",
                "g.network",
                "g.window_start",
                "g.window_end",
                "g.expected_count",
                "g.observed_count",
                "g.ok_count",
                "g.fail_count",
                "g.state",
                "g.p_down",
                "h.geojson",
            ],
            to_feature=_grid_feature,
            order="g.window_start, g.h3, g.network",
            extent_bbox="min(h.minx), min(h.miny), max(h.maxx), max(h.maxy)",
            extent_time="min(g.window_start), max(g.window_end)",
        )
        q.add("g.event_id = ?", eid)
        if principal.applies_k_anonymity():
            q.add("g.devices >= ?", k)
        if bbox:
            _bbox_polygons(store, q, "h", bbox)
        _interval(q, "g.window_start", "g.window_end", interval)
        _window_filter(q, "g.window_start", eid, filters.get("window"))
        for name in ("network", "state"):
            if filters.get(name):
                q.add(f"g.{name} = ?", filters[name])
        if fid is not None:
            parts = str(fid).split("_")
            if len(parts) != 3:
                raise NotFound(f"no grid feature {shown_id(str(fid))}")
            q.add(
                "g.h3 = ? AND g.network = ? AND g.window_start = ?",
                parts[0],
                parts[1],
                _parse_fid_time(parts[2]),
            )
    elif kind == "coverage":
        q = Query(
            source="coverage v JOIN hexes h ON h.h3 = v.h3",
            columns=[
                "v.h3",
                "v.network",
                "v.measurements",
                "v.ok_count",
                "v.fail_count",
                "h.geojson",
            ],
            to_feature=_coverage_feature,
            order="v.h3, v.network",
            extent_bbox="min(h.minx), min(h.miny), max(h.maxx), max(h.maxy)",
            extent_time=None,
        )
        q.add("v.event_id = ?", eid)
        if principal.applies_k_anonymity():
            q.add("v.devices >= ?", k)
        if bbox:
            _bbox_polygons(store, q, "h", bbox)
        if filters.get("network"):
            q.add("v.network = ?", filters["network"])
        if fid is not None:
            h3_id, _, network = str(fid).partition("_")
            q.add("v.h3 = ? AND v.network = ?", h3_id, network)
    elif kind == "measurements":
        cols = ["m.id", "m.ts", "m.lon", "m.lat", *(f"m.{c}" for c in _MEASUREMENT_PROPS)]
        if principal.sees_devices():
            cols.append("m.device")
        q = Query(
            source="measurements m",
            columns=cols,
            to_feature=_measurement_feature,
            order="m.id",
            extent_bbox="min(m.lon), min(m.lat), max(m.lon), max(m.lat)",
            extent_time="min(m.ts), max(m.ts)",
        )
        q.add("m.event_id = ?", eid)
        if bbox and not store.db.is_pg:
            _rtree_bbox(store, q, eid, bbox, principal)
            plain = (
                interval is None
                and fid is None
                and not any(filters.get(name) for name in ("network", "status", "period"))
            )
            if not plain:
                q.ids = None  # the ids subquery stays a condition of the row query
        else:
            if bbox:
                minx, miny, maxx, maxy = bbox
                q.add("m.geom && ST_MakeEnvelope(?, ?, ?, ?, 4326)", minx, miny, maxx, maxy)
                q.spatial = True
            _readable(store, q, "m", event, principal)
        if interval is not None:
            lo, hi = interval
            if lo is not None:
                q.add("m.ts >= ?", ts_text(lo))
            if hi is not None:
                q.add("m.ts <= ?", ts_text(hi))
        for name in ("network", "status", "period"):
            if filters.get(name):
                q.add(f"m.{name} = ?", filters[name])
        if fid is not None:
            # ASCII digits within a 64-bit id: int() also reads '²' or Arabic digits, and
            # SQLite cannot bind a larger integer.
            # The length first: int() refuses strings of more than 4,300 digits.
            text = str(fid)
            if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) >= 2**63:
                raise NotFound(f"no measurement {shown_id(text)}")
            q.add("m.id = ?", int(fid))
    else:  # areas, hazard
        table, id_col, extra = (
            ("areas", "area_id", "name") if kind == "areas" else ("hazard", "hazard_id", "level")
        )
        q = Query(
            source=f"{table} s",
            columns=[f"s.{id_col}", f"s.{extra}", "s.properties", "s.geojson"],
            to_feature=_shape_feature(id_col, extra),
            order="s.id",
            extent_bbox="min(s.minx), min(s.miny), max(s.maxx), max(s.maxy)",
            extent_time=None,
        )
        q.add("s.event_id = ?", eid)
        _readable(store, q, "s", event, principal)
        if bbox:
            _bbox_polygons(store, q, "s", bbox)
        if fid is not None:
            q.add(f"s.{id_col} = ?", str(fid))
    return q


def page(store: Store, q: Query, *, limit: int, offset: int, count: bool) -> Any:
    """Run ``q`` for one page (and its count) and convert rows to Feature dicts."""
    from dcm.store.models import FeaturePage

    if q.empty:
        return FeaturePage([], 0 if count else -1)
    names = [c.split(".", 1)[-1] for c in q.columns]
    if q.ids is not None:
        # Page through the index alone, then read only the rows of this page.
        ids_sql, ids_params = q.ids
        rows = store.db.query(
            f"SELECT {', '.join(q.columns)} FROM measurements m WHERE m.id IN "
            f"(SELECT id FROM ({ids_sql}) AS ids ORDER BY id LIMIT ? OFFSET ?) ORDER BY m.id",
            (*ids_params, int(limit), int(offset)),
        )
        count_sql, count_params = f"SELECT count(*) FROM ({ids_sql}) AS ids", ids_params
    else:
        count_sql = f"SELECT count(*) FROM {q.source} WHERE {q.where_sql}"
        count_params = q.params
        order = q.order
        if q.spatial and count:
            # PostgreSQL walks the primary key for ORDER BY id LIMIT n, testing each row
            # against the box: fast when the box holds much of the table, slow for a small
            # box. When the (GiST) count shows a small share, order by an expression so
            # the planner collects the few matches from the spatial index and sorts them.
            matched = int(store.db.scalar(count_sql, count_params))
            table_rows = store.db.scalar(
                "SELECT reltuples FROM pg_class WHERE oid = 'measurements'::regclass"
            )
            if matched * 20 < max(float(table_rows or 0), 1.0):
                order = "m.id + 0"
            rows = store.db.query(
                f"SELECT {', '.join(q.columns)} FROM {q.source} WHERE {q.where_sql} "
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                (*q.params, int(limit), int(offset)),
            )
            features = [q.to_feature(dict(zip(names, r, strict=True))) for r in rows]
            return FeaturePage(features, matched)
        rows = store.db.query(
            f"SELECT {', '.join(q.columns)} FROM {q.source} WHERE {q.where_sql} "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            (*q.params, int(limit), int(offset)),
        )
    features = [q.to_feature(dict(zip(names, r, strict=True))) for r in rows]
    if not count:
        matched = -1
    elif offset == 0 and len(features) < limit:
        matched = len(features)  # the whole result fits in this page: no second query
    else:
        matched = int(store.db.scalar(count_sql, count_params))
    return FeaturePage(features, matched)


def extent(store: Store, q: Query) -> tuple[Any, Any]:
    """(bbox or None, (start, end)) of everything ``q`` matches."""
    if q.empty:
        return None, (None, None)
    cols = q.extent_bbox + (f", {q.extent_time}" if q.extent_time else "")
    row = store.db.one(f"SELECT {cols} FROM {q.source} WHERE {q.where_sql}", q.params)
    if row is None or row[0] is None:
        return None, (None, None)
    bbox = tuple(float(v) for v in row[:4])
    times = (to_ts(row[4]), to_ts(row[5])) if q.extent_time else (None, None)
    return bbox, times
