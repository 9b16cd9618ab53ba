"""Random kills: ``dcm ingest``, ``dcm update`` and ``dcm replay`` killed with SIGKILL at
a random moment, then run again; the event must hold exactly what an uninterrupted run
leaves (0 rows lost, 0 duplicates, identical windows, outages, cell and grid status and
CAP messages).

Run: ``python benchmarks/faults.py [--kills 100] [--postgres] [--seed 1]``.

Uses the small scenario of ``tests/store/test_store_faults.py`` (12 event hours, 1,800
event and 3,600 baseline measurements, an outage that opens and ends). Per backend, each
command is first run uninterrupted (the reference, and its duration ``T``); then each
kill prepares a fresh store, starts the command in a subprocess, sends SIGKILL after a
delay drawn uniformly from 0 to ``T`` (a command that finished first counts as "not
killed"), runs the command again until it succeeds and compares the event with the
reference. PostgreSQL: ``--postgres`` uses ``DCM_TEST_POSTGRES_URL`` (a throw-away schema
per store).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scenario and comparison of the fault tests

from tests.store import test_store_faults as faults  # noqa: E402
from tests.store.conftest import backend_url  # noqa: E402

FLOWS = ("ingest", "update", "replay")


def _command(args: list[str], url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dcm.cli.main", *args],
        env=faults._env(url, data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _differences(got: dict[str, Any], want: dict[str, Any]) -> dict[str, int | bool]:
    """Rows lost and duplicated, and which parts differ from the reference."""
    keys = ["measurement_id"]  # unique in the scenario (baseline b…, event e…)
    got_rows, want_rows = got["measurements"], want["measurements"]
    lost = len(
        want_rows.merge(got_rows[keys], on=keys, how="left", indicator=True).query(
            "_merge == 'left_only'"
        )
    )
    out: dict[str, int | bool] = {
        "lost": lost,
        "duplicates": int(got_rows.duplicated(keys).sum()),
    }
    for part in ("datasets", "windows", "outages", "cells", "grid", "cap", "high_water"):
        a, b = got[part], want[part]
        same = a.equals(b) if isinstance(b, pd.DataFrame) else a == b
        out[f"{part}_same"] = bool(same)
    out["partial_raw_files"] = len(got["partial_raw_files"])
    out["unfinished_runs"] = int(got["unfinished_runs"])
    return out


def run_backend(backend: str, kills: int, files: Any, rng: np.random.Generator) -> pd.DataFrame:
    references: dict[str, dict[str, Any]] = {}
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for flow in FLOWS:
            folder = Path(tmp) / f"ref-{flow}"
            with backend_url(backend, folder) as url:
                data_dir = folder / "data"
                args = faults.prepare_flow(flow, url, data_dir, files)
                started = time.perf_counter()
                proc = _command(args, url, data_dir)
                if proc.wait() != 0:
                    raise SystemExit(proc.stderr.read().decode() if proc.stderr else "failed")
                durations[flow] = time.perf_counter() - started
                faults.finish_flow(flow, url, data_dir)
                references[flow] = faults.snapshot(url, data_dir, wall_clock=flow == "update")
        rows = []
        for i in range(kills):
            flow = FLOWS[i % len(FLOWS)]
            folder = Path(tmp) / f"kill-{i}"
            with backend_url(backend, folder) as url:
                data_dir = folder / "data"
                args = faults.prepare_flow(flow, url, data_dir, files)
                delay = float(rng.uniform(0, durations[flow]))
                proc = _command(args, url, data_dir)
                try:
                    proc.wait(timeout=delay)
                    killed = False
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    killed = True
                reruns = 0
                while True:  # run again until it succeeds (it must, the first time)
                    reruns += 1
                    again = _command(args, url, data_dir)
                    if again.wait() == 0:
                        break
                    if reruns >= 3:
                        raise SystemExit(again.stderr.read().decode() if again.stderr else "")
                faults.finish_flow(flow, url, data_dir)
                got = faults.snapshot(url, data_dir, wall_clock=flow == "update")
                row = {"backend": backend, "flow": flow, "delay_s": delay, "killed": killed}
                row |= {"reruns": reruns, **_differences(got, references[flow])}
                rows.append(row)
                bad = [k for k, v in row.items() if k.endswith("_same") and not v]
                if row["lost"] or row["duplicates"] or bad:
                    print(f"  kill {i} ({flow}, {delay:.2f} s): DIFFERS {bad} {row}", flush=True)
            if (i + 1) % 10 == 0:
                print(f"  {backend}: {i + 1}/{kills} kills done", flush=True)
    print(f"{backend}: uninterrupted " + ", ".join(f"{f} {t:.1f} s" for f, t in durations.items()))
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    same = [c for c in frame.columns if c.endswith("_same")]
    grouped = frame.groupby(["backend", "flow"])
    out = grouped.agg(
        runs=("killed", "size"),
        killed=("killed", "sum"),
        rows_lost=("lost", "sum"),
        duplicates=("duplicates", "sum"),
        partial_raw_files=("partial_raw_files", "sum"),
        unfinished_runs=("unfinished_runs", "sum"),
    )
    out["all_identical"] = grouped[same].apply(lambda g: int(g.all(axis=1).sum()))
    return out.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="Kills per backend.")
    parser.add_argument("--postgres", action="store_true", help="Also DCM_TEST_POSTGRES_URL.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    backends = ["sqlite"]
    if args.postgres:
        if not os.environ.get("DCM_TEST_POSTGRES_URL"):
            raise SystemExit("--postgres needs DCM_TEST_POSTGRES_URL")
        backends.append("postgres")
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = faults.make_files(Path(tmp) / "scenario")
        frames = [run_backend(b, args.kills, files, rng) for b in backends]
    table = summarise(pd.concat(frames, ignore_index=True))
    print(table.to_string(index=False))
    total = table[["runs", "killed", "rows_lost", "duplicates", "all_identical"]].sum()
    print(
        f"{int(total['runs'])} runs, {int(total['killed'])} killed mid-command: "
        f"{int(total['rows_lost'])} rows lost, {int(total['duplicates'])} duplicates, "
        f"{int(total['all_identical'])}/{int(total['runs'])} identical to an uninterrupted "
        f"run (rows, windows, outages, cells, grid, CAP) in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
