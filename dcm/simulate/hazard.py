"""Hazard models: intensity in [0, 1] over space, arrival time, zones and their effects.

Intensity drives everything the disaster does: the chance that a site is damaged
or loses power, evacuation and dead phones. Shapes: a point that fades with
distance (quake epicentre, volcano) or a track (cyclone) whose arrival time
depends on the position along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely import LineString, Point, Polygon, intersection, union_all
from shapely.geometry.base import BaseGeometry

from dcm.schema import CRS
from dcm.simulate.geo import LocalProjection


@dataclass(frozen=True)
class Zone:
    """A hazard level: where intensity >= ``min_intensity`` (or an explicit polygon)."""

    level: str
    min_intensity: float
    #: Share of residents who leave once the hazard strikes.
    evacuation: float
    polygon: BaseGeometry | None = None
    #: Least harm to sites anywhere in the zone (e.g. the whole red zone loses mains
    #: power), whatever the intensity says.
    min_harm: float = 0.0


@dataclass(frozen=True)
class Hazard:
    """A hazard footprint and how hard it hits sites and people.

    ``P(damage) = damage_max * J ** damage_gamma`` with ``J`` the intensity rescaled
    so that ``harmless_below`` maps to 0; same form for power. Damage
    starts ``damage_delay_h`` (uniform range) after the hazard arrives and lasts
    ``damage_days`` (uniform range); a power cut starts when batteries run dry,
    ``power_delay_h`` after arrival, and lasts ``power_hours``.
    """

    kind: str
    #: (lon, lat) of the epicentre / vent, or the cyclone track (2+ points).
    path: tuple[tuple[float, float], ...]
    #: Distance (m) within which intensity is 1, and e-folding distance beyond it.
    core_m: float
    scale_m: float
    zones: tuple[Zone, ...]
    damage_max: float
    damage_gamma: float
    power_max: float
    power_gamma: float
    damage_delay_h: tuple[float, float] = (0.0, 0.3)
    damage_days: tuple[float, float] = (2.0, 6.0)
    #: Share of damaged sites that stay down well past the end (8-12 days).
    damage_long_share: float = 0.1
    power_delay_h: tuple[float, float] = (4.0, 12.0)
    power_hours: tuple[float, float] = (3.0, 24.0)
    #: Cyclone forward speed (m/s); arrival is the time the eye passes closest.
    speed_ms: float = 0.0
    #: Largest share of phones in the worst-hit places that go dead (no charge).
    dead_phones: float = 0.4
    #: Intensity below which sites come to no harm (P(damage) and P(power) are 0).
    harmless_below: float = 0.1

    def _geometry(self, proj: LocalProjection) -> BaseGeometry:
        xy = proj.to_xy(np.array([p[0] for p in self.path]), np.array([p[1] for p in self.path]))
        return Point(xy[0]) if len(xy) == 1 else LineString(xy)

    def _track(self, xy: np.ndarray, proj: LocalProjection) -> tuple[np.ndarray, np.ndarray]:
        """Distance (m) of each point from the epicentre / track, and the distance along
        the track (m) of the closest track point (0 for a point hazard)."""
        verts = proj.to_xy(np.array([p[0] for p in self.path]), np.array([p[1] for p in self.path]))
        if len(verts) == 1:
            return np.hypot(xy[:, 0] - verts[0, 0], xy[:, 1] - verts[0, 1]), np.zeros(len(xy))
        a, b = verts[:-1], verts[1:]
        seg = b - a
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        # Projection of every point on every segment, clamped to the segment (n, segments).
        rel = xy[:, None, :] - a[None, :, :]
        t = np.clip((rel * seg[None]).sum(axis=2) / seg_len**2, 0.0, 1.0)
        foot = a[None] + t[..., None] * seg[None]
        dist = np.hypot(*(xy[:, None, :] - foot).transpose(2, 0, 1))
        best = np.argmin(dist, axis=1)
        rows = np.arange(len(xy))
        start = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
        return dist[rows, best], start[best] + t[rows, best] * seg_len[best]

    def distance_m(self, lon: np.ndarray, lat: np.ndarray, proj: LocalProjection) -> np.ndarray:
        """Distance (m) of each point from the epicentre, vent or track."""
        return self._track(proj.to_xy(lon, lat), proj)[0]

    def intensity(self, lon: np.ndarray, lat: np.ndarray, proj: LocalProjection) -> np.ndarray:
        """Intensity in [0, 1] at each point."""
        d = self.distance_m(lon, lat, proj)
        return np.exp(-np.maximum(d - self.core_m, 0.0) / self.scale_m)

    def harm(self, lon: np.ndarray, lat: np.ndarray, proj: LocalProjection) -> np.ndarray:
        """Harm to sites in [0, 1]: intensity rescaled above the harmless level, at least
        the ``min_harm`` of the zone the point is in."""
        lo = self.harmless_below
        harm = np.clip((self.intensity(lon, lat, proj) - lo) / (1.0 - lo), 0.0, 1.0)
        floors = np.array([z.min_harm for z in self.zones] + [0.0])
        return np.maximum(harm, floors[self.zone_index(lon, lat, proj)])

    def arrival_h(
        self, lon: np.ndarray, lat: np.ndarray, proj: LocalProjection, land: Polygon
    ) -> np.ndarray:
        """Hours after onset at which the hazard reaches each point (0 unless a track).

        Onset is the moment a cyclone's eye first reaches ``land``; points are reached
        when the eye passes closest to them.
        """
        geom = self._geometry(proj)
        n = len(np.atleast_1d(lon))
        if isinstance(geom, Point) or self.speed_ms <= 0:
            return np.zeros(n)
        land_xy = shapely.Polygon(proj.to_xy(*np.asarray(land.exterior.coords).T))
        crossing = geom.intersection(land_xy)
        first = (
            shapely.get_coordinates(crossing)[:1]
            if not crossing.is_empty
            else np.asarray(land_xy.centroid.coords)
        )
        along0 = self._track(first, proj)[1][0]
        along = self._track(proj.to_xy(lon, lat), proj)[1]
        return np.maximum(along - along0, 0.0) / self.speed_ms / 3600.0

    def zone_index(self, lon: np.ndarray, lat: np.ndarray, proj: LocalProjection) -> np.ndarray:
        """Index into ``zones`` of each point (-1 outside every zone)."""
        lon = np.atleast_1d(np.asarray(lon, dtype="float64"))
        lat = np.atleast_1d(np.asarray(lat, dtype="float64"))
        out = np.full(len(lon), -1, dtype=np.int64)
        if all(z.polygon is not None for z in self.zones):
            # Zones are listed worst first; the worst zone containing the point wins.
            for i in range(len(self.zones) - 1, -1, -1):
                out[shapely.contains_xy(self.zones[i].polygon, lon, lat)] = i
            return out
        inten = self.intensity(lon, lat, proj)
        for i in range(len(self.zones) - 1, -1, -1):
            out[inten >= self.zones[i].min_intensity] = i
        return out

    def evacuation_share(
        self, lon: np.ndarray, lat: np.ndarray, proj: LocalProjection
    ) -> np.ndarray:
        """Share of residents at each point who leave."""
        idx = self.zone_index(lon, lat, proj)
        shares = np.array([z.evacuation for z in self.zones] + [0.0])
        return shares[idx]

    def footprint(self, land: BaseGeometry, proj: LocalProjection) -> gpd.GeoDataFrame:
        """Zones as polygons (worst first, not overlapping): hazard_id, level, intensity."""
        geoms: list[BaseGeometry] = []
        for zone in self.zones:
            if zone.polygon is not None:
                geoms.append(zone.polygon)
                continue
            dist = self.core_m + self.scale_m * np.log(1.0 / zone.min_intensity)
            buf = self._geometry(proj).buffer(dist, quad_segs=16)
            ring = np.asarray(buf.exterior.coords)
            lon, lat = proj.to_lonlat(ring[:, 0], ring[:, 1])
            geoms.append(Polygon(np.column_stack((lon, lat))))
        rows = []
        covered: BaseGeometry | None = None
        for i, (zone, geom) in enumerate(zip(self.zones, geoms, strict=True)):
            part = geom if covered is None else geom.difference(covered)
            covered = geom if covered is None else union_all([covered, geom])
            part = intersection(part, land.buffer(0.01))
            if part.is_empty:
                continue
            rows.append(
                {
                    "hazard_id": f"{self.kind}-{i + 1}",
                    "level": zone.level,
                    "intensity": zone.min_intensity,
                    "geometry": part,
                }
            )
        return gpd.GeoDataFrame(
            rows,
            columns=["hazard_id", "level", "intensity", "geometry"],
            geometry="geometry",
            crs=CRS,
        )
