"""Evidence arithmetic on dense (place × window) arrays.

Rows are (grid cell, network) keys or cells, columns are consecutive windows. All
functions are vectorised over both axes; see docs/method.md for the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, gammainc, gammaln


def cumulative(values: np.ndarray) -> np.ndarray:
    """Cumulative sums along windows with a leading zero column: C[:, j] = sum(values[:, :j])."""
    out = np.zeros((values.shape[0], values.shape[1] + 1), dtype="float64")
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def span_sum(cum: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Sum of windows [start, stop) per row and column, from :func:`cumulative` sums.

    ``start`` and ``stop`` are (rows × windows) integer arrays.
    """
    low = np.take_along_axis(cum, start, axis=1)
    if _is_next_window(stop, cum.shape[1] - 1):
        # Every span ends at the window judged (as :func:`trailing_evidence` gives it):
        # the upper sums are a slice, no gather.
        return cum[:, 1:] - low
    return np.take_along_axis(cum, stop, axis=1) - low


def _is_next_window(stop: np.ndarray, n: int) -> bool:
    """``stop`` is window index + 1 in every row, broadcast over the rows."""
    return (
        stop.ndim == 2
        and stop.shape[1] == n
        and stop.strides[0] == 0
        and stop.shape[0] > 0
        and bool(np.array_equal(stop[0], np.arange(1, n + 1)))
    )


@dataclass(frozen=True)
class SpanEvidence:
    """Evidence of each row over its trailing span, reset at the last ok report."""

    recent_ok: np.ndarray  #: bool: an ok report within the span
    ok_now: np.ndarray  #: bool: an ok report within the window itself
    start: np.ndarray  #: first window counted in full (after the last ok report)
    stop: np.ndarray  #: one past the window judged
    fails: np.ndarray  #: failure reports since the last ok report (within the span)
    expected: np.ndarray  #: expected reports since the last ok report (within the span)


def trailing_evidence(
    ok: np.ndarray,
    fail: np.ndarray,
    expected: np.ndarray,
    *,
    fail_after_ok: np.ndarray,
    share_after_ok: np.ndarray,
    span: int,
) -> SpanEvidence:
    """Accumulate failures and expected reports over the trailing ``span`` windows.

    An ok report restarts the count: only what happened after the last ok report
    (within its window: ``fail_after_ok`` reports and ``share_after_ok`` of the
    window's expected count) and in later windows is evidence of an outage now.
    """
    rows, n = ok.shape
    # int32 indices and 1-row broadcasts: these arrays are (places × windows).
    cols = np.arange(n, dtype="int32")[None, :]
    last_ok = np.maximum.accumulate(np.where(ok > 0, cols, np.int32(-1)), axis=1)
    lo = np.maximum(cols - span + 1, 0)
    recent = last_ok >= lo
    start = np.where(recent, last_ok + 1, lo).astype("int32")
    stop = np.broadcast_to(cols + 1, (rows, n))
    li = np.maximum(last_ok, 0)
    del last_ok
    fails = span_sum(cumulative(fail), start, stop) + np.where(
        recent, np.take_along_axis(fail_after_ok, li, axis=1), 0.0
    )
    exp = span_sum(cumulative(expected), start, stop) + np.where(
        recent,
        np.take_along_axis(expected, li, axis=1) * np.take_along_axis(share_after_ok, li, axis=1),
        0.0,
    )
    return SpanEvidence(
        recent_ok=recent,
        ok_now=ok > 0,
        start=start,
        stop=stop,
        fails=fails,
        expected=np.maximum(exp, 0.0),
    )


def window_sums(values: np.ndarray, span: int) -> np.ndarray:
    """Sum over the trailing ``span`` windows (no reset)."""
    rows, n = values.shape
    # Window-major work arrays: the trailing sums are differences of whole rows of the
    # cumulative sums (slices, no gathers over places × windows). The result is their
    # transpose, column-major like the gather this replaces, so later sums over places
    # add up in the same order. The first span - 1 windows subtract 0: left as they are.
    # One array, no copy: the differences are taken in place from the last window
    # back, so each subtracts a window's cumulative sum before it is itself replaced.
    out = np.empty((n, rows), dtype="float64")
    np.cumsum(values.T, axis=0, out=out)
    for w in range(n - 1, span - 1, -1):
        out[w] -= out[w - span]
    return out.T


def reporters_bound(hourly: np.ndarray, mu: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """A span's silence LLR: the hour-by-hour term ``hourly``, at most what the span's
    ``mu`` expected sightings tell when they come from a few regular reporters (a
    gamma with their number ``shape`` as shape: ``shape · log(1 + mu/shape)``; no bound
    where ``shape`` is inf)."""
    with np.errstate(invalid="ignore"):
        whole = np.where(np.isfinite(shape), shape * np.log1p(mu / shape), np.inf)
    return np.minimum(hourly, whole)


def silence_llr(
    expected: np.ndarray, activity_obs: np.ndarray, activity_exp: np.ndarray, *, dispersion: float
) -> np.ndarray:
    """Log-likelihood ratio (down vs up) of seeing no ok report where ``expected`` were due.

    Local activity a ~ Gamma(k, k) is updated by all reports from the place
    (``activity_obs`` seen where ``activity_exp`` were due), so the chance of
    silence while up is the negative-binomial zero probability
    ((k + E_a) / (k + E_a + expected)) ** (k + O_a). Its negative log is the LLR.
    """
    k = dispersion
    return (k + activity_obs) * np.log1p(expected / (k + activity_exp))


def takeover_llr(
    others: np.ndarray, named: np.ndarray, total: np.ndarray, *, prior: float
) -> np.ndarray:
    """Log-likelihood ratio (site down vs up) of ``others`` ok reports from one grid cell
    that name *other* sites of the site's network.

    In the baseline the site was named ``named`` times out of ``total`` sightings of its
    network there. While it is up, each report names it with an unknown probability
    s ~ Beta(named + prior, total - named + prior), so the chance that none of
    ``others`` does is the beta-binomial zero probability B(a, b + k) / B(a, b); while it
    is down, it is never named. A share seen on one or two baseline reports, or a run
    of reports from one phone camped on a neighbour, is weak evidence; a share seen
    on many, strong. It does not depend on how many people are around, so evacuations
    and dead batteries do not weaken it.
    """
    a = np.asarray(named, dtype="float64") + prior
    b = np.maximum(np.asarray(total, dtype="float64") - named, 0.0) + prior
    k = np.asarray(others, dtype="float64")
    return np.where(k > 0, betaln(a, b) - betaln(a, b + k), 0.0)


def activity_mean(
    activity_obs: np.ndarray, activity_exp: np.ndarray, dispersion: float
) -> np.ndarray:
    """Posterior mean of local activity (observed / expected reports, gamma-smoothed)."""
    return (dispersion + activity_obs) / (dispersion + activity_exp)


def volume_factor(
    observed: np.ndarray,
    expected: np.ndarray,
    ok: np.ndarray,
    *,
    span: int,
    min_expected: float,
    ok_sums: np.ndarray | None = None,
) -> np.ndarray:
    """Event-period measurement volume relative to the baseline, per window.

    Estimated only from places that are evidently still up (an ok report within the
    trailing span) and that expect enough reports for the ratio to mean something,
    so outages and evacuated places do not drag it down. Falls back to the ratio
    over the whole period, then 1, when too few places qualify. ``ok_sums``:
    ``window_sums(ok, span)``, when the caller has them.
    """
    obs_s = window_sums(observed, span)
    exp_s = window_sums(expected, span)
    ok_s = window_sums(ok, span) if ok_sums is None else ok_sums
    up = (ok_s > 0) & (exp_s >= min_expected)
    del ok_s
    # The places not counted are zeroed in place (the sums' own fresh arrays, in
    # their column-major order): the same sums over places as of zero-filled copies.
    out = ~up
    del up
    obs_s[out] = 0.0
    exp_s[out] = 0.0
    del out
    num = obs_s.sum(axis=0)
    den = exp_s.sum(axis=0)
    del obs_s, exp_s
    tot_up = (ok.sum(axis=1) > 0) & (expected.sum(axis=1) >= min_expected)
    glob_den = expected[tot_up].sum()
    fallback = observed[tot_up].sum() / glob_den if glob_den >= 4 * min_expected else 1.0
    factor = np.where(den >= 4 * min_expected, num / np.maximum(den, 1e-12), fallback)
    return np.clip(factor, 0.1, 10.0)


def failure_llr(
    fails: np.ndarray,
    exposure: np.ndarray,
    fail_share: np.ndarray,
    *,
    logged: float = 0.5,
    dispersion: float = np.inf,
) -> np.ndarray:
    """Log-likelihood ratio (down vs up) of ``fails`` failure reports.

    ``exposure``: reports the network would have sent meanwhile if up (already
    scaled by local activity); ``fail_share``: baseline share of failures. Up:
    fails ~ NegBin(mean lam = fail_share × exposure, shape ``dispersion``); failure
    reports come in bursts from a few phones in a coverage hole, so their count
    varies far more than a Poisson's (``dispersion`` inf: Poisson). Down: with
    probability ``logged`` the app logs failed attempts, a share rho of them, rho
    unknown and uniform on (0, 1) — marginal likelihood P(F + 1, exposure) /
    exposure (regularised lower incomplete gamma); otherwise no failure is logged
    at all. So many failures speak for down, and a silence without failures costs
    "down" at most log 2; fewer failures than a place usually sends speak for down
    only as far as the bursts make that unusual.
    """
    f = np.asarray(fails, dtype="float64")
    x = np.maximum(np.asarray(exposure, dtype="float64"), 1e-9)
    f, x = np.broadcast_arrays(f, x)
    lam = np.broadcast_to(fail_share, x.shape) * x
    r = float(dispersion)
    # -log P(0 | up): lam for a Poisson, r log(1 + lam / r) for a negative binomial.
    none_up = lam if np.isinf(r) else r * np.log1p(lam / r)
    # Most places have no failure report: P(1, x) = 1 - exp(-x), no special functions.
    out = np.log(logged * (-np.expm1(-x)) / x + (1.0 - logged)) + none_up
    some = f >= 0.5
    if some.any():
        fs, xs, ls = f[some], x[some], lam[some]
        down = np.log(logged * np.maximum(gammainc(fs + 1.0, xs), 1e-300) / xs)
        if np.isinf(r):
            up = fs * np.log(ls) - ls - gammaln(fs + 1.0)
        else:
            up = (
                gammaln(fs + r)
                - gammaln(r)
                - gammaln(fs + 1.0)
                - r * np.log1p(ls / r)
                + fs * (np.log(ls) - np.log(r + ls))
            )
        out[some] = down - up
    return out


def calibrate(p: np.ndarray, shift: float, slope: float) -> np.ndarray:
    """Platt scaling of probabilities: logit p' = shift + slope × logit p.

    0 and 1 stay 0 and 1 (a cell heard now is online whatever the scaling); NaN stays
    NaN. The identity for shift 0, slope 1.
    """
    p = np.asarray(p, dtype="float64")
    if shift == 0.0 and slope == 1.0:
        return p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logit = np.log(p) - np.log1p(-p)
        out = 1.0 / (1.0 + np.exp(-(shift + slope * logit)))
    return np.where((p <= 0.0) | (p >= 1.0), p, out)
