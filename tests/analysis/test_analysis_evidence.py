"""Evidence arithmetic, grid helpers, baseline counting and outage tracking."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from dcm.analysis import track_outages
from dcm.analysis.baseline import count_baseline, network_list, prepare_cells, prepare_measurements
from dcm.analysis.evidence import (
    calibrate,
    failure_llr,
    silence_llr,
    takeover_llr,
    trailing_evidence,
    volume_factor,
    window_sums,
)
from dcm.analysis.grid import cells_to_polygon, neighbour_pairs, points_to_cells
from dcm.analysis.impact import population_points

from .conftest import cells_frame, concat, measurements


def test_points_to_cells_matches_h3() -> None:
    rng = np.random.default_rng(0)
    lat = rng.uniform(-60, 60, 500)
    lon = rng.uniform(-180, 180, 500)
    lat[:100] = lat[100:200]  # repeated places
    lon[:100] = lon[100:200]
    got = points_to_cells(lat, lon, 8)
    want = [h3.str_to_int(h3.latlng_to_cell(a, b, 8)) for a, b in zip(lat, lon, strict=True)]
    assert got.tolist() == want
    assert points_to_cells(np.array([np.nan]), np.array([1.0]), 8).tolist() == [0]


def test_neighbour_pairs_are_the_k1_ring() -> None:
    centre = h3.str_to_int(h3.latlng_to_cell(13.2, -61.2, 8))
    ring = [h3.str_to_int(c) for c in h3.grid_disk(h3.int_to_str(centre), 1)]
    far = h3.str_to_int(h3.latlng_to_cell(14.0, -60.0, 8))
    cells = np.array([*sorted(ring), far], dtype="int64")
    a, b = neighbour_pairs(cells)
    c = int(np.flatnonzero(cells == centre)[0])
    assert sorted(b[a == c].tolist()) == sorted(i for i in range(7) if i != c)
    assert int(np.flatnonzero(cells == far)[0]) not in a
    poly = cells_to_polygon(np.array(ring))
    assert poly.geom_type == "Polygon" and poly.is_valid


def test_silence_needs_expectation_and_is_tempered_by_low_activity() -> None:
    # 50 expected, people reporting as usual on other networks: strong evidence.
    strong = silence_llr(np.array([50.0]), np.array([100.0]), np.array([100.0]), dispersion=2)
    # 0.2 expected: almost none.
    weak = silence_llr(np.array([0.2]), np.array([100.0]), np.array([100.0]), dispersion=2)
    # 50 expected but everyone went quiet (evacuation): much weaker than with activity.
    quiet = silence_llr(np.array([50.0]), np.array([0.0]), np.array([100.0]), dispersion=2)
    assert strong[0] > 40 and weak[0] < 0.25
    assert quiet[0] < strong[0] / 10


def test_failure_reports_weigh_against_their_exposure() -> None:
    share = np.array([0.03])
    one_sparse = failure_llr(np.array([1.0]), np.array([0.5]), share)[0]
    one_busy = failure_llr(np.array([1.0]), np.array([200.0]), share)[0]
    many_busy = failure_llr(np.array([60.0]), np.array([200.0]), share)[0]
    assert one_sparse > 1.5  # a rare failure where few report
    assert one_busy < 0  # one failure among 200 reports is normal
    assert many_busy > 20
    assert failure_llr(np.array([0.0]), np.array([1e-12]), share)[0] == pytest.approx(0, abs=1e-6)


def test_bursty_failures_make_a_shortfall_weak_evidence() -> None:
    # A coverage hole where 40 % of reports are failures: 13 reports expected, none
    # of them a failure. A Poisson count calls that strong evidence of "down"; failure
    # bursts from a few phones make it unremarkable.
    f, x, share = np.array([0.0]), np.array([13.0]), np.array([0.4])
    poisson = failure_llr(f, x, share)[0]
    bursty = failure_llr(f, x, share, dispersion=1.0)[0]
    assert poisson > 4
    assert 0 < bursty < 1.5
    # The negative binomial tends to the Poisson as its shape grows.
    many = np.array([0.0, 1.0, 7.0])
    xs, shares = np.full(3, 40.0), np.full(3, 0.05)
    assert failure_llr(many, xs, shares, dispersion=1e9) == pytest.approx(
        failure_llr(many, xs, shares), rel=1e-4
    )
    # Many failures where few are usual still speak for "down".
    assert failure_llr(np.array([8.0]), np.array([40.0]), np.array([0.01]), dispersion=1.0)[0] > 5


def test_trailing_evidence_resets_at_an_ok_report() -> None:
    ok = np.array([[1.0, 0, 0, 0, 1, 0]])
    fail = np.array([[0.0, 2, 1, 0, 1, 0]])
    expected = np.full((1, 6), 3.0)
    # In window 4 the only failure came after the ok report, half the window remained.
    fail_after = np.array([[0.0, 0, 0, 0, 1, 0]])
    share_after = np.array([[0.2, 0, 0, 0, 0.5, 0]])
    ev = trailing_evidence(
        ok, fail, expected, fail_after_ok=fail_after, share_after_ok=share_after, span=12
    )
    assert ev.fails[0].tolist() == [0, 2, 3, 3, 1, 1]
    assert ev.expected[0].tolist() == pytest.approx([0.6, 3.6, 6.6, 9.6, 1.5, 4.5])
    assert ev.ok_now[0].tolist() == [True, False, False, False, True, False]
    short = trailing_evidence(
        ok, fail, expected, fail_after_ok=fail_after, share_after_ok=share_after, span=2
    )
    assert short.expected[0].tolist() == pytest.approx([0.6, 3.6, 6.0, 6.0, 1.5, 4.5])


def test_volume_factor_ignores_places_gone_silent() -> None:
    expected = np.full((10, 24), 5.0)
    observed = expected * 2.0  # a campaign doubles the volume ...
    observed[:4, 6:] = 0.0  # ... and four places go silent (outage)
    factor = volume_factor(observed, expected, observed, span=6, min_expected=5)
    assert factor[-1] == pytest.approx(2.0)
    assert factor[0] == pytest.approx(2.0)


@pytest.mark.parametrize("span", [1, 3, 7, 12])
def test_window_sums_are_trailing_sums_in_column_major_order(span: int) -> None:
    rng = np.random.default_rng(3)
    values = rng.gamma(0.5, 2.0, (40, 7))
    got = window_sums(values, span)
    for j in range(values.shape[1]):
        want = values[:, max(j - span + 1, 0) : j + 1].sum(axis=1)
        np.testing.assert_allclose(got[:, j], want, rtol=0, atol=1e-12)
    # Column-major like a gather over windows: sums over places keep their order.
    assert got.flags["F_CONTIGUOUS"]


@pytest.mark.parametrize(
    ("rows", "windows", "span"), [(50, 72, 24), (9, 5, 5), (9, 5, 9), (0, 6, 2), (3, 1, 1)]
)
def test_window_sums_equal_differences_of_cumulative_sums_bit_for_bit(
    rows: int, windows: int, span: int
) -> None:
    # The bytes of status.parquet and outages.geojson depend on these sums: each must be
    # the running sum to its window less the running sum to span windows before.
    rng = np.random.default_rng(rows * 100 + span)
    values = rng.gamma(0.3, 3.0, (rows, windows)) * (rng.random((rows, windows)) < 0.4)
    cum = np.cumsum(values, axis=1)
    want = cum.copy()
    want[:, span:] = cum[:, span:] - cum[:, : windows - span]
    got = window_sums(values, span)
    assert got.shape == (rows, windows)
    assert np.array_equal(got, want)
    assert got.flags["F_CONTIGUOUS"]


@pytest.mark.parametrize("seed", [0, 1])
def test_volume_factor_is_the_zero_filled_sums_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    expected = rng.gamma(0.4, 2.0, (3000, 30))
    ok = rng.poisson(expected * rng.uniform(0.2, 3.0, (3000, 1))).astype("float64")
    ok[rng.random(3000) < 0.2] = 0.0  # places gone silent
    observed = ok + rng.poisson(0.05, ok.shape)
    span, least = 6, 0.5
    # The formula as written before the in-place zeroing.
    obs_s, exp_s = window_sums(observed, span), window_sums(expected, span)
    up = (window_sums(ok, span) > 0) & (exp_s >= least)
    num = np.where(up, obs_s, 0.0).sum(axis=0)
    den = np.where(up, exp_s, 0.0).sum(axis=0)
    tot_up = (ok.sum(axis=1) > 0) & (expected.sum(axis=1) >= least)
    fallback = observed[tot_up].sum() / expected[tot_up].sum()
    want = np.clip(np.where(den >= 4 * least, num / np.maximum(den, 1e-12), fallback), 0.1, 10.0)
    got = volume_factor(observed, expected, ok, span=span, min_expected=least)
    given = volume_factor(
        observed, expected, ok, span=span, min_expected=least, ok_sums=window_sums(ok, span)
    )
    assert np.array_equal(got, want) and np.array_equal(given, want)
    assert len(set(got.round(6).tolist())) > 1


def test_partial_counts_add_up() -> None:
    cells = prepare_cells(cells_frame([("358-10", 1, 13.25, -61.2)]))
    frame = concat(
        measurements(start="2026-01-01T00:00Z", hours=48, per_hour=5, network="358-10", cell=1),
        measurements(
            start="2026-01-01T00:00Z",
            hours=48,
            per_hour=1,
            network="358-10",
            cell=None,
            status="no_service",
            seed=2,
        ),
    )
    nets = network_list(frame)

    def counted(part: pd.DataFrame) -> pd.DataFrame:
        prep = prepare_measurements(part, cells=cells, networks=nets, resolution=8)
        return count_baseline(prep)

    keys = ["kind", "h3", "network", "hour", "cell"]
    whole = counted(frame).groupby(keys).sum().sort_index()
    parts = pd.concat([counted(frame.iloc[:100]), counted(frame.iloc[100:])])
    pd.testing.assert_frame_equal(parts.groupby(keys).sum().sort_index(), whole)
    assert whole["fail_count"].sum() == 48


def test_population_points_are_pixel_centres() -> None:
    from affine import Affine

    grid = np.array([[0.0, 5.0], [np.nan, 2.0]])
    points = population_points(grid, Affine(0.1, 0, 10.0, 0, -0.1, 20.0))
    assert points["population"].tolist() == [5.0, 2.0]
    assert points["lon"].tolist() == pytest.approx([10.15, 10.15])
    assert points["lat"].tolist() == pytest.approx([19.95, 19.85])


def _outage(network: str, box: tuple[float, float, float, float], start: str) -> dict:
    ts = pd.Timestamp(start)
    return {
        "network": network,
        "severity": "outage",
        "window_start": ts,
        "window_end": ts + pd.Timedelta(hours=1),
        "geometry": shapely.box(*box),
    }


def test_track_outages_keeps_ids_while_an_outage_persists() -> None:
    first = gpd.GeoDataFrame(
        [
            _outage("358-10", (0, 0, 1, 1), "2026-01-08T00:00Z"),
            _outage("358-20", (5, 5, 6, 6), "2026-01-08T00:00Z"),
        ],
        crs=4326,
    )
    first = track_outages(None, first)
    assert first["outage_id"].is_unique
    second = gpd.GeoDataFrame(
        [
            _outage("358-10", (0.5, 0, 1.5, 1), "2026-01-08T01:00Z"),  # moved a little
            _outage("358-20", (0.5, 0, 1.5, 1), "2026-01-08T01:00Z"),  # other network, new place
        ],
        crs=4326,
    )
    second = track_outages(first, second)
    assert second["outage_id"].iloc[0] == first["outage_id"].iloc[0]
    assert second["onset"].iloc[0] == pd.Timestamp("2026-01-08T00:00Z")
    assert second["outage_id"].iloc[1] not in set(first["outage_id"])
    assert second["onset"].iloc[1] == pd.Timestamp("2026-01-08T01:00Z")
    # Deterministic: the same input gives the same new ids.
    again = track_outages(first, second.drop(columns=["outage_id", "onset"]))
    assert again["outage_id"].tolist() == second["outage_id"].tolist()


def test_restored_when_gone_before_the_last_judged_window() -> None:
    from dcm.analysis.outages import _track_all

    frame = gpd.GeoDataFrame(
        [
            _outage("358-10", (0, 0, 1, 1), "2026-01-08T00:00Z"),
            _outage("358-10", (0, 0, 1, 1), "2026-01-08T01:00Z"),
            _outage("358-20", (5, 5, 6, 6), "2026-01-08T01:00Z"),
        ],
        crs=4326,
    )
    gap = pd.Timedelta(hours=3)
    # Without knowing the judged windows, the last window with outages is "now".
    open_ = _track_all(frame, None, gap)
    assert open_["restored"].isna().all()
    # Windows were judged until 03:00 with no outage in the last two: both are over.
    done = _track_all(frame, None, gap, until=pd.Timestamp("2026-01-08T03:00Z"))
    assert (done["restored"] == pd.Timestamp("2026-01-08T02:00Z")).all()
    # Ids and onsets do not depend on it.
    assert done["outage_id"].tolist() == open_["outage_id"].tolist()


def test_takeover_llr_is_the_beta_binomial_zero_chance() -> None:
    # Named 3 times out of 4 in the baseline, Jeffreys prior: s ~ Beta(3.5, 1.5).
    # P(none of 2 reports names the site | up) = E[(1 - s)^2] = B(3.5, 3.5) / B(3.5, 1.5).
    from scipy.special import beta

    got = takeover_llr(np.array([0.0, 2.0]), np.array([3.0]), np.array([4.0]), prior=0.5)
    assert got[0] == 0.0
    assert got[1] == pytest.approx(-np.log(beta(3.5, 3.5) / beta(3.5, 1.5)))


def test_takeover_llr_weighs_a_thin_share_weakly() -> None:
    # The same share (100 %) seen on 1 baseline report and on 40: ten reports naming
    # other sites are far stronger evidence against the well-known share.
    thin = takeover_llr(np.array([10.0]), np.array([1.0]), np.array([1.0]), prior=0.5)[0]
    firm = takeover_llr(np.array([10.0]), np.array([40.0]), np.array([40.0]), prior=0.5)[0]
    # (the old per-report weight, -log(1 - 0.9) each, gave 23 for both)
    assert thin < 5.0 < 4 * thin < firm
    # It grows with the number of reports, never falls.
    k = np.arange(0, 50, dtype="float64")
    llr = takeover_llr(k, np.full(k.size, 5.0), np.full(k.size, 8.0), prior=0.5)
    assert np.all(np.diff(llr) > 0)


def test_calibrate_is_monotone_keeps_certainties_and_identity() -> None:
    p = np.array([0.0, 0.001, 0.2, 0.5, 0.8, 0.96, 1.0, np.nan])
    assert np.array_equal(calibrate(p, 0.0, 1.0), p, equal_nan=True)
    out = calibrate(p, -0.6, 0.65)
    assert out[0] == 0.0 and out[6] == 1.0 and np.isnan(out[7])
    assert np.all(np.diff(out[:7]) > 0)
    # logit 0.5 = 0, so p' = sigmoid(shift)
    assert out[3] == pytest.approx(1 / (1 + np.exp(0.6)))
    # a slope below 1 pulls a confident 0.96 towards the middle
    assert 0.5 < out[5] < 0.96
