"""Coverage geometry: where each site reaches, and outage areas drawn from it.

A place is served by a network when some site of that network that is up reaches it.
When a site fails, its neighbours keep serving the parts of its area they reach, so
the area left without service is the failed sites' reach minus the reach of every
site still up, which is usually much smaller than the failed site's best-server area
and has nothing to do with grid-cell edges.

A site's *reach* is the farthest distance from its position at which an ok report
with a precise position named one of its cells: in the baseline, and in the trailing
evidence span of the event (when a neighbour fails, phones beyond the site's usual
best-server area connect to it, showing how far it really reaches). Sites heard only
through imprecise fixes fall back to their OpenCelliD range (clipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from dcm.analysis.params import DetectionParams

#: Metres per degree of latitude, and of longitude at the equator (WGS 84, mean).
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0
#: Vertices of a reach disc (area within 0.2 % of the circle's).
DISC_VERTICES = 64
#: Outage layer codes besides network indexes (>= 0): nobody served, some networks out.
ALL_OUTAGE, ALL_DEGRADED = -1, -2


def site_positions(
    cells: pd.DataFrame, cell_site: np.ndarray, n_site: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean lon/lat of each site's cells.

    OpenCelliD places a cell at the centroid of where it was heard, pulled towards its
    sector's direction; the sectors of a site point different ways, so their mean is
    close to the mast.
    """
    lon = cells["lon"].to_numpy("float64")
    lat = cells["lat"].to_numpy("float64")
    ok = np.isfinite(lon) & np.isfinite(lat)
    n = np.bincount(cell_site[ok], minlength=n_site).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_lon = np.bincount(cell_site[ok], weights=lon[ok], minlength=n_site) / n
        mean_lat = np.bincount(cell_site[ok], weights=lat[ok], minlength=n_site) / n
    return mean_lon, mean_lat


def distance_m(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Distance in metres between points a few km apart (local equirectangular)."""
    k = np.cos(np.radians((lat1 + lat2) / 2))
    return np.hypot((lon1 - lon2) * M_PER_DEG_LON * k, (lat1 - lat2) * M_PER_DEG_LAT)


def sighting_reach(
    *,
    site: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    accuracy_m: np.ndarray,
    site_lon: np.ndarray,
    site_lat: np.ndarray,
    params: DetectionParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (m) of each usable sighting from its site, and the mask of usable ones.

    Usable: a precise position (reported accuracy at most ``params.reach_max_accuracy_m``,
    or none reported) and closer than ``params.reach_max_m`` (a wrong cell key or a
    bad fix must not stretch a site across the map).
    """
    d = distance_m(lon, lat, site_lon[site], site_lat[site])
    precise = ~(accuracy_m > params.reach_max_accuracy_m)  # NaN accuracy counts as precise
    use = precise & np.isfinite(d) & (d <= params.reach_max_m)
    return d, use


def fallback_reach(
    cells: pd.DataFrame, cell_site: np.ndarray, n_site: int, params: DetectionParams
) -> np.ndarray:
    """Median OpenCelliD range of each site's cells, clipped to the cell range bounds."""
    rng = pd.to_numeric(cells["range"], errors="coerce") if "range" in cells else None
    out = np.full(n_site, np.nan)
    if rng is not None:
        med = pd.Series(rng.to_numpy("float64")).groupby(cell_site).median()
        out[med.index.to_numpy()] = med.to_numpy()
    out = np.where(np.isfinite(out), out, params.cell_range_min_m)
    return np.clip(out, params.cell_range_min_m, params.cell_range_max_m)


def rolling_max(values: np.ndarray, span: int) -> np.ndarray:
    """Max over the trailing ``span`` columns (this one included) of a 2-D array."""
    out = values.copy()
    for shift in range(1, min(span, values.shape[1])):
        np.maximum(out[:, shift:], values[:, :-shift], out=out[:, shift:])
    return out


@dataclass
class CoverageInput:
    """Sites as coverage sees them, for the reported windows.

    ``reach`` (sites × windows, metres; NaN: not a server in that window) and ``p``
    (sites × windows, p_offline).
    """

    lon: np.ndarray
    lat: np.ndarray
    network: np.ndarray
    reach: np.ndarray
    p: np.ndarray


def _discs(lon: np.ndarray, lat: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Polygons approximating circles of ``radius`` metres around lon/lat points."""
    theta = np.linspace(0, 2 * np.pi, DISC_VERTICES, endpoint=False)
    dx = radius[:, None] * np.cos(theta)[None, :]
    dy = radius[:, None] * np.sin(theta)[None, :]
    x = lon[:, None] + dx / (M_PER_DEG_LON * np.cos(np.radians(lat))[:, None])
    y = lat[:, None] + dy / M_PER_DEG_LAT
    ring = np.stack([x, y], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return shapely.polygons(ring)


def area_km2(geoms: np.ndarray) -> np.ndarray:
    """Area of lon/lat polygons in km² (local scale at each centroid; < 0.5 % error
    for outages up to ~100 km across)."""
    geoms = np.asarray(geoms, dtype=object)
    if geoms.size == 0:
        return np.zeros(0)
    lat = shapely.get_y(shapely.centroid(geoms))
    return shapely.area(geoms) * M_PER_DEG_LON * M_PER_DEG_LAT * np.cos(np.radians(lat)) / 1e6


class _DiscCache:
    """Reach discs by (site, reach), built once."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray) -> None:
        self.lon, self.lat = lon, lat
        self._discs: dict[tuple[int, float], shapely.Geometry] = {}

    def get(self, sites: np.ndarray, reach: np.ndarray) -> list[shapely.Geometry]:
        keys = list(zip(sites.tolist(), reach.tolist(), strict=True))
        missing = [i for i, k in enumerate(keys) if k not in self._discs]
        if missing:
            idx = np.asarray(missing)
            made = _discs(self.lon[sites[idx]], self.lat[sites[idx]], reach[idx])
            for i, g in zip(missing, made, strict=True):
                self._discs[keys[i]] = g
        return [self._discs[k] for k in keys]


def coverage_outages(
    sites: CoverageInput, *, params: DetectionParams, n_networks: int
) -> pd.DataFrame:
    """Outage parts per layer and window: ``layer``, ``col``, ``geometry``, ``p``.

    Per network and window: down sites (p_offline >= ``params.p_down``) grouped into
    clusters of overlapping reach; each cluster's area is the union of its down sites'
    discs minus the discs of every other server of the network (up or undecided) that
    overlaps them. ``p`` is the mean p_offline of the down sites whose disc meets the
    part. Layer ``ALL_OUTAGE``: the per-network areas minus the discs of the servers
    of every other network (nobody serves); ``ALL_DEGRADED``: the per-network areas
    outside it. Parts smaller than ``params.min_outage_km2`` are dropped.
    """
    n_win = sites.p.shape[1]
    server = np.isfinite(sites.reach)
    reach = np.where(server, np.round(sites.reach / params.reach_step_m) * params.reach_step_m, 0.0)
    reach = np.where(server, np.maximum(reach, params.reach_step_m), 0.0)
    down = server & (sites.p >= params.p_down)
    rows: list[tuple[int, int, shapely.Geometry, float]] = []
    if not down.any():
        return _parts_frame(rows)
    lat0 = float(np.nanmean(sites.lat[server.any(axis=1)]))
    xy = np.column_stack(
        [
            sites.lon * M_PER_DEG_LON * np.cos(np.radians(lat0)),
            sites.lat * M_PER_DEG_LAT,
        ]
    )
    good = np.isfinite(xy).all(axis=1) & server.any(axis=1)
    max_reach = np.where(good, reach.max(axis=1), 0.0)
    discs = _DiscCache(sites.lon, sites.lat)
    tree = cKDTree(np.where(good[:, None], xy, 0.0))
    # Sites whose discs can ever overlap: within the sum of their largest reaches.
    pairs = tree.query_pairs(2 * float(max_reach.max()), output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        dij = np.hypot(*(xy[i] - xy[j]).T)
        keep = good[i] & good[j] & (dij < max_reach[i] + max_reach[j])
        i, j, dij = i[keep], j[keep], dij[keep]
    else:
        i = j = np.empty(0, dtype=np.int64)
        dij = np.empty(0)
    a = np.concatenate([i, j])
    b = np.concatenate([j, i])
    dab = np.concatenate([dij, dij])
    same_net = sites.network[a] == sites.network[b]
    cache: dict[tuple, shapely.Geometry] = {}

    for col in range(n_win):
        d_now = down[:, col]
        if not d_now.any():
            continue
        r_now = reach[:, col]
        blocks = server[:, col] & (sites.p[:, col] < params.coverage_block_p)
        meets = (dab < r_now[a] + r_now[b]) & server[a, col] & server[b, col]
        per_net: dict[int, list[tuple[shapely.Geometry, float]]] = {}
        for net in range(n_networks):
            dn = np.flatnonzero(d_now & (sites.network == net))
            if dn.size == 0:
                continue
            per_net[net] = _network_parts(
                dn, a, b, meets & same_net, d_now, blocks, r_now, sites.p[:, col], discs, cache
            )
            rows += [(net, col, g, p) for g, p in per_net[net]]
        if not per_net:
            continue
        # Nobody serves: a network's outage area minus what other networks still reach.
        others = meets & ~same_net
        all_key: list[tuple] = []
        inputs: list[tuple[int, np.ndarray, np.ndarray]] = []
        for net in per_net:
            dn = np.flatnonzero(d_now & (sites.network == net))
            near = np.isin(a, dn) & others & blocks[b]
            up_other = np.unique(b[near])
            inputs.append((net, dn, up_other))
            all_key.append(
                (
                    net,
                    tuple(dn.tolist()),
                    tuple(r_now[dn].tolist()),
                    tuple(up_other.tolist()),
                    tuple(r_now[up_other].tolist()),
                )
            )
        key = ("all", tuple(all_key))
        if key not in cache:
            lost = []
            for net, _, up_other in inputs:
                area = shapely.union_all([g for g, _ in per_net[net]])
                if up_other.size:
                    area = shapely.difference(
                        area, shapely.union_all(discs.get(up_other, r_now[up_other]))
                    )
                lost.append(area)
            nobody = shapely.union_all(lost)
            every = shapely.union_all([g for parts in per_net.values() for g, _ in parts])
            cache[key] = (
                list(shapely.get_parts(nobody)),
                list(shapely.get_parts(shapely.difference(every, nobody))),
            )
        flat = [x for parts in per_net.values() for x in parts]
        nobody_parts, degraded_parts = cache[key]
        rows += [(ALL_OUTAGE, col, g, _part_p(g, flat)) for g in nobody_parts if not g.is_empty]
        rows += [(ALL_DEGRADED, col, g, _part_p(g, flat)) for g in degraded_parts if not g.is_empty]
    frame = _parts_frame(rows)
    if len(frame):
        frame = frame[area_km2(frame["geometry"].to_numpy()) >= params.min_outage_km2]
    return frame.reset_index(drop=True)


def _network_parts(
    dn: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    meets: np.ndarray,
    d_now: np.ndarray,
    blocks: np.ndarray,
    r_now: np.ndarray,
    p_now: np.ndarray,
    discs: _DiscCache,
    cache: dict[tuple, shapely.Geometry],
) -> list[tuple[shapely.Geometry, float]]:
    """Outage parts of one network in one window (see :func:`coverage_outages`)."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    # Clusters: down sites linked when their discs overlap.
    pos = np.full(d_now.size, -1)
    pos[dn] = np.arange(dn.size)
    link = meets & (pos[a] >= 0) & (pos[b] >= 0)
    graph = sparse.coo_matrix(
        (np.ones(int(link.sum())), (pos[a[link]], pos[b[link]])), shape=(dn.size, dn.size)
    )
    _, label = connected_components(graph, directed=False)
    out: list[tuple[shapely.Geometry, float]] = []
    for c in range(int(label.max()) + 1):
        members = dn[label == c]
        near = meets & np.isin(a, members) & blocks[b]
        up = np.unique(b[near])
        key = (
            tuple(members.tolist()),
            tuple(r_now[members].tolist()),
            tuple(up.tolist()),
            tuple(r_now[up].tolist()),
        )
        if key not in cache:
            area = shapely.union_all(discs.get(members, r_now[members]))
            if up.size:
                area = shapely.difference(area, shapely.union_all(discs.get(up, r_now[up])))
            # Cache the parts themselves: outage tracking reuses overlaps of the same
            # shape objects while an outage lasts.
            cache[key] = list(shapely.get_parts(area))
        p = float(p_now[members].mean())
        out += [(g, p) for g in cache[key] if not g.is_empty]
    return out


def _part_p(part: shapely.Geometry, sources: list[tuple[shapely.Geometry, float]]) -> float:
    """Mean p of the source parts that a derived part lies in."""
    hits = [p for g, p in sources if shapely.intersects(g, part)]
    return float(np.mean(hits)) if hits else float(np.mean([p for _, p in sources]))


def _parts_frame(rows: list[tuple[int, int, shapely.Geometry, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": np.array([r[0] for r in rows], dtype="int64"),
            "col": np.array([r[1] for r in rows], dtype="int64"),
            "geometry": np.array([r[2] for r in rows], dtype=object),
            "p": np.array([r[3] for r in rows], dtype="float64"),
        }
    )
