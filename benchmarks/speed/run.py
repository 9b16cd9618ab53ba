"""Speed benchmark: ``dcm compare`` end to end on 2 M baseline + 1 M event rows, 50 k cells.

Synthesises the inputs (canonical measurement CSV, OpenCelliD cell CSV) in a temp
folder, runs ``dcm compare`` in a subprocess (wall time, peak RSS of the child), and
measures the floor in the same run: reading the same CSVs with pyarrow and computing
their H3 cells. Targets: < 60 s and < 4 GB (the first speed issue); within 5x of the
floor and a peak under 2 GB (issue #13).

    python benchmarks/speed/run.py [--baseline-rows 2000000] [--event-rows 1000000]
                                   [--cells 50000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

NETWORKS = ((740, 0), (740, 1), (740, 2))
CELLS_PER_SITE = 4
#: Rows generated at a time (larger inputs are written block by block).
BLOCK_ROWS = 2_000_000


def synthesise(
    folder: Path, *, baseline_rows: int, event_rows: int, n_cells: int, seed: int = 0
) -> dict[str, Path]:
    """Cells on a 4° x 4° region, measurements around them; 8 % of sites fail at onset."""
    rng = np.random.default_rng(seed)
    n_sites = n_cells // CELLS_PER_SITE
    site_lon = rng.uniform(-80.0, -76.0, n_sites)
    site_lat = rng.uniform(-3.0, 1.0, n_sites)
    site_net = rng.integers(0, len(NETWORKS), n_sites)
    site_weight = rng.gamma(0.7, 1.0, n_sites)
    site_weight /= site_weight.sum()
    cell_site = np.repeat(np.arange(n_sites), CELLS_PER_SITE)
    mcc = np.array([m for m, _ in NETWORKS])[site_net[cell_site]]
    net = np.array([n for _, n in NETWORKS])[site_net[cell_site]]
    area = 1000 + cell_site // 50
    cell = np.arange(cell_site.size) + 100_000
    cells = pd.DataFrame(
        {
            "radio": np.where(cell % 3 == 0, "GSM", np.where(cell % 3 == 1, "UMTS", "LTE")),
            "mcc": mcc,
            "net": net,
            "area": area,
            "cell": cell,
            "unit": 0,
            "lon": site_lon[cell_site] + rng.normal(0, 0.001, cell.size),
            "lat": site_lat[cell_site] + rng.normal(0, 0.001, cell.size),
            "range": np.where(
                rng.random(cell.size) < 0.75, 1000, rng.integers(300, 6000, cell.size)
            ),
            "samples": rng.integers(1, 200, cell.size),
            "changeable": 1,
            "created": 1_500_000_000,
            "updated": 1_700_000_000,
            "averageSignal": 0,
        }
    )
    paths = {"cells": folder / "cells.csv"}
    cells.to_csv(paths["cells"], index=False)

    onset = pd.Timestamp("2024-03-11T06:00Z")
    down = rng.random(n_sites) < 0.08

    def measurements(n: int, start: pd.Timestamp, days: float, event: bool) -> pd.DataFrame:
        site = rng.choice(n_sites, size=n, p=site_weight)
        offset = rng.uniform(0, days * 86400, n)
        # Fewer reports at night (local hour = UTC - 5).
        keep_p = 0.3 + 0.7 * np.sin(np.pi * (((offset / 3600) - 5 + 24) % 24) / 24) ** 2
        offset = np.where(rng.random(n) < keep_p, offset, rng.uniform(0, days * 86400, n))
        ts = start + pd.to_timedelta(np.sort(offset), unit="s")
        lon = site_lon[site] + rng.normal(0, 0.008, n)
        lat = site_lat[site] + rng.normal(0, 0.008, n)
        status = np.where(rng.random(n) < 0.03, "no_service", "ok")
        if event:
            dead = down[site]
            status = np.where(dead, np.where(rng.random(n) < 0.3, "no_service", ""), status)
        k = site * CELLS_PER_SITE + rng.integers(0, CELLS_PER_SITE, n)
        frame = pd.DataFrame(
            {
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "lat": lat.round(6),
                "lon": lon.round(6),
                "status": status,
                "mcc": mcc[k],
                "mnc": net[k],
                "radio": cells["radio"].to_numpy()[k],
                "area": area[k],
                "cell": cell[k],
                "signal_dbm": rng.normal(-90, 10, n).round(0),
                "download_kbps": rng.gamma(2, 5000, n).round(1),
                "device": rng.integers(0, 200_000, n).astype(str),
            }
        )
        frame = frame[frame["status"] != ""]
        failed = frame["status"] != "ok"
        frame.loc[failed, ["area", "cell"]] = None
        return frame

    for name, rows, start, days, event in (
        ("baseline", baseline_rows, onset - pd.Timedelta(days=14), 14.0, False),
        ("event", event_rows, onset, 3.0, True),
    ):
        paths[name] = folder / f"{name}.csv"
        # Blocks of at most BLOCK_ROWS rows (each over the whole period, so a file of
        # several blocks is not in time order), appended to one CSV.
        n_blocks = max(-(-rows // BLOCK_ROWS), 1)
        with pa.OSFile(str(paths[name]), "wb") as sink:
            writer = None
            for b in range(n_blocks):
                want = rows // n_blocks + (1 if b < rows % n_blocks else 0)
                # Generate a little more (failed sites lose most rows), keep ``want`` at random.
                frame = measurements(int(want * 1.1), start, days, event)
                if len(frame) > want:
                    frame = frame.iloc[np.sort(rng.choice(len(frame), want, replace=False))]
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pacsv.CSVWriter(sink, table.schema)
                writer.write_table(table)
            if writer is not None:
                writer.close()
    return paths


def floor_seconds(paths: dict[str, Path], resolution: int) -> float:
    """Read both measurement CSVs and the cells with pyarrow, compute H3 of every row."""
    from dcm.analysis.grid import points_to_cells

    t0 = time.perf_counter()
    for name in ("cells", "baseline", "event"):
        table = pacsv.read_csv(paths[name])
        lat = table.column("lat").to_numpy()
        lon = table.column("lon").to_numpy()
        if name != "cells":
            points_to_cells(lat, lon, resolution)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rows", type=int, default=2_000_000)
    ap.add_argument("--event-rows", type=int, default=1_000_000)
    ap.add_argument("--cells", type=int, default=50_000)
    ap.add_argument("--resolution", type=int, default=8)
    ap.add_argument("--keep", type=Path, help="keep the inputs and outputs in this folder")
    args = ap.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dcm-speed-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        paths = synthesise(
            folder, baseline_rows=args.baseline_rows, event_rows=args.event_rows, n_cells=args.cells
        )
        sizes = {k: round(p.stat().st_size / 1e6, 1) for k, p in paths.items()}
        print(f"inputs written in {time.perf_counter() - t0:.1f} s: {sizes} MB", flush=True)
        floor = floor_seconds(paths, args.resolution)
        dcm = Path(sys.executable).with_name("dcm")
        cmd = [
            str(dcm),
            "-q",
            "compare",
            "--cells",
            str(paths["cells"]),
            "--baseline",
            str(paths["baseline"]),
            "--event",
            str(paths["event"]),
            "--out",
            str(folder / "out"),
            "--overwrite",
            "--resolution",
            str(args.resolution),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_gb = usage.ru_maxrss / 1024**2
        # CPU seconds of the child: on a shared machine, steadier than its wall time.
        cpu = usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        summary = pd.read_json(folder / "out" / "summary.json", typ="series")
        lines = [
            "| measure | value | target |",
            "|---|---|---|",
            f"| rows (baseline + event), cells | {args.baseline_rows:,} + {args.event_rows:,}, "
            f"{args.cells:,} | |",
            f"| `dcm compare` wall time | {wall:.1f} s | < 60 s |",
            f"| `dcm compare` CPU time (user + system) | {cpu:.1f} s | |",
            f"| peak RSS of `dcm compare` | {peak_gb:.2f} GB | < 4 GB; < 2 GB (#13) |",
            f"| floor (pyarrow read + H3 of every row) | {floor:.1f} s | |",
            f"| ratio to floor | {wall / floor:.1f}x | <= 5x (#13) |",
        ]
        steps = dict(summary["timings_s"])
        # What no step timed: interpreter start-up, imports, summary.json, exit. A step
        # that ran alongside the others, or within another, is not part of the sequence.
        sequential = sum(v for k, v in steps.items() if not ("alongside" in k or "within" in k))
        steps["start-up, imports, rest"] = round(wall - sequential, 3)
        lines += [f"| step: {name} | {seconds:.1f} s | |" for name, seconds in steps.items()]
        lines.append(f"| load average (1 min) after the run | {os.getloadavg()[0]:.1f} | |")
        print("\n".join(lines))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
