"""Ground truth is consistent with the measurements and the mechanics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcm.simulate import Scenario, simulate
from dcm.simulate.geo import LocalProjection
from dcm.simulate.scenarios import scenario_spec

KEYS = ["radio", "mcc", "net", "area", "cell"]


@pytest.fixture(scope="module")
def quake() -> Scenario:
    return simulate("quake", seed=5, scale=0.1)


@pytest.fixture(scope="module")
def stvincent() -> Scenario:
    return simulate("stvincent", seed=1, scale=0.3)


def _with_cell_truth(sc: Scenario) -> pd.DataFrame:
    ok = sc.event[sc.event["status"] == "ok"].rename(columns={"mnc": "net"})
    ok = ok.astype(
        {"radio": "string", "mcc": "int64", "net": "int64", "area": "int64", "cell": "int64"}
    )
    return ok.merge(
        sc.truth.truth_cells, on=KEYS, how="left", validate="many_to_one", suffixes=("", "_cell")
    )


def test_no_ok_measurement_from_a_down_cell(quake: Scenario) -> None:
    joined = _with_cell_truth(quake)
    assert joined["site_id"].notna().all(), "every ok record names a real cell"
    down = (joined["timestamp"] >= joined["down_from"]) & (
        joined["up_at"].isna() | (joined["timestamp"] < joined["up_at"])
    )
    assert not down.any()
    assert (joined["network"] == joined["network_cell"]).all()
    # The scenario does have outages during the event, so the check can fail.
    assert quake.truth.sites["down_from"].notna().sum() > 5


def test_serving_site_is_within_its_range(quake: Scenario) -> None:
    joined = _with_cell_truth(quake)
    # GPS fixes only: cell / Wi-Fi positioned records may be hundreds of metres off.
    joined = joined[joined["accuracy_m"] < 100]
    sites = quake.truth.sites.set_index("site_id")
    s = sites.loc[joined["site_id"]]
    proj = LocalProjection(float(s["lon"].mean()), float(s["lat"].mean()))
    d = np.hypot(*(proj.to_xy(joined["lon"], joined["lat"]) - proj.to_xy(s["lon"], s["lat"])).T)
    # The true position is inside the range; the recorded one carries GPS error.
    assert (d <= s["range_m"].to_numpy() + 300).all()


def test_cells_of_a_site_share_its_fate(quake: Scenario) -> None:
    cells = quake.truth.truth_cells.merge(quake.truth.sites, on="site_id", suffixes=("", "_site"))
    for col in ("down_from", "up_at", "cause"):
        same = (cells[col] == cells[f"{col}_site"]) | (
            cells[col].isna() & cells[f"{col}_site"].isna()
        )
        assert same.all()
    assert cells.groupby("site_id")["down_from"].nunique(dropna=False).max() == 1


def test_shared_towers_fall_together() -> None:
    sc = simulate("cyclone", seed=2, scale=0.02)
    sites = sc.truth.sites
    lonlat = sites[["lon", "lat"]].round(6).astype(str).agg(",".join, axis=1)
    shared = sites[lonlat.duplicated(keep=False)].assign(tower=lonlat)
    assert shared["network"].nunique() > 1, "some rural towers carry several networks"
    hit = shared.groupby("tower")["down_from"].apply(lambda s: s.notna().nunique())
    assert (hit == 1).all(), "sites on one tower are all hit or all spared"


def test_outages_start_after_onset_and_follow_their_cause(quake: Scenario) -> None:
    sites = quake.truth.sites
    down = sites[sites["down_from"].notna()]
    assert (down["down_from"] >= quake.event_start).all()
    assert (down["down_from"] < quake.event_end).all()
    restored = down[down["up_at"].notna()]
    assert (restored["up_at"] > restored["down_from"]).all()
    assert set(down["cause"]) <= {"damage", "power"}
    assert (sites.loc[sites["down_from"].isna(), "cause"] == "").all()
    dur = (restored["up_at"] - restored["down_from"]) / pd.Timedelta("1h")
    power = restored["cause"] == "power"
    assert dur[power].max() <= 24.0 + 1e-6
    assert dur[~power].min() >= 48.0 - 1e-6
    delay = down.loc[down["cause"] == "power", "down_from"] - quake.event_start
    assert (delay >= pd.Timedelta(hours=4)).all()


def test_outages_are_where_the_hazard_is(stvincent: Scenario) -> None:
    sites = stvincent.truth.sites
    down = sites["down_from"].notna()
    assert sites.loc[down, "lat"].mean() > sites.loc[~down, "lat"].mean() + 0.05
    assert (sites.loc[down, "lat"] > 13.2).all()


def test_control_has_no_outages_and_matches_its_disaster_geography() -> None:
    control = simulate("stvincent-control", seed=1, scale=0.05)
    disaster = simulate("stvincent", seed=1, scale=0.05)
    assert control.truth.sites["down_from"].isna().all()
    assert (control.truth.sites["cause"] == "").all()
    assert control.hazard.empty
    assert (control.event["status"] == "ok").mean() > 0.97
    pd.testing.assert_frame_equal(
        control.truth.sites[["site_id", "lon", "lat", "range_m"]],
        disaster.truth.sites[["site_id", "lon", "lat", "range_m"]],
    )
    assert control.event_start == disaster.event_start


def test_served_agrees_with_measurements(quake: Scenario) -> None:
    ev = quake.event
    t = ev["timestamp"].iloc[len(ev) // 2]
    window = ev[(ev["timestamp"] - t).abs() < pd.Timedelta(minutes=30)]
    served = quake.truth.served(window["lon"].to_numpy(), window["lat"].to_numpy(), t)
    assert list(served.columns) == ["1-1", "1-2", "1-3"]
    own = served.to_numpy()[
        np.arange(len(window)), served.columns.get_indexer(window["network"].astype(str))
    ]
    ok = (window["status"] == "ok").to_numpy()
    no_service = (window["status"] == "no_service").to_numpy()
    assert own[ok].mean() > 0.95
    if no_service.any():
        assert own[no_service].mean() < 0.3


def test_served_drops_in_the_red_zone_after_onset(stvincent: Scenario) -> None:
    lon = np.full(50, -61.16)
    lat = np.linspace(13.30, 13.36, 50)
    before = stvincent.truth.served(lon, lat, stvincent.event_start - pd.Timedelta(hours=1))
    during = stvincent.truth.served(lon, lat, stvincent.event_start + pd.Timedelta(hours=36))
    assert before.to_numpy().mean() > during.to_numpy().mean()


def test_evacuation_empties_the_red_zone(stvincent: Scenario) -> None:
    spec = scenario_spec("stvincent")
    assert spec.hazard is not None
    red = spec.hazard.zones[0].polygon
    assert red is not None

    def rate(frame: pd.DataFrame, hours: float) -> float:
        import shapely

        inside = shapely.contains_xy(red, frame["lon"].to_numpy(), frame["lat"].to_numpy())
        return inside.sum() / hours

    base_h = (stvincent.event_start - stvincent.baseline_start) / pd.Timedelta("1h")
    event_h = (stvincent.event_end - stvincent.event_start) / pd.Timedelta("1h")
    # Residents only: field teams come in to test the networks.
    residents = stvincent.event[stvincent.event["device"].isin(stvincent.baseline["device"])]
    ratio_red = rate(residents, event_h) / rate(stvincent.baseline, base_h)
    ratio_all = (len(residents) / event_h) / (len(stvincent.baseline) / base_h)
    assert ratio_red / ratio_all < 0.2


def test_field_teams_report_from_the_hit_area_in_daylight(stvincent: Scenario) -> None:
    import shapely

    ev = stvincent.event
    per_device = ev.groupby("device").size()
    newcomers = per_device[~per_device.index.isin(stvincent.baseline["device"])]
    teams = newcomers[newcomers >= 20].index
    assert len(teams) == stvincent.truth.meta["counts"]["field_devices"]
    rows = ev[ev["device"].isin(teams)]
    assert len(rows) == pytest.approx(stvincent.truth.meta["counts"]["field_rows"], rel=0.02)
    assert (rows["timestamp"] >= stvincent.event_start + pd.Timedelta(hours=6)).all()
    local = (rows["timestamp"] - pd.Timedelta(hours=4)).dt.hour
    assert local.between(7, 17).all()
    hit = stvincent.hazard[stvincent.hazard["level"] != "green"].union_all()
    assert shapely.contains_xy(hit, rows["lon"], rows["lat"]).mean() > 0.9
    # They log every failed test, residents only some.
    assert (rows["status"] != "ok").mean() > (ev["status"] != "ok").mean()


def test_devices_report_a_few_times_a_day(stvincent: Scenario) -> None:
    per_day = stvincent.event.groupby("device").size() / 7
    assert 1 < per_day.median() < 6
    assert stvincent.event["device"].str.fullmatch(r"[0-9a-f]{16}").all()


def test_stale_opencellid_cells_are_never_heard(quake: Scenario) -> None:
    cells = quake.cells.set_index(["mcc", "net", "area", "cell"]).index
    truth = quake.truth.truth_cells.set_index(["mcc", "net", "area", "cell"]).index
    stale = cells.difference(truth)
    assert 0.01 * len(cells) < len(stale) < 0.06 * len(cells)
    assert truth.isin(cells).all()
    for frame in (quake.baseline, quake.event):
        ok = frame.dropna(subset=["cell"])
        heard = pd.MultiIndex.from_frame(
            ok[["mcc", "mnc", "area", "cell"]].astype("int64"), names=["mcc", "net", "area", "cell"]
        )
        assert not heard.isin(stale).any()
