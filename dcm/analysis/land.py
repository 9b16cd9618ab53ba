"""Outages cut to the land: nobody loses phone service at sea.

Outage polygons are built from the reach of cell sites, which does not stop at the
shore; on an island they run kilometres out to sea. :func:`clip_to_land` keeps the part
on land, plus a small margin: even a full-resolution coastline (GSHHG) is a few hundred
metres off on a small island (St Vincent's towns lie up to 300 m "at sea" on it), and
coastal villages sit right on the shore.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from dcm.analysis.coverage import M_PER_DEG_LAT, area_km2, object_ids

#: Land is widened by this much before clipping (coastline precision of GSHHG full
#: resolution on small islands: every St Vincent town of GeoNames lies within 301 m).
COAST_MARGIN_M = 400.0


def widen(land: shapely.Geometry, margin_m: float) -> shapely.Geometry:
    """``land`` buffered by ``margin_m`` metres (a local equal-distance scale at its
    centre latitude, so the margin is the same east-west as north-south)."""
    if margin_m <= 0:
        return land
    lat0 = shapely.get_y(shapely.centroid(land))
    k = max(np.cos(np.radians(lat0)), 0.05)
    # Stretch longitudes to metres-like units, buffer, stretch back.
    stretched = shapely.transform(land, lambda xy: xy * np.array([k, 1.0]))
    grown = shapely.buffer(stretched, margin_m / M_PER_DEG_LAT, quad_segs=4)
    return shapely.transform(grown, lambda xy: xy / np.array([k, 1.0]))


def clip_to_land(
    outages: gpd.GeoDataFrame,
    land: shapely.Geometry | None,
    *,
    margin_m: float = COAST_MARGIN_M,
) -> gpd.GeoDataFrame:
    """``outages`` with each geometry cut to ``land`` widened by ``margin_m`` metres.

    Rows left with no area are dropped and ``area_km2`` (when present) is recomputed; other
    columns are kept as they are. ``land`` None or empty (open sea, or no land data for
    the place) returns the frame unchanged. The input frame is never modified.
    """
    if land is None or shapely.is_empty(land) or outages.empty:
        return outages
    shore = widen(land, margin_m)
    shapely.prepare(shore)
    # A lasting outage is the same shape object window after window: clip each once.
    every = outages.geometry.to_numpy()
    first, of = np.unique(object_ids(every), return_index=True, return_inverse=True)[1:]
    geoms = every[first]
    cut = geoms.copy()
    cross = ~shapely.contains(shore, geoms)
    if cross.any():
        cut[cross] = shapely.intersection(geoms[cross], shore)
        # Keep polygons only (an intersection can add slivers of lines or points).
        cut[cross] = _polygonal(cut[cross])
    solid = ~shapely.is_empty(cut) & (shapely.area(cut) > 0)
    out = outages.copy()
    out = out.set_geometry(gpd.GeoSeries(cut[of], index=outages.index, crs=outages.crs))
    remeasure = cross & solid
    if "area_km2" in out and remeasure.any():
        area = np.full(len(cut), np.nan)
        area[remeasure] = np.round(area_km2(cut[remeasure]), 3)
        moved = remeasure[of]
        out.loc[moved, "area_km2"] = area[of[moved]]
    out = out[solid[of]]
    return out


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Each geometry reduced to its polygon parts (collections from clipping)."""
    out = geoms.copy()
    mixed = shapely.get_type_id(geoms) == 7  # GeometryCollection
    for i in np.flatnonzero(mixed):  # rare: a clip that touches the shore at a point
        parts = shapely.get_parts(geoms[i])
        polys = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out[i] = shapely.union_all(polys) if polys.size else shapely.Polygon()
    return out
