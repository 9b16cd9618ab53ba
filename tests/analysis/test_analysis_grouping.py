"""Sort-based grouping equals pandas' groupby and merge, on fresh rows and on the
concatenated sorted tables merging gives it, including empty, one-row and NaN keys."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from dcm.analysis.grouping import group_frame, key_groups, match_rows, sorted_unique


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def _pandasgroup_frame(
    frame: pd.DataFrame, keys: list[str], sums: list[str], maxes: tuple[str, ...] = ()
) -> pd.DataFrame:
    """What ``_group`` replaced: pandas' sorted groupby, each column's dtype kept."""
    if frame.empty:
        return frame.reset_index(drop=True)
    agg = {c: "sum" for c in sums} | {c: "max" for c in maxes}
    out = frame.groupby(keys, as_index=False, sort=True).agg(agg)[list(frame.columns)]
    return out.astype(frame.dtypes.to_dict())


def _random_table(rng: np.random.Generator, n: int, *, wide: bool) -> pd.DataFrame:
    """Keys like the counts' (H3 cells, codes with -1, windows since the epoch, float
    values with 0.0/-0.0 and NaN), with sums and maxima of several dtypes."""
    from dcm.analysis.grid import points_to_cells

    h3 = points_to_cells(rng.uniform(12.9, 13.4, n), rng.uniform(-61.4, -61.1, n), 8)
    h3[rng.random(n) < 0.05] = 0  # outside the grid
    value = rng.integers(-5, 5, n).astype("float64")
    value[rng.random(n) < 0.1] = -0.0
    value[rng.random(n) < 0.05] = np.nan
    w = 480_000 + rng.integers(0, 72, n)
    if wide:
        w[0], w[1] = -(2**62), 2**62  # no packing: ranked, then sorted column by column
    last = rng.integers(0, 10**18, n)
    last[rng.random(n) < 0.2] = np.iinfo("int64").min
    far = rng.uniform(0, 5000, n)
    far[rng.random(n) < 0.2] = -np.inf
    far[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "h3": h3,
            "network": rng.integers(-1, 3, n),
            "w": w,
            "value": value,
            "n": rng.integers(0, 3, n).astype("int32"),
            "ok": rng.integers(0, 2, n),
            "last": last,
            "far": far,
        }
    )


@pytest.mark.parametrize("n", [0, 1, 2, 5000])
@pytest.mark.parametrize("wide", [False, True])
def test_group_equals_pandas_groupby(n: int, wide: bool) -> None:
    """The sort-based grouping gives pandas' groupby frame: the same rows, order,
    dtypes, first values of equal keys (0.0 before -0.0 or after), NaN keys dropped
    and NaN skipped in maxima; on fresh rows and on concatenated sorted tables (a
    merge)."""
    rng = np.random.default_rng(n + wide)
    frame = _random_table(rng, n, wide=wide and n > 1)
    cases = [
        (["h3", "network", "w"], ["n", "ok"], ("last", "far")),
        (["h3", "network", "value"], ["n"], ()),
        (["value"], ["n", "ok"], ("far",)),
        (["w", "h3"], ["n"], ("last",)),
    ]
    for keys, sums, maxes in cases:
        cols = [*keys, *sums, *maxes]
        want = _pandasgroup_frame(frame[cols], keys, sums, maxes)
        got = group_frame(frame[cols], keys, sums, maxes)
        _same(got, want)
        assert list(got.dtypes) == list(frame[cols].dtypes)
        # A merge: tables grouped apart, concatenated, grouped again.
        parts = [group_frame(frame[cols].iloc[i::3], keys, sums, maxes) for i in range(3)]
        merged = group_frame(pd.concat(parts, ignore_index=True), keys, sums, maxes)
        _same(merged, _pandasgroup_frame(pd.concat(parts, ignore_index=True), keys, sums, maxes))


def test_key_groups_orders_like_lexsort() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-3, 3, 1000)
    b = rng.normal(size=1000).round(1)
    c = rng.integers(0, 2**62, 1000)  # too wide to pack with the others
    # Five columns of 10^4 distinct values: even their ranks do not pack (10^20 > 2^63).
    many = [rng.permutation(10_000) % (10_000 - i) for i in range(5)]
    for columns in ([a], [a, b], [b, a, c], [c, c], many):
        order, starts = key_groups(columns)
        want = np.lexsort(columns[::-1])
        assert np.array_equal(order, want)  # both stable
        keys = np.column_stack(columns)[order]
        change = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]
        assert np.array_equal(starts, np.flatnonzero(change))
        # In any order within groups: the same groups, each with the same rows.
        loose, loose_starts = key_groups(columns, stable=False)
        assert np.array_equal(loose_starts, starts)
        bounds = np.append(starts, len(order))
        for a, b in itertools.pairwise(bounds):
            assert np.array_equal(np.sort(loose[a:b]), order[a:b])
    order, starts = key_groups([np.zeros(0, "int64")])
    assert order.size == 0 and starts.size == 0


@pytest.mark.parametrize("n_query", [0, 1, 3000])
def test_match_rows_equals_a_left_merge(n_query: int) -> None:
    rng = np.random.default_rng(n_query)
    grid = (
        pd.DataFrame(
            {
                "h3": rng.integers(0, 50, 400),
                "network": rng.integers(-1, 3, 400),
                "w": rng.integers(480_000, 480_010, 400),
            }
        )
        .drop_duplicates(ignore_index=True)
        .sample(frac=1.0, random_state=1, ignore_index=True)  # in no order
    )
    query = pd.DataFrame(
        {
            "h3": rng.integers(0, 60, n_query),
            "network": rng.integers(-1, 3, n_query),
            "w": rng.integers(480_000, 480_012, n_query),
        }
    )
    keys = ["h3", "network", "w"]
    want = query.merge(grid.reset_index(), on=keys, how="left")["index"]
    got = match_rows([grid[k].to_numpy() for k in keys], [query[k].to_numpy() for k in keys])
    assert np.array_equal(got, want.fillna(-1).to_numpy("int64"))
    if n_query > 1:
        assert (got == -1).any() and (got >= 0).any()
    none = match_rows([grid[k].to_numpy()[:0] for k in keys], [query[k].to_numpy() for k in keys])
    assert np.array_equal(none, np.full(n_query, -1))


def test_sorted_unique_equals_np_unique() -> None:
    rng = np.random.default_rng(6)
    for values in (
        rng.integers(0, 2**62, 1000),
        rng.integers(0, 5, 1000).astype("uint64"),
        np.array([1.0, np.nan, -0.0, 0.0, np.nan, 2.0]),
        np.zeros(0, "int64"),
        np.array([7]),
    ):
        got, want = sorted_unique(values), np.unique(values)
        assert got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=values.dtype.kind == "f")
