"""National benchmark: ``dcm compare`` on 50 M baseline + 10 M event rows over Ecuador.

The simulator's quake scenario on the real OpenCelliD cells of mainland Ecuador
(``../shared/data/opencellid``; the box below holds 74,807 of the export's 75,068
cells, the 261 of the Galápagos lie outside it and are never heard), 14 baseline days
and 3 event days, drawn in blocks of a quarter day at most (``--block-days``;
:func:`dcm.simulate.scenarios.simulate_blocks`) and written straight into two Parquet
datasets partitioned by day and resolution-3 parent cell, the layout ``dcm convert``
writes. The datasets are cached under ``--data`` (keyed by rows, seed, blocks and the
simulator's source), so a rerun skips the generation; ``--drop-data`` deletes them at
the end. Then ``dcm -q compare`` runs in a child process on them and the
full 75,068-cell export, timed like ``benchmarks/scale/run.py`` (wall, CPU, peak RSS);
``--dask N`` also runs it with the counting on a LocalCluster of N single-threaded
worker processes and checks the outputs are byte-identical.

    python benchmarks/scale/national.py --rows-scale 0.1      # 5 M + 1 M rows first
    python benchmarks/scale/national.py --data /tmp/dcm-national [--dask 2] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CELLS = REPO / ".." / "shared" / "data" / "opencellid" / "ecuador_740.csv.gz"
#: Mainland Ecuador (every cell of the export but the Galápagos').
BBOX = (-81.1, -5.1, -75.4, 1.4)
BASELINE_ROWS = 50_000_000
EVENT_ROWS = 10_000_000
DAYS = (14.0, 3.0)
OUTPUTS = ("outages.geojson", "cells.csv", "status.parquet")
#: Version of :func:`generate` (part of the cache key: raise it when it changes).
GENERATOR = 1


def _scale_run() -> Any:
    """``benchmarks/scale/run.py`` (its measuring code), loaded under its own name."""
    spec = importlib.util.spec_from_file_location("scale_run", Path(__file__).with_name("run.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source_hash() -> str:
    import dcm.ingest.cells
    import dcm.simulate

    files = sorted(Path(dcm.simulate.__file__).parent.glob("*.py"))
    files.append(Path(dcm.ingest.cells.__file__))
    h = hashlib.sha256()
    for path in files:
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def generate(folder: Path, *, rows: tuple[int, int], seed: int, block_days: float) -> dict:
    """Write ``folder``/baseline.dcm and event.dcm; returns what was generated."""
    from dcm import __version__
    from dcm.analysis.grid import DEFAULT_RESOLUTION, parent_cells, points_to_cells, to_strings
    from dcm.ingest.dataset import PARENT_RESOLUTION, DatasetWriter
    from dcm.simulate import Conditions
    from dcm.simulate.scenarios import build_world, simulate_blocks

    t0 = time.perf_counter()
    world = build_world(
        "quake",
        seed=seed,
        conditions=Conditions(cells_from=str(CELLS.resolve()), bbox=BBOX),
        days=DAYS,
        rows=rows,
    )
    setup_s = time.perf_counter() - t0
    writers = {
        kind: DatasetWriter(folder / f"{kind}.dcm", resolution=DEFAULT_RESOLUTION)
        for kind in ("baseline", "event")
    }
    counts = {"baseline": 0, "event": 0}
    for w in writers.values():
        w.__enter__()
    try:
        for kind, frame in simulate_blocks(world, block_days=block_days):
            cells = points_to_cells(
                frame["lat"].to_numpy("float64"),
                frame["lon"].to_numpy("float64"),
                DEFAULT_RESOLUTION,
            )
            parents = to_strings(parent_cells(cells, PARENT_RESOLUTION))
            writers[kind].write(frame, h3=cells, h3_parent=parents)
            counts[kind] += len(frame)
            print(
                f"  {kind}: {counts[kind]:,} rows written "
                f"({frame['timestamp'].iloc[0]:%Y-%m-%d %H:%M} ..), "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            del frame, cells, parents
        for kind, w in writers.items():
            source = {
                "path": f"dcm.simulate quake, seed {seed}, OpenCelliD Ecuador {BBOX} ({kind})",
                "rows_in": counts[kind],
                "accepted": counts[kind],
                "duplicates": 0,
                "rejected": 0,
            }
            w.commit({"dcm_version": __version__, "sources": [source], "rejected": 0})
    finally:
        for w in writers.values():
            w.__exit__(None, None, None)
    meta = world.spec
    info = {
        "rows": counts,
        "seed": seed,
        "bbox": BBOX,
        "sites": len(world.sites),
        "cells_simulated": len(world.cells),
        "sites_down": int(world.sites["down_from"].notna().sum()),
        "devices": world.n_devices,
        "baseline_start": world.baseline_start.isoformat(),
        "event_start": world.event_start.isoformat(),
        "event_end": world.event_end.isoformat(),
        "hazard": meta.hazard.kind if meta.hazard is not None else None,
        "setup_s": round(setup_s, 1),
        "generate_s": round(time.perf_counter() - t0, 1),
    }
    (folder / "scenario.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _dir_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")


def _worker_peaks(client: Any) -> list[float]:
    """Peak RSS (GB) of each Dask worker process so far."""

    def peak() -> int:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    return [kib / 1024**2 for kib in client.run(peak).values()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/dcm-national"))
    ap.add_argument("--rows-scale", type=float, default=1.0, help="0.1: 5 M + 1 M rows")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block-days", type=float, default=0.25)
    ap.add_argument("--dask", type=int, help="also run on a LocalCluster of N workers")
    ap.add_argument("--memory-limit")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument(
        "--dask-only",
        action="store_true",
        help="with --dask: compare with the one-process outputs of an earlier --keep run",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the outputs of dcm compare in out/ and out-dask/ (without it: scratch folders)",
    )
    ap.add_argument("--drop-data", action="store_true", help="delete the datasets at the end")
    args = ap.parse_args(argv)
    if not CELLS.exists():
        print(f"error: {CELLS} not found", file=sys.stderr)
        return 2
    rows = (round(BASELINE_ROWS * args.rows_scale), round(EVENT_ROWS * args.rows_scale))
    # The data depend on the rows, seed, box, days, blocks and the simulator's code.
    key = repr((rows, args.seed, BBOX, DAYS, args.block_days, GENERATOR, _source_hash()))
    key = hashlib.sha256(key.encode())
    folder = args.data / f"national-{rows[0] + rows[1]}-{key.hexdigest()[:10]}"
    if (folder / "scenario.json").exists():
        info = json.loads((folder / "scenario.json").read_text())
        print(f"cached: {folder} ({_dir_gb(folder):.2f} GB)")
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"generating {rows[0]:,} + {rows[1]:,} rows into {folder}", flush=True)
        info = generate(folder, rows=rows, seed=args.seed, block_days=args.block_days)
        print(f"generated in {info['generate_s']:.0f} s, {_dir_gb(folder):.2f} GB", flush=True)
    print(json.dumps(info))
    if args.generate_only:
        return 0
    run = _scale_run()
    paths = {
        "cells": CELLS.resolve(),
        "baseline": folder / "baseline.dcm",
        "event": folder / "event.dcm",
    }
    commit = _commit()
    print(f"commit {commit}; load average before: {os.getloadavg()}", flush=True)
    print("| rows (baseline + event) | wall | CPU | peak RSS | load (1 min) after | run |")
    print("|---|---|---|---|---|---|")
    # Outputs kept by --keep live in out/ and out-dask/; a run without --keep writes its
    # own scratch folders, so it never replaces or deletes what an earlier run kept.
    kept = folder / "out"
    reuse = bool(args.dask_only and args.dask and (kept / "summary.json").exists())
    out = kept if (args.keep or reuse) else folder / "out-scratch"
    dask_out = folder / ("out-dask" if args.keep else "out-dask-scratch")
    counted = f"{info['rows']['baseline']:,} + {info['rows']['event']:,}"
    if not reuse:
        load0 = os.getloadavg()[0]
        wall, peak, cpu = run.run_compare(paths, out, memory_limit=args.memory_limit, dask=None)
        print(
            f"| {counted} | {wall:.1f} s | {cpu:.1f} s | {peak:.2f} GB "
            f"| {os.getloadavg()[0]:.1f} (before {load0:.1f}) | one process |",
            flush=True,
        )
        summary = json.loads((out / "summary.json").read_text())
        print("timings_s:", json.dumps(summary.get("timings_s", {})), flush=True)
    if args.dask:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=args.dask, processes=True, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            load0 = os.getloadavg()[0]
            wall, peak, cpu = run.run_compare(
                paths, dask_out, memory_limit=None, dask=cluster.scheduler_address
            )
            workers = _worker_peaks(client)
        same = {
            name: (out / name).read_bytes() == (dask_out / name).read_bytes() for name in OUTPUTS
        }
        print(
            f"| {counted} | {wall:.1f} s | {cpu:.1f} s (client) | {peak:.2f} GB (client); "
            f"workers {', '.join(f'{w:.2f}' for w in workers)} GB "
            f"| {os.getloadavg()[0]:.1f} (before {load0:.1f}) "
            f"| LocalCluster of {args.dask}; identical: "
            f"{', '.join(f'{k} {v}' for k, v in same.items())} |",
            flush=True,
        )
        if not all(same[n] for n in ("outages.geojson", "cells.csv")):
            print("error: the Dask run's outputs differ", file=sys.stderr)
            return 1
    if not args.keep:
        shutil.rmtree(folder / "out-scratch", ignore_errors=True)
        shutil.rmtree(folder / "out-dask-scratch", ignore_errors=True)
    if args.drop_data:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
