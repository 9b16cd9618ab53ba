"""SQL for the API's collections: layers described as data (:data:`LAYERS`), one query
builder (:func:`build`), GeoJSON Feature dicts out.

Every query carries the access rules: dataset visibility for raw layers (measurements,
areas, hazard), the k-anonymity threshold on grid and coverage hexes, and the device
column only for admins. Bbox filters use the R*Tree (SQLite measurements), bbox columns
(SQLite polygons) or the PostGIS GiST indexes (``geom && ST_MakeEnvelope``, built with
GeoAlchemy2 from the geometry described in :mod:`dcm.store.postgis`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from dcm.errors import NotFound, ParameterError
from dcm.store import postgis
from dcm.store._db import FID_FORMAT, to_ts, ts_text
from dcm.store.migrations import rtree_name
from dcm.store.models import CELL_STATUS_STORED, COLLECTION_KINDS

if TYPE_CHECKING:
    from dcm.store.access import Principal
    from dcm.store.core import BBox, Interval, Store

Row = dict[str, Any]

#: PostgreSQL bbox pages of measurements: up to this many matches are collected from
#: the spatial index and sorted (a top-N sort of 50 k rows takes a few ms) rather than
#: found by walking the primary key.
SORT_MATCHES_MAX = 50_000


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

    def parameter(self, value: Any) -> sa.BindParameter[Any]:
        """:meth:`bind` for a SQLAlchemy expression: the bound parameter itself."""
        name = self.bind(value)[1:]
        return sa.bindparam(name, value)

    def add(self, clause: str) -> None:
        """AND a condition (its values bound with :meth:`bind`)."""
        self.where.append(clause)

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


def _bbox_polygons(q: Query, alias: str, bbox: BBox) -> None:
    """SQLite: rows whose bbox columns (``minx`` … ``maxy``) meet ``bbox``."""
    minx, miny, maxx, maxy = bbox
    q.add(
        f"{alias}.maxx >= {q.bind(minx)} AND {alias}.minx <= {q.bind(maxx)} "
        f"AND {alias}.maxy >= {q.bind(miny)} AND {alias}.miny <= {q.bind(maxy)}"
    )


def _bbox_points(q: Query, alias: str, bbox: BBox) -> None:
    """SQLite: rows whose ``lon``/``lat`` lie in ``bbox``."""
    minx, miny, maxx, maxy = bbox
    q.add(
        f"{alias}.lon BETWEEN {q.bind(minx)} AND {q.bind(maxx)} "
        f"AND {alias}.lat BETWEEN {q.bind(miny)} AND {q.bind(maxy)}"
    )


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


@dataclass(frozen=True)
class Layer:
    """One collection described as data: its table, columns, geometry, time and access
    rule; :func:`build` turns any of them into a :class:`Query`."""

    #: Table of its rows and the alias its columns are qualified with.
    table: str
    alias: str
    #: Columns selected (of the table, or ``h.geojson`` of the hexes it joins).
    columns: tuple[str, ...]
    order: str
    to_feature: Callable[[Row], dict[str, Any]]
    #: ``point`` (lon/lat columns, PostGIS point ``geom``), ``shape`` (bbox columns and a
    #: PostGIS ``geom`` of its own) or ``hex`` (the polygon of its ``h3`` in ``hexes``).
    geometry: str
    #: Start and end columns of the time a row covers (None: no time).
    time: tuple[str, str] | None
    #: Access rule: ``results`` (everyone), ``k_anonymity`` (hexes with fewer distinct
    #: devices hidden from viewers and partners) or ``datasets`` (rows of readable
    #: datasets only).
    access: str
    #: Equality filters accepted (``filters={name: value}``).
    filters: tuple[str, ...] = ()
    #: Column of the window filter (``window``: a window start, or ``"latest"``).
    window: str | None = None
    #: Feature id → {column: value}; NotFound for an id this layer never gives out.
    fid: Callable[[str], dict[str, Any]] = lambda fid: {"fid": fid}
    #: Rows are instants (``start <= t <= end``), not spans that overlap the interval.
    instant: bool = False
    #: The measurement points: SQLite R*Trees per event and visibility, PostgreSQL row
    #: order by selectivity (see :func:`page`); the device column only for admins.
    measurements: bool = False

    @property
    def source(self) -> str:
        if self.geometry == "hex":
            return f"{self.table} {self.alias} JOIN hexes h ON h.h3 = {self.alias}.h3"
        return f"{self.table} {self.alias}"

    @property
    def geometry_alias(self) -> str:
        return "h" if self.geometry == "hex" else self.alias

    @property
    def extent_bbox(self) -> str:
        a = self.geometry_alias
        if self.geometry == "point":
            return f"min({a}.lon), min({a}.lat), max({a}.lon), max({a}.lat)"
        return f"min({a}.minx), min({a}.miny), max({a}.maxx), max({a}.maxy)"

    @property
    def extent_time(self) -> str | None:
        if self.time is None:
            return None
        start, end = self.time
        return f"min({self.alias}.{start}), max({self.alias}.{end})"


def _grid_fid(fid: str) -> dict[str, Any]:
    parts = str(fid).split("_")
    if len(parts) != 3:
        raise NotFound(f"no grid feature {shown_id(str(fid))}")
    return {"h3": parts[0], "network": parts[1], "window_start": _parse_fid_time(parts[2])}


def _coverage_fid(fid: str) -> dict[str, Any]:
    h3_id, _, network = str(fid).partition("_")
    return {"h3": h3_id, "network": network}


def _measurement_fid(fid: str) -> dict[str, Any]:
    # ASCII digits within a 64-bit id: int() also reads '²' or Arabic digits, and SQLite
    # cannot bind a larger integer. The length first: int() refuses strings of more than
    # 4,300 digits.
    text = str(fid)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) >= 2**63:
        raise NotFound(f"no measurement {shown_id(text)}")
    return {"id": int(text)}


def _shape_layer(table: str, id_col: str, extra: str) -> Layer:
    return Layer(
        table=table,
        alias="s",
        columns=(id_col, extra, "properties", "geojson"),
        order="s.id",
        to_feature=_shape_feature(id_col, extra),
        geometry="shape",
        time=None,
        access="datasets",
        fid=lambda fid: {id_col: str(fid)},
    )


LAYERS: dict[str, Layer] = {
    "outages": Layer(
        table="outages",
        alias="o",
        columns=(
            "fid",
            "outage_id",
            "window_start",
            "window_end",
            "network",
            "severity",
            "tier",
            "certainty",
            "confidence",
            "area_km2",
            "population",
            "cells_offline",
            "onset",
            "geojson",
        ),
        order="o.window_start, o.outage_id",
        to_feature=_outage_feature,
        geometry="shape",
        time=("window_start", "window_end"),
        access="results",
        filters=("network", "severity", "tier"),
        window="window_start",
    ),
    "cells": Layer(
        table="cell_status",
        alias="c",
        columns=CELL_STATUS_STORED,
        order="c.start_time, c.id",
        to_feature=_cell_feature,
        geometry="point",
        time=("start_time", "end_time"),
        access="results",
        filters=("network", "status"),
        window="start_time",
    ),
    "grid": Layer(
        table="grid",
        alias="g",
        columns=(
            "h3",
            "network",
            "window_start",
            "window_end",
            "expected_count",
            "observed_count",
            "ok_count",
            "fail_count",
            "state",
            "p_down",
            "h.geojson",
        ),
        order="g.window_start, g.h3, g.network",
        to_feature=_grid_feature,
        geometry="hex",
        time=("window_start", "window_end"),
        access="k_anonymity",
        filters=("network", "state"),
        window="window_start",
        fid=_grid_fid,
    ),
    "coverage": Layer(
        table="coverage",
        alias="v",
        columns=("h3", "network", "measurements", "ok_count", "fail_count", "h.geojson"),
        order="v.h3, v.network",
        to_feature=_coverage_feature,
        geometry="hex",
        time=None,
        access="k_anonymity",
        filters=("network",),
        fid=_coverage_fid,
    ),
    "measurements": Layer(
        table="measurements",
        alias="m",
        columns=("id", "ts", "lon", "lat", *_MEASUREMENT_PROPS),
        order="m.id",
        to_feature=_measurement_feature,
        geometry="point",
        time=("ts", "ts"),
        access="datasets",
        filters=("network", "status", "period"),
        fid=_measurement_fid,
        instant=True,
        measurements=True,
    ),
    "areas": _shape_layer("areas", "area_id", "name"),
    "hazard": _shape_layer("hazard", "hazard_id", "level"),
}


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
    layer = LAYERS[kind]
    a = layer.alias
    eid = store.event_id(event)
    fid = filters.get("fid")
    columns = [c if "." in c else f"{a}.{c}" for c in layer.columns]
    if layer.measurements and principal.sees_devices():
        columns.append(f"{a}.device")
    q = Query(
        source=layer.source,
        columns=columns,
        to_feature=layer.to_feature,
        order=layer.order,
        extent_bbox=layer.extent_bbox,
        extent_time=layer.extent_time,
    )
    q.add(f"{a}.event_id = {q.bind(eid)}")
    # Access rule.
    if layer.access == "k_anonymity" and principal.applies_k_anonymity():
        q.add(f"{a}.devices >= {q.bind(int(store.settings.k_anonymity))}")
    rtree = layer.measurements and bbox is not None and not store.db.is_pg
    if layer.access == "datasets" and not rtree:  # the R*Trees apply it themselves
        _readable(store, q, a, event, principal)
    # Geometry.
    if rtree:
        assert bbox is not None
        _rtree_bbox(store, q, eid, bbox, principal)
        plain = (
            interval is None
            and fid is None
            and not any(filters.get(name) for name in layer.filters)
        )
        if not plain:
            q.ids = None  # the ids subquery stays a condition of the row query
    elif bbox is not None:
        g = layer.geometry_alias
        if store.db.is_pg:
            table = "hexes" if layer.geometry == "hex" else layer.table
            q.add(postgis.sql(postgis.bbox_filter(table, g, bbox, q.parameter)))
            q.spatial = layer.measurements
        elif layer.geometry == "point":
            _bbox_points(q, g, bbox)
        else:
            _bbox_polygons(q, g, bbox)
    # Time.
    if layer.time is not None and interval is not None:
        start, end = (f"{a}.{c}" for c in layer.time)
        lo, hi = interval
        if lo is not None:  # an instant from lo on; a span that ends after lo
            column, op = (start, ">=") if layer.instant else (end, ">")
            q.add(f"{column} {op} {q.bind(ts_text(lo))}")
        if hi is not None:
            q.add(f"{start} <= {q.bind(ts_text(hi))}")
    if layer.window is not None:
        _window_filter(q, f"{a}.{layer.window}", eid, filters.get("window"))
    # Attribute filters and the feature id.
    for name in layer.filters:
        if filters.get(name):
            q.add(f"{a}.{name} = {q.bind(filters[name])}")
    if fid is not None:
        for column, value in layer.fid(fid).items():
            q.add(f"{a}.{column} = {q.bind(value)}")
    return q


def page(store: Store, q: Query, *, limit: int, offset: int, count: bool) -> Any:
    """Run ``q`` for one page (and its count) and convert rows to Feature dicts."""
    from dcm.store.models import FeaturePage

    if q.empty:
        return FeaturePage([], 0 if count else -1)
    names = [c.split(".", 1)[-1] for c in q.columns]
    if q.spatial:
        return _spatial_page(store, q, names, limit=limit, offset=offset, count=count)
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
        rows = store.db.query(
            f"SELECT {', '.join(q.columns)} FROM {q.source} WHERE {q.where_sql} "
            f"ORDER BY {q.order} LIMIT :limit OFFSET :offset",
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


def _spatial_page(
    store: Store, q: Query, names: list[str], *, limit: int, offset: int, count: bool
) -> Any:
    """PostgreSQL: a bbox page of measurements and its count in one statement.

    The ids of up to :data:`SORT_MATCHES_MAX` matches are collected once from the
    spatial index (materialised), counted, and sorted for the page; only the page's rows
    are then read. Walking the primary key for ``ORDER BY id LIMIT n`` instead would test
    each row against the box until ``n`` match: 50–150 ms for a small box. More matches
    than that (a box holding much of the event) fall back to a count and then the walk
    or, for a small share of a large table, the sort.
    """
    from dcm.store.models import FeaturePage

    params = {**q.params, "limit": int(limit), "offset": int(offset)}
    rows = store.db.query(
        f"WITH hits AS MATERIALIZED (SELECT m.id FROM {q.source} WHERE {q.where_sql} "
        "LIMIT :cap), "
        "page AS (SELECT id FROM hits ORDER BY id LIMIT :limit OFFSET :offset) "
        f"SELECT n.matched, {', '.join(q.columns)} "
        "FROM (SELECT count(*) AS matched FROM hits) AS n "
        "LEFT JOIN (page JOIN measurements m ON m.id = page.id) ON true ORDER BY m.id",
        {**params, "cap": SORT_MATCHES_MAX + 1},
    )
    matched = int(rows[0][0])
    if matched <= SORT_MATCHES_MAX:
        features = [
            q.to_feature(dict(zip(names, r[1:], strict=True))) for r in rows if r[1] is not None
        ]
        return FeaturePage(features, matched if count else -1)
    order = "m.id"
    count_sql = f"SELECT count(*) FROM {q.source} WHERE {q.where_sql}"
    matched = int(store.db.scalar(count_sql, q.params)) if count else -1
    if matched > 0 and matched * 20 < store.measurement_rows_estimate():
        order = "m.id + 0"  # an expression: the planner sorts the index's matches
    rows = store.db.query(
        f"SELECT {', '.join(q.columns)} FROM {q.source} WHERE {q.where_sql} "
        f"ORDER BY {order} LIMIT :limit OFFSET :offset",
        params,
    )
    features = [q.to_feature(dict(zip(names, r, strict=True))) for r in rows]
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
