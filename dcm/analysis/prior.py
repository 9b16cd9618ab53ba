"""The event's failure rate, learned from the evidence itself (empirical Bayes).

In a calm week almost no site is down; in a disaster zone a tenth or more may be.
A fixed prior either floods the calm week with false alarms or makes thin data
wait a day before it can call anything down. Instead the share of sites down in
each window is estimated from the sites whose failure the evidence already
confirms under the calm-week prior, per hazard level:

    pi_t   = (base * S + C_t) / (S + N_t)                 (all informed sites)
    pi_g,t = (pi_t * G + C_g,t) / (G + N_g,t)             (hazard level g)

``C``: sites confirmed down (posterior >= ``p_down`` with the calm prior ``base``),
``N``: sites with evidence, ``S`` and ``G``: pseudo-sites of the Beta priors. The
confirmations use the fixed calm prior, so the learned rate cannot feed on itself
(a mixture fitted to all sites' silence would: an up site's time since it was last
heard is a maximum over change points, not a calibrated likelihood ratio). Sites
where failures are confirmed raise the prior of the undecided sites around them
in the same hazard level; in a calm week the rate stays at ``base``. See
docs/method.md.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit


def learned_prior(
    llr: np.ndarray,
    *,
    informed: np.ndarray,
    group: np.ndarray | None = None,
    base: float,
    strength: float,
    group_strength: float,
    cap: float,
    confirm_p: float,
    heard: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> np.ndarray:
    """Prior probability of "down" per site × window, learned per group and window.

    ``llr``: (sites × windows) log-likelihood ratios (down vs up) of each site's
    evidence. ``informed``: (sites × windows) bool, sites whose evidence counts.
    ``group``: int labels 0..G-1 per site, or per site × window (None: one group).
    ``base``: the calm-week rate, mean of the Beta prior of the overall rate, and
    ``strength`` its weight in pseudo-sites. ``group_strength``: pseudo-sites that
    pull each group's rate towards the overall one. ``confirm_p``: posterior (under
    ``base``) that counts as a confirmed failure. Rates are capped at ``cap``.

    ``heard``: (sites × windows) int, the window in which the site was last heard up
    (-1: not within its evidence span). A site known up then can only have failed
    since: its prior is the share of sites that failed in between,
    ``(pi_t - pi_j) / (1 - pi_j)`` (at least ``base``), not the share down now.
    """
    n_site, n_win = llr.shape
    if n_site == 0:
        return np.full(llr.shape, base)
    w = informed.astype("float64")
    confirmed = (expit(logit(base) + np.nan_to_num(llr, nan=0.0)) >= confirm_p) * w
    pi_t = np.minimum((base * strength + confirmed.sum(axis=0)) / (strength + w.sum(axis=0)), cap)
    low = np.zeros(n_win) if floor is None else np.minimum(floor, cap)
    if group is None or group.max() <= 0:
        pi = np.maximum(pi_t, low)[None, :]
        return _since_heard(pi, np.zeros(llr.shape, dtype="int64"), heard, base)
    group = np.broadcast_to(group.astype("int64").reshape(n_site, -1), llr.shape)
    n_group = int(group.max()) + 1
    flat = (group * n_win + np.arange(n_win)[None, :]).ravel()
    size = n_group * n_win
    c_gt = np.bincount(flat, weights=confirmed.ravel(), minlength=size).reshape(n_group, n_win)
    n_gt = np.bincount(flat, weights=w.ravel(), minlength=size).reshape(n_group, n_win)
    pi_gt = np.minimum((pi_t[None, :] * group_strength + c_gt) / (group_strength + n_gt), cap)
    return _since_heard(np.maximum(pi_gt, low[None, :]), group, heard, base)


def silent_share(
    silent: np.ndarray,
    llr: np.ndarray,
    scale: np.ndarray,
    *,
    counted: np.ndarray,
    n_se: float,
    spread: np.ndarray | float = 1.0,
    rel_error: float = 0.0,
) -> np.ndarray:
    """Per window: a lower bound of the share of sites down, from their silence alone.

    Over a fixed span a site that is down is silent for sure; one that is up is silent
    with probability ``q = exp(-c · s)``: ``s`` the silence LLR of the span (``llr``,
    sites × windows), ``c`` the window's exponent fitted on the baseline (``scale``,
    per window). So the share down has the moment estimate and standard error

        pi = sum(z - q) / sum(1 - q),   se = sqrt(sum q (1 - q)) / sum(1 - q)

    (``z``: ``silent``, sites × windows). It is measured on a fixed span, not on the time
    since each site was last heard, so it cannot feed on its own output; the bound is
    ``pi - n_se · se``, at least 0. ``counted``: sites whose silence counts (heard in
    the baseline). Sites fall silent together (a quiet night quiets many), so the
    variance is widened by ``spread`` (per window, the factor measured on the baseline's
    own spans).
    """
    q = np.exp(-scale[None, :] * np.maximum(llr, 0.0))
    w = counted.astype("float64")
    w = w[:, None] if w.ndim == 1 else w
    den = ((1.0 - q) * w).sum(axis=0)
    num = ((silent - q) * w).sum(axis=0)
    var = spread * (q * (1.0 - q) * w).sum(axis=0) + (rel_error * (q * w).sum(axis=0)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = (num - n_se * np.sqrt(var)) / den
    return np.where(den > 0, np.clip(np.nan_to_num(bound), 0.0, 1.0), 0.0)


def _since_heard(
    pi_gt: np.ndarray, group: np.ndarray, heard: np.ndarray | None, base: float
) -> np.ndarray:
    """Per site × window: the group's rate now, or for a site heard up in window j, the
    share of its group that failed since j."""
    n_win = pi_gt.shape[1]
    now = pi_gt[group, np.arange(n_win)[None, :]]
    if heard is None:
        return now
    was = pi_gt[group, np.maximum(heard, 0)]
    since = np.maximum((now - was) / np.maximum(1.0 - was, 1e-9), base)
    return np.where(heard >= 0, np.minimum(since, now), now)


def overall_rate(prior: np.ndarray, informed: np.ndarray, base: float) -> np.ndarray:
    """Per window: the mean prior of the informed sites (``base`` where there are none)."""
    w = informed.astype("float64")
    n = w.sum(axis=0)
    return np.where(n > 0, (prior * w).sum(axis=0) / np.maximum(n, 1e-12), base)


def hours_to_decide(
    prior: np.ndarray,
    *,
    llr_now: np.ndarray,
    llr_per_hour: np.ndarray,
    p_down: float,
) -> np.ndarray:
    """Hours of further silence a site needs before its p_offline reaches ``p_down``.

    ``llr_per_hour``: the evidence one silent hour adds at the site's current
    expected reporting rate. 0 where the site is already judged down; inf where
    silence adds (almost) nothing (no reporting rate known).
    """
    needed = logit(p_down) - logit(np.clip(prior, 1e-9, 1 - 1e-9)) - llr_now
    with np.errstate(divide="ignore", invalid="ignore"):
        hours = np.where(llr_per_hour > 1e-6, needed / llr_per_hour, np.inf)
    return np.where(needed <= 0, 0.0, hours)
