"""Ground truth of a scenario: which site is down when, and who is served where.

A point is served by a network when some site of that network that is up at that
time lies within its radius of the point. A failure takes down the whole site
(every cell shares its ``down_from`` / ``up_at``) or, when the site frame has a
``sector`` column >= 0, only that sector: the site then stops serving the points
whose bearing falls in the sector's wedge and keeps serving the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from dcm.simulate.geo import LocalProjection

#: Nearest sites examined per point at first; points whose farthest candidate is
#: still within the network's largest radius are asked again with more, so every
#: site able to reach a point is examined (in towns more than 8 sites can).
K_NEAREST = 8
_NEVER = np.iinfo(np.int64).max

SITE_COLUMNS = ("site_id", "network", "lon", "lat", "range_m", "down_from", "up_at", "cause")
#: Extra site columns when some failures take down a single sector: the failed sector
#: (-1 = whole site), the number of sectors and the start bearing of sector 0 (degrees).
SECTOR_COLUMNS = ("sector", "n_sectors", "azimuth0")
#: Above this many nearest sites per point, candidates are searched per band of site
#: radius instead (a dense city next to wide rural cells).
MAX_DIRECT_K = 64
TRUTH_CELL_COLUMNS = (
    "radio",
    "mcc",
    "net",
    "area",
    "cell",
    "site_id",
    "network",
    "down_from",
    "up_at",
    "cause",
)


def _ns(values: pd.Series) -> np.ndarray:
    """int64 nanoseconds since the epoch; NaT becomes 'never' (int64 max)."""
    ts = pd.to_datetime(values, utc=True)
    out = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    out[ts.isna().to_numpy()] = _NEVER
    return out


def sector_of(
    point_xy: np.ndarray, site_xy: np.ndarray, azimuth0: np.ndarray, n_sectors: np.ndarray
) -> np.ndarray:
    """Sector (0 .. n_sectors - 1) of a site facing each point (arrays broadcast, metres)."""
    bearing = (
        np.degrees(
            np.arctan2(point_xy[..., 0] - site_xy[..., 0], point_xy[..., 1] - site_xy[..., 1])
        )
        % 360
    )
    return np.minimum(((bearing - azimuth0) % 360 // (360 / n_sectors)).astype(int), n_sectors - 1)


class SiteIndex:
    """Nearest-site queries per network over a fixed set of sites (vectorised)."""

    def __init__(self, sites: pd.DataFrame) -> None:
        self.sites = sites.reset_index(drop=True)
        lon = self.sites["lon"].to_numpy(dtype="float64")
        lat = self.sites["lat"].to_numpy(dtype="float64")
        self.proj = LocalProjection(float(lon.mean()), float(lat.mean()))
        self.xy = self.proj.to_xy(lon, lat)
        self.range_m = self.sites["range_m"].to_numpy(dtype="float64")
        self.down_ns = _ns(self.sites["down_from"])
        self.up_ns = _ns(self.sites["up_at"])
        self.networks: tuple[str, ...] = tuple(sorted(self.sites["network"].astype(str).unique()))
        net = self.sites["network"].astype(str).to_numpy()
        self._members = {n: np.flatnonzero(net == n) for n in self.networks}
        self._trees = {n: cKDTree(self.xy[m]) for n, m in self._members.items()}
        self._dense: dict[str, bool] = {}
        self.down_sector: np.ndarray | None = None
        if "sector" in self.sites.columns:
            self.down_sector = self.sites["sector"].to_numpy(dtype=np.int64)
            self.n_sectors = self.sites["n_sectors"].to_numpy(dtype=np.int64)
            self.azimuth0 = self.sites["azimuth0"].to_numpy(dtype="float64")

    def candidates(self, xy: np.ndarray, network: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) site rows (into ``sites``, -1 = none) and distances (m) covering each point,
        nearest first; sites whose radius does not reach the point are -1."""
        members = self._members[network]
        if network not in self._dense:
            # Would a point near some site need more than MAX_DIRECT_K candidates?
            tree = self._trees[network]
            max_range = float(self.range_m[members].max()) if len(members) else 0.0
            near = tree.query_ball_point(self.xy[members], max_range, return_length=True)
            self._dense[network] = bool(len(members) and np.max(near) > MAX_DIRECT_K)
        if not self._dense[network]:
            found = self._reaching(xy, members, self._trees[network], limit=MAX_DIRECT_K)
            if found is not None:
                return found
        # A dense city next to wide rural cells: search each band of site radius
        # (powers of 2) apart, so wide sites do not force a search over every city site.
        band = np.floor(np.log2(np.maximum(self.range_m[members], 1.0))).astype(int)
        rows_parts, dist_parts = [], []
        for b in np.unique(band):
            sub = members[band == b]
            part = self._reaching(xy, sub, cKDTree(self.xy[sub]), limit=None)
            assert part is not None
            rows_parts.append(part[0])
            dist_parts.append(part[1])
        rows = np.hstack(rows_parts)
        dist = np.hstack(dist_parts)
        key = np.where(rows >= 0, dist, np.inf)
        width = max(1, int((rows >= 0).sum(axis=1).max(initial=0)))
        order = np.argsort(key, axis=1, kind="stable")[:, :width]
        return np.take_along_axis(rows, order, axis=1), np.take_along_axis(dist, order, axis=1)

    def _reaching(
        self, xy: np.ndarray, members: np.ndarray, tree: cKDTree, *, limit: int | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Nearest ``members`` of each point, as many as needed to hold every site whose
        radius reaches it (rows -1 where the radius does not reach; distance inf where
        there is no k-th site); None when more than ``limit`` would be needed."""
        n = len(xy)
        max_range = float(self.range_m[members].max()) if len(members) else 0.0
        k = min(K_NEAREST, len(members))
        rows_out = np.full((n, k), -1, dtype=np.int64)
        dist_out = np.full((n, k), np.inf)
        todo = np.arange(n)
        while True:
            # Sites beyond the largest radius never reach: the bound prunes the search.
            dist, idx = tree.query(xy[todo], k=k, distance_upper_bound=max_range * 1.001)
            dist = np.asarray(dist, dtype="float64").reshape(len(todo), k)
            idx = np.asarray(idx).reshape(len(todo), k)
            rows = members[np.minimum(idx, len(members) - 1)]
            if rows_out.shape[1] < k:
                pad = k - rows_out.shape[1]
                rows_out = np.pad(rows_out, ((0, 0), (0, pad)), constant_values=-1)
                dist_out = np.pad(dist_out, ((0, 0), (0, pad)), constant_values=np.inf)
            rows_out[todo, :k] = np.where(dist <= self.range_m[rows], rows, -1)
            dist_out[todo, :k] = dist
            # A site beyond the k-th nearest may still reach these points: ask for more.
            if k == len(members):
                break
            todo = todo[dist[:, -1] <= max_range]
            if not len(todo):
                break
            if limit is not None and k >= limit:
                return None
            k = min(2 * k, len(members))
        return rows_out, dist_out

    def covers(self, rows: np.ndarray, xy: np.ndarray) -> np.ndarray | None:
        """(n, k) bool: would the failure of each candidate site row take service from
        the point ``xy[i]`` (False only where a single sector failed that does not face
        the point); None when no failure is of a single sector."""
        if self.down_sector is None:
            return None
        safe = np.maximum(rows, 0)
        if not (self.down_sector[safe] >= 0).any():
            return None
        sector = sector_of(xy[:, None, :], self.xy[safe], self.azimuth0[safe], self.n_sectors[safe])
        return (self.down_sector[safe] < 0) | (sector == self.down_sector[safe])

    def up_mask(
        self,
        rows: np.ndarray,
        time_ns: np.ndarray | int,
        xy: np.ndarray | None = None,
        *,
        covers: np.ndarray | None = None,
    ) -> np.ndarray:
        """Whether each candidate site row (-1 = none) is up at ``time_ns`` (broadcast) for
        the points ``xy`` ((n, 2) metres in ``proj``; needed when single sectors fail, or
        ``covers`` from :meth:`covers` computed once for many times)."""
        safe = np.maximum(rows, 0)
        t = np.asarray(time_ns, dtype=np.int64)
        if t.ndim == 1:
            t = t[:, None]
        down = (t >= self.down_ns[safe]) & (t < self.up_ns[safe])
        if covers is None and self.down_sector is not None:
            if xy is None:
                raise ValueError("sector failures need the points' positions")
            covers = self.covers(rows, xy)
        if covers is not None:
            # A failed sector only stops serving the points in its wedge.
            down &= covers
        return (rows >= 0) & ~down

    def serving(
        self, xy: np.ndarray, time_ns: np.ndarray | int, network: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest up covering site row per point (-1 = not served) and its distance (m)."""
        rows, dist = self.candidates(xy, network)
        ok = self.up_mask(rows, time_ns, xy)
        first = np.argmax(ok, axis=1)
        has = ok[np.arange(len(xy)), first]
        site = np.where(has, rows[np.arange(len(xy)), first], -1)
        return site, np.where(has, dist[np.arange(len(xy)), first], np.nan)


@dataclass
class ScenarioTruth:
    """What really happened: site outages, cell outages and the scenario's metadata."""

    meta: dict[str, Any]
    sites: pd.DataFrame
    truth_cells: pd.DataFrame
    _index: SiteIndex | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def index(self) -> SiteIndex:
        """Spatial index of the true sites (built on first use)."""
        if self._index is None:
            self._index = SiteIndex(self.sites)
        return self._index

    def served(self, lon: np.ndarray, lat: np.ndarray, time: pd.Timestamp) -> pd.DataFrame:
        """One bool column per network: is each point served by it at ``time`` (UTC)."""
        index = self.index
        xy = index.proj.to_xy(np.atleast_1d(lon), np.atleast_1d(lat))
        t = pd.Timestamp(time)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        t_ns = int(t.value)
        out = {n: index.serving(xy, t_ns, n)[0] >= 0 for n in index.networks}
        return pd.DataFrame(out)
