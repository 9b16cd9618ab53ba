"""simulate(): determinism, column contracts, periods and volume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcm.errors import ParameterError
from dcm.schema import CELL_COLUMNS, MEASUREMENT_COLUMNS, STATUSES, validate_frame
from dcm.simulate import SCENARIOS, Scenario, simulate
from dcm.simulate.geo import LocalProjection, hex_ids


@pytest.fixture(scope="module")
def stvincent() -> Scenario:
    return simulate("stvincent", seed=3, scale=0.1)


def test_scenario_names() -> None:
    assert set(SCENARIOS) >= {
        "quake",
        "cyclone",
        "eruption",
        "control",
        "stvincent",
        "stvincent-control",
    }


def test_same_seed_gives_identical_scenario(stvincent: Scenario) -> None:
    again = simulate("stvincent", seed=3, scale=0.1)
    pd.testing.assert_frame_equal(again.event, stvincent.event)
    pd.testing.assert_frame_equal(again.baseline, stvincent.baseline)
    pd.testing.assert_frame_equal(again.cells, stvincent.cells)
    pd.testing.assert_frame_equal(again.truth.sites, stvincent.truth.sites)
    np.testing.assert_array_equal(again.population, stvincent.population)


def test_other_seed_gives_other_scenario(stvincent: Scenario) -> None:
    other = simulate("stvincent", seed=4, scale=0.1)
    assert not other.event["lat"].equals(stvincent.event["lat"])
    assert not other.truth.sites["lon"].equals(stvincent.truth.sites["lon"])


def test_frames_follow_the_contracts(stvincent: Scenario) -> None:
    for frame in (stvincent.baseline, stvincent.event):
        validate_frame(frame, MEASUREMENT_COLUMNS, name="measurements")
        assert list(frame.columns) == list(MEASUREMENT_COLUMNS)
        assert frame["timestamp"].is_monotonic_increasing
        assert set(frame["status"].unique()) <= set(STATUSES)
        assert frame["measurement_id"].is_unique
        assert frame["lat"].between(-90, 90).all() and frame["lon"].between(-180, 180).all()
        assert (
            frame["network"] == frame["mcc"].astype("string") + "-" + frame["mnc"].astype("string")
        ).all()
        ok = frame["status"] == "ok"
        assert frame.loc[ok, ["radio", "area", "cell", "signal_dbm"]].notna().all().all()
        assert frame.loc[frame["status"] == "no_service", "cell"].isna().all()
        assert frame["accuracy_m"].between(3, 1500).all()
        assert 0.9 < (frame["accuracy_m"] <= 30).mean() < 0.99
    validate_frame(stvincent.cells, CELL_COLUMNS, name="cells")
    assert list(stvincent.cells.columns) == list(CELL_COLUMNS)
    assert not stvincent.cells.duplicated(["mcc", "net", "area", "cell"]).any()
    assert stvincent.cells["created"].dt.second.nunique() > 30


def test_periods_and_onset(stvincent: Scenario) -> None:
    assert stvincent.event_start == pd.Timestamp("2021-04-09T12:41:00Z")
    assert stvincent.event_end - stvincent.event_start == pd.Timedelta(days=7)
    assert stvincent.baseline["timestamp"].min() >= stvincent.baseline_start
    assert stvincent.baseline["timestamp"].max() < stvincent.event_start
    assert stvincent.event["timestamp"].min() >= stvincent.event_start
    assert stvincent.event["timestamp"].max() < stvincent.event_end


def test_stvincent_geography(stvincent: Scenario) -> None:
    lon, lat = stvincent.areas.union_all().centroid.coords[0]
    assert abs(lat - 13.25) < 0.03 and abs(lon + 61.19) < 0.03
    minx, miny, maxx, maxy = stvincent.areas.total_bounds
    proj = LocalProjection(lon, lat)
    size = proj.to_xy(np.array([minx, maxx]), np.array([miny, maxy]))
    assert 26_000 < size[1, 1] - size[0, 1] < 32_000  # ~29 km N-S
    assert 15_000 < size[1, 0] - size[0, 0] < 21_000  # ~18 km E-W
    assert set(stvincent.cells["network"].unique()) == {"360-110", "360-100"}
    assert 80_000 < stvincent.population.sum() < 130_000
    assert set(stvincent.hazard["level"]) == {"red", "orange", "green"}


def test_volume_follows_scale_and_campaign() -> None:
    small = simulate("stvincent", seed=1, scale=0.05)
    large = simulate("stvincent", seed=1, scale=0.2)
    assert len(large.event) == pytest.approx(4 * len(small.event), rel=0.05)
    hours_base = (large.event_start - large.baseline_start) / pd.Timedelta("1h")
    hours_event = (large.event_end - large.event_start) / pd.Timedelta("1h")
    ratio = (len(large.event) / hours_event) / (len(large.baseline) / hours_base)
    assert 1.5 < ratio < 2.5


def test_hour_of_day_cycle(stvincent: Scenario) -> None:
    local_hour = (stvincent.baseline["timestamp"] - pd.Timedelta(hours=4)).dt.hour
    counts = local_hour.value_counts()
    assert counts.loc[[2, 3, 4]].sum() * 4 < counts.loc[[10, 11, 12]].sum()


def test_unknown_scenario_and_bad_scale() -> None:
    with pytest.raises(ParameterError):
        simulate("meteor")
    with pytest.raises(ParameterError):
        simulate("control", scale=0)
    with pytest.raises(ParameterError):
        simulate("control", seed=-1)


def test_synthetic_scenarios_generate() -> None:
    for name in ("quake", "cyclone", "eruption", "control"):
        sc = simulate(name, seed=0, scale=0.02)
        assert len(sc.event) > 1_000
        assert set(sc.cells["network"].unique()) == {"1-1", "1-2", "1-3"}
        assert (sc.truth.sites["down_from"].notna().any()) == (name != "control")


def test_hex_ids_and_projection() -> None:
    assert list(hex_ids(np.array([0, 255, 2**63 - 1]))) == [
        "0000000000000000",
        "00000000000000ff",
        "7fffffffffffffff",
    ]
    proj = LocalProjection(-61.2, 13.2)
    lon, lat = proj.to_lonlat(*proj.to_xy(np.array([-61.1]), np.array([13.3])).T)
    assert lon[0] == pytest.approx(-61.1) and lat[0] == pytest.approx(13.3)
