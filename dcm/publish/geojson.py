"""GeoJSON (RFC 7946) output of GeoDataFrames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
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
    geoms = np.asarray(geometry.array, dtype=object)
    # "+ 0.0" turns -0.0 into 0.0: no "-0.0" in the output.
    geoms = shapely.transform(geoms, lambda xy: np.round(xy, precision) + 0.0)
    # Orient after rounding, which can flip the winding of a very thin ring.
    geoms = _orient(geoms)
    geoms[shapely.is_missing(geoms) | shapely.is_empty(geoms)] = None
    return geoms


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
    if id_column is not None and id_column not in gdf.columns:
        raise ParameterError(f"id column {id_column!r} is not in the frame")
    geoms = prepare_geometries(gdf.geometry, precision=precision)
    texts = shapely.to_geojson(geoms)
    # One json.loads for every geometry instead of one per feature.
    geometries = json.loads("[" + ",".join(t if t is not None else "null" for t in texts) + "]")

    props = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    for col in props.columns:
        if isinstance(props[col].dtype, gpd.array.GeometryDtype):
            props[col] = shapely.to_wkt(np.asarray(props[col].array, dtype=object))
    props.columns = [str(c) for c in props.columns]
    props = frame_with_iso_times(props).reset_index(drop=True)
    if len(props.columns):
        records = json.loads(
            props.to_json(orient="records", double_precision=15, default_handler=str)
        )
    else:
        records = [{} for _ in range(len(props))]

    ids = jsonable(list(gdf[id_column])) if id_column is not None else None
    features: list[dict[str, Any]] = []
    for i, (geometry, properties) in enumerate(zip(geometries, records, strict=True)):
        feature: dict[str, Any] = {"type": "Feature"}
        if ids is not None and ids[i] is not None:
            feature["id"] = ids[i]
        feature["geometry"] = geometry
        feature["properties"] = properties
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


def geojson_bytes(
    gdf: gpd.GeoDataFrame, *, id_column: str | None = None, precision: int = MAX_PRECISION
) -> bytes:
    """Compact UTF-8 GeoJSON of ``gdf`` (see :func:`to_geojson`), for HTTP responses."""
    doc = to_geojson(gdf, id_column=id_column, precision=precision)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | Path,
    *,
    id_column: str | None = None,
    precision: int = MAX_PRECISION,
) -> Path:
    """Write ``gdf`` as an RFC 7946 GeoJSON file (see :func:`to_geojson`); returns the path."""
    path = Path(path)
    path.write_bytes(geojson_bytes(gdf, id_column=id_column, precision=precision) + b"\n")
    return path
