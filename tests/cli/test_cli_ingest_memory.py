"""``dcm ingest`` of a large file runs in bounded memory: the raw copy is copied file to
file, the file read chunk by chunk and the rows written in batches, all in one
transaction."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

#: Peak memory of a child process: run a command, print the peak RSS (kB) of its children.
_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " done.stdout.strip())\n"
)


def _feature(i: int) -> dict[str, object]:
    """A measurement as a point feature; every 100th has a latitude out of range."""
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


def _one_line_collection(path: Path, size: int) -> int:
    """Write a one-line FeatureCollection of about ``size`` bytes (in pieces: the test
    holds no such string either); returns the number of features."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type":"FeatureCollection","features":[')
        while out.tell() < size:
            piece = ",".join(
                json.dumps(_feature(i), separators=(",", ":")) for i in range(n, n + 10_000)
            )
            out.write(("," if n else "") + piece)
            n += 10_000
        out.write("]}")
    return n


@pytest.mark.slow
def test_a_large_one_line_collection_is_ingested_in_bounded_memory(tmp_path: Path) -> None:
    """About 120 MB of features on one line (the service kept the file's bytes and wrote
    every row from one frame: about 1.2 GB of peak RSS): ``dcm ingest`` stays under
    400 MB, and every good row is stored, every bad one reported."""
    path = tmp_path / "one-line.geojson"
    n = _one_line_collection(path, 120 * 1024**2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env |= {
        "DCM_DATA_DIR": str(tmp_path / "data"),
        "DCM_DATABASE_URL": f"sqlite:///{tmp_path / 'dcm.sqlite'}",
        "DCM_SECRET": "s",
    }
    dcm = [sys.executable, "-m", "dcm.cli.main"]
    subprocess.run(
        [*dcm, "event", "create", "ev", "--start", "2021-04-01T00:00:00Z"],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *dcm, "ingest", "--event", "ev", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    code, peak_kb, said = done.stdout.split(maxsplit=2)
    assert int(code) == 0, done.stderr
    bad = len(range(42, n, 100))
    assert f"{n} rows in, {n - bad} added, {bad} rejected" in said
    assert "lat: " in said  # the reasons are reported
    with sqlite3.connect(tmp_path / "dcm.sqlite") as db:
        assert db.execute("SELECT count(*) FROM measurements").fetchone()[0] == n - bad
        rows_in, rejected = db.execute("SELECT rows_in, rejected FROM datasets").fetchone()
    assert (rows_in, rejected) == (n, bad)
    assert int(peak_kb) < 400 * 1024, f"peak RSS {int(peak_kb) / 1024:.0f} MB"
    # The rows waited in a file unlinked from the start: nothing is left in the data dir.
    assert not list((tmp_path / "data").glob("**/dcm-spool*"))
