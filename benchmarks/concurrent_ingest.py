"""Several ``dcm ingest`` at once into one store: every process succeeds, every row is kept.

Writes ``--writers`` canonical CSV files of ``--rows`` distinct measurements each, starts
one ``dcm ingest`` per file at the same moment against a fresh store (SQLite in a
temporary folder, or ``--database-url postgresql://…``), and prints each process's exit
code and wall time and the rows stored at the end.

    python benchmarks/concurrent_ingest.py                       # 3 × 300 000 rows, SQLite
    python benchmarks/concurrent_ingest.py --database-url postgresql://dcm:dcm@127.0.0.1:5432/dcm_test

Target: all processes succeed and writers × rows measurements are stored.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

START = pd.Timestamp("2021-04-09T00:00:00Z")


def write_file(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "timestamp": (START + pd.to_timedelta(rng.uniform(0, 48 * 3600, rows), unit="s"))
            .floor("s")
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": rng.uniform(13.20, 13.26, rows).round(6),
            "lon": rng.uniform(-61.26, -61.20, rows).round(6),
            "status": "ok",
            "mcc": 360,
            "mnc": rng.choice([10, 50], rows),
            "device": [f"d{i}" for i in rng.integers(0, 500, rows)],
            "measurement_id": [f"{seed}-{i}" for i in range(rows)],
        }
    ).to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--database-url", help="PostgreSQL URL (a throw-away schema is used)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dcm-concurrent-") as tmp:
        folder = Path(tmp)
        schema = None
        if args.database_url:
            import psycopg

            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in args.database_url else "?"
            url = f"{args.database_url}{sep}options={quote(f'-csearch_path={schema},public')}"
        else:
            url = f"sqlite:///{folder / 'dcm.sqlite'}"
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
            env |= {"DCM_DATA_DIR": str(folder / "data"), "DCM_DATABASE_URL": url}
            env |= {"DCM_SECRET": "s"}
            dcm = [sys.executable, "-m", "dcm.cli.main"]
            subprocess.run(
                [*dcm, "event", "create", "ev", "--start", str(START)], env=env, check=True
            )
            files = []
            for seed in range(args.writers):
                files.append(folder / f"m{seed}.csv")
                write_file(files[-1], args.rows, seed)
            started = time.monotonic()
            runs = [
                subprocess.Popen(
                    [*dcm, "ingest", "--event", "ev", str(path)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for path in files
            ]
            for path, run in zip(files, runs, strict=True):
                out, err = run.communicate()
                took = time.monotonic() - started
                print(
                    f"{path.name}: exit {run.returncode} after {took:.1f} s: {(out + err).strip()}"
                )
            from dcm.settings import Settings
            from dcm.store import open_store

            with open_store(Settings(data_dir=folder / "data", secret="s"), url=url) as store:
                stored = store.db.scalar("SELECT count(*) FROM measurements")
            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(
                f"{backend}: {args.writers} × {args.rows:,} rows ingested at once in "
                f"{time.monotonic() - started:.1f} s; {stored:,} rows stored "
                f"(expected {args.writers * args.rows:,})"
            )
        finally:
            if schema:
                import psycopg

                with psycopg.connect(args.database_url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
