"""Conditions of real disasters, as parameters of the scenario simulator."""

from __future__ import annotations

import json
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from dcm.errors import ParameterError
from dcm.simulate import Conditions, Scenario, load_truth, simulate, write_scenario
from dcm.simulate.geo import LocalProjection, pixel_centres
from dcm.simulate.scenarios import scenario_spec
from dcm.simulate.truth import sector_of

KEYS = ["radio", "mcc", "net", "area", "cell"]


def _hours(sc: Scenario) -> float:
    return (sc.event_start - sc.baseline_start) / pd.Timedelta(hours=1)


def _ok_with_cell_truth(frame: pd.DataFrame, sc: Scenario) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"].rename(columns={"mnc": "net"})
    ok = ok.astype(
        {"radio": "string", "mcc": "int64", "net": "int64", "area": "int64", "cell": "int64"}
    )
    return ok.merge(
        sc.truth.truth_cells, on=KEYS, how="left", validate="many_to_one", suffixes=("", "_cell")
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"density": 0.01}, "density"),
        ({"density": 6}, "density"),
        ({"onset_hour": 25}, "onset_hour"),
        ({"outage_hours": (0.1, 5)}, "outage_hours"),
        ({"outage_hours": (5, 1)}, "greater"),
        ({"outage_hours": (1,)}, "two numbers"),
        ({"power_delay_h": (-1, 5)}, "power_delay_h"),
        ({"sector_share": 1.5}, "sector_share"),
        ({"clustering": 0.5}, "clustering"),
        ({"bbox": (1, 2, 0, 3), "cells_from": "x.csv"}, "bbox"),
        ({"bbox": (0, 0, 1, 1)}, "together"),
        ({"cells_from": "x.csv"}, "together"),
    ],
)
def test_out_of_range_conditions_are_refused(kwargs: dict, words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        Conditions(**kwargs)


def test_conditions_are_recorded_as_json() -> None:
    cond = Conditions(density=0.2, outage_hours=(1, 300), sector_share=0.25)
    assert json.loads(json.dumps(cond.as_dict())) == {
        "density": 0.2,
        "onset_hour": None,
        "outage_hours": [1.0, 300.0],
        "power_delay_h": None,
        "sector_share": 0.25,
        "clustering": 1.0,
        "cells_from": None,
        "bbox": None,
    }
    sc = simulate("control", seed=1, scale=0.01, conditions=cond)
    assert sc.truth.meta["conditions"] == cond.as_dict()


def test_default_conditions_leave_the_scenario_unchanged() -> None:
    plain = simulate("quake", seed=5, scale=0.02)
    same = simulate("quake", seed=5, scale=0.02, conditions=Conditions())
    assert "conditions" not in same.truth.meta
    assert plain.truth.meta == same.truth.meta
    pd.testing.assert_frame_equal(plain.event, same.event)
    pd.testing.assert_frame_equal(plain.truth.truth_cells, same.truth.truth_cells)


@pytest.mark.parametrize("density", [0.03, 0.1, 1.0])
def test_density_sets_baseline_reports_per_site_hour(density: float) -> None:
    sc = simulate("cyclone", seed=3, conditions=Conditions(density=density))
    per_site_hour = len(sc.baseline) / len(sc.truth.sites) / _hours(sc)
    assert per_site_hour == pytest.approx(density, rel=0.2)
    # The event keeps the scenario's own event / baseline volume ratio (its campaign).
    spec = scenario_spec("cyclone")
    assert len(sc.event) / len(sc.baseline) == pytest.approx(
        spec.event_rows / spec.baseline_rows, rel=0.05
    )


def test_sparse_data_keeps_the_day_cycle() -> None:
    sc = simulate("control", seed=2, conditions=Conditions(density=0.1))
    local = (sc.baseline["timestamp"] + pd.Timedelta(hours=-1)).dt.hour
    night = local.isin([2, 3, 4]).sum()
    day = local.isin([10, 11, 12]).sum()
    assert day > 5 * night > 0


@pytest.mark.parametrize("hour", [2.5, 14.0])
def test_onset_hour_is_honoured(hour: float) -> None:
    sc = simulate("quake", seed=4, scale=0.02, conditions=Conditions(onset_hour=hour))
    offset = pd.Timedelta(hours=sc.truth.meta["utc_offset_h"])
    local = sc.event_start + offset
    assert local.hour + local.minute / 60 == hour
    own = scenario_spec("quake").onset + offset
    assert local.normalize() == own.normalize(), "same local day"
    down = sc.truth.sites["down_from"].dropna()
    assert len(down) and (down >= sc.event_start).all()
    assert sc.truth.meta["onset"] == sc.event_start.isoformat()


def test_night_onset_has_few_reports_in_its_first_hours() -> None:
    def first_hours(hour: float) -> int:
        sc = simulate("quake", seed=4, scale=0.1, conditions=Conditions(onset_hour=hour))
        early = sc.event["timestamp"] < sc.event_start + pd.Timedelta(hours=3)
        return int(early.sum())

    assert first_hours(1.0) < 0.5 * first_hours(10.0)


def test_outage_durations_span_hours_to_the_whole_week() -> None:
    sc = simulate("cyclone", seed=2, scale=0.02, conditions=Conditions(outage_hours=(1, 400)))
    down = sc.truth.sites[sc.truth.sites["down_from"].notna()]
    restored = down[down["up_at"].notna()]
    dur = (restored["up_at"] - restored["down_from"]) / pd.Timedelta(hours=1)
    assert (dur >= 1 - 1e-6).all() and (dur <= 400).all()
    assert (dur < 6).any(), "short outages exist"
    # A log-uniform draw up to 400 h leaves many sites down at the end of the week.
    assert down["up_at"].isna().mean() > 0.15


def test_power_failures_start_within_the_given_delay() -> None:
    sc = simulate("quake", seed=6, scale=0.02, conditions=Conditions(power_delay_h=(2, 24)))
    sites = sc.truth.sites
    power = sites[sites["cause"] == "power"]
    assert len(power) > 10
    # A quake strikes everywhere at onset, so the delay is down_from - onset.
    delay = (power["down_from"] - sc.event_start) / pd.Timedelta(hours=1)
    assert delay.between(2 - 1e-6, 24 + 1e-6).all()
    assert delay.min() < 6 and delay.max() > 18


@pytest.fixture(scope="module")
def sectors() -> Scenario:
    return simulate("quake", seed=5, scale=0.2, conditions=Conditions(sector_share=1.0))


def test_sector_failures_take_down_only_that_sectors_cells(sectors: Scenario) -> None:
    sites = sectors.truth.sites
    down = sites[sites["down_from"].notna()]
    assert len(down) > 5 and (down["sector"] >= 0).all()
    assert (sites.loc[sites["down_from"].isna(), "sector"] == -1).all()
    cells = sectors.truth.truth_cells.merge(
        sites[["site_id", "sector", "down_from"]], on="site_id", suffixes=("", "_site")
    )
    hit = cells[cells["down_from_site"].notna()]
    # Cells of the failed sector are down exactly when their site is; the others never.
    assert hit["down_from"].notna().any()
    assert hit["down_from"].notna().sum() < len(hit)
    counts = sectors.truth.meta["counts"]
    assert counts["sites_sector"] == len(down)


def test_a_failed_sector_leaves_the_sites_other_sectors_serving(sectors: Scenario) -> None:
    sites = sectors.truth.sites
    down = sites[sites["down_from"].notna() & (sites["n_sectors"] > 1)].reset_index(drop=True)
    assert len(down) > 3
    index = sectors.truth.index
    row = index.sites.reset_index().set_index("site_id").loc[down["site_id"], "index"].to_numpy()
    # Points 30 m from the site, in the middle of each of its sectors, during its outage.
    t = (down["down_from"] + pd.Timedelta(minutes=1)).to_numpy(dtype="datetime64[ns]")
    checked = 0
    for sec in range(3):
        use = down["n_sectors"].to_numpy() > sec
        bearing = np.radians(
            down["azimuth0"].to_numpy() + (sec + 0.5) * 360 / down["n_sectors"].to_numpy()
        )
        xy = index.xy[row] + 30.0 * np.column_stack((np.sin(bearing), np.cos(bearing)))
        xy, rows_, t_ = xy[use], row[use], t[use].astype(np.int64)
        n_sec = down["n_sectors"].to_numpy()[use]
        assert (sector_of(xy, index.xy[rows_], index.azimuth0[rows_], n_sec) == sec).all()
        for network in index.networks:
            of = down["network"].to_numpy()[use] == network
            if not of.any():
                continue
            serving, _ = index.serving(xy[of], t_[of], network)
            failed = down["sector"].to_numpy()[use][of] == sec
            assert (serving[failed] != rows_[of][failed]).all()
            assert (serving[~failed] == rows_[of][~failed]).all()
            checked += int((~failed).sum())
    assert checked > 3


def test_sector_failures_agree_with_measurements(sectors: Scenario) -> None:
    joined = _ok_with_cell_truth(sectors.event, sectors)
    assert joined["site_id"].notna().all()
    cell_down = (joined["timestamp"] >= joined["down_from"]) & (
        joined["up_at"].isna() | (joined["timestamp"] < joined["up_at"])
    )
    assert not cell_down.any(), "no ok report from a cell of a failed sector"
    # Spared sectors of a failed site keep reporting during its outage.
    sites = sectors.truth.sites.set_index("site_id")
    s = sites.loc[joined["site_id"].astype(str)]
    during = (joined["timestamp"].to_numpy() >= s["down_from"].to_numpy()) & (
        s["up_at"].isna().to_numpy() | (joined["timestamp"].to_numpy() < s["up_at"].to_numpy())
    )
    assert during.sum() > 10


def test_sector_failures_survive_the_files(tmp_path: Path) -> None:
    sc = simulate("stvincent", seed=1, scale=0.1, conditions=Conditions(sector_share=1.0))
    assert (sc.truth.sites["sector"] >= 0).sum() > 3
    paths = write_scenario(sc, tmp_path / "sc")
    back = load_truth(tmp_path / "sc")
    pd.testing.assert_frame_equal(back.sites, sc.truth.sites, check_dtype=False)
    pd.testing.assert_frame_equal(back.truth_cells, sc.truth.truth_cells, check_dtype=False)
    lon, lat = (
        a.ravel()
        for a in np.meshgrid(np.linspace(-61.28, -61.11, 60), np.linspace(13.12, 13.38, 60))
    )
    t = sc.event_start + pd.Timedelta(hours=20)
    pd.testing.assert_frame_equal(back.served(lon, lat, t), sc.truth.served(lon, lat, t))
    # The truth grid agrees with served() at mid-hour (same sector rules).
    grid = pd.read_parquet(paths["truth_grid.parquet"])
    hour = sc.event_start.floor("h") + pd.Timedelta(hours=20)
    rows, cols = np.nonzero(sc.population > 0)
    plon, plat = pixel_centres(sc.population_transform, rows, cols)
    served = sc.truth.served(plon, plat, hour + pd.Timedelta(minutes=30))
    pop = sc.population[rows, cols].astype("float64")
    hexes = [h3.latlng_to_cell(float(a), float(o), 8) for a, o in zip(plat, plon, strict=True)]
    for network in served.columns:
        share = (
            pd.DataFrame({"h3": hexes, "w": pop * served[network].to_numpy(), "p": pop})
            .groupby("h3")[["w", "p"]]
            .sum()
        )
        expected = (share["w"] / share["p"]).sort_index()
        got = grid[(grid["hour"] == hour) & (grid["network"] == network)].set_index("h3")
        got = got["served_share"].sort_index()
        assert list(got.index) == list(expected.index)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-5)
    assert (grid["served_share"] < 1).any()
    assert json.loads(paths["scenario.json"].read_text())["conditions"]["sector_share"] == 1.0


def _high_share(clustering: float) -> tuple[float, int]:
    """Share of failed sites with intensity >= 0.8, and the number failed (3 seeds)."""
    spec = scenario_spec("cyclone")
    assert spec.hazard is not None
    hits = []
    for seed in range(3):
        cond = Conditions(clustering=clustering)
        sc = simulate("cyclone", seed=seed, scale=0.01, conditions=cond)
        sites = sc.truth.sites
        proj = LocalProjection(*spec.region.centre)
        inten = spec.hazard.intensity(sites["lon"].to_numpy(), sites["lat"].to_numpy(), proj)
        hits.append(inten[sites["down_from"].notna().to_numpy()])
    failed = np.concatenate(hits)
    return float((failed >= 0.8).mean()), len(failed)


def test_clustering_concentrates_failures_where_the_hazard_is_strongest() -> None:
    share1, n1 = _high_share(1.0)
    share4, n4 = _high_share(4.0)
    assert share4 > share1 + 0.1
    assert 0.6 * n1 < n4 < 1.4 * n1, "about as many failures, placed differently"
