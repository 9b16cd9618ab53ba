"""Live update speed: one hourly ingest + update on the St Vincent sample (32,000 event
measurements over a week), the target being under 2 s per hour.

Run: ``python benchmarks/update_speed.py [--hours 48] [--url postgresql://...]``.

The store is created in a temporary folder (SQLite, or the PostgreSQL database of
``--url``/``DCM_TEST_POSTGRES_URL`` with ``--postgres``, in a schema of its own). Cells,
baseline, areas and population are ingested and a first update builds the baseline
model; then ``event.csv.gz`` is fed hour by hour exactly as received (its malformed and
duplicate lines included), each hour timed as ``service.ingest`` + ``service.update``. Also
times bbox item queries on the measurements layer. Prints the figures.
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from dcm import service
from dcm.settings import Settings
from dcm.store import Principal, open_store

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "stvincent"
TARGET_S = 2.0


def hourly_slices(path: Path) -> list[tuple[pd.Timestamp, bytes]]:
    """The event CSV cut into one CSV (header + lines) per hour of its timestamps.

    Lines whose timestamp cannot be read stay with the hour of the line before them, so
    each slice carries the file's bad rows as a live feed would.
    """
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    header, *lines = text.splitlines()
    first = pd.Series([line.split(",", 1)[0] for line in lines])
    times = pd.to_datetime(first, utc=True, errors="coerce", format="ISO8601").ffill().bfill()
    hours = times.dt.floor("h")
    order = np.argsort(hours.to_numpy(), kind="stable")
    slices = []
    for hour, idx in pd.Series(order).groupby(hours.to_numpy()[order]):
        body = "\n".join(lines[i] for i in idx)
        slices.append((pd.Timestamp(hour), f"{header}\n{body}\n".encode()))
    return slices


def _url(args: argparse.Namespace, folder: Path) -> tuple[str, str | None]:
    base = args.url or (os.environ.get("DCM_TEST_POSTGRES_URL") if args.postgres else None)
    if not base:
        return f"sqlite:///{folder / 'dcm.sqlite'}", None
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema},public')}", schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=None, help="Hours to feed (default all).")
    parser.add_argument("--url", default=None, help="PostgreSQL URL (default: SQLite).")
    parser.add_argument("--postgres", action="store_true", help="Use DCM_TEST_POSTGRES_URL.")
    parser.add_argument("--queries", type=int, default=500, help="bbox queries to time.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, schema = _url(args, folder)
        settings = Settings(data_dir=folder / "data", secret="benchmark")
        store = open_store(settings, url=url)
        admin = Principal.system()
        meta = pd.read_json(SAMPLE / "scenario.json", typ="series")
        store.create_event("stvincent", start=meta["event_start"], principal=admin)
        print(f"backend: {store.backend}")
        for kind, name in (
            ("cells", "cells.csv.gz"),
            ("baseline", "baseline.csv.gz"),
            ("areas", "areas.geojson"),
            ("population", "population.tif"),
            ("hazard", "hazard.geojson"),
        ):
            t0 = time.perf_counter()
            outcome = service.ingest(
                store, "stvincent", SAMPLE / name, kind=kind, visibility="public", principal=admin
            )
            print(f"ingest {kind:<10} {outcome.added:>7} rows  {time.perf_counter() - t0:6.2f} s")

        slices = hourly_slices(SAMPLE / "event.csv.gz")
        if args.hours:
            slices = slices[: args.hours + 1]
        lines = np.median([data.count(b"\n") - 1 for _, data in slices])
        print(f"event file: {len(slices)} hourly slices, median {lines:.0f} lines each")
        # The first update also builds (and caches) the baseline model.
        hour, data = slices[0]
        t0 = time.perf_counter()
        service.ingest(store, "stvincent", data, name=f"{hour:%Y%m%dT%H}.csv", principal=admin)
        service.update(store, "stvincent", principal=admin, now=hour + pd.Timedelta("1h"))
        print(f"first hour incl. baseline model: {time.perf_counter() - t0:.2f} s")

        ingest_s, update_s, windows, alerts = [], [], [], 0
        for hour, data in slices[1:]:
            t0 = time.perf_counter()
            service.ingest(store, "stvincent", data, name=f"{hour:%Y%m%dT%H}.csv", principal=admin)
            t1 = time.perf_counter()
            summary = service.update(
                store, "stvincent", principal=admin, now=hour + pd.Timedelta("1h")
            )
            t2 = time.perf_counter()
            ingest_s.append(t1 - t0)
            update_s.append(t2 - t1)
            windows.append(len(summary.windows))
            alerts += sum(summary.alerts.values())
        total = np.asarray(ingest_s) + np.asarray(update_s)
        print(
            f"hourly ingest + update over {len(total)} hours "
            f"({np.mean(windows):.1f} windows recomputed per update):"
        )
        for label, values in (("ingest", ingest_s), ("update", update_s), ("total", total)):
            v = np.asarray(values)
            print(
                f"  {label:<6} median {np.median(v):.3f} s  p95 {np.percentile(v, 95):.3f} s  "
                f"max {v.max():.3f} s"
            )
        verdict = "meets" if np.percentile(total, 95) < TARGET_S else "MISSES"
        print(
            f"p95 {np.percentile(total, 95):.2f} s per hourly update {verdict} the "
            f"{TARGET_S:.0f} s target; {alerts} CAP messages issued"
        )

        rows = int(store.db.scalar("SELECT count(*) FROM measurements"))
        rng = np.random.default_rng(0)
        west, south, east, north = -61.28, 13.12, -61.11, 13.39
        anyone = Principal.anonymous()
        t0 = time.perf_counter()
        matched = 0
        for _ in range(args.queries):
            x, y = rng.uniform(west, east - 0.02), rng.uniform(south, north - 0.02)
            page = store.features(
                "measurements",
                "stvincent",
                bbox=(x, y, x + 0.02, y + 0.02),
                limit=10,
                principal=anyone,
            )
            matched += page.number_matched
        per = (time.perf_counter() - t0) / args.queries
        print(
            f"bbox item queries (2 km boxes, limit 10, with numberMatched) over {rows} "
            f"measurements: {per * 1000:.2f} ms each ({1 / per:.0f}/s in one thread), "
            f"{matched / args.queries:.0f} matched on average"
        )
        store.close()
        if schema:
            import psycopg

            base = args.url or os.environ["DCM_TEST_POSTGRES_URL"]
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
