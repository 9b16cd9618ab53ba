"""Outage polygons per network and window (from site coverage, or connected down grid
cells where coverage is unknown), tracked over time."""

from __future__ import annotations

import hashlib
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from dcm.analysis.coverage import (
    ALL_DEGRADED,
    ALL_OUTAGE,
    CoverageInput,
    ShapeCache,
    area_km2,
    coverage_outages,
    object_ids,
)
from dcm.analysis.grid import (
    cell_areas_km2,
    cells_to_polygon,
    neighbour_pairs,
    points_to_cells,
)
from dcm.analysis.params import DetectionParams, parse_duration
from dcm.analysis.states import DOWN, all_network_state
from dcm.schema import ALL_NETWORKS, CRS, OUTAGE_COLUMNS

EXTRA_COLUMNS = {"restored": "datetime64[ns, UTC]", "hexes": "int64"}
#: Outage tiers: the data confirm the outage, or point to it without confirming it yet.
CONFIRMED, SUSPECTED = "confirmed", "suspected"


def empty_outages() -> gpd.GeoDataFrame:
    """An empty outage frame with the contract's columns."""
    cols = {**OUTAGE_COLUMNS, **EXTRA_COLUMNS}
    frame = pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=CRS), crs=CRS)


def build_outages(
    *,
    keys: pd.DataFrame,
    state: np.ndarray,
    p_down: np.ndarray,
    windows: pd.DatetimeIndex,
    window: pd.Timedelta,
    networks: tuple[str, ...],
    params: DetectionParams,
    population: pd.DataFrame | None,
    cells: pd.DataFrame,
    cell_offline: np.ndarray,
    previous: gpd.GeoDataFrame | None = None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    all_layer: tuple[np.ndarray, np.ndarray] | None = None,
    coverage: CoverageInput | None = None,
) -> gpd.GeoDataFrame:
    """Outage features from key × window states (columns of ``state`` are ``windows``).

    Per network: connected grid cells in state down. For ``"all"``: connected grid
    cells where every serving network is down (severity ``outage``) and, separately,
    where some but not all are (``degraded``). Components smaller than
    ``params.min_outage_cells`` are dropped (an isolated cell is weak evidence).
    ``all_layer``: :func:`~dcm.analysis.states.all_network_state` of these states and
    ``pairs``, when the caller has it already (it is not cheap on large grids).

    ``coverage``: sites' reach and p_offline per window. When every network has
    sites with a known reach, outages are drawn from coverage instead
    (:func:`~dcm.analysis.coverage.coverage_outages`): what failed sites reached and
    no other site reaches, not whole grid cells.
    """
    if coverage is not None and _coverage_usable(coverage, len(networks)):
        parts = _tiered_parts(coverage, params=params, n_networks=len(networks))
        return _outage_frame(
            parts,
            windows,
            window,
            networks,
            params,
            population,
            cells,
            cell_offline,
            previous,
            coverage=coverage,
        )
    hexes = keys.drop_duplicates("hex").sort_values("hex")["h3"].to_numpy()
    pairs = pairs if pairs is not None else neighbour_pairs(hexes)
    nodes = _down_nodes(keys, state, p_down, pairs, all_layer)
    if nodes.empty:
        return empty_outages()
    a, b = pairs
    nodes = nodes.reset_index(drop=True)
    nodes["node"] = np.arange(len(nodes))
    edges = (
        nodes[["layer", "col", "hex", "node"]]
        .merge(pd.DataFrame({"hex": a, "hex_b": b}), on="hex")
        .merge(
            nodes[["layer", "col", "hex", "node"]].rename(
                columns={"hex": "hex_b", "node": "node_b"}
            ),
            on=["layer", "col", "hex_b"],
        )
    )
    graph = sparse.coo_matrix(
        (np.ones(len(edges)), (edges["node"].to_numpy(), edges["node_b"].to_numpy())),
        shape=(len(nodes), len(nodes)),
    )
    _, label = connected_components(graph, directed=False)
    nodes["component"] = label
    size = nodes.groupby("component")["hex"].transform("size")
    nodes = nodes[size >= params.min_outage_cells]
    if nodes.empty:
        return empty_outages()

    area = cell_areas_km2(hexes)
    nodes["area_km2"] = area[nodes["hex"].to_numpy()]
    pop = _population_per_hex(population, hexes, params.resolution)
    nodes["population"] = pop[nodes["hex"].to_numpy()] if pop is not None else np.nan
    comp = nodes.groupby("component").agg(
        layer=("layer", "first"),
        col=("col", "first"),
        confidence=("p", "mean"),
        area_km2=("area_km2", "sum"),
        population=("population", "sum"),
        hexes=("hex", "size"),
    )
    if pop is None:
        comp["population"] = np.nan
    comp["cells_offline"] = _cells_offline(
        nodes, cells, cell_offline, hexes, params.resolution, networks
    ).reindex(comp.index, fill_value=0)
    hex_lists = {c: tuple(sorted(h)) for c, h in nodes.groupby("component")["hex"]}
    # An outage usually keeps the same grid cells for many windows: build each shape once.
    shapes: dict[tuple[int, ...], shapely.Geometry] = {}

    def polygon(cells: tuple[int, ...]) -> shapely.Geometry:
        if cells not in shapes:
            shapes[cells] = cells_to_polygon(hexes[np.asarray(cells)])
        return shapes[cells]

    geoms = [polygon(hex_lists[c]) for c in comp.index]
    names = np.asarray(networks, dtype=object)
    layer = comp["layer"].to_numpy()
    start = windows[comp["col"].to_numpy()]
    frame = gpd.GeoDataFrame(
        {
            "outage_id": pd.array([None] * len(comp), dtype="string"),
            "window_start": start,
            "window_end": start + window,
            "network": np.where(layer >= 0, names[np.maximum(layer, 0)], ALL_NETWORKS),
            "severity": np.where(layer == ALL_DEGRADED, "degraded", "outage"),
            "confidence": comp["confidence"].round(4).to_numpy(),
            "area_km2": comp["area_km2"].round(3).to_numpy(),
            "population": comp["population"].round(1).to_numpy(),
            "cells_offline": comp["cells_offline"].astype("int64").to_numpy(),
            "onset": start,
            "tier": pd.array([CONFIRMED] * len(comp), dtype="string"),
            "certainty": pd.array(["likely"] * len(comp), dtype="string"),
            "hexes": comp["hexes"].astype("int64").to_numpy(),
        },
        geometry=geoms,
        crs=CRS,
    )
    frame = frame.sort_values(["window_start", "network", "severity"], ignore_index=True)
    return _track_all(
        frame,
        previous,
        parse_duration(params.track_gap, name="track_gap"),
        until=windows.max() + window,
    )


def _tiered_parts(
    coverage: CoverageInput, *, params: DetectionParams, n_networks: int
) -> pd.DataFrame:
    """Coverage parts of confirmed outages (sites at or above ``params.p_down``) and of
    suspected ones (sites between ``params.p_suspect`` and ``p_down``, outside every
    confirmed part of the same layer and window), with a ``tier`` column."""
    shapes = ShapeCache(coverage)
    confirmed = coverage_outages(coverage, params=params, n_networks=n_networks, shapes=shapes)
    confirmed["tier"] = CONFIRMED
    if params.p_suspect >= params.p_down:
        return confirmed
    suspected = coverage_outages(
        coverage,
        params=params,
        n_networks=n_networks,
        p_min=params.p_suspect,
        p_max=params.p_down,
        shapes=shapes,
    )
    if len(suspected) and len(confirmed):
        geoms = _outside(suspected, confirmed)
        suspected["geometry"] = geoms
        keep = ~shapely.is_empty(geoms)
        keep[keep] = area_km2(geoms[keep]) >= params.min_outage_km2
        suspected = suspected[keep]
    suspected = suspected.assign(tier=SUSPECTED)
    return pd.concat([confirmed, suspected], ignore_index=True)


def _outside(parts: pd.DataFrame, cut: pd.DataFrame) -> np.ndarray:
    """The geometry of each of ``parts`` outside the ``cut`` parts of its layer and window.

    Only the cut parts that meet a part are subtracted from it, and each distinct
    (part, cuts) pair once: coverage hands back the same shape objects for a cluster
    that lasts, window after window.
    """
    geoms = parts["geometry"].to_numpy().copy()
    cuts = cut["geometry"].to_numpy()
    # Boxes first, then the same layer and window, then the exact test once per
    # distinct pair of shape objects.
    i, j = shapely.STRtree(cuts).query(geoms)
    same = (parts["layer"].to_numpy()[i] == cut["layer"].to_numpy()[j]) & (
        parts["col"].to_numpy()[i] == cut["col"].to_numpy()[j]
    )
    i, j = i[same], j[same]
    ids = object_ids(cuts)
    keep = _intersects_once(geoms, i, object_ids(geoms)[i], cuts, j, ids[j])
    i, j = i[keep], j[keep]
    if i.size == 0:
        return geoms
    order = np.argsort(i, kind="stable")
    i, j = i[order], j[order]
    hit, start = np.unique(i, return_index=True)
    done: dict[tuple[int, ...], shapely.Geometry] = {}
    for k, (a, b) in enumerate(zip(start.tolist(), [*start[1:].tolist(), i.size], strict=True)):
        g = geoms[hit[k]]
        key = (id(g), *ids[j[a:b]].tolist())
        if key not in done:
            knife = cuts[j[a]] if b - a == 1 else shapely.union_all(cuts[j[a:b]])
            done[key] = _polygonal(np.array([shapely.difference(g, knife)], dtype=object))[0]
        geoms[hit[k]] = done[key]
    return geoms


def _intersects_once(
    a: np.ndarray, i: np.ndarray, a_key: np.ndarray, b: np.ndarray, j: np.ndarray, b_key: np.ndarray
) -> np.ndarray:
    """``intersects(a[i], b[j])`` per candidate pair, computed once per distinct
    (``a_key``, ``b_key``): lasting outages repeat the same shapes window after window."""
    pair = pair_codes(a_key, b_key)
    first = np.unique(pair, return_index=True)[1]
    return shapely.intersects(a[i[first]], b[j[first]])[pair]


def pair_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Codes of the distinct (``a[i]``, ``b[i]``) pairs, in order of first appearance:
    ``pd.factorize`` of their MultiIndex, without building one (each side is coded
    first, then the pair as one integer)."""
    code_a = pd.factorize(a, use_na_sentinel=False)[0].astype("int64")
    code_b, uniq_b = pd.factorize(b, use_na_sentinel=False)
    return pd.factorize(code_a * max(len(uniq_b), 1) + code_b)[0]


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Only the polygons of each geometry (a difference can leave lines and points)."""
    parts, of = shapely.get_parts(geoms, return_index=True)
    is_poly = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    out = np.array([shapely.Polygon()] * len(geoms), dtype=object)
    for i in np.unique(of[is_poly]):
        polys = parts[is_poly & (of == i)]
        out[i] = polys[0] if len(polys) == 1 else shapely.MultiPolygon(list(polys))
    return out


def _certainty(tier: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """CAP-style certainty: observed (confirmed and backed by failure reports), likely
    (confirmed by silence against expectation) or possible (suspected)."""
    return np.where(tier == SUSPECTED, "possible", np.where(reported, "observed", "likely")).astype(
        object
    )


def _coverage_usable(coverage: CoverageInput, n_networks: int) -> bool:
    """Every network has at least one site with a reach."""
    served = np.isfinite(coverage.reach).any(axis=1)
    nets = np.unique(coverage.network[served & (coverage.network >= 0)])
    return nets.size == n_networks


def _outage_frame(
    parts: pd.DataFrame,
    windows: pd.DatetimeIndex,
    window: pd.Timedelta,
    networks: tuple[str, ...],
    params: DetectionParams,
    population: pd.DataFrame | None,
    cells: pd.DataFrame,
    cell_offline: np.ndarray,
    previous: gpd.GeoDataFrame | None,
    *,
    coverage: CoverageInput | None = None,
) -> gpd.GeoDataFrame:
    """Outage features from coverage parts (``layer``, ``col``, ``geometry``, ``p``).

    ``cells_offline``: the offline cells of the sites whose service area (reach in that
    window) the part is (:func:`_cells_serving`); without ``coverage``, the offline
    cells located in the part.
    """
    if parts.empty:
        return empty_outages()
    # Snap to a 1e-6° grid (0.1 m), which keeps the shapes valid when written with
    # 6 or more decimals: differences of discs leave spikes a rounding can cross.
    # A lasting outage comes back as an equal shape (a new object) every window:
    # snap, check and measure each distinct shape once.
    shape, distinct = _distinct_shapes(parts["geometry"].to_numpy())
    snapped = shapely.set_precision(distinct, 1e-6)
    usable = ~shapely.is_empty(snapped) & shapely.is_valid(snapped)
    keep = (shape >= 0) & usable[shape]
    parts, shape = parts[keep].reset_index(drop=True), shape[keep]
    if parts.empty:
        return empty_outages()
    geoms = snapped[shape]
    layer = parts["layer"].to_numpy()
    col = parts["col"].to_numpy()
    people = np.full(len(parts), np.nan)
    if population is not None:
        pts = shapely.points(
            population["lon"].to_numpy("float64"), population["lat"].to_numpy("float64")
        )
        g, pt = shapely.STRtree(pts).query(geoms, predicate="contains")
        weights = population["population"].to_numpy("float64")[pt]
        people = np.bincount(g, weights=weights, minlength=len(parts))
    cell_net = pd.Index(networks).get_indexer(pd.Index(cells["network"].astype(str)))
    offline = _cells_serving(geoms, layer, col, cells, cell_net, cell_offline, coverage)
    if offline is None:
        # Offline cells located in each part: of its network, any network for "all".
        cell_pts = shapely.points(
            cells["lon"].to_numpy("float64"), cells["lat"].to_numpy("float64")
        )
        g, c = shapely.STRtree(cell_pts).query(geoms, predicate="contains")
        hit = cell_offline[c, col[g]] & ((layer[g] < 0) | (layer[g] == cell_net[c]))
        offline = np.bincount(g[hit], minlength=len(parts))
    names = np.asarray(networks, dtype=object)
    start = windows[col]
    frame = gpd.GeoDataFrame(
        {
            "outage_id": pd.array([None] * len(parts), dtype="string"),
            "window_start": start,
            "window_end": start + window,
            "network": np.where(layer >= 0, names[np.maximum(layer, 0)], ALL_NETWORKS),
            "severity": np.where(layer == ALL_DEGRADED, "degraded", "outage"),
            "confidence": np.round(parts["p"].to_numpy(), 4),
            "area_km2": np.round(area_km2(snapped)[shape], 3),
            "population": np.round(people, 1),
            "cells_offline": offline.astype("int64"),
            "onset": start,
            "tier": pd.array(parts["tier"].to_numpy(), dtype="string"),
            "certainty": pd.array(
                _certainty(parts["tier"].to_numpy(), parts["reported"].to_numpy()),
                dtype="string",
            ),
            "hexes": np.zeros(len(parts), dtype="int64"),
        },
        geometry=geoms,
        crs=CRS,
    )
    frame = frame.sort_values(["window_start", "network", "severity", "tier"], ignore_index=True)
    return _track_all(
        frame,
        previous,
        parse_duration(params.track_gap, name="track_gap"),
        until=windows.max() + window,
    )


#: A site's service area counts for an outage part when the part overlaps the disc of
#: this share of its reach: parts are cut along the discs of serving sites, and a disc
#: that only touches a part's edge does not serve it.
_SERVING_SHRINK = 0.98


def _cells_serving(
    geoms: np.ndarray,
    layer: np.ndarray,
    col: np.ndarray,
    cells: pd.DataFrame,
    cell_net: np.ndarray,
    cell_offline: np.ndarray,
    coverage: CoverageInput | None,
) -> np.ndarray | None:
    """Offline cells per outage part, counted by the sites whose service area it is.

    A part counts the offline cells (in its window; of its network, any network for
    ``"all"``) of every site whose reach in that window overlaps it: an outage is the
    area those sites served, and their cells usually stand outside it (a mast on a
    ridge serves the valley). Sites are the cells' ``site_id`` groups in first-seen
    order, as :class:`~dcm.analysis.coverage.CoverageInput` rows are; None when the
    counts do not match (then cells are counted where they stand).
    """
    if coverage is None or "site_id" not in cells:
        return None
    site_of_cell, site_ids = pd.factorize(cells["site_id"].astype(str))
    if len(site_ids) != coverage.lon.size or (site_of_cell < 0).any():
        return None
    out = np.zeros(len(geoms), dtype="int64")
    r, c = np.nonzero(cell_offline)
    if r.size == 0 or len(geoms) == 0:
        return out
    # Offline cells per (site, window, network) with a finite reach there.
    off = pd.DataFrame({"site": site_of_cell[r], "col": c, "net": cell_net[r]})
    off = off.groupby(["site", "col", "net"], as_index=False).size()
    reach = coverage.reach[off["site"].to_numpy(), off["col"].to_numpy()]
    off = off[np.isfinite(reach) & (reach > 0)].reset_index(drop=True)
    if off.empty:
        return out
    from dcm.analysis.coverage import _discs

    site = off["site"].to_numpy()
    reach = coverage.reach[site, off["col"].to_numpy()] * _SERVING_SHRINK
    # A site's disc usually keeps its reach for many windows, and an outage its shape
    # (the same object): build each disc once, test each (shape, disc) pair once, and
    # only pairs of the same window and network.
    disc_of = pair_codes(site, reach)
    uniq = np.unique(disc_of, return_index=True)[1]
    discs = _discs(coverage.lon[site[uniq]], coverage.lat[site[uniq]], reach[uniq])
    # Candidate pairs window by window: a tree of the window's discs, queried by the
    # window's parts (one tree of all windows would pair every window with every other).
    off_col = off["col"].to_numpy()
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for w in np.unique(col).tolist():
        rows = np.flatnonzero(off_col == w)
        parts = np.flatnonzero(col == w)
        if rows.size and parts.size:
            p, r = shapely.STRtree(discs[disc_of[rows]]).query(geoms[parts])
            found.append((parts[p], rows[r]))
    if not found:
        return out
    part = np.concatenate([p for p, _ in found])
    row = np.concatenate([r for _, r in found])
    net = off["net"].to_numpy()[row]
    same = (layer[part] < 0) | (layer[part] == net)
    part, row = part[same], row[same]
    disc = disc_of[row]
    meets = _intersects_once(geoms, part, object_ids(geoms)[part], discs, disc, disc)
    np.add.at(out, part[meets], off["size"].to_numpy()[row[meets]])
    return out


def _distinct_shapes(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each geometry's position among the distinct ones (-1: missing), and those.

    Distinct by value: EWKB and precision grid, all a GEOS operation reads.
    """
    wkb, _ = pd.factorize(shapely.to_wkb(geoms, include_srid=True))
    grid, _ = pd.factorize(shapely.get_precision(geoms))
    valid = np.flatnonzero(wkb >= 0)
    shape = np.full(len(geoms), -1, dtype="int64")
    if valid.size:
        shape[valid] = pd.factorize(wkb[valid] * (int(grid.max()) + 1) + grid[valid])[0]
    first = valid[np.unique(shape[valid], return_index=True)[1]]
    return shape, np.asarray(geoms[first], dtype=object)


def _down_nodes(
    keys: pd.DataFrame,
    state: np.ndarray,
    p: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None,
    all_layer: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per (layer, window column, hex) in an outage, with its p_down."""
    r, c = np.nonzero(state == DOWN)
    per_net = pd.DataFrame(
        {
            "layer": keys["network"].to_numpy()[r],
            "col": c,
            "hex": keys["hex"].to_numpy()[r],
            "p": p[r, c],
        }
    )
    all_state, all_p = all_layer or all_network_state(keys, state, p, pairs)
    hr, hc = np.nonzero(all_state == DOWN)
    all_rows = pd.DataFrame({"layer": ALL_OUTAGE, "col": hc, "hex": hr, "p": all_p[hr, hc]})
    # Degraded: some serving network is down here, but not all of them.
    deg = per_net.groupby(["hex", "col"], as_index=False)["p"].max()
    deg = deg.merge(all_rows[["hex", "col"]], on=["hex", "col"], how="left", indicator=True)
    deg = deg[deg["_merge"] == "left_only"].drop(columns="_merge")
    deg["layer"] = ALL_DEGRADED
    return pd.concat([per_net, all_rows, deg[["layer", "col", "hex", "p"]]], ignore_index=True)


def _population_per_hex(
    population: pd.DataFrame | None, hexes: np.ndarray, resolution: int
) -> np.ndarray | None:
    """People per hex of ``hexes`` from population points (pixel centres)."""
    if population is None:
        return None
    h = points_to_cells(
        population["lat"].to_numpy("float64"), population["lon"].to_numpy("float64"), resolution
    )
    pos = pd.Index(hexes).get_indexer(h)
    ok = pos >= 0
    return np.bincount(
        pos[ok], weights=population["population"].to_numpy("float64")[ok], minlength=hexes.size
    )


def _cells_offline(
    nodes: pd.DataFrame,
    cells: pd.DataFrame,
    offline: np.ndarray,
    hexes: np.ndarray,
    resolution: int,
    networks: tuple[str, ...],
) -> pd.Series:
    """Offline cells per component: cells located in its grid cells, of its network
    (any network for the all-network layers)."""
    r, c = np.nonzero(offline)
    if r.size == 0:
        return pd.Series(dtype="int64")
    cell_hex = pd.Index(hexes).get_indexer(
        points_to_cells(
            cells["lat"].to_numpy("float64"), cells["lon"].to_numpy("float64"), resolution
        )
    )
    cell_net = pd.Index(networks).get_indexer(pd.Index(cells["network"].astype(str)))
    off = pd.DataFrame({"hex": cell_hex[r], "col": c, "cell_net": cell_net[r]})
    off = off[off["hex"] >= 0]
    joined = nodes[["component", "layer", "col", "hex"]].merge(off, on=["hex", "col"])
    joined = joined[(joined["layer"] < 0) | (joined["layer"] == joined["cell_net"])]
    return joined.groupby("component").size()


def _track_all(
    frame: gpd.GeoDataFrame,
    previous: gpd.GeoDataFrame | None,
    gap: pd.Timedelta,
    *,
    until: pd.Timestamp | None = None,
) -> gpd.GeoDataFrame:
    """Give ids window by window, then the restoration time of each outage.

    An outage missing for up to ``gap`` (sparse data make a place flicker between
    down and uncertain) keeps its id when it comes back at the same place.
    """
    done: list[gpd.GeoDataFrame] = []
    recent = previous if previous is not None else None
    overlaps = OverlapCache()
    for start, group in frame.groupby("window_start", sort=True):
        if recent is not None and len(recent):
            recent = recent[recent["window_end"] >= start - gap]
        group = track_outages(recent, group, overlaps=overlaps)
        done.append(group)
        # The latest appearance of every outage seen within the gap.
        pool = group if recent is None else pd.concat([recent, group], ignore_index=True)
        recent = pool.drop_duplicates("outage_id", keep="last")
    out = pd.concat(done, ignore_index=True)
    last_end = out.groupby("outage_id")["window_end"].transform("max")
    # Restored: gone before the end of the judged windows (``until``), not merely
    # before the last window that had any outage.
    end = out["window_end"].max() if until is None else max(until, out["window_end"].max())
    restored = last_end.where(last_end < end)
    out["restored"] = pd.to_datetime(restored, utc=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=CRS)


def track_outages(
    previous: gpd.GeoDataFrame | None,
    new: gpd.GeoDataFrame,
    *,
    overlaps: OverlapCache | None = None,
) -> gpd.GeoDataFrame:
    """Carry ids and onset times from the previous window's outages to the new ones.

    Matching is per network by overlapping area, largest overlap first, one to one:
    when an outage splits, its largest part keeps the id; when two merge, the
    larger overlap wins. Unmatched outages get a new id and onset = window_start.
    ``overlaps``: a cache of overlaps kept across calls (see :class:`OverlapCache`).
    """
    new = new.copy()
    new["outage_id"] = pd.array([None] * len(new), dtype="string")
    new["onset"] = new["window_start"]
    if previous is not None and len(previous) and len(new):
        prev = previous.reset_index(drop=True)
        cache = overlaps if overlaps is not None else OverlapCache()
        # Boxes first, then the same network, then whether they intersect: once per
        # distinct pair of shapes (lasting outages bring the same pairs every window).
        tree = shapely.STRtree(prev.geometry.to_numpy())
        new_idx, prev_idx = tree.query(new.geometry.to_numpy())
        same = new["network"].to_numpy()[new_idx] == prev["network"].to_numpy()[prev_idx]
        new_idx, prev_idx = new_idx[same], prev_idx[same]
        meet = cache.intersects(
            new.geometry.to_numpy()[new_idx], prev.geometry.to_numpy()[prev_idx]
        )
        new_idx, prev_idx = new_idx[meet], prev_idx[meet]
        a_geo = new.geometry.to_numpy()[new_idx]
        b_geo = prev.geometry.to_numpy()[prev_idx]
        # Where a new and a previous outage meet only each other, no ranking is needed:
        # whether their interiors meet decides (much cheaper than the overlap area).
        alone = (np.bincount(new_idx, minlength=len(new))[new_idx] == 1) & (
            np.bincount(prev_idx, minlength=len(prev))[prev_idx] == 1
        )
        overlap = np.zeros(new_idx.size)
        overlap[alone] = cache.interiors_meet(a_geo[alone], b_geo[alone])
        # Others are ranked by overlap area, computed only where interiors meet
        # (neighbours that merely touch, e.g. a suspected part beside a confirmed one,
        # are common and their overlay is costly).
        rank = np.flatnonzero(~alone)
        rank = rank[cache.interiors_meet(a_geo[rank], b_geo[rank])]
        overlap[rank] = cache.areas(a_geo[rank], b_geo[rank])
        order = np.argsort(-overlap, kind="stable")
        used_new: set[int] = set()
        used_prev: set[int] = set()
        ids = new["outage_id"].to_numpy(dtype=object)
        onset = new["onset"].to_numpy()
        prev_ids = prev["outage_id"].to_numpy(dtype=object)
        prev_onset = prev["onset"].to_numpy()
        # Greedy one-to-one matching over candidate pairs (outages, not measurements).
        for i in order[overlap[order] > 0].tolist():
            n, p = int(new_idx[i]), int(prev_idx[i])
            if n in used_new or p in used_prev:
                continue
            used_new.add(n)
            used_prev.add(p)
            ids[n] = prev_ids[p]
            onset[n] = prev_onset[p]
        new["outage_id"] = pd.array(ids, dtype="string")
        new["onset"] = pd.to_datetime(onset, utc=True)
    missing = new["outage_id"].isna().to_numpy()
    if missing.any():
        new.loc[missing, "outage_id"] = [
            outage_id(net, on, geom)
            for net, on, geom in zip(
                new.loc[missing, "network"],
                new.loc[missing, "onset"],
                new.geometry[missing],
                strict=True,
            )
        ]
    return new


class OverlapCache:
    """Overlaps of pairs of outage shapes, computed once per pair of shape *values*.

    An outage usually keeps its shape for many windows, but each window's shapes are
    new objects (coverage parts are rebuilt every window): the same pair of shapes
    comes back window after window as different objects. Shapes are keyed by their
    value (EWKB and precision grid, all a GEOS operation reads), so each distinct
    pair is computed once, with the same GEOS call as without the cache.
    """

    def __init__(self) -> None:
        # id -> (the object, kept so the id stays valid; its value key)
        self._by_id: dict[int, tuple[Any, int]] = {}
        self._by_value: dict[tuple[bytes, float], int] = {}
        self._area: dict[tuple[int, int], float] = {}
        self._meet: dict[tuple[int, int], bool] = {}
        self._intersects: dict[tuple[int, int], bool] = {}

    def _keys(self, geoms: np.ndarray) -> list[int]:
        """Value key of each geometry (equal keys: equal coordinates and precision)."""
        ids = [id(g) for g in geoms.tolist()]
        todo = [i for i, x in enumerate(ids) if x not in self._by_id]
        if todo:
            sub = geoms[np.asarray(todo, dtype="int64")]
            wkb = shapely.to_wkb(sub, include_srid=True).tolist()
            grid = shapely.get_precision(sub).tolist()
            for i, w, g in zip(todo, wkb, grid, strict=True):
                key = self._by_value.setdefault((w, g), len(self._by_value))
                self._by_id[ids[i]] = (geoms[i], key)
        return [self._by_id[x][1] for x in ids]

    def _pairs(
        self, a: np.ndarray, b: np.ndarray, store: dict[tuple[int, int], Any], fn: Any
    ) -> list[Any]:
        """``fn(a[i], b[i])`` per pair, through ``store``; ``fn`` runs on the new pairs only."""
        pairs = list(zip(self._keys(a), self._keys(b), strict=True))
        todo: dict[tuple[int, int], int] = {}
        for i, k in enumerate(pairs):
            if k not in store and k not in todo:
                todo[k] = i
        if todo:
            idx = np.fromiter(todo.values(), dtype="int64", count=len(todo))
            store.update(zip(todo, fn(a[idx], b[idx]).tolist(), strict=True))
        return [store[k] for k in pairs]

    def areas(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Area of the intersection of ``a[i]`` and ``b[i]`` (degrees², for ranking)."""
        return np.array(
            self._pairs(a, b, self._area, lambda x, y: shapely.area(shapely.intersection(x, y))),
            dtype="float64",
        )

    def intersects(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether ``a[i]`` and ``b[i]`` intersect, ``a`` prepared (as an STRtree query
        with this predicate tests its input shapes)."""

        def test(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            shapely.prepare(x)
            return shapely.intersects(x, y)

        return np.array(self._pairs(a, b, self._intersects, test), dtype=bool)

    def interiors_meet(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether the interiors of ``a[i]`` and ``b[i]`` meet (DE-9IM ``T********``).

        Tested as ``intersects and not touches`` (DE-9IM: two shapes touch when they
        intersect and their interiors do not meet) with ``a`` prepared: a fifth less
        time than ``relate_pattern(a, b, "T********")``, the same answers (a test
        checks them against it).
        """

        def test(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            shapely.prepare(x)
            return shapely.intersects(x, y) & ~shapely.touches(x, y)

        return np.array(self._pairs(a, b, self._meet, test), dtype=bool)


def outage_id(network: str, onset: pd.Timestamp, geometry: shapely.Geometry) -> str:
    """A readable, reproducible id: network, onset and a short hash of the place."""
    point = shapely.get_coordinates(shapely.point_on_surface(geometry))[0]
    digest = hashlib.sha1(f"{network}|{onset}|{point[0]:.4f}|{point[1]:.4f}".encode()).hexdigest()
    return f"{network}-{pd.Timestamp(onset):%Y%m%dT%H%MZ}-{digest[:6]}"
