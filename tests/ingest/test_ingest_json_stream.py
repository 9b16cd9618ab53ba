"""GeoJSON, NDJSON and Parquet read in chunks: the same rows and the same bad-row report,
line (feature, row) for line, as the whole-file reader, wherever the chunks end; a large
one-line FeatureCollection read in bounded memory."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcm.errors import IngestError, InputTooLarge
from dcm.ingest import read_measurements
from dcm.ingest._json import MAX_JSON_DEPTH, iter_geojson
from dcm.ingest.chunks import combine_chunks, iter_measurements


def _record(i: int) -> dict[str, object]:
    """A real-shaped measurement with a bad one every few records: values out of range,
    naive times, missing fields, copies near and far (by id and by content), ids that are
    numbers, and text holding JSON's own brackets, quotes, backslashes and non-ASCII."""
    rec: dict[str, object] = {
        "timestamp": f"2023-05-{1 + i % 3:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "lat": round(13.3 + i * 1e-4, 6),
        "lon": round(144.7 + i * 1e-4, 6),
        "status": ("ok", "no_service", "failed")[i % 3],
        "mcc": 310,
        "mnc": 470,
        "radio": ("LTE", "UMTS", "NR")[i % 3],
        "cell": 1000 + i % 17,
        "signal_dbm": -95.5,
        "measurement_id": f"m{i}" if i % 11 else i,
        "device": ("phone-1", 'q"u,o]t}e\\', "Bogotá ☎ [1]", "\\\\")[i % 4],
    }
    if i % 23 == 5:
        rec["lat"] = 91.5
    elif i % 29 == 7:
        rec["timestamp"] = "2023-05-01T10:00:00"  # naive
    elif i % 31 == 3:
        rec["status"] = "maybe"
    elif i % 37 == 11:
        del rec["status"]
    elif i % 43 == 17:
        rec = _record(i - 40)  # a copy of an earlier record (same id)
    elif i % 47 == 19:
        rec["measurement_id"] = None  # copies by content, far apart
        rec["timestamp"] = "2023-05-02T00:00:00Z"
        rec["lat"], rec["lon"], rec["device"] = 13.0, 144.0, "same"
    return rec


def _feature(i: int) -> object:
    rec = _record(i)
    lon, lat = rec.pop("lon"), rec.pop("lat")
    geometry: object = {"type": "Point", "coordinates": [lon, lat]}
    if i % 53 == 9:
        geometry = {"type": "LineString", "coordinates": [[lon, lat], [lon, lat]]}
    elif i % 59 == 21:
        geometry = None
    elif i % 61 == 33:
        return ["not", "a", "feature"]
    return {"type": "Feature", "geometry": geometry, "properties": rec}


N = 200


def _collection(indent: int | None = None, n: int = N) -> bytes:
    doc = {
        "type": "FeatureCollection",
        "name": 'a "features": [ decoy',
        "features": [_feature(i) for i in range(n)],
        "bbox": [144.7, 13.3, 144.8, 13.4],
    }
    return json.dumps(doc, indent=indent, ensure_ascii=False).encode()


def _same(whole, chunked) -> None:  # type: ignore[no-untyped-def]
    pd.testing.assert_frame_equal(whole.frame, chunked.frame)
    assert chunked.report.to_dict() == whole.report.to_dict()


def test_streamed_geojson_equals_the_same_features_read_as_ndjson(tmp_path: Path) -> None:
    """Independent of the streaming parser: NDJSON of one feature a line goes through
    pyarrow or json.loads line by line; its lines are the feature numbers."""
    ndjson = tmp_path / "m.ndjson"
    ndjson.write_text("\n".join(json.dumps(_feature(i), ensure_ascii=False) for i in range(N)))
    want = read_measurements(ndjson)
    assert want.report.rejected_count > 20 and want.report.duplicates >= 3
    assert {r.field for r in want.report.rejected} >= {"geometry", "row", "lat", "status"}
    for indent in (None, 2):
        path = tmp_path / f"m{indent}.geojson"
        path.write_bytes(_collection(indent))
        got = read_measurements(path)
        pd.testing.assert_frame_equal(got.frame, want.frame)
        assert got.report.to_dict() | {"path": ""} == want.report.to_dict() | {"path": ""}
    # An id given as a number reads as that number's text, as pyarrow reads it.
    assert "0" in set(want.frame["measurement_id"])


@pytest.mark.parametrize(("chunk_bytes", "indent"), [(1, None), (3000, 1), (1 << 24, None)])
def test_geojson_chunks_give_the_whole_file_rows_and_report(
    tmp_path: Path, chunk_bytes: int, indent: int | None
) -> None:
    path = tmp_path / "m.geojson.gz"
    path.write_bytes(gzip.compress(_collection(indent)))
    whole = read_measurements(path)
    chunks = list(iter_measurements(path, chunk_bytes=chunk_bytes))
    if chunk_bytes < 4096:
        assert len(chunks) > 20  # bad features and copies fall in many chunks
    lines = [r.line for c in chunks for r in c.report.rejected]
    assert lines == sorted(lines)
    _same(whole, combine_chunks(chunks, name=str(path)))
    feature = json.loads(_collection())["features"]
    for rejected in whole.report.rejected:
        assert json.dumps(feature[rejected.line - 1])[:30] == rejected.raw[:30]


def test_geojson_batches_hold_at_most_n_features() -> None:
    data = _collection()
    blocks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    parts = list(iter_geojson(blocks, "m.geojson", max_features=7))
    assert [len(p[1]) + len(p[3]) for p in parts] == [7] * (N // 7) + [N % 7]
    numbers = np.concatenate([np.r_[p[1], [r.line for r in p[3]]] for p in parts])
    assert sorted(numbers.tolist()) == list(range(1, N + 1))


def test_a_required_column_seen_only_in_later_chunks(tmp_path: Path) -> None:
    """Whole-file columns are those of all features: a chunk without any "status"
    rejects its rows one by one, as the whole file does; no status anywhere is a file
    error either way."""
    features = [_feature(i) for i in range(200)]
    for f in features[:150]:
        if isinstance(f, dict):
            f["properties"].pop("status", None)
    path = tmp_path / "m.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    whole = read_measurements(path)
    assert sum(r.field == "status" for r in whole.report.rejected) > 100
    _same(whole, combine_chunks(list(iter_measurements(path, chunk_bytes=4000)), name=str(path)))
    for f in features[150:]:
        if isinstance(f, dict):
            f["properties"].pop("status", None)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    for read in (
        lambda: read_measurements(path),
        lambda: list(iter_measurements(path, chunk_bytes=4000)),
    ):
        with pytest.raises(IngestError, match=r"missing required columns \['status'\]"):
            read()


def _json_error(data: bytes) -> str:
    try:
        json.loads(data)
    except ValueError as exc:
        return f"not valid GeoJSON ({exc})"
    raise AssertionError("valid JSON")


@pytest.mark.parametrize(
    "damage",
    [
        ("  },\n  {", "  },,\n  {"),  # an empty element
        ('"features": [\n', '"features": [\n,'),  # a comma before the first feature
        ("  }\n ],", "  },\n ],"),  # a trailing comma
        ('"status": "ok"', '"status": "ok'),  # a string left open
        ('"mnc": 470', '"mnc" 470'),  # no colon
        ("  }\n ],", "  }\n },"),  # the array closed by a brace
        ('"bbox"', "bbox"),  # after the features
        ("13.3\n", "13.3\xff\n"),  # not UTF-8
    ],
)
@pytest.mark.parametrize("chunk_bytes", [1, 700, 1 << 24])
def test_invalid_json_is_named_where_json_names_it(
    damage: tuple[str, str], chunk_bytes: int
) -> None:
    text = _collection(indent=1, n=40).decode()
    old, new = damage
    at = text.index(old) if old in ('"bbox"', '"features": [\n') else text.rindex(old)
    data = (text[:at] + new + text[at + len(old) :]).encode().replace(b"\xc3\xbf", b"\xff")
    with pytest.raises(IngestError) as caught:
        list(iter_measurements(data, name="m.geojson", chunk_bytes=chunk_bytes))
    assert str(caught.value) == "m.geojson: " + _json_error(data)


def test_nesting_too_deep_is_refused_with_its_line() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    feature = json.dumps(_feature(1))
    one_line = f'{{"type":"FeatureCollection","features":[{feature},{deep}]}}'.encode()
    lines = (
        '{"type":"FeatureCollection","features":[\n' + feature + ",\n" + deep + "\n]}"
    ).encode()
    for data, line in ((one_line, 1), (lines, 3)):
        for size in (1, 50, 1 << 24):
            with pytest.raises(
                IngestError, match=rf"more than {MAX_JSON_DEPTH} levels deep \(line {line}\)"
            ):
                list(iter_measurements(data, name="m.geojson", chunk_bytes=size))
    # Deep but spread over lines (pretty-printed): read, as json.loads reads it.
    nested: object = 1
    for _ in range(MAX_JSON_DEPTH + 5):
        nested = [nested]
    doc = {"type": "FeatureCollection", "features": [_feature(1), {"deep": nested}]}
    result = read_measurements(json.dumps(doc, indent=1).encode(), name="m.geojson")
    assert result.report.rows_in == 2


def test_single_features_and_odd_collections() -> None:
    one = json.dumps(_feature(1)).encode()
    assert read_measurements(one, name="m.geojson").report.accepted == 1
    # A Feature whose type comes first and that carries a "features" member of its own.
    odd = dict(_feature(2), features=[_feature(3), _feature(4)])  # type: ignore[arg-type]
    result = read_measurements(json.dumps(odd).encode(), name="m.geojson")
    assert result.report.rows_in == 1
    empty = b'{"type": "FeatureCollection", "features": []}'
    with pytest.raises(IngestError, match="missing required columns"):
        read_measurements(empty, name="m.geojson")
    twice = b'{"type":"FeatureCollection","features":[],"features":null}'
    with pytest.raises(IngestError, match="'features' given twice"):
        read_measurements(twice, name="m.geojson")
    for data in (b"[1, 2]", b'{"type": "FeatureCollection"}', b'{"features": 5}'):
        with pytest.raises(IngestError, match="not a GeoJSON FeatureCollection"):
            read_measurements(data, name="m.geojson")
    bom = b"\xef\xbb\xbf" + _collection()
    _same(read_measurements(_collection(), name="m"), read_measurements(bom, name="m"))


def test_a_feature_longer_than_the_line_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCM_MAX_LINE_BYTES", "5000")
    features = [_feature(i) for i in range(30)]
    features[20]["properties"]["device"] = "x" * 6000  # type: ignore[index]
    data = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    for read in (
        lambda: read_measurements(data, name="m.geojson"),
        lambda: list(iter_measurements(data, name="m.geojson", chunk_bytes=300)),
    ):
        with pytest.raises(InputTooLarge, match="feature 21 is longer than 5,000 bytes"):
            read()


def _ndjson_lines() -> list[str]:
    lines = []
    for i in range(N):
        if i % 41 == 13:
            lines.append("{not json")
        elif i % 43 == 8:
            lines.append("")
        elif i % 47 == 30:
            lines.append("[" * (MAX_JSON_DEPTH + 2) + "]" * (MAX_JSON_DEPTH + 2))
        else:
            item = _record(i) if i % 2 else _feature(i)
            lines.append(json.dumps(item, ensure_ascii=i % 3 == 0))
    return lines


@pytest.mark.parametrize(
    ("chunk_bytes", "ending"), [(1, "\n"), (333, "\r\n"), (4000, "\r"), (1 << 24, "\n")]
)
def test_ndjson_chunks_give_the_whole_file_rows_and_report(
    tmp_path: Path, chunk_bytes: int, ending: str
) -> None:
    lines = _ndjson_lines()
    path = tmp_path / "m.ndjson"
    path.write_bytes((ending.join(lines) + ending).encode())
    whole = read_measurements(path)
    assert whole.report.rejected_count > 20 and whole.report.duplicates >= 3
    chunks = list(iter_measurements(path, chunk_bytes=chunk_bytes))
    if chunk_bytes < 4096:
        assert len(chunks) > 10
    _same(whole, combine_chunks(chunks, name=str(path)))
    for rejected in whole.report.rejected:
        assert lines[rejected.line - 1].startswith(rejected.raw[:20])


def test_clean_ndjson_chunks_match_the_fast_whole_file_path(tmp_path: Path) -> None:
    """A clean file: pyarrow reads the whole file and each chunk alike."""
    path = tmp_path / "m.jsonl.gz"
    rows = [_feature(i) for i in range(N) if i % 61 != 33] + [_record(i) for i in range(N)]
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    whole = read_measurements(path)
    _same(whole, combine_chunks(list(iter_measurements(path, chunk_bytes=2000)), name=str(path)))


def test_ndjson_without_any_json_line_is_refused_once_read_through() -> None:
    data = b"not json\n{still not\n" * 50
    with pytest.raises(IngestError, match="no line is valid JSON"):
        read_measurements(data, name="m.ndjson")
    with pytest.raises(IngestError, match="no line is valid JSON"):
        list(iter_measurements(data, name="m.ndjson", chunk_bytes=30))
    # Bad lines in the first chunks, good ones later: the file is read.
    good = json.dumps(_record(1)).encode()
    chunks = list(iter_measurements(data + good, name="m.ndjson", chunk_bytes=30))
    assert sum(c.report.accepted for c in chunks) == 1


def _parquet(tmp_path: Path) -> Path:
    frame = pd.DataFrame([_record(i) for i in range(N)])
    frame["measurement_id"] = frame["measurement_id"].astype("string")
    frame["timestamp"] = frame["timestamp"].astype("string")
    frame.loc[frame.index % 13 == 4, "lon"] = np.nan
    frame = frame.astype({"mcc": "Int64", "mnc": "Int64", "cell": "Int64"})
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=64)
    return path


@pytest.mark.parametrize("batch_rows", [3, 64, 1000])
def test_parquet_batches_give_the_whole_file_rows_and_report(
    tmp_path: Path, batch_rows: int
) -> None:
    path = _parquet(tmp_path)
    whole = read_measurements(path)
    assert whole.report.rejected_count > 20 and whole.report.duplicates >= 3
    chunks = list(iter_measurements(path, batch_rows=batch_rows))
    assert len(chunks) == -(-N // batch_rows)
    _same(whole, combine_chunks(chunks, name=str(path)))
    # From bytes and from gzip too (read into memory, then by batches).
    gz = tmp_path / "m.parquet.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for source in (gz, path.read_bytes()) if batch_rows == 64 else ():
        chunks = list(iter_measurements(source, name=str(path), batch_rows=batch_rows))
        _same(whole, combine_chunks(chunks, name=str(path)))


def test_unreadable_parquet_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(IngestError, match="not a readable Parquet file"):
        list(iter_measurements(path))
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame([_record(1)]).iloc[:0]), empty)
    (chunk,) = iter_measurements(empty)
    assert chunk.report.rows_in == 0


#: Peak memory of a child process: run a command, print the peak RSS (kB) of its children.
_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " done.stdout.strip())\n"
)
_STREAM = (
    "import sys\n"
    "from dcm.ingest.chunks import iter_measurements\n"
    "n = [0, 0, 0]\n"
    "for c in iter_measurements(sys.argv[1]):\n"
    "    n[0] += c.report.rows_in; n[1] += c.report.accepted; n[2] += len(c.report.rejected)\n"
    "print(*n)\n"
)


@pytest.mark.slow
def test_a_large_one_line_collection_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """About 120 MB of features on one line (the whole-file json.loads peaked near
    1.4 GB on it): read chunk by chunk (as dcm compare and dcm convert read it) under
    400 MB of peak RSS, every feature counted."""
    path = tmp_path / "one-line.geojson"
    template = json.dumps(_feature(1), separators=(",", ":"))
    n = 0
    with path.open("w") as out:  # written in pieces: the test holds no 120 MB either
        out.write('{"type":"FeatureCollection","features":[')
        while out.tell() < 120 * 1024**2:
            out.write(
                ("," if n else "")
                + ",".join(template.replace('"m1"', f'"m{n + k}"') for k in range(10_000))
            )
            n += 10_000
        out.write("]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-c", _STREAM, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    code, peak_kb, *counts = done.stdout.split()
    assert int(code) == 0, done.stderr
    assert list(map(int, counts)) == [n, n, 0]
    assert int(peak_kb) < 400 * 1024, f"peak RSS {int(peak_kb) / 1024:.0f} MB"


def test_read_measurements_streams_uploads_of_geojson() -> None:
    """An upload stream (not seekable) is read whole first, then parsed as a stream."""

    class Upload(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    data = _collection()
    want = read_measurements(io.BytesIO(data), name="upload")
    _same(want, read_measurements(Upload(data), name="upload"))


def test_documents_read_whole_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A features array that opens late, or a document that is no collection, is read
    whole, within a bound; past it, one clear refusal."""
    from dcm.ingest import _json

    monkeypatch.setattr(_json, "_HEAD_BYTES", 2000)
    monkeypatch.setattr(_json, "MAX_DOCUMENT_BYTES", 20_000)
    late = {"type": "FeatureCollection", "crs": "y" * 3000, "features": [_feature(1)]}
    assert read_measurements(json.dumps(late).encode(), name="m.geojson").report.accepted == 1
    too_big = {"crs": "y" * 30_000, "features": [_feature(1)]}
    with pytest.raises(InputTooLarge, match="more than 0 MiB of JSON outside the 'features'"):
        read_measurements(json.dumps(too_big).encode(), name="m.geojson")
    beside = {"type": "FeatureCollection", "features": [_feature(1)], "crs": "y" * 30_000}
    with pytest.raises(InputTooLarge, match="outside the 'features' array"):
        read_measurements(json.dumps(beside).encode(), name="m.geojson")
