"""Inputs past the installation's limits are refused as soon as they pass them: a gzip
bomb stops after a few MiB of output, by the reader and by ``dcm ingest``."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from dcm.errors import IngestError, InputTooLarge
from dcm.ingest import read_measurements
from dcm.ingest._source import RATIO_FLOOR_BYTES, InputLimits, read_bytes
from dcm.ingest.report import RAW_ECHO_CHARS, RejectedRow
from dcm.settings import Settings

ROW = b"2021-04-09T01:00:00Z,13.2,-61.2,ok\n"
HEADER = b"timestamp,lat,lon,status\n"


def bomb(inflated: int, block: bytes = b"\0" * (1 << 20)) -> bytes:
    """A gzip stream of ``block`` repeated to ``inflated`` bytes, built chunk by chunk."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(block) for _ in range(inflated // len(block))]
    return b"".join([*parts, packer.flush()])


def test_defaults_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCM_MAX_DECOMPRESSED_BYTES", "12345")
    monkeypatch.setenv("DCM_MAX_INFLATION_RATIO", "7.5")
    assert InputLimits.from_settings() == InputLimits(12345, 7.5)
    assert InputLimits.from_settings(Settings()) == InputLimits(12345, 7.5)
    with pytest.raises(InputTooLarge, match=r"larger than 12,345 bytes"):
        read_measurements(HEADER + ROW * 1000, name="big.csv")


def test_gzip_bomb_of_zeros_stops_at_the_ratio() -> None:
    data = bomb(2 * 1024**3)  # about 2 MB inflating to 2 GiB
    assert len(data) < 3 * 1024**2
    limits = InputLimits(max_bytes=4 * 1024**3, max_ratio=100)
    with pytest.raises(InputTooLarge, match="inflates more than 100 times") as caught:
        read_bytes(data, name="bomb.csv.gz", limits=limits)
    assert str(caught.value).startswith("bomb.csv.gz: refused")


def test_gzip_of_repeated_rows_stops_at_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(bomb(256 * 1024**2, block=ROW * 30_000))
    limits = InputLimits(max_bytes=32 * 1024**2, max_ratio=10_000)
    with pytest.raises(InputTooLarge, match=r"larger than 33,554,432 bytes"):
        read_bytes(path, name="rows.csv.gz", limits=limits)


def test_plain_input_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(HEADER + ROW * 100)
    limits = InputLimits(max_bytes=1000, max_ratio=100)
    with pytest.raises(InputTooLarge, match="DCM_MAX_DECOMPRESSED_BYTES"):
        read_bytes(path, name="big.csv", limits=limits)
    assert read_bytes(path, name="big.csv", limits=InputLimits(10_000, 100)) == path.read_bytes()


def test_ordinary_gzip_reads_like_gzip() -> None:
    limits = InputLimits(max_bytes=1024**3, max_ratio=100)
    text = HEADER + ROW * 50_000
    # Members concatenated (with zero padding between them, as gzip accepts).
    data = gzip.compress(text) + b"\0\0" + gzip.compress(b"") + gzip.compress(ROW)
    assert read_bytes(data, name="x.gz", limits=limits) == text + ROW
    # Highly compressible but small: under the size where the ratio is judged.
    small = ROW * (RATIO_FLOOR_BYTES // len(ROW) // 2)
    assert read_bytes(gzip.compress(small), name="x.gz", limits=limits) == small
    for broken in (gzip.compress(text)[:-20], b"\x1f\x8b\x08garbage"):
        with pytest.raises(IngestError, match="corrupt gzip data"):
            read_bytes(broken, name="x.gz", limits=limits)


def test_rejected_raw_text_is_cut() -> None:
    row = RejectedRow(3, "lat", "not a number", "x" * 10_000)
    assert row.raw == "x" * RAW_ECHO_CHARS + "…"
    assert RejectedRow(3, "lat", "r", "short").raw == "short"


def test_dcm_ingest_refuses_a_bomb_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(bomb(1024**3, block=HEADER + ROW * 30_000))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env |= {"DCM_DATA_DIR": str(tmp_path / "data"), "DCM_SECRET": "s"}
    dcm = [sys.executable, "-m", "dcm.cli.main"]
    created = subprocess.run(
        [*dcm, "event", "create", "ev", "--start", "2021-04-09"], env=env, capture_output=True
    )
    assert created.returncode == 0, created.stderr
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *dcm, "ingest", "--event", "ev", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    code, peak_kb = map(int, done.stdout.split())
    assert code == 2
    assert done.stderr.strip().splitlines() == [
        f"dcm: error: {path}: refused: the gzip data inflates more than 100 times (a gzip "
        "bomb? the limit is DCM_MAX_INFLATION_RATIO)"
    ]
    assert peak_kb < 500 * 1024, f"peak {peak_kb / 1024:.0f} MB"
    assert not (tmp_path / "data" / "raw").exists()  # refused before a copy was kept


def _file_size_limit(limit: int):  # type: ignore[no-untyped-def]
    """A ``preexec_fn``: the child may write no file past ``limit`` bytes (a full disk)."""

    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_is_one_line_and_keeps_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env |= {"DCM_DATA_DIR": str(data_dir), "DCM_SECRET": "s"}
    dcm = [sys.executable, "-m", "dcm.cli.main"]
    created = subprocess.run(
        [*dcm, "event", "create", "ev", "--start", "2021-04-09"], env=env, capture_output=True
    )
    assert created.returncode == 0, created.stderr
    path = tmp_path / "m.csv"
    rows = "".join(f"2021-04-09T01:00:00Z,13.2,-61.{i:05d},ok\n" for i in range(20_000))
    path.write_bytes(HEADER + rows.encode())  # 750 kB: more than the disk has room for
    done = subprocess.run(
        [*dcm, "ingest", "--event", "ev", str(path)],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(256 * 1024),
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("dcm: error: ") and "is full, nothing was kept" in line
    assert not any((data_dir / "raw").iterdir())  # no partial copy
    again = subprocess.run(
        [*dcm, "ingest", "--event", "ev", str(path)], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and "20000 added" in again.stdout, again.stderr


def test_dcm_ingest_refuses_a_large_plain_file_unread(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env |= {"DCM_DATA_DIR": str(tmp_path / "data"), "DCM_SECRET": "s"}
    env["DCM_MAX_DECOMPRESSED_BYTES"] = "10000"
    dcm = [sys.executable, "-m", "dcm.cli.main"]
    created = subprocess.run(
        [*dcm, "event", "create", "ev", "--start", "2021-04-09"], env=env, capture_output=True
    )
    assert created.returncode == 0, created.stderr
    path = tmp_path / "m.csv"
    path.write_bytes(HEADER + ROW * 1000)
    done = subprocess.run(
        [*dcm, "ingest", "--event", "ev", str(path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"dcm: error: {path}: refused: larger than 10,000 bytes (after gunzip; the limit is "
        "DCM_MAX_DECOMPRESSED_BYTES): split the file"
    ]
    assert not (tmp_path / "data" / "raw").exists()  # refused before a copy was kept


def test_line_guard_names_the_line_as_the_readers_count_it() -> None:
    from dcm.ingest._source import LineGuard

    # LF, CRLF (cut between two pieces) and a lone CR each end one line.
    text = b"a\nb\r\nc\rd\n" + b"x" * 50 + b"\n"
    for cut in range(1, len(text)):
        guard = LineGuard(40, name="f.csv")
        with pytest.raises(InputTooLarge, match=r"^f\.csv: refused: line 5 is longer than 40"):
            guard.feed(text[:cut])
            guard.feed(text[cut:])
    guard = LineGuard(50, name="f.csv")
    for piece in (text[:4], text[4:]):
        guard.feed(piece)  # exactly 50 bytes: accepted
    assert (guard.line, guard.length) == (6, 0)


def test_line_guard_finds_the_first_long_line_in_pieces_of_any_size() -> None:
    """Pieces longer than the limit are checked by searching back from each stretch's
    end; the line named is the first too long one, as splitting the whole text at LF,
    CRLF and lone CRs finds it (a CRLF may be cut between two pieces)."""
    import re

    import numpy as np

    from dcm.ingest._source import LineGuard

    rng = np.random.default_rng(0)
    for _ in range(2000):
        limit = int(rng.integers(1, 12))
        pieces = [
            bytes(rng.choice(list(b"ab\n\r"), size=int(k), p=[0.4, 0.4, 0.12, 0.08]).astype("u1"))
            for k in rng.integers(0, 40, int(rng.integers(1, 5)))
        ]
        lines = re.split(rb"\r\n|\r|\n", b"".join(pieces))
        want = next((i + 1 for i, line in enumerate(lines) if len(line) > limit), None)
        guard = LineGuard(limit, name="f.csv")
        got = None
        try:
            for piece in pieces:
                guard.feed(piece)
        except InputTooLarge as exc:
            got = int(re.search(r"line ([0-9,]+)", str(exc)).group(1).replace(",", ""))
        assert got == want, (pieces, limit)


@pytest.mark.parametrize("suffix", [".csv", ".ndjson", ".csv.gz"])
def test_a_line_past_the_limit_is_refused_by_every_reader(
    suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcm.ingest.chunks import iter_measurements

    monkeypatch.setenv("DCM_MAX_LINE_BYTES", "1000")
    if ".csv" in suffix:
        good = HEADER + ROW * 3
        text = good + b"2021-04-09T01:00:00Z,13.2,-61.2," + b"o" * 1000 + b"\n" + ROW
    else:
        good = b'{"timestamp":"2021-04-09T01:00:00Z","lat":13.2,"lon":-61.2,"status":"ok"}\n'
        text = good * 4 + b'{"status":"' + b"o" * 1000 + b'"}\n'
    data = gzip.compress(text) if suffix.endswith(".gz") else text
    line = 5
    with pytest.raises(InputTooLarge, match=f"line {line} is longer than 1,000 bytes"):
        read_measurements(data, name=f"long{suffix}")
    if ".csv" in suffix:
        with pytest.raises(InputTooLarge, match=f"line {line} is longer than 1,000 bytes"):
            list(iter_measurements(data, name=f"long{suffix}", chunk_bytes=64))
    # Lines within the limit read as before; a GeoJSON document is not line-based.
    assert read_measurements(good, name=f"ok{suffix.removesuffix('.gz')}").report.accepted
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [-61.2, 13.2 + i / 1000]},
                "properties": {"timestamp": "2021-04-09T01:00:00Z", "status": "ok"},
            }
            for i in range(50)
        ],
    }
    one_line = json.dumps(doc).encode()
    assert len(one_line) > 1000
    assert read_measurements(one_line, name="one.geojson").report.accepted == 50


#: Peak memory of a child process: run a command, print the peak RSS (kB) of its children.
_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


@pytest.mark.parametrize("suffix", [".csv", ".ndjson", ".ndjson.gz"])
def test_dcm_ingest_refuses_a_200_mb_line_in_bounded_memory(suffix: str, tmp_path: Path) -> None:
    size = 200 * 1024**2
    if ".csv" in suffix:
        head, tail = HEADER + b"2021-04-09T01:00:00Z,13.2,-61.2,", b"\n" + ROW
    else:
        head, tail = b'{"timestamp":"2021-04-09T01:00:00Z","status":"', b'"}\n'
    path = tmp_path / f"one-line{suffix}"
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "wb") as out:  # written in pieces: the test holds no 200 MB either
        out.write(head)
        for _ in range(size // (1 << 20)):
            out.write(b"7" * (1 << 20))
        out.write(tail)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    env |= {"DCM_DATA_DIR": str(tmp_path / "data"), "DCM_SECRET": "s"}
    dcm = [sys.executable, "-m", "dcm.cli.main"]
    created = subprocess.run(
        [*dcm, "event", "create", "ev", "--start", "2021-04-09"], env=env, capture_output=True
    )
    assert created.returncode == 0, created.stderr
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *dcm, "ingest", "--event", "ev", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    code, peak_kb = map(int, done.stdout.split())
    assert code == 2
    line = 2 if ".csv" in suffix else 1
    assert done.stderr.strip().splitlines() == [
        f"dcm: error: {path}: refused: line {line} is longer than 1,048,576 bytes (the limit "
        "is DCM_MAX_LINE_BYTES): a CSV or NDJSON file holds one record per line"
    ]
    assert peak_kb < 500 * 1024, f"peak {peak_kb / 1024:.0f} MB"
    assert not (tmp_path / "data" / "raw").exists()  # refused before a copy was kept
