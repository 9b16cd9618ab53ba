"""Rasters and vector layers: population, admin areas, hazard footprints, Ookla tiles.

Everything comes out in EPSG:4326. Vector files are read through pyogrio (GeoJSON,
GeoPackage, Shapefile, FlatGeobuf ...); rasters through rasterio.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcm.errors import IngestError
from dcm.schema import CRS, POPULATION_COLUMNS

if TYPE_CHECKING:
    import geopandas as gpd

#: Rows of raster read at once: bounds memory on country-size rasters.
RASTER_CHUNK_ROWS = 2048

#: Candidate columns for an area's name and id, most specific first (case-insensitive).
#: Covers geoBoundaries (shapeName/shapeID), OCHA COD-AB (ADMn_EN/ADMn_PCODE), GADM
#: (NAME_n/GID_n) and plain files.
_NAME_PATTERNS = (
    r"name", r"area_name", r"shapename", r"adm(\d)_en", r"adm(\d)_name", r"name_(\d)",
    r"name_en", r"nom", r"nombre", r"admin_name",
)  # fmt: skip
_ID_PATTERNS = (
    r"area_id", r"shapeid", r"adm(\d)_pcode", r"gid_(\d)", r"pcode", r"id", r"code", r"fid",
)  # fmt: skip


def read_population(path: str | Path) -> pd.DataFrame:
    """Population raster (GeoTIFF) → pixel centres with people (``POPULATION_COLUMNS``).

    Nodata, NaN and non-positive pixels are dropped. Rasters in another CRS keep their
    pixels: the centres are transformed to EPSG:4326 (counts are not resampled, so the
    total population is preserved). A raster without a CRS must be in degrees.
    """
    import rasterio
    from rasterio.windows import Window

    label = str(path)
    if not Path(path).exists():
        raise IngestError("file not found", path=label)
    parts: list[pd.DataFrame] = []
    try:
        with rasterio.open(path) as src:
            transform, nodata = src.transform, src.nodata
            for row0 in range(0, src.height, RASTER_CHUNK_ROWS):
                rows = min(RASTER_CHUNK_ROWS, src.height - row0)
                values = src.read(1, window=Window(0, row0, src.width, rows)).astype("float64")
                keep = np.isfinite(values) & (values > 0)
                if nodata is not None and np.isfinite(nodata):
                    keep &= values != nodata
                r, c = np.nonzero(keep)
                # Pixel centres through the affine transform (row/col + 0.5).
                col, row = c + 0.5, r + row0 + 0.5
                xs = transform.a * col + transform.b * row + transform.c
                ys = transform.d * col + transform.e * row + transform.f
                parts.append(
                    pd.DataFrame(
                        {
                            "lon": np.asarray(xs, dtype="float64"),
                            "lat": np.asarray(ys, dtype="float64"),
                            "population": values[keep],
                        }
                    )
                )
            crs = src.crs
    except rasterio.errors.RasterioError as exc:
        raise IngestError(f"not a readable raster ({exc})", path=label) from exc
    frame = pd.concat(parts, ignore_index=True) if parts else None
    if frame is None:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in POPULATION_COLUMNS.items()})
    if crs is not None and crs.to_epsg() != 4326:
        from pyproj import Transformer

        to_wgs84 = Transformer.from_crs(crs, CRS, always_xy=True)
        lon, lat = to_wgs84.transform(frame["lon"].to_numpy(), frame["lat"].to_numpy())
        frame["lon"], frame["lat"] = lon, lat
    elif crs is None and not (frame["lon"].abs().le(180).all() and frame["lat"].abs().le(90).all()):
        raise IngestError("raster has no CRS and its coordinates are not degrees", path=label)
    return frame.astype(POPULATION_COLUMNS)[list(POPULATION_COLUMNS)]


def _read_vector(path: str | Path, what: str) -> gpd.GeoDataFrame:
    """Any OGR vector file → GeoDataFrame in EPSG:4326 (IngestError when unreadable)."""
    import geopandas as gpd
    import pyogrio

    label = str(path)
    if not Path(path).exists():
        raise IngestError("file not found", path=label)
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        raise IngestError(f"not a readable {what} file ({exc})", path=label) from exc
    if "geometry" not in gdf or gdf.geometry.isna().all():
        raise IngestError(f"no geometries in {what} file", path=label)
    if gdf.crs is None:
        bounds = gdf.total_bounds
        if np.all(np.isfinite(bounds)) and (np.abs(bounds[[0, 2]]).max() > 180 or
                                            np.abs(bounds[[1, 3]]).max() > 90):  # fmt: skip
            raise IngestError("no CRS and coordinates are not degrees", path=label)
        gdf = gdf.set_crs(CRS)
    elif gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(CRS)
    return gdf


def _polygons(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Only (multi)polygons with area: invalid rings are repaired (shapely ``make_valid``),
    what collapses to points or lines (degenerate rings) is dropped."""
    import shapely

    geom = gdf.geometry
    poly = geom.notna() & geom.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    gdf = gdf.loc[poly].copy()
    geoms = gdf.geometry.to_numpy()
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = shapely.make_valid(geoms[invalid])
        # make_valid may return collections mixing polygons with lines; keep the polygons
        # (a loop over the few repaired shapes only).
        for i, shape in enumerate(fixed):
            if shapely.get_type_id(shape) == 7:  # GeometryCollection
                parts = shapely.get_parts(shape)
                fixed[i] = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
        geoms[invalid] = fixed
    gdf["geometry"] = geoms
    keep = np.isin(shapely.get_type_id(geoms), (3, 6)) & (shapely.area(geoms) > 0)
    return gdf.loc[keep]


def _pick_column(columns: list[str], patterns: tuple[str, ...]) -> str | None:
    """First column matching a pattern; among admin levels the finest (highest n)."""
    for pattern in patterns:
        hits = [(c, re.fullmatch(pattern, c, flags=re.IGNORECASE)) for c in columns]
        found = [(c, m) for c, m in hits if m]
        if found:
            return max(found, key=lambda cm: int(cm[1].group(1)) if cm[1].groups() else 0)[0]
    return None


def read_areas(
    path: str | Path, *, name_column: str | None = None, id_column: str | None = None
) -> gpd.GeoDataFrame:
    """Admin boundaries → GeoDataFrame ``area_id, name, geometry`` (EPSG:4326).

    The name and id columns are taken from ``name_column``/``id_column`` or recognised
    (geoBoundaries, OCHA COD-AB, GADM, plain ``name``/``id``; the finest admin level wins).
    Without an id column the id is the 1-based feature number; without a name, the id.
    """
    import geopandas as gpd

    gdf = _polygons(_read_vector(path, "boundary"))
    if gdf.empty:
        raise IngestError("no polygon features (admin areas must be polygons)", path=str(path))
    columns = [c for c in gdf.columns if c != "geometry"]
    for given in (name_column, id_column):
        if given is not None and given not in columns:
            raise IngestError(f"no column {given!r} (columns: {columns})", path=str(path))
    id_col = id_column or _pick_column(columns, _ID_PATTERNS)
    name_col = name_column or _pick_column([c for c in columns if c != id_col], _NAME_PATTERNS)
    ids = (
        gdf[id_col].astype("string")
        if id_col
        else pd.Series(np.arange(1, len(gdf) + 1), index=gdf.index).astype("string")
    )
    names = gdf[name_col].astype("string") if name_col else ids
    return gpd.GeoDataFrame(
        {"area_id": ids.to_numpy(), "name": names.fillna(ids).to_numpy()},
        geometry=gdf.geometry.to_numpy(),
        crs=CRS,
    ).astype({"area_id": "string", "name": "string"})


#: GDACS polygon classes → level; other classes (track points drawn as polygons, the
#: forecast cone, distance circles) are not impact footprints.
_GDACS_LEVELS = {"poly_green": "green", "poly_orange": "orange", "poly_red": "red"}
_GDACS_KEEP = (
    "eventtype", "eventid", "episodeid", "eventname", "alertlevel", "polygonlabel",
    "polygondate", "fromdate", "todate", "iso3", "Class", "intensity",
)  # fmt: skip
_RANK = {"green": 1, "orange": 2, "red": 3, "34kt": 1, "50kt": 2, "64kt": 3}


def read_hazard(path: str | Path) -> gpd.GeoDataFrame:
    """Hazard footprints → GeoDataFrame ``hazard_id, level, rank, source, ..., geometry``.

    Recognised sources: NHC wind swaths (``RADII`` 34/50/64 kt → level ``34kt``/``50kt``/
    ``64kt``; ``STORMID``, ``start``/``end`` from ``STARTDTG``/``ENDDTG``), GDACS event
    geometry (``Poly_Green/Orange/Red`` → ``green``/``orange``/``red``; earthquake
    ``Poly_SMPInt_n`` → ``mmi<n>``; event ids and dates kept) and generic files with a
    ``level`` column (or ``alertlevel``/``severity``). Only polygons are footprints:
    track points and lines are skipped. ``rank`` orders levels (higher is worse).
    """
    import geopandas as gpd

    gdf = _read_vector(path, "hazard")
    lower = {c.lower(): c for c in gdf.columns}
    stem = Path(path).stem
    if "radii" in lower:  # NHC wind swath
        gdf = _polygons(gdf)
        radii = pd.to_numeric(gdf[lower["radii"]], errors="coerce").astype("Int64")
        level = radii.astype("string") + "kt"
        storm = gdf[lower["stormid"]].astype("string") if "stormid" in lower else stem
        out = pd.DataFrame(
            {"hazard_id": storm + "-" + level + "-" + pd.Series(range(1, len(gdf) + 1),
                                                                 index=gdf.index).astype("string"),
             "level": level, "source": "nhc"},
            index=gdf.index,
        )  # fmt: skip
        if "stormid" in lower:
            out["storm_id"] = gdf[lower["stormid"]].astype("string")
        for key, col in (("start", "startdtg"), ("end", "enddtg")):
            if col in lower:
                text = gdf[lower[col]].astype("string")
                stamps = pd.to_datetime(text, format="%Y%m%d%H", utc=True, errors="coerce")
                out[key] = stamps.astype("datetime64[ns, UTC]")
    elif "class" in lower and "eventid" in lower:  # GDACS
        cls = gdf[lower["class"]].astype("string").str.lower()
        mmi = cls.str.extract(r"^poly_smpint_(\d+)$", expand=False)
        level = cls.map(_GDACS_LEVELS).astype("string").fillna("mmi" + mmi)
        gdf = gdf.assign(_level=level)
        gdf = _polygons(gdf.loc[level.notna()])
        event = gdf[lower["eventtype"]].astype("string") if "eventtype" in lower else "gdacs"
        out = pd.DataFrame(
            {"hazard_id": event + "-" + gdf[lower["eventid"]].astype("string") + "-"
                          + pd.Series(range(1, len(gdf) + 1), index=gdf.index).astype("string"),
             "level": gdf["_level"], "source": "gdacs"},
            index=gdf.index,
        )  # fmt: skip
        for col in _GDACS_KEEP:
            if col.lower() in lower and col.lower() != "class":
                out[col] = gdf[lower[col.lower()]]
        out["gdacs_class"] = gdf[lower["class"]]
        # GDACS dates are UTC without an offset.
        for col in ("polygondate", "fromdate", "todate"):
            if col in out:
                stamps = pd.to_datetime(out[col], errors="coerce")
                if stamps.dt.tz is None:
                    stamps = stamps.dt.tz_localize("UTC")
                out[col] = stamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    else:
        gdf = _polygons(gdf)
        level_col = next(
            (lower[c] for c in ("level", "alertlevel", "severity") if c in lower), None
        )
        id_col = next((lower[c] for c in ("hazard_id", "id") if c in lower), None)
        numbers = pd.Series(range(1, len(gdf) + 1), index=gdf.index).astype("string")
        out = gdf.drop(columns="geometry").copy()
        out["hazard_id"] = gdf[id_col].astype("string") if id_col else stem + "-" + numbers
        out["level"] = gdf[level_col].astype("string").str.lower() if level_col else "unknown"
        out["source"] = "file"
    if out.empty:
        raise IngestError("no polygon footprints in hazard file", path=str(path))
    out["level"] = out["level"].astype("string")
    out["source"] = out["source"].astype("string")
    mmi_rank = pd.to_numeric(out["level"].str.extract(r"^mmi(\d+)$", expand=False))
    out["rank"] = out["level"].map(_RANK).fillna(mmi_rank).astype("Int64")
    first = ["hazard_id", "level", "rank", "source"]
    out = out[first + [c for c in out.columns if c not in first]]
    return gpd.GeoDataFrame(out, geometry=gdf.loc[out.index].geometry, crs=CRS).reset_index(
        drop=True
    )


OOKLA_COLUMNS = ("quadkey", "avg_d_kbps", "avg_u_kbps", "avg_lat_ms", "tests", "devices")


def read_ookla_tiles(path: str | Path) -> gpd.GeoDataFrame:
    """Ookla open-data performance tiles (GeoJSON/GeoPackage, or Parquet with WKT ``tile``).

    Returns ``quadkey`` (string), ``avg_d_kbps``, ``avg_u_kbps``, ``avg_lat_ms``, ``tests``,
    ``devices`` and the tile polygon in EPSG:4326.
    """
    import geopandas as gpd
    import shapely

    label = str(path)
    if str(path).lower().endswith((".parquet", ".pq")):
        if not Path(path).exists():
            raise IngestError("file not found", path=label)
        try:
            table = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise IngestError(f"not a readable Parquet file ({exc})", path=label) from exc
        if "tile" not in table:
            raise IngestError("Ookla Parquet without a 'tile' WKT column", path=label)
        gdf = gpd.GeoDataFrame(
            table.drop(columns="tile"), geometry=shapely.from_wkt(table["tile"]), crs=CRS
        )
    else:
        gdf = _read_vector(path, "Ookla tiles")
    missing = [c for c in OOKLA_COLUMNS if c not in gdf.columns]
    if missing:
        raise IngestError(f"not Ookla tiles: missing columns {missing}", path=label)
    gdf = _polygons(gdf)
    out = gdf[[*OOKLA_COLUMNS, "geometry"]].copy()
    out["quadkey"] = out["quadkey"].astype("string")
    for col in ("avg_d_kbps", "avg_u_kbps", "avg_lat_ms"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in ("tests", "devices"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return out.reset_index(drop=True)
