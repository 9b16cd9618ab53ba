"""Peak memory of refusing a gzip bomb, by ``dcm ingest`` and by an upload to ``dcm serve``.

Builds gzip streams that inflate to ``--inflated`` bytes (2 GiB by default): zeros, and a
CSV of one repeated row (a header, then the same measurement again and again). Each is
ingested by ``dcm ingest`` in a child process and uploaded to ``dcm serve`` on 127.0.0.1;
the script prints the answer, the time to refuse and the peak RSS of the child (the
``dcm ingest`` process; the server process for the upload). Only loopback traffic.

    python benchmarks/gzip_bomb.py                  # 2 GiB bombs, default limits
    python benchmarks/gzip_bomb.py --inflated 4294967296

Target: peak RSS < 500 MB for a 2 GB bomb, by CLI and by upload.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx

HEADER = b"timestamp,lat,lon,status\n"
ROW = b"2021-04-09T01:00:00Z,13.2,-61.2,ok\n"


def bomb(path: Path, inflated: int, block: bytes) -> int:
    """Write a gzip stream of ``block`` repeated to ``inflated`` bytes; returns its size."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as out:
        for _ in range(inflated // len(block)):
            out.write(packer.compress(block))
        out.write(packer.flush())
    return path.stat().st_size


def peak_rss(pid: int) -> int:
    """Peak resident memory of a running process in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def by_cli(path: Path, env: dict[str, str]) -> tuple[str, float, int]:
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "dcm.cli.main", "ingest", "--event", "ev", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    err = child.stderr.read().strip() if child.stderr else ""
    child.stdout.close() if child.stdout else None
    child.stderr.close() if child.stderr else None
    code = os.waitstatus_to_exitcode(status)
    return f"exit {code}: {err}", seconds, usage.ru_maxrss * 1024


def by_upload(path: Path, env: dict[str, str], token: str) -> tuple[str, float, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "dcm.cli.main", "serve", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/conformance", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        before = peak_rss(server.pid)
        started = time.monotonic()

        def body():  # type: ignore[no-untyped-def]
            with path.open("rb") as fh:
                while chunk := fh.read(64 * 1024):
                    yield chunk

        response = httpx.post(
            f"{base}/events/ev/measurements",
            content=body(),
            headers={"Content-Type": "text/csv", "Content-Encoding": "gzip", "X-API-Key": token},
            timeout=600,
        )
        seconds = time.monotonic() - started
        peak = peak_rss(server.pid)
        answer = f"HTTP {response.status_code}, {len(response.content)} bytes: "
        answer += response.json().get("detail", "")
        print(f"  (server RSS peak before the upload: {before / 1e6:.0f} MB)")
        return answer, seconds, peak
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inflated", type=int, default=2 * 1024**3)
    args = parser.parse_args()
    from dcm.settings import Settings
    from dcm.store import Principal, open_store

    with tempfile.TemporaryDirectory(prefix="dcm-bomb-") as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
        env |= {"DCM_DATA_DIR": str(folder / "data"), "DCM_SECRET": "s"}
        system = Principal.system()
        with open_store(Settings(data_dir=folder / "data", secret="s")) as store:
            store.create_event("ev", start="2021-04-09T00:00Z", principal=system)
            _, token = store.create_key("uploader", role="partner", principal=system)
        print("| bomb | gzip size | inflates to | via | answer | time | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        for label, block in (
            ("zeros", b"\0" * (1 << 20)),
            ("one CSV row repeated", HEADER + ROW * 30_000),
        ):
            path = folder / f"bomb-{label.split()[0]}.csv.gz"
            size = bomb(path, args.inflated, block)
            for via, run in (
                ("dcm ingest", lambda p=path: by_cli(p, env)),
                ("upload", lambda p=path: by_upload(p, env, token)),
            ):
                answer, seconds, peak = run()
                print(
                    f"| {label} | {size / 1e6:.1f} MB | {args.inflated / 1e9:.2f} GB | {via} "
                    f"| {answer} | {seconds:.1f} s | {peak / 1e6:.0f} MB |"
                )


if __name__ == "__main__":
    main()
