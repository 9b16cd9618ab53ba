"""Coverage outages on hand-made sites with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from dcm.analysis import DetectionParams
from dcm.analysis.coverage import (
    ALL_DEGRADED,
    ALL_OUTAGE,
    M_PER_DEG_LAT,
    M_PER_DEG_LON,
    CoverageInput,
    area_km2,
    coverage_outages,
    distance_m,
    rolling_max,
)

LAT0 = 0.0


def east(metres: float) -> float:
    """Longitude of a point ``metres`` east of (0, 0)."""
    return metres / (M_PER_DEG_LON * math.cos(math.radians(LAT0)))


def sites(
    xs_m: list[float], networks: list[int], reach: list[float], p: list[list[float]]
) -> CoverageInput:
    return CoverageInput(
        lon=np.array([east(x) for x in xs_m]),
        lat=np.zeros(len(xs_m)),
        network=np.array(networks),
        reach=np.array([[r] * len(p[0]) for r in reach], dtype="float64"),
        p=np.array(p, dtype="float64"),
    )


def lens_km2(r1: float, r2: float, d: float) -> float:
    """Area (km²) where two discs of radius r1, r2 (m) d apart overlap."""
    a = r1**2 * math.acos((d**2 + r1**2 - r2**2) / (2 * d * r1))
    b = r2**2 * math.acos((d**2 + r2**2 - r1**2) / (2 * d * r2))
    c = 0.5 * math.sqrt((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))
    return (a + b - c) / 1e6


def contains(frame, layer: int, x_m: float) -> bool:
    geoms = frame.loc[frame["layer"] == layer, "geometry"]
    return any(shapely.contains_xy(g, east(x_m), 0.0) for g in geoms)


def test_failed_site_area_is_its_reach_minus_the_neighbours() -> None:
    # A (down) at 0 m, B (up) 4 km east; both reach 3 km.
    cov = sites([0, 4000], [0, 0], [3000, 3000], [[0.99], [0.01]])
    parts = coverage_outages(cov, params=DetectionParams(), n_networks=1)
    net = parts[parts["layer"] == 0]
    assert len(net) == 1
    assert contains(parts, 0, -2500) and contains(parts, 0, 900)
    assert not contains(parts, 0, 1500)  # B reaches it: taken over
    expected = math.pi * 3.0**2 - lens_km2(3000, 3000, 4000)
    assert area_km2(net["geometry"].to_numpy())[0] == pytest.approx(expected, rel=0.01)
    assert net["p"].iloc[0] == pytest.approx(0.99)


def test_nobody_serves_only_where_no_other_network_reaches() -> None:
    # Network 0: A down at 0 m. Network 1: C up at 3 km west, reach 2 km.
    cov = sites([0, -3000], [0, 1], [2000, 2000], [[0.95], [0.01]])
    parts = coverage_outages(cov, params=DetectionParams(), n_networks=2)
    assert contains(parts, 0, -1500) and contains(parts, 0, 1500)
    assert contains(parts, ALL_OUTAGE, 1500) and not contains(parts, ALL_OUTAGE, -1500)
    assert contains(parts, ALL_DEGRADED, -1500) and not contains(parts, ALL_DEGRADED, 1500)


def test_undecided_sites_neither_make_nor_block_outages() -> None:
    cov = sites([0, 4000], [0, 0], [3000, 3000], [[0.95], [0.5]])
    blocking = coverage_outages(cov, params=DetectionParams(coverage_block_p=0.9), n_networks=1)
    assert not contains(blocking, 0, 1500)
    open_ = coverage_outages(cov, params=DetectionParams(coverage_block_p=0.2), n_networks=1)
    assert contains(open_, 0, 1500) and not contains(open_, 0, 5000)


def test_no_down_site_no_outage_and_non_servers_are_ignored() -> None:
    calm = sites([0, 4000], [0, 0], [3000, 3000], [[0.5], [0.01]])
    assert coverage_outages(calm, params=DetectionParams(), n_networks=1).empty
    # A down site that never served (no reach) makes nothing either.
    silent = sites([0], [0], [np.nan], [[0.99]])
    assert coverage_outages(silent, params=DetectionParams(), n_networks=1).empty


def test_slivers_are_dropped() -> None:
    # B almost covers A: what is left is a thin crescent under the minimum area.
    cov = sites([0, 100], [0, 0], [1000, 1090], [[0.99], [0.01]])
    params = DetectionParams(reach_step_m=10)
    assert coverage_outages(cov, params=params.with_(min_outage_km2=1.0), n_networks=1).empty
    assert not coverage_outages(cov, params=params.with_(min_outage_km2=0.0), n_networks=1).empty


def test_windows_are_judged_separately() -> None:
    cov = sites([0], [0], [2000], [[0.1, 0.99, 0.1]])
    parts = coverage_outages(cov, params=DetectionParams(), n_networks=1)
    assert set(parts.loc[parts["layer"] == 0, "col"]) == {1}


def test_rolling_max_and_distance() -> None:
    values = np.array([[1.0, 5.0, 2.0, 0.0, 0.0, 3.0]])
    assert rolling_max(values, 2).tolist() == [[1.0, 5.0, 5.0, 2.0, 0.0, 3.0]]
    assert rolling_max(values, 3).tolist() == [[1.0, 5.0, 5.0, 5.0, 2.0, 3.0]]
    d = distance_m(
        np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([1 / M_PER_DEG_LAT * 1000])
    )
    assert d[0] == pytest.approx(1000.0)


def test_p_block_decides_which_sites_keep_serving() -> None:
    # B's p_offline is raised by a learned event rate (0.3), but on its own evidence
    # under the calm prior it is up (0.01): it still serves what it reaches.
    cov = sites([0, 4000], [0, 0], [3000, 3000], [[0.99], [0.3]])
    cov_calm = CoverageInput(**{**cov.__dict__, "p_block": np.array([[0.99], [0.01]])})
    open_area = coverage_outages(cov, params=DetectionParams(), n_networks=1)
    blocked = coverage_outages(cov_calm, params=DetectionParams(), n_networks=1)
    assert contains(open_area, 0, 1500) and not contains(blocked, 0, 1500)


def test_probability_band_selects_suspected_sites() -> None:
    # A confirmed (0.95), C suspected (0.7), far apart.
    cov = sites([0, 20_000], [0, 0], [3000, 3000], [[0.95], [0.7]])
    params = DetectionParams()
    confirmed = coverage_outages(cov, params=params, n_networks=1)
    suspected = coverage_outages(
        cov, params=params, n_networks=1, p_min=params.p_suspect, p_max=params.p_down
    )
    assert contains(confirmed, 0, 0) and not contains(confirmed, 0, 20_000)
    assert contains(suspected, 0, 20_000) and not contains(suspected, 0, 0)
    assert suspected.loc[suspected["layer"] == 0, "p"].iloc[0] == pytest.approx(0.7)


def test_failure_reports_mark_parts_reported() -> None:
    cov = sites([0, 20_000], [0, 0], [3000, 3000], [[0.95], [0.95]])
    cov = CoverageInput(**{**cov.__dict__, "reported": np.array([[True], [False]])})
    parts = coverage_outages(cov, params=DetectionParams(), n_networks=1)
    net = parts[parts["layer"] == 0]
    at_a = net["geometry"].map(lambda g: shapely.contains_xy(g, east(0), 0.0))
    assert net.loc[at_a, "reported"].all() and not net.loc[~at_a, "reported"].any()


def test_suspected_parts_leave_out_confirmed_areas() -> None:
    from dcm.analysis.outages import _certainty, _tiered_parts

    # A confirmed at 0 m, B suspected 2 km east (overlapping A), both reach 3 km.
    cov = sites([0, 2000], [0, 0], [3000, 3000], [[0.95], [0.7]])
    cov = CoverageInput(**{**cov.__dict__, "reported": np.array([[True], [False]])})
    parts = _tiered_parts(cov, params=DetectionParams(), n_networks=1)
    net = parts[parts["layer"] == 0]
    conf = net[net["tier"] == "confirmed"]
    sus = net[net["tier"] == "suspected"]
    assert len(conf) == 1 and len(sus) == 1
    assert contains(conf, 0, 0) and not contains(sus, 0, 0)
    assert contains(sus, 0, 4000) and not contains(conf, 0, 4000)
    assert shapely.area(shapely.intersection(conf.geometry.iloc[0], sus.geometry.iloc[0])) < 1e-9
    certainty = _certainty(net["tier"].to_numpy(), net["reported"].to_numpy())
    assert list(certainty) == ["observed", "possible"]
    # Without suspected sites the tier is all confirmed; p_suspect = p_down turns it off.
    off = _tiered_parts(cov, params=DetectionParams(p_suspect=0.9), n_networks=1)
    assert set(off["tier"]) == {"confirmed"}


def test_union_cache_unions_each_list_of_shapes_once() -> None:
    from dcm.analysis.coverage import _discs, _UnionCache

    discs = list(_discs(np.array([0.0, east(800), east(5000)]), np.zeros(3), np.full(3, 600.0)))
    unions = _UnionCache()
    both = unions.union(discs[:2])
    assert shapely.equals_exact(both, shapely.union_all(discs[:2]), tolerance=0)
    assert unions.union(list(discs[:2])) is both  # the same shapes again: no new union
    assert unions.union(discs[1::-1]) is not both  # another order is another union
    # One shape is unioned too (GEOS may re-node it), as shapely.union_all does.
    one = unions.union(discs[2:])
    assert shapely.equals_exact(one, shapely.union_all(discs[2:]), tolerance=0)
    assert shapely.to_wkb(one) == shapely.to_wkb(shapely.union_all(discs[2:]))


def test_coverage_outages_reuse_unions_with_the_same_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A down site beside an up one for several windows while the up site's reach
    # changes: the same parts as when every union is computed anew.
    import dcm.analysis.coverage as coverage

    cov = CoverageInput(
        lon=np.array([0.0, east(900), east(1800)]),
        lat=np.zeros(3),
        network=np.array([0, 0, 1]),
        reach=np.array([[700.0] * 4, [600.0, 650.0, 600.0, 700.0], [800.0] * 4]),
        p=np.array([[0.99, 0.99, 0.99, 0.2], [0.01] * 4, [0.01] * 4]),
    )
    parts = coverage_outages(cov, params=DetectionParams(), n_networks=2)
    fresh = []

    class NoReuse(coverage._UnionCache):
        def union(self, geoms: list[shapely.Geometry]) -> shapely.Geometry:
            fresh.append(len(geoms))
            return shapely.union_all(geoms)

    monkeypatch.setattr(coverage, "_UnionCache", NoReuse)
    again = coverage_outages(cov, params=DetectionParams(), n_networks=2)
    assert fresh and len(parts) == len(again) > 0
    assert (parts["col"].to_numpy() == again["col"].to_numpy()).all()
    assert (
        shapely.to_wkb(parts["geometry"].to_numpy()).tolist()
        == shapely.to_wkb(again["geometry"].to_numpy()).tolist()
    )


def test_tiers_sharing_discs_and_unions_give_the_parts_of_fresh_ones() -> None:
    from dcm.analysis.coverage import ShapeCache

    # Confirmed (p >= 0.9) and suspected (0.5 <= p < 0.9) sites among up ones of two
    # networks, over three windows.
    cov = CoverageInput(
        lon=np.array([east(x) for x in (0, 900, 1800, 2700, 600)]),
        lat=np.zeros(5),
        network=np.array([0, 0, 0, 0, 1]),
        reach=np.array([[700.0] * 3, [650.0, 700.0, 650.0], [700.0] * 3, [600.0] * 3, [900.0] * 3]),
        p=np.array(
            [[0.99] * 3, [0.01] * 3, [0.7, 0.7, 0.01], [0.95, 0.6, 0.6], [0.01, 0.01, 0.99]]
        ),
    )
    params = DetectionParams()
    shapes = ShapeCache(cov)
    tiers = [
        coverage_outages(cov, params=params, n_networks=2, shapes=shapes),
        coverage_outages(cov, params=params, n_networks=2, p_min=0.5, p_max=0.9, shapes=shapes),
    ]
    fresh = [
        coverage_outages(cov, params=params, n_networks=2),
        coverage_outages(cov, params=params, n_networks=2, p_min=0.5, p_max=0.9),
    ]
    assert len(tiers[0]) and len(tiers[1])
    for shared, alone in zip(tiers, fresh, strict=True):
        assert shared[["layer", "col", "p", "reported"]].equals(
            alone[["layer", "col", "p", "reported"]]
        )
        assert (
            shapely.to_wkb(shared["geometry"].to_numpy()).tolist()
            == shapely.to_wkb(alone["geometry"].to_numpy()).tolist()
        )
    # A cache of other sites is not used.
    other = CoverageInput(**{**cov.__dict__, "lon": cov.lon + 0.01})
    moved = coverage_outages(other, params=params, n_networks=2, shapes=shapes)
    assert not shapely.equals(moved["geometry"].iloc[0], tiers[0]["geometry"].iloc[0])


def _clusters_whole_list(
    a: np.ndarray,
    b: np.ndarray,
    dab: np.ndarray,
    same_net: np.ndarray,
    down: np.ndarray,
    reach: np.ndarray,
    server: np.ndarray,
    blocks: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The clusters as coverage_outages found them before: tests over every pair."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    from dcm.analysis.coverage import _groups

    meets = (dab < reach[a] + reach[b]) & server[a] & server[b] & down[a]
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
    up_same = _groups(label[pos[a[near & same_net]]], b[near & same_net], len(members))
    up_other = _groups(label[pos[a[near & ~same_net]]], b[near & ~same_net], len(members))
    return members, up_same, up_other


@pytest.mark.parametrize("seed", range(6))
def test_clusters_from_the_down_sites_pairs_are_those_of_every_pair(seed: int) -> None:
    from scipy.spatial import cKDTree

    from dcm.analysis.coverage import _clusters

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    xy = rng.uniform(0, 20_000, (n, 2))
    network = rng.integers(0, 3, n)
    reach = rng.choice([0.0, 300.0, 1000.0, 2500.0], n)
    server = reach > 0
    # Down shares from one site to all, the rest blocking or not (undecided).
    down = server & (rng.random(n) < [0.0, 0.05, 0.3, 1.0, 0.5, 0.1][seed])
    down[np.flatnonzero(server)[:1]] = True  # coverage_outages skips windows without
    blocks = server & ~down & (rng.random(n) < 0.8)
    pairs = cKDTree(xy).query_pairs(5000.0, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    a, b = np.concatenate([i, j]), np.concatenate([j, i])
    dab = np.hypot(*(xy[a] - xy[b]).T)
    same_net = network[a] == network[b]
    args = (a, b, dab, same_net, down, reach, server, blocks)
    got, want = _clusters(*args), _clusters_whole_list(*args)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        for x, y in zip(g, w, strict=True):
            assert x.dtype == y.dtype and x.tolist() == y.tolist()
    assert np.sort(np.concatenate(got[0])).tolist() == np.flatnonzero(down).tolist()
    if seed == 3:  # every server down: clusters, and nothing blocks
        assert len(got[0]) and not any(len(u) for u in got[1] + got[2])


def test_clusters_of_no_pairs() -> None:
    from dcm.analysis.coverage import _clusters

    none = np.empty(0, dtype=np.int64)
    down = np.array([True, False, True])
    args = (none, none, np.empty(0), np.empty(0, bool), down, np.full(3, 500.0))
    got = _clusters(*args, np.ones(3, bool), ~down)
    want = _clusters_whole_list(*args, np.ones(3, bool), ~down)
    assert [m.tolist() for m in got[0]] == [m.tolist() for m in want[0]] == [[0], [2]]
    assert [u.tolist() for u in got[1] + got[2]] == [[]] * 4
