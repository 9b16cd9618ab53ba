"""The learned failure rate (empirical Bayes) and the hours of silence needed to decide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from dcm.analysis.prior import hours_to_decide, learned_prior, overall_rate

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
