"""Accuracy benchmark: dcm's method vs. the naive reading, on simulated disasters.

Runs the simulator's quake, cyclone, eruption and control scenarios (several seeds),
judges every window with dcm.analysis, and compares with the truth at checkpoints
6 h or more after onset:

* area precision / recall / F1, per network and for all networks: population pixels
  as points weighted by people; truth = served before onset and not served at the
  checkpoint (``scenario.truth.served``); predicted = inside an outage polygon of the
  window holding the checkpoint;
* cell offline precision / recall / F1 against ``truth_cells``;
* median detection delay (site down → first window with one of its cells offline)
  and restoration delay (site back → first window with none of its cells offline);
* in control: the share of people falsely flagged and the number of outage polygons.

The *hex oracle* is a ceiling, not a method: it knows the truth and flags a grid cell
when most of its people (served before onset) are out. It shows how much F1 any map
made of whole H3 cells of the chosen resolution can reach on these scenarios.

The naive reading of earlier disaster maps (a grid cell with baseline data and no
event data in the trailing window is an outage; a cell with baseline sightings and
none in the trailing window is offline) runs on the same scenarios.

    python benchmarks/accuracy/run.py [--seeds 1 2 3] [--scale 1.0] [--resolution 8]

Writes a markdown table to stdout and to benchmarks/accuracy/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from dcm.analysis import DetectionParams, build_baseline, detect
from dcm.analysis.grid import points_to_cells
from dcm.analysis.impact import population_points
from dcm.schema import suspected_outages
from dcm.simulate import simulate

SCENARIOS = ("quake", "cyclone", "eruption", "control")
CHECKPOINT_HOURS = (6, 12, 24, 48, 96, 144)
NAIVE_TRAILING = pd.Timedelta(hours=12)
HERE = Path(__file__).resolve().parent


@dataclass
class Tally:
    """Population-weighted (or count) true/false positives and false negatives."""

    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0

    def add(self, pred: np.ndarray, truth: np.ndarray, weight: np.ndarray | None = None) -> None:
        w = np.ones(pred.shape[0]) if weight is None else weight
        self.tp += float(w[pred & truth].sum())
        self.fp += float(w[pred & ~truth].sum())
        self.fn += float(w[~pred & truth].sum())

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp > 0 else float("nan")
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn > 0 else float("nan")
        f = 2 * p * r / (p + r) if p + r > 0 else float("nan")
        return p, r, f


@dataclass
class Score:
    net: Tally = field(default_factory=Tally)
    all: Tally = field(default_factory=Tally)
    cells: Tally = field(default_factory=Tally)
    detect_delay_h: list[float] = field(default_factory=list)
    restore_delay_h: list[float] = field(default_factory=list)
    flagged_people: float = 0.0
    people: float = 0.0
    polygons: int = 0
    windows_with_polygons: int = 0
    #: p_offline and true state of every (cell, window), for calibration
    calib_p: list[np.ndarray] = field(default_factory=list)
    calib_truth: list[np.ndarray] = field(default_factory=list)
    #: the evidence one silent hour adds at each pair's site (how thin the data are)
    calib_density: list[np.ndarray] = field(default_factory=list)
    #: every outage-severity polygon at a checkpoint: its confidence, whether it is
    #: suspected, the people inside it and how many of them are truly cut off
    conf_p: list[np.ndarray] = field(default_factory=list)
    conf_suspected: list[np.ndarray] = field(default_factory=list)
    conf_people: list[np.ndarray] = field(default_factory=list)
    conf_out: list[np.ndarray] = field(default_factory=list)


@dataclass
class Prediction:
    """What a method says, per window: outage areas and offline cells."""

    windows: pd.DatetimeIndex
    window: pd.Timedelta
    #: (window_start, network) -> union geometry of outages (network "all": severity outage)
    areas: dict[tuple[pd.Timestamp, str], shapely.Geometry]
    #: bool (cells × windows): offline
    offline: np.ndarray
    polygons_per_window: np.ndarray
    #: float (cells × windows): p_offline (NaN: cell unknown to the method); None: the
    #: method gives no probabilities
    p_offline: np.ndarray | None = None
    #: the method's outage rows (dcm only), for measuring their confidence
    outages: pd.DataFrame | None = None
    #: float (cells × windows): evidence per silent hour at the cell's site (dcm only)
    density: np.ndarray | None = None


def dcm_prediction(
    scenario, params: DetectionParams, population: pd.DataFrame, *, hazard: bool = False
) -> Prediction:
    model = build_baseline(scenario.baseline, scenario.cells, params)
    found = detect(
        model,
        scenario.event,
        params=params,
        population=population,
        hazard=scenario.hazard if hazard else None,
    )
    out = found.outages
    areas: dict[tuple[pd.Timestamp, str], shapely.Geometry] = {}
    if len(out):
        confirmed = out["tier"] != "suspected" if "tier" in out else True
        sel = out[(out["severity"] == "outage") & confirmed]
        for (start, net), group in sel.groupby(["window_start", "network"]):
            areas[(start, net)] = shapely.union_all(group.geometry.to_numpy())
    cw = found.cell_windows
    offline = (cw["status"].to_numpy() == "offline").reshape(len(model.cells), len(found.windows))
    # Rows of model.cells follow the scenario's cell order after de-duplication.
    per_window = (
        out.groupby("window_start").size().reindex(found.windows, fill_value=0).to_numpy()
        if len(out)
        else np.zeros(len(found.windows), dtype=int)
    )
    p_off = cw["p_offline"].to_numpy("float64").reshape(len(model.cells), len(found.windows))
    density = cw["silence_llr_per_h"].to_numpy("float64").reshape(p_off.shape)
    return Prediction(
        found.windows,
        params.window_td,
        areas,
        _align_cells(model.cells, scenario.cells, offline),
        per_window,
        _align_cells(model.cells, scenario.cells, p_off, fill=np.nan),
        out,
        _align_cells(model.cells, scenario.cells, density, fill=np.nan),
    )


def _align_cells(
    model_cells: pd.DataFrame, cells: pd.DataFrame, values: np.ndarray, *, fill: object = False
) -> np.ndarray:
    """Rows of ``values`` (model cell order) reordered to the scenario's cell rows."""
    key = ["mcc", "net", "area", "cell"]
    idx = pd.MultiIndex.from_frame(model_cells[key]).get_indexer(
        pd.MultiIndex.from_frame(cells[key])
    )
    out = np.full((len(cells), values.shape[1]), fill, dtype=values.dtype)
    out[idx >= 0] = values[idx[idx >= 0]]
    return out


def naive_prediction(
    scenario, resolution: int, window: pd.Timedelta, *, area_windows: pd.DatetimeIndex | None = None
) -> Prediction:
    """A grid cell with baseline data and no event data in the trailing window is down.

    ``area_windows``: draw outage areas only in these windows (default: every window;
    ``polygons_per_window`` then counts only those).
    """
    from dcm.analysis.grid import cells_to_polygon

    base, ev = scenario.baseline, scenario.event
    start = ev["timestamp"].min().floor(window)
    windows = pd.date_range(start, ev["timestamp"].max().floor(window), freq=window)
    n_win = len(windows)
    span = int(NAIVE_TRAILING // window)
    drawn = np.arange(n_win) if area_windows is None else windows.get_indexer(area_windows)
    drawn = np.unique(drawn[drawn >= 0])
    bh = points_to_cells(base["lat"].to_numpy(), base["lon"].to_numpy(), resolution)
    eh = points_to_cells(ev["lat"].to_numpy(), ev["lon"].to_numpy(), resolution)
    ew = ((ev["timestamp"] - start) // window).to_numpy()
    nets = sorted(set(base["network"].dropna().astype(str)))
    areas: dict[tuple[pd.Timestamp, str], shapely.Geometry] = {}
    polys = np.zeros(n_win, dtype=int)
    seen_any = np.zeros((0, n_win), dtype=bool)
    hex_all = np.unique(bh)
    any_hits = np.zeros((hex_all.size, n_win), dtype=bool)
    for net in nets:
        bsel = (base["network"] == net).fillna(False).to_numpy()
        hexes = np.unique(bh[bsel])
        esel = (ev["network"] == net).fillna(False).to_numpy()
        pos = pd.Index(hexes).get_indexer(eh[esel])
        hits = np.zeros((hexes.size, n_win), dtype=bool)
        ok = pos >= 0
        hits[pos[ok], ew[esel][ok]] = True
        recent = _trailing_any(hits, span)
        apos = pd.Index(hex_all).get_indexer(hexes)
        any_hits[apos] |= hits
        for w in drawn:
            down = hexes[~recent[:, w]]
            if down.size:
                areas[(windows[w], net)] = cells_to_polygon(down)
                polys[w] += 1
    recent_all = _trailing_any(any_hits, span)
    for w in drawn:
        down = hex_all[~recent_all[:, w]]
        if down.size:
            areas[(windows[w], "all")] = cells_to_polygon(down)
    del seen_any
    # Cells: baseline sightings and none in the trailing window.
    key = ["mcc", "mnc", "area", "cell"]
    cells = scenario.cells
    cidx = pd.MultiIndex.from_frame(cells[["mcc", "net", "area", "cell"]].astype("int64"))

    def rows(frame: pd.DataFrame) -> np.ndarray:
        sel = (frame["status"] == "ok").fillna(False).to_numpy() & frame[key].notna().all(
            axis=1
        ).to_numpy()
        out = np.full(len(frame), -1)
        out[sel] = cidx.get_indexer(pd.MultiIndex.from_frame(frame.loc[sel, key].astype("int64")))
        return out

    heard = np.zeros(len(cells), dtype=bool)
    br = rows(base)
    heard[br[br >= 0]] = True
    er = rows(ev)
    sightings = np.zeros((len(cells), n_win), dtype=bool)
    sightings[er[er >= 0], ew[er >= 0]] = True
    offline = heard[:, None] & ~_trailing_any(sightings, span)
    return Prediction(windows, window, areas, offline, polys)


def _trailing_any(hits: np.ndarray, span: int) -> np.ndarray:
    cum = np.concatenate([np.zeros((hits.shape[0], 1)), np.cumsum(hits, axis=1)], axis=1)
    cols = np.arange(hits.shape[1])
    lo = np.maximum(cols - span + 1, 0)
    return (cum[:, cols + 1] - cum[:, lo]) > 0


def score(scenario, pred: Prediction, population: pd.DataFrame, result: Score) -> None:
    truth = scenario.truth
    onset = scenario.event_start
    lon = population["lon"].to_numpy()
    lat = population["lat"].to_numpy()
    people = population["population"].to_numpy()
    before = truth.served(lon, lat, onset - pd.Timedelta(minutes=1))
    nets = list(before.columns)
    tc = truth.truth_cells
    key = ["mcc", "net", "area", "cell"]
    tidx = pd.MultiIndex.from_frame(tc[key]).get_indexer(
        pd.MultiIndex.from_frame(scenario.cells[key])
    )
    down_from = pd.to_datetime(tc["down_from"], utc=True)
    up_at = pd.to_datetime(tc["up_at"], utc=True)
    for hours in CHECKPOINT_HOURS:
        t = onset + pd.Timedelta(hours=hours)
        if t >= scenario.event_end:
            continue
        w = pred.windows.get_indexer([t.floor(pred.window)])[0]
        if w < 0:
            continue
        start = pred.windows[w]
        now = truth.served(lon, lat, t)
        for net in nets:
            geom = pred.areas.get((start, net))
            flagged = (
                shapely.contains_xy(geom, lon, lat)
                if geom is not None
                else np.zeros(lon.size, dtype=bool)
            )
            result.net.add(flagged, before[net].to_numpy() & ~now[net].to_numpy(), people)
        geom = pred.areas.get((start, "all"))
        flagged = (
            shapely.contains_xy(geom, lon, lat)
            if geom is not None
            else np.zeros(lon.size, dtype=bool)
        )
        result.all.add(flagged, before.any(axis=1).to_numpy() & ~now.any(axis=1).to_numpy(), people)
        tdown = ((down_from <= t) & ~(up_at <= t)).to_numpy()
        truth_off = np.where(tidx >= 0, tdown[np.maximum(tidx, 0)], False)
        result.cells.add(pred.offline[:, w], truth_off)
    # Delays per site: first window end after the event where a cell of the site is offline.
    ends = pred.windows + pred.window
    site_of = tc["site_id"].astype(str).to_numpy()[np.maximum(tidx, 0)]
    site_off = pd.DataFrame(pred.offline[tidx >= 0]).groupby(site_of[tidx >= 0]).any()
    sites = truth.sites.set_index("site_id")
    for site, row in sites[sites["down_from"].notna()].iterrows():
        if site not in site_off.index:
            continue
        flags = site_off.loc[site].to_numpy()
        d0 = pd.Timestamp(row["down_from"])
        after = np.flatnonzero(flags & np.asarray(ends > d0))
        up = pd.Timestamp(row["up_at"]) if pd.notna(row["up_at"]) else None
        if after.size and (up is None or pred.windows[after[0]] < up):
            result.detect_delay_h.append((ends[after[0]] - d0) / pd.Timedelta(hours=1))
            if up is not None and up < ends[-1]:
                back = np.flatnonzero(~flags & np.asarray(pred.windows >= up.floor(pred.window)))
                if back.size:
                    result.restore_delay_h.append(
                        max((ends[back[0]] - up) / pd.Timedelta(hours=1), 0.0)
                    )


def collect_calibration(scenario, pred: Prediction, result: Score) -> None:
    """Pair each (cell, window) p_offline with whether the cell was down at the window end."""
    if pred.p_offline is None:
        return
    tc = scenario.truth.truth_cells
    key = ["mcc", "net", "area", "cell"]
    tidx = pd.MultiIndex.from_frame(tc[key]).get_indexer(
        pd.MultiIndex.from_frame(scenario.cells[key])
    )
    down_from = pd.to_datetime(tc["down_from"], utc=True).to_numpy("datetime64[ns]")
    up_at = pd.to_datetime(tc["up_at"], utc=True).to_numpy("datetime64[ns]")
    ends = (pred.windows + pred.window).to_numpy("datetime64[ns]")
    rows = np.flatnonzero(tidx >= 0)
    d0, d1 = down_from[tidx[rows]][:, None], up_at[tidx[rows]][:, None]
    # NaT compares False: never down / never restored.
    down = (d0 <= ends[None, :]) & ~(d1 <= ends[None, :])
    p = pred.p_offline[rows]
    known = np.isfinite(p)
    result.calib_p.append(p[known])
    result.calib_truth.append(down[known])
    if pred.density is not None:
        result.calib_density.append(pred.density[rows][known])


def collect_confidence(
    scenario, outages: pd.DataFrame, window: pd.Timedelta, population: pd.DataFrame, result: Score
) -> None:
    """Pair each outage-severity polygon of a checkpoint window (both tiers) with the
    people inside it and those of them truly cut off: served by its network before
    onset and not at the checkpoint (by any network and by none, for ``"all"``)."""
    if outages is None or len(outages) == 0 or "confidence" not in outages:
        return
    sel = outages[(outages["severity"] == "outage").to_numpy()]
    if len(sel) == 0:
        return
    truth = scenario.truth
    onset = scenario.event_start
    lon = population["lon"].to_numpy()
    lat = population["lat"].to_numpy()
    people = population["population"].to_numpy("float64")
    points = shapely.points(lon, lat)
    before = truth.served(lon, lat, onset - pd.Timedelta(minutes=1))
    suspected = suspected_outages(sel)
    starts = pd.DatetimeIndex(sel["window_start"])
    for hours in CHECKPOINT_HOURS:
        t = onset + pd.Timedelta(hours=hours)
        if t >= scenario.event_end:
            continue
        rows = np.flatnonzero(starts == t.floor(window))
        if rows.size == 0:
            continue
        now = truth.served(lon, lat, t)
        cut = {net: before[net].to_numpy() & ~now[net].to_numpy() for net in before.columns}
        cut["all"] = before.any(axis=1).to_numpy() & ~now.any(axis=1).to_numpy()
        nets = sel["network"].astype(str).to_numpy()[rows]
        tree = shapely.STRtree(sel.geometry.to_numpy()[rows])
        pt, poly = tree.query(points, predicate="within")
        inside = np.bincount(poly, weights=people[pt], minlength=rows.size)
        out_w = np.zeros(pt.size)
        for net in np.unique(nets):
            mask = nets[poly] == net
            if net in cut:
                out_w[mask] = people[pt[mask]] * cut[net][pt[mask]]
        result.conf_p.append(sel["confidence"].to_numpy("float64")[rows])
        result.conf_suspected.append(suspected[rows])
        result.conf_people.append(inside)
        result.conf_out.append(np.bincount(poly, weights=out_w, minlength=rows.size))


def confidence_lines(scores: dict[tuple[str, str], Score]) -> list[str]:
    """Reliability of dcm's outage ``confidence``: of the people inside polygons given
    a confidence in a bin, the share truly cut off; per tier, pooled over scenarios."""
    p = _pooled(scores, "conf_p", "float64")
    if p.size == 0:
        return []
    sus = _pooled(scores, "conf_suspected", "bool")
    ppl = _pooled(scores, "conf_people", "float64")
    out = _pooled(scores, "conf_out", "float64")
    edges = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0])
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, edges.size - 2)
    lines = [
        "",
        "Outage `confidence` against the truth (outage-severity polygons at the "
        "checkpoints, every scenario and seed; people-weighted):",
        "",
        "| tier | confidence | polygons | people inside | mean confidence | share truly cut off |",
        "|---|---|---|---|---|---|",
    ]
    for label, mask in (("confirmed", ~sus), ("suspected", sus)):
        for b in range(edges.size - 1):
            sel = mask & (which == b)
            w = ppl[sel].sum()
            if not sel.any() or w <= 0:
                continue
            lines.append(
                f"| {label} | {edges[b]:g}–{edges[b + 1]:g} | {int(sel.sum()):,} | {w:,.0f} "
                f"| {float((p[sel] * ppl[sel]).sum() / w):.3f} "
                f"| {float(out[sel].sum() / w):.3f} |"
            )
    return lines


def _pooled(scores: dict[tuple[str, str], Score], name: str, dtype: str) -> np.ndarray:
    """dcm's arrays of one Score list field (``calib_p``, ``conf_out``, ...), joined over
    every scenario and seed."""
    arrays = [a for (_, m), s in scores.items() if m == "dcm" for a in getattr(s, name)]
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)


def calibration_lines(scores: dict[tuple[str, str], Score]) -> list[str]:
    """Reliability of dcm's cell p_offline, pooled over every scenario and seed."""
    from sklearn.metrics import brier_score_loss

    p = _pooled(scores, "calib_p", "float64")
    y = _pooled(scores, "calib_truth", "bool")
    if p.size == 0:
        return []
    edges = np.array([0.0, 0.01, 0.05, 0.2, 0.5, 0.8, 0.9, 0.99, 1.0])
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, edges.size - 2)
    lines = [
        "",
        "Calibration of dcm's cell p_offline (every cell with a known state, every window, "
        f"all scenarios and seeds; {p.size:,} cell-windows; Brier score "
        f"{brier_score_loss(y, p):.4f}, always saying 'online' would score {y.mean():.4f}):",
        "",
        "| p_offline | cell-windows | mean p_offline | share truly offline |",
        "|---|---|---|---|",
    ]
    for b in range(edges.size - 1):
        sel = which == b
        if sel.any():
            lines.append(
                f"| {edges[b]:g}–{edges[b + 1]:g} | {int(sel.sum()):,} | {p[sel].mean():.3f} "
                f"| {y[sel].mean():.3f} |"
            )
    return lines


def save_calibration(scores: dict[tuple[str, str], Score], path: Path) -> None:
    """Every (p_offline, truth) pair of dcm as ``p`` and ``truth`` arrays in an .npz file,
    with each pair's ``density`` and the outage polygons' ``conf_*`` arrays
    (collect_confidence), for fitting calibrations on tuning seeds (docs/method.md)."""
    np.savez_compressed(
        path,
        p=_pooled(scores, "calib_p", "float64"),
        truth=_pooled(scores, "calib_truth", "bool"),
        density=_pooled(scores, "calib_density", "float64"),
        # outage polygons at the checkpoints: confidence, tier, people inside, cut off
        conf_p=_pooled(scores, "conf_p", "float64"),
        conf_suspected=_pooled(scores, "conf_suspected", "bool"),
        conf_people=_pooled(scores, "conf_people", "float64"),
        conf_out=_pooled(scores, "conf_out", "float64"),
    )


def score_oracle(scenario, population: pd.DataFrame, resolution: int, result: Score) -> None:
    """Area tallies of the hex oracle: a grid cell is flagged where most of the people
    served there before onset (by the network; by any network for "all") are out."""
    truth = scenario.truth
    onset = scenario.event_start
    lon = population["lon"].to_numpy()
    lat = population["lat"].to_numpy()
    people = population["population"].to_numpy()
    _, hexes = np.unique(points_to_cells(lat, lon, resolution), return_inverse=True)
    before = truth.served(lon, lat, onset - pd.Timedelta(minutes=1))

    def majority(out: np.ndarray, served: np.ndarray) -> np.ndarray:
        lost = np.bincount(hexes, weights=people * out)
        had = np.bincount(hexes, weights=people * served)
        return (lost > 0.5 * had)[hexes] & (had[hexes] > 0)

    for hours in CHECKPOINT_HOURS:
        t = onset + pd.Timedelta(hours=hours)
        if t >= scenario.event_end:
            continue
        now = truth.served(lon, lat, t)
        for net in before.columns:
            b = before[net].to_numpy()
            out = b & ~now[net].to_numpy()
            result.net.add(majority(out, b), out, people)
        b = before.any(axis=1).to_numpy()
        out = b & ~now.any(axis=1).to_numpy()
        result.all.add(majority(out, b), out, people)


def score_control(pred: Prediction, population: pd.DataFrame, result: Score) -> None:
    lon = population["lon"].to_numpy()
    lat = population["lat"].to_numpy()
    people = population["population"].to_numpy()
    flagged = np.zeros(lon.size, dtype=bool)
    for geom in pred.areas.values():
        flagged |= shapely.contains_xy(geom, lon, lat)
    result.flagged_people += float(people[flagged].sum())
    result.people += float(people.sum())
    result.polygons += int(pred.polygons_per_window.sum())
    result.windows_with_polygons += int((pred.polygons_per_window > 0).sum())


def fmt(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--resolution", type=int, default=DetectionParams().resolution)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument(
        "--hazard", action="store_true", help="give dcm the scenario's hazard footprint"
    )
    ap.add_argument("--no-oracle", action="store_true", help="skip the hex-oracle ceiling")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument(
        "--calibration-out", type=Path, default=None, help="save (p_offline, truth) pairs (.npz)"
    )
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a DetectionParams field (repeatable)",
    )
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.param:
        key, _, value = item.partition("=")
        default = getattr(DetectionParams(), key)
        if isinstance(default, bool):
            overrides[key] = value.lower() in ("1", "true", "yes")
        else:
            overrides[key] = type(default)(value)
    params = DetectionParams(resolution=args.resolution, **overrides)
    methods = ["dcm"] + ([] if args.no_naive else ["naive"])
    methods += [] if args.no_oracle else ["hex oracle"]
    scores = {
        (s, m): Score()
        for s in args.scenarios
        for m in methods
        if not (m == "hex oracle" and s.startswith("control"))
    }
    t0 = time.perf_counter()
    for name in args.scenarios:
        for seed in args.seeds:
            scenario = simulate(name, seed=seed, scale=args.scale)
            population = population_points(scenario.population, scenario.population_transform)
            if (name, "hex oracle") in scores:
                score_oracle(scenario, population, params.resolution, scores[(name, "hex oracle")])
            for method in methods:
                if method == "hex oracle":
                    continue
                pred = (
                    dcm_prediction(scenario, params, population, hazard=args.hazard)
                    if method == "dcm"
                    else naive_prediction(scenario, params.resolution, params.window_td)
                )
                if name.startswith("control"):
                    score_control(pred, population, scores[(name, method)])
                else:
                    score(scenario, pred, population, scores[(name, method)])
                collect_calibration(scenario, pred, scores[(name, method)])
                collect_confidence(
                    scenario, pred.outages, params.window_td, population, scores[(name, method)]
                )
            print(f"  {name} seed {seed} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    lines = [
        f"Accuracy on simulated scenarios (seeds {', '.join(map(str, args.seeds))}, scale "
        f"{args.scale}, H3 resolution {args.resolution}, window {params.window}; checkpoints "
        f"{', '.join(f'{h} h' for h in CHECKPOINT_HOURS)} after onset; areas weighted by people)",
        "",
        "| scenario | method | net P | net R | net F1 | all P | all R | all F1 | cell P | cell R "
        "| cell F1 | detect h (median) | restore h (median) | control: people flagged | "
        "control: polygons |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    total = {m: Score() for m in methods}
    for (name, method), s in scores.items():
        if name.startswith("control"):
            share = s.flagged_people / s.people if s.people else float("nan")
            lines.append(
                f"| {name} | {method} | | | | | | | | | | | | {fmt(100 * share, 2)} % "
                f"| {s.polygons} (in {s.windows_with_polygons} windows) |"
            )
            continue
        for part in ("net", "all", "cells"):
            t, src = getattr(total[method], part), getattr(s, part)
            t.tp, t.fp, t.fn = t.tp + src.tp, t.fp + src.fp, t.fn + src.fn
        total[method].detect_delay_h += s.detect_delay_h
        total[method].restore_delay_h += s.restore_delay_h
        lines.append(_row(name, method, s))
    for method in methods:
        lines.append(_row("**all disasters**", method, total[method]))
    lines += calibration_lines(scores)
    lines += confidence_lines(scores)
    if args.calibration_out is not None:
        save_calibration(scores, args.calibration_out)
    lines.append("")
    lines.append(f"Run time {time.perf_counter() - t0:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


def _row(name: str, method: str, s: Score) -> str:
    np_, nr, nf = s.net.prf()
    ap_, ar, af = s.all.prf()
    cp, cr, cf = s.cells.prf()
    dd = float(np.median(s.detect_delay_h)) if s.detect_delay_h else float("nan")
    rd = float(np.median(s.restore_delay_h)) if s.restore_delay_h else float("nan")
    return (
        f"| {name} | {method} | {fmt(np_)} | {fmt(nr)} | {fmt(nf, 3)} | {fmt(ap_)} | {fmt(ar)} "
        f"| {fmt(af, 3)} | {fmt(cp)} | {fmt(cr)} | {fmt(cf, 3)} | {fmt(dd, 1)} | {fmt(rd, 1)} | | |"
    )


if __name__ == "__main__":
    sys.exit(main())
