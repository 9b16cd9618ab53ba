"""Detection on tiny hand-made frames with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import shapely

from dcm.analysis import Baseline, DetectionParams, build_baseline, detect
from dcm.analysis.evidence import calibrate
from dcm.schema import CELL_STATUS_COLUMNS, GRID_STATUS_COLUMNS, validate_frame

from .conftest import LAT0, LON0, cells_frame, concat, measurements

BASE = "2026-01-01T00:00Z"
EVENT = "2026-01-08T00:00Z"


def _grid_row(found, network: str, window: str) -> pd.Series:
    grid = found.grid
    sel = grid[(grid["network"] == network) & (grid["window_start"] == pd.Timestamp(window))]
    assert len(sel) == 1
    return sel.iloc[0]


def test_fifty_expected_none_observed_is_down(two_networks: pd.DataFrame) -> None:
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=50, network="358-10", cell=1, seed=1),
        measurements(start=BASE, hours=168, per_hour=50, network="358-20", cell=2, seed=2),
    )
    # Network 358-20 keeps reporting from the same place: people are there.
    event = measurements(start=EVENT, hours=3, per_hour=50, network="358-20", cell=2, seed=3)
    found = detect(build_baseline(baseline, two_networks), event)
    row = _grid_row(found, "358-10", EVENT)
    assert row["expected_count"] == pytest.approx(50, rel=0.2)
    assert row["observed_count"] == 0
    assert row["state"] == "down"
    assert row["p_down"] > 0.99
    assert _grid_row(found, "358-20", EVENT)["state"] == "up"
    # Not every network is down, so the place is up for "all networks".
    assert _grid_row(found, "all", EVENT)["state"] == "up"
    status = found.cells.set_index("cell")["status"]
    assert status[1] == "offline"
    assert status[2] == "online"
    validate_frame(found.grid, GRID_STATUS_COLUMNS, name="grid")
    validate_frame(found.cells, CELL_STATUS_COLUMNS, name="cells")


def test_a_fifth_of_a_report_expected_is_no_data(two_networks: pd.DataFrame) -> None:
    far = {"lat": LAT0 + 0.2, "lon": LON0 + 0.2}
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=0.2, network="358-10", cell=1, seed=1),
        measurements(start=BASE, hours=168, per_hour=20, network="358-20", cell=2, seed=2, **far),
    )
    event = measurements(start=EVENT, hours=2, per_hour=20, network="358-20", cell=2, seed=3, **far)
    found = detect(
        build_baseline(baseline, two_networks),
        event,
        windows=pd.DatetimeIndex([pd.Timestamp(EVENT)]),
    )
    row = _grid_row(found, "358-10", EVENT)
    assert row["expected_count"] == pytest.approx(0.2, rel=0.5)
    assert row["observed_count"] == 0
    assert row["state"] == "no_data"
    assert found.cells.set_index("cell")["status"][1] == "unknown"


def test_one_ok_report_naming_a_cell_puts_it_online(two_networks: pd.DataFrame) -> None:
    # Cell 1 was never heard in the baseline (its network served elsewhere).
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=5, network="358-20", cell=2, seed=2),
    )
    event = concat(
        measurements(start=EVENT, hours=2, per_hour=5, network="358-20", cell=2, seed=3),
        measurements(
            start="2026-01-08T01:10Z", hours=0.01, per_hour=100, network="358-10", cell=1, seed=4
        ).head(1),
    )
    found = detect(build_baseline(baseline, two_networks), event)
    intervals = found.cells[found.cells["cell"] == 1]
    at = intervals[
        (intervals["start"] <= pd.Timestamp("2026-01-08T01:10Z"))
        & (intervals["end"] > pd.Timestamp("2026-01-08T01:10Z"))
    ]
    assert at["status"].tolist() == ["online"]
    # The network now serves that place, whatever the baseline said.
    assert _grid_row(found, "358-10", "2026-01-08T01:00Z")["state"] == "up"


def test_no_service_reports_make_a_place_down_without_silence() -> None:
    cells = cells_frame([("358-10", 1, LAT0, LON0), ("358-20", 2, LAT0, LON0)])
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=4, network="358-10", cell=1, seed=1),
        measurements(start=BASE, hours=168, per_hour=4, network="358-20", cell=2, seed=2),
    )
    event = concat(
        measurements(
            start=EVENT,
            hours=3,
            per_hour=4,
            network="358-10",
            cell=None,
            status="no_service",
            seed=3,
        ),
        measurements(start=EVENT, hours=3, per_hour=4, network="358-20", cell=2, seed=4),
    )
    found = detect(build_baseline(baseline, cells), event)
    row = _grid_row(found, "358-10", "2026-01-08T02:00Z")
    assert row["fail_count"] > 0
    assert row["state"] == "down"


def _two_site_week(cells: pd.DataFrame, *, per_hour: int) -> Baseline:
    """The baseline model of a week of two networks' sites, cells 1 (358-10) and 2
    (358-20), each heard ``per_hour`` times an hour."""
    return build_baseline(
        concat(
            measurements(
                start=BASE, hours=168, per_hour=per_hour, network="358-10", cell=1, seed=1
            ),
            measurements(
                start=BASE, hours=168, per_hour=per_hour, network="358-20", cell=2, seed=2
            ),
        ),
        cells,
    )


def test_calm_period_is_up_everywhere(two_networks: pd.DataFrame) -> None:
    # A campaign doubles the volume; nothing is down.
    event = concat(
        measurements(start=EVENT, hours=24, per_hour=20, network="358-10", cell=1, seed=3),
        measurements(start=EVENT, hours=24, per_hour=20, network="358-20", cell=2, seed=4),
    )
    found = detect(_two_site_week(two_networks, per_hour=10), event)
    assert set(found.grid["state"]) == {"up"}
    assert set(found.cells["status"]) == {"online"}
    assert found.outages.empty
    assert np.median(found.volume) == pytest.approx(2.0, rel=0.15)


def test_an_ok_report_ends_an_outage(two_networks: pd.DataFrame) -> None:
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=30, network="358-10", cell=1, seed=1),
        measurements(start=BASE, hours=168, per_hour=30, network="358-20", cell=2, seed=2),
    )
    event = concat(
        measurements(start=EVENT, hours=8, per_hour=30, network="358-20", cell=2, seed=3),
        # 358-10 is back at 05:00.
        measurements(
            start="2026-01-08T05:00Z", hours=3, per_hour=30, network="358-10", cell=1, seed=4
        ),
    )
    found = detect(build_baseline(baseline, two_networks), event)
    states = found.grid[found.grid["network"] == "358-10"].set_index("window_start")["state"]
    assert states[pd.Timestamp("2026-01-08T04:00Z")] == "down"
    assert states[pd.Timestamp("2026-01-08T05:00Z")] == "up"
    # The first hour of silence is not yet enough; from then on the cell is offline
    # until the first report naming it.
    cell1 = found.cells[found.cells["cell"] == 1].sort_values("start")
    assert cell1["status"].tolist()[-2:] == ["offline", "online"]
    assert cell1["start"].iloc[-2] <= pd.Timestamp("2026-01-08T01:00Z")
    assert cell1["end"].iloc[-2] == pd.Timestamp("2026-01-08T05:00Z")


def test_only_requested_windows_are_judged(two_networks: pd.DataFrame) -> None:
    event = measurements(start=EVENT, hours=10, per_hour=10, network="358-20", cell=2, seed=3)
    model = _two_site_week(two_networks, per_hour=10)
    one = pd.DatetimeIndex([pd.Timestamp("2026-01-08T06:00Z")])
    found = detect(model, event, windows=one)
    assert set(found.grid["window_start"]) == set(one)
    full = detect(model, event)
    # The same window judged alone or in a full run gives the same answer.
    a = found.grid.set_index(["h3", "network"])["p_down"]
    b = full.grid[full.grid["window_start"] == one[0]].set_index(["h3", "network"])["p_down"]
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())


def test_grid_rows_handed_to_a_sink_are_the_grid_in_order(two_networks: pd.DataFrame) -> None:
    event = measurements(start=EVENT, hours=10, per_hour=10, network="358-20", cell=2, seed=3)
    model = _two_site_week(two_networks, per_hour=10)
    whole = detect(model, event)
    parts: list[pd.DataFrame] = []
    streamed = detect(model, event, grid_sink=parts.append)
    # Two parts a window: every window's network rows, then every window's "all" rows.
    assert len(parts) == 2 * len(whole.windows)
    assert [p["network"].eq("all").all() for p in parts] == [False] * len(whole.windows) + [
        True
    ] * len(whole.windows)
    assert (whole.grid["network"] == "358-10").any() and (whole.grid["state"] == "down").any()
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole.grid)
    assert streamed.grid.empty
    assert streamed.grid.dtypes.to_dict() == whole.grid.dtypes.to_dict()
    pd.testing.assert_frame_equal(streamed.cells, whole.cells)
    pd.testing.assert_frame_equal(streamed.cell_windows, whole.cell_windows)


def test_evidence_worked_in_blocks_of_keys_is_the_same(
    two_networks: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    detect_module = sys.modules["dcm.analysis.detect"]  # dcm.analysis.detect is the function
    # Four places, two networks, no cell named: eight keys or more, in blocks of 3.
    places = [{"lat": LAT0 + 0.05 * i, "lon": LON0} for i in range(4)]
    baseline = concat(
        *(
            measurements(start=BASE, hours=168, per_hour=30, network=net, cell=None, seed=i, **at)
            for i, at in enumerate(places)
            for net in ("358-10", "358-20")
        )
    )
    # 358-10 falls silent in two of the places.
    event = concat(
        *(
            measurements(
                start=EVENT, hours=6, per_hour=30, network=net, cell=None, seed=9 + i, **at
            )
            for i, at in enumerate(places)
            for net in ("358-10", "358-20")
            if net == "358-20" or i % 2
        )
    )
    model = build_baseline(baseline, two_networks)
    whole = detect(model, event)
    monkeypatch.setattr(detect_module, "EVIDENCE_BLOCK_ROWS", 3)  # several blocks, one short
    blocks = detect(model, event)
    assert whole.grid["h3"].nunique() >= 4 and (whole.grid["state"] == "down").any()
    pd.testing.assert_frame_equal(blocks.grid, whole.grid, check_exact=True)
    pd.testing.assert_frame_equal(blocks.cells, whole.cells, check_exact=True)
    pd.testing.assert_frame_equal(blocks.outages, whole.outages, check_exact=True)


def _one_site_falls_silent(
    cells: pd.DataFrame, *, after_hours: int
) -> tuple[Baseline, pd.DataFrame]:
    """A week of two networks' sites (cells 1 and 2) at 50 reports an hour, then ten event
    hours in which 358-10's site falls silent after ``after_hours``."""
    event = concat(
        measurements(start=EVENT, hours=after_hours, per_hour=50, network="358-10", cell=1, seed=3),
        measurements(start=EVENT, hours=10, per_hour=50, network="358-20", cell=2, seed=4),
    )
    return _two_site_week(cells, per_hour=50), event


def test_no_server_probability_worked_in_blocks_of_windows_is_the_same(
    two_networks: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    detect_module = sys.modules["dcm.analysis.detect"]
    # 358-10's site falls silent after two hours: its grid cell has a server, then not.
    model, event = _one_site_falls_silent(two_networks, after_hours=2)
    whole = detect(model, event)
    assert len(whole.windows) == 10 and (whole.grid["state"] == "down").any()
    monkeypatch.setattr(detect_module, "NO_SERVER_BLOCK_WINDOWS", 3)  # 3, 3, 3 and 1
    blocks = detect(model, event)
    pd.testing.assert_frame_equal(blocks.grid, whole.grid, check_exact=True)
    pd.testing.assert_frame_equal(blocks.cells, whole.cells, check_exact=True)


@pytest.mark.parametrize("block", [1, 3, 64])
def test_grid_rows_gathered_in_blocks_of_windows_are_the_same(
    two_networks: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    import sys

    detect_module = sys.modules["dcm.analysis.detect"]
    model, event = _one_site_falls_silent(two_networks, after_hours=3)
    monkeypatch.setattr(detect_module, "GRID_ROWS_BLOCK_WINDOWS", 1)  # window by window
    whole = detect(model, event)
    # Some windows only, not adjacent: their columns are not the arrays' first ones.
    some = whole.windows[[1, 4, 5, 9]]
    few = detect(model, event, windows=some)
    monkeypatch.setattr(detect_module, "GRID_ROWS_BLOCK_WINDOWS", block)
    assert len(whole.windows) == 10 and (whole.grid["state"] == "down").any()
    pd.testing.assert_frame_equal(detect(model, event).grid, whole.grid, check_exact=True)
    pd.testing.assert_frame_equal(
        detect(model, event, windows=some).grid, few.grid, check_exact=True
    )
    assert set(few.grid["window_start"]) == set(some)


def test_window_columns_are_the_columns_asked_for() -> None:
    import sys

    window_columns = sys.modules["dcm.analysis.detect"]._window_columns
    rng = np.random.default_rng(5)
    arrays = {"a": rng.random((7, 20)), "b": rng.integers(0, 4, (7, 20)).astype("int8")}
    for cols in (np.arange(20), np.array([19, 2, 3, 11]), np.array([], dtype="int64")):
        got = list(window_columns(arrays, cols))
        assert [j for j, _ in got] == list(range(cols.size))
        for j, column in got:
            for name, v in arrays.items():
                assert column[name].flags["C_CONTIGUOUS"]
                assert column[name].dtype == v.dtype
                assert np.array_equal(column[name], v[:, cols[j]])
    assert list(window_columns({"a": np.empty((0, 3))}, np.arange(3)))[2][1]["a"].size == 0


def test_params_are_validated() -> None:
    from dcm.errors import ParameterError

    with pytest.raises(ParameterError):
        DetectionParams(resolution=3)
    with pytest.raises(ParameterError):
        DetectionParams(p_up=0.95, p_down=0.9)
    with pytest.raises(ParameterError):
        DetectionParams(window="-1h")
    with pytest.raises(ParameterError, match="takeover_per_window"):
        DetectionParams(takeover_per_window=0.0)
    with pytest.raises(ParameterError, match="prior_silence_z"):
        DetectionParams(prior_silence_z=-1.0)
    with pytest.raises(ParameterError, match="prior_silence_span"):
        DetectionParams(prior_silence_span="soon")
    with pytest.raises(ParameterError, match="prior_silence_activity"):
        DetectionParams(prior_silence_activity=1.5)


def test_outage_is_the_failed_sites_reach_minus_its_neighbours() -> None:
    """Site S1 fails, S2 (2 km east) stays up: the outage follows their reach, not hexes."""
    km = 1000 / (111_320 * np.cos(np.radians(LAT0)))  # degrees of longitude per km

    def at(x_km: float, y_km: float = 0.0) -> dict[str, float]:
        return {"lat": LAT0 + y_km / 110.574, "lon": LON0 + x_km * km}

    s1 = [at(x, y) for x in (-1.5, -1.0, -0.5, 0.0, 0.5, 0.9) for y in (-0.5, 0.0, 0.5)]
    s2 = [at(x, y) for x in (1.1, 1.5, 2.0, 2.5, 3.0, 3.5) for y in (-0.5, 0.0, 0.5)]
    cells = cells_frame(
        [("358-10", 1, LAT0, LON0), ("358-10", 2, LAT0, LON0 + 2 * km), ("358-20", 9, LAT0, LON0)]
    )

    def reports(start: str, hours: float, places, network: str, cell: int | None, rate: float):
        return [
            measurements(
                start=start, hours=hours, per_hour=rate, network=network, cell=cell, seed=i, **p
            )
            for i, p in enumerate(places)
        ]

    baseline = concat(
        *reports(BASE, 168, s1, "358-10", 1, 4),
        *reports(BASE, 168, s2, "358-10", 2, 4),
        *reports(BASE, 168, s1 + s2, "358-20", 9, 2),
    )
    # S1 goes silent; people there keep using the other network; S2 keeps serving.
    event = concat(
        *reports(EVENT, 6, s2, "358-10", 2, 4),
        *reports(EVENT, 6, s1 + s2, "358-20", 9, 2),
    )
    found = detect(build_baseline(baseline, cells), event)
    last = found.outages[found.outages["window_start"] == found.windows[-1]]
    net = last[last["network"] == "358-10"]
    assert len(net) == 1 and (net["hexes"] == 0).all()  # drawn from coverage
    shape = net.geometry.iloc[0]
    inside = shapely.contains_xy(shape, [at(-1.0)["lon"], at(0.0)["lon"]], LAT0)
    assert inside.all()
    # S2 reaches 1.5 km west of itself: 0.9 km east of S1 is taken over.
    assert not shapely.contains_xy(shape, at(0.9)["lon"], LAT0)
    assert not shapely.contains_xy(shape, at(2.0)["lon"], LAT0)
    # The other network serves everywhere: degraded, nobody is cut off.
    assert set(last.loc[last["network"] == "all", "severity"]) == {"degraded"}
    # Asked to wait for three offline windows, it draws nothing in the first two.
    slow = detect(
        build_baseline(baseline, cells), event, params=DetectionParams(coverage_confirm_windows=3)
    )
    first = found.outages["window_start"].min()
    assert slow.outages["window_start"].min() >= max(
        first, found.windows[0] + pd.Timedelta(hours=2)
    )


@pytest.mark.parametrize(("devices", "offline"), [(1, False), (50, True)])
def test_silence_of_a_site_weighs_by_its_reporters(
    two_networks: pd.DataFrame, devices: int, offline: bool
) -> None:
    """Twelve sightings due and none seen: telling when fifty people report the site
    every day, not when one phone does (it may simply be switched off)."""
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=1, network="358-10", cell=1, seed=1),
        measurements(start=BASE, hours=168, per_hour=4, network="358-20", cell=2, seed=2),
    )
    baseline["device"] = pd.array([f"d{i % devices}" for i in range(len(baseline))], dtype="string")
    event = measurements(start=EVENT, hours=12, per_hour=4, network="358-20", cell=2, seed=3)
    model = build_baseline(baseline, two_networks)
    site = model.sites.set_index("site_id")["reporters"]
    assert site["358-10-S1"] == pytest.approx(min(devices, 24), rel=0.3)
    found = detect(model, event)
    last = found.cells[found.cells["end"] == found.cells["end"].max()].set_index("cell")
    assert (last.loc[1, "status"] == "offline") == offline


def test_silent_sibling_of_a_down_site_does_not_block() -> None:
    from types import SimpleNamespace

    from dcm.analysis.detect import _silent_siblings

    # A (LTE) and B (GSM): one network, 300 m apart, two radios of one mast; C: another
    # network at A; D: A's network 2 km away; E: an LTE site of A's network 300 m away
    # (a radio in common with A: another mast). A is down in window 1, not in window 0.
    dlat = 300 / 111_320
    sites = pd.DataFrame(
        {
            "lon": [LON0, LON0, LON0, LON0, LON0],
            "lat": [LAT0, LAT0 + dlat, LAT0, LAT0 + 2_000 / 111_320, LAT0 - dlat],
            "network": [0, 0, 1, 0, 0],
        }
    )
    cells = pd.DataFrame({"radio": ["LTE", "GSM", "LTE", "GSM", "LTE"]})
    no_areas = pd.DataFrame({"site": [], "h3": [], "count": []})
    baseline = SimpleNamespace(
        sites=sites, cells=cells, cell_site=np.arange(5), site_areas=no_areas
    )
    p = np.zeros((5, 2))
    p[0] = [0.2, 0.97]
    params = DetectionParams()
    # Everyone last heard in window 0: B has said nothing since A went quiet.
    heard = np.zeros((5, 2), dtype="int64")
    got = _silent_siblings(baseline, p, heard, params)  # type: ignore[arg-type]
    assert np.argwhere(got).tolist() == [[1, 1]]
    # B heard in window 1, after A was last heard: it still serves, so it blocks.
    heard[1, 1] = 1
    assert not _silent_siblings(baseline, p, heard, params).any()  # type: ignore[arg-type]
    # Switched off: nothing changes.
    heard[1, 1] = 0
    off = DetectionParams(sibling_m=0.0)
    assert not _silent_siblings(baseline, p, heard, off).any()  # type: ignore[arg-type]


def test_takeover_leaves_out_reports_naming_a_sibling() -> None:
    from scipy.special import betaln

    from dcm.analysis.detect import _takeover

    # One grid cell: site 0 had 30 of the network's 50 baseline sightings there,
    # site 1 the other 20. Since then 5, 4 and 3 ok reports, all naming site 1.
    areas = pd.DataFrame({"site": [0, 1], "count": [30.0, 20.0], "share_of_hex": [0.6, 0.4]})
    key_idx = np.array([0, 0])
    ok = np.array([[5.0, 4.0, 3.0]])
    start = np.zeros((2, 3), dtype="int64")
    stop = np.broadcast_to(np.arange(1, 4), (2, 3))
    sightings = pd.DataFrame({"site": [1, 1, 1], "key": [0, 0, 0], "w": [0, 1, 2], "n": [5, 4, 3]})
    params = DetectionParams()
    none = (np.empty(0, dtype="int64"), np.empty(0, dtype="int64"))
    apart = _takeover(areas, key_idx, ok, start, stop, sightings, none, params)
    # Other masts: 12 reports named someone else in three windows; one per window counts
    # (a burst from one place is mostly one phone), against a share of Beta(30.5, 20.5).
    assert apart[0, 2] == pytest.approx(betaln(30.5, 20.5) - betaln(30.5, 23.5))
    every = DetectionParams(takeover_per_window=float("inf"))
    counted = _takeover(areas, key_idx, ok, start, stop, sightings, none, every)
    assert counted[0, 2] == pytest.approx(betaln(30.5, 20.5) - betaln(30.5, 32.5))
    # Siblings (two radios of one mast): reports naming the other say nothing.
    both = (np.array([0, 1]), np.array([1, 0]))
    together = _takeover(areas, key_idx, ok, start, stop, sightings, both, params)
    assert together[0].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("n_pairs", [1, 40])
def test_takeover_with_spans_ending_at_each_window_equals_any_stop(n_pairs: int) -> None:
    from dcm.analysis.detect import _takeover

    # More (site, grid cell) pairs than sites: the stop rows are taken per pair.
    rng = np.random.default_rng(n_pairs)
    n_site, n_key, n_win = 3, 12, 9
    areas = pd.DataFrame(
        {
            "site": rng.integers(0, n_site, n_pairs),
            "count": rng.integers(1, 40, n_pairs).astype("float64"),
            "share_of_hex": rng.uniform(0.1, 1.0, n_pairs),
        }
    )
    key_idx = rng.integers(0, n_key, n_pairs)
    ok = rng.poisson(1.5, (n_key, n_win)).astype("float64")
    start = np.minimum(rng.integers(0, n_win, (n_site, n_win)), np.arange(n_win))
    stop = np.broadcast_to(np.arange(1, n_win + 1), (n_site, n_win))
    sightings = pd.DataFrame(
        {"site": [1, 2], "key": [int(key_idx[0])] * 2, "w": [3, 4], "n": [2, 1]}
    )
    siblings = (np.array([0, 1]), np.array([1, 0]))
    params = DetectionParams()
    fast = _takeover(areas, key_idx, ok, start, stop, sightings, siblings, params)
    gathered = _takeover(areas, key_idx, ok, start, np.array(stop), sightings, siblings, params)
    assert np.array_equal(fast, gathered)
    assert (fast > 0).any()


def _habit_case(events: list[tuple[str, int]], start: np.ndarray) -> np.ndarray:
    """Takeover evidence of site 0 in one grid cell shared with site 1: phone "res"
    named site 0 twenty times in the baseline, phone "nb" site 1 twenty times.
    ``events``: (phone, window) reports naming site 1."""
    from dcm.analysis.detect import _device_takeover

    areas = pd.DataFrame(
        {"site": [0, 1], "h3": [10, 10], "count": [20.0, 20.0], "share_of_hex": [0.5, 0.5]}
    )
    habits = pd.DataFrame(
        {
            "site": [0, 1],
            "h3": [10, 10],
            "device": pd.Categorical(["res", "nb"]),
            "n": [20, 20],
        }
    )
    names = np.array(sorted({d for d, _ in events}), dtype=object)
    code = {d: i for i, d in enumerate(names)}
    seen = pd.DataFrame(
        {
            "site": [1] * len(events),
            "key": [0] * len(events),
            "w": [w for _, w in events],
            "device": [code[d] for d, _ in events],
        }
    )
    none = (np.empty(0, dtype="int64"), np.empty(0, dtype="int64"))
    out = _device_takeover(
        areas,
        np.array([0, 0]),
        seen,
        names,
        habits,
        np.array([0, 0]),
        start,
        none,
        DetectionParams(),
    )
    assert not out[1].any()  # reports naming site 1 say nothing against it
    return out[0]


def test_takeover_weighs_each_phone_by_its_habit() -> None:
    from scipy.special import betaln

    silent = np.zeros((2, 3), dtype="int64")
    # The resident who always used site 0 now names site 1: strong. The neighbour's
    # phone naming its usual site: almost nothing. The resident again: more, but less
    # than at first (its share is uncertain).
    got = _habit_case([("res", 0), ("nb", 1), ("res", 2)], silent)
    # Beta(20 + α·½, 0 + α·½): the site holds one phone of two there.
    alpha = DetectionParams().habit_prior
    resident = np.log((20.0 + alpha) / (alpha / 2))
    neighbour = np.log((20.0 + alpha) / (20.0 + alpha / 2))
    again = np.log((21.0 + alpha) / (1.0 + alpha / 2))
    assert got == pytest.approx([resident, resident + neighbour, resident + again + neighbour])
    assert again < resident
    # Site 0 heard in window 2: the span restarts and the reports before it leave it.
    heard = np.array([[0, 0, 3], [0, 0, 0]])
    assert _habit_case([("res", 0), ("nb", 1)], heard)[2] == 0.0
    # Two visitors never seen there: one beta-binomial on the phones' shares (site 0
    # holds 1 of the 2 phones), saturating, not two independent draws.
    visitors = _habit_case([("v1", 0), ("v2", 1)], silent)
    assert visitors[0] == pytest.approx(betaln(1.5, 1.5) - betaln(1.5, 2.5))
    assert visitors[1] == pytest.approx(betaln(1.5, 1.5) - betaln(1.5, 3.5))
    assert visitors[1] < 2 * visitors[0]


def test_a_phones_use_of_a_sibling_radio_does_not_count_against_the_site() -> None:
    from dcm.analysis.detect import _device_takeover

    # Sites 0 and 2: two radios of one mast (siblings); site 1 another mast. The phone
    # used site 0 ten times and site 2 ten times; now it names site 1.
    areas = pd.DataFrame(
        {
            "site": [0, 1, 2],
            "h3": [10] * 3,
            "count": [10.0, 5.0, 10.0],
            "share_of_hex": [0.4, 0.2, 0.4],
        }
    )
    habits = pd.DataFrame(
        {"site": [0, 2], "h3": [10, 10], "device": pd.Categorical(["p", "p"]), "n": [10, 10]}
    )
    seen = pd.DataFrame({"site": [1], "key": [0], "w": [0], "device": [0]})
    args = (areas, np.zeros(3, dtype="int64"), seen, np.array(["p"], dtype=object), habits)
    start = np.zeros((3, 1), dtype="int64")
    params = DetectionParams()
    mast = (np.array([0, 2]), np.array([2, 0]))
    apart = (np.empty(0, dtype="int64"), np.empty(0, dtype="int64"))
    with_siblings = _device_takeover(*args, np.zeros(3, dtype="int64"), start, mast, params)
    without = _device_takeover(*args, np.zeros(3, dtype="int64"), start, apart, params)
    # As siblings, the phone used the mast every time: strong evidence for both radios.
    assert with_siblings[0, 0] > 2.0 and with_siblings[2, 0] > 2.0
    # As unrelated sites, it used site 0 half the time.
    assert without[0, 0] < with_siblings[0, 0] / 2


def test_a_resident_phone_moving_to_a_neighbour_calls_its_site_offline() -> None:
    """End to end with device ids: two masts of one network at one place; the phone
    that always used mast 1 names mast 3 all event long (mast 1 is down)."""
    cells = cells_frame([("358-10", 1, LAT0, LON0), ("358-10", 3, LAT0, LON0)])

    def phone(frame: pd.DataFrame, name: str) -> pd.DataFrame:
        return frame.assign(device=pd.array([name] * len(frame), dtype="string"))

    baseline = concat(
        phone(measurements(start=BASE, hours=168, per_hour=2, network="358-10", cell=1), "res"),
        phone(measurements(start=BASE, hours=168, per_hour=2, network="358-10", cell=3), "nb"),
    )
    event = concat(
        phone(measurements(start=EVENT, hours=6, per_hour=2, network="358-10", cell=3), "res"),
        phone(
            measurements(start=EVENT, hours=6, per_hour=2, network="358-10", cell=3, seed=1), "nb"
        ),
    )
    p_offline = {}
    for by_device in (False, True):
        params = DetectionParams(takeover_by_device=by_device)
        model = build_baseline(baseline, cells, params)
        # Habits are counted only when the decisions read them.
        assert set(model.habits["device"].astype(str)) == ({"res", "nb"} if by_device else set())
        found = detect(model, event, params=params)
        last = found.cells[found.cells["end"] == found.cells["end"].max()].set_index("cell")
        p_offline[by_device] = float(last.loc[1, "p_offline"])
        assert last.loc[3, "status"] == "online"
    # The resident's habit is far stronger evidence than a half share of the reports.
    assert p_offline[True] > 0.9
    assert p_offline[True] > p_offline[False]


def test_calibration_rescales_reported_p_offline_not_statuses(two_networks: pd.DataFrame) -> None:
    baseline = concat(
        measurements(start=BASE, hours=168, per_hour=2, network="358-10", cell=1, seed=1),
        measurements(start=BASE, hours=168, per_hour=2, network="358-20", cell=2, seed=2),
    )
    event = measurements(start=EVENT, hours=6, per_hour=2, network="358-20", cell=2, seed=3)
    model = build_baseline(baseline, two_networks)
    raw = DetectionParams(calibration_shift=0.0, calibration_slope=1.0)
    plain = detect(model, event, params=raw).cell_windows
    params = DetectionParams(calibration_shift=-0.6, calibration_slope=0.65)
    scaled = detect(model, event, params=params).cell_windows
    assert (plain["status"].to_numpy() == scaled["status"].to_numpy()).all()
    p0, p1 = plain["p_offline"].to_numpy(), scaled["p_offline"].to_numpy()
    middle = (p0 > 0.05) & (p0 < 0.99)
    assert middle.any()  # the silent cell passes through undecided hours
    assert np.allclose(p1, calibrate(p0, -0.6, 0.65), equal_nan=True)
    # A confident posterior is pulled towards the middle.
    assert (p1[middle & (p0 > 0.5)] < p0[middle & (p0 > 0.5)]).all()
    assert np.array_equal(p1[(p0 == 0) | (p0 == 1)], p0[(p0 == 0) | (p0 == 1)])


def test_evidence_per_silent_hour_grows_with_the_sites_reporting_rate(
    two_networks: pd.DataFrame,
) -> None:
    """Cell windows carry how thin the data are: the evidence one silent hour adds at
    the cell's site, ten times the reports giving several times the evidence."""

    def per_hour(rate: int) -> float:
        baseline = concat(
            measurements(start=BASE, hours=168, per_hour=rate, network="358-10", cell=1, seed=1),
            measurements(start=BASE, hours=168, per_hour=2, network="358-20", cell=2, seed=2),
        )
        event = measurements(start=EVENT, hours=3, per_hour=2, network="358-20", cell=2, seed=3)
        cw = detect(build_baseline(baseline, two_networks), event).cell_windows
        values = cw.loc[cw["cell"] == 0, "silence_llr_per_h"].to_numpy()
        assert np.isfinite(values).all() and (values > 0).all()
        return float(values[0])

    thin, dense = per_hour(1), per_hour(10)
    assert dense > 3 * thin


@pytest.mark.parametrize("n_keys", [0, 1, 300])
def test_key_rows_are_what_a_multiindex_finds(n_keys: int) -> None:
    from dcm.analysis.detect import key_rows

    rng = np.random.default_rng(n_keys)
    # Grid cells as large H3-like numbers, networks 0..3; unique pairs sorted as _keys.
    cells = 0x0882A10000000000 + rng.choice(10_000, 120, replace=False) * 0x1000
    pairs = pd.DataFrame(
        {"h3": rng.choice(cells, n_keys), "network": rng.integers(0, 4, n_keys)}
    ).drop_duplicates()
    keys = pairs.sort_values(["h3", "network"]).reset_index(drop=True)
    keys["hex"] = pd.factorize(keys["h3"])[0]
    # Asked: known pairs, known cells with another network, unknown cells, and
    # networks outside the keys' range (-1: reports without a network).
    h3 = np.concatenate([keys["h3"].to_numpy(), rng.choice(cells, 200), cells[:3] + 1])
    net = np.concatenate([keys["network"].to_numpy(), rng.integers(-1, 6, 203)])
    want = (
        pd.MultiIndex.from_frame(keys[["h3", "network"]]).get_indexer(
            pd.MultiIndex.from_arrays([h3, net])
        )
        if n_keys
        else np.full(h3.size, -1)
    )
    got = key_rows(keys, h3, net)
    assert got.tolist() == want.tolist()
    assert (got[: len(keys)] == np.arange(len(keys))).all()
    assert key_rows(keys, h3[:0], net[:0]).size == 0


def _three_sector_site() -> tuple[Baseline, pd.DataFrame]:
    """One 358-10 mast with three sector cells (1, 2, 3) heard 10 times an hour each for
    a week, and 358-20 beside it; cells 1 and 2 and 358-20 go on reporting for ten event
    hours, cell 3 falls silent after two."""
    cells = cells_frame(
        [
            ("358-10", 1, LAT0, LON0),
            ("358-10", 2, LAT0, LON0),
            ("358-10", 3, LAT0, LON0),
            ("358-20", 4, LAT0, LON0),
        ]
    )
    cells.loc[cells["network"] == "358-10", "site_id"] = "358-10-mast"
    week = [
        measurements(start=BASE, hours=168, per_hour=10, network=net, cell=c, seed=c)
        for net, c in (("358-10", 1), ("358-10", 2), ("358-10", 3), ("358-20", 4))
    ]
    event = concat(
        *(
            measurements(start=EVENT, hours=10, per_hour=10, network=net, cell=c, seed=10 + c)
            for net, c in (("358-10", 1), ("358-10", 2), ("358-20", 4))
        ),
        measurements(start=EVENT, hours=2, per_hour=10, network="358-10", cell=3, seed=13),
    )
    return build_baseline(concat(*week), cells), event


def _status_at(found, cell: int, at: str) -> str:
    intervals = found.cells[found.cells["cell"] == cell]
    t = pd.Timestamp(at)
    return intervals[(intervals["start"] <= t) & (intervals["end"] > t)]["status"].item()


def test_a_sector_silent_on_a_mast_that_stands_is_offline_alone() -> None:
    model, event = _three_sector_site()
    assert model.cell_site[0] == model.cell_site[1] == model.cell_site[2]
    found = detect(model, event)
    late = "2026-01-08T09:30Z"
    assert _status_at(found, 3, late) == "offline"
    assert _status_at(found, 1, late) == "online"
    assert _status_at(found, 2, late) == "online"
    # Heard for its first two hours: online then.
    assert _status_at(found, 3, "2026-01-08T01:30Z") == "online"
    # The mast stands: no outage area on its network.
    assert found.outages.empty
    # Sites failing whole (the option off), the silent sector shares its mast's fate.
    whole = detect(model, event, params=DetectionParams(sector_evidence=False))
    assert _status_at(whole, 3, late) == "online"


def test_sectors_reporting_as_usual_stay_online() -> None:
    model, _ = _three_sector_site()
    event = concat(
        *(
            measurements(start=EVENT, hours=10, per_hour=10, network=net, cell=c, seed=20 + c)
            for net, c in (("358-10", 1), ("358-10", 2), ("358-10", 3), ("358-20", 4))
        )
    )
    found = detect(model, event)
    assert set(found.cells["status"]) == {"online"}


def test_a_whole_mast_silent_takes_all_its_sectors() -> None:
    model, _ = _three_sector_site()
    event = measurements(start=EVENT, hours=10, per_hour=10, network="358-20", cell=4, seed=30)
    found = detect(model, event)
    late = "2026-01-08T09:30Z"
    assert [_status_at(found, c, late) for c in (1, 2, 3, 4)] == [
        "offline",
        "offline",
        "offline",
        "online",
    ]


def _mast_restored_with_a_quiet_sector() -> tuple[Baseline, pd.DataFrame]:
    """A 358-10 mast (cells 1 and 2 at one place, heard 10 times an hour each; cell 3
    serving a place 1 km north, heard 0.5 times an hour, where site 5 of the same
    network is heard 0.2 times an hour) and 358-20 beside it. The
    mast is silent from 02:00 to 10:00 while site 5 takes its place in the north; from
    10:00 it is heard again, its north sector from 11:00 only."""
    north = {"lat": LAT0 + 0.01, "lon": LON0}
    cells = cells_frame(
        [
            ("358-10", 1, LAT0, LON0),
            ("358-10", 2, LAT0, LON0),
            ("358-10", 3, LAT0, LON0),
            ("358-10", 5, LAT0 + 0.01, LON0 + 0.005),
            ("358-20", 4, LAT0, LON0),
        ]
    )
    cells.loc[cells["cell"] <= 3, "site_id"] = "358-10-mast"

    def reports(start: str, hours: float, per_hour: float, cell: int, seed: int, **at):
        net = "358-20" if cell == 4 else "358-10"
        return measurements(
            start=start, hours=hours, per_hour=per_hour, network=net, cell=cell, seed=seed, **at
        )

    week = concat(
        reports(BASE, 168, 10, 1, 1),
        reports(BASE, 168, 10, 2, 2),
        reports(BASE, 168, 0.5, 3, 3, **north),
        reports(BASE, 168, 0.2, 5, 5, **north),
        reports(BASE, 168, 10, 4, 4),
    )
    event = concat(
        reports(EVENT, 2, 10, 1, 11),
        reports(EVENT, 2, 10, 2, 12),
        reports(EVENT, 2, 5, 3, 13, **north),
        reports(EVENT, 2, 1, 5, 15, **north),
        reports("2026-01-08T02:00Z", 8, 5, 5, 25, **north),  # site 5 takes over the north
        reports("2026-01-08T10:00Z", 4, 10, 1, 31),
        reports("2026-01-08T10:00Z", 4, 10, 2, 32),
        reports("2026-01-08T11:00Z", 3, 5, 3, 33, **north),
        reports("2026-01-08T10:00Z", 4, 1, 5, 35, **north),
        reports(EVENT, 14, 10, 4, 14),
    )
    return build_baseline(week, cells), event


def test_a_quiet_sector_is_found_by_the_site_that_takes_over_its_place() -> None:
    model, _ = _mast_restored_with_a_quiet_sector()
    north = {"lat": LAT0 + 0.01, "lon": LON0}
    standing = [
        measurements(start=EVENT, hours=14, per_hour=10, network=net, cell=c, seed=40 + c)
        for net, c in (("358-10", 1), ("358-10", 2), ("358-20", 4))
    ]
    # The north sector falls silent at 02:00; its place keeps reporting, on site 5.
    north_sector = measurements(
        start=EVENT, hours=2, per_hour=5, network="358-10", cell=3, seed=43, **north
    )
    taken_over = measurements(
        start=EVENT, hours=14, per_hour=5, network="358-10", cell=5, seed=45, **north
    )
    found = detect(model, concat(*standing, north_sector, taken_over))
    assert _status_at(found, 3, "2026-01-08T13:30Z") == "offline"
    assert _status_at(found, 1, "2026-01-08T13:30Z") == "online"
    assert found.outages.empty
    # Nobody left in the north: its silence alone (0.5 sightings an hour) does not
    # tell yet.
    quiet = detect(model, concat(*standing, north_sector))
    assert _status_at(quiet, 3, "2026-01-08T13:30Z") != "offline"


def test_a_sector_is_not_held_down_by_its_mast_s_failure_once_the_mast_is_heard() -> None:
    model, event = _mast_restored_with_a_quiet_sector()
    found = detect(model, event)
    # The whole mast silent: all its cells offline.
    assert [_status_at(found, c, "2026-01-08T09:30Z") for c in (1, 2, 3)] == ["offline"] * 3
    # Heard again: the north sector's one quiet hour does not make it offline, though
    # site 5 took its reports there for eight hours while the whole mast was silent.
    assert _status_at(found, 1, "2026-01-08T10:30Z") == "online"
    assert _status_at(found, 3, "2026-01-08T10:30Z") != "offline"
    assert _status_at(found, 3, "2026-01-08T12:30Z") == "online"


#: The silent-share floor of the learned rate: on (the default), and off.
SILENT_SHARE = DetectionParams()
NO_SILENT_SHARE = DetectionParams(prior_silence_span="")


def _thin_network(
    n_sites: int, silent: int, *, other: int | None = None, params: DetectionParams = SILENT_SHARE
) -> tuple[Baseline, pd.DataFrame]:
    """``n_sites`` sites 2 km apart heard about 0.4 times an hour for four weeks; in the
    event day the first ``silent`` go quiet and the rest report as before. ``other``:
    a second network's sites at the same places (heard twice as often), of which the
    first ``other`` go quiet."""
    networks = ["358-10"] if other is None else ["358-10", "358-20"]
    cells = cells_frame(
        [(net, i + 1, LAT0 + 0.02 * i, LON0) for net in networks for i in range(n_sites)]
    )
    quiet = {"358-10": silent, "358-20": other or 0}

    def stream(start: str, hours: float, net: str, i: int, seed: int) -> pd.DataFrame:
        return measurements(
            start=start,
            hours=hours,
            per_hour=0.4 if net == "358-10" else 0.8,
            network=net,
            cell=i + 1,
            lat=LAT0 + 0.02 * i,
            seed=seed * 1000 + i + (500 if net == "358-20" else 0),
        )

    baseline = concat(*(stream(BASE, 24 * 28, n, i, 1) for n in networks for i in range(n_sites)))
    event = concat(
        *(
            stream("2026-01-29T00:00Z", 24, n, i, 2)
            for n in networks
            for i in range(quiet[n], n_sites)
        )
    )
    return build_baseline(baseline, cells, params), event


def _last_p(found, cells: range, network: str = "358-10") -> np.ndarray:
    cw = found.cell_windows
    cw = cw[cw["network"] == network] if "network" in cw else cw
    last = cw[cw["window_start"] == cw["window_start"].max()].set_index("cell")
    return last.loc[list(cells), "p_offline"].to_numpy()


def test_many_sites_silent_at_once_raise_the_event_s_failure_rate() -> None:
    """A third of the sites silent for a day, each too thin to call on its own: their
    number, beyond what chance silences working sites, says the event took a share of
    the network down, and each silent site's p_offline rises with it."""
    model, event = _thin_network(36, silent=12)
    on = detect(model, event, params=SILENT_SHARE)
    off = detect(model, event, params=NO_SILENT_SHARE)
    p_on, p_off = _last_p(on, range(12)), _last_p(off, range(12))
    assert (p_on > 2 * p_off).all()
    assert p_on.min() > 0.8 and p_off.max() < 0.5
    # The sites still heard stay well below them (the few heard longest ago rise too).
    heard = _last_p(on, range(12, 36))
    assert np.median(heard) < 0.05 and heard.max() < p_on.min()


def test_a_calm_day_leaves_the_failure_rate_where_it_was() -> None:
    model, event = _thin_network(36, silent=0)
    on = detect(model, event, params=SILENT_SHARE)
    off = detect(model, event, params=NO_SILENT_SHARE)
    np.testing.assert_allclose(_last_p(on, range(36)), _last_p(off, range(36)))


def test_sites_silent_where_everyone_left_do_not_raise_the_failure_rate() -> None:
    """The same third of one network silent, but the other network is silent there too
    (an evacuated place, not a failure): counting only sites whose place kept its usual
    activity, the rate stays low; where the other network is still heard, it rises."""
    params = SILENT_SHARE
    every = dataclasses.replace(SILENT_SHARE, prior_silence_activity=0.0)
    left, left_event = _thin_network(36, silent=12, other=12, params=params)
    failed, failed_event = _thin_network(36, silent=12, other=0, params=params)
    off = NO_SILENT_SHARE
    p_left = _last_p(detect(left, left_event, params=params), range(12))
    p_left_all = _last_p(detect(left, left_event, params=every), range(12))
    p_left_off = _last_p(detect(left, left_event, params=off), range(12))
    np.testing.assert_allclose(p_left, p_left_off)
    assert (p_left_all > 5 * p_left).all()
    p_failed = _last_p(detect(failed, failed_event, params=params), range(12))
    p_failed_off = _last_p(detect(failed, failed_event, params=off), range(12))
    assert (p_failed > 2 * p_failed_off).all() and p_failed.min() > 0.6
