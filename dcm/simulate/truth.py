"""Ground truth of a scenario: which site is down when, and who is served where.

A point is served by a network when some site of that network that is up at that
time lies within its radius of the point. Sites fail whole: every cell of a site
shares its ``down_from`` / ``up_at``.
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

    def candidates(self, xy: np.ndarray, network: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) site rows (into ``sites``, -1 = none) and distances (m) covering each point,
        nearest first; sites whose radius does not reach the point are -1."""
        members = self._members[network]
        max_range = float(self.range_m[members].max()) if len(members) else 0.0
        k = min(K_NEAREST, len(members))
        while True:
            dist, idx = self._trees[network].query(xy, k=k)
            dist = np.asarray(dist).reshape(len(xy), k)
            idx = np.asarray(idx).reshape(len(xy), k)
            # A site beyond the k-th nearest may still reach the point: ask for more.
            if k == len(members) or not (dist[:, -1] <= max_range).any():
                break
            k = min(2 * k, len(members))
        rows = members[idx]
        reach = dist <= self.range_m[rows]
        return np.where(reach, rows, -1), dist

    def up_mask(self, rows: np.ndarray, time_ns: np.ndarray | int) -> np.ndarray:
        """Whether each candidate site row (-1 = none) is up at ``time_ns`` (broadcast)."""
        safe = np.maximum(rows, 0)
        t = np.asarray(time_ns, dtype=np.int64)
        if t.ndim == 1:
            t = t[:, None]
        down = (t >= self.down_ns[safe]) & (t < self.up_ns[safe])
        return (rows >= 0) & ~down

    def serving(
        self, xy: np.ndarray, time_ns: np.ndarray | int, network: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest up covering site row per point (-1 = not served) and its distance (m)."""
        rows, dist = self.candidates(xy, network)
        ok = self.up_mask(rows, time_ns)
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
