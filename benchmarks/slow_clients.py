"""How fast ``GET /events`` answers while clients hang on the API.

Builds a SQLite store with one event of 5 000 public measurements, starts ``dcm serve``
on 127.0.0.1, and opens ``--clients`` connections (50 by default): half announce a 10 MB
upload and send its first 60 bytes only, half ask for 2 000 features and never read the
answer (4 kB receive buffer). It then times ``GET /events`` every half second for
``--seconds`` and prints the median and the slowest, next to the same figures with no
slow client. Traffic only to 127.0.0.1, bounded in count and time.

    python benchmarks/slow_clients.py
    python benchmarks/slow_clients.py --clients 100 --seconds 20

Target: ``GET /events`` answers within 1 s while the slow clients hang.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROWS = 5_000


def build(folder: Path) -> str:
    """The store: one event, ROWS public measurements, a partner key (returned)."""
    from dcm import service
    from dcm.settings import Settings
    from dcm.store import Principal, open_store

    rng = np.random.default_rng(0)
    csv = folder / "m.csv"
    pd.DataFrame(
        {
            "timestamp": "2021-04-09T01:00:00Z",
            "lat": rng.uniform(13.2, 13.3, ROWS).round(6),
            "lon": rng.uniform(-61.3, -61.2, ROWS).round(6),
            "status": "ok",
            "mcc": 360,
            "mnc": 10,
            "measurement_id": [f"m{i}" for i in range(ROWS)],
        }
    ).to_csv(csv, index=False)
    system = Principal.system()
    with open_store(Settings(data_dir=folder / "data", secret="s")) as store:
        store.create_event("ev", start=pd.Timestamp("2021-04-09T00:00Z"), principal=system)
        service.ingest(store, "ev", csv, visibility="public", principal=system)
        _, token = store.create_key("uploader", role="partner", principal=system)
    return str(token)


def stalled_upload(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            f"POST /events/ev/measurements HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {token}\r\n"
            "Content-Type: text/csv\r\nContent-Length: 10000000\r\n\r\n"
            "timestamp,lat,lon,status\n2021-04-09T02:00:00Z,13.25,-61.25,ok\n"
        ).encode()
    )
    return sock


def unread_download(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    path = "/collections/ev-measurements/items?limit=2000"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def sample(client: httpx.Client, seconds: float) -> list[float]:
    """Times of GET /events, one every half second for ``seconds``."""
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        response = client.get("/events")
        times.append(time.monotonic() - started)
        assert response.status_code == 200, response.text
        time.sleep(0.5)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0, help="wait after connecting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dcm-slow-") as tmp:
        folder = Path(tmp)
        token = build(folder)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
        env |= {"DCM_SECRET": "s", "DCM_DATA_DIR": str(folder / "data")}
        command = [sys.executable, "-m", "dcm.cli.main", "serve", "--port", str(port)]
        server = subprocess.Popen([*command, "--log-level", "error"], env=env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/conformance")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                calm = sample(client, args.seconds)
                with ExitStack() as stack:
                    for i in range(args.clients):
                        sock = stalled_upload(port, token) if i % 2 else unread_download(port)
                        stack.callback(sock.close)
                    first_started = time.monotonic()
                    client.get("/events")
                    first = time.monotonic() - first_started
                    time.sleep(args.settle)
                    busy = sample(client, args.seconds)
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"{args.clients} slow clients ({args.clients // 2} stalled uploads, "
        f"{args.clients - args.clients // 2} unread downloads), GET /events:"
    )
    print("| while | requests | median | slowest |")
    print("|---|---|---|---|")
    print(
        f"| no slow client | {len(calm)} | {statistics.median(calm) * 1000:.0f} ms "
        f"| {max(calm) * 1000:.0f} ms |"
    )
    print(f"| right after they connect | 1 | {first * 1000:.0f} ms | {first * 1000:.0f} ms |")
    print(
        f"| they hang (after {args.settle:g} s) | {len(busy)} | "
        f"{statistics.median(busy) * 1000:.0f} ms | {max(busy) * 1000:.0f} ms |"
    )


if __name__ == "__main__":
    main()
