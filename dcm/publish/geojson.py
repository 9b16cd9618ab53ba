"""GeoJSON (RFC 7946) output of GeoDataFrames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from dcm.errors import ParameterError
from dcm.publish._values import frame_with_iso_times, jsonable

#: RFC 7946 §11.2: 7 decimals of a degree are about 1 cm, more is noise.
MAX_PRECISION = 7


def prepare_geometries(geometry: gpd.GeoSeries, *, precision: int = MAX_PRECISION) -> np.ndarray:
    """Geometries ready for RFC 7946: EPSG:4326, rounded, exteriors counter-clockwise.

    Returns an object array of shapely geometries (None for missing or empty ones).
    """
    if not 0 <= precision <= MAX_PRECISION:
        raise ParameterError(f"precision must be 0..{MAX_PRECISION} decimals, got {precision}")
    if geometry.crs is not None and geometry.crs.to_epsg() != 4326:
        geometry = geometry.to_crs(4326)
    elif geometry.crs is None and len(geometry):
        west, south, east, north = geometry.total_bounds
        if max(abs(west), abs(east)) > 180 or max(abs(south), abs(north)) > 90:
            raise ParameterError("geometries have no CRS and are not lon/lat degrees")
    # Outages keep their shape window after window: prepare each distinct geometry once.
    distinct, codes = _distinct(np.asarray(geometry.array, dtype=object))
    # "+ 0.0" turns -0.0 into 0.0: no "-0.0" in the output.
    distinct = shapely.transform(distinct, lambda xy: np.round(xy, precision) + 0.0)
    # Orient after rounding, which can flip the winding of a very thin ring.
    distinct = _orient(distinct)
    distinct[shapely.is_missing(distinct) | shapely.is_empty(distinct)] = None
    return _expand(distinct, codes)


def _distinct(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct geometries (same WKB) and each input's position among them (-1: missing)."""
    # The same object often fills many rows (an outage's shape, window after window):
    # WKB of each distinct object only. Codes keep the order of first appearance.
    ids = np.fromiter(map(id, geoms.tolist()), dtype="int64", count=len(geoms))
    obj, _ = pd.factorize(ids)
    obj_first = np.unique(obj, return_index=True)[1]
    codes = pd.factorize(shapely.to_wkb(geoms[obj_first]))[0][obj]
    valid = np.flatnonzero(codes >= 0)
    first = valid[np.unique(codes[valid], return_index=True)[1]]
    return np.asarray(geoms[first], dtype=object), codes


def _expand(distinct: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-input values from the distinct ones (see :func:`_distinct`); None where missing."""
    out = np.full(len(codes), None, dtype=object)
    present = codes >= 0
    out[present] = distinct[codes[present]]
    return out


def _ring_signed_areas(rings: np.ndarray) -> np.ndarray:
    """Shoelace signed area of each ring (> 0: counter-clockwise), vectorised."""
    xy, owner = shapely.get_coordinates(rings, return_index=True)
    terms = xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]
    same = owner[:-1] == owner[1:]
    return 0.5 * np.bincount(owner[:-1][same], weights=terms[same], minlength=len(rings))


def _orient_one(geom: Any) -> Any:
    """One geometry with every ring wound by its signed area (slow path)."""
    if isinstance(geom, shapely.Polygon):
        rings = np.array([geom.exterior, *geom.interiors], dtype=object)
        area = _ring_signed_areas(rings)
        fixed = [
            r if (a >= 0) == (i == 0) or a == 0 else r.reverse()
            for i, (r, a) in enumerate(zip(rings, area, strict=True))
        ]
        return shapely.Polygon(fixed[0], fixed[1:])
    if isinstance(geom, shapely.MultiPolygon | shapely.GeometryCollection):
        return type(geom)([_orient_one(part) for part in geom.geoms])
    return geom


def _orient(geoms: np.ndarray) -> np.ndarray:
    """Exteriors counter-clockwise, holes clockwise.

    GEOS judges a ring's winding at its highest vertex, which a spike left by
    rounding can fool; every ring is checked by its signed area and the few
    geometries GEOS got wrong are fixed one by one.
    """
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    polygonal = np.flatnonzero(
        np.isin(shapely.get_type_id(geoms), [3, 6, 7]) & ~shapely.is_empty(geoms)
    )
    if not len(polygonal):
        return geoms
    parts, part_of = shapely.get_parts(geoms[polygonal], return_index=True)
    is_polygon = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    parts, part_of = parts[is_polygon], part_of[is_polygon]
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    if not len(rings):
        return geoms
    area = _ring_signed_areas(rings)
    exterior = np.r_[True, ring_of[1:] != ring_of[:-1]]
    wrong = (exterior & (area < 0)) | (~exterior & (area > 0))
    for i in np.unique(polygonal[part_of[ring_of[wrong]]]):
        geoms[i] = _orient_one(geoms[i])
    return geoms


def _numbers(values: np.ndarray, precision: int) -> pa.Array:
    """JSON numbers of coordinates rounded to ``precision`` decimals, as Python writes them.

    ``json.dumps`` writes a float as its shortest round-trip text (``repr``); GEOS writes
    17 significant digits (``13.228284499999999``). A value on the 10^-precision grid with
    magnitude in [1e-4, 1e8) has one shortest text: its fixed-point decimals with
    trailing zeros dropped (``"13.0"`` for a whole number). Those are formatted here
    with Arrow string kernels; the rare others (tiny, huge, off-grid) use ``repr``.
    """
    if not np.isfinite(values).all():
        raise ParameterError("geometries with NaN or infinite coordinates are not GeoJSON")
    scale = 10**precision
    magnitude = np.abs(values)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.rint(values * scale)
        fast = ((magnitude >= 1e-4) & (magnitude < 1e8) | (values == 0)) & (
            scaled / scale == values
        )
    whole = np.where(fast, np.abs(scaled), 0).astype(np.int64)
    fraction = pc.utf8_lpad(pc.cast(pa.array(whole % scale), pa.large_string()), precision, "0")
    fraction = pc.utf8_rtrim(fraction, "0")
    fraction = pc.if_else(pc.equal(fraction, ""), _text("0"), fraction)
    sign = pc.if_else(pa.array(np.signbit(values)), _text("-"), _text(""))
    integer = pc.cast(pa.array(whole // scale), pa.large_string())
    text = pc.binary_join_element_wise(sign, integer, _text("."), fraction, _text(""))
    slow = np.flatnonzero(~fast)
    if slow.size:
        replaced = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        replaced[slow] = [repr(float(v)) for v in values[slow]]
        text = pa.array(replaced, type=pa.large_string())
    return text


def _text(value: str) -> pa.Scalar:
    """A large-string scalar (Arrow kernels want one string type throughout)."""
    return pa.scalar(value, pa.large_string())


def concat_texts(*parts: str | pa.Array) -> pa.Array:
    """Row-wise concatenation of Arrow string arrays and constant strings."""
    texts = [_text(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*texts, _text(""))


def _join(items: pa.Array, owner: np.ndarray, groups: int) -> pa.Array:
    """``"[" + ",".join(items of group g) + "]"`` for g in 0..groups-1 (``owner`` sorted)."""
    offsets = np.searchsorted(owner, np.arange(groups + 1)).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), items), _text(","))
    return pc.binary_join_element_wise(_text("["), joined, _text("]"), _text(""))


#: Geometry types written by the vectorised path (GEOS type id → GeoJSON type).
_SIMPLE_TYPES = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
}


def geometry_json(geoms: np.ndarray, *, precision: int = MAX_PRECISION) -> np.ndarray:
    """Compact GeoJSON geometry texts of prepared geometries (see :func:`prepare_geometries`).

    Object array with one string per geometry (None for missing ones), the same text as
    ``json.dumps(geometry_dict, separators=(",", ":"))``. Built from the coordinate
    arrays with Arrow string kernels, not one geometry at a time; 3-D geometries,
    collections and multi-geometries with empty parts take the per-geometry path.
    """
    distinct, codes = _distinct(np.asarray(geoms, dtype=object))
    # Outages keep their shape window after window: write each distinct geometry once.
    texts = _distinct_geometry_json(distinct, precision)
    return _expand(texts, codes)


def _distinct_geometry_json(geoms: np.ndarray, precision: int) -> np.ndarray:
    """Texts of present geometries (see :func:`geometry_json`), vectorised by family."""
    out = np.full(len(geoms), None, dtype=object)
    type_id = shapely.get_type_id(geoms)
    simple = np.isin(type_id, list(_SIMPLE_TYPES)) & ~shapely.has_z(geoms)
    simple &= ~shapely.is_empty(geoms)
    parts, part_of = shapely.get_parts(geoms[simple], return_index=True)
    has_empty_part = np.zeros(int(simple.sum()), dtype=bool)
    has_empty_part[part_of[shapely.is_empty(parts)]] = True
    simple[np.flatnonzero(simple)[has_empty_part]] = False
    for ids, family in (((0, 4), "point"), ((1, 5), "line"), ((3, 6), "polygon")):
        rows = np.flatnonzero(simple & np.isin(type_id, ids))
        if rows.size:
            out[rows] = _family_json(geoms[rows], type_id[rows], family, precision)
    for i in np.flatnonzero(~simple):  # rare: 3-D, collections, empty (parts)
        text = shapely.to_geojson(geoms[i])
        out[i] = json.dumps(json.loads(text), separators=(",", ":"), allow_nan=False)
    return out


def _family_json(geoms: np.ndarray, type_id: np.ndarray, family: str, precision: int) -> Any:
    """Geometry texts of non-empty points, lines or polygons and their multi-part versions."""
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    if family == "polygon":
        leaves, leaf_of = shapely.get_rings(parts, return_index=True)
    else:
        leaves, leaf_of = parts, np.arange(len(parts))
    xy, coord_of = shapely.get_coordinates(leaves, return_index=True)
    x, y = _numbers(xy[:, 0], precision), _numbers(xy[:, 1], precision)
    pairs = pc.binary_join_element_wise(_text("["), x, _text(","), y, _text("]"), _text(""))
    if family == "point":
        part_text = pairs  # one coordinate per point
    else:
        part_text = _join(pairs, coord_of, len(leaves))
        if family == "polygon":
            part_text = _join(part_text, leaf_of, len(parts))
    # A single geometry is its one part; a multi-part one joins its parts.
    coords = pc.take(part_text, pa.array(np.searchsorted(part_of, np.arange(len(geoms)))))
    multi = np.isin(type_id, (4, 5, 6))
    if multi.any():
        coords = pc.if_else(pa.array(multi), _join(part_text, part_of, len(geoms)), coords)
    names = pa.array(
        [f'{{"type":"{_SIMPLE_TYPES.get(t, "")}","coordinates":' for t in range(7)],
        type=pa.large_string(),
    )
    texts = pc.binary_join_element_wise(
        pc.take(names, pa.array(type_id)), coords, _text("}"), _text("")
    )
    return np.asarray(texts.to_numpy(zero_copy_only=False), dtype=object)


def _property_frame(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    """The properties: every column but the geometry, times as ISO 8601, other
    geometry columns as WKT, string column names, a 0..n-1 index."""
    props = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    for col in props.columns:
        if isinstance(props[col].dtype, gpd.array.GeometryDtype):
            props[col] = shapely.to_wkt(np.asarray(props[col].array, dtype=object))
    props.columns = [str(c) for c in props.columns]
    return frame_with_iso_times(props).reset_index(drop=True)


def _check_id_column(gdf: gpd.GeoDataFrame, id_column: str | None) -> None:
    if id_column is not None and id_column not in gdf.columns:
        raise ParameterError(f"id column {id_column!r} is not in the frame")


def feature_stubs(gdf: gpd.GeoDataFrame, *, id_column: str | None = None) -> list[dict[str, Any]]:
    """Features with their ``id`` and ``properties`` and a null ``geometry`` (filled later)."""
    _check_id_column(gdf, id_column)
    props = _property_frame(gdf)
    if len(props.columns):
        records = json.loads(
            props.to_json(orient="records", double_precision=15, default_handler=str)
        )
    else:
        records = [{} for _ in range(len(props))]
    ids = jsonable(list(gdf[id_column])) if id_column is not None else None
    features: list[dict[str, Any]] = []
    for i, properties in enumerate(records):
        feature: dict[str, Any] = {"type": "Feature"}
        if ids is not None and ids[i] is not None:
            feature["id"] = ids[i]
        feature["geometry"] = None
        feature["properties"] = properties
        features.append(feature)
    return features


def property_json(gdf: gpd.GeoDataFrame) -> pa.Array:
    """Compact JSON text of each feature's ``properties`` (see :func:`feature_stubs`).

    The text ``json.dumps`` writes for the properties dict, built column by column:
    each distinct value is converted once (through pandas' JSON writer and back, as
    for the dict) and the rows are joined with Arrow string kernels.
    """
    props = _property_frame(gdf)
    if not len(props.columns):
        return pa.array(["{}"] * len(props), type=pa.large_string())
    pieces: list[Any] = []
    for i, name in enumerate(props.columns):
        key = json.dumps(name, ensure_ascii=False)
        pieces += [_text(("{" if i == 0 else ",") + key + ":"), _value_json(props[name])]
    return pc.binary_join_element_wise(*pieces, _text("}"), _text(""))


def _value_json(col: pd.Series) -> pa.Array:
    """JSON text of each value of ``col`` as in :func:`feature_stubs`, per distinct value."""
    codes = _value_codes(col)
    first = np.unique(codes, return_index=True)[1]
    values = json.loads(
        col.iloc[first].to_json(orient="values", double_precision=15, default_handler=str)
    )
    texts = pa.array(
        [json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False) for v in values],
        type=pa.large_string(),
    )
    return pc.take(texts, pa.array(codes))


def _value_codes(col: pd.Series) -> np.ndarray:
    """Codes that are equal only for values written alike (0..k-1, first seen first)."""
    kind = col.dtype
    if pd.api.types.is_float_dtype(kind):
        # By bit pattern: -0.0 and 0.0 compare equal but are written differently.
        bits = col.to_numpy(dtype="float64", na_value=np.nan).view(np.int64)
        return pd.factorize(bits)[0]
    plain = (
        pd.api.types.is_bool_dtype(kind)
        or pd.api.types.is_integer_dtype(kind)
        or isinstance(kind, pd.CategoricalDtype)
        or (
            pd.api.types.is_string_dtype(kind)
            and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty")
        )
    )
    if plain:
        return pd.factorize(col, use_na_sentinel=False)[0]
    return np.arange(len(col))  # mixed objects (1 == 1.0 == True): one by one


def to_geojson(
    gdf: gpd.GeoDataFrame, *, id_column: str | None = None, precision: int = MAX_PRECISION
) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection dict of ``gdf``.

    Coordinates are lon/lat in EPSG:4326 (reprojected when the frame has another
    CRS; a frame without CRS is taken to be WGS84), rounded to ``precision``
    decimals; polygon exteriors are counter-clockwise and holes clockwise; there is
    no ``crs`` member. Datetime columns become ISO 8601 UTC strings ending in ``Z``,
    NaN/NA become null. ``id_column`` (kept in the properties too) gives each
    feature's ``id``.
    """
    features = feature_stubs(gdf, id_column=id_column)
    texts = geometry_json(prepare_geometries(gdf.geometry, precision=precision))
    # One json.loads for every geometry instead of one per feature.
    geometries = json.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]")
    for feature, geometry in zip(features, geometries, strict=True):
        feature["geometry"] = geometry
    return {"type": "FeatureCollection", "features": features}


def geojson_text(
    gdf: gpd.GeoDataFrame, *, id_column: str | None = None, precision: int = MAX_PRECISION
) -> str:
    """Compact GeoJSON text of ``gdf`` (see :func:`to_geojson`).

    The same text as ``json.dumps(to_geojson(gdf), separators=(",", ":"),
    ensure_ascii=False)``, assembled from the texts of :func:`geometry_json` and
    :func:`property_json` without a Python object per feature.
    """
    features = _feature_texts(gdf, id_column, precision)
    return _COLLECTION_HEAD + join_texts(features) + _COLLECTION_TAIL


#: The text around the features of a FeatureCollection.
_COLLECTION_HEAD, _COLLECTION_TAIL = '{"type":"FeatureCollection","features":[', "]}"
#: Features joined and written at a time by :func:`write_geojson`.
WRITE_FEATURES = 10_000


def _feature_texts(gdf: gpd.GeoDataFrame, id_column: str | None, precision: int) -> pa.Array:
    """Compact GeoJSON text of each feature of ``gdf`` (see :func:`geojson_text`)."""
    _check_id_column(gdf, id_column)
    geometries = geometry_json(prepare_geometries(gdf.geometry, precision=precision))
    pieces: list[Any] = [_text('{"type":"Feature",')]
    if id_column is not None:
        ids = jsonable(list(gdf[id_column]))
        pieces.append(
            pa.array(
                [
                    ""
                    if v is None
                    else f'"id":{json.dumps(v, separators=(",", ":"), ensure_ascii=False)},'
                    for v in ids
                ],
                type=pa.large_string(),
            )
        )
    geometry_texts = pa.array(np.where(pd.isna(geometries), "null", geometries), pa.large_string())
    pieces += [_text('"geometry":'), geometry_texts, _text(',"properties":'), property_json(gdf)]
    return pc.binary_join_element_wise(*pieces, _text("}"), _text(""))


def join_texts(texts: pa.Array) -> str:
    """``",".join(texts)`` of an Arrow string array."""
    offsets = pa.array([0, len(texts)], type=pa.int32())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), _text(","))
    return str(joined[0].as_py())


def geojson_bytes(
    gdf: gpd.GeoDataFrame, *, id_column: str | None = None, precision: int = MAX_PRECISION
) -> bytes:
    """Compact UTF-8 GeoJSON of ``gdf`` (see :func:`to_geojson`), for HTTP responses."""
    return geojson_text(gdf, id_column=id_column, precision=precision).encode()


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | Path,
    *,
    id_column: str | None = None,
    precision: int = MAX_PRECISION,
) -> Path:
    """Write ``gdf`` as an RFC 7946 GeoJSON file (see :func:`to_geojson`); returns the path.

    The bytes of :func:`geojson_bytes` and a newline, written :data:`WRITE_FEATURES`
    features at a time: the whole text is never held (nor its copies as text and bytes).
    """
    path = Path(path)
    features = _feature_texts(gdf, id_column, precision)
    with path.open("wb") as out:
        out.write(_COLLECTION_HEAD.encode())
        for start in range(0, len(features), WRITE_FEATURES):
            if start:
                out.write(b",")
            out.write(join_texts(features.slice(start, WRITE_FEATURES)).encode())
        out.write((_COLLECTION_TAIL + "\n").encode())
    return path
