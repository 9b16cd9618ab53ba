"""Speed and memory of ``dcm convert``: a synthetic canonical CSV to a Parquet dataset.

Run: ``python benchmarks/convert_speed.py [--rows 2000000] [--chunk-mb 16]``. The CSV
(1 % malformed rows, 14 days, random places; ``ingest_speed.make_csv``) is made in
a temporary folder; each step then runs in its own process, timed by wall clock and
CPU, with that process's peak RSS:

- ``dcm convert`` (CSV read in chunks of ``--chunk-mb``, default 16) → the dataset;
- the whole-file reader (``read_measurements``) on the same CSV, for contrast;
- reading the dataset back (``read_dataset``, as ``dcm compare`` does).

Prints a Markdown table for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

# The CSV is made in a child too: a child's peak RSS counts the parent's pages it was
# forked from, so the parent must stay small.
MAKE_CSV = (
    f"import sys; sys.path.insert(0, {str(HERE)!r}); from ingest_speed import make_csv; "
    "make_csv(__import__('pathlib').Path(sys.argv[1]), int(sys.argv[2]), bad_fraction=0.01, seed=1)"
)
READ_CSV = "from dcm.ingest import read_measurements; import sys; read_measurements(sys.argv[1])"
READ_DATASET = "from dcm.ingest.dataset import read_dataset; import sys; read_dataset(sys.argv[1])"


def run(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (bytes) of one child process."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-mb", type=int, default=16, help="dcm's default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "measurements.csv"
        out = Path(tmp) / "dataset"
        run([sys.executable, "-c", MAKE_CSV, str(csv), str(args.rows)])
        size_mb = csv.stat().st_size / 1024**2
        convert = (
            "from dcm.convert import convert; import sys; "
            f"convert([sys.argv[1]], sys.argv[2], chunk_bytes={args.chunk_mb} * 1024**2)"
        )
        steps = [
            (f"`dcm convert` (chunks of {args.chunk_mb} MiB)", [convert, str(csv), str(out)]),
            ("whole-file `read_measurements` (for contrast)", [READ_CSV, str(csv)]),
            ("`read_dataset` of the converted dataset", [READ_DATASET, str(out)]),
        ]
        rows = []
        for label, (code, *argv) in steps:
            wall, cpu, rss = run([sys.executable, "-c", code, *argv])
            rows.append((label, wall, cpu, rss))
        parquet_mb = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1024**2
        parts = len(list(out.glob("day=*/h3_parent=*")))
    print(
        f"{args.rows:,} rows, CSV {size_mb:,.0f} MB → dataset {parquet_mb:,.0f} MB "
        f"in {parts} partitions\n"
    )
    print("| step | wall | rows/s (wall) | CPU | peak RSS |")
    print("|---|---|---|---|---|")
    for label, wall, cpu, rss in rows:
        print(
            f"| {label} | {wall:.1f} s | {args.rows / wall:,.0f} | {cpu:.1f} s | "
            f"{rss / 1024**2:,.0f} MB |"
        )


if __name__ == "__main__":
    main()
