"""How telling working sites' silence is, and how much silent sites move together,
fitted on the baseline (``silence_fit``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcm.analysis import DetectionParams, build_baseline
from dcm.analysis.baseline import silence_fit

from .conftest import cells_frame, concat, measurements

START = pd.Timestamp("2024-01-01", tz="UTC")
HOURS = 24 * 28


def _site_hours(counts: np.ndarray) -> pd.DataFrame:
    site, hour = np.nonzero(counts)
    return pd.DataFrame(
        {
            "site": site,
            "hour": START.value // 3_600_000_000_000 + hour,
            "n": counts[site, hour],
        }
    )


def _fit(counts: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    sites = pd.DataFrame({"rate": np.full(counts.shape[0], rate), "reporters": np.nan})
    return silence_fit(
        _site_hours(counts),
        sites,
        np.ones(24),
        START,
        START + pd.Timedelta(hours=HOURS),
        dispersion=1e6,  # Poisson hour by hour
        span_hours=6,
    )


def test_poisson_sites_are_as_silent_as_the_model_says() -> None:
    rng = np.random.default_rng(1)
    rate = 0.3
    counts = rng.poisson(rate, size=(300, HOURS))
    scale, spread = _fit(counts, rate)
    np.testing.assert_allclose(scale, 1.0, atol=0.12)
    # Independent sites: the silent count spreads as a sum of independent ones (the
    # mean of 28 squared z per hour, so within chance of 1).
    assert spread.mean() < 1.4


def test_sites_silent_together_widen_the_spread() -> None:
    # Each 6-hour block, the whole town is busy or quiet at once (rate 0.6 or 0.05,
    # the same mean as above would give 0.325): silent counts swing far beyond what
    # independent sites allow.
    rng = np.random.default_rng(3)
    busy = np.repeat(rng.random(HOURS // 6) < 0.5, 6)
    counts = rng.poisson(np.where(busy, 0.6, 0.05)[None, :], size=(300, HOURS))
    _, spread = _fit(counts, 0.325)
    assert spread.mean() > 5.0


def test_bursty_sites_make_silence_less_telling() -> None:
    # The same mean rate, but a site is heard only in a quarter of its 6-hour blocks
    # (people come and go together): silent spans are far more common than Poisson
    # says, so each nat of silence counts less.
    rng = np.random.default_rng(2)
    rate = 0.3
    on = np.repeat(rng.random((300, HOURS // 6)) < 0.25, 6, axis=1)
    counts = rng.poisson(4 * rate * on)
    scale, _ = _fit(counts, rate)
    assert (scale < 0.6).all()


def test_a_short_baseline_keeps_the_model_as_it_is() -> None:
    counts = np.zeros((5, 8), dtype=int)
    sites = pd.DataFrame({"rate": np.full(5, 0.3), "reporters": np.nan})
    scale, spread = silence_fit(
        _site_hours(counts) if counts.any() else pd.DataFrame(columns=["site", "hour", "n"]),
        sites,
        np.ones(24),
        START,
        START + pd.Timedelta(hours=8),
        dispersion=2.0,
        span_hours=6,
    )
    np.testing.assert_array_equal(scale, np.ones(24))
    np.testing.assert_array_equal(spread, np.ones(24))


def test_the_baseline_model_carries_the_fitted_exponents() -> None:
    cells = cells_frame([("358-10", 1, 13.25, -61.20), ("358-10", 2, 13.27, -61.20)])
    base = concat(
        measurements(
            start="2024-01-01T00:00Z", hours=24 * 14, per_hour=0.5, network="358-10", cell=1
        ),
        measurements(
            start="2024-01-01T00:00Z", hours=24 * 14, per_hour=0.5, network="358-10", cell=2, seed=1
        ),
    )
    model = build_baseline(base, cells)  # on by default
    assert model.silence_scale.shape == (24,)
    assert np.isfinite(model.silence_scale).all()
    # These sightings are a Poisson stream, steadier than the model's gamma hour by
    # hour (shape at most site_dispersion_max), so silence tells more than it says.
    assert model.silence_scale.mean() > 1.0
    assert model.silence_spread.shape == (24,)
    assert (model.silence_spread >= 1.0).all()
    # Off, nothing is fitted.
    off = build_baseline(base, cells, DetectionParams(prior_silence_span=""))
    np.testing.assert_array_equal(off.silence_scale, np.ones(24))
    np.testing.assert_array_equal(off.silence_spread, np.ones(24))


@pytest.mark.parametrize("span", ["0", ""])
def test_the_bound_can_be_switched_off(span: str) -> None:
    assert DetectionParams(prior_silence_span=span).prior_silence_windows == 0
    assert DetectionParams(prior_silence_span="6h").prior_silence_windows == 6
    assert DetectionParams(prior_silence_span="6h", learn_prior=False).prior_silence_windows == 0
