"""Scaling benchmark: time and peak memory of ``dcm compare`` as the rows grow.

For each total in ``--rows`` (two thirds baseline over 14 days, one third event over 3
days, the speed benchmark's synthetic region and 50 k cells), writes the CSV inputs,
runs ``dcm -q compare`` in a child process (wall time, CPU time, the child's peak RSS) and
prints one table row. ``--memory-limit`` is passed on; ``--dask N`` also runs it on a
LocalCluster of N single-threaded worker processes and checks the outputs are the same.

    python benchmarks/scale/run.py --rows 1000000 5000000 20000000 [--memory-limit 2GB]
                                   [--cells 50000] [--dask 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))
from run import synthesise

#: Runs a command and prints, on its last stderr line, the peak RSS (KiB) of its
#: process tree's largest process and the CPU seconds (user + system) of the tree.
_MEASURE = (
    "import resource, subprocess, sys; "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr); "
    "sys.exit(rc)"
)


def run_compare(
    paths: dict[str, Path], out: Path, *, memory_limit: str | None, dask: str | None
) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (GB) and CPU seconds of one ``dcm compare`` in a child
    process (CPU and RSS of the child alone: with ``dask``, not the workers')."""
    cmd = [
        sys.executable,
        "-c",
        _MEASURE,
        sys.executable,
        "-m",
        "dcm.cli.main",
        "-q",
        "compare",
        "--cells",
        str(paths["cells"]),
        "--baseline",
        str(paths["baseline"]),
        "--event",
        str(paths["event"]),
        "--out",
        str(out),
        "--overwrite",
    ]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    if dask:
        cmd += ["--dask", dask]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"dcm compare failed:\n{proc.stderr}")
    peak_kib, cpu = proc.stderr.strip().splitlines()[-1].split()
    return wall, int(peak_kib) / 1024**2, float(cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    ap.add_argument("--cells", type=int, default=50_000)
    ap.add_argument("--memory-limit")
    ap.add_argument("--dask", type=int, help="also run on a LocalCluster of N workers")
    ap.add_argument("--keep", type=Path, help="keep the inputs and outputs in this folder")
    args = ap.parse_args(argv)
    print(
        "| rows (baseline + event) | input CSV | write inputs | `dcm compare` wall | CPU "
        "| peak RSS | s per M rows | load (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cluster = client = None
    if args.dask:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=args.dask, processes=True, threads_per_worker=1, dashboard_address=":0"
        )
        client = Client(cluster)
    try:
        for total in args.rows:
            folder = (args.keep or Path(tempfile.mkdtemp(prefix="dcm-scale-"))) / f"{total}"
            folder.mkdir(parents=True, exist_ok=True)
            try:
                base, event = total * 2 // 3, total - total * 2 // 3
                t0 = time.perf_counter()
                paths = synthesise(folder, baseline_rows=base, event_rows=event, n_cells=args.cells)
                written = time.perf_counter() - t0
                size_gb = (paths["baseline"].stat().st_size + paths["event"].stat().st_size) / 1e9
                wall, peak, cpu = run_compare(
                    paths, folder / "out", memory_limit=args.memory_limit, dask=None
                )
                print(
                    f"| {base:,} + {event:,} | {size_gb:.2f} GB | {written:.0f} s | {wall:.1f} s "
                    f"| {cpu:.1f} s | {peak:.2f} GB | {wall / total * 1e6:.1f} "
                    f"| {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
                if client is not None:
                    wall_d, peak_d, _ = run_compare(
                        paths,
                        folder / "out-dask",
                        memory_limit=None,
                        dask=cluster.scheduler_address,
                    )
                    same = all(
                        (folder / "out" / n).read_bytes() == (folder / "out-dask" / n).read_bytes()
                        for n in ("outages.geojson", "cells.csv")
                    )
                    print(
                        f"| same on {args.dask} Dask workers | | | {wall_d:.1f} s | "
                        f"| {peak_d:.2f} GB (client) | identical outputs: {same} "
                        f"| {os.getloadavg()[0]:.1f} |",
                        flush=True,
                    )
            finally:
                if args.keep is None:
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
