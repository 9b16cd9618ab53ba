"""The overlap cache of outage tracking: keyed by shape values, same numbers as GEOS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from dcm.analysis.outages import OverlapCache


def _shapes() -> tuple[np.ndarray, np.ndarray]:
    discs = shapely.buffer(shapely.points([0.0, 0.01, 0.05], [0.0, 0.0, 0.0]), 0.008)
    discs = shapely.set_precision(discs, 1e-6)
    return discs[[0, 0, 1]], discs[[1, 2, 2]]


def test_overlap_cache_matches_geos_on_new_objects_of_equal_shapes() -> None:
    a, b = _shapes()
    cache = OverlapCache()
    expected = shapely.area(shapely.intersection(a, b))
    assert expected[0] > 0 and expected[1] == 0  # overlapping discs, then apart
    np.testing.assert_array_equal(cache.areas(a, b), expected)
    # The next window rebuilds the same shapes as new objects: the cache answers.
    a2, b2 = _shapes()
    assert not any(x is y for x, y in zip(a2, a, strict=True))
    np.testing.assert_array_equal(cache.areas(a2, b2), expected)
    assert len(cache._area) == 3
    meets = cache.interiors_meet(a2, b2)
    np.testing.assert_array_equal(meets, shapely.relate_pattern(a, b, "T********"))


def test_overlap_cache_tells_precision_grids_apart() -> None:
    a, b = _shapes()
    cache = OverlapCache()
    cache.areas(a, b)
    # Same coordinates without the 1e-6 grid: a different GEOS input, computed anew.
    plain_a = shapely.from_wkb(shapely.to_wkb(a))
    plain_b = shapely.from_wkb(shapely.to_wkb(b))
    got = cache.areas(plain_a, plain_b)
    assert len(cache._area) == 6
    np.testing.assert_array_equal(got, shapely.area(shapely.intersection(plain_a, plain_b)))


def test_overlap_cache_on_no_pairs() -> None:
    empty = np.array([], dtype=object)
    cache = OverlapCache()
    assert cache.areas(empty, empty).shape == (0,)
    assert cache.interiors_meet(empty, empty).dtype == bool


def test_overlap_cache_intersects_as_a_tree_query_does() -> None:
    # Two discs that overlap, one apart, and one that only touches: touching counts as
    # intersecting, as STRtree.query(..., predicate="intersects") says.
    a, b = _shapes()
    touching = shapely.box(0.008, -0.001, 0.02, 0.001)
    left = np.array([*a, shapely.box(-0.01, -0.01, 0.0, 0.01)], dtype=object)
    right = np.array([*b, shapely.box(0.0, -0.01, 0.01, 0.01)], dtype=object)
    cache = OverlapCache()
    got = cache.intersects(left, right)
    pairs = shapely.STRtree(right).query(left, predicate="intersects").T.tolist()
    expected = [[i, i] in pairs for i in range(len(left))]
    np.testing.assert_array_equal(got, expected)
    assert got.tolist() == [True, False, False, True]
    # Equal shapes as new objects in the next window: answered from the cache.
    a2, b2 = _shapes()
    np.testing.assert_array_equal(cache.intersects(a2, b2), got[:3])
    assert len(cache._intersects) == 4
    assert bool(cache.intersects(np.array([touching]), np.array([a[0]]))[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_codes_are_what_factorizing_a_multiindex_gives(seed: int) -> None:
    from dcm.analysis.outages import pair_codes

    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(10**12, 10**12 + 50), 400)  # object ids: large ints
    reach = rng.choice([250.0, 500.0, 750.0, 1000.0], 400)
    for a, b in ((ids, ids[::-1].copy()), (rng.integers(0, 30, 400), reach)):
        want = pd.factorize(pd.MultiIndex.from_arrays([a, b]))[0]
        assert pair_codes(a, b).tolist() == want.tolist()
    assert pair_codes(np.empty(0, "int64"), np.empty(0)).size == 0


def _random_shapes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Outage-like shapes on a 1e-6 grid: unions and differences of discs (parts that
    share boundaries, holes, several parts), boxes on the grid lines."""
    x, y = rng.uniform(0, 0.05, (2, n))
    discs = shapely.buffer(shapely.points(x, y), rng.uniform(0.002, 0.01, n))
    discs = shapely.set_precision(discs, 1e-6)
    other = discs[rng.permutation(n)]
    kind = rng.integers(0, 4, n)
    out = np.where(kind == 0, discs, shapely.difference(discs, other, grid_size=1e-6))
    out = np.where(kind == 2, shapely.union(discs, other, grid_size=1e-6), out)
    x0, y0 = np.round(rng.uniform(0, 0.05, (2, n)), 3)
    boxes = shapely.box(x0, y0, x0 + 0.01, y0 + 0.01)
    return np.where(kind == 3, shapely.set_precision(boxes, 1e-6), out)


@pytest.mark.parametrize("seed", range(4))
def test_interiors_meet_is_the_de9im_pattern(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shapes = _random_shapes(rng, 200)
    parts = shapely.get_parts(shapes)
    a, b = shapes, np.concatenate([shapes[rng.permutation(200)], parts[:200]])[:200]
    # Pairs that intersect, as tracking asks about most of them.
    i, j = shapely.STRtree(np.concatenate([b, parts])).query(a, predicate="intersects")
    pool = np.concatenate([b, parts])
    a, b = a[i], pool[j]
    # Edge cases: a shape with itself and with its own parts, boxes sharing an edge or
    # a corner, a shape and the difference it was cut into (shared boundaries).
    left = shapely.box(0, 0, 1, 1)
    extra_a = [shapes[0], shapes[1], left, left, left, shapes[2]]
    extra_b = [
        shapes[0],
        shapely.get_parts(shapes[1])[0],
        shapely.box(1, 0, 2, 1),
        shapely.box(1, 1, 2, 2),
        shapely.box(0.5, 0.5, 1.5, 1.5),
        shapely.difference(shapely.buffer(shapes[2], 0.005), shapes[2], grid_size=1e-6),
    ]
    a = np.concatenate([a, np.array(extra_a, dtype=object)])
    b = np.concatenate([b, np.array(extra_b, dtype=object)])
    # And pairs apart.
    far = shapely.box(5, 5, 6, 6)
    a = np.concatenate([a, shapes[:5]])
    b = np.concatenate([b, np.array([far] * 5, dtype=object)])
    want = shapely.relate_pattern(a, b, "T********")
    # Both answers occur (touching neighbours are common among outage parts).
    assert want.any() and not want.all()
    fresh_a = shapely.from_wkb(shapely.to_wkb(a))  # not prepared, no grid
    got = OverlapCache().interiors_meet(a, b)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        OverlapCache().interiors_meet(fresh_a, b), shapely.relate_pattern(fresh_a, b, "T********")
    )
    assert got[-9:].tolist() == [False, False, True, False] + [False] * 5
