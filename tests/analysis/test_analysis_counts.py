"""Partial counts: chunks counted apart and merged equal the whole, in any order, and
the decisions on merged counts equal those on the whole frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcm import ingest
from dcm.analysis import DetectionParams, build_baseline, detect
from dcm.analysis.baseline import baseline_from_counts
from dcm.analysis.counts import (
    BaselineCounts,
    CellContext,
    EventCounts,
    _distinct_reporters,
    group_medians,
)
from dcm.analysis.detect import count_event


@pytest.fixture(scope="module")
def sample(sample_data: Path) -> dict[str, pd.DataFrame]:
    folder = sample_data / "stvincent"
    return {
        "cells": ingest.read_cells(folder / "cells.csv.gz").frame,
        "baseline": ingest.read_measurements(folder / "baseline.csv.gz").frame,
        "event": ingest.read_measurements(folder / "event.csv.gz").frame,
    }


def _shuffled_chunks(frame: pd.DataFrame, n: int, seed: int) -> list[pd.DataFrame]:
    """``n`` chunks of the rows in a random order (not in time order, so failures and
    the ok reports after them arrive in any order)."""
    order = np.random.default_rng(seed).permutation(len(frame))
    return [frame.iloc[part].reset_index(drop=True) for part in np.array_split(order, n)]


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_baseline_counts_of_chunks_merge_to_the_whole(sample: dict[str, pd.DataFrame]) -> None:
    params = DetectionParams(takeover_by_device=True)  # phones' habits counted too
    ctx = CellContext.of(sample["cells"])
    whole = BaselineCounts.from_frame(sample["baseline"], ctx, params)
    chunks = _shuffled_chunks(sample["baseline"], 5, seed=1)
    parts = [BaselineCounts.from_frame(c, ctx, params) for c in chunks]
    # Merged in two different groupings: associative.
    merged = BaselineCounts.merge_all(parts)
    nested = BaselineCounts.merge_all(
        [BaselineCounts.merge_all(parts[:2]), BaselineCounts.merge_all(parts[2:])]
    )
    for counts in (merged, nested):
        assert counts.networks == whole.networks
        assert (counts.rows, counts.ts_min, counts.ts_max) == (
            whole.rows,
            whole.ts_min,
            whole.ts_max,
        )
        for name in ("grid", "sightings", "signal", "download", "site_hours"):
            _same(getattr(counts, name), getattr(whole, name))
        assert np.array_equal(counts.reach, whole.reach)
        # Device codes differ (each chunk numbers its own): compare by name.
        got = counts.reporters.assign(device=counts.devices[counts.reporters["device"]])
        want = whole.reporters.assign(device=whole.devices[whole.reporters["device"]])
        key = ["site", "hour", "device"]
        _same(got.sort_values(key), want.sort_values(key))
        got = counts.place_devices.assign(device=counts.devices[counts.place_devices["device"]])
        want = whole.place_devices.assign(device=whole.devices[whole.place_devices["device"]])
        key = ["site", "h3", "device"]
        assert len(want) > 0
        _same(got.sort_values(key), want.sort_values(key))
    model = baseline_from_counts(merged, ctx, params)
    direct = build_baseline(sample["baseline"], sample["cells"], params)
    for name in ("grid", "sites", "cell_areas", "site_areas"):
        _same(getattr(model, name), getattr(direct, name))
    assert model.site_dispersion == direct.site_dispersion
    assert np.array_equal(model.hour_profile, direct.hour_profile)


@pytest.mark.parametrize("by_device", [False, True])
def test_detect_on_merged_event_counts_equals_the_whole_frame(
    sample: dict[str, pd.DataFrame], by_device: bool
) -> None:
    params = DetectionParams(takeover_by_device=by_device)
    model = build_baseline(sample["baseline"], sample["cells"], params)
    want = detect(model, sample["event"], params=params)
    chunks = _shuffled_chunks(sample["event"], 4, seed=2)
    counts = EventCounts.merge_all([count_event(model, c) for c in chunks])
    assert counts.rows == len(sample["event"])
    # Failure rows kept for "after the last ok" are only those later than their
    # group's last ok report: fewer than all failure reports.
    assert len(counts.late) < int(sample["event"]["status"].isin(["failed", "no_service"]).sum())
    assert counts.device_sightings.empty != by_device
    got = detect(model, counts, params=params)
    _same(got.grid, want.grid)
    _same(got.cells, want.cells)
    _same(got.cell_windows, want.cell_windows)
    assert got.outages.geometry.equals(want.outages.geometry)
    _same(got.outages.drop(columns="geometry"), want.outages.drop(columns="geometry"))
    assert got.stats == want.stats


def test_group_medians_equal_pandas() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    frame = pd.DataFrame(
        {
            "h3": rng.integers(0, 40, n),
            "network": rng.integers(0, 3, n),
            "value": rng.integers(-120, -50, n).astype("float64"),
        }
    )
    want = frame.groupby(["h3", "network"], as_index=False)["value"].median()
    counts = frame.groupby(["h3", "network", "value"], as_index=False).size()
    got = group_medians(counts.rename(columns={"size": "n"}))
    assert np.array_equal(got[["h3", "network"]].to_numpy(), want[["h3", "network"]].to_numpy())
    assert np.array_equal(got["median"].to_numpy(), want["value"].to_numpy())


@pytest.mark.parametrize("wide", [False, True])
def test_distinct_reporters_equal_drop_duplicates(wide: bool) -> None:
    """Packed into one int64 (narrow ranges) or not (ranges too wide to pack), the
    distinct (site, hour, device) rows are those of drop_duplicates, sorted."""
    rng = np.random.default_rng(4)
    n = 20_000
    site = rng.integers(0, 300, n)
    hour = 473_000 + rng.integers(0, 400, n)
    device = rng.integers(0, 2_000, n)
    if wide:
        # 10^6 sites x 2 x 10^5 hours x 3 x 10^7 devices > 2^62: not packed.
        site[0], hour[1], device[2] = 999_999, 273_000, 30_000_000
    want = (
        pd.DataFrame({"site": site, "hour": hour, "device": device})
        .drop_duplicates()
        .sort_values(["site", "hour", "device"], ignore_index=True)
    )
    got = _distinct_reporters(site, hour, device)
    assert len(got) < n
    assert list(got.dtypes) == ["int32"] * 3
    assert np.array_equal(got.to_numpy("int64"), want.to_numpy())


def _pandas_group(
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
    from dcm.analysis.grouping import group_frame as _group

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
        want = _pandas_group(frame[cols], keys, sums, maxes)
        got = _group(frame[cols], keys, sums, maxes)
        _same(got, want)
        assert list(got.dtypes) == list(frame[cols].dtypes)
        # A merge: tables grouped apart, concatenated, grouped again.
        parts = [_group(frame[cols].iloc[i::3], keys, sums, maxes) for i in range(3)]
        merged = _group(pd.concat(parts, ignore_index=True), keys, sums, maxes)
        _same(merged, _pandas_group(pd.concat(parts, ignore_index=True), keys, sums, maxes))


def test_key_groups_orders_like_lexsort() -> None:
    from dcm.analysis.grouping import key_groups

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
    order, starts = key_groups([np.zeros(0, "int64")])
    assert order.size == 0 and starts.size == 0
