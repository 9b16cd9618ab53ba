"""Regions the simulator can put a disaster on: land, towns, networks, admin areas.

A region is geography only; the hazard and its timing live in :mod:`.hazard` and
:mod:`.scenarios`. Two regions exist: a synthetic 60 x 60 km island in the South
Atlantic (no real land there, so it cannot be mistaken for a real place) and an
approximate St Vincent, modelled on public facts about the island.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely import Polygon


@dataclass(frozen=True)
class Town:
    """A settlement: people spread around (lon, lat) with a Gaussian of ``radius_m``."""

    name: str
    lon: float
    lat: float
    population: float
    radius_m: float


@dataclass(frozen=True)
class NetworkSpec:
    """A mobile network: its codes, market share and how densely it builds sites."""

    mcc: int
    mnc: int
    share: float
    radios: tuple[str, ...]
    #: Spacing of the rural site grid; the site radius follows from it so that
    #: neighbouring sites overlap.
    rural_spacing_m: float
    #: Extra sites in towns, one per this many people.
    people_per_urban_site: float

    @property
    def key(self) -> str:
        """``"MCC-MNC"``."""
        return f"{self.mcc}-{self.mnc}"


@dataclass(frozen=True)
class AreaSeed:
    """An admin area, drawn as the land closest to its seed points."""

    area_id: str
    name: str
    points: tuple[tuple[float, float], ...]  # (lon, lat)


@dataclass(frozen=True)
class Region:
    """Geography of a scenario."""

    name: str
    land: Polygon
    towns: tuple[Town, ...]
    networks: tuple[NetworkSpec, ...]
    areas: tuple[AreaSeed, ...]
    #: Offset of local time from UTC (hours), for the hour-of-day cycle.
    utc_offset_h: float
    #: People per km² outside towns.
    rural_density: float
    #: Pixel size of the population raster (degrees; ~100 m).
    pixel_deg: float = 0.0009
    #: Town where evacuees go, by weight (name -> share).
    shelters: tuple[tuple[str, float], ...] = ()

    @property
    def centre(self) -> tuple[float, float]:
        """(lon, lat) of the land's centroid."""
        c = self.land.centroid
        return float(c.x), float(c.y)


# St Vincent: outline traced from public maps to ~1 km (N tip near Fancy, S coast at
# Calliaqua, E coast at Georgetown, W coast at Barrouallie); ~29 km N-S, ~18 km E-W.
_ST_VINCENT_COAST = (
    (-61.175, 13.383),
    (-61.150, 13.378),
    (-61.128, 13.360),
    (-61.117, 13.335),
    (-61.112, 13.305),
    (-61.110, 13.280),
    (-61.108, 13.250),
    (-61.112, 13.225),
    (-61.120, 13.200),
    (-61.130, 13.175),
    (-61.140, 13.150),
    (-61.160, 13.132),
    (-61.190, 13.122),
    (-61.215, 13.130),
    (-61.232, 13.145),
    (-61.245, 13.165),
    (-61.262, 13.190),
    (-61.276, 13.205),
    (-61.281, 13.235),
    (-61.272, 13.265),
    (-61.258, 13.290),
    (-61.235, 13.320),
    (-61.215, 13.350),
    (-61.195, 13.372),
)


def st_vincent() -> Region:
    """St Vincent (without the Grenadines), about 110 000 people, MCC 360."""
    towns = (
        Town("Kingstown", -61.225, 13.158, 26_000, 1_600),
        Town("Calliaqua", -61.193, 13.132, 16_000, 1_500),
        Town("Arnos Vale", -61.205, 13.145, 9_000, 1_000),
        Town("Mesopotamia", -61.162, 13.180, 6_500, 1_400),
        Town("Georgetown", -61.122, 13.280, 6_000, 1_000),
        Town("Biabou", -61.140, 13.197, 3_000, 700),
        Town("Layou", -61.265, 13.201, 3_000, 700),
        Town("Barrouallie", -61.268, 13.236, 3_500, 700),
        Town("Chateaubelair", -61.245, 13.290, 4_000, 800),
        Town("Sandy Bay", -61.140, 13.358, 2_500, 700),
        Town("Owia", -61.150, 13.372, 1_200, 500),
        Town("Fancy", -61.178, 13.378, 900, 400),
        Town("Colonarie", -61.128, 13.235, 2_500, 600),
    )
    networks = (
        # Digicel-like: the larger market share, LTE + UMTS + GSM.
        NetworkSpec(360, 110, 0.62, ("GSM", "UMTS", "LTE"), 4_500, 6_000),
        # FLOW-like.
        NetworkSpec(360, 100, 0.38, ("GSM", "LTE"), 5_500, 9_000),
    )
    # Parishes (ISO 3166-2:VC), drawn as the land nearest to a few points in each.
    areas = (
        AreaSeed(
            "VC-01",
            "Charlotte",
            ((-61.15, 13.35), (-61.13, 13.28), (-61.135, 13.21), (-61.18, 13.37), (-61.17, 13.30)),
        ),
        AreaSeed("VC-02", "Saint Andrew", ((-61.24, 13.20), (-61.22, 13.21))),
        AreaSeed("VC-03", "Saint David", ((-61.23, 13.31), (-61.21, 13.33))),
        AreaSeed(
            "VC-04",
            "Saint George",
            ((-61.20, 13.15), (-61.18, 13.14), (-61.22, 13.17), (-61.17, 13.17)),
        ),
        AreaSeed("VC-05", "Saint Patrick", ((-61.25, 13.25), (-61.23, 13.26))),
    )
    return Region(
        name="St Vincent",
        land=Polygon(_ST_VINCENT_COAST),
        towns=towns,
        networks=networks,
        areas=areas,
        utc_offset_h=-4.0,
        rural_density=60.0,
        shelters=(
            ("Kingstown", 0.5),
            ("Calliaqua", 0.2),
            ("Mesopotamia", 0.15),
            ("Layou", 0.05),
            ("Barrouallie", 0.1),
        ),
    )


def synthetic() -> Region:
    """A 60 x 60 km island at 30°S 20°W (open ocean), ~300 000 people, test MCC 001."""
    lon0, lat0 = -20.0, -30.0
    kx = 111_320.0 * np.cos(np.radians(lat0))
    ky = 110_574.0

    def ll(x_km: float, y_km: float) -> tuple[float, float]:
        return lon0 + x_km * 1000 / kx, lat0 + y_km * 1000 / ky

    # An irregular coast within +-30 km: a wobbly circle squashed into a rounded square.
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + 0.06 * np.sin(3 * angles) + 0.04 * np.cos(5 * angles + 1)
    r = 29.0 * wobble / np.maximum(np.abs(np.cos(angles)), np.abs(np.sin(angles))) ** 0.35
    r = np.minimum(r, 30.0)
    coast = [
        ll(float(ri * np.cos(a)), float(ri * np.sin(a))) for ri, a in zip(r, angles, strict=True)
    ]
    towns = (
        Town("Port Meridian", *ll(-8, -10), 140_000, 3_000),
        Town("Northbay", *ll(6, 18), 40_000, 2_000),
        Town("Eastwater", *ll(18, -4), 30_000, 1_800),
        Town("Westridge", *ll(-20, 8), 15_000, 1_200),
        Town("Southend", *ll(4, -22), 12_000, 1_200),
        Town("Highfield", *ll(-2, 4), 6_000, 900),
        Town("Cape Lin", *ll(20, 16), 5_000, 800),
    )
    networks = (
        NetworkSpec(1, 1, 0.5, ("GSM", "UMTS", "LTE"), 6_000, 8_000),
        NetworkSpec(1, 2, 0.32, ("UMTS", "LTE"), 7_000, 12_000),
        NetworkSpec(1, 3, 0.18, ("GSM", "LTE"), 9_000, 20_000),
    )
    areas = tuple(
        AreaSeed(f"SY-{i + 1:02d}", f"District {i + 1}", (ll(x, y),))
        for i, (x, y) in enumerate(
            [
                (-18, -18),
                (0, -18),
                (18, -18),
                (-18, 0),
                (0, 0),
                (18, 0),
                (-18, 18),
                (0, 18),
                (18, 18),
            ]
        )
    )
    return Region(
        name="Synthetic island",
        land=Polygon(coast),
        towns=towns,
        networks=networks,
        areas=areas,
        utc_offset_h=-1.0,
        rural_density=25.0,
        shelters=(
            ("Port Meridian", 0.5),
            ("Northbay", 0.2),
            ("Eastwater", 0.2),
            ("Westridge", 0.1),
        ),
    )
