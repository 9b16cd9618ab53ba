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


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["b", None, "a", "b", ""], dtype="string"),
        pd.Series(["b", None, "a", "b"], dtype=object),
        pd.Series([3, 1, 3], dtype="Int64"),
        pd.Series([], dtype="string"),
    ],
)
def test_device_codes_equal_factorize(values: pd.Series) -> None:
    """Codes (-1: missing) and names as strings, first seen first, as pd.factorize
    gives them, whatever the column's type."""
    from dcm.analysis.baseline import device_codes

    codes, names = device_codes(pd.DataFrame({"device": values}))
    want_codes, uniques = pd.factorize(values)
    assert codes.dtype == np.int64 and names.dtype == object
    assert np.array_equal(codes, want_codes)
    assert list(names) == [str(u) for u in uniques]
    none, no_names = device_codes(pd.DataFrame({"x": values}))
    assert (none == -1).all() and len(none) == len(values) and no_names.size == 0


def test_union_names_keeps_first_seen_order_and_maps_each_list() -> None:
    from dcm.analysis.counts import _union_names

    for lists in (
        [["a", "b"], ["b", "c"], []],
        [[], ["x"]],
        [[], []],
        [["q", "r"], [], ["r", "s"]],
    ):
        union, luts = _union_names([np.asarray(n, dtype=object) for n in lists])
        assert list(union) == list(dict.fromkeys(x for n in lists for x in n))
        assert [list(union[lut]) for lut in luts] == lists


@pytest.mark.parametrize("networks", [("740-0", "740-1"), (), ("", "740-1")])
def test_network_codes_equal_an_index_lookup(networks: tuple[str, ...]) -> None:
    from dcm.analysis.baseline import _network_codes

    names = pd.Series(["740-1", None, "740-0", "x", "", "740-1"], dtype="string")
    want = pd.Index(networks).get_indexer(pd.Index(names.fillna("")))
    got = _network_codes(names, networks)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert _network_codes(names.iloc[:0], networks).size == 0
