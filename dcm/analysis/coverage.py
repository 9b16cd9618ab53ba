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
from scipy import sparse
from scipy.sparse.csgraph import connected_components
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


def local_xy(lon: np.ndarray, lat: np.ndarray, lat0: float) -> np.ndarray:
    """(n × 2) metres east and north on a plane true to scale at latitude ``lat0`` (°)."""
    return np.column_stack([lon * M_PER_DEG_LON * np.cos(np.radians(lat0)), lat * M_PER_DEG_LAT])


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
    (sites × windows, p_offline). ``p_block``: p_offline from the site's own evidence
    under the calm-week prior; a site blocks an outage with its reach while this is
    below ``params.coverage_block_p`` (default: ``p``). ``reported``: failure reports
    from the site's area back its offline state (sites × windows bool).
    """

    lon: np.ndarray
    lat: np.ndarray
    network: np.ndarray
    reach: np.ndarray
    p: np.ndarray
    p_block: np.ndarray | None = None
    reported: np.ndarray | None = None


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


def object_ids(geoms: np.ndarray) -> np.ndarray:
    """The identity of each geometry object: equal where one object repeats (outage
    shapes that last are the same object window after window)."""
    return np.fromiter((id(g) for g in geoms.tolist()), dtype="int64", count=len(geoms))


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


class _UnionCache:
    """Unions of lists of shapes, each distinct list (the same objects in the same
    order) unioned once: a cluster that keeps its sites while a neighbour's reach
    changes brings the same discs back window after window. The inputs are kept, so
    their ids stay theirs."""

    def __init__(self) -> None:
        self._done: dict[tuple[int, ...], tuple[list[shapely.Geometry], shapely.Geometry]] = {}

    def union(self, geoms: list[shapely.Geometry]) -> shapely.Geometry:
        """``shapely.union_all(geoms)`` (also of one shape, which it may re-node)."""
        key = tuple(map(id, geoms))
        hit = self._done.get(key)
        if hit is None:
            hit = self._done[key] = (geoms, shapely.union_all(geoms))
        return hit[1]


class ShapeCache:
    """Reach discs and their unions, shared by :func:`coverage_outages` calls on the
    same sites (the confirmed and the suspected tier block with the same discs)."""

    def __init__(self, sites: CoverageInput) -> None:
        self.sites = sites
        self.discs = _DiscCache(sites.lon, sites.lat)
        self.unions = _UnionCache()


def coverage_outages(
    sites: CoverageInput,
    *,
    params: DetectionParams,
    n_networks: int,
    p_min: float | None = None,
    p_max: float | None = None,
    shapes: ShapeCache | None = None,
) -> pd.DataFrame:
    """Outage parts per layer and window: ``layer``, ``col``, ``geometry``, ``p``,
    ``reported``.

    Per network and window: down sites (``p_min`` <= p_offline < ``p_max``; default
    ``params.p_down`` and above) grouped into
    clusters of overlapping reach; each cluster's area is the union of its down sites'
    discs minus the discs of every other server of the network (up or undecided) that
    overlaps them. ``p`` is the mean p_offline of the down sites whose disc meets the
    part; ``reported``: whether one of them has failure reports. Layer ``ALL_OUTAGE``:
    the per-network areas minus the discs of the servers
    of every other network (nobody serves); ``ALL_DEGRADED``: the per-network areas
    outside it. Parts smaller than ``params.min_outage_km2`` are dropped.
    ``shapes``: discs and unions kept from an earlier call on the same ``sites``.
    """
    n_win = sites.p.shape[1]
    server = np.isfinite(sites.reach)
    reach = np.where(server, np.round(sites.reach / params.reach_step_m) * params.reach_step_m, 0.0)
    reach = np.where(server, np.maximum(reach, params.reach_step_m), 0.0)
    p_min = params.p_down if p_min is None else p_min
    down = server & (sites.p >= p_min)
    if p_max is not None:
        down &= sites.p < p_max
    reported = sites.reported if sites.reported is not None else np.zeros(down.shape, bool)
    rows: list[tuple[int, int, shapely.Geometry, float, bool]] = []
    if not down.any():
        return _parts_frame(rows)
    lat0 = float(np.nanmean(sites.lat[server.any(axis=1)]))
    xy = local_xy(sites.lon, sites.lat, lat0)
    good = np.isfinite(xy).all(axis=1) & server.any(axis=1)
    max_reach = np.where(good, reach.max(axis=1), 0.0)
    if shapes is None or shapes.sites is not sites:
        shapes = ShapeCache(sites)
    discs, unions = shapes.discs, shapes.unions
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
    cache: dict[tuple, list[shapely.Geometry]] = {}
    p_all = sites.p
    p_block = sites.p if sites.p_block is None else sites.p_block

    for col in range(n_win):
        d_now = down[:, col]
        if not d_now.any():
            continue
        r_now = reach[:, col]
        blocks = server[:, col] & (p_block[:, col] < params.coverage_block_p) & ~d_now
        members, up_same, up_other = _clusters(
            a, b, dab, same_net, d_now, r_now, server[:, col], blocks
        )
        lost: list[tuple[shapely.Geometry, float, int]] = []
        nets: list[int] = []
        said = [bool(reported[mem, col].any()) for mem in members]
        for c, mem in enumerate(members):
            net = int(sites.network[mem[0]])
            p = float(p_all[mem, col].mean())
            key = _key(mem, up_same[c], r_now)
            if key not in cache:
                cache[key] = _minus(discs.get(mem, r_now[mem]), up_same[c], r_now, discs, unions)
            pieces = cache[key]
            rows += [(net, col, g, p, said[c]) for g in pieces]
            # Nobody serves: this area minus what other networks still reach.
            key_all = ("all", key, *_key(up_other[c], up_other[c], r_now)[2:])
            if key_all not in cache:
                cache[key_all] = _minus(pieces, up_other[c], r_now, discs, unions)
            lost += [(g, p, c) for g in cache[key_all]]
            nets.append(net)
        any_said = any(said)
        nobody = _merge([g for g, _, _ in lost], [p for _, p, _ in lost], cache)
        rows += [(ALL_OUTAGE, col, g, p, any_said) for g, p in nobody]
        # Degraded: some network lost, outside "nobody serves".
        flat = [
            (g, float(p_all[mem, col].mean()))
            for c, mem in enumerate(members)
            for g in cache[_key(mem, up_same[c], r_now)]
        ]
        left: list[tuple[shapely.Geometry, float]] = []
        hits: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(flat)
        if nobody and flat:
            # One bulk query for the window, not one per piece.
            qi, qj = shapely.STRtree([g for g, _ in nobody]).query(
                np.array([g for g, _ in flat], dtype=object), predicate="intersects"
            )
            hits = _groups(qi, qj, len(flat))
        for (g, p), hit in zip(flat, hits, strict=True):
            if len(hit) == 0:
                left.append((g, p))
                continue
            key_deg = ("deg", id(g), tuple(id(nobody[i][0]) for i in hit))
            if key_deg not in cache:
                cache[key_deg] = _minus(
                    [g],
                    np.empty(0, dtype=np.int64),
                    r_now,
                    discs,
                    unions,
                    cut=[nobody[i][0] for i in hit],
                )
            left += [(x, p) for x in cache[key_deg]]
        rows += [
            (ALL_DEGRADED, col, g, p, any_said)
            for g, p in _merge([g for g, _ in left], [p for _, p in left], cache)
        ]
    frame = _parts_frame(rows)
    if len(frame):
        frame = frame[area_km2(frame["geometry"].to_numpy()) >= params.min_outage_km2]
    return frame.reset_index(drop=True)


def _clusters(
    a: np.ndarray,
    b: np.ndarray,
    dab: np.ndarray,
    same_net: np.ndarray,
    down: np.ndarray,
    reach: np.ndarray,
    server: np.ndarray,
    blocks: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """One window's clusters: down sites of one network whose discs overlap (each
    cluster's sites, sorted), and per cluster the blocking sites of its network and of
    the others whose discs meet one of its sites (sorted, unique).

    ``a``, ``b``: site pairs that can overlap (both ways), ``dab`` their distances,
    ``same_net`` whether they share a network; ``down``, ``reach``, ``server``,
    ``blocks``: per site in this window.
    """
    # Only pairs from a down site can meet: the rest is left out before the tests (in
    # their order, so every selection below is what the whole list gives).
    from_down = np.flatnonzero(down[a])
    a, b, dab, same_net = a[from_down], b[from_down], dab[from_down], same_net[from_down]
    meets = (dab < reach[a] + reach[b]) & server[a] & server[b]
    dn = np.flatnonzero(down)
    pos = np.full(down.size, -1)
    pos[dn] = np.arange(dn.size)
    link = meets & same_net & down[b]
    graph = sparse.coo_matrix(
        (np.ones(int(link.sum())), (pos[a[link]], pos[b[link]])), shape=(dn.size, dn.size)
    )
    _, label = connected_components(graph, directed=False)
    members = _groups(label, dn)
    near = meets & blocks[b]
    near_same, near_other = near & same_net, near & ~same_net
    up_same = _groups(label[pos[a[near_same]]], b[near_same], len(members))
    up_other = _groups(label[pos[a[near_other]]], b[near_other], len(members))
    return members, up_same, up_other


def _groups(label: np.ndarray, values: np.ndarray, n: int | None = None) -> list[np.ndarray]:
    """``values`` split by ``label`` (0..n-1), each group sorted and unique."""
    n = int(label.max()) + 1 if n is None else n
    if values.size == 0:
        return [np.empty(0, dtype=np.int64) for _ in range(n)]
    order = np.lexsort((values, label))
    lab, val = label[order], values[order]
    first = np.ones(lab.size, dtype=bool)
    first[1:] = (lab[1:] != lab[:-1]) | (val[1:] != val[:-1])
    lab, val = lab[first], val[first]
    bounds = np.searchsorted(lab, np.arange(n + 1))
    return [val[bounds[i] : bounds[i + 1]] for i in range(n)]


def _key(members: np.ndarray, up: np.ndarray, reach: np.ndarray) -> tuple:
    """Cache key of a cluster: its sites, the blocking sites and their reaches."""
    return (
        members.tobytes(),
        reach[members].tobytes(),
        up.tobytes(),
        reach[up].tobytes(),
    )


def _minus(
    pieces: list[shapely.Geometry],
    up: np.ndarray,
    reach: np.ndarray,
    discs: _DiscCache,
    unions: _UnionCache,
    *,
    cut: list[shapely.Geometry] | None = None,
) -> list[shapely.Geometry]:
    """Parts of the union of ``pieces`` outside the discs of ``up`` (and ``cut``)."""
    area = pieces[0] if len(pieces) == 1 else unions.union(pieces)
    remove = list(discs.get(up, reach[up])) if up.size else []
    remove += cut or []
    if remove:
        area = shapely.difference(area, unions.union(remove))
    return [g for g in shapely.get_parts(area) if not g.is_empty]


def _merge(
    geoms: list[shapely.Geometry], p: list[float], cache: dict[tuple, list[shapely.Geometry]]
) -> list[tuple[shapely.Geometry, float]]:
    """Overlapping pieces (from different networks) merged; p averaged per merged part.

    A piece that overlaps nothing is passed on as it is (the same object, so outage
    tracking can reuse its overlaps from window to window).
    """
    if not geoms:
        return []
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    n = len(geoms)
    graph = sparse.coo_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    out: list[tuple[shapely.Geometry, float]] = []
    for members in _groups(label, np.arange(n)):
        if members.size == 1:
            out.append((geoms[members[0]], float(p[members[0]])))  # its own mean
            continue
        mean_p = float(np.mean([p[k] for k in members]))
        key = ("merge", tuple(id(geoms[k]) for k in members))
        if key not in cache:
            merged = shapely.union_all([geoms[k] for k in members])
            cache[key] = [g for g in shapely.get_parts(merged) if not g.is_empty]
        out += [(g, mean_p) for g in cache[key]]
    return out


def _parts_frame(rows: list[tuple[int, int, shapely.Geometry, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": np.array([r[0] for r in rows], dtype="int64"),
            "col": np.array([r[1] for r in rows], dtype="int64"),
            "geometry": np.array([r[2] for r in rows], dtype=object),
            "p": np.array([r[3] for r in rows], dtype="float64"),
            "reported": np.array([r[4] for r in rows], dtype=bool),
        }
    )
