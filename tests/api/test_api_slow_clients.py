"""Clients that upload very slowly, or never read their responses, hold no database
connection: ``GET /events`` keeps answering while 50 of them hang on a real
``dcm serve`` (uvicorn) on 127.0.0.1; a stalled upload is dropped after the idle timeout;
an upload that finds the disk full is a 507 that leaves nothing behind."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from dcm import live
from dcm.settings import Settings
from dcm.store import Principal, open_store

from .serving import dcm_serve as serve_process

SLOW = 50
SETTLE_S = 5.0
ROWS = 5_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A SQLite store with one event of ROWS public measurements and a partner key."""
    folder = tmp_path_factory.mktemp("slow") / "data"
    rng = np.random.default_rng(0)
    csv = folder.parent / "m.csv"
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
    with open_store(Settings(data_dir=folder, secret="s")) as store:
        store.create_event("ev", start=pd.Timestamp("2021-04-09T00:00Z"), principal=system)
        live.ingest(store, "ev", csv, visibility="public", principal=system)
        _, token = store.create_key("uploader", role="partner", principal=system)
    return folder, token


@contextmanager
def dcm_serve(
    data_dir: Path, *, idle_s: float, file_limit: int | None = None
) -> Iterator[tuple[str, int]]:
    """``dcm serve`` on a free port of 127.0.0.1, writing no file past ``file_limit``
    bytes (a full disk) when given; yields (host, port)."""

    def limit_files() -> None:
        import resource

        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    with serve_process(
        data_dir,
        env={"DCM_CLIENT_IDLE_TIMEOUT_S": str(idle_s)},
        log_level="error",
        preexec_fn=limit_files,
    ) as (base, _):
        yield "127.0.0.1", int(base.rsplit(":", 1)[1])


def stalled_upload(host: str, port: int, token: str) -> socket.socket:
    """An upload that announces 10 MB and sends its first 60 bytes only."""
    sock = socket.create_connection((host, port), timeout=10)
    head = (
        f"POST /events/ev/measurements HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {token}\r\n"
        "Content-Type: text/csv\r\nContent-Length: 10000000\r\n\r\n"
        "timestamp,lat,lon,status\n2021-04-09T02:00:00Z,13.25,-61.25,ok\n"
    )
    sock.sendall(head.encode())
    return sock


def unread_download(host: str, port: int) -> socket.socket:
    """A request for about 600 kB of GeoJSON whose response is never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
    sock.settimeout(10)
    sock.connect((host, port))
    path = "/collections/ev-measurements/items?limit=2000"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def read_response(sock: socket.socket) -> str:
    """One whole HTTP/1.1 response (with a Content-Length) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed after {head + body!r}"
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_slow_clients_do_not_starve_others(data_dir: tuple[Path, str]) -> None:
    folder, token = data_dir
    with dcm_serve(folder, idle_s=60) as (host, port), ExitStack() as stack:
        for i in range(SLOW):
            sock = stalled_upload(host, port, token) if i % 2 else unread_download(host, port)
            stack.callback(sock.close)
        # The server computes the downloads first (CPU, shared with other work): give it
        # time. Before connections were given back early, no wait was long enough.
        time.sleep(SETTLE_S)
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
            started = time.monotonic()
            events = client.get("/events")
            elapsed = time.monotonic() - started
            items = client.get("/collections/ev-measurements/items", params={"limit": 5})
    assert events.status_code == 200 and events.json()["events"][0]["name"] == "ev"
    assert items.status_code == 200 and len(items.json()["features"]) == 5
    assert elapsed < 5, f"GET /events took {elapsed:.1f} s behind {SLOW} slow clients"


def test_stalled_upload_is_dropped_with_408(data_dir: tuple[Path, str]) -> None:
    folder, token = data_dir
    with dcm_serve(folder, idle_s=1) as (host, port):
        sock = stalled_upload(host, port, token)
        with sock:
            answer = read_response(sock)  # waits for the server's timeout
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "no byte of the request body arrived for 1 s" in answer
    assert not list((folder / "uploads").glob("*"))  # the partial body was removed


def test_full_disk_answers_507_and_keeps_nothing(data_dir: tuple[Path, str]) -> None:
    folder, token = data_dir
    size = (folder / "dcm.sqlite").stat().st_size
    body = b"timestamp,lat,lon,status\n" + b"2021-04-09T02:00:00Z,13.25,-61.25,ok\n" * 200_000
    with (
        dcm_serve(folder, idle_s=60, file_limit=size + 1024**2) as (host, port),
        httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client,
    ):
        full = client.post(
            "/events/ev/measurements",
            content=body,
            headers={"Content-Type": "text/csv", "X-API-Key": token},
        )
        events = client.get("/events")
    assert full.status_code == 507, full.text
    assert full.json()["detail"] == (
        "the server has no room left for the upload: nothing was kept; try later"
    )
    assert events.status_code == 200  # still serving
    assert not list((folder / "uploads").glob("*"))


def test_rows_that_find_no_room_on_disk_answer_507_and_keep_nothing(
    data_dir: tuple[Path, str],
) -> None:
    """The body (7 MB) and its raw copy fit the file-size limit, but the 200,000 rows
    waiting for the store in their own file (about 150 bytes each) do not: 507, no
    dataset, no raw copy, no upload file left."""
    folder, token = data_dir
    limit = (folder / "dcm.sqlite").stat().st_size + 16 * 1024**2
    seconds = pd.date_range("2021-04-09T02:00:00Z", periods=200_000, freq="s")
    lines = seconds.strftime("%Y-%m-%dT%H:%M:%SZ,13.25,-61.25,ok\n")
    body = b"timestamp,lat,lon,status\n" + "".join(lines).encode()
    assert len(body) < limit - (folder / "dcm.sqlite").stat().st_size
    with (
        dcm_serve(folder, idle_s=60, file_limit=limit) as (host, port),
        httpx.Client(base_url=f"http://{host}:{port}", timeout=120) as client,
    ):
        full = client.post(
            "/events/ev/measurements",
            content=body,
            headers={"Content-Type": "text/csv", "X-API-Key": token},
        )
    assert full.status_code == 507, full.text
    assert "no room left" in full.json()["detail"]
    assert not list((folder / "uploads").glob("*"))
    assert not [p for p in (folder / "raw").glob("*") if p.stat().st_size == len(body)]
    with open_store(Settings(data_dir=folder, secret="s")) as store:
        assert [d.rows_in for d in store.list_datasets("ev")] == [ROWS]
