"""Load benchmark of the API: items queries with random bboxes against ``dcm serve``.

Builds an event with 500 000 synthetic measurements over St Vincent in a fresh data
directory (or reuses ``--data-dir``), starts ``dcm serve`` on 127.0.0.1, drives
``/collections/{event}-measurements/items?bbox=...`` with a fixed number of concurrent
connections for a bounded time, and prints requests/s and latency percentiles. The load
comes from ``wrk`` (Debian package ``wrk``; a Lua script draws the random boxes) when it
is installed, since a C client leaves the two cores to the server; otherwise, or with
``--client httpx``, from an asyncio httpx client. Only loopback traffic.

    python benchmarks/load/run.py                      # 500k rows, 16 connections, 20 s
    python benchmarks/load/run.py --rows 100000 --seconds 5 --workers 2 --client httpx

Target on a 2-core machine: >= 200 requests/s with p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

EVENT = "load"
#: St Vincent's bounding box (lon/lat degrees); measurements fall on the island's extent.
WEST, SOUTH, EAST, NORTH = -61.29, 13.12, -61.11, 13.39


def synthesise(rows: int, *, seed: int = 0) -> pd.DataFrame:
    """``rows`` measurements (MEASUREMENT_COLUMNS) over St Vincent in one week, vectorised.

    Points cluster around a few hundred "towns" so bbox counts vary like real data.
    """
    from dcm.schema import MEASUREMENT_COLUMNS, network_key

    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(WEST, EAST, 300), rng.uniform(SOUTH, NORTH, 300)])
    which = rng.integers(0, len(centres), rows)
    lon = np.clip(centres[which, 0] + rng.normal(0, 0.01, rows), WEST, EAST)
    lat = np.clip(centres[which, 1] + rng.normal(0, 0.01, rows), SOUTH, NORTH)
    start = pd.Timestamp("2021-04-09T12:41:00Z")
    seconds = np.sort(rng.integers(0, 7 * 86400, rows))
    mnc = np.where(rng.random(rows) < 0.62, 110, 100)
    frame = pd.DataFrame(
        {
            "timestamp": start + pd.to_timedelta(seconds, unit="s"),
            "lat": lat.round(6),
            "lon": lon.round(6),
            "status": np.where(rng.random(rows) < 0.9, "ok", "no_service"),
            "mcc": pd.array(np.full(rows, 360), dtype="Int64"),
            "mnc": pd.array(mnc, dtype="Int64"),
            "radio": np.where(rng.random(rows) < 0.6, "LTE", "GSM"),
            "signal_dbm": rng.normal(-90, 10, rows).round(),
            "measurement_id": pd.array(np.char.add("m", np.arange(rows).astype(str))),
            "device": pd.array(np.char.add("d", rng.integers(0, 20000, rows).astype(str))),
        }
    )
    frame["network"] = network_key(frame["mcc"], frame["mnc"])
    frame = frame.reindex(columns=list(MEASUREMENT_COLUMNS))
    for name, dtype in MEASUREMENT_COLUMNS.items():
        if not name.startswith("timestamp"):
            frame[name] = frame[name].astype(dtype)
    return frame


def build_store(data_dir: Path, rows: int) -> float:
    """Create the event and insert ``rows`` public measurements; returns seconds taken."""
    from dcm.settings import Settings
    from dcm.store import Principal, open_store

    started = time.perf_counter()
    admin = Principal.system()
    frame = synthesise(rows)
    with open_store(Settings(data_dir=data_dir, secret="load-benchmark")) as store:
        store.create_event(EVENT, start="2021-04-09T12:41:00Z", principal=admin)
        dataset = store.add_dataset(
            EVENT,
            kind="measurements",
            source="synthetic",
            checksum=f"synthetic-{rows}",
            licence="CC0-1.0",
            visibility="public",
            counts={"rows_in": rows, "accepted": rows},
            principal=admin,
        )
        added = store.insert_measurements(EVENT, dataset.id, frame, period="event")
        store.set_dataset_added(dataset.id, len(added))
        store.refresh_measurement_statistics(len(added))  # as dcm ingest does after committing
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """``dcm serve`` on 127.0.0.1:port; returns once it answers."""
    import httpx

    env = {**os.environ, "DCM_DATA_DIR": str(data_dir), "DCM_SECRET": "load-benchmark"}
    cmd = [
        sys.executable,
        "-m",
        "dcm.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=2).raise_for_status()
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("dcm serve did not start") from None
            time.sleep(0.2)


def random_bboxes(n: int, *, seed: int = 1) -> list[str]:
    """Map-viewport-like boxes: 0.005° to 0.05° wide, anywhere on the island."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.005, 0.05, n)
    minx = rng.uniform(WEST, EAST - size)
    miny = rng.uniform(SOUTH, NORTH - size)
    return [
        f"{x:.5f},{y:.5f},{x + s:.5f},{y + s:.5f}" for x, y, s in zip(minx, miny, size, strict=True)
    ]


async def drive(
    base: str, *, seconds: float, concurrency: int, limit: int
) -> tuple[list[float], int, int]:
    """Send items queries for ``seconds`` from ``concurrency`` tasks.

    Returns the latencies (s) of successful requests, the error count and features read.
    """
    import httpx

    boxes = random_bboxes(100_000)
    url = f"{base}/collections/{EVENT}-measurements/items"
    latencies: list[float] = []
    errors = 0
    features = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient, offset: int) -> None:
        nonlocal errors, features
        i = offset
        while time.perf_counter() < deadline:
            bbox = boxes[i % len(boxes)]
            i += concurrency
            t0 = time.perf_counter()
            response = await client.get(url, params={"bbox": bbox, "limit": limit})
            elapsed = time.perf_counter() - t0
            if response.status_code == 200:
                latencies.append(elapsed)
                features += len(response.json()["features"])
            else:
                errors += 1

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, k) for k in range(concurrency)))
    return latencies, errors, features


WRK_SCRIPT = """
local W, S, E, N = %(west)s, %(south)s, %(east)s, %(north)s
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(1000 + id)
end
function request()
  local s = 0.005 + math.random() * 0.045
  local x = W + math.random() * (E - W - s)
  local y = S + math.random() * (N - S - s)
  local path = string.format("%(path)s?limit=%(limit)d&bbox=%%.5f,%%.5f,%%.5f,%%.5f",
                             x, y, x + s, y + s)
  return wrk.format("GET", path, {["Accept-Encoding"] = "gzip"})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%%d,"duration_us":%%d,"errors":%%d,"non2xx":%%d,' ..
    '"p50_us":%%d,"p95_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def drive_wrk(
    base: str, *, seconds: float, concurrency: int, limit: int, folder: Path
) -> dict[str, float]:
    """Run ``wrk`` with the random-bbox script; returns its summary figures."""
    script = folder / "bbox.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "west": WEST,
            "south": SOUTH,
            "east": EAST,
            "north": NORTH,
            "path": f"/collections/{EVENT}-measurements/items",
            "limit": limit,
        }
    )
    threads = min(2, concurrency)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"{base}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    figures: dict[str, float] = json.loads(line[4:])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--limit", type=int, default=10, help="features per page")
    parser.add_argument("--workers", type=int, default=1, help="dcm serve worker processes")
    parser.add_argument("--data-dir", type=Path, help="reuse this store (built if empty)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--client",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator (default: wrk when installed)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dcm-load-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        build_s = None
        if not (data_dir / "dcm.sqlite").exists():
            build_s = build_store(data_dir, args.rows)
            print(f"store: {args.rows} measurements inserted in {build_s:.1f} s", flush=True)
        port = free_port()
        server = start_server(data_dir, port, args.workers)
        base = f"http://127.0.0.1:{port}"
        load = {"seconds": 2.0, "concurrency": args.concurrency, "limit": args.limit}
        try:
            asyncio.run(drive(base, **load))  # warm-up: threads, connections, page cache
            load["seconds"] = args.seconds
            if args.client == "wrk":
                result = drive_wrk(base, folder=Path(tmp), **load)
                requests = int(result["requests"])
                duration = result["duration_us"] / 1e6
                errors = int(result["errors"] + result["non2xx"])
                p50, p95, p99 = (result[f"p{q}_us"] / 1000 for q in (50, 95, 99))
            else:
                latencies, errors, _ = asyncio.run(drive(base, **load))
                requests, duration = len(latencies), args.seconds
                p50, p95, p99 = np.percentile(np.asarray(latencies) * 1000, [50, 95, 99])
        finally:
            server.terminate()
            server.wait(timeout=30)

    figures = {
        "client": args.client,
        "rows": args.rows,
        "seconds": round(duration, 1),
        "concurrency": args.concurrency,
        "workers": args.workers,
        "limit": args.limit,
        "requests": requests,
        "errors": errors,
        "requests_per_s": round(requests / duration, 1),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
        "store_build_s": None if build_s is None else round(build_s, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{args.client}: {requests} requests in {duration:.1f} s over {args.concurrency} "
            f"connections ({args.workers} worker(s)): {figures['requests_per_s']} req/s, "
            f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
            f"p99 {figures['p99_ms']} ms, {errors} errors"
        )
    target = figures["requests_per_s"] >= 200 and figures["p95_ms"] < 100
    print("target (>= 200 req/s, p95 < 100 ms):", "met" if target else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
