"""A region built from the real cells of an OpenCelliD export inside a bounding box.

The export's cells in the box are the network: sites are its cells grouped by
co-location and eNodeB (:func:`dcm.ingest.cells.group_sites`, as ``read_cells``
does), each site stands at the mean position of its cells, and its radius follows
the spacing of its network's sites nearby (OpenCelliD's ``range`` is too rough).
People live where cells are dense (a smoothed site density), towns are the
densest places, the land is the cells' hull (buffered) within the box, admin areas
a 3 x 3 grid of it. Cells of radios the simulator does not model (CDMA) stay in
the export but are never heard and have no truth, like stale cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import affine
import numpy as np
import pandas as pd
import shapely
from scipy import ndimage
from scipy.spatial import cKDTree

from dcm.errors import ParameterError
from dcm.schema import CELL_COLUMNS
from dcm.simulate.geo import LocalProjection
from dcm.simulate.network import RADIO_PREFERENCE
from dcm.simulate.regions import AreaSeed, NetworkSpec, Region, Town

#: Fewest sites a box must hold to make a scenario.
MIN_SITES = 10
#: Site radius: this many times the distance to the 3rd nearest site of its network,
#: within [RANGE_MIN_M, RANGE_MAX_M], so neighbours overlap as real sites do.
RANGE_FACTOR = 1.3
RANGE_MIN_M = 400.0
RANGE_MAX_M = 6_000.0
#: People per site on average, spread like the site density smoothed over this scale.
PEOPLE_PER_SITE = 1_500.0
PEOPLE_SMOOTHING_M = 700.0
#: Land: the sites' hull widened by this much, cut to the box.
LAND_BUFFER_M = 1_500.0
#: Densest places that become towns (shelters for evacuees).
N_TOWNS = 5


@dataclass(frozen=True)
class RealNetwork:
    """Geometry taken from a cell export: the region, true sites and simulated cells."""

    region: Region
    #: The export's rows inside the box (``CELL_COLUMNS``), written as cells.csv.gz.
    export: pd.DataFrame
    #: One row per site: site_id, network, mcc, mnc, lon, lat, x, y, range_m, urban, tower.
    sites: pd.DataFrame
    #: One row per simulated cell, like :func:`dcm.simulate.network.build_cells`, plus
    #: ``primary`` (the cell heard for its site, radio and sector).
    cells: pd.DataFrame


def cells_in_bbox(cells: pd.DataFrame, bbox: tuple[float, float, float, float]) -> pd.DataFrame:
    """Rows of a ``CELL_COLUMNS`` frame inside (lon_min, lat_min, lon_max, lat_max)."""
    w, s, e, n = bbox
    inside = cells["lon"].between(w, e) & cells["lat"].between(s, n)
    return cells.loc[inside.to_numpy()].reset_index(drop=True)


def real_network(
    cells: pd.DataFrame, bbox: tuple[float, float, float, float], *, rng: np.random.Generator
) -> RealNetwork:
    """Region, sites and cells from the export rows (``CELL_COLUMNS``) inside ``bbox``."""
    export = cells_in_bbox(cells, bbox)[list(CELL_COLUMNS)]
    modelled = export["radio"].isin(RADIO_PREFERENCE).to_numpy()
    sim = export.loc[modelled].reset_index(drop=True)
    site_ids, site_row = np.unique(sim["site_id"].astype(str).to_numpy(), return_inverse=True)
    if len(site_ids) < MIN_SITES:
        raise ParameterError(
            f"bbox {bbox} holds {len(site_ids)} sites of the cell export; need at least {MIN_SITES}"
        )
    w, s, e, n = bbox
    first = pd.DataFrame({"row": site_row, "i": np.arange(len(sim))}).groupby("row")["i"].min()
    lon = np.bincount(site_row, weights=sim["lon"].to_numpy()) / np.bincount(site_row)
    lat = np.bincount(site_row, weights=sim["lat"].to_numpy()) / np.bincount(site_row)
    proj = LocalProjection((w + e) / 2, (s + n) / 2)
    network = sim["network"].astype(str).to_numpy()[first.to_numpy()]
    sites = pd.DataFrame(
        {
            "site_id": site_ids,
            "network": network,
            "mcc": sim["mcc"].to_numpy()[first.to_numpy()].astype(np.int64),
            "mnc": sim["net"].to_numpy()[first.to_numpy()].astype(np.int64),
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
        }
    )
    xy = proj.to_xy(sites["lon"].to_numpy(), sites["lat"].to_numpy())
    sites["x"], sites["y"] = xy[:, 0], xy[:, 1]
    sites["range_m"] = _ranges(xy, network)
    sites["urban"] = sites["range_m"].to_numpy() < 1_500
    sites["tower"] = np.arange(len(sites), dtype=np.int64)

    region = _region(sites, bbox, proj)
    sim_cells = _cells(sim, site_row, sites, rng)
    return RealNetwork(region=region, export=export, sites=sites, cells=sim_cells)


def _ranges(xy: np.ndarray, network: np.ndarray) -> np.ndarray:
    """Site radius from the spacing of its network's sites nearby (m, rounded)."""
    out = np.full(len(xy), RANGE_MAX_M)
    for key in np.unique(network):
        members = np.flatnonzero(network == key)
        if len(members) < 2:
            continue
        k = min(4, len(members))
        dist, _ = cKDTree(xy[members]).query(xy[members], k=k)
        out[members] = RANGE_FACTOR * dist[:, -1]
    return np.round(np.clip(out, RANGE_MIN_M, RANGE_MAX_M), 0)


def _region(
    sites: pd.DataFrame, bbox: tuple[float, float, float, float], proj: LocalProjection
) -> Region:
    w, s, e, n = bbox
    xy = sites[["x", "y"]].to_numpy()
    hull = shapely.MultiPoint(xy).convex_hull.buffer(LAND_BUFFER_M, quad_segs=4)
    ring = np.asarray(hull.exterior.coords)
    hull_ll = shapely.Polygon(np.column_stack(proj.to_lonlat(ring[:, 0], ring[:, 1])))
    land = shapely.intersection(hull_ll, shapely.box(w, s, e, n))
    if not isinstance(land, shapely.Polygon):
        land = shapely.box(w, s, e, n)
    land = shapely.Polygon(np.round(np.asarray(land.exterior.coords), 6))
    counts = sites.groupby("network").size()
    networks = tuple(
        NetworkSpec(
            mcc=int(sites.loc[sites["network"] == key, "mcc"].iloc[0]),
            mnc=int(sites.loc[sites["network"] == key, "mnc"].iloc[0]),
            share=float(counts[key] / counts.sum()),
            radios=(),
            rural_spacing_m=0.0,
            people_per_urban_site=0.0,
        )
        for key in counts.index
    )
    minx, miny, maxx, maxy = land.bounds
    areas = tuple(
        AreaSeed(
            f"BX-{i * 3 + j + 1:02d}",
            f"District {i * 3 + j + 1}",
            ((minx + (j + 0.5) * (maxx - minx) / 3, miny + (i + 0.5) * (maxy - miny) / 3),),
        )
        for i in range(3)
        for j in range(3)
    )
    towns = _towns(sites, land, proj)
    total = sum(t.population for t in towns)
    return Region(
        name=f"OpenCelliD cells in {w:g},{s:g},{e:g},{n:g}",
        land=land,
        towns=towns,
        networks=networks,
        areas=areas,
        # Local solar time zone: good enough for the hour-of-day cycle.
        utc_offset_h=float(round((w + e) / 2 / 15)),
        rural_density=0.0,
        shelters=tuple((t.name, t.population / total) for t in towns),
    )


def _density(
    sites: pd.DataFrame, land: shapely.Polygon, pixel_deg: float
) -> tuple[np.ndarray, affine.Affine]:
    """Smoothed count of sites per pixel over the land's bounds (north-up) and its transform."""
    minx, miny, maxx, maxy = land.bounds
    px = pixel_deg
    west, north = np.floor(minx / px) * px - px, np.ceil(maxy / px) * px + px
    width = int(np.ceil((maxx - west) / px)) + 1
    height = int(np.ceil((north - miny) / px)) + 1
    transform = affine.Affine(px, 0.0, west, 0.0, -px, north)
    col = np.clip(((sites["lon"].to_numpy() - west) / px).astype(int), 0, width - 1)
    row = np.clip(((north - sites["lat"].to_numpy()) / px).astype(int), 0, height - 1)
    grid = np.zeros((height, width))
    np.add.at(grid, (row, col), 1.0)
    sigma_px = PEOPLE_SMOOTHING_M / (px * 111_000.0)
    return ndimage.gaussian_filter(grid, sigma_px, mode="constant"), transform


def _towns(sites: pd.DataFrame, land: shapely.Polygon, proj: LocalProjection) -> tuple[Town, ...]:
    """The densest places (local maxima of site density at least 3 km apart)."""
    px = Region.pixel_deg
    dens, transform = _density(sites, land, px)
    size = max(3, round(3_000 / (px * 111_000.0)))
    peak = (dens == ndimage.maximum_filter(dens, size=size, mode="constant")) & (dens > 0)
    rows, cols = np.nonzero(peak)
    order = np.argsort(-dens[rows, cols], kind="stable")[:N_TOWNS]
    people = dens * (PEOPLE_PER_SITE * len(sites) / max(dens.sum(), 1e-12))
    towns = []
    for i, j in enumerate(order):
        r, c = int(rows[j]), int(cols[j])
        lon = transform.c + transform.a * (c + 0.5)
        lat = transform.f + transform.e * (r + 0.5)
        near = people[max(0, r - 15) : r + 16, max(0, c - 15) : c + 16].sum()
        towns.append(Town(f"Town {i + 1}", round(lon, 5), round(lat, 5), float(near), 1_500.0))
    return tuple(towns)


def real_population(
    sites: pd.DataFrame, region: Region, rng: np.random.Generator
) -> tuple[np.ndarray, affine.Affine]:
    """People per pixel (float32, north-up) where the sites are dense, and its transform."""
    dens, transform = _density(sites, region.land, region.pixel_deg)
    h, w = dens.shape
    lon = transform.c + (np.arange(w) + 0.5) * transform.a
    lat = transform.f + (np.arange(h) + 0.5) * transform.e
    glon, glat = np.meshgrid(lon, lat)
    on_land = shapely.contains_xy(region.land, glon.ravel(), glat.ravel()).reshape(h, w)
    people = dens * rng.lognormal(0, 0.5, dens.shape) * on_land
    # Below a hundredth of the mean, nobody lives there (no empty-looking haze of people).
    people[people < 0.01 * people[on_land].mean()] = 0.0
    people *= PEOPLE_PER_SITE * len(sites) / max(people.sum(), 1e-12)
    return np.round(people, 2).astype("float32"), transform


def _cells(
    sim: pd.DataFrame, site_row: np.ndarray, sites: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Simulated cells from the export's cells: each gets a sector of its site.

    A site has as many sectors (1-3) as the radio it has fewest cells of; within a
    radio, cells in order of cell id take sectors in turn; the first cell of each
    (radio, sector) is the one phones are served by (``primary``).
    """
    radio = sim["radio"].astype(str).to_numpy()
    code = pd.Series(radio).map({r: i for i, r in enumerate(RADIO_PREFERENCE)}).to_numpy()
    frame = pd.DataFrame(
        {
            "site_row": site_row,
            "radio_code": code,
            "cell": sim["cell"].to_numpy(dtype=np.int64),
            "area": sim["area"].to_numpy(dtype=np.int64),
            "pos": np.arange(len(sim)),
        }
    )
    frame = frame.sort_values(["site_row", "radio_code", "cell", "area"], kind="stable")
    rank = frame.groupby(["site_row", "radio_code"]).cumcount().to_numpy()
    per_radio = frame.groupby(["site_row", "radio_code"]).size()
    n_sec_site = per_radio.groupby(level="site_row").min().clip(1, 3)
    n_sec = n_sec_site.reindex(frame["site_row"].to_numpy()).to_numpy()
    azimuth0 = rng.uniform(0, 360, len(sites))
    pos = frame["pos"].to_numpy()
    unit = sim["unit"].to_numpy()
    unit = np.where(pd.isna(unit), -1, unit).astype(np.int64)
    srow = frame["site_row"].to_numpy()
    out = pd.DataFrame(
        {
            "site_row": srow,
            "radio": radio[pos],
            "area": frame["area"].to_numpy(),
            "cell": frame["cell"].to_numpy(),
            "unit": unit[pos],
            "sector": rank % n_sec,
            "n_sectors": n_sec,
            "azimuth0": azimuth0[srow],
            "primary": rank < n_sec,
        }
    )
    for col in ("site_id", "network", "mcc", "mnc"):
        out[col] = sites[col].to_numpy()[srow]
    out = out.rename(columns={"mnc": "net"})
    return out.reset_index(drop=True)


__all__ = ["RealNetwork", "cells_in_bbox", "real_network", "real_population"]
