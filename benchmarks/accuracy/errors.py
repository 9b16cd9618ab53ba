"""Where dcm's all-network ("nobody serves") errors come from, on the simulated scenarios.

For each checkpoint of ``run.py`` (6 h … 144 h after onset) every population point that
is wrongly flagged or missed is put in one class, weighted by its people:

* false alarm — the point is still served. Of the networks that truly serve it, the one
  whose serving site dcm comes closest to calling up decides: that site is undecided
  (0.05 ≤ p_offline < 0.9), judged down, up but the point lies beyond its measured
  reach, or up and within it (the point sits on the reach edge: rounding, pixel centres);
* miss — nobody serves the point. A site judged confidently up (p_offline < the blocking
  threshold) whose reach covers the point hides it: that site had truly failed
  (detection delay) or is truly up and its measured reach is too long.

The coverage input (site positions, reaches, p_offline per window) is captured from
the call ``detect()`` makes to ``build_outages``.

    python benchmarks/accuracy/errors.py [--scenarios quake cyclone] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as accuracy

from dcm.analysis import DetectionParams, build_baseline
from dcm.analysis.coverage import distance_m
from dcm.analysis.impact import population_points
from dcm.simulate import simulate


def _capture_coverage() -> dict[str, Any]:
    """Make detect() hand its coverage input to the returned dict as well."""
    # dcm.analysis re-exports the function detect, which hides the module of that name.
    detect_module = importlib.import_module("dcm.analysis.detect")
    seen: dict[str, Any] = {}
    build = detect_module.build_outages

    def spy(**kwargs: Any) -> Any:
        seen["coverage"] = kwargs["coverage"]
        seen["windows"] = kwargs["windows"]
        return build(**kwargs)

    detect_module.build_outages = spy
    return seen


def classify(name: str, seed: int, params: DetectionParams, seen: dict[str, Any]) -> Counter:
    scenario = simulate(name, seed=seed, scale=1.0)
    population = population_points(scenario.population, scenario.population_transform)
    pred = accuracy.dcm_prediction(scenario, params, population)
    cov, windows = seen["coverage"], seen["windows"]
    model_sites = build_baseline(scenario.baseline, scenario.cells, params).sites["site_id"]
    lon = population["lon"].to_numpy()
    lat = population["lat"].to_numpy()
    people = population["population"].to_numpy()
    truth = scenario.truth
    index = truth.index
    true_ids = index.sites["site_id"].astype(str).to_numpy()
    model_row = pd.Series(np.arange(len(model_sites)), index=model_sites.astype(str).to_numpy())
    true_sites = truth.sites.set_index("site_id").reindex(model_sites.astype(str).to_numpy())
    before = truth.served(lon, lat, scenario.event_start - pd.Timedelta(minutes=1))
    tally: Counter = Counter()
    for hours in accuracy.CHECKPOINT_HOURS:
        t = scenario.event_start + pd.Timedelta(hours=hours)
        w = windows.get_indexer([t.floor(params.window_td)])[0]
        if t >= scenario.event_end or w < 0:
            continue
        now = truth.served(lon, lat, t)
        out = before.any(axis=1).to_numpy() & ~now.any(axis=1).to_numpy()
        geom = pred.areas.get((windows[w], "all"))
        flagged = (
            shapely.contains_xy(geom, lon, lat) if geom is not None else np.zeros(lon.size, bool)
        )
        p, reach = cov.p[:, w], cov.reach[:, w]
        tally["true positive"] += people[out & flagged].sum()

        fp = np.flatnonzero(flagged & ~out)
        xy = index.proj.to_xy(lon[fp], lat[fp])
        label = np.full(fp.size, "false alarm: not served before onset", dtype=object)
        best = np.full(fp.size, np.inf)
        for net in index.networks:
            site, dist = index.serving(xy, int(t.value), net)
            row = model_row.reindex(true_ids[np.maximum(site, 0)]).to_numpy()
            row = np.where((site >= 0) & np.isfinite(row), row, -1).astype(int)
            ps = np.where(row >= 0, p[np.maximum(row, 0)], np.nan)
            rs = np.where(row >= 0, reach[np.maximum(row, 0)], np.nan)
            cls = np.select(
                [row < 0, ps >= params.p_down, ps >= params.coverage_block_p, ~(dist <= rs)],
                [
                    "false alarm: serving site unknown to dcm",
                    "false alarm: serving site judged down",
                    "false alarm: serving site undecided",
                    "false alarm: serving site up, point beyond its measured reach",
                ],
                "false alarm: serving site up, point on its reach edge",
            )
            rank = np.where(site >= 0, np.nan_to_num(ps, nan=2.0), np.inf)
            better = rank < best
            label[better], best[better] = cls[better], rank[better]
        for cls in np.unique(label):
            tally[cls] += people[fp][label == cls].sum()

        fn = np.flatnonzero(out & ~flagged)
        down_ns = pd.to_datetime(true_sites["down_from"], utc=True)
        up_ns = pd.to_datetime(true_sites["up_at"], utc=True)
        truly_down = ((down_ns <= t) & ~(up_ns <= t)).to_numpy()
        usable = np.isfinite(reach) & (p < params.coverage_block_p)
        blocks = np.zeros((fn.size, 2), dtype=bool)
        for chunk in np.array_split(np.arange(fn.size), max(1, fn.size // 2000)):
            d = distance_m(
                lon[fn[chunk], None], lat[fn[chunk], None], cov.lon[None, :], cov.lat[None, :]
            )
            cover = (d <= reach[None, :]) & usable[None, :]
            blocks[chunk, 0] = (cover & truly_down[None, :]).any(axis=1)
            blocks[chunk, 1] = (cover & ~truly_down[None, :]).any(axis=1)
        label = np.select(
            [blocks[:, 1], blocks[:, 0]],
            [
                "miss: an up site's measured reach too long",
                "miss: a failed site still judged confidently up (delay)",
            ],
            "miss: no site judged down there",
        )
        for cls in np.unique(label):
            tally[cls] += people[fn][label == cls].sum()
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--scenarios", nargs="+", default=["quake", "cyclone", "eruption"])
    args = ap.parse_args(argv)
    params = DetectionParams()
    seen = _capture_coverage()
    totals = {}
    for name in args.scenarios:
        totals[name] = Counter()
        for seed in args.seeds:
            totals[name] += classify(name, seed, params, seen)
            print(f"  {name} seed {seed} done", file=sys.stderr)
    classes = sorted({c for t in totals.values() for c in t}, key=lambda c: (c[0] != "t", c))
    print("| people × checkpoints | " + " | ".join(totals) + " |")
    print("|---|" + "---|" * len(totals))
    for cls in classes:
        print(f"| {cls} | " + " | ".join(f"{t[cls]:,.0f}" for t in totals.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
