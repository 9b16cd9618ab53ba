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
    #: Values of the bound parameters named by :meth:`bind` (``:p0``, ``:p1``, …).
    params: dict[str, Any] = field(default_factory=dict)
    empty: bool = False
    #: An id-only query (SQL, with parameters of ``params``) that finds the same rows from
    #: an index alone; the page then joins only the rows it returns.
    ids: str | None = None
    #: PostgreSQL: the rows match a selective spatial filter (see :func:`page`).
    spatial: bool = False

    def bind(self, value: Any) -> str:
        """A new bound parameter holding ``value``; returns its ``:name`` for the SQL."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def add(self, clause: str) -> None:
        """AND a condition (its values bound with :meth:`bind`)."""
        self.where.append(clause)

    @property
    def where_sql(self) -> str:
        return " AND ".join(self.where) if self.where else "1 = 1"


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
        raise NotFound(f"no feature with time {text!r}") from exc


def _envelope(q: Query, bbox: BBox) -> str:
    """PostGIS box of ``bbox`` (WGS84), its corners bound as parameters of ``q``."""
    return f"ST_MakeEnvelope({', '.join(q.bind(float(v)) for v in bbox)}, 4326)"


def _bbox_polygons(store: Store, q: Query, alias: str, bbox: BBox) -> None:
    minx, miny, maxx, maxy = bbox
    if store.db.is_pg:
        q.add(f"{alias}.geom && {_envelope(q, bbox)}")
    else:
        q.add(
            f"{alias}.maxx >= {q.bind(minx)} AND {alias}.minx <= {q.bind(maxx)} "
            f"AND {alias}.maxy >= {q.bind(miny)} AND {alias}.miny <= {q.bind(maxy)}"
        )


def _bbox_points(store: Store, q: Query, alias: str, bbox: BBox) -> None:
    minx, miny, maxx, maxy = bbox
    if store.db.is_pg:
        q.add(f"{alias}.geom && {_envelope(q, bbox)}")
    else:
        q.add(
            f"{alias}.lon BETWEEN {q.bind(minx)} AND {q.bind(maxx)} "
            f"AND {alias}.lat BETWEEN {q.bind(miny)} AND {q.bind(maxy)}"
        )


def _interval(q: Query, start_col: str, end_col: str, interval: Interval | None) -> None:
    """Keep rows whose [start, end) overlaps the interval (open ends allowed)."""
    if interval is None:
        return
    lo, hi = interval
    if lo is not None:
        q.add(f"{end_col} > {q.bind(ts_text(lo))}")
    if hi is not None:
        q.add(f"{start_col} <= {q.bind(ts_text(hi))}")


def _window_filter(q: Query, col: str, eid: int, value: Any) -> None:
    """Rows of one window (its start), or of the latest window that has results (which
    may have no outage at all: then nothing is returned, not an older window)."""
    if value is None:
        return
    if value == "latest":
        q.add(
            f"{col} = (SELECT max(window_start) FROM event_windows "
            f"WHERE event_id = {q.bind(eid)} AND computed_at IS NOT NULL)"
        )
    else:
        q.add(f"{col} = {q.bind(ts_text(value))}")


def _readable(store: Store, q: Query, alias: str, event: str | int, principal: Principal) -> None:
    ids = store.readable_dataset_ids(event, principal)
    if ids is None:
        return
    if not ids:
        q.empty = True
        return
    q.add(f"{alias}.dataset_id IN ({', '.join(q.bind(i) for i in ids)})")


def _rtree_bbox(store: Store, q: Query, eid: int, bbox: BBox, principal: Principal) -> None:
    """Measurement ids in ``bbox`` from the SQLite R*Trees of the event, one per visibility.

    Trees the caller reads in full are scanned alone (fast); where only some datasets
    are granted, candidates are joined to their rows to test the dataset. R*Tree bounds
    are 32-bit floats rounded outwards, so points within ~4e-6° (~0.4 m) outside the box
    edge can match; no exact re-test is made, so that pages and counts stay index-only.
    """
    minx, miny, maxx, maxy = bbox
    box = (
        f"x0 <= {q.bind(maxx)} AND x1 >= {q.bind(minx)} "
        f"AND y0 <= {q.bind(maxy)} AND y1 >= {q.bind(miny)}"
    )
    datasets = store.db.query(
        "SELECT id, visibility FROM datasets WHERE event_id = :event AND kind IN "
        "('measurements', 'baseline')",
        {"event": eid},
    )
    tables = {
        name
        for (name,) in store.db.query(
            "SELECT name FROM sqlite_master WHERE name LIKE :pattern",
            {"pattern": f"measurements_rtree_{eid}_%"},
        )
    }
    parts: list[str] = []
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
        else:
            marks = ", ".join(q.bind(i) for i in readable)
            parts.append(
                f"SELECT r.id FROM {table} r JOIN measurements d ON d.id = r.id "
                f"WHERE r.{box.replace(' AND ', ' AND r.')} AND d.dataset_id IN ({marks})"
            )
    if not parts:
        q.empty = True
        return
    union = " UNION ALL ".join(parts)
    q.ids = union
    q.add(f"m.id IN ({union})")


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
        q.add(f"o.event_id = {q.bind(eid)}")
        if bbox:
            _bbox_polygons(store, q, "o", bbox)
        _interval(q, "o.window_start", "o.window_end", interval)
        _window_filter(q, "o.window_start", eid, filters.get("window"))
        if filters.get("network"):
            q.add(f"o.network = {q.bind(filters['network'])}")
        for name in ("severity", "tier"):
            if filters.get(name):
                q.add(f"o.{name} = {q.bind(filters[name])}")
        if fid is not None:
            q.add(f"o.fid = {q.bind(fid)}")
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
                "c.lon",
                "c.lat",
            ],
            to_feature=_cell_feature,
            order="c.start_time, c.id",
            extent_bbox="min(c.lon), min(c.lat), max(c.lon), max(c.lat)",
            extent_time="min(c.start_time), max(c.end_time)",
        )
        q.add(f"c.event_id = {q.bind(eid)}")
        if bbox:
            _bbox_points(store, q, "c", bbox)
        _interval(q, "c.start_time", "c.end_time", interval)
        _window_filter(q, "c.start_time", eid, filters.get("window"))
        for name in ("network", "status"):
            if filters.get(name):
                q.add(f"c.{name} = {q.bind(filters[name])}")
        if fid is not None:
            q.add(f"c.fid = {q.bind(fid)}")
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
        q.add(f"g.event_id = {q.bind(eid)}")
        if principal.applies_k_anonymity():
            q.add(f"g.devices >= {q.bind(k)}")
        if bbox:
            _bbox_polygons(store, q, "h", bbox)
        _interval(q, "g.window_start", "g.window_end", interval)
        _window_filter(q, "g.window_start", eid, filters.get("window"))
        for name in ("network", "state"):
            if filters.get(name):
                q.add(f"g.{name} = {q.bind(filters[name])}")
        if fid is not None:
            parts = str(fid).split("_")
            if len(parts) != 3:
                raise NotFound(f"no grid feature {fid!r}")
            q.add(
                f"g.h3 = {q.bind(parts[0])} AND g.network = {q.bind(parts[1])} "
                f"AND g.window_start = {q.bind(_parse_fid_time(parts[2]))}"
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
        q.add(f"v.event_id = {q.bind(eid)}")
        if principal.applies_k_anonymity():
            q.add(f"v.devices >= {q.bind(k)}")
        if bbox:
            _bbox_polygons(store, q, "h", bbox)
        if filters.get("network"):
            q.add(f"v.network = {q.bind(filters['network'])}")
        if fid is not None:
            h3_id, _, network = str(fid).partition("_")
            q.add(f"v.h3 = {q.bind(h3_id)} AND v.network = {q.bind(network)}")
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
        q.add(f"m.event_id = {q.bind(eid)}")
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
                q.add(f"m.geom && {_envelope(q, bbox)}")
                q.spatial = True
            _readable(store, q, "m", event, principal)
        if interval is not None:
            lo, hi = interval
            if lo is not None:
                q.add(f"m.ts >= {q.bind(ts_text(lo))}")
            if hi is not None:
                q.add(f"m.ts <= {q.bind(ts_text(hi))}")
        for name in ("network", "status", "period"):
            if filters.get(name):
                q.add(f"m.{name} = {q.bind(filters[name])}")
        if fid is not None:
            # ASCII digits within a 64-bit id: int() also reads '²' or Arabic digits, and
            # SQLite cannot bind a larger integer.
            if not (str(fid).isascii() and str(fid).isdigit()) or int(fid) >= 2**63:
                raise NotFound(f"no measurement {fid!r}")
            q.add(f"m.id = {q.bind(int(fid))}")
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
        q.add(f"s.event_id = {q.bind(eid)}")
        _readable(store, q, "s", event, principal)
        if bbox:
            _bbox_polygons(store, q, "s", bbox)
        if fid is not None:
            q.add(f"s.{id_col} = {q.bind(str(fid))}")
    return q


def page(store: Store, q: Query, *, limit: int, offset: int, count: bool) -> Any:
    """Run ``q`` for one page (and its count) and convert rows to Feature dicts."""
    from dcm.store.models import FeaturePage

    if q.empty:
        return FeaturePage([], 0 if count else -1)
    names = [c.split(".", 1)[-1] for c in q.columns]
    if q.ids is not None:
        # Page through the index alone, then read only the rows of this page.
        rows = store.db.query(
            f"SELECT {', '.join(q.columns)} FROM measurements m WHERE m.id IN "
            f"(SELECT id FROM ({q.ids}) AS ids ORDER BY id LIMIT :limit OFFSET :offset) "
            "ORDER BY m.id",
            {**q.params, "limit": int(limit), "offset": int(offset)},
        )
        count_sql = f"SELECT count(*) FROM ({q.ids}) AS ids"
    else:
        count_sql = f"SELECT count(*) FROM {q.source} WHERE {q.where_sql}"
        order = q.order
        if q.spatial and count:
            # PostgreSQL walks the primary key for ORDER BY id LIMIT n, testing each row
            # against the box: fast when the box holds much of the table, slow for a small
            # box. When the (GiST) count shows a small share, order by an expression so
            # the planner collects the few matches from the spatial index and sorts them.
            matched = int(store.db.scalar(count_sql, q.params))
            table_rows = store.db.scalar(
                "SELECT reltuples FROM pg_class WHERE oid = 'measurements'::regclass"
            )
            if matched * 20 < max(float(table_rows or 0), 1.0):
                order = "m.id + 0"
            rows = store.db.query(
                f"SELECT {', '.join(q.columns)} FROM {q.source} WHERE {q.where_sql} "
                f"ORDER BY {order} LIMIT :limit OFFSET :offset",
                {**q.params, "limit": int(limit), "offset": int(offset)},
            )
            features = [q.to_feature(dict(zip(names, r, strict=True))) for r in rows]
            return FeaturePage(features, matched)
        rows = store.db.query(
            f"SELECT {', '.join(q.columns)} FROM {q.source} WHERE {q.where_sql} "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset",
            {**q.params, "limit": int(limit), "offset": int(offset)},
        )
    features = [q.to_feature(dict(zip(names, r, strict=True))) for r in rows]
    if not count:
        matched = -1
    elif offset == 0 and len(features) < limit:
        matched = len(features)  # the whole result fits in this page: no second query
    else:
        matched = int(store.db.scalar(count_sql, q.params))
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
