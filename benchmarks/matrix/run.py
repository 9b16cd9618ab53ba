"""Accuracy over a matrix of conditions: data density x onset hour x hazard, plus control.

One operating point hides where a detector breaks. This script runs the simulator's
scenarios over a grid of conditions (``dcm.simulate.Conditions``) and scores, in each
matrix cell, dcm beside these references:

* the *naive* reading of earlier disaster maps (``benchmarks/accuracy/run.py``);
* an *oracle*: dcm's own coverage model (site reach from the data, outages drawn by
  ``dcm.analysis.outages.build_outages``) fed the true site states instead of the
  estimated p_offline. It is the bound any detector reaches with that coverage model;
* a *silence oracle* (``silence-oracle``): the same, but a failure is known only once
  the failed site (or cell) has missed ``SILENCE_K`` expected sightings (its baseline
  rate × the hour-of-day profile, from the failure to the end of the judged window):
  what a detector that knows which sites fail but must wait for silence to say so can
  reach. It shows how much of the gap to the oracle is the data's thinness rather than
  the method;
* a *silence rule* (``silence-rule``), a simple detector to beat: no truth, a site is
  down once it has been silent that long in the event data (the "quick site-silence
  detector" issue #10 compared dcm with).

Scores per matrix cell (seeds pooled): network-level and all-network area F1 (people-
weighted, checkpoints 6 h to 144 h after onset, as in benchmarks/accuracy/run.py),
cell offline F1, the median detection delay of failed cells and the share of failed
cells ever detected by outage duration; in control (calm) weeks the number of outage
polygons and the share of people under ``suspected`` polygons.

    python benchmarks/matrix/run.py                 # report: seeds 1 2 3, whole matrix
    python benchmarks/matrix/run.py --quick         # 1 seed, 3 densities, night, cyclone, control
    python benchmarks/matrix/run.py --tune          # seeds 11 12 13: for choosing parameters

Seeds 1-3 report; seeds 11-13 (``--tune``) are for choosing parameters and never
reported. Simulated scenarios are cached on disk (``--cache``), keyed by their
parameters and the simulator's source, so reruns skip simulation.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

import dcm.ingest.cells
import dcm.simulate
import dcm.simulate.truth as _truth_module
from dcm.analysis import DetectionParams, build_baseline, detect, event_windows
from dcm.analysis.detect import _coverage_input, count_event
from dcm.analysis.impact import population_points
from dcm.analysis.outages import _coverage_usable, build_outages
from dcm.ingest import group_sites
from dcm.simulate import simulate

try:  # the scenario generator's conditions (density, onset hour, ...)
    from dcm.simulate import Conditions  # type: ignore[attr-defined]
except ImportError:  # older simulator: density through the volume scale only
    Conditions = None

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: Set by --sites cells: dcm groups sites from the cell list as a user's data would.
SITES_FROM_CELLS = False
#: Give dcm the scenario's hazard footprint (``--hazard``), as a user with a GDACS/NHC
#: footprint would.
GIVE_HAZARD = False


def _load_accuracy() -> Any:
    """benchmarks/accuracy/run.py as a module (scoring shared with the one-point benchmark)."""
    path = REPO / "benchmarks" / "accuracy" / "run.py"
    spec = importlib.util.spec_from_file_location("accuracy_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


acc = _load_accuracy()

DENSITIES = (0.03, 0.1, 0.3, 1.0, 3.0)
ONSETS = (3.0, 14.0)
HAZARDS = ("quake", "cyclone")
REPORT_SEEDS = (1, 2, 3)
TUNE_SEEDS = (11, 12, 13)
#: "Real-shaped" conditions besides density and onset.
OUTAGE_HOURS = (1.0, 168.0)
POWER_DELAY_H = (2.0, 24.0)
SECTOR_SHARE = 0.2
ECUADOR_CELLS = REPO / ".." / "shared" / "data" / "opencellid" / "ecuador_740.csv.gz"
#: Portoviejo and its surroundings (Manabí, struck by the 2016 earthquake): 1,081 cells,
#: 556 sites, the hazards fitted to the box by the simulator.
ECUADOR_BBOX = (-80.5, -1.2, -80.3, -0.95)
#: Volume scale per density (the simulator keeps the density, the scale shrinks the
#: number of people and measurements); dense cells are scaled down to keep the default
#: matrix within about 30 minutes on 2 cores.
SCALE_BY_DENSITY: dict[float, float] = {}
#: Baseline measurements per site-hour of the synthetic scenarios at scale 1 (used to
#: reach a density through the scale when the simulator has no Conditions).
BASE_DENSITY = 200_000 / (232 * 14 * 24)
DURATION_BINS = ((0.0, 2.0, "1–2 h"), (2.0, 12.0, "2–12 h"), (12.0, 48.0, "12–48 h"))
DURATION_BINS += ((48.0, np.inf, "> 48 h"),)
METHODS = ("dcm", "naive", "silence-rule", "oracle", "silence-oracle")
#: Methods that know the truth: bounds, not detectors.
BOUNDS = ("oracle", "silence-oracle")
#: Expected sightings a failed site must miss before the silence oracle knows of it:
#: a working site is that silent with probability e^-3, about 5 %.
SILENCE_K = 3.0

#: Targets (density -> thresholds), checked on the dcm rows.
TARGETS = (
    ("net F1 at 0.3", 0.3, "net", ">=", 0.75),
    ("all-network F1 at 0.3", 0.3, "all", ">=", 0.65),
    ("cell F1 at 0.3", 0.3, "cell", ">=", 0.75),
    ("median detection delay at 0.3 (h)", 0.3, "delay", "<=", 6.0),
    ("net F1 at >= 3", 3.0, "net", ">=", 0.85),
    ("all-network F1 at >= 3", 3.0, "all", ">=", 0.80),
)


@dataclass(frozen=True)
class Cell:
    """One condition of the matrix (hazard "control": a calm week)."""

    hazard: str
    density: float
    onset_hour: float

    @property
    def control(self) -> bool:
        return self.hazard == "control"


@dataclass
class Tallies:
    """Everything scored for one method in one matrix cell, pooled over seeds."""

    score: Any = field(default_factory=lambda: acc.Score())
    delays_h: list[float] = field(default_factory=list)
    failed: np.ndarray = field(default_factory=lambda: np.zeros(len(DURATION_BINS)))
    detected: np.ndarray = field(default_factory=lambda: np.zeros(len(DURATION_BINS)))
    polygons: int = 0
    people: float = 0.0
    flagged_people: float = 0.0
    suspected_people: float = 0.0
    #: calm weeks: cell-windows called offline, of all cell-windows
    offline_cells: float = 0.0
    cell_windows: float = 0.0


def matrix_cells(args: argparse.Namespace) -> list[Cell]:
    out = []
    for density in args.densities:
        for hazard in args.hazards:
            if hazard == "control":
                out.append(Cell("control", density, args.onsets[0]))
            else:
                out.extend(Cell(hazard, density, onset) for onset in args.onsets)
    return out


def conditions_for(
    cell: Cell, geometry: str, bbox: tuple[float, float, float, float] = ECUADOR_BBOX
) -> Any:
    if Conditions is None:
        return None
    extra: dict[str, Any] = {}
    if geometry == "ecuador":
        extra["cells_from"] = str(ECUADOR_CELLS.resolve())
        extra["bbox"] = bbox
    return Conditions(
        density=cell.density,
        onset_hour=cell.onset_hour,
        outage_hours=OUTAGE_HOURS,
        power_delay_h=POWER_DELAY_H,
        sector_share=SECTOR_SHARE,
        **extra,
    )


def scale_for(cell: Cell) -> float:
    if Conditions is None:
        return cell.density / BASE_DENSITY
    return SCALE_BY_DENSITY.get(cell.density, 1.0)


def _simulator_hash() -> str:
    # The real-cell geometry groups its sites with dcm.ingest.cells.group_sites.
    src = sorted(Path(dcm.simulate.__file__).parent.glob("*.py"))
    src.append(Path(dcm.ingest.cells.__file__))
    h = hashlib.sha256()
    for path in src:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def cached_scenario(
    cell: Cell,
    seed: int,
    geometry: str,
    cache: Path,
    bbox: tuple[float, float, float, float] = ECUADOR_BBOX,
) -> Any:
    """The simulated scenario of a matrix cell, from the disk cache when it is there."""
    conditions = conditions_for(cell, geometry, bbox)
    scale = scale_for(cell)
    key = repr((cell.hazard, seed, scale, conditions, geometry, _simulator_hash()))
    path = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)
    kwargs: dict[str, Any] = {"seed": seed, "scale": scale}
    if conditions is not None:
        kwargs["conditions"] = conditions
    scenario = simulate(cell.hazard, **kwargs)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(scenario, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return scenario


def _tier(outages: pd.DataFrame) -> np.ndarray:
    """Tier of each outage row; a frame without ``tier`` is all confirmed."""
    if "tier" not in outages:
        return np.full(len(outages), "confirmed", dtype=object)
    return outages["tier"].astype("string").fillna("confirmed").to_numpy(dtype=object)


def _areas(outages: pd.DataFrame) -> dict[tuple[pd.Timestamp, str], shapely.Geometry]:
    """Union of confirmed outage-severity polygons per (window, network)."""
    areas: dict[tuple[pd.Timestamp, str], shapely.Geometry] = {}
    if len(outages) == 0:
        return areas
    sel = outages[(outages["severity"] == "outage").to_numpy() & (_tier(outages) == "confirmed")]
    for (start, net), group in sel.groupby(["window_start", "network"]):
        areas[(start, net)] = shapely.union_all(group.geometry.to_numpy())
    return areas


def _polygons_per_window(outages: pd.DataFrame, windows: pd.DatetimeIndex) -> np.ndarray:
    """Confirmed outage features per window (any network, any severity)."""
    if len(outages) == 0:
        return np.zeros(len(windows), dtype=int)
    sel = outages[_tier(outages) == "confirmed"]
    return sel.groupby("window_start").size().reindex(windows, fill_value=0).to_numpy()


def _suspected_flags(outages: pd.DataFrame, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """People points under any suspected polygon, in any window."""
    flagged = np.zeros(lon.size, dtype=bool)
    if len(outages) == 0:
        return flagged
    sel = outages[_tier(outages) == "suspected"]
    if len(sel):
        flagged |= shapely.contains_xy(shapely.union_all(sel.geometry.to_numpy()), lon, lat)
    return flagged


def _truth_rows(scenario: Any, cells: pd.DataFrame) -> np.ndarray:
    """Row of each cell in the truth's cell table (-1: unknown to the truth)."""
    tc = scenario.truth.truth_cells
    key = ["mcc", "net", "area", "cell"]
    return pd.MultiIndex.from_frame(tc[key]).get_indexer(
        pd.MultiIndex.from_frame(cells[key].astype("int64"))
    )


def _site_all_down(model: Any, known: np.ndarray, cell_down: np.ndarray) -> np.ndarray:
    """bool (sites × times): every cell of the site known to the truth (``known``) is
    down (``cell_down``, cells × times); a site with no such cell is up."""
    site = model.cell_site
    n_site = len(model.sites)
    n_known = np.bincount(site[known], minlength=n_site)
    n_down = np.zeros((n_site, cell_down.shape[1]))
    np.add.at(n_down, site[known], cell_down[known].astype("float64"))
    return (n_known[:, None] > 0) & (n_down >= n_known[:, None])


def _truth_down(scenario: Any, cells: pd.DataFrame, at: np.ndarray) -> np.ndarray:
    """bool (cells x times): the cell is truly down (cells unknown to the truth: up)."""
    tc = scenario.truth.truth_cells
    tidx = _truth_rows(scenario, cells)
    d0 = pd.to_datetime(tc["down_from"], utc=True).to_numpy("datetime64[ns]")[np.maximum(tidx, 0)]
    d1 = pd.to_datetime(tc["up_at"], utc=True).to_numpy("datetime64[ns]")[np.maximum(tidx, 0)]
    # NaT compares False: never down / never restored.
    down = (d0[:, None] <= at[None, :]) & ~(d1[:, None] <= at[None, :])
    return down & (tidx >= 0)[:, None]


def _expected_hours(model: Any, times: np.ndarray) -> np.ndarray:
    """Hours of baseline-average sightings from a fixed origin to each time (ns,
    datetime64; NaT gives NaN): the integral of the baseline's hour-of-day profile,
    so a rate (sightings per hour) times a difference of these is an expected count."""
    t = times.astype("datetime64[ns]")
    ok = ~np.isnat(t)
    out = np.full(t.shape, np.nan)
    if not ok.any():
        return out
    hour_ns = np.int64(3_600_000_000_000)
    ns = t[ok].astype("int64")
    first = ns.min() // hour_ns
    knots = np.arange(first, ns.max() // hour_ns + 2, dtype="int64")
    cum = np.concatenate([[0.0], np.cumsum(model.hour_profile[knots[:-1] % 24])])
    out[ok] = np.interp(ns / hour_ns, knots.astype("float64"), cum)
    return out


def _silence_known(
    scenario: Any, model: Any, at: np.ndarray, until: np.ndarray, k: float
) -> tuple[np.ndarray, np.ndarray]:
    """(site known down (sites × times), cell known down (cells × times)).

    A site is known down at ``at`` when every cell of it known to the truth is down
    then and its baseline rate of sightings, over the hour-of-day profile from the
    last of those failures to ``until`` (the judged window's end), gives at least
    ``k`` expected sightings. A cell is known down when it is down and its site is
    known down, or its own rate gives ``k`` since its failure (a silent sector).
    """
    cell_down = _truth_down(scenario, model.cells, at)
    tidx = _truth_rows(scenario, model.cells)
    known = tidx >= 0
    d0 = pd.to_datetime(scenario.truth.truth_cells["down_from"], utc=True).dt.tz_convert(None)
    d0 = d0.to_numpy("datetime64[ns]")[np.maximum(tidx, 0)]
    d0[~known] = np.datetime64("NaT")
    site = model.cell_site
    n_site = len(model.sites)
    all_down = _site_all_down(model, known, cell_down)
    # The site fell silent when the last of its cells failed (NaT sorts as the smallest).
    since = np.full(n_site, np.iinfo("int64").min)
    np.maximum.at(since, site[known], d0[known].astype("int64"))
    since_h = _expected_hours(model, since.astype("datetime64[ns]"))
    end_h = _expected_hours(model, until)
    rate = model.sites["rate"].to_numpy("float64")
    site_known = all_down & (rate[:, None] * (end_h[None, :] - since_h[:, None]) >= k)
    cell_h = _expected_hours(model, d0)
    own = np.asarray(model.cell_rate, dtype="float64")[:, None] * (end_h[None, :] - cell_h[:, None])
    cell_known = cell_down & (site_known[site] | (own >= k))
    return site_known, cell_known


def _silence_rule(
    scenario: Any, model: Any, every: pd.DatetimeIndex, win: pd.Timedelta, k: float
) -> np.ndarray:
    """bool (sites × windows): the site has missed at least ``k`` expected sightings
    (baseline rate × hour-of-day profile) since it was last heard in the event data,
    or since the event data begin, by the window's end. Data only: no truth."""
    event = scenario.event
    ok = (event["status"] == "ok").to_numpy() & event["cell"].notna().to_numpy()
    seen = event.loc[ok, ["mcc", "mnc", "area", "cell"]].astype("int64")
    row = pd.MultiIndex.from_frame(model.cells[["mcc", "net", "area", "cell"]].astype("int64"))
    cell = row.get_indexer(pd.MultiIndex.from_frame(seen))
    ts = event.loc[ok, "timestamp"].dt.tz_convert(None).to_numpy("datetime64[ns]")
    ts = ts[cell >= 0].astype("int64")
    site = model.cell_site[cell[cell >= 0]]
    first = int(every[0].tz_convert(None).value)
    w = (ts - first) // int(win.value)
    inside = (w >= 0) & (w < len(every))
    n_site = len(model.sites)
    last = np.full((n_site, len(every)), np.iinfo("int64").min)
    np.maximum.at(last, (site[inside], w[inside]), ts[inside])
    last = np.maximum.accumulate(last, axis=1)
    start = int(event["timestamp"].min().tz_convert(None).value)
    since = np.maximum(last, start).astype("datetime64[ns]")
    until = (every + win).tz_convert(None).to_numpy("datetime64[ns]")
    rate = model.sites["rate"].to_numpy("float64")
    end_h = _expected_hours(model, until)
    missed = rate[:, None] * (end_h[None, :] - _expected_hours(model, since))
    return missed >= k


def oracle_outages(
    scenario: Any,
    model: Any,
    params: DetectionParams,
    population: pd.DataFrame,
    *,
    rule: str = "oracle",
) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray] | None:
    """Outages of dcm's coverage model fed site states other than dcm's estimates.

    Reach comes from the data exactly as in ``detect`` (baseline reach, widened by
    precise sightings in the trailing span). ``rule`` gives the site states:

    * ``"oracle"``: p_offline is 1 for a site whose every cell known to the truth is
      down at the time of the checkpoints' phase in the window, else 0. A site with
      one sector down still serves the rest of its disc, which a per-site coverage
      model cannot tell apart. Offline cells are given for the checkpoint windows.
    * ``"silence-oracle"``: the truth, known only once the site has missed
      ``SILENCE_K`` expected sightings by the window's end (:func:`_silence_known`).
    * ``"silence-rule"``: no truth; a site is down once it has been silent for
      ``SILENCE_K`` expected sightings (:func:`_silence_rule`); its cells with it.

    The last two give offline cells for every event window (for delays), outages for
    the checkpoint windows.
    """
    event = scenario.event
    win = params.window_td
    every = event_windows(event, window=win)
    # Areas are scored only at the checkpoints: draw only their windows.
    windows = checkpoint_windows(scenario, win)
    lookback = max(params.span_windows, params.volume_windows)
    t0 = max(every.min() - lookback * win, event["timestamp"].min().floor(win))
    n_win = int((every.max() - t0) // win) + 1
    all_windows = pd.date_range(t0, periods=n_win, freq=win)
    counts = count_event(model, event, params=params)
    prep = counts.in_windows(t0.value // int(win.value), n_win)
    out_cols = all_windows.get_indexer(windows)
    n_site = len(model.sites)
    nothing = np.zeros((n_site, n_win))
    site_ev = {"p": nothing, "llr": nothing, "fails": nothing}
    coverage = _coverage_input(model, prep, site_ev, n_win, out_cols, params)
    if coverage is None or not _coverage_usable(coverage, len(model.networks)):
        return None
    # Site states at the checkpoints' phase within each window.
    phase = scenario.event_start - scenario.event_start.floor(win)
    if rule == "oracle":
        at = (windows + phase).to_numpy("datetime64[ns]")
        cell_down = _truth_down(scenario, model.cells, at)
        site_down = _site_all_down(model, _truth_rows(scenario, model.cells) >= 0, cell_down)
        cell_at_checkpoints = cell_down
    else:
        if rule == "silence-oracle":
            at = (every + phase).tz_convert(None).to_numpy("datetime64[ns]")
            until = (every + win).tz_convert(None).to_numpy("datetime64[ns]")
            site_all, cell_down = _silence_known(scenario, model, at, until, SILENCE_K)
        elif rule == "silence-rule":
            site_all = _silence_rule(scenario, model, every, win, SILENCE_K)
            cell_down = site_all[model.cell_site]
        else:
            raise ValueError(rule)
        cols = every.get_indexer(windows)
        site_down = site_all[:, cols]
        cell_at_checkpoints = cell_down[:, cols]
    coverage.p = site_down.astype("float64")
    coverage.p_block = coverage.p  # the rule decides which sites still serve
    empty_keys = pd.DataFrame({"h3": pd.Series(dtype="uint64"), "network": [], "hex": []})
    outages = build_outages(
        keys=empty_keys,
        state=np.zeros((0, len(windows)), dtype="int8"),
        p_down=np.zeros((0, len(windows))),
        windows=windows,
        window=win,
        networks=model.networks,
        params=params,
        population=population,
        cells=model.cells,
        cell_offline=cell_at_checkpoints,
        coverage=coverage,
    )
    return outages, windows if rule == "oracle" else every, cell_down


def checkpoint_windows(scenario: Any, win: pd.Timedelta) -> pd.DatetimeIndex:
    """Windows holding the scored checkpoints (the onset's window in a calm week)."""
    onset = scenario.event_start
    times = [onset + pd.Timedelta(hours=h) for h in acc.CHECKPOINT_HOURS]
    times = [t for t in times if t < scenario.event_end] or [onset]
    return pd.DatetimeIndex([t.floor(win) for t in times]).unique()


_SECTORS: dict[bytes, np.ndarray] = {}


def _digest(*arrays: np.ndarray) -> bytes:
    h = hashlib.sha1()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _sector_of_memo(
    point_xy: np.ndarray, site_xy: np.ndarray, azimuth0: np.ndarray, n_sectors: np.ndarray
) -> np.ndarray:
    """``dcm.simulate.truth.sector_of``, remembered: the truth asks it for the same
    points and candidate sites at every checkpoint (it does not depend on the time)."""
    # The points are hashed; the candidate sites' arrays (n x k, large) are summed:
    # they follow from the points and the network, so this tells the networks apart.
    sums = tuple(float(np.sum(a, dtype="float64")) for a in (site_xy, azimuth0, n_sectors))
    key = _digest(point_xy) + repr((site_xy.shape, sums)).encode()
    if key not in _SECTORS:
        _SECTORS[key] = _sector_of(point_xy, site_xy, azimuth0, n_sectors)
    return _SECTORS[key]


if hasattr(_truth_module, "sector_of"):
    _sector_of = _truth_module.sector_of
    _truth_module.sector_of = _sector_of_memo


def memoise_truth(scenario: Any) -> None:
    """Remember the truth's site candidates per set of points: ``served`` is asked for
    the same population points at every checkpoint and by every method, and finding
    the sites that reach each point is most of its cost (results are unchanged)."""
    _SECTORS.clear()
    index = scenario.truth.index
    found = index.candidates
    memo: dict[tuple[str, bytes], tuple[np.ndarray, np.ndarray]] = {}

    def candidates(xy: np.ndarray, network: str) -> tuple[np.ndarray, np.ndarray]:
        key = (network, hashlib.sha1(np.ascontiguousarray(xy).tobytes()).digest())
        if key not in memo:
            memo[key] = found(xy, network)
        return memo[key]

    index.candidates = candidates
    truth = scenario.truth
    ask = truth.served
    served: dict[tuple[pd.Timestamp, bytes], pd.DataFrame] = {}

    def served_at(lon: np.ndarray, lat: np.ndarray, time: pd.Timestamp) -> pd.DataFrame:
        where = np.concatenate([np.atleast_1d(lon), np.atleast_1d(lat)])
        key = (pd.Timestamp(time), hashlib.sha1(np.ascontiguousarray(where).tobytes()).digest())
        if key not in served:
            served[key] = ask(lon, lat, time)
        return served[key]

    truth.served = served_at


def score_failed_cells(scenario: Any, pred: Any, out: Tallies) -> None:
    """Delay and share detected of every truly failed cell, by outage duration.

    A failed cell is detected when the method calls it offline in a window that ends
    after the failure and starts before the repair; its delay is from the failure to
    the end of the first such window.
    """
    tc = scenario.truth.truth_cells
    tidx = _truth_rows(scenario, scenario.cells)
    rows = np.flatnonzero(tidx >= 0)
    d0 = pd.to_datetime(tc["down_from"], utc=True).to_numpy("datetime64[ns]")[tidx[rows]]
    d1 = pd.to_datetime(tc["up_at"], utc=True).to_numpy("datetime64[ns]")[tidx[rows]]
    end = np.datetime64(scenario.event_end.tz_convert(None), "ns")
    failed = ~np.isnat(d0) & (d0 < end)
    rows, d0, d1 = rows[failed], d0[failed], d1[failed]
    if rows.size == 0:
        return
    d1_eff = np.where(np.isnat(d1), end, d1)
    duration_h = (d1_eff - d0) / np.timedelta64(1, "h")
    starts = pred.windows.tz_convert(None).to_numpy("datetime64[ns]")
    ends = starts + np.timedelta64(int(pred.window.value), "ns")
    live = (ends[None, :] > d0[:, None]) & (starts[None, :] < d1_eff[:, None])
    hit = pred.offline[rows] & live
    found = hit.any(axis=1)
    first = np.argmax(hit, axis=1)
    delay_h = (ends[first] - d0) / np.timedelta64(1, "h")
    out.delays_h += delay_h[found].tolist()
    for b, (lo, hi, _) in enumerate(DURATION_BINS):
        sel = (duration_h >= lo) & (duration_h < hi) if b else duration_h < hi
        out.failed[b] += sel.sum()
        out.detected[b] += (sel & found).sum()


def score_control(
    pred: Any, outages: pd.DataFrame | None, population: pd.DataFrame, out: Tallies
) -> None:
    lon = population["lon"].to_numpy()
    lat = population["lat"].to_numpy()
    people = population["population"].to_numpy()
    flagged = np.zeros(lon.size, dtype=bool)
    for geom in pred.areas.values():
        flagged |= shapely.contains_xy(geom, lon, lat)
    out.people += float(people.sum())
    out.flagged_people += float(people[flagged].sum())
    out.polygons += int(pred.polygons_per_window.sum())
    out.offline_cells += float(pred.offline.sum())
    out.cell_windows += float(pred.offline.size)
    if outages is not None:
        out.suspected_people += float(people[_suspected_flags(outages, lon, lat)].sum())


def run_one(
    scenario: Any, params: DetectionParams, methods: tuple[str, ...], tallies: dict[str, Tallies]
) -> None:
    population = population_points(scenario.population, scenario.population_transform)
    control = scenario.truth.meta.get("hazard") is None
    memoise_truth(scenario)
    cells = scenario.cells
    if SITES_FROM_CELLS:
        # As a user gets them: sites grouped from the cell list, not the simulator's masts.
        cells = cells.assign(site_id=group_sites(cells).to_numpy())
    model = build_baseline(scenario.baseline, cells, params)
    for method in methods:
        outages = None
        if method == "dcm":
            found = detect(
                model,
                scenario.event,
                params=params,
                population=population,
                hazard=scenario.hazard if GIVE_HAZARD else None,
            )
            outages = found.outages
            cw = found.cell_windows
            shape = (len(model.cells), len(found.windows))
            offline = (cw["status"].to_numpy() == "offline").reshape(shape)
            p_off = cw["p_offline"].to_numpy("float64").reshape(shape)
            density = cw["silence_llr_per_h"].to_numpy("float64").reshape(shape)
            pred = acc.Prediction(
                found.windows,
                params.window_td,
                _areas(outages),
                acc._align_cells(model.cells, scenario.cells, offline),
                _polygons_per_window(outages, found.windows),
                acc._align_cells(model.cells, scenario.cells, p_off, fill=np.nan),
                outages,
                acc._align_cells(model.cells, scenario.cells, density, fill=np.nan),
            )
            acc.collect_calibration(scenario, pred, tallies[method].score)
            acc.collect_confidence(
                scenario, outages, params.window_td, population, tallies[method].score
            )
        elif method == "naive":
            pred = acc.naive_prediction(
                scenario,
                params.resolution,
                params.window_td,
                area_windows=checkpoint_windows(scenario, params.window_td),
            )
        else:
            got = oracle_outages(scenario, model, params, population, rule=method)
            if got is None:
                continue
            outages, windows, cell_down = got
            pred = acc.Prediction(
                windows,
                params.window_td,
                _areas(outages),
                acc._align_cells(model.cells, scenario.cells, cell_down),
                _polygons_per_window(outages, windows),
            )
        if pred.areas:  # contains_xy at every checkpoint
            shapely.prepare(np.asarray(list(pred.areas.values()), dtype=object))
        out = tallies[method]
        if control:
            score_control(pred, outages, population, out)
        else:
            acc.score(scenario, pred, population, out.score)
            if method != "oracle":  # its offline cells are the checkpoints' only
                score_failed_cells(scenario, pred, out)


def _f1(t: Any) -> float:
    """F1; 0 when there was something to find and nothing was flagged."""
    f = t.prf()[2]
    return 0.0 if not np.isfinite(f) and t.tp + t.fn > 0 else f


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _share(num: float, den: float) -> float:
    return num / den if den else float("nan")


def value(t: Tallies, what: str) -> float:
    if what == "net":
        return _f1(t.score.net)
    if what == "all":
        return _f1(t.score.all)
    if what == "cell":
        return _f1(t.score.cells)
    if what == "delay":
        return _median(t.delays_h)
    raise ValueError(what)


def pooled(results: dict[tuple[Cell, str], Tallies], cells: list[Cell], method: str) -> Tallies:
    """Tallies summed over matrix cells."""
    total = Tallies()
    for cell in cells:
        t = results.get((cell, method))
        if t is None:
            continue
        for part in ("net", "all", "cells"):
            a, b = getattr(total.score, part), getattr(t.score, part)
            a.tp, a.fp, a.fn = a.tp + b.tp, a.fp + b.fp, a.fn + b.fn
        total.delays_h += t.delays_h
        total.failed += t.failed
        total.detected += t.detected
        for name in (
            "polygons",
            "people",
            "flagged_people",
            "suspected_people",
            "offline_cells",
            "cell_windows",
        ):
            setattr(total, name, getattr(total, name) + getattr(t, name))
    return total


def fmt(x: float, digits: int = 2) -> str:
    return acc.fmt(x, digits)


def onset_label(hour: float) -> str:
    if hour < 0:
        return "as simulated (no Conditions)"
    kind = "night" if hour < 6 or hour >= 20 else "day"
    return f"{hour:g}:00 ({kind})"


def report(
    results: dict[tuple[Cell, str], Tallies],
    cells: list[Cell],
    methods: tuple[str, ...],
    header: list[str],
    *,
    calibration: bool = True,
) -> list[str]:
    """The markdown report; ``calibration``: add the reliability table (pooled over
    every scenario so far; left out of the partial reports written after each cell)."""
    lines = list(header)
    densities = sorted({c.density for c in cells})
    disasters = sorted({(c.hazard, c.onset_hour) for c in cells if not c.control})
    cols = [m for m in methods]
    for hazard, onset in disasters:
        lines += ["", f"### {hazard}, onset {onset_label(onset)}", ""]
        head = ["density (reports/site-h)"]
        head += [f"net F1 {m}" for m in cols] + [f"all F1 {m}" for m in cols]
        head += [f"cell F1 {m}" for m in cols if m != "oracle"]
        head += [f"delay h {m}" for m in cols if m != "oracle"]
        found_by = [m for m in ("dcm", "silence-rule", "silence-oracle") if m in cols]
        head += [f"{m} detected {label}" for m in found_by for _, _, label in DURATION_BINS]
        head += ["people out of all networks (× checkpoints)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in densities:
            cell = Cell(hazard, d, onset)
            row = [f"{d:g}"]
            for what in ("net", "all", "cell", "delay"):
                for m in cols:
                    if m == "oracle" and what in ("cell", "delay"):
                        continue
                    t = results.get((cell, m))
                    v = value(t, what) if t is not None else float("nan")
                    row.append(fmt(v, 1 if what == "delay" else 3))
            for m in found_by:
                t = results.get((cell, m))
                for b in range(len(DURATION_BINS)):
                    if t is None or t.failed[b] == 0:
                        row.append("–")
                    else:
                        row.append(f"{fmt(t.detected[b] / t.failed[b])} ({int(t.failed[b])})")
            t = results.get((cell, "dcm"))
            row.append(f"{t.score.all.tp + t.score.all.fn:,.0f}" if t is not None else "–")
            lines.append("| " + " | ".join(row) + " |")
    if any(c.control for c in cells):
        lines += ["", "### control (calm week)", ""]
        head = ["density (reports/site-h)"]
        when = {m: "every window" if m == "dcm" else "checkpoint windows" for m in cols}
        head += [f"{m}: outage polygons ({when[m]})" for m in cols]
        head += [f"{m}: people flagged ({when[m]})" for m in cols if m not in BOUNDS]
        head += ["dcm: people under suspected (every window)"]
        head += ["dcm: cell-windows called offline"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in densities:
            cell = next((c for c in cells if c.control and c.density == d), None)
            if cell is None:
                continue
            row = [f"{d:g}"]
            for m in cols:
                t = results.get((cell, m))
                row.append(str(t.polygons) if t is not None else "–")
            for m in cols:
                if m in BOUNDS:
                    continue
                t = results.get((cell, m))
                row.append(f"{fmt(100 * _share(t.flagged_people, t.people))} %" if t else "–")
            t = results.get((cell, "dcm"))
            row.append(f"{fmt(100 * _share(t.suspected_people, t.people))} %" if t else "–")
            row.append(
                f"{int(t.offline_cells):,} of {int(t.cell_windows):,}" if t is not None else "–"
            )
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "### Targets (dcm; the other methods and bounds beside it)", ""]
    # Beside dcm: the other methods and the bounds, pooled the same way.
    bounds = [m for m in methods if m != "dcm"]
    lines += [
        "| target | pooled over disasters | worst matrix cell | met |"
        + "".join(f" {m}, pooled |" for m in bounds),
        "|---|---|---|---|" + "---|" * len(bounds),
    ]
    for label, dens, what, op, bound in TARGETS:
        sel = [c for c in cells if not c.control and c.density >= dens - 1e-9]
        sel = [c for c in sel if c.density == dens] if dens < 3 else sel
        sel = [c for c in sel if any((c, m) in results for m in ("dcm", *bounds))]
        if not sel:
            lines.append(f"| {label} {op} {bound:g} | not run | | |" + " |" * len(bounds))
            continue
        digits = 1 if what == "delay" else 3
        beside = [
            value(pooled(results, sel, m), what)
            if not (m == "oracle" and what in ("cell", "delay"))
            else float("nan")
            for m in bounds
        ]
        after = "".join(f" {fmt(v, digits)} |" for v in beside)
        mine = [c for c in sel if (c, "dcm") in results]
        if not mine:
            lines.append(f"| {label} {op} {bound:g} | not run | | |" + after)
            continue
        pool = value(pooled(results, mine, "dcm"), what)
        each = [value(results[(c, "dcm")], what) for c in mine]
        each = [v for v in each if np.isfinite(v)]
        worst = (max(each) if op == "<=" else min(each)) if each else float("nan")
        ok = np.isfinite(pool) and (pool >= bound if op == ">=" else pool <= bound)
        lines.append(
            f"| {label} {op} {bound:g} | {fmt(pool, digits)} | {fmt(worst, digits)} "
            f"| {'yes' if ok else 'no'} |" + after
        )
    for c in sorted({c.density for c in cells if c.control}):
        found = [results.get((x, "dcm")) for x in cells if x.control and x.density == c]
        t = next((x for x in found if x is not None), None)
        if t is None or t.people == 0:
            continue
        share = _share(t.suspected_people, t.people)
        lines.append(
            f"| control at {c:g}: 0 outage polygons, suspected < 0.5 % of people "
            f"| {t.polygons} polygons, {fmt(100 * share)} % | | "
            f"{'yes' if t.polygons == 0 and share < 0.005 else 'no'} |" + " |" * len(bounds)
        )
    if calibration:
        calib = {(str(c), m): t.score for (c, m), t in results.items() if m == "dcm"}
        lines += acc.calibration_lines(calib)
        lines += acc.confidence_lines(calib)
    return lines


def plot(results: dict[tuple[Cell, str], Tallies], cells: list[Cell], path: Path) -> bool:
    """F1 against density, one panel per measure (needs matplotlib; False without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    densities = sorted({c.density for c in cells})
    disasters = sorted({(c.hazard, c.onset_hour) for c in cells if not c.control})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    styles = {"dcm": "-", "naive": ":", "oracle": "--", "silence-oracle": "-."}
    panels = (("net", "network-level area F1"), ("all", "all-network area F1"), ("cell", "cell F1"))
    for ax, (what, title) in zip(axes, panels, strict=True):
        for k, (hazard, onset) in enumerate(disasters):
            for method, style in styles.items():
                if what == "cell" and method == "oracle":
                    continue
                ys = [
                    value(results[(Cell(hazard, d, onset), method)], what)
                    if (Cell(hazard, d, onset), method) in results
                    else np.nan
                    for d in densities
                ]
                ax.plot(
                    densities,
                    ys,
                    style,
                    color=f"C{k}",
                    marker="o",
                    label=f"{hazard} {onset_label(onset)} {method}",
                )
        ax.set_xscale("log")
        ax.set_xlabel("baseline reports per site-hour")
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="report seeds (1 2 3)")
    ap.add_argument("--tune", action="store_true", help="seeds 11 12 13, for choosing parameters")
    ap.add_argument(
        "--quick", action="store_true", help="1 seed, densities 0.1/0.3/3, night, cyclone, control"
    )
    ap.add_argument("--densities", type=float, nargs="+", default=None)
    ap.add_argument("--onsets", type=float, nargs="+", default=None, help="local onset hours")
    ap.add_argument("--hazards", nargs="+", default=None, help="quake, cyclone, control")
    ap.add_argument("--geometry", choices=("synthetic", "ecuador"), default="synthetic")
    ap.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        default=list(ECUADOR_BBOX),
        metavar=("LON0", "LAT0", "LON1", "LAT1"),
        help="box of real cells for --geometry ecuador",
    )
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument(
        "--sites",
        choices=("truth", "cells"),
        default="truth",
        help="dcm's sites: the simulator's masts, or grouped from the cell list (dcm.ingest)",
    )
    ap.add_argument(
        "--hazard",
        action="store_true",
        help="give dcm the scenario's hazard footprint (--hazard of dcm compare)",
    )
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "dcm-matrix-cache")
    ap.add_argument("--out", type=Path, default=None, help="markdown (default: see the docs)")
    ap.add_argument("--plot", type=Path, default=None, help="PNG of F1 against density")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument(
        "--calibration-out", type=Path, default=None, help="save (p_offline, truth) pairs (.npz)"
    )
    ap.add_argument(
        "--silence-k",
        type=float,
        default=3.0,
        help="expected sightings a site must miss for the silence oracle and rule",
    )
    args = ap.parse_args(argv)
    global SITES_FROM_CELLS, GIVE_HAZARD, SILENCE_K
    SITES_FROM_CELLS = args.sites == "cells"
    GIVE_HAZARD = args.hazard
    if not args.silence_k > 0:
        print(f"error: --silence-k {args.silence_k:g}: must be > 0", file=sys.stderr)
        return 2
    SILENCE_K = args.silence_k

    if args.geometry == "ecuador" and Conditions is None:
        print("error: --geometry ecuador needs dcm.simulate.Conditions", file=sys.stderr)
        return 2
    if args.geometry == "ecuador" and not ECUADOR_CELLS.exists():
        print(f"error: --geometry ecuador: {ECUADOR_CELLS} not found", file=sys.stderr)
        return 2
    if args.tune and args.seeds is not None:
        print("error: --tune chooses its own seeds (11 12 13); drop --seeds", file=sys.stderr)
        return 2
    seeds = list(TUNE_SEEDS if args.tune else args.seeds or REPORT_SEEDS)
    if not args.tune and set(seeds) & set(TUNE_SEEDS):
        print(
            f"warning: seeds {sorted(set(seeds) & set(TUNE_SEEDS))} are tuning seeds",
            file=sys.stderr,
        )
    if args.quick:
        seeds = seeds[:1]
    args.densities = args.densities or ([0.1, 0.3, 3.0] if args.quick else list(DENSITIES))
    args.onsets = args.onsets or ([3.0] if args.quick else list(ONSETS))
    if Conditions is None:
        args.onsets = [-1.0]  # the scenarios' own onset hour
    args.hazards = args.hazards or (["cyclone", "control"] if args.quick else [*HAZARDS, "control"])
    report_run = not (args.quick or args.tune)
    kind = "tune" if args.tune else "quick" if args.quick else "report"
    out = args.out or (
        HERE / "results.md"
        if report_run and args.geometry == "synthetic"
        else Path(tempfile.gettempdir()) / f"dcm-matrix-{kind}-{args.geometry}.md"
    )
    png = args.plot or out.with_suffix(".png")

    overrides: dict[str, Any] = {}
    defaults = DetectionParams()
    names = {f.name for f in fields(DetectionParams)}
    for item in args.param:
        key, _, text = item.partition("=")
        if key not in names:
            print(f"error: --param {item}: no DetectionParams field {key!r}", file=sys.stderr)
            return 2
        default = getattr(defaults, key)
        is_bool = isinstance(default, bool)
        overrides[key] = text.lower() in ("1", "true", "yes") if is_bool else type(default)(text)
    params = DetectionParams(**overrides)
    methods = tuple(m for m in METHODS if m in args.methods)
    cells = matrix_cells(args)
    results: dict[tuple[Cell, str], Tallies] = {}
    t0 = time.perf_counter()
    sim_s = 0.0

    def header(done: int) -> list[str]:
        total_s = time.perf_counter() - t0
        purpose = (
            f"TUNING seeds {', '.join(map(str, seeds))}: for choosing parameters, not for reporting"
            if args.tune
            else f"report seeds {', '.join(map(str, seeds))}"
        )
        scales = sorted({(c.density, scale_for(c)) for c in cells})
        reduced = [f"{d:g}: scale {s:g}" for d, s in scales if s != 1.0]
        if Conditions is None:
            cond_note = (
                "the simulator has no Conditions: density reached through the volume scale "
                f"({BASE_DENSITY:.2f} reports/site-h at scale 1), onset hour, outage durations, "
                "power delay and sector share are the scenarios' own"
            )
        else:
            cond_note = (
                f"outage durations {OUTAGE_HOURS[0]:g}–{OUTAGE_HOURS[1]:g} h (log-uniform), power "
                f"failures {POWER_DELAY_H[0]:g}–{POWER_DELAY_H[1]:g} h after the hazard, "
                f"sector share {SECTOR_SHARE:g}"
            )
        geometry = (
            f"real OpenCelliD cells of Ecuador in the box {tuple(args.bbox)}"
            if args.geometry == "ecuador"
            else "synthetic island"
        )
        if reduced and Conditions is not None:
            scale_note = (
                ", ".join(reduced) + " (reduced to keep the run short; the density is kept)"
            )
        elif Conditions is None:
            scale_note = ", ".join(f"{d:g}: {s:.3g}" for d, s in scales)
        else:
            scale_note = "1 everywhere"
        lines = [
            f"Accuracy over a matrix of conditions ({geometry}; {purpose}; "
            f"{'quick matrix; ' if args.quick else ''}"
            f"{'hazard footprint given to dcm; ' if args.hazard else ''}{cond_note}).",
            "",
            f"H3 resolution {params.resolution}, window {params.window}; checkpoints "
            f"{', '.join(f'{h} h' for h in acc.CHECKPOINT_HOURS)} after onset; areas weighted by "
            "people; F1 of confirmed outage polygons (a missing `tier` counts as confirmed); "
            "seeds pooled per matrix cell. Delay: median hours from a cell's failure to the end "
            "of the first window that calls it offline (failed cells detected). 'dcm detected': "
            "share of failed cells ever called offline while down, by outage duration (failed "
            "cells). Oracle: dcm's coverage model fed the true site states (a bound, not a "
            "method). Silence-oracle: the oracle, but a failure known only once the site (or "
            f"cell) has missed {SILENCE_K:g} expected sightings by the window's end (a bound "
            "for deciding by silence alone at that density). Silence-rule: no truth, a site "
            f"is called down once silent for {SILENCE_K:g} expected sightings (a simple "
            "detector to beat).",
            "",
            f"Volume scale per density: {scale_note}. Run time {total_s:.0f} s "
            f"({sim_s:.0f} s simulating or reading the cache).",
        ]
        if params != defaults:
            lines.append("")
            lines.append(
                "Parameters changed: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
            )
        if done < len(cells):
            lines.insert(0, f"**Partial: {done} of {len(cells)} matrix cells done.**\n")
        return lines

    # The densities the targets name first, so that a stopped run has them.
    first = {0.3: 0, 3.0: 1}
    order = sorted(cells, key=lambda c: first.get(c.density, 2))
    for done, cell in enumerate(order, start=1):
        tallies = {m: results.setdefault((cell, m), Tallies()) for m in methods}
        for seed in seeds:
            t1 = time.perf_counter()
            scenario = cached_scenario(cell, seed, args.geometry, args.cache, tuple(args.bbox))
            t2 = time.perf_counter()
            sim_s += t2 - t1
            run_one(scenario, params, methods, tallies)
            n = scenario.truth.meta["counts"]
            print(
                f"  {cell.hazard} density {cell.density:g} onset {cell.onset_hour:g} seed {seed}: "
                f"{n['baseline']:,} baseline rows, {n['sites']} sites, simulation/cache "
                f"{t2 - t1:.0f} s, scoring {time.perf_counter() - t2:.0f} s "
                f"(total {time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
            )
        # Whatever is done so far stays readable if the run is stopped.
        partial = report(results, cells, methods, header(done), calibration=False)
        out.write_text("\n".join(partial) + "\n", encoding="utf-8")
    lines = report(results, cells, methods, header(len(cells)))
    if plot(results, cells, png):
        lines += ["", f"Plot: `{png.name}`."]
    else:
        lines += ["", "(No plot: matplotlib is not installed.)"]
    text = "\n".join(lines) + "\n"
    print(text)
    out.write_text(text, encoding="utf-8")
    if args.calibration_out is not None:
        calib = {(str(c), m): t.score for (c, m), t in results.items()}
        acc.save_calibration(calib, args.calibration_out)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
