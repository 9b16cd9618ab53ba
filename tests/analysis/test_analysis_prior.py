"""The learned failure rate (empirical Bayes) and the hours of silence needed to decide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from dcm.analysis.prior import hours_to_decide, learned_prior, overall_rate, silent_share

BASE = 0.001
KW = {"base": BASE, "strength": 200.0, "group_strength": 20.0, "cap": 0.5, "confirm_p": 0.9}
CONFIRMED = 12.0  # an LLR that confirms a failure under the calm prior
QUIET = 3.0  # a silence that does not confirm one


def test_calm_week_keeps_the_calm_rate() -> None:
    # 1,000 sites, some quiet for a while, none confirmed down: the rate stays at base.
    rng = np.random.default_rng(1)
    llr = rng.uniform(-4, QUIET, size=(1000, 24))
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), **KW)
    assert prior.shape == llr.shape
    np.testing.assert_allclose(prior, BASE * 200 / 1200)  # shrunk towards 0, never above base


def test_rate_rises_with_confirmed_failures_per_window() -> None:
    llr = np.zeros((400, 3))
    llr[:40, 1] = CONFIRMED  # 10 % confirmed in window 1
    llr[:120, 2] = CONFIRMED  # 30 % in window 2
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), **KW)
    expected = (BASE * 200 + np.array([0, 40, 120])) / (200 + 400)
    np.testing.assert_allclose(prior[0], expected)
    assert prior[0, 2] > prior[0, 1] > 50 * prior[0, 0]


def test_uninformed_sites_do_not_dilute_the_rate() -> None:
    llr = np.zeros((400, 1))
    llr[:40] = CONFIRMED
    informed = np.zeros(llr.shape, bool)
    informed[:100] = True
    prior = learned_prior(llr, informed=informed, **KW)
    assert prior[0, 0] == pytest.approx((BASE * 200 + 40) / 300)


def test_hazard_levels_learn_their_own_rate() -> None:
    # Level 2 (the core): half its sites confirmed down; level 0 (outside): none.
    group = np.repeat([0, 1, 2], [600, 300, 100])
    llr = np.zeros((1000, 1))
    llr[900:950] = CONFIRMED
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), group=group, **KW)
    overall = (BASE * 200 + 50) / 1200
    core = (overall * 20 + 50) / 120
    outside = overall * 20 / 620
    assert prior[950, 0] == pytest.approx(core)
    assert prior[0, 0] == pytest.approx(outside)
    assert prior[950, 0] > 10 * prior[0, 0]


def test_groups_may_change_per_window() -> None:
    group = np.zeros((10, 2), dtype=int)
    group[:5, 1] = 1
    llr = np.zeros((10, 2))
    llr[:2, 1] = CONFIRMED
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), group=group, **KW)
    assert prior[0, 1] > prior[9, 1]
    assert prior[0, 0] == prior[9, 0]


def test_rate_is_capped() -> None:
    llr = np.full((50, 1), CONFIRMED)
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), **{**KW, "strength": 1.0})
    assert prior.max() == pytest.approx(0.5)


def test_overall_rate_is_the_informed_mean() -> None:
    prior = np.array([[0.1, 0.2], [0.3, 0.4]])
    informed = np.array([[True, False], [True, False]])
    np.testing.assert_allclose(overall_rate(prior, informed, BASE), [0.2, BASE])


def test_hours_to_decide() -> None:
    prior = np.array([0.01, 0.01, 0.01, 0.01])
    llr_now = np.array([0.0, 2.0, 20.0, 0.0])
    per_hour = np.array([0.5, 0.5, 0.5, 0.0])
    hours = hours_to_decide(prior, llr_now=llr_now, llr_per_hour=per_hour, p_down=0.9)
    need = logit(0.9) - logit(0.01)
    np.testing.assert_allclose(hours[:2], [need / 0.5, (need - 2.0) / 0.5])
    assert hours[2] == 0.0  # already decided
    assert np.isinf(hours[3])  # silence says nothing: no expected reports
    # After that many silent hours the posterior reaches p_down.
    assert expit(logit(0.01) + 0.0 + hours[0] * 0.5) == pytest.approx(0.9)


def test_a_site_heard_up_recently_can_only_have_failed_since() -> None:
    # 100 sites; confirmed failures grow from 0 to 30 over windows 0..3.
    llr = np.zeros((100, 4))
    for t, n in enumerate((0, 10, 20, 30)):
        llr[:n, t] = CONFIRMED
    heard = np.full(llr.shape, -1)
    heard[99, 3] = 2  # heard up in window 2
    heard[98, 3] = 3  # heard up in the window judged
    kw = {**KW, "strength": 1.0}
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), heard=heard, **kw)
    now, was = prior[0, 3], prior[0, 2]
    assert prior[99, 3] == pytest.approx((now - was) / (1 - was))
    assert prior[99, 3] < now / 2
    assert prior[98, 3] == pytest.approx(BASE)  # no time to fail since: the calm rate


def _silent_sites(n: int, share_down: float, q: float, seed: int) -> np.ndarray:
    """(sites × 1) silence: the first ``share_down`` of the sites down (silent), the
    rest up and silent with probability ``q``."""
    rng = np.random.default_rng(seed)
    down = np.arange(n) < share_down * n
    return (down | (rng.random(n) < q))[:, None]


@pytest.mark.parametrize("share_down", [0.0, 0.1, 0.3])
def test_silent_share_finds_the_share_down_beyond_chance(share_down: float) -> None:
    n, q = 2000, 0.2
    llr = np.full((n, 1), -np.log(q))  # the model's chance of silence while up: q
    silent = _silent_sites(n, share_down, q, seed=3)
    estimate = silent_share(silent, llr, np.ones(1), counted=np.ones(n, bool), n_se=0.0)
    bound = silent_share(silent, llr, np.ones(1), counted=np.ones(n, bool), n_se=2.0)
    assert estimate[0] == pytest.approx(share_down, abs=0.03)
    assert bound[0] <= estimate[0]
    if share_down == 0.0:
        assert bound[0] == 0.0  # a calm week stays at the calm rate
    else:
        assert bound[0] > share_down - 0.06


def test_silent_share_uses_the_fitted_exponent() -> None:
    # Working sites silent half as often as e^-s says: with the exponent that the
    # baseline fits (c = 2: e^-2s = q^2) a calm week shows nobody down; without it, the
    # excess of predicted silence hides part of a real share down.
    n, s = 4000, 1.0
    q_true = np.exp(-2 * s)
    llr = np.full((n, 1), s)
    calm = _silent_sites(n, 0.0, q_true, seed=4)
    assert silent_share(calm, llr, np.array([2.0]), counted=np.ones(n, bool), n_se=2.0)[0] == 0
    storm = _silent_sites(n, 0.2, q_true, seed=5)
    fitted = silent_share(storm, llr, np.array([2.0]), counted=np.ones(n, bool), n_se=0.0)[0]
    unfitted = silent_share(storm, llr, np.array([1.0]), counted=np.ones(n, bool), n_se=0.0)[0]
    assert fitted == pytest.approx(0.2, abs=0.03)
    assert unfitted < 0.1


def test_silent_share_counts_only_the_sites_asked_for() -> None:
    n = 1000
    llr = np.full((n, 1), 3.0)
    silent = np.zeros((n, 1), bool)
    silent[:300] = True  # sites never heard in the baseline: silent anyway
    counted = np.arange(n) >= 300
    assert silent_share(silent, llr, np.ones(1), counted=counted, n_se=0.0)[0] == 0.0


def test_floor_raises_every_groups_rate_but_not_past_the_cap() -> None:
    llr = np.zeros((400, 3))
    group = np.zeros(400, dtype="int64")
    group[200:] = 1
    floor = np.array([0.0, 0.15, 0.9])
    prior = learned_prior(llr, informed=np.ones(llr.shape, bool), group=group, floor=floor, **KW)
    assert prior[0, 0] < 0.001 and prior[399, 0] < 0.001
    np.testing.assert_allclose(prior[:, 1], 0.15)
    np.testing.assert_allclose(prior[:, 2], KW["cap"])


def test_silent_share_widens_with_the_error_of_the_silence_model() -> None:
    # Working sites silent a third of the time, the model's chance known within 30 %:
    # a calm hour's excess silence (0.4 where 0.33 was said) is no longer a failure.
    n, q = 2000, 1 / 3
    llr = np.full((n, 1), -np.log(q))
    silent = _silent_sites(n, 0.0, 0.4, seed=6)
    plain = silent_share(silent, llr, np.ones(1), counted=np.ones(n, bool), n_se=2.0)[0]
    wide = silent_share(silent, llr, np.ones(1), counted=np.ones(n, bool), n_se=2.0, rel_error=0.3)[
        0
    ]
    assert plain > 0.03 and wide == 0.0


def test_silent_share_widens_with_the_spread_measured_on_the_baseline() -> None:
    # Sites that fall silent together: an hour with 5 % more silent than said is within
    # the baseline's own swings when those are 9 times the independent variance.
    n, q = 2000, 1 / 3
    llr = np.full((n, 1), -np.log(q))
    silent = _silent_sites(n, 0.0, 0.36, seed=7)
    counted = np.ones(n, bool)
    plain = silent_share(silent, llr, np.ones(1), counted=counted, n_se=2.0)[0]
    wide = silent_share(silent, llr, np.ones(1), counted=counted, n_se=2.0, spread=np.full(1, 9.0))[
        0
    ]
    assert plain > 0.0 and wide == 0.0
