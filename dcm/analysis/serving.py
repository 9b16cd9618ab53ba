"""Where each site serves, and which offline cells serve an area (the gap report's
``cells_offline``).

A site's service area is a disc around its mast (the mean position of its cells) of its
reach: the baseline's farthest precise sighting (``reach_m``, else the clipped
OpenCelliD range ``range_m``), as the outage layer counts the sites whose service area
an outage is (see :func:`dcm.analysis.outages._cells_serving`). A mast usually stands
outside the places it serves (on a ridge above the valley), so an area counts the
offline cells of every site whose service area meets it, not the cells located in it.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from dcm.analysis.coverage import _discs, fallback_reach, site_positions
from dcm.analysis.params import DetectionParams
from dcm.schema import ALL_NETWORKS, CRS


def site_service_areas(
    cells: pd.DataFrame,
    sites: pd.DataFrame | None = None,
    *,
    params: DetectionParams | None = None,
) -> gpd.GeoDataFrame:
    """Service area of each site of ``cells`` (a cell frame with ``site_id``,
    ``network``, ``lon``, ``lat``, ``range``).

    Radius: the reach of the site in the baseline model's ``sites`` (``site_id``,
    ``reach_m``, ``range_m``) when it has one; otherwise (a site the baseline lacks, or
    no baseline) the median OpenCelliD range of its cells clipped to
    ``params.cell_range_min_m`` … ``cell_range_max_m``. Returns ``site_id``,
    ``network``, ``radius_m`` and the disc (EPSG:4326), one row per site.
    """
    params = params or DetectionParams()
    cells = cells.dropna(subset=["site_id"]).reset_index(drop=True)
    site_of_cell, site_ids = pd.factorize(cells["site_id"].astype(str))
    n_site = len(site_ids)
    lon, lat = site_positions(cells, site_of_cell, n_site)
    radius = fallback_reach(cells, site_of_cell, n_site, params)
    if sites is not None and len(sites):
        known = sites.drop_duplicates("site_id").set_index(sites["site_id"].astype(str))
        reach = known["reach_m"].astype("float64")
        reach = reach.where(np.isfinite(reach), known["range_m"].astype("float64"))
        own = reach.reindex(site_ids).to_numpy("float64")
        radius = np.where(np.isfinite(own) & (own > 0), own, radius)
    first = np.unique(site_of_cell, return_index=True)[1]
    placed = np.isfinite(lon) & np.isfinite(lat)
    discs = np.full(n_site, None, dtype=object)
    discs[placed] = _discs(lon[placed], lat[placed], radius[placed])
    return gpd.GeoDataFrame(
        {
            "site_id": pd.array(site_ids, dtype="string"),
            "network": pd.array(cells["network"].astype(str).to_numpy()[first], dtype="string"),
            "radius_m": radius,
        },
        geometry=discs,
        crs=CRS,
    )


def cells_serving_areas(
    areas: gpd.GeoDataFrame, offline: pd.DataFrame, service: gpd.GeoDataFrame
) -> pd.DataFrame:
    """Offline cells per area and network whose site's service area meets the area.

    ``offline``: one row per offline cell (``site_id``, ``network``; ``lon``/``lat``
    where a cell's site has no service area in ``service``, e.g. an unplaced site:
    then the cell counts where it stands). ``areas``: ``area_id`` and polygons.
    Returns ``area_id``, ``network`` and ``cells``, with network ``"all"`` counting
    the offline cells of every network; only pairs with at least one cell.
    """
    cols = ["area_id", "network", "cells"]
    if offline.empty or areas.empty:
        return pd.DataFrame(columns=cols)
    disc = pd.Series(service.geometry.to_numpy(), index=service["site_id"].astype(str))
    disc = disc[~disc.index.duplicated()]
    geoms = disc.reindex(offline["site_id"].astype(str)).to_numpy(dtype=object, copy=True)
    missing = pd.isna(geoms)
    if missing.any() and {"lon", "lat"} <= set(offline.columns):
        geoms[missing] = shapely.points(
            offline["lon"].to_numpy("float64")[missing],
            offline["lat"].to_numpy("float64")[missing],
        )
    usable = ~pd.isna(geoms)
    usable[usable] = ~shapely.is_empty(geoms[usable])
    cell = np.flatnonzero(usable)
    if cell.size == 0:
        return pd.DataFrame(columns=cols)
    area, hit = shapely.STRtree(geoms[cell]).query(
        areas.geometry.to_numpy(), predicate="intersects"
    )
    pairs = pd.DataFrame(
        {
            "area_id": areas["area_id"].to_numpy()[area],
            "network": offline["network"].astype(str).to_numpy()[cell[hit]],
        }
    )
    per_net = pairs.groupby(["area_id", "network"], sort=False).size()
    per_all = pairs.groupby("area_id", sort=False).size()
    out = pd.concat(
        [
            per_net.rename("cells").reset_index(),
            per_all.rename("cells").reset_index().assign(network=ALL_NETWORKS),
        ],
        ignore_index=True,
    )
    return out[cols]
