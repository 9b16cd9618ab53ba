"""Measurements read in chunks: the same rows and the same bad-row report, line for line,
as the whole-file reader, wherever the chunk boundaries fall."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from dcm.errors import IngestError
from dcm.ingest import read_measurements
from dcm.ingest.chunks import (
    MeasurementSpool,
    combine_chunks,
    iter_measurements,
    spool_measurements,
)

HEADER = (
    "timestamp,lat,lon,status,mcc,mnc,radio,area,cell,signal_dbm,download_kbps,"
    "upload_kbps,latency_ms,accuracy_m,measurement_id,device"
)


def _row(i: int, **changes: object) -> str:
    values = {
        "timestamp": f"2023-05-{1 + i % 3:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "lat": f"{13.3 + i * 1e-4:.6f}",
        "lon": f"{144.7 + i * 1e-4:.6f}",
        "status": ("ok", "no_service", "failed")[i % 3],
        "mcc": "310",
        "mnc": "470",
        "radio": "LTE",
        "area": "12",
        "cell": str(1000 + i % 17),
        "signal_dbm": "-95.5",
        "download_kbps": "12000",
        "upload_kbps": "",
        "latency_ms": "45",
        "accuracy_m": "8",
        "measurement_id": f"m{i}",
        "device": f"phone-{i % 7}",
    }
    values.update({k: str(v) for k, v in changes.items()})
    return ",".join(values[c] for c in HEADER.split(","))


def _messy_lines(n: int = 300) -> list[str]:
    """Good rows with bad ones every few lines: wrong field counts, bad values, empty
    lines, a quoted value spanning lines, copies near and far (by id and by content)."""
    lines = [HEADER]
    for i in range(n):
        if i % 23 == 5:
            lines.append(_row(i, lat="91.5"))
        elif i % 29 == 7:
            lines.append(_row(i) + ",extra")
        elif i % 31 == 3:
            lines.append(_row(i, status="maybe"))
        elif i % 37 == 11:
            lines.append("")
        elif i % 41 == 13:
            lines.append(_row(i, device='"two\nline device"'))
        elif i % 43 == 17:
            lines.append(_row(i - 40))  # a copy of an earlier row (same id)
        elif i % 47 == 19:
            lines.append(_row(i, measurement_id="", timestamp="2023-05-02T00:00:00Z"))
        else:
            lines.append(_row(i))
    lines.append(_row(400, measurement_id="", timestamp="2023-05-02T00:00:00Z"))
    lines.append(_row(5))  # a copy of a row hundreds of lines back
    return lines


def _assert_same(whole, chunked) -> None:  # type: ignore[no-untyped-def]
    pd.testing.assert_frame_equal(whole.frame, chunked.frame)
    assert chunked.report.to_dict() == whole.report.to_dict()


@pytest.mark.parametrize(
    ("chunk_bytes", "ending"), [(1, "\n"), (150, "\r\n"), (700, "\n"), (1 << 24, "\r\n")]
)
def test_chunks_give_the_whole_file_rows_and_report(
    tmp_path: Path, chunk_bytes: int, ending: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes((ending.join(_messy_lines()) + ending).encode())
    whole = read_measurements(path)
    assert whole.report.rejected_count > 20 and whole.report.duplicates >= 3
    chunks = list(iter_measurements(path, chunk_bytes=chunk_bytes))
    if chunk_bytes < 4096:
        assert len(chunks) > 10  # the bad rows really are spread over many chunks
    # Each chunk's rejected rows carry their line in the whole file.
    lines = [r.line for c in chunks for r in c.report.rejected]
    assert lines == sorted(lines)
    _assert_same(whole, combine_chunks(chunks, name=str(path)))
    text = path.read_bytes().decode().replace("\r\n", "\n").split("\n")
    for rejected in whole.report.rejected[:5]:
        assert text[rejected.line - 1].startswith(rejected.raw[:20])


def test_chunks_of_a_gzip_file_and_of_bytes(tmp_path: Path) -> None:
    body = ("\n".join(_messy_lines(2000)) + "\n").encode()
    path = tmp_path / "m.csv.gz"
    path.write_bytes(gzip.compress(body))
    whole = read_measurements(path)
    _assert_same(
        whole, combine_chunks(list(iter_measurements(path, chunk_bytes=999)), name=str(path))
    )
    chunks = list(iter_measurements(body, name=str(path), chunk_bytes=999))
    assert len(chunks) > 50
    _assert_same(whole, combine_chunks(chunks, name=str(path)))


@pytest.mark.parametrize(("chunk_bytes", "batch_rows"), [(700, 7), (150, 1000), (1 << 24, 40)])
def test_spooled_chunks_give_the_whole_file_rows_and_report(
    tmp_path: Path, chunk_bytes: int, batch_rows: int
) -> None:
    """What ``dcm ingest`` keeps of a chunked read: copies across chunks (by id and by
    content) dropped as the whole-file reader drops them, the rows given back in
    batches of ``batch_rows`` from a file (or from memory when they fit one batch),
    the same report line for line."""
    path = tmp_path / "m.csv"
    path.write_bytes(("\n".join(_messy_lines(600)) + "\n").encode())
    whole = read_measurements(path)
    spool_dir = tmp_path / "spool"
    with MeasurementSpool(folder=spool_dir, batch_rows=batch_rows) as spool:
        report = spool_measurements(
            iter_measurements(path, chunk_bytes=chunk_bytes), spool, name=str(path)
        )
        batches = list(spool.batches())
        assert not list(spool_dir.glob("*"))  # the file is unlinked from the start
    assert report.to_dict() == whole.report.to_dict()
    assert report.duplicates > 3
    assert max(len(b) for b in batches) <= batch_rows
    assert len(batches) >= -(-len(whole.frame) // batch_rows)
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole.frame)


def test_an_empty_spool_gives_one_empty_batch(tmp_path: Path) -> None:
    with MeasurementSpool(folder=tmp_path, batch_rows=10) as spool:
        (batch,) = spool.batches()
    assert batch.empty and list(batch.columns) == list(
        read_measurements((HEADER + "\n").encode(), name="h.csv").frame.columns
    )


def test_a_lone_carriage_return_at_a_block_end_counts_once(tmp_path: Path) -> None:
    # Old Mac line ends and a CRLF cut between its two bytes by the block size.
    lines = _messy_lines(60)
    path = tmp_path / "m.csv"
    path.write_bytes(("\r".join(lines[:30]) + "\r\n" + "\r\n".join(lines[30:]) + "\r").encode())
    whole = read_measurements(path)
    for size in range(40, 400, 90):
        _assert_same(
            whole, combine_chunks(list(iter_measurements(path, chunk_bytes=size)), name=str(path))
        )


def test_other_formats_are_one_chunk_and_errors_are_one_line(tmp_path: Path) -> None:
    geo = tmp_path / "m.geojson"
    geo.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":'
        '{"type":"Point","coordinates":[144.7,13.3]},"properties":'
        '{"timestamp":"2023-05-01T00:00:00Z","status":"ok"}}]}'
    )
    (chunk,) = iter_measurements(geo, chunk_bytes=10)
    assert len(chunk.frame) == 1
    with pytest.raises(IngestError, match="file not found"):
        list(iter_measurements(tmp_path / "missing.csv"))
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(IngestError, match="empty file"):
        list(iter_measurements(empty, chunk_bytes=1))
    header_only = tmp_path / "header.csv"
    header_only.write_text(HEADER + "\n")
    (chunk,) = iter_measurements(header_only, chunk_bytes=5)
    assert chunk.report.rows_in == 0


@pytest.mark.parametrize("chunk_bytes", [1, 333, 4096])
def test_chunks_of_an_all_quoted_file_with_values_over_lines(
    tmp_path: Path, chunk_bytes: int
) -> None:
    """Every field quoted (as pyarrow and spreadsheets write text), values spanning
    lines and quotes inside values: chunks end only where records end."""
    lines = _messy_lines(200)
    quoted = [
        ",".join(f'"{v}"' if '"' not in v else v for v in line.split(","))
        if line and not line.startswith(HEADER)
        else line
        for line in lines
    ]
    quoted[50] = quoted[50].replace('"phone-', '"pho""ne\n-')  # "" inside, a newline
    path = tmp_path / "q.csv"
    path.write_bytes(("\n".join(quoted) + "\n").encode())
    whole = read_measurements(path)
    assert whole.report.rejected_count > 10
    chunks = list(iter_measurements(path, chunk_bytes=chunk_bytes))
    assert len(chunks) > 3
    _assert_same(whole, combine_chunks(chunks, name=str(path)))
