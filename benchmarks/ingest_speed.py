"""Ingest speed: canonical measurement CSV (clean and with 1% bad rows) and Ecuador cells.

Run: ``python benchmarks/ingest_speed.py [--rows 1000000]``. Prints rows/s. The input CSV
is generated in a temporary folder (random but realistic values, fixed seed).

``--store`` also times ``dcm ingest`` of the clean CSV (raw copy, reading, every row
written in its one transaction) into a fresh SQLite store, ``--postgres URL`` into a
throw-away schema of that PostgreSQL database; ``--store-only`` skips the readers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dcm.ingest import read_cells, read_measurements

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ECUADOR = SHARED_DATA / "opencellid" / "ecuador_740.csv.gz"


def make_csv(path: Path, rows: int, *, bad_fraction: float = 0.0, seed: int = 0) -> None:
    """Write a canonical measurement CSV with ``rows`` data rows."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-05-20T00:00:00Z")
    times = start + pd.to_timedelta(rng.integers(0, 14 * 86400, rows), unit="s")
    frame = pd.DataFrame(
        {
            "timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": np.round(rng.uniform(13.2, 13.7, rows), 6),
            "lon": np.round(rng.uniform(144.6, 145.0, rows), 6),
            "status": rng.choice(["ok", "no_service", "failed"], rows, p=[0.9, 0.07, 0.03]),
            "mcc": 310,
            "mnc": rng.choice([370, 470, 140], rows),
            "radio": rng.choice(["LTE", "NR", "UMTS"], rows),
            "area": rng.integers(1, 500, rows),
            "cell": rng.integers(1, 2**28, rows),
            "signal_dbm": np.round(rng.normal(-95, 10, rows).clip(-140, -30), 1),
            "download_kbps": np.round(rng.lognormal(9, 1, rows), 1),
            "upload_kbps": np.round(rng.lognormal(7, 1, rows), 1),
            "latency_ms": np.round(rng.lognormal(3.5, 0.5, rows), 1),
            "accuracy_m": np.round(rng.uniform(3, 50, rows), 1),
            "measurement_id": [f"m{i}" for i in range(rows)],
            "device": [f"device-{i}" for i in rng.integers(0, 20000, rows)],
        }
    )
    if bad_fraction:
        bad = rng.choice(rows, int(rows * bad_fraction), replace=False)
        frame["lat"] = frame["lat"].astype(object)
        frame.loc[bad, "lat"] = "not-a-number"
    frame.to_csv(path, index=False)


def timed(label: str, rows: int, fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` and print rows/s by wall clock and by CPU time of this process.

    On a shared machine the wall clock includes waiting for the CPU; the CPU figure
    (all threads of this process) is what the code costs.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"{label}: {rows:,} rows in {dt:.2f} s wall = {rows / dt:,.0f} rows/s "
        f"({ct:.2f} s CPU = {rows / ct:,.0f} rows/s per CPU-second)"
    )
    return result


def ingest_into_store(path: Path, rows: int, folder: Path, postgres: str | None) -> None:
    """Time the service's ingest of ``path`` (as ``dcm ingest`` runs it) into a fresh
    store: SQLite in ``folder``, or a throw-away schema of ``postgres``."""
    from geojson_memory import store_url

    from dcm import service
    from dcm.settings import Settings
    from dcm.store import Principal, open_store

    admin = Principal.system()
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=folder / "data", secret="s")
    with store_url(folder, postgres) as url, open_store(settings, url=url) as store:
        store.create_event("ev", start="2023-05-20T00:00:00Z", principal=admin)
        label = f"dcm ingest, {'PostgreSQL' if postgres else 'SQLite'}"
        outcome = timed(label, rows, lambda: service.ingest(store, "ev", path, principal=admin))
        print(f"  {outcome.added:,} rows added")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", action="store_true", help="also time dcm ingest (SQLite)")
    parser.add_argument("--postgres", metavar="URL", help="also time dcm ingest on PostgreSQL")
    parser.add_argument("--store-only", action="store_true", help="skip the readers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.csv"
        make_csv(clean, args.rows)
        if args.store or args.store_only:
            ingest_into_store(clean, args.rows, Path(tmp) / "sqlite", None)
        if args.postgres:
            ingest_into_store(clean, args.rows, Path(tmp) / "postgres", args.postgres)
        if args.store_only:
            return
        dirty = Path(tmp) / "dirty.csv"
        make_csv(dirty, args.rows, bad_fraction=0.01, seed=1)
        result = timed("measurements clean CSV", args.rows, lambda: read_measurements(clean))
        print("  " + result.report.summary().splitlines()[1])
        result = timed("measurements CSV, 1% bad", args.rows, lambda: read_measurements(dirty))
        print("  " + result.report.summary().splitlines()[1])
        ndjson = Path(tmp) / "clean.ndjson"
        pd.read_csv(clean, dtype=str, keep_default_na=False).to_json(
            ndjson, orient="records", lines=True
        )
        result = timed("measurements NDJSON", args.rows, lambda: read_measurements(ndjson))
        print("  " + result.report.summary().splitlines()[1])
    if ECUADOR.is_file():
        result = timed("cells Ecuador (with sites)", 75_068, lambda: read_cells(ECUADOR))
        print("  " + result.report.summary().splitlines()[1])


if __name__ == "__main__":
    main()
