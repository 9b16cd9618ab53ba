"""Peak memory and time of reading a large one-line GeoJSON FeatureCollection.

Writes a FeatureCollection of real-shaped point measurements (about 230 bytes a
feature, on one line, 1 % of them bad) of ``--mb`` megabytes, then reads it in child
processes and prints each one's wall time and peak RSS:

* ``read_measurements``: the whole-file reader (as ``dcm replay`` uses it), whose
  result frame holds every row;
* ``iter_measurements``: the chunked reader (as ``dcm compare`` and ``dcm convert`` use
  it), one chunk at a time, nothing kept;
* with ``--ingest``: ``dcm ingest`` of the file into a fresh SQLite store (raw copy,
  reading, every row written), and with ``--postgres URL`` also into a throw-away schema
  of that PostgreSQL database.

    python benchmarks/geojson_memory.py --mb 200
    python benchmarks/geojson_memory.py --mb 200 --ingest --no-read --postgres postgresql://dcm:dcm@127.0.0.1:5432/dcm_test
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

_READ = {
    "read_measurements": (
        "import sys\n"
        "from dcm.ingest import read_measurements\n"
        "r = read_measurements(sys.argv[1])\n"
        "print(r.report.rows_in, r.report.accepted, r.report.rejected_count)\n"
    ),
    "iter_measurements": (
        "import sys\n"
        "from dcm.ingest.chunks import iter_measurements\n"
        "n = [0, 0, 0]\n"
        "for c in iter_measurements(sys.argv[1]):\n"
        "    n[0] += c.report.rows_in; n[1] += c.report.accepted\n"
        "    n[2] += c.report.rejected_count\n"
        "print(*n)\n"
    ),
}

_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(done.returncode, use.ru_maxrss, use.ru_utime + use.ru_stime, done.stdout.strip())\n"
)


def feature(i: int) -> dict[str, object]:
    """One measurement as a GeoJSON point feature; every 100th has a bad latitude."""
    lat = 13.1 + (i % 5000) * 1e-4 + (100 if i % 100 == 42 else 0)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(-61.3 + (i % 7919) * 1e-4, 6), lat]},
        "properties": {
            "timestamp": f"2021-04-{9 + i % 7:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z",
            "status": ("ok", "ok", "ok", "no_service", "failed")[i % 5],
            "mcc": 358,
            "mnc": (10, 50, 110)[i % 3],
            "radio": ("LTE", "UMTS", "GSM")[i % 3],
            "area": 1200 + i % 40,
            "cell": 30000 + i % 977,
            "signal_dbm": -70.0 - i % 40,
            "measurement_id": f"m{i}",
            "device": f"phone-{i % 1500}",
        },
    }


def write_collection(path: Path, size: int) -> int:
    """Write a one-line FeatureCollection of about ``size`` bytes; returns its features."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type":"FeatureCollection","features":[')
        written = 0
        while written < size:
            piece = ",".join(
                json.dumps(feature(i), separators=(",", ":")) for i in range(n, n + 10_000)
            )
            out.write(("," if n else "") + piece)
            written += len(piece) + 1
            n += 10_000
        out.write("]}")
    return n


def measure(
    kind: str, command: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, int, str]:
    """Wall and CPU seconds, peak RSS (kB) and printed output of ``command`` in a child
    process (CPU time says more than wall time on a shared machine)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *command], capture_output=True, text=True, env=env
    )
    code, peak, cpu, *out = done.stdout.split(maxsplit=3)
    if done.returncode or int(code):
        raise SystemExit(f"{kind} failed: {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - start, float(cpu), int(peak), " ".join(out)


@contextmanager
def store_url(folder: Path, postgres: str | None) -> Iterator[str]:
    """A fresh SQLite store in ``folder``, or a throw-away schema of ``postgres``."""
    if postgres is None:
        yield f"sqlite:///{folder / 'dcm.sqlite'}"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in postgres else "?"
        yield f"{postgres}{sep}options={quote(f'-csearch_path={schema},public')}"
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def measure_ingest(path: Path, folder: Path, postgres: str | None) -> tuple[float, float, int, str]:
    """``dcm ingest --event ev PATH`` into a fresh store, in a child (as
    :func:`measure`); the output is what ``dcm ingest`` printed."""
    with store_url(folder, postgres) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
        env |= {"DCM_DATA_DIR": str(folder / "data"), "DCM_DATABASE_URL": url, "DCM_SECRET": "s"}
        dcm = [sys.executable, "-m", "dcm.cli.main"]
        start = ["event", "create", "ev", "--start", "2021-04-01T00:00:00Z"]
        subprocess.run([*dcm, *start], env=env, check=True, capture_output=True)
        return measure("dcm ingest", [*dcm, "ingest", "--event", "ev", str(path)], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the collection (MB)")
    parser.add_argument("--keep", type=Path, help="write the file here (kept)")
    parser.add_argument("--ingest", action="store_true", help="also measure dcm ingest (SQLite)")
    parser.add_argument("--postgres", metavar="URL", help="also measure dcm ingest on PostgreSQL")
    parser.add_argument("--no-read", action="store_true", help="skip the two reader runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "one-line.geojson"
        n = write_collection(path, args.mb * 1024**2)
        print(f"{path.name}: {path.stat().st_size / 1024**2:,.0f} MB, {n:,} features, one line")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"(this process: {own / 1024:,.0f} MB)")
        for kind in () if args.no_read else _READ:
            command = [sys.executable, "-c", _READ[kind], str(path)]
            seconds, cpu, peak, counts = measure(kind, command)
            rows_in, accepted, rejected = counts.split()
            print(
                f"{kind:18s} {seconds:6.1f} s ({cpu:5.1f} s CPU)  peak {peak / 1024:7,.0f} MB  "
                f"rows in {int(rows_in):,}, accepted {int(accepted):,}, "
                f"rejected {int(rejected):,}"
            )
        backends = [("SQLite", None)] if args.ingest else []
        backends += [("PostgreSQL", args.postgres)] if args.postgres else []
        for backend, postgres in backends:
            with tempfile.TemporaryDirectory(prefix="dcm-ingest-") as folder:
                seconds, cpu, peak, said = measure_ingest(path, Path(folder), postgres)
            said = re.sub(r"^\S+: ", "", said.splitlines()[0] if said else "")
            print(
                f"{'dcm ingest ' + backend:18s} {seconds:6.1f} s ({cpu:5.1f} s CPU)  "
                f"peak {peak / 1024:7,.0f} MB  {said}"
            )


if __name__ == "__main__":
    main()
