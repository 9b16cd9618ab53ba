"""Named scenarios and :func:`simulate`, which turns one into frames plus ground truth."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import affine
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from dcm.errors import ParameterError
from dcm.schema import CELL_COLUMNS, CRS, MEASUREMENT_COLUMNS, validate_frame
from dcm.simulate.conditions import Conditions
from dcm.simulate.geo import LocalProjection, pixel_centres
from dcm.simulate.hazard import Hazard, Zone
from dcm.simulate.measurements import (
    FIELD_DELAY_H,
    FIELD_DIURNAL,
    People,
    generate,
    make_people,
    time_weight,
)
from dcm.simulate.network import RADIO_PREFERENCE, assign_outages, build_cells, build_sites
from dcm.simulate.realcells import RealNetwork, real_network, real_population
from dcm.simulate.regions import Region, st_vincent, synthetic
from dcm.simulate.truth import (
    SECTOR_COLUMNS,
    SITE_COLUMNS,
    TRUTH_CELL_COLUMNS,
    ScenarioTruth,
    SiteIndex,
)

#: Share of event measurements made by field teams in the hit area (disasters only).
FIELD_SHARE = 0.06
#: Share of extra OpenCelliD rows for cells that no longer exist.
STALE_CELL_SHARE = 0.03

SCENARIOS: tuple[str, ...] = (
    "quake",
    "cyclone",
    "eruption",
    "control",
    "stvincent",
    "stvincent-control",
)


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything that defines a named scenario except the seed and scale."""

    name: str
    region: Region
    hazard: Hazard | None
    onset: pd.Timestamp
    baseline_days: float
    event_days: float
    baseline_rows: int
    event_rows: int
    #: Peak event-period volume relative to the baseline hourly rate (app campaign).
    campaign: float
    description: str


@dataclass
class Scenario:
    """A simulated disaster (or calm control) with its inputs and ground truth.

    ``baseline`` covers [baseline_start, event_start), ``event`` covers
    [event_start, event_end); the hazard strikes at ``event_start``.
    """

    name: str
    seed: int
    baseline_start: pd.Timestamp
    event_start: pd.Timestamp
    event_end: pd.Timestamp
    cells: pd.DataFrame
    baseline: pd.DataFrame
    event: pd.DataFrame
    population: np.ndarray
    population_transform: affine.Affine
    areas: gpd.GeoDataFrame
    hazard: gpd.GeoDataFrame
    truth: ScenarioTruth


def _synthetic_spec(name: str, region: Region | None = None) -> ScenarioSpec:
    """The synthetic island's scenario, or the same hazard put on ``region`` relative to
    its centre (offsets and sizes shrunk to fit a region smaller than the 60 km island)."""
    own = region is None
    region = synthetic() if region is None else region
    lon0, lat0 = region.centre
    proj = LocalProjection(lon0, lat0)
    fit = 1.0
    if not own:
        ring = np.asarray(region.land.exterior.coords)
        xy = proj.to_xy(ring[:, 0], ring[:, 1])
        half_km = float(min(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]))) / 2 / 1000
        fit = min(1.0, half_km / 30.0)

    def ll(x_km: float, y_km: float) -> tuple[float, float]:
        lon, lat = proj.to_lonlat(np.array([x_km * fit * 1000]), np.array([y_km * fit * 1000]))
        return float(lon[0]), float(lat[0])

    onset = pd.Timestamp("2024-03-11T05:46:00Z")
    zones3 = (Zone("red", 0.5, 0.85), Zone("orange", 0.25, 0.3), Zone("yellow", 0.1, 0.0))
    hazard: Hazard | None
    if name == "quake":
        hazard = Hazard(
            "quake",
            (ll(-14, -4),),
            core_m=3_000,
            scale_m=9_000,
            zones=(
                Zone("IX", 0.6, 0.85),
                Zone("VIII", 0.35, 0.3),
                Zone("VII", 0.18, 0.0),
                Zone("VI", 0.08, 0.0),
            ),
            damage_max=0.7,
            damage_gamma=1.5,
            power_max=0.8,
            power_gamma=1.0,
            damage_delay_h=(0.0, 0.2),
            dead_phones=0.3,
        )
    elif name == "cyclone":
        hazard = Hazard(
            "cyclone",
            (ll(45, -40), ll(0, -5), ll(-45, 35)),
            core_m=6_000,
            scale_m=10_000,
            zones=zones3,
            damage_max=0.5,
            damage_gamma=1.5,
            power_max=0.75,
            power_gamma=0.8,
            damage_delay_h=(-1.0, 2.0),
            speed_ms=5.0,
            dead_phones=0.5,
            harmless_below=0.25,
        )
    elif name == "eruption":
        hazard = Hazard(
            "eruption",
            (ll(12, 14),),
            core_m=4_000,
            scale_m=7_000,
            zones=zones3,
            damage_max=0.7,
            damage_gamma=1.5,
            power_max=0.9,
            power_gamma=0.8,
            damage_delay_h=(0.0, 6.0),
            dead_phones=0.4,
        )
    else:
        hazard = None
    if hazard is not None and not own:
        # The same hazard relative to the region's size: as much of it is hit as of the island.
        hazard = replace(hazard, core_m=hazard.core_m * fit, scale_m=hazard.scale_m * fit)
    return ScenarioSpec(
        name=name,
        region=region,
        hazard=hazard,
        onset=onset,
        baseline_days=14,
        event_days=7,
        baseline_rows=200_000,
        event_rows=200_000 if hazard is not None else 150_000,
        campaign=2.0 if hazard is not None else 1.5,
        description=(
            (
                f"synthetic {name} on a 60 x 60 km island"
                if hazard is not None
                else "synthetic island, no disaster (control)"
            )
            if own
            else (
                f"synthetic {name} on {region.name}"
                if hazard is not None
                else f"{region.name}, no disaster (control)"
            )
        ),
    )


def _stvincent_spec(name: str) -> ScenarioSpec:
    region = st_vincent()
    land = region.land

    def band(lat_w: float, lat_e: float) -> BaseGeometry:
        # Land north of a line from the west coast (lat_w) to the east coast (lat_e).
        return shapely.intersection(
            land, shapely.Polygon([(-61.4, lat_w), (-61.0, lat_e), (-61.0, 13.5), (-61.4, 13.5)])
        )

    red = band(13.268, 13.262)
    orange = shapely.difference(band(13.228, 13.222), red)
    green = shapely.difference(land, band(13.228, 13.222))
    # La Soufrière; intensity (ash, pyroclastic flows) fades over ~6 km beyond 3 km.
    hazard = Hazard(
        "eruption",
        ((-61.181, 13.334),),
        core_m=3_000,
        scale_m=6_000,
        zones=(
            # The red zone is cut from mains power and under heavy ash.
            Zone("red", 0.0, 0.9, red, min_harm=0.6),
            Zone("orange", 0.0, 0.3, orange, min_harm=0.2),
            Zone("green", 0.0, 0.0, green),
        ),
        damage_max=0.7,
        damage_gamma=1.0,
        power_max=0.9,
        power_gamma=0.7,
        # Ash from the explosions of 9-10 April builds up on equipment over a day.
        damage_delay_h=(0.0, 30.0),
        dead_phones=0.4,
        harmless_below=0.2,
    )
    return ScenarioSpec(
        name=name,
        region=region,
        hazard=hazard if name == "stvincent" else None,
        onset=pd.Timestamp("2021-04-09T12:41:00Z"),
        baseline_days=21,
        event_days=7,
        baseline_rows=40_000,
        event_rows=32_000 if name == "stvincent" else 24_000,
        campaign=1.9 if name == "stvincent" else 1.4,
        description=(
            "La Soufrière eruption of 9 April 2021 on St Vincent (approximate)"
            if name == "stvincent"
            else "St Vincent, same periods, no eruption"
        ),
    )


def scenario_spec(name: str) -> ScenarioSpec:
    """The definition of a named scenario; raises ParameterError for unknown names."""
    if name not in SCENARIOS:
        raise ParameterError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return _stvincent_spec(name) if name.startswith("stvincent") else _synthetic_spec(name)


def population_raster(region: Region, rng: np.random.Generator) -> tuple[np.ndarray, affine.Affine]:
    """People per pixel (float32, north-up) and its EPSG:4326 transform."""
    px = region.pixel_deg
    minx, miny, maxx, maxy = region.land.bounds
    west, north = np.floor(minx / px) * px - px, np.ceil(maxy / px) * px + px
    width = int(np.ceil((maxx - west) / px)) + 1
    height = int(np.ceil((north - miny) / px)) + 1
    transform = affine.Affine(px, 0.0, west, 0.0, -px, north)
    lon = west + (np.arange(width) + 0.5) * px
    lat = north - (np.arange(height) + 0.5) * px
    glon, glat = np.meshgrid(lon, lat)
    proj = LocalProjection(*region.centre)
    xy = proj.to_xy(glon.ravel(), glat.ravel())
    pixel_km2 = (px * proj.kx / 1000) * (px * proj.ky / 1000)
    density = np.full(len(xy), region.rural_density)
    for town in region.towns:
        t = proj.to_xy(np.array([town.lon]), np.array([town.lat]))[0]
        d2 = ((xy - t) ** 2).sum(axis=1)
        peak = town.population / (2 * np.pi * (town.radius_m / 1000) ** 2)
        density += peak * np.exp(-d2 / (2 * town.radius_m**2))
    on_land = shapely.contains_xy(region.land, glon.ravel(), glat.ravel())
    people = density * pixel_km2 * rng.lognormal(0, 0.5, len(xy)) * on_land
    # Roads and hamlets: a share of rural pixels is empty.
    people[(density < 3 * region.rural_density) & (rng.uniform(size=len(xy)) < 0.3)] = 0
    return np.round(people, 2).reshape(height, width).astype("float32"), transform


def admin_areas(region: Region) -> gpd.GeoDataFrame:
    """Admin areas covering the land: the land nearest to each area's seed points."""
    pts = [(a.area_id, a.name, p) for a in region.areas for p in a.points]
    seeds = shapely.multipoints([p for _, _, p in pts])
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=region.land.buffer(0.1)))
    seed_pts = shapely.points([p for _, _, p in pts])
    owner = [next(i for i, s in enumerate(seed_pts) if c.contains(s)) for c in cells]
    rows = []
    for area in region.areas:
        parts = [cells[j] for j, i in enumerate(owner) if pts[i][0] == area.area_id]
        geom = shapely.intersection(shapely.union_all(parts), region.land)
        rows.append({"area_id": area.area_id, "name": area.name, "geometry": geom})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)


def _opencellid_cells(
    cells: pd.DataFrame,
    sites: pd.DataFrame,
    *,
    before: pd.Timestamp,
    proj: LocalProjection,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The cells as an OpenCelliD export would show them (CELL_COLUMNS + site_id)."""
    n = len(cells)
    srow = cells["site_row"].to_numpy()
    true_range = sites["range_m"].to_numpy()[srow]
    # OpenCelliD positions are the centroid of where the cell was heard: pulled toward
    # the sector's direction and noisy; ranges are rough, often the 1000 m default.
    n_sec = cells["n_sectors"].to_numpy()
    az = np.radians(cells["azimuth0"].to_numpy() + (cells["sector"].to_numpy() + 0.5) * 360 / n_sec)
    pull = np.where(n_sec > 1, rng.uniform(0.1, 0.4, n) * true_range, 0.0)
    x = sites["x"].to_numpy()[srow] + pull * np.sin(az) + rng.normal(0, 150, n)
    y = sites["y"].to_numpy()[srow] + pull * np.cos(az) + rng.normal(0, 150, n)
    lon, lat = proj.to_lonlat(x, y)
    est = np.round(true_range * rng.uniform(0.2, 1.1, n))
    rng_m = np.where(rng.uniform(size=n) < 0.45, 1000.0, np.maximum(est, 100.0))
    created = before - pd.to_timedelta(rng.uniform(200, 3000, n) * 86_400, unit="s")
    updated = before - pd.to_timedelta(rng.uniform(1, 200, n) * 86_400, unit="s")
    samples = np.maximum(1, np.round(rng.lognormal(3.0, 1.2, n))).astype(int)
    unit = cells["unit"].to_numpy()
    frame = pd.DataFrame(
        {
            "radio": pd.array(cells["radio"].to_numpy(), dtype="string"),
            "mcc": cells["mcc"].to_numpy().astype("int64"),
            "net": cells["net"].to_numpy().astype("int64"),
            "area": cells["area"].to_numpy().astype("int64"),
            "cell": cells["cell"].to_numpy().astype("int64"),
            "unit": pd.array(np.where(unit >= 0, unit, 0), dtype="Int64"),
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
            "range": rng_m,
            "samples": pd.array(samples, dtype="Int64"),
            "changeable": pd.array(np.ones(n, dtype=int), dtype="Int64"),
            "created": pd.DatetimeIndex(created).floor("s").as_unit("ns"),
            "updated": pd.DatetimeIndex(updated).floor("s").as_unit("ns"),
            "averageSignal": np.where(
                rng.uniform(size=n) < 0.8, 0.0, np.round(rng.uniform(-110, -60, n))
            ),
            "network": pd.array(cells["network"].to_numpy(), dtype="string"),
            "site_id": pd.array(cells["site_id"].to_numpy(), dtype="string"),
        }
    )
    frame.loc[unit < 0, "unit"] = pd.NA
    # OpenCelliD keeps cells long gone (decommissioned, re-numbered): they are in the
    # export but never heard, and belong to no site of the truth.
    stale = frame.sample(n=round(STALE_CELL_SHARE * n), random_state=rng).reset_index(drop=True)
    k = len(stale)
    gsm = (stale["radio"] == "GSM").to_numpy()
    stale["cell"] = np.where(gsm, 60_000 + np.arange(k), stale["cell"] + 50_000_000)
    stale["lon"] = np.round(stale["lon"] + rng.normal(0, 0.015, k), 6)
    stale["lat"] = np.round(stale["lat"] + rng.normal(0, 0.015, k), 6)
    stale["updated"] = (
        (before - pd.to_timedelta(rng.uniform(900, 2000, k) * 86_400, unit="s"))
        .floor("s")
        .as_unit("ns")
    )
    stale["created"] = stale["updated"] - pd.to_timedelta(
        np.round(rng.uniform(30, 900, k) * 86_400), unit="s"
    )
    stale["samples"] = pd.array(rng.integers(1, 6, k), dtype="Int64")
    stale["site_id"] = pd.array(
        [f"{net}-X{i:03d}" for i, net in enumerate(stale["network"])], dtype="string"
    )
    frame = pd.concat([frame, stale], ignore_index=True)
    return frame[list(CELL_COLUMNS)]


def _shelter_weights(
    region: Region,
    hazard: Hazard | None,
    px_xy: np.ndarray,
    px_pop: np.ndarray,
    proj: LocalProjection,
) -> np.ndarray:
    """Weight of each populated pixel as a place evacuees go: around shelter towns
    (relatives, schools, churches), away from the hazard."""
    weights = dict(region.shelters)
    out = np.zeros(len(px_xy))
    for town in region.towns:
        w = weights.get(town.name, 0.0)
        t_xy = proj.to_xy(np.array([town.lon]), np.array([town.lat]))[0]
        if hazard is not None:
            # Evacuees go where the hazard is weak.
            w *= (
                float(1 - hazard.intensity(np.array([town.lon]), np.array([town.lat]), proj)[0])
                ** 4
            )
        if w <= 0:
            continue
        g = px_pop * np.exp(-((px_xy - t_xy) ** 2).sum(axis=1) / (2 * (1.5 * town.radius_m) ** 2))
        if g.sum() > 0:
            out += w * g / g.sum()
    return out if out.sum() > 0 else px_pop.astype("float64")


def _read_export(path: str) -> pd.DataFrame:
    """The cells of an OpenCelliD export (``CELL_COLUMNS``), read once per file version."""
    from dcm.ingest.cells import read_cells

    p = Path(path)
    if not p.is_file():
        return read_cells(p).frame  # raises the reader's one-line error
    stat = p.stat()
    return _read_export_cached(str(p.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_export_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    from dcm.ingest.cells import read_cells

    return read_cells(path).frame


def _with_conditions(spec: ScenarioSpec, cond: Conditions) -> ScenarioSpec:
    """The spec with the onset hour and power delay of ``cond`` applied."""
    if cond.onset_hour is not None:
        offset = pd.Timedelta(hours=spec.region.utc_offset_h)
        local_day = (spec.onset + offset).floor("D")
        onset = local_day + pd.Timedelta(hours=cond.onset_hour) - offset
        spec = replace(spec, onset=onset)
    if cond.power_delay_h is not None and spec.hazard is not None:
        spec = replace(spec, hazard=replace(spec.hazard, power_delay_h=cond.power_delay_h))
    return spec


def _sector_failures(
    sites: pd.DataFrame, cells: pd.DataFrame, *, share: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Add sector, n_sectors, azimuth0: ``share`` of the failed sites lose one sector only."""
    out = sites.copy()
    per_site = cells.groupby("site_row")[["n_sectors", "azimuth0"]].first()
    per_site = per_site.reindex(np.arange(len(out)))
    n_sec = per_site["n_sectors"].fillna(1).to_numpy(dtype=np.int64)
    u_pick, u_which = rng.uniform(size=len(out)), rng.uniform(size=len(out))
    hit = out["down_from"].notna().to_numpy()
    which = np.minimum((u_which * n_sec).astype(np.int64), n_sec - 1)
    out["sector"] = np.where(hit & (u_pick < share), which, -1).astype(np.int64)
    out["n_sectors"] = n_sec
    out["azimuth0"] = per_site["azimuth0"].fillna(0.0).to_numpy(dtype="float64")
    return out


@dataclass
class World:
    """Everything fixed for a scenario before its measurements are drawn: the spec, the
    network and its outages, the people and their phones, the random stream."""

    spec: ScenarioSpec
    real: RealNetwork | None
    rng: np.random.Generator
    proj: LocalProjection
    baseline_start: pd.Timestamp
    event_start: pd.Timestamp
    event_end: pd.Timestamp
    population: np.ndarray
    transform: affine.Affine
    sites: pd.DataFrame
    cells: pd.DataFrame
    index: SiteIndex
    lookup: np.ndarray
    people: People
    n_baseline: int
    n_event: int
    n_field: int
    n_devices: int
    n_field_devices: int

    def generate(
        self,
        start: pd.Timestamp,
        end: pd.Timestamp,
        n_rows: int,
        *,
        event: bool,
        field_rows: int = 0,
    ) -> pd.DataFrame:
        """About ``n_rows`` measurements in [start, end) (``event``: with the event's
        campaign ramp-up), drawn from the world's random stream."""
        return generate(
            self.people,
            self.index,
            self.lookup,
            self.cells,
            start=start,
            end=end,
            n_rows=n_rows,
            field_rows=field_rows,
            campaign=self.spec.campaign if event else 1.0,
            onset=self.event_start,
            hazard=self.spec.hazard,
            utc_offset_h=self.spec.region.utc_offset_h,
            proj=self.proj,
            rng=self.rng,
        )


def build_world(
    name: str,
    *,
    seed: int = 0,
    scale: float = 1.0,
    conditions: Conditions | None = None,
    days: tuple[float, float] | None = None,
    rows: tuple[int, int] | None = None,
) -> World:
    """The :class:`World` of a named scenario (see :func:`simulate` for the arguments).

    ``days`` (baseline, event) and ``rows`` (baseline, event) replace the scenario's
    own durations and volumes (then ``scale`` and ``conditions.density`` are not used
    for the volume).
    """
    if not scale > 0:
        raise ParameterError(f"scale must be > 0, got {scale}")
    if seed < 0:
        raise ParameterError(f"seed must be >= 0, got {seed}")
    cond = conditions if conditions is not None else Conditions()
    spec = scenario_spec(name)
    # Draws that only conditions need come from their own stream, so that the main
    # stream (and thus every scenario without conditions) stays as it was.
    rng_cond = np.random.default_rng([seed, 11])
    real: RealNetwork | None = None
    if cond.cells_from is not None and cond.bbox is not None:
        if name.startswith("stvincent"):
            raise ParameterError(
                f"cells_from works with quake, cyclone, eruption and control, not {name!r}"
            )
        real = real_network(_read_export(cond.cells_from), cond.bbox, rng=rng_cond)
        spec = _synthetic_spec(name, region=real.region)
    spec = _with_conditions(spec, cond)
    if days is not None:
        spec = replace(spec, baseline_days=float(days[0]), event_days=float(days[1]))
    region = spec.region
    rng = np.random.default_rng(seed)
    proj = LocalProjection(*region.centre)
    event_start = spec.onset
    event_end = event_start + pd.Timedelta(days=spec.event_days)
    baseline_start = event_start - pd.Timedelta(days=spec.baseline_days)

    if real is None:
        population, transform = population_raster(region, rng)
    else:
        population, transform = real_population(real.sites, region, rng)
    rows_i, cols_i = np.nonzero(population > 0)
    px_lon, px_lat = pixel_centres(transform, rows_i, cols_i)
    px_xy = proj.to_xy(px_lon, px_lat)
    pixel_m = np.array([region.pixel_deg * proj.kx, region.pixel_deg * proj.ky])

    if real is None:
        sites = build_sites(region, proj, rng)
    else:
        sites = real.sites.copy()
        xy = proj.to_xy(sites["lon"].to_numpy(), sites["lat"].to_numpy())
        sites["x"], sites["y"] = xy[:, 0], xy[:, 1]
    sites = assign_outages(
        sites,
        spec.hazard,
        onset=event_start,
        end=event_end,
        proj=proj,
        land=region.land,
        rng=rng,
        outage_hours=cond.outage_hours,
        clustering=cond.clustering,
    )
    cells = build_cells(sites, region, rng) if real is None else real.cells
    if cond.sector_share > 0:
        sites = _sector_failures(sites, cells, share=cond.sector_share, rng=rng_cond)
    index = SiteIndex(sites)
    lookup = np.full((len(sites), len(RADIO_PREFERENCE), 3), -1, dtype=np.int64)
    heard = cells["primary"].to_numpy(bool) if "primary" in cells else np.ones(len(cells), bool)
    lookup[
        cells["site_row"].to_numpy()[heard],
        cells["radio"].map(RADIO_PREFERENCE.index).to_numpy()[heard],
        cells["sector"].to_numpy()[heard],
    ] = np.flatnonzero(heard)

    shelter_px = _shelter_weights(region, spec.hazard, px_xy, population[rows_i, cols_i], proj)
    networks = [(n.key, n.mcc, n.mnc, n.share) for n in region.networks]
    n_baseline = max(1, round(spec.baseline_rows * scale))
    n_event = max(1, round(spec.event_rows * scale))
    if rows is not None:
        n_baseline, n_event = max(1, int(rows[0])), max(1, int(rows[1]))
    elif cond.density is not None:
        # Reports per site-hour in the baseline; the event keeps the scenario's ratio.
        hours = (event_start - baseline_start) / pd.Timedelta(hours=1)
        n_baseline = max(1, round(cond.density * len(sites) * hours * scale))
        n_event = max(1, round(n_baseline * spec.event_rows / spec.baseline_rows))
    # A few measurements per device per day during the event; field teams (disasters
    # only) test the networks in the hit area, ~20 tests a day per phone.
    n_field = round(FIELD_SHARE * n_event) if spec.hazard is not None else 0
    n_devices = max(20, round(n_event / spec.event_days / 3))
    n_field_devices = max(2, round(n_field / spec.event_days / 20)) if n_field else 0
    people = make_people(
        px_xy=px_xy,
        px_pop=population[rows_i, cols_i].astype("float64"),
        pixel_m=pixel_m,
        networks=networks,
        n_devices=n_devices,
        n_field_devices=n_field_devices,
        hazard=spec.hazard,
        proj=proj,
        shelter_px=shelter_px,
        rng=rng,
    )
    return World(
        spec=spec,
        real=real,
        rng=rng,
        proj=proj,
        baseline_start=baseline_start,
        event_start=event_start,
        event_end=event_end,
        population=population,
        transform=transform,
        sites=sites,
        cells=cells,
        index=index,
        lookup=lookup,
        people=people,
        n_baseline=n_baseline,
        n_event=n_event,
        n_field=n_field,
        n_devices=n_devices,
        n_field_devices=n_field_devices,
    )


def simulate_blocks(world: World, *, block_days: float = 1.0) -> Iterator[tuple[str, pd.DataFrame]]:
    """The world's baseline, then event measurements, in time blocks of at most
    ``block_days`` that end at UTC midnights (so each block lies in one UTC day when
    ``block_days`` <= 1): ("baseline" | "event", frame) pairs, each frame time-sorted.

    Rows are split over the blocks in proportion to the hour-of-day cycle and campaign
    ramp-up, field teams' rows over their working hours, and each block is drawn like a
    whole period of :func:`simulate` (same people, outages and random stream), so a
    large scenario is generated with the memory of one block.
    """
    if not block_days > 0:
        raise ParameterError(f"block_days must be > 0, got {block_days}")
    for kind, start, end, n_rows, n_field in (
        ("baseline", world.baseline_start, world.event_start, world.n_baseline, 0),
        ("event", world.event_start, world.event_end, world.n_event, world.n_field),
    ):
        bounds = _block_bounds(start, end, block_days)
        event = kind == "event"
        campaign = world.spec.campaign if event else 1.0
        tz = world.spec.region.utc_offset_h
        weights = np.array(
            [
                time_weight(a, b, utc_offset_h=tz, campaign=campaign, onset=world.event_start)
                for a, b in bounds
            ]
        )
        field_start = world.event_start + pd.Timedelta(hours=FIELD_DELAY_H)
        field_w = np.array(
            [
                time_weight(
                    max(a, field_start),
                    b,
                    utc_offset_h=tz,
                    campaign=1.0,
                    onset=world.event_start,
                    diurnal=FIELD_DIURNAL,
                )
                if b > field_start
                else 0.0
                for a, b in bounds
            ]
        )
        public = _split(n_rows - n_field, weights)
        field = _split(n_field, field_w) if n_field else np.zeros(len(bounds), "int64")
        for (a, b), n_pub, n_fld in zip(bounds, public, field, strict=True):
            if n_pub + n_fld == 0:
                continue
            frame = world.generate(a, b, int(n_pub + n_fld), event=event, field_rows=int(n_fld))
            yield kind, frame


def _block_bounds(
    start: pd.Timestamp, end: pd.Timestamp, block_days: float
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) cut at UTC midnights and then into pieces of at most ``block_days``."""
    cuts = [start, *pd.date_range(start.ceil("D"), end, freq="D", inclusive="left"), end]
    cuts = sorted(set(c for c in cuts if start <= c <= end))
    step = pd.Timedelta(days=block_days)
    out = []
    for a, b in itertools.pairwise(cuts):
        while a < b:
            out.append((a, min(a + step, b)))
            a = out[-1][1]
    return out


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``weights`` (largest remainders; sums to total)."""
    if weights.sum() <= 0:
        out = np.zeros(len(weights), "int64")
        out[0] = total
        return out
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype("int64")
    rest = total - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:rest]] += 1
    return out


def simulate(
    name: str, *, seed: int = 0, scale: float = 1.0, conditions: Conditions | None = None
) -> Scenario:
    """Generate the named scenario; ``scale`` multiplies the measurement volume.

    ``conditions`` changes how the disaster plays out (see :class:`Conditions`);
    ``None`` or all defaults give the named scenario unchanged. Deterministic for a
    (name, seed, scale, conditions).
    """
    world = build_world(name, seed=seed, scale=scale, conditions=conditions)
    spec, real, rng, proj = world.spec, world.real, world.rng, world.proj
    region = spec.region
    sites, cells = world.sites, world.cells
    population, transform = world.population, world.transform
    event_start, event_end = world.event_start, world.event_end
    baseline_start = world.baseline_start
    n_field, n_devices, n_field_devices = world.n_field, world.n_devices, world.n_field_devices
    baseline = world.generate(baseline_start, event_start, world.n_baseline, event=False)
    event = world.generate(event_start, event_end, world.n_event, event=True, field_rows=n_field)
    validate_frame(baseline, MEASUREMENT_COLUMNS, name="simulated baseline")
    validate_frame(event, MEASUREMENT_COLUMNS, name="simulated event")

    if real is None:
        cell_frame = _opencellid_cells(cells, sites, before=baseline_start, proj=proj, rng=rng)
    else:
        cell_frame = real.export.copy()
    validate_frame(cell_frame, CELL_COLUMNS, name="simulated cells")
    site_columns = list(SITE_COLUMNS) + [c for c in SECTOR_COLUMNS if c in sites]
    truth_sites = sites[site_columns].copy()
    truth_cells = cells[["radio", "mcc", "net", "area", "cell", "site_id", "network"]].copy()
    srow = cells["site_row"].to_numpy()
    for col in ("down_from", "up_at", "cause"):
        truth_cells[col] = sites[col].to_numpy()[srow]
    if "sector" in sites:
        # A failed sector takes down its own cells only.
        failed = sites["sector"].to_numpy()[srow]
        spared = (failed >= 0) & (cells["sector"].to_numpy() != failed)
        truth_cells.loc[spared, ["down_from", "up_at"]] = pd.NaT
        truth_cells.loc[spared, "cause"] = ""
    truth_cells = truth_cells[list(TRUTH_CELL_COLUMNS)]
    # Same dtypes as load_truth gives back from the files.
    text = {"radio": "string", "site_id": "string", "network": "string", "cause": "string"}
    truth_sites = truth_sites.astype({k: v for k, v in text.items() if k in truth_sites})
    truth_cells = truth_cells.astype(text | {c: "int64" for c in ("mcc", "net", "area", "cell")})
    if spec.hazard is not None:
        hazard = spec.hazard.footprint(region.land, proj)
    else:
        hazard = gpd.GeoDataFrame(
            {
                "hazard_id": pd.Series(dtype="string"),
                "level": pd.Series(dtype="string"),
                "intensity": pd.Series(dtype="float64"),
            },
            geometry=gpd.GeoSeries([], crs=CRS),
            crs=CRS,
        )
    meta: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "scale": scale,
        "description": spec.description,
        "region": region.name,
        "hazard": spec.hazard.kind if spec.hazard is not None else None,
        "baseline_start": baseline_start.isoformat(),
        "event_start": event_start.isoformat(),
        "event_end": event_end.isoformat(),
        "onset": event_start.isoformat(),
        "utc_offset_h": region.utc_offset_h,
        "campaign": spec.campaign,
        "networks": [
            {
                "network": n.key,
                "mcc": n.mcc,
                "mnc": n.mnc,
                "share": n.share,
                "radios": list(n.radios),
            }
            for n in region.networks
        ],
        "counts": {
            "sites": len(sites),
            "cells": len(cells),
            "stale_cells": len(cell_frame) - len(cells),
            "sites_down": int(truth_sites["down_from"].notna().sum()),
            "sites_damage": int((truth_sites["cause"] == "damage").sum()),
            "sites_power": int((truth_sites["cause"] == "power").sum()),
            **(
                {"sites_sector": int((truth_sites["sector"] >= 0).sum())}
                if "sector" in truth_sites
                else {}
            ),
            "baseline": len(baseline),
            "event": len(event),
            "devices": n_devices,
            "field_devices": n_field_devices,
            "field_rows": n_field,
            "population": float(population.sum()),
        },
    }
    if conditions is not None and not conditions.is_default:
        meta["conditions"] = conditions.as_dict()
    return Scenario(
        name=name,
        seed=seed,
        baseline_start=baseline_start,
        event_start=event_start,
        event_end=event_end,
        cells=cell_frame,
        baseline=baseline,
        event=event,
        population=population,
        population_transform=transform,
        areas=admin_areas(region),
        hazard=hazard,
        truth=ScenarioTruth(meta=meta, sites=truth_sites, truth_cells=truth_cells),
    )


__all__ = [
    "SCENARIOS",
    "Scenario",
    "ScenarioSpec",
    "World",
    "build_world",
    "scenario_spec",
    "simulate",
    "simulate_blocks",
]
