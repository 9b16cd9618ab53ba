"""Detection: event measurements judged against the baseline, window by window.

:func:`detect` turns event measurements into a state per (grid cell, network,
window), a status per cell, and outage polygons tracked over time. It computes
only the windows asked for (plus the trailing span it needs), so a live service
can call it on each new window with the previous outages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.special import betaln, expit, logit

from dcm.analysis.baseline import Baseline
from dcm.analysis.counts import NO_TS, CellContext, EventCounts, WindowCounts
from dcm.analysis.coverage import CoverageInput, local_xy, rolling_max
from dcm.analysis.evidence import (
    activity_mean,
    calibrate,
    cumulative,
    failure_llr,
    reporters_bound,
    silence_llr,
    span_sum,
    takeover_llr,
    trailing_evidence,
    volume_factor,
    window_sums,
)
from dcm.analysis.grid import neighbour_pairs, to_strings
from dcm.analysis.grouping import match_rows
from dcm.analysis.outages import build_outages
from dcm.analysis.params import DetectionParams
from dcm.analysis.prior import hours_to_decide, learned_prior, overall_rate, silent_share
from dcm.analysis.states import (
    DOWN,
    NO_DATA,
    STATE_CODES,
    UNCERTAIN,
    UP,
    all_network_state,
    rows_to_groups,
)
from dcm.errors import ParameterError
from dcm.memory import release_freed_memory
from dcm.schema import ALL_NETWORKS, CELL_STATUS_COLUMNS, empty_frame


@dataclass(frozen=True)
class Detection:
    """Everything :func:`detect` found.

    ``grid``: dcm.schema.GRID_STATUS_COLUMNS, per network and ``"all"`` (no rows when
    they went to :func:`detect`'s ``grid_sink``).
    ``cells``: dcm.schema.CELL_STATUS_COLUMNS status intervals.
    ``cell_windows``: per cell and window: ``cell`` (row of ``baseline.cells``),
    ``window_start``, ``status``, ``p_offline``, ``silence_h_needed`` and
    ``silence_llr_per_h`` (the evidence one silent hour adds at the cell's site).
    ``outages``: dcm.schema.OUTAGE_COLUMNS + ``restored``, ``hexes`` and geometry.
    ``volume``: event volume factor per window.
    """

    windows: pd.DatetimeIndex
    grid: pd.DataFrame
    cells: pd.DataFrame
    cell_windows: pd.DataFrame
    outages: gpd.GeoDataFrame
    volume: pd.Series
    stats: dict[str, float] = field(default_factory=dict)


def event_windows(
    event: pd.DataFrame | EventCounts, *, window: pd.Timedelta, at: pd.Timestamp | None = None
) -> pd.DatetimeIndex:
    """Window starts covering the event measurements (or the one window holding ``at``);
    ``event``: the measurements or their counts."""
    if at is not None:
        at = pd.Timestamp(at)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        return pd.DatetimeIndex([at.floor(window)])
    if _rows(event) == 0:
        raise ParameterError("event: no measurements, no windows to judge")
    first, last = _time_range(event)
    start = first.floor(window)
    end = last.floor(window)
    return pd.date_range(start, end, freq=window, name="window_start")


def _rows(event: pd.DataFrame | EventCounts) -> int:
    return event.rows if isinstance(event, EventCounts) else len(event)


def _time_range(event: pd.DataFrame | EventCounts) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last measurement time (UTC) of measurements or their counts."""
    if isinstance(event, EventCounts):
        return pd.Timestamp(event.ts_min, tz="UTC"), pd.Timestamp(event.ts_max, tz="UTC")
    return event["timestamp"].min(), event["timestamp"].max()


def detect(
    baseline: Baseline,
    event: pd.DataFrame | EventCounts,
    *,
    params: DetectionParams | None = None,
    windows: pd.DatetimeIndex | None = None,
    population: pd.DataFrame | None = None,
    previous: gpd.GeoDataFrame | None = None,
    hazard: gpd.GeoDataFrame | None = None,
    grid_sink: Callable[[pd.DataFrame], None] | None = None,
) -> Detection:
    """Judge ``event`` measurements window by window against ``baseline``.

    ``windows``: window starts to report (default: every window of the event data);
    earlier event data within the trailing span is used as evidence. ``population``:
    dcm.schema.POPULATION_COLUMNS points. ``previous``: outages of the window just
    before the first requested one, whose ids carry over. ``hazard``: footprints with
    a ``rank`` (higher is worse, as :func:`dcm.ingest.read_hazard` gives them): the
    event's failure rate is learned per hazard level.

    ``event`` is a measurement frame (counted here as one chunk) or the merged
    :class:`~dcm.analysis.counts.EventCounts` of all event measurements, counted with
    the baseline's cells and networks (:func:`count_event`).

    ``grid_sink``: called with the grid rows part by part, in order (frames whose
    concatenation is what ``grid`` would be: millions of rows for a large event); the
    whole frame is then never built and ``Detection.grid`` holds no rows.
    """
    params = params or baseline.params
    if params.resolution != baseline.params.resolution:
        raise ParameterError("params.resolution differs from the baseline's resolution")
    win = params.window_td
    win_ns = int(win.value)
    out_windows = (
        event_windows(event, window=win)
        if windows is None
        else pd.DatetimeIndex(windows).tz_convert("UTC")
    )
    lookback = max(params.span_windows, params.volume_windows)
    t0 = out_windows.min() - lookback * win
    if _rows(event):
        t0 = max(t0, _time_range(event)[0].floor(win))
    n_win = int((out_windows.max() - t0) // win) + 1
    all_windows = pd.date_range(t0, periods=n_win, freq=win)

    counts = (
        event
        if isinstance(event, EventCounts)
        else count_event(baseline, event, params=params, phase=out_windows.min().value % win_ns)
    )
    if counts.window_ns != win_ns or (t0.value - counts.phase) % win_ns:
        raise ParameterError("requested windows are not aligned to the window length")
    prep = counts.in_windows((t0.value - counts.phase) // win_ns, n_win)
    keys = _keys(baseline, prep)
    grid_ev = _grid_evidence(baseline, keys, prep, all_windows, params)
    # The pages the steps' temporaries held go back to the system before the next step.
    release_freed_memory()
    out_cols = all_windows.get_indexer(out_windows)
    if (out_cols < 0).any():
        raise ParameterError("requested windows are not aligned to the window length")

    pairs = hex_pairs(keys)
    # After the site evidence only the grid rows read the counts, in float32: halves
    # what stays. The site evidence is the last reader of the float64 ones.
    key64 = {name: grid_ev[name] for name in ("fail", "expected")}
    for name in ("fail", "expected"):
        grid_ev[name] = grid_ev[name].astype("float32")
    site_ev = _site_evidence(
        baseline,
        keys,
        grid_ev,
        prep,
        all_windows,
        params,
        hazard_rank=site_hazard_rank(baseline.sites, hazard),
        # Large (places × windows) arrays go as soon as their last reader is done:
        # these are read there once (named_ok is reduced there in place).
        named_ok=grid_ev.pop("named_ok"),
        act_obs=grid_ev.pop("act_obs"),
        act_exp=grid_ev.pop("act_exp"),
        key_fail=key64.pop("fail"),
        key_expected=key64.pop("expected"),
    )
    release_freed_memory()
    grid_ev["p"], grid_ev["state"] = _grid_states(keys, grid_ev, site_ev, pairs, params)
    for name in ("informed", "ok_recent", "llr"):
        grid_ev.pop(name)
    grid_ev["p"] = grid_ev["p"].astype("float32")
    release_freed_memory()
    cell_ev = _cell_evidence(
        baseline,
        keys,
        grid_ev,
        site_ev,
        grid_ev["p"],
        grid_ev["state"],
        params,
        sectors=site_ev["sectors"],
    )
    coverage = _coverage_input(baseline, prep, site_ev, n_win, out_cols, params)
    del site_ev  # its last reader: a dozen (sites × windows) arrays
    state_out = _reported(grid_ev["state"], out_cols)
    p_out = _reported(grid_ev["p"], out_cols)
    # The "all networks" layer of the reported windows feeds both the grid rows and
    # the outages: compute it once.
    all_layer = all_network_state(keys, state_out, p_out, pairs)
    cell_windows = pd.DataFrame(
        {
            "cell": np.repeat(np.arange(len(baseline.cells)), out_cols.size),
            # Indexing keeps the datetime dtype; tiling to_numpy() would tile Timestamp objects.
            "window_start": out_windows[np.tile(np.arange(out_cols.size), len(baseline.cells))],
            "status": cell_ev["status"][:, out_cols].ravel(),
            "p_offline": cell_ev["p"][:, out_cols].ravel(),
            "silence_h_needed": cell_ev["hours"][:, out_cols].ravel(),
            "silence_llr_per_h": cell_ev["per_hour"][:, out_cols].ravel(),
        },
        copy=False,  # fresh arrays: not copied again into one block
    )
    cell_offline = cell_ev["status"][:, out_cols] == "offline"
    del cell_ev
    cells = _cell_intervals(baseline.cells, cell_windows, win)
    release_freed_memory()
    outages = build_outages(
        coverage=coverage,
        keys=keys,
        state=state_out,
        p_down=p_out,
        windows=out_windows,
        window=win,
        networks=baseline.networks,
        params=params,
        population=population,
        cells=baseline.cells,
        cell_offline=cell_offline,
        pairs=pairs,
        previous=previous,
        all_layer=all_layer,
    )
    # The grid rows last: the largest frame is built when the site, cell and coverage
    # arrays are gone.
    del coverage, cell_offline, state_out, p_out
    release_freed_memory()
    rows = _GridRows(keys, grid_ev, all_layer, all_windows, out_cols, baseline, win)
    if grid_sink is None:
        grid = rows.whole()
    else:
        for part in rows.frames():
            grid_sink(part)
        grid = rows.empty()
    del rows
    vol = pd.Series(grid_ev["volume"][out_cols], index=out_windows, name="volume_factor")
    stats = {
        "event_measurements": float(counts.rows),
        "event_used": float(prep.grid["n"].sum()),
        "keys": float(len(keys)),
        "windows": float(out_cols.size),
    }
    return Detection(
        windows=out_windows,
        grid=grid,
        cells=cells,
        cell_windows=cell_windows,
        outages=outages,
        volume=vol,
        stats=stats,
    )


def _reported(values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The reported windows' columns of a (keys × windows) array: a read-only view when
    they are all the columns in order (no copy), else a copy."""
    if cols.size == values.shape[1] and np.array_equal(cols, np.arange(cols.size)):
        view = values.view()
        view.flags.writeable = False
        return view
    return values[:, cols]


def count_event(
    baseline: Baseline,
    event: pd.DataFrame,
    *,
    params: DetectionParams | None = None,
    phase: int = 0,
    cells: CellContext | None = None,
) -> EventCounts:
    """Counts of (a chunk of) event measurements, with the baseline's cells and
    networks; windows start ``phase`` ns past a multiple of the window length."""
    params = params or baseline.params
    ctx = cells or CellContext.of(baseline.cells, prepared=True)
    return EventCounts.from_frame(event, ctx, params, networks=baseline.networks, phase=phase)


def _keys(baseline: Baseline, prep: WindowCounts) -> pd.DataFrame:
    """(h3, network) rows: every baseline pair plus pairs first seen in the event."""
    base = baseline.grid[["h3", "network", "rate", "fail_share", "served"]]
    seen = prep.grid.loc[prep.grid["network"] >= 0, ["h3", "network"]]
    ev = seen.drop_duplicates()
    keys = base.merge(ev, on=["h3", "network"], how="outer", sort=True)
    keys["rate"] = keys["rate"].fillna(0.0)
    keys["served"] = keys["served"].astype("boolean").fillna(False).astype(bool)
    keys["fail_share"] = keys["fail_share"].fillna(
        pd.Series(baseline.network_fail_share[keys["network"]], index=keys.index)
    )
    keys["hex"] = pd.factorize(keys["h3"])[0]
    return keys.reset_index(drop=True)


def key_rows(keys: pd.DataFrame, h3: np.ndarray, network: np.ndarray) -> np.ndarray:
    """Row of ``keys`` (:func:`_keys`: unique (h3, network) pairs) holding each
    (``h3``, ``network``) pair; -1 where there is none (``MultiIndex.get_indexer``
    without building two MultiIndexes: :func:`dcm.analysis.grouping.match_rows`)."""
    h3 = np.asarray(h3)
    if len(keys) == 0 or h3.size == 0:
        return np.full(h3.size, -1, dtype="int64")
    return match_rows(
        [keys["h3"].to_numpy("int64"), keys["network"].to_numpy("int64")],
        [h3.astype("int64", copy=False), np.asarray(network, dtype="int64")],
    )


def _window_profile(baseline: Baseline, windows: pd.DatetimeIndex, win: pd.Timedelta) -> np.ndarray:
    """Mean hour-of-day multiplier over each window."""
    per_hour = max(int(win / pd.Timedelta(hours=1)), 1)
    hours = (windows.hour.to_numpy()[:, None] + np.arange(per_hour)[None, :]) % 24
    return baseline.hour_profile[hours].mean(axis=1)


#: Keys per block of the grid evidence's row-wise arithmetic (bounds its temporaries).
EVIDENCE_BLOCK_ROWS = 16_384


def _grid_evidence(
    baseline: Baseline,
    keys: pd.DataFrame,
    prep: WindowCounts,
    windows: pd.DatetimeIndex,
    params: DetectionParams,
) -> dict[str, np.ndarray]:
    """Counts, expectations, log-likelihood ratios, posteriors and states per key × window."""
    n_key, n_win = len(keys), len(windows)
    win = params.window_td
    win_h = win / pd.Timedelta(hours=1)
    g = prep.grid[prep.grid["network"] >= 0]
    key_row = key_rows(keys, g["h3"].to_numpy(), g["network"].to_numpy())
    flat = key_row * n_win + g["w"].to_numpy()
    size = n_key * n_win

    def dense(col: str) -> np.ndarray:
        values = g[col].to_numpy("float64")
        return np.bincount(flat, weights=values, minlength=size).reshape(n_key, n_win)

    ok = dense("ok")
    fail = dense("fail")

    profile = _window_profile(baseline, windows, win)
    expected = keys["rate"].to_numpy()[:, None] * profile[None, :] * win_h
    span = params.span_windows
    # The ok reports' trailing sums: read by the volume factor (when its span is the
    # evidence span) and by the activity below, computed once.
    ok_sums = window_sums(ok, span)
    volume = volume_factor(
        ok + fail,
        expected,
        ok,
        span=params.volume_windows,
        min_expected=params.volume_min_expected,
        ok_sums=ok_sums if params.volume_windows == span else None,
    )
    expected *= volume[None, :]

    # Activity of the place (all networks, all statuses, plus reports without a network).
    hex_of_key = keys["hex"].to_numpy()
    n_hex = int(hex_of_key.max()) + 1 if n_key else 0
    hex_lookup = pd.Index(keys.drop_duplicates("hex")["h3"].to_numpy())
    hex_row = hex_lookup.get_indexer(prep.grid["h3"].to_numpy())
    hsel = hex_row >= 0
    obs_hex = np.bincount(
        hex_row[hsel] * n_win + prep.grid["w"].to_numpy()[hsel],
        weights=prep.grid["n"].to_numpy("float64")[hsel],
        minlength=n_hex * n_win,
    ).reshape(n_hex, n_win)
    exp_hex = rows_to_groups(hex_of_key, n_hex) @ expected
    # Activity seen by the *other* networks (and this network's failure reports): the
    # network's own silence is what is being judged, so it must not explain itself.
    act_obs = window_sums(obs_hex, span)[hex_of_key]
    act_obs -= ok_sums
    del ok_sums
    act_obs = np.maximum(act_obs, 0.0, out=act_obs)
    act_exp = window_sums(exp_hex, span)[hex_of_key]
    act_exp -= window_sums(expected, span)
    act_exp = np.maximum(act_exp, 0.0, out=act_exp)
    # From here on only the grid rows read the places' counts, in float32.
    obs_hex, exp_hex = obs_hex.astype("float32"), exp_hex.astype("float32")

    # Share of each (key, window) after its last ok report: failures before it are
    # stale. Written where the window has an ok report (one counted row per key and
    # window), zero elsewhere.
    fail_after = dense("fail_after")
    win_end = (windows + win).to_numpy(dtype="datetime64[ns]").view("int64")
    last_ok = g["last_ok"].to_numpy()
    with_ok = (g["ok"].to_numpy() > 0) & (last_ok > NO_TS)
    share_after = np.zeros(size)
    share_after[flat[with_ok]] = (
        win_end[g["w"].to_numpy()[with_ok]] - last_ok[with_ok]
    ) / win.value
    share_after = np.clip(share_after, 0.0, 1.0, out=share_after).reshape(n_key, n_win)

    # The trailing evidence and the log-likelihood ratios, block of keys by block:
    # every value depends on its own row only, and the temporaries (the largest of the
    # judging step) stay the size of a block.
    # Of the span sums, the states read only whether the grid cell's own data can
    # tell (enough reports due, or failure reports): kept as that.
    informed = np.empty((n_key, n_win), dtype=bool)
    llr = np.empty((n_key, n_win))
    fail_share = keys["fail_share"].to_numpy()[:, None]
    for a in range(0, n_key, EVIDENCE_BLOCK_ROWS):
        b = slice(a, a + EVIDENCE_BLOCK_ROWS)
        ev = trailing_evidence(
            ok[b],
            fail[b],
            expected[b],
            fail_after_ok=fail_after[b],
            share_after_ok=share_after[b],
            span=span,
        )
        informed[b] = (ev.expected >= params.min_expected) | (ev.fails > 0)
        llr[b] = (
            np.where(ev.ok_now, np.log(params.ok_when_down), 0.0)
            + silence_llr(
                ev.expected * (1 - fail_share[b]),
                act_obs[b],
                act_exp[b],
                dispersion=params.dispersion,
            )
            + failure_llr(
                np.minimum(ev.fails, params.max_fail_reports),
                ev.expected * activity_mean(act_obs[b], act_exp[b], params.dispersion),
                fail_share[b],
                dispersion=params.fail_dispersion,
            )
        )
        del ev
    del fail_after, share_after
    # Ok reports that name a known cell: only those can name a site (or another one).
    named = dense("named")
    # An ok report within the last ok_memory_windows windows (the age of the last one).
    cols = np.arange(n_win, dtype="int32")[None, :]
    last_ok_win = np.maximum.accumulate(np.where(ok > 0, cols, np.int32(-(10**6))), axis=1)
    ok_age = np.subtract(cols, last_ok_win, out=last_ok_win)
    ok_recent = ok_age < params.ok_memory_windows
    del ok_age, last_ok_win
    return {
        "ok": ok.astype("float32"),  # read in float64 only here (exact: counts)
        "named_ok": named,
        "fail": fail,
        "expected": expected,
        "informed": informed,
        "llr": llr,
        "ok_recent": ok_recent,
        "fail_share": fail_share,
        "volume": volume,
        "act_obs": act_obs,
        "act_exp": act_exp,
        "obs_hex": obs_hex,
        "exp_hex": exp_hex,
    }


def hex_pairs(keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Touching (k = 1 ring) pairs of the keys' grid cells, as ``hex`` numbers."""
    return neighbour_pairs(keys.drop_duplicates("hex").sort_values("hex")["h3"].to_numpy())


def _neighbour_matrix(
    keys: pd.DataFrame, pairs: tuple[np.ndarray, np.ndarray]
) -> sparse.csr_matrix:
    """Sparse (key × key) mean over the six H3 neighbours of the same network."""
    a, b = pairs
    touching = pd.DataFrame({"hex": a, "hex_b": b})
    left = keys[["hex", "network"]].reset_index(names="ka").merge(touching, on="hex")
    right = keys[["hex", "network"]].reset_index(names="kb").rename(columns={"hex": "hex_b"})
    both = left.merge(right, on=["hex_b", "network"])
    n = len(keys)
    return sparse.csr_matrix(
        (np.full(len(both), 1.0 / 6.0), (both["ka"].to_numpy(), both["kb"].to_numpy())),
        shape=(n, n),
    )


def _sightings_by(owner: np.ndarray, key_of_row: np.ndarray, seen: pd.DataFrame) -> pd.DataFrame:
    """Ok reports naming each ``owner`` (a site or cell row per sighting; -1: none),
    summed per (owner as ``site``, ``key``, ``w``); sightings without a key row left out."""
    named = (owner >= 0) & (key_of_row >= 0)
    return (
        pd.DataFrame(
            {
                "site": owner[named],
                "key": key_of_row[named],
                "w": seen["w"].to_numpy()[named],
                "n": seen["n"].to_numpy()[named],
            }
        )
        .groupby(["site", "key", "w"], as_index=False)["n"]
        .sum()
    )


def _takeover(
    areas: pd.DataFrame,
    key_idx: np.ndarray,
    ok: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    sightings: pd.DataFrame,
    siblings: tuple[np.ndarray, np.ndarray],
    params: DetectionParams,
    counted: np.ndarray | None = None,
) -> np.ndarray:
    """Takeover evidence per site × window: :func:`~dcm.analysis.evidence.takeover_llr`
    of the ok reports since the site was last heard, summed over the grid cells of its
    footprint (``areas``: its baseline sightings there, ``key_idx``: their key rows).

    Reports naming one of the site's ``siblings`` (site, sibling: sites of its network
    close enough to share its mast) are left out, and so are the siblings' baseline
    sightings: another radio of the same mast taking the night's few reports says
    nothing about this one. ``sightings``: ok reports naming a site, counted per
    (``site``, ``key``, ``w``). ``counted``: (sites × windows) bool, the windows whose
    reports count (None: all). Worked through in blocks of (site, grid cell) pairs, so
    memory stays bounded by the block, not by pairs × windows.
    """
    n_site, n_win = start.shape
    out = np.zeros((n_site, n_win))
    if len(areas) == 0:
        return out
    site = areas["site"].to_numpy()
    order = np.argsort(site, kind="stable")
    site, key = site[order], key_idx[order]
    named = areas["count"].to_numpy("float64")[order]
    total = named / np.maximum(areas["share_of_hex"].to_numpy("float64")[order], 1e-12)
    pair = pd.DataFrame({"site": site, "key": key, "pair": np.arange(site.size)})
    sib = pd.DataFrame({"site": siblings[0], "sibling": siblings[1]})
    # Siblings' baseline sightings in the site's grid cells leave the total.
    sib_base = (
        pd.DataFrame({"sibling": site, "key": key, "n": named})
        .merge(sib, on="sibling")
        .merge(pair, on=["site", "key"])
        .groupby("pair")["n"]
        .sum()
    )
    total[sib_base.index.to_numpy()] -= sib_base.to_numpy()
    # Siblings' reports in the site's grid cells, per pair and window, cumulated.
    sib_seen = (
        sightings.rename(columns={"site": "sibling"})
        .merge(sib, on="sibling")
        .merge(pair, on=["site", "key"])
        .groupby(["pair", "w"], as_index=False)["n"]
        .sum()
    )
    hit, row = np.unique(sib_seen["pair"].to_numpy(), return_inverse=True)
    less = np.zeros((hit.size, n_win))
    np.add.at(less, (row, sib_seen["w"].to_numpy()), sib_seen["n"].to_numpy("float64"))
    slot = np.full(site.size, -1)
    slot[hit] = np.arange(hit.size)
    stop = np.broadcast_to(stop, start.shape)
    cap = params.takeover_per_window
    block = max(1, 2_000_000 // max(n_win, 1))
    for lo in range(0, site.size, block):
        s, k = site[lo : lo + block], key[lo : lo + block]
        per = ok[k].astype("float64")
        sl = slot[lo : lo + block]
        fix = np.flatnonzero(sl >= 0)
        if fix.size:
            per[fix] -= less[sl[fix]]
        if counted is not None:
            per *= counted[s]
        # A burst of reports from one place in one window is mostly one phone's.
        cum = cumulative(np.clip(per, 0.0, cap))
        # Rows of a broadcast stop are all alike: broadcast again (not gathered), so
        # span_sum reads the upper sums as a slice when they end at the window judged.
        stop_s = np.broadcast_to(stop[0], (s.size, n_win)) if stop.strides[0] == 0 else stop[s]
        seen = span_sum(cum, start[s], stop_s)
        # Only (pair, window)s with reports naming other sites carry evidence (the
        # llr of none is 0): the special functions run on those alone.
        r, c = np.nonzero(seen > 0)
        nb = named[lo : lo + block]
        llr = np.zeros(seen.shape)
        llr[r, c] = takeover_llr(
            seen[r, c],
            nb[r],
            np.maximum(total[lo : lo + block], nb)[r],
            prior=params.takeover_prior,
        )
        first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        out[s[first]] += np.add.reduceat(llr, first, axis=0)
    return out


def _device_takeover(
    areas: pd.DataFrame,
    key_idx: np.ndarray,
    seen: pd.DataFrame,
    seen_devices: np.ndarray,
    habits: pd.DataFrame,
    network: np.ndarray,
    start: np.ndarray,
    siblings: tuple[np.ndarray, np.ndarray],
    params: DetectionParams,
) -> np.ndarray:
    """Takeover evidence per site × window from ok reports that carry a device id.

    Phones that, since the site was last heard, reported from one of its grid cells
    naming another site of its network (not a sibling):

    * A phone with a baseline habit there (``n`` sightings of the network in that grid
      cell, ``n_site`` of them naming this site) counts by that habit: its chance of
      naming the site while it is up is s_d ~ Beta(n_site + α·s, n − n_site + α·(1 −
      s)), shrunk by ``habit_prior`` α towards the site's share s of the grid cell's
      phones (below); k windows in which it named others give the beta-binomial
      −log E[(1 − s_d)^k]. A phone that always used the site and now names a
      neighbour is strong evidence, one that used others little.
    * Phones never seen there (visitors) share the site's unknown share of the
      grid cell's phones, each phone's habit weighing the same (its report share where
      no phone is known there): k of them are the beta-binomial of
      :func:`~dcm.analysis.evidence.takeover_llr` with the phones as the sample
      (evidence that saturates).

    ``seen``: (site, key, w, device) of the event's reports (device codes into
    ``seen_devices``); ``habits``: :attr:`Baseline.habits`; ``network``: network of
    each site; ``start``: first window of each site × window's evidence span.
    """
    n_site, n_win = start.shape
    out = np.zeros((n_site, n_win))
    if len(areas) == 0 or seen.empty:
        return out
    named = areas["count"].to_numpy("float64")
    share = areas["share_of_hex"].to_numpy("float64")
    total = named / np.maximum(share, 1e-12)
    pairs = pd.DataFrame(
        {
            "pair": np.arange(len(areas), dtype="int64"),
            "target": areas["site"].to_numpy("int64"),
            "key": key_idx,
            "h3": areas["h3"].to_numpy("int64"),
        }
    )
    rows = seen[["site", "key", "w", "device"]].merge(pairs, on="key")
    other = rows["site"].to_numpy() != rows["target"].to_numpy()
    if siblings[0].size:
        code = rows["target"].to_numpy() * n_site + rows["site"].to_numpy()
        other &= ~np.isin(code, siblings[0] * n_site + siblings[1])
    rows = rows.loc[other, ["pair", "target", "h3", "w", "device"]]
    if rows.empty:
        return out
    rows = rows.drop_duplicates(["pair", "device", "w"])
    # Each event phone's code in the baseline habits (-1: no habit anywhere).
    categories = habits["device"].cat.categories
    lookup = pd.Index(categories).get_indexer(pd.Index(seen_devices))
    rows["habit"] = lookup[rows["device"].to_numpy()]
    hab = pd.DataFrame(
        {
            "target": habits["site"].to_numpy("int64"),
            "h3": habits["h3"].to_numpy("int64"),
            "habit": habits["device"].cat.codes.to_numpy("int64"),
            "n": habits["n"].to_numpy("float64"),
        }
    )
    own = rows.merge(hab, on=["target", "h3", "habit"], how="left")["n"].fillna(0.0)
    hab["network"] = network[hab["target"].to_numpy()]
    every = hab.groupby(["h3", "network", "habit"], as_index=False)["n"].sum()
    rows["network"] = network[rows["target"].to_numpy()]
    seen_there = rows.merge(every, on=["h3", "network", "habit"], how="left")["n"].fillna(0.0)
    n_own, n_all = own.to_numpy(), seen_there.to_numpy()
    if siblings[0].size:
        # The phone's sightings of the site's siblings (other radios of its mast) are
        # neither for nor against it, as their reports are not takeover.
        sib = pd.DataFrame({"target": siblings[0], "sibling": siblings[1]})
        of_sib = (
            hab.rename(columns={"target": "sibling"})
            .merge(sib, on="sibling")
            .groupby(["target", "h3", "habit"], as_index=False)["n"]
            .sum()
        )
        n_sib = rows.merge(of_sib, on=["target", "h3", "habit"], how="left")["n"].fillna(0.0)
        n_all = np.maximum(n_all - n_sib.to_numpy(), n_own)
    # The site's share of the phones in each grid cell: every phone's habit weighs
    # the same (one heavy reporter at home does not make a site the place's server).
    hab = hab.merge(every.rename(columns={"n": "n_all"}), on=["h3", "network", "habit"])
    hab["frac"] = hab["n"] / hab["n_all"]
    phones = every.groupby(["h3", "network"]).size().rename("phones").reset_index()
    held = hab.groupby(["target", "h3"], as_index=False)["frac"].sum()
    pairs["network"] = network[pairs["target"].to_numpy()]
    pairs = pairs.merge(held, on=["target", "h3"], how="left").merge(
        phones, on=["h3", "network"], how="left"
    )
    phone_named = pairs["frac"].fillna(0.0).to_numpy()
    phone_total = pairs["phones"].fillna(0.0).to_numpy("float64")
    by_phone = phone_total > 0
    named = np.where(by_phone, phone_named, named)
    total = np.where(by_phone, phone_total, total)
    pair = rows["pair"].to_numpy()
    p0 = params.takeover_prior
    mean = (named[pair] + p0) / (np.maximum(total[pair], named[pair]) + 2 * p0)
    a = n_own + params.habit_prior * mean
    b = np.maximum(n_all - n_own, 0.0) + params.habit_prior * (1.0 - mean)
    known = n_all > 0
    # Each report counts from its window until the span no longer reaches back to it;
    # a visitor counts once (until its latest report leaves the span).
    target = rows["target"].to_numpy()
    w = rows["w"].to_numpy("int64")
    device = rows["device"].to_numpy("int64")
    order = np.lexsort((w, device, pair))
    pair, target, w, device = pair[order], target[order], w[order], device[order]
    a, b, known = a[order], b[order], known[order]
    same = np.r_[(pair[1:] == pair[:-1]) & (device[1:] == device[:-1]), False]
    nxt = np.where(same, np.r_[w[1:], n_win], n_win)
    stride = n_win + 2
    flat = (np.arange(n_site, dtype="int64")[:, None] * stride + start).ravel()
    reach = np.searchsorted(flat, target * stride + w, side="right") - target * n_win
    live = reach > w
    # Phones with a habit there: k of their windows in the span, beta-binomial on
    # their own share, worked through in blocks of phones.
    k = np.flatnonzero(live & known)
    if k.size:
        first = np.r_[True, (pair[k][1:] != pair[k][:-1]) | (device[k][1:] != device[k][:-1])]
        phone = np.cumsum(first) - 1
        heads = k[first]
        block = max(1, 2_000_000 // max(n_win, 1))
        for lo in range(0, heads.size, block):
            sel = (phone >= lo) & (phone < lo + block)
            slot = phone[sel] - lo
            count = np.zeros((min(block, heads.size - lo), n_win + 1))
            np.add.at(count, (slot, w[k][sel]), 1.0)
            np.add.at(count, (slot, reach[k][sel]), -1.0)
            count = np.cumsum(count, axis=1)[:, :n_win]
            r, c = np.nonzero(count > 0)
            h = heads[lo : lo + block]
            llr = np.zeros(count.shape)
            llr[r, c] = betaln(a[h][r], b[h][r]) - betaln(a[h][r], b[h][r] + count[r, c])
            np.add.at(out, target[h], llr)
    # Phones never seen there: how many per pair and window, then the beta-binomial.
    end = np.minimum(nxt, reach)
    u = (end > w) & ~known
    if u.any():
        hit, slot = np.unique(pair[u], return_inverse=True)
        count = np.zeros((hit.size, n_win + 1))
        np.add.at(count, (slot, w[u]), 1.0)
        np.add.at(count, (slot, end[u]), -1.0)
        k_u = np.cumsum(count, axis=1)[:, :n_win]
        r, c = np.nonzero(k_u > 0)
        llr_u = np.zeros(k_u.shape)
        llr_u[r, c] = takeover_llr(
            k_u[r, c],
            named[hit][r],
            np.maximum(total[hit], named[hit])[r],
            prior=p0,
        )
        np.add.at(out, areas["site"].to_numpy("int64")[hit], llr_u)
    return out


def _siblings(baseline: Baseline, params: DetectionParams) -> tuple[np.ndarray, np.ndarray]:
    """(site, sibling) pairs, both ways: sites of one network that share no radio and
    stand within ``params.sibling_m`` of each other or serve the same places (baseline
    footprints overlapping by at least ``params.sibling_overlap``, see
    :func:`_footprint_overlap`). A mast carries one base station per radio, often kept
    as separate sites (unrelated ids, positions estimated hundreds of metres or more
    apart, each pulled toward where it is heard), and its radios serve the same grid
    cells; two sites with a radio in common are two masts."""
    sites = baseline.sites
    n = len(sites)
    if params.sibling_m <= 0 or n < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    near = _near_sites(sites, params.sibling_m)
    if params.sibling_overlap <= 1.0:
        alike = _footprint_overlap(baseline.site_areas, n)
        alike.data = (alike.data >= params.sibling_overlap).astype("float64")
        near = near + alike
    near = near.tocoo()
    network = sites["network"].to_numpy("int64")
    radio = pd.factorize(baseline.cells["radio"].astype("string").fillna(""))[0]
    mask = np.zeros(n, dtype=np.int64)
    on = baseline.cell_site >= 0
    np.bitwise_or.at(mask, baseline.cell_site[on], np.left_shift(1, radio[on]).astype(np.int64))
    keep = (
        (near.data > 0)
        & (near.row != near.col)
        & (network[near.row] == network[near.col])
        & ((mask[near.row] & mask[near.col]) == 0)
    )
    return near.row[keep].astype(np.int64), near.col[keep].astype(np.int64)


def _footprint_overlap(site_areas: pd.DataFrame, n_site: int) -> sparse.csr_matrix:
    """Sparse (site × site): the Bhattacharyya coefficient of two sites' baseline
    footprints, sum over grid cells of sqrt(a_h * b_h) where a_h is the share of site
    a's sightings made in grid cell h (1: the same places in the same proportions, 0:
    no place in common). Only pairs sharing a grid cell are stored."""
    if len(site_areas) == 0:
        return sparse.csr_matrix((n_site, n_site))
    site = site_areas["site"].to_numpy()
    _, col = np.unique(site_areas["h3"].to_numpy(), return_inverse=True)
    count = site_areas["count"].to_numpy("float64")
    total = np.bincount(site, weights=count, minlength=n_site)
    root = sparse.csr_matrix(
        (np.sqrt(count / np.maximum(total[site], 1e-12)), (site, col)),
        shape=(n_site, int(col.max()) + 1),
    )
    return (root @ root.T).tocsr()


def _site_evidence(
    baseline: Baseline,
    keys: pd.DataFrame,
    ev: dict[str, np.ndarray],
    prep: WindowCounts,
    windows: pd.DatetimeIndex,
    params: DetectionParams,
    *,
    hazard_rank: np.ndarray | None = None,
    named_ok: np.ndarray,
    act_obs: np.ndarray,
    act_exp: np.ndarray,
    key_fail: np.ndarray,
    key_expected: np.ndarray,
) -> dict[str, Any]:
    """p_offline per site × window.

    ``named_ok``: the grid evidence's ok reports naming a known cell, per key × window
    (changed in place: less the reports with a device id, when those are judged apart);
    ``act_obs``, ``act_exp``: its activity of the other networks, key × window (read
    once, into the sites' footprints); ``key_fail``, ``key_expected``: its failure
    reports and expected reports, key × window, float64 (read once, likewise). ``ev``: the rest of
    the grid evidence.

    A site is heard when an ok report names one of its cells; that is direct
    evidence it is up. Its silence since it was last heard is judged against its
    baseline sighting rate, corroborated by the activity of all networks in its
    service area (people still reporting there, on any network, make the silence
    telling), and failure reports of its network there add to it.
    """
    sites = baseline.sites
    n_site, n_win = len(sites), len(windows)
    win = params.window_td
    seen = prep.sightings
    site_row = baseline.cell_site[seen["cell"].to_numpy()]
    flat = site_row * n_win + seen["w"].to_numpy()
    heard = np.bincount(
        flat, weights=seen["n"].to_numpy("float64"), minlength=n_site * n_win
    ).reshape(n_site, n_win)
    last = seen["last"].groupby(flat).max()
    share_flat = np.zeros(n_site * n_win)
    win_end = (windows + win).to_numpy(dtype="datetime64[ns]").view("int64")
    if len(last):
        end_ns = win_end[last.index.to_numpy() % n_win]
        share_flat[last.index.to_numpy()] = np.clip((end_ns - last.to_numpy()) / win.value, 0, 1)
    share_after = share_flat.reshape(n_site, n_win)

    # Site × key weights: the site's share of its network's sightings in each grid cell.
    areas = baseline.site_areas
    key_idx = key_rows(keys, areas["h3"].to_numpy(), areas["network"].to_numpy())
    on = key_idx >= 0
    share = sparse.csr_matrix(
        (areas["share_of_hex"].to_numpy()[on], (areas["site"].to_numpy()[on], key_idx[on])),
        shape=(n_site, len(keys)),
    )
    # Hour-of-day multiplier × volume factor × window hours, the same for all places.
    hour_volume = key_expected.sum(axis=0) / max(keys["rate"].to_numpy().sum(), 1e-12)
    expected = sites["rate"].to_numpy()[:, None] * hour_volume[None, :]
    span = params.span_windows
    sev = trailing_evidence(
        heard,
        np.zeros_like(heard),
        expected,
        fail_after_ok=np.zeros_like(heard),
        share_after_ok=share_after,
        span=span,
    )
    # Activity of every network in the site's footprint (each grid cell counted by the
    # site's share of it), over the whole trailing span.
    act_obs = share @ act_obs
    act_exp = share @ act_exp
    # Failure reports from the site's footprint since it was last heard (weighted by its
    # share of each grid cell), against the reports its network would have sent there.
    fails = span_sum(cumulative(share @ key_fail), sev.start, sev.stop)
    exposure = span_sum(cumulative(share @ key_expected), sev.start, sev.stop)
    del key_fail, key_expected  # the caller holds them no more: 2 (keys × windows) arrays
    fail_share = (share @ np.broadcast_to(ev["fail_share"], (len(keys), 1))) / np.maximum(
        np.asarray(share.sum(axis=1)), 1e-12
    )
    fail_share = np.maximum(fail_share, params.fail_share_floor)
    # Ok reports of the site's network from its footprint that name other sites (reports
    # without a cell id name nobody: the baseline shares count only those with one).
    key_of_row = key_rows(keys, seen["h3"].to_numpy(), seen["network"].to_numpy())
    sightings = _sightings_by(site_row, key_of_row, seen)
    siblings = _siblings(baseline, params)
    anonymous = sightings
    by_device = np.zeros((n_site, n_win))
    dev_seen = prep.device_sightings
    if params.takeover_by_device and not baseline.habits.empty and not dev_seen.empty:
        # Reports with a device id weigh by their phone's habit; the rest as before.
        dev_key = key_rows(keys, dev_seen["h3"].to_numpy(), dev_seen["network"].to_numpy())
        dev_seen = dev_seen.loc[dev_key >= 0].assign(key=dev_key[dev_key >= 0])
        # Less the reports with a device id, where there are any (elsewhere less 0).
        at, per_at = np.unique(
            dev_seen["key"].to_numpy() * n_win + dev_seen["w"].to_numpy(), return_inverse=True
        )
        per_at = np.bincount(per_at, weights=dev_seen["n"].to_numpy("float64"))
        row, col = np.divmod(at, n_win)
        named_ok[row, col] = np.maximum(named_ok[row, col] - per_at, 0.0)
        with_dev = dev_seen.groupby(["site", "key", "w"], as_index=False)["n"].sum()
        anonymous = sightings.merge(
            with_dev, on=["site", "key", "w"], how="left", suffixes=("", "_dev")
        )
        anonymous["n"] = anonymous["n"] - anonymous["n_dev"].fillna(0)
        anonymous = anonymous.loc[anonymous["n"] > 0, ["site", "key", "w", "n"]]
        by_device = _device_takeover(
            areas[on],
            key_idx[on],
            dev_seen,
            prep.devices,
            baseline.habits,
            sites["network"].to_numpy("int64"),
            sev.start,
            siblings,
            params,
        )
    takeover = by_device + _takeover(
        areas[on],
        key_idx[on],
        named_ok,
        sev.start,
        sev.stop,
        anonymous,
        siblings,
        params,
    )
    # Silence hour by hour: each window's expected sightings, scaled by the activity
    # of the footprint, with the site's own hour-to-hour burstiness (gamma, shape k).
    k = min(baseline.site_dispersion, params.site_dispersion_max)
    # Busier than usual does not make silence more telling (a crowd of other networks'
    # users says little about this network's); quieter than usual makes it less so.
    activity = np.minimum(activity_mean(act_obs, act_exp, params.dispersion), 1.0)
    sectors = sector_evidence(
        baseline,
        keys,
        seen,
        key_of_row,
        named_ok,
        {"heard": heard, "hour_volume": hour_volume, "activity": activity, "dispersion": k},
        params,
    )
    per_window = k * np.log1p(expected * activity / k)
    hourly = span_sum(cumulative(per_window), sev.start, sev.stop)
    # Over the whole span the sightings come from the site's few regular reporters:
    # a gamma with their number as shape (when device ids are known) bounds the
    # evidence of a long silence.
    reporters = sites["reporters"].to_numpy("float64")
    shape = np.where(np.isfinite(reporters), np.maximum(reporters, 0.5), np.inf)[:, None]
    span_mu = span_sum(cumulative(expected * activity), sev.start, sev.stop)
    silence = np.maximum(reporters_bound(hourly, span_mu, shape), takeover)
    llr = (
        np.where(sev.ok_now, np.log(params.ok_when_down), 0.0)
        + silence
        + failure_llr(
            np.minimum(fails, params.max_fail_reports),
            exposure * activity_mean(act_obs, act_exp, params.dispersion),
            fail_share,
            dispersion=params.fail_dispersion,
        )
    )
    known = sev.recent_ok | (sev.expected >= params.min_expected) | (fails >= 1)
    # The window each site was last heard up in (-1: not within the evidence span).
    heard_in = np.where(sev.recent_ok, sev.start - 1, -1)
    floor = _silent_share(baseline, heard, expected, activity, per_window, shape, windows, params)
    prior = _site_prior(
        llr, known, sites, params, hazard_rank=hazard_rank, heard=heard_in, floor=floor
    )
    p = expit(logit(prior) + llr)
    # Evidence one more silent hour would add, at the site's current expected rate (the
    # silence evidence of one window, per hour of it).
    per_hour = per_window / max(win / pd.Timedelta(hours=1), 1e-9)
    sighted = (
        sightings.groupby(["key", "site"], as_index=False)["w"].min().rename(columns={"w": "w0"})
    )
    return {
        "p": p,
        "known": known,
        "sectors": sectors,
        "sighted": sighted,
        "heard_now": sev.ok_now,
        "heard_in": heard_in,
        "siblings": siblings,
        "share": share,
        "expected": sev.expected,
        "act_obs": act_obs,
        "act_exp": act_exp,
        "fails": fails,
        "llr": llr,
        "prior": prior,
        "rate": overall_rate(prior, known, params.prior_down),
        "per_hour": per_hour,
        "hours_to_decide": hours_to_decide(
            prior, llr_now=llr, llr_per_hour=per_hour, p_down=params.p_down
        ),
    }


def _silent_share(
    baseline: Baseline,
    heard: np.ndarray,
    expected: np.ndarray,
    activity: np.ndarray,
    per_window: np.ndarray,
    shape: np.ndarray,
    windows: pd.DatetimeIndex,
    params: DetectionParams,
) -> np.ndarray | None:
    """Per window: the share of sites down that their silence over the last
    ``prior_silence_span`` shows at least (:func:`dcm.analysis.prior.silent_share`;
    None when off). ``heard``: sightings, ``expected``: expected sightings before the
    local ``activity``, ``per_window``: silence LLR, per site × window; ``shape``: the
    reporters bound's gamma shape."""
    span = params.prior_silence_windows
    n_win = heard.shape[1]
    if span < 1 or n_win < span:
        return None
    seen = window_sums(heard, span)
    mu = window_sums(expected * activity, span)
    llr = reporters_bound(window_sums(per_window, span), mu, shape)
    # The exponent of the hour in which each span ends.
    last_hour = (windows + params.window_td - pd.Timedelta(1, "ns")).hour.to_numpy()
    # Sites heard in the baseline, in places that kept their usual activity.
    usual = window_sums(activity, span) >= params.prior_silence_activity * span
    floor = silent_share(
        seen <= 0,
        llr,
        baseline.silence_scale[last_hour],
        counted=(baseline.sites["rate"].to_numpy() > 0)[:, None] & usual,
        n_se=params.prior_silence_z,
        spread=baseline.silence_spread[last_hour],
        rel_error=params.prior_silence_error,
    )
    floor[: span - 1] = 0.0  # spans that begin before the data
    return floor


def site_hazard_rank(sites: pd.DataFrame, hazard: gpd.GeoDataFrame | None) -> np.ndarray | None:
    """Per site: the highest hazard ``rank`` (or ``intensity``) of the footprints holding
    it, as levels 1..L (0 outside).

    None without a hazard or without usable ranks.
    """
    if hazard is None or len(hazard) == 0 or len(sites) == 0:
        return None
    column = next((c for c in ("rank", "intensity") if c in hazard), None)
    if column is None:
        return None
    rank = pd.to_numeric(hazard[column], errors="coerce").to_numpy("float64")
    usable = np.isfinite(rank)
    if not usable.any():
        return None
    geoms = hazard.geometry.to_numpy()[usable]
    pts = shapely.points(sites["lon"].to_numpy("float64"), sites["lat"].to_numpy("float64"))
    hit_pt, hit_geom = shapely.STRtree(geoms).query(pts, predicate="within")
    out = np.zeros(len(sites))
    np.maximum.at(out, hit_pt, rank[usable][hit_geom])
    # Ranks become consecutive levels 1..L (0: outside every footprint).
    levels = np.unique(rank[usable])
    return np.where(out > 0, np.searchsorted(levels, out) + 1, 0).astype("int64")


def _near_sites(sites: pd.DataFrame, radius_m: float) -> sparse.csr_matrix:
    """Sparse (site × site) 0/1: other sites (any network) within ``radius_m``."""
    from scipy.spatial import cKDTree

    n = len(sites)
    lon = sites["lon"].to_numpy("float64")
    lat = sites["lat"].to_numpy("float64")
    good = np.isfinite(lon) & np.isfinite(lat)
    if not good.any():
        return sparse.csr_matrix((n, n))
    xy = local_xy(lon, lat, float(np.mean(lat[good])))
    xy[~good] = 1e12  # far from everything
    pairs = cKDTree(xy).query_pairs(radius_m, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return sparse.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))


def _site_prior(
    llr: np.ndarray,
    known: np.ndarray,
    sites: pd.DataFrame,
    params: DetectionParams,
    *,
    hazard_rank: np.ndarray | None,
    heard: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> np.ndarray:
    """Prior of "down" per site × window: learned from all sites' evidence per hazard
    level and window (:func:`dcm.analysis.prior.learned_prior`), or fixed. ``floor``:
    per window, the share of sites down that their silence shows at least."""
    if not params.learn_prior:
        return np.full(llr.shape, params.prior_down)
    group = np.zeros(llr.shape, dtype="int64") if hazard_rank is None else hazard_rank[:, None]
    if params.prior_near_m > 0:
        # Near a failure already confirmed (on the site's own evidence, under the calm
        # prior) in the same window: power cuts and damage come in clusters.
        confirmed = (expit(logit(params.prior_down) + llr) >= params.p_down) & known
        group = 2 * group + (_near_sites(sites, params.prior_near_m) @ confirmed > 0)
    return _learned_rate(llr, known, params, group=group, heard=heard, floor=floor)


def _learned_rate(
    llr: np.ndarray,
    known: np.ndarray,
    params: DetectionParams,
    *,
    group: np.ndarray | None = None,
    heard: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`learned_prior` with the parameters' rates and weights (``prior_down``
    everywhere when ``learn_prior`` is off)."""
    if not params.learn_prior:
        return np.full(llr.shape, params.prior_down)
    return learned_prior(
        llr,
        informed=known,
        group=group,
        base=params.prior_down,
        strength=params.prior_strength,
        group_strength=params.prior_group_strength,
        cap=params.prior_max,
        confirm_p=params.p_down,
        heard=heard,
        floor=floor,
    )


def _coverage_input(
    baseline: Baseline,
    prep: WindowCounts,
    site_ev: dict[str, Any],
    n_win: int,
    out_cols: np.ndarray,
    params: DetectionParams,
) -> CoverageInput | None:
    """Sites' reach and p_offline in the reported windows (None without any site).

    Reach: the farther of the baseline reach and the farthest precise sighting in
    the trailing evidence span (a neighbour that takes over shows how far it
    reaches). A site serves in a window when it was heard in the baseline or in that
    span; one heard only through imprecise fixes gets its fallback range.
    """
    sites = baseline.sites
    n_site = len(sites)
    if n_site == 0:
        return None
    lon = sites["lon"].to_numpy("float64")
    lat = sites["lat"].to_numpy("float64")
    seen = prep.sightings
    site = baseline.cell_site[seen["cell"].to_numpy()]
    flat = site * n_win + seen["w"].to_numpy()
    span = params.span_windows
    confirm = max(params.coverage_confirm_windows, 1)
    # Farthest usable sighting per (site, window), counted with the sightings.
    far = np.full(n_site * n_win, -np.inf)
    np.maximum.at(far, flat, seen["far"].to_numpy("float64"))
    heard = np.zeros(n_site * n_win, dtype=bool)
    heard[flat] = True
    far = rolling_max(far.reshape(n_site, n_win), span)[:, out_cols]
    heard = rolling_max(heard.reshape(n_site, n_win), span)[:, out_cols]
    base = sites["reach_m"].to_numpy("float64")[:, None]
    reach = np.fmax(np.where(np.isfinite(far), far, np.nan), base)
    known = (sites["rate"].to_numpy() > 0)[:, None] | heard
    reach = np.where(known & ~np.isfinite(reach), sites["range_m"].to_numpy()[:, None], reach)
    reach = np.where(known, reach, np.nan)
    # Offline in each of the last coverage_confirm_windows windows (1 by default);
    # before the first window of event data there is no evidence to confirm with.
    lead = np.zeros((n_site, confirm - 1))
    p_site = -rolling_max(np.concatenate([lead, -site_ev["p"]], axis=1), confirm)
    p_down = p_site[:, out_cols + confirm - 1]
    # Whether a site still serves is judged on its own evidence under the calm-week
    # prior: a learned rate raised by failures elsewhere must not stop the sites
    # around them from serving.
    p_block = expit(logit(params.prior_down) + site_ev["llr"][:, out_cols])
    if "heard_in" in site_ev:
        silent = _silent_siblings(
            baseline,
            p_down,
            site_ev["heard_in"][:, out_cols],
            params,
            pairs=site_ev.get("siblings"),
        )
        p_block = np.where(silent, 1.0, p_block)
    return CoverageInput(
        lon=lon,
        lat=lat,
        network=sites["network"].to_numpy("int64"),
        reach=reach,
        p=p_down,
        p_block=p_block,
        reported=site_ev["fails"][:, out_cols] >= 1,
    )


def _silent_siblings(
    baseline: Baseline,
    p: np.ndarray,
    heard_in: np.ndarray,
    params: DetectionParams,
    *,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Site × window: a :func:`sibling <_siblings>` is down (p >= ``params.p_down``)
    and this site has not been heard since it was (``heard_in``: the window each site
    was last heard in, -1 for not in the span). ``pairs``: the sibling pairs when the
    caller has them already (the footprint overlap is a sparse product)."""
    out = np.zeros(p.shape, dtype=bool)
    src, dst = _siblings(baseline, params) if pairs is None else pairs
    r, c = np.nonzero((p[dst] >= params.p_down) & (heard_in[src] <= heard_in[dst]))
    out[src[r], c] = True
    return out


#: Windows per block of :func:`_no_server_probability` (bounds its temporaries).
NO_SERVER_BLOCK_WINDOWS = 16


def _no_server_probability(
    share: sparse.csr_matrix,
    site: dict[str, Any],
    ev: dict[str, np.ndarray],
    params: DetectionParams,
) -> np.ndarray:
    """Key × window: the chance that no site able to serve the grid cell is up.

    Able to serve: a site that carried at least ``params.server_min_share`` of the
    network's baseline sightings there, or any site named by an ok report from there
    during the event (from then on: when a site fails, its neighbours often take over
    part of its area, which baseline best-server data cannot show). Sites are
    taken as failing independently given the evidence.
    """
    n_key, n_win = ev["ok"].shape
    base = share.tocoo()
    strong = base.data >= params.server_min_share
    pairs = [pd.DataFrame({"key": base.row[strong], "site": base.col[strong], "w0": 0})]
    sighted = site["sighted"]
    if len(sighted):
        pairs.append(sighted)
    cap = pd.concat(pairs, ignore_index=True).groupby(["key", "site"], as_index=False)["w0"].min()
    log_p = np.log(np.clip(site["p"], 1e-12, 1.0))
    cap_site, cap_w0 = cap["site"].to_numpy(), cap["w0"].to_numpy()[:, None]
    # Only the grid cells with a server: each row of a sparse product is its own sum.
    has, key = np.unique(cap["key"].to_numpy(), return_inverse=True)
    to_key = rows_to_groups(key, has.size)
    out = np.empty((n_key, n_win))
    # A block of windows at a time (windows are independent): the (pairs × windows)
    # terms are the largest temporaries of the states.
    for a in range(0, n_win, NO_SERVER_BLOCK_WINDOWS):
        c = slice(a, a + NO_SERVER_BLOCK_WINDOWS)
        contrib = log_p[cap_site, c]
        contrib *= np.arange(n_win)[None, c] >= cap_w0
        by_key = to_key @ contrib
        out[has, c] = np.exp(by_key, out=by_key)
    # Grid cells without a strong baseline server fall back to the share-weighted mean.
    rest = np.ones(n_key, dtype=bool)
    rest[has] = False
    rest = np.flatnonzero(rest)
    coverage = np.asarray(share[rest].sum(axis=1)).ravel()
    out[rest] = (share[rest] @ site["p"]) / np.maximum(coverage, 1e-12)[:, None]
    return out


def _grid_states(
    keys: pd.DataFrame,
    ev: dict[str, np.ndarray],
    site: dict[str, Any],
    pairs: tuple[np.ndarray, np.ndarray],
    params: DetectionParams,
) -> tuple[np.ndarray, np.ndarray]:
    """p_down and state per key × window.

    Where the baseline says which sites served a grid cell, its p_down is the
    chance that its usual servers are offline (share-weighted), overruled by direct
    evidence: a recent ok report there means some site serves it now. Elsewhere the
    grid cell's own evidence (silence, failure reports) decides, with support from
    its neighbours.
    """
    share = site["share"].T.tocsr()  # key × site
    coverage = np.asarray(share.sum(axis=1)).ravel()
    p_server = _no_server_probability(share, site, ev, params)
    # The share-weighted mean of the sites' "known", read only as whether it reaches 1/2.
    known = (share @ site["known"].astype("float64")) / np.maximum(coverage, 1e-12)[:, None]
    known = known >= 0.5
    ok_recent = ev["ok_recent"]
    eps = 1e-6
    # Work arrays are (places × windows): updated in place, not copied per step.
    by_site = np.clip(p_server, eps, 1 - eps, out=p_server)
    by_site = logit(by_site, out=by_site)
    # (Adding 0 where there is no recent ok report would change nothing but -0.0 to
    # 0.0, which the logistic function maps alike.)
    np.add(by_site, np.log(params.ok_when_down), out=by_site, where=ok_recent)
    llr = ev["llr"]
    clipped = np.clip(llr, -params.neighbour_clip, params.neighbour_clip)
    support = _neighbour_matrix(keys, pairs) @ clipped
    del clipped
    support *= params.neighbour_weight
    # Grid cells without known sites: the event's overall learned rate as prior.
    p = np.add(logit(site["rate"])[None, :], llr)
    p += support
    del support
    has_sites = (coverage >= 0.5)[:, None]
    np.copyto(p, by_site, where=has_sites)
    del by_site
    p = expit(p, out=p)
    served = keys["served"].to_numpy()[:, None]
    np.minimum(p, params.prior_down, out=p, where=~served)
    informed = np.where(has_sites, known, ev["informed"])
    state = np.full(p.shape, UNCERTAIN, dtype="int8")
    state[p <= params.p_up] = UP
    state[~informed & ~ok_recent] = NO_DATA
    state[(p >= params.p_down) & served] = DOWN
    state[ok_recent & (p <= params.p_up)] = UP
    return p, state


@dataclass(frozen=True)
class SectorEvidence:
    """Cells judged on their own while their site stands (:func:`sector_evidence`).

    ``cells``: rows of ``baseline.cells``; ``p``: (cells × windows) posterior that the
    cell is down while its site is up; ``known``: its evidence counts; ``heard_now``:
    the cell itself was named by an ok report in the window.
    """

    cells: np.ndarray
    p: np.ndarray
    known: np.ndarray
    heard_now: np.ndarray


def sector_evidence(
    baseline: Baseline,
    keys: pd.DataFrame,
    seen: pd.DataFrame,
    key_of_row: np.ndarray,
    named_ok: np.ndarray,
    site: dict[str, Any],
    params: DetectionParams,
) -> SectorEvidence | None:
    """A sector down on a mast that stands: each cell of a site with two or more cells
    heard in the baseline, judged on its own since it was last heard.

    * **Silence** against its own rate, in the windows where other cells of its site
      were heard (the mast is up then): each adds ``k · log(1 + μ_c/k)``, with ``μ_c``
      the cell's baseline sightings an hour × the window's hour-and-volume factor × its
      site's activity and ``k`` the sites' burstiness (as for sites).
    * **Takeover** (:func:`_takeover`, as for sites), in those windows too: ok reports
      of its network from the grid cells where it was heard that name other sites,
      against its baseline share of the network's sightings there. Reports naming the
      other cells of its own site are left out, and so are their baseline sightings.
      (Counted while its whole site was silent, a site's failure would stay on its
      cells after the site is heard again, until each is.)

    The evidence is the larger of the two; the prior is learned like the sites'
    (:func:`_learned_rate`, from the cells' own confirmed failures, towards
    ``prior_down``). ``seen``: the event's sightings, ``key_of_row`` their key rows
    (-1: none); ``named_ok``: ok reports naming a known cell, key × window. ``site``:
    the site evidence so far (``heard``, ``hour_volume``, ``activity``,
    ``dispersion``). None when no cell qualifies.
    """
    if not params.sector_evidence:
        return None
    cs = baseline.cell_site
    rate = baseline.cell_rate
    heard_cells = np.bincount(cs[rate > 0], minlength=len(baseline.sites))
    judged = np.flatnonzero((rate > 0) & (heard_cells[cs] >= 2))
    if judged.size == 0:
        return None
    n_win = site["heard"].shape[1]
    row_of = np.full(len(cs), -1, dtype="int64")
    row_of[judged] = np.arange(judged.size)
    row = row_of[seen["cell"].to_numpy()]
    on = row >= 0
    heard = np.bincount(
        row[on] * n_win + seen["w"].to_numpy()[on],
        weights=seen["n"].to_numpy("float64")[on],
        minlength=judged.size * n_win,
    ).reshape(judged.size, n_win)
    own_site = cs[judged]
    others_heard = site["heard"][own_site] > heard
    k = site["dispersion"]
    mu = rate[judged][:, None] * site["hour_volume"][None, :] * site["activity"][own_site]
    sev = trailing_evidence(
        heard,
        np.zeros_like(heard),
        np.where(others_heard, k * np.log1p(mu / k), 0.0),
        fail_after_ok=np.zeros_like(heard),
        share_after_ok=np.zeros_like(heard),
        span=params.span_windows,
    )
    silence = sev.expected
    # Where each judged cell was heard in the baseline: its sightings there and its
    # share of its network's (the site areas' totals per grid cell and network).
    areas = baseline.cell_areas
    areas = areas[areas["observed"].to_numpy() & (row_of[areas["cell"].to_numpy()] >= 0)]
    cell = areas["cell"].to_numpy()
    network = baseline.sites["network"].to_numpy("int64")[cs[cell]]
    count = areas["weight"].to_numpy("float64") * rate[cell] * baseline.hours
    sa = baseline.site_areas
    totals = match_rows(
        [sa["h3"].to_numpy("int64"), sa["network"].to_numpy("int64")],
        [areas["h3"].to_numpy("int64"), network],
    )
    hex_total = (sa["count"] / sa["share_of_hex"]).to_numpy("float64")
    total = np.where(totals >= 0, hex_total[np.maximum(totals, 0)], count)
    key_idx = key_rows(keys, areas["h3"].to_numpy(), network)
    keep = key_idx >= 0
    cell_areas = pd.DataFrame(
        {
            "site": row_of[cell[keep]],
            "count": count[keep],
            "share_of_hex": count[keep] / np.maximum(total[keep], count[keep]),
        }
    )
    sightings = _sightings_by(row, key_of_row, seen)
    # The other cells of each judged cell's site: its siblings here.
    of_site = pd.DataFrame({"cell": np.arange(judged.size), "site": own_site})
    pairs = of_site.merge(of_site, on="site", suffixes=("", "_sib"))
    pairs = pairs[pairs["cell"] != pairs["cell_sib"]]
    takeover = _takeover(
        cell_areas,
        key_idx[keep],
        named_ok,
        sev.start,
        sev.stop,
        sightings,
        (pairs["cell"].to_numpy(), pairs["cell_sib"].to_numpy()),
        params,
        counted=others_heard,
    )
    llr = np.where(sev.ok_now, np.log(params.ok_when_down), np.maximum(silence, takeover))
    known = sev.recent_ok
    heard_in = np.where(sev.recent_ok, sev.start - 1, -1)
    prior = _learned_rate(llr, known, params, heard=heard_in)
    return SectorEvidence(
        cells=judged,
        p=expit(logit(prior) + llr),
        known=known,
        heard_now=sev.ok_now,
    )


def _cell_evidence(
    baseline: Baseline,
    keys: pd.DataFrame,
    ev: dict[str, np.ndarray],
    site: dict[str, Any],
    p_grid: np.ndarray,
    state: np.ndarray,
    params: DetectionParams,
    sectors: SectorEvidence | None = None,
) -> dict[str, np.ndarray]:
    """p_offline and status per cell × window.

    A cell heard in the baseline shares its site's fate (sites fail whole), and with
    ``sectors`` may also be down on its own while its site stands: its ``p_offline``
    is then ``1 − (1 − p_site)(1 − p_sector)``. A cell never heard takes the state of
    its network in the disc of its (clipped) range.
    """
    cells = baseline.cells
    cs = baseline.cell_site
    heard_base = baseline.cell_rate > 0
    site_rate = baseline.sites["rate"].to_numpy()[cs] > 0
    p = site["p"][cs].copy()
    known = site["known"][cs].copy()
    online_now = site["heard_now"][cs].copy()
    if sectors is not None:
        c = sectors.cells
        p[c] = 1.0 - (1.0 - p[c]) * (1.0 - sectors.p)
        known[c] |= sectors.known
        # A cell named now is up; one silent on a mast heard now is up unless its own
        # silence says otherwise.
        online_now[c] = sectors.heard_now | (online_now[c] & (sectors.p < params.cell_offline_p))
    areas = baseline.cell_areas[~baseline.cell_areas["observed"]]
    net_of_cell = baseline.network_index(cells["network"])
    key_idx = key_rows(keys, areas["h3"].to_numpy(), net_of_cell[areas["cell"].to_numpy()])
    on = key_idx >= 0
    weight = sparse.csr_matrix(
        (np.ones(int(on.sum())), (areas["cell"].to_numpy()[on], key_idx[on])),
        shape=(len(cells), len(keys)),
    )
    informed = (state != NO_DATA).astype("float64")
    n_inf = weight @ informed
    p_disc = (weight @ (p_grid * informed)) / np.maximum(n_inf, 1e-12)
    use_disc = ~(heard_base | site_rate)
    p[use_disc] = np.where(n_inf[use_disc] > 0, p_disc[use_disc], params.prior_down)
    known[use_disc] = n_inf[use_disc] >= 1
    status = np.full(p.shape, "unknown", dtype=object)
    status[(p <= params.cell_online_p) & known] = "online"
    status[(p >= params.cell_offline_p) & known] = "offline"
    status[online_now] = "online"
    # Hours of silence needed to decide: the site's, for cells that share its fate.
    hours = site["hours_to_decide"][cs].astype("float64")
    hours[use_disc] = np.nan
    # How thin the data are (for fitting the calibration): the evidence one silent hour
    # adds at the cell's site (0 for cells judged from the grid: no reporting rate).
    per_hour = np.where(use_disc[:, None], 0.0, site["per_hour"][cs])
    p_reported = calibrate(p, params.calibration_shift, params.calibration_slope)
    return {"p": p_reported, "status": status, "hours": hours, "per_hour": per_hour}


#: dtypes of the grid rows' value columns (``state``: codes of STATE_CODES).
_GRID_VALUE_DTYPES = {
    "expected_count": "float64",
    "observed_count": "int64",
    "ok_count": "int64",
    "fail_count": "int64",
    "state": "int8",
    "p_down": "float64",
}


#: Reported windows whose grid rows are gathered from one window-major copy.
GRID_ROWS_BLOCK_WINDOWS = 8


def _window_columns(
    arrays: dict[str, np.ndarray], cols: np.ndarray
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(j, each array's column ``cols[j]`` as a contiguous copy), j = 0, 1, ...

    The columns are copied :data:`GRID_ROWS_BLOCK_WINDOWS` at a time, window-major: a
    column of a (rows × windows) array is one value per row, a cache line each, and
    gathering rows from it window after window reads every line once per window.
    """
    for j0 in range(0, cols.size, GRID_ROWS_BLOCK_WINDOWS):
        block = cols[j0 : j0 + GRID_ROWS_BLOCK_WINDOWS]
        copies = {name: np.ascontiguousarray(v[:, block].T) for name, v in arrays.items()}
        for b in range(block.size):
            yield j0 + b, {name: v[b] for name, v in copies.items()}


class _GridRows:
    """GRID_STATUS_COLUMNS rows for the requested windows, per network and for "all",
    in parts: each window's per-network rows, window by window, then each window's
    "all" rows, window by window. Grid cells with under 0.05 expected reports, no
    report and no outage are left out (they are ``no_data``). ``h3``, ``network`` and
    ``state`` are categoricals (string values, compact for millions of rows).

    Values are read from the (keys × windows) arrays in place, at column ``cols[j]``
    (no copies of the reported windows); "all": hex rows of the reported windows.
    """

    def __init__(
        self,
        keys: pd.DataFrame,
        ev: dict[str, np.ndarray],
        all_layer: tuple[np.ndarray, np.ndarray],
        windows: pd.DatetimeIndex,
        cols: np.ndarray,
        baseline: Baseline,
        win: pd.Timedelta,
    ) -> None:
        self.starts, self.cols, self.win = windows[cols], cols, win
        hex_strings = to_strings(keys.drop_duplicates("hex").sort_values("hex")["h3"].to_numpy())
        self.hex_cat = pd.CategoricalDtype(pd.Index(hex_strings))
        self.net_cat = pd.CategoricalDtype([*baseline.networks, ALL_NETWORKS])
        self.state_cat = pd.CategoricalDtype(list(STATE_CODES))
        self.all_code = len(baseline.networks)
        self.hex_of_key = keys["hex"].to_numpy()
        self.network = keys["network"].to_numpy()
        all_state, all_p = all_layer  # all_network_state of state and p
        self.net_rows = {
            "expected_count": ev["expected"],
            "ok_count": ev["ok"],
            "fail_count": ev["fail"],
            "state": ev["state"],
            "p_down": ev["p"],
        }
        all_rows = {
            "expected_count": ev["exp_hex"][:, cols],
            "observed_count": ev["obs_hex"][:, cols],
            "ok_count": rows_to_groups(self.hex_of_key, ev["exp_hex"].shape[0]) @ ev["ok"][:, cols],
            "state": all_state,
            "p_down": all_p,
        }
        all_rows["fail_count"] = all_rows["observed_count"] - all_rows["ok_count"]
        self.all_rows = all_rows
        keep_net = np.empty((len(keys), cols.size), dtype=bool)
        for j0 in range(0, cols.size, GRID_ROWS_BLOCK_WINDOWS):
            b = slice(j0, j0 + GRID_ROWS_BLOCK_WINDOWS)
            w = cols[b]
            keep_net[:, b] = (
                (ev["expected"][:, w] >= 0.05)
                | (ev["ok"][:, w] + ev["fail"][:, w] > 0)
                | (ev["state"][:, w] == DOWN)
            )
        self.keep_net = keep_net
        self.keep_all = (
            (all_rows["expected_count"] >= 0.05)
            | (all_rows["observed_count"] > 0)
            | (all_state != NO_DATA)
        )
        self.n_net, self.n_all = keep_net.sum(axis=0), self.keep_all.sum(axis=0)

    def parts(self) -> Iterator[tuple[np.ndarray, np.ndarray | int, int, dict[str, np.ndarray]]]:
        """(hex codes, network code(s), window j, values) of each part, in row order."""
        for j, column in _window_columns(self.net_rows, self.cols):
            r = np.flatnonzero(self.keep_net[:, j])
            values = {name: v[r] for name, v in column.items()}
            values["observed_count"] = values["ok_count"] + values["fail_count"]
            yield self.hex_of_key[r], self.network[r], j, values
        for j, column in _window_columns(self.all_rows, np.arange(self.cols.size)):
            r = np.flatnonzero(self.keep_all[:, j])
            yield r, self.all_code, j, {name: v[r] for name, v in column.items()}

    def frame(
        self, h3: np.ndarray, net: np.ndarray, col: np.ndarray, values: dict[str, np.ndarray]
    ) -> pd.DataFrame:
        """The rows of hex codes ``h3``, network codes ``net``, reported windows ``col``."""
        return pd.DataFrame(
            {
                "h3": pd.Categorical.from_codes(h3, dtype=self.hex_cat),
                "network": pd.Categorical.from_codes(net, dtype=self.net_cat),
                "window_start": self.starts[col],
                "window_end": self.starts[col] + self.win,
                "expected_count": values["expected_count"],
                "observed_count": values["observed_count"],
                "ok_count": values["ok_count"],
                "fail_count": values["fail_count"],
                "state": pd.Categorical.from_codes(values["state"], dtype=self.state_cat),
                "p_down": values["p_down"],
            },
            copy=False,  # the columns are fresh arrays: no second copy of millions of rows
        )

    def frames(self) -> Iterator[pd.DataFrame]:
        """Each part as a frame (two a window: its network rows, its "all" rows); the
        whole grid when concatenated in order."""
        for h3, net, j, values in self.parts():
            n = h3.size
            yield self.frame(
                h3.astype("int32"),
                np.full(n, net, dtype="int16") if np.isscalar(net) else net.astype("int16"),
                np.full(n, j, dtype="int32"),
                {
                    name: v.astype(_GRID_VALUE_DTYPES[name], copy=False)
                    for name, v in values.items()
                },
            )

    def empty(self) -> pd.DataFrame:
        """No rows, the columns and dtypes of the others."""
        none = np.empty(0, dtype="int32")
        values = {name: np.empty(0, dtype=dtype) for name, dtype in _GRID_VALUE_DTYPES.items()}
        return self.frame(none, none.astype("int16"), none, values)

    def whole(self) -> pd.DataFrame:
        """All rows in one frame. Columns are filled one part at a time into arrays of
        their final size: no index arrays over all rows, no concatenated or cast copies."""
        n = int(self.n_net.sum() + self.n_all.sum())
        out = {name: np.empty(n, dtype=dtype) for name, dtype in _GRID_VALUE_DTYPES.items()}
        h3 = np.empty(n, dtype="int32")
        net = np.empty(n, dtype="int16")
        col = np.empty(n, dtype="int32")
        a = 0
        for hexes, nets, j, values in self.parts():
            b = a + hexes.size
            h3[a:b], net[a:b], col[a:b] = hexes, nets, j
            for name, v in values.items():
                out[name][a:b] = v
            a = b
        return self.frame(h3, net, col, out)


def _cell_intervals(
    cells: pd.DataFrame, cell_windows: pd.DataFrame, win: pd.Timedelta
) -> pd.DataFrame:
    """Merge consecutive windows with the same status into intervals per cell."""
    if cell_windows.empty:
        return empty_frame(CELL_STATUS_COLUMNS)
    cell = cell_windows["cell"].to_numpy()
    # asi8 of a DatetimeIndex, not to_numpy(): tz-aware values would become an object
    # array of Timestamps, seconds per million rows.
    start = pd.DatetimeIndex(cell_windows["window_start"]).asi8
    # :func:`detect` builds the rows cell by cell, windows in order: then the stable
    # sort would keep every row in place, and sorting millions of rows is skipped.
    ordered = bool(
        np.all((cell[1:] > cell[:-1]) | ((cell[1:] == cell[:-1]) & (start[1:] >= start[:-1])))
    )
    cw = (
        cell_windows
        if ordered
        else cell_windows.sort_values(["cell", "window_start"], kind="stable")
    )
    new_run = (
        cw["cell"].ne(cw["cell"].shift())
        | cw["status"].ne(cw["status"].shift())
        | cw["window_start"].ne(cw["window_start"].shift() + win)
    )
    run = new_run.cumsum()
    agg = cw.groupby(run).agg(
        cell=("cell", "first"),
        status=("status", "first"),
        start=("window_start", "first"),
        last=("window_start", "last"),
        p_offline=("p_offline", "mean"),
        silence_h_needed=("silence_h_needed", "last"),
    )
    meta = cells.iloc[agg["cell"].to_numpy()].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "radio": meta["radio"].astype("string") if "radio" in meta else pd.NA,
            "mcc": meta["mcc"].astype("int64"),
            "net": meta["net"].astype("int64"),
            "area": meta["area"].astype("int64"),
            "cell": meta["cell"].astype("int64"),
            "site_id": meta["site_id"].astype("string"),
            "status": agg["status"].astype("string").to_numpy(),
            "start": pd.to_datetime(pd.DatetimeIndex(agg["start"]), utc=True),
            "end": pd.to_datetime(pd.DatetimeIndex(agg["last"] + win), utc=True),
            "p_offline": agg["p_offline"].round(4).to_numpy(),
            # The latest window's need: how thin the data are now.
            "silence_h_needed": agg["silence_h_needed"].round(1).to_numpy(),
        }
    )
    return out.astype(CELL_STATUS_COLUMNS)
