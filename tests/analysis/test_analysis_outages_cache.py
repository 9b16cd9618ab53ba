"""The overlap cache of outage tracking: keyed by shape values, same numbers as GEOS."""

from __future__ import annotations

import numpy as np
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
