"""The same measurements as CSV, GeoJSON, Parquet and NDJSON give the same frame."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from dcm.errors import IngestError
from dcm.ingest import read_measurements
from dcm.ingest.measurements import guess_format

RECORDS = [
    {
        "timestamp": "2023-05-24T10:00:00Z",
        "lat": 13.4,
        "lon": 144.7,
        "status": "ok",
        "mcc": 310,
        "mnc": 470,
        "radio": "LTE",
        "area": 12,
        "cell": 330241,
        "signal_dbm": -95.0,
        "measurement_id": "a",
        "device": "p1",
    },
    {
        "timestamp": "2023-05-24T11:00:00+10:00",
        "lat": 13.5,
        "lon": 144.8,
        "status": "no_service",
        "measurement_id": "b",
        "device": "p2",
    },
    {  # bad: latitude out of range (record 3)
        "timestamp": "2023-05-24T12:00:00Z",
        "lat": 113.5,
        "lon": 144.8,
        "status": "ok",
        "measurement_id": "c",
    },
]


def as_csv(tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    pd.DataFrame(RECORDS).to_csv(path, index=False)
    return path


def as_geojson(tmp_path: Path) -> Path:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {k: v for k, v in r.items() if k not in ("lat", "lon")},
        }
        for r in RECORDS
    ]
    path = tmp_path / "m.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def as_ndjson(tmp_path: Path) -> Path:
    path = tmp_path / "m.ndjson.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in RECORDS).encode()))
    return path


def as_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "m.parquet"
    frame = pd.DataFrame(RECORDS)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame.astype({"mcc": "Int64", "mnc": "Int64", "area": "Int64", "cell": "Int64"}).to_parquet(
        path
    )
    return path


@pytest.mark.parametrize("writer", [as_geojson, as_ndjson, as_parquet])
def test_formats_agree_with_csv(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    expected = read_measurements(as_csv(tmp_path))
    got = read_measurements(writer(tmp_path))
    pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert got.report.accepted == 2
    assert [(r.line, r.field) for r in got.report.rejected] == [(3, "lat")]


def test_geojson_non_points_are_rejected(tmp_path: Path) -> None:
    doc = json.loads(as_geojson(tmp_path).read_text())
    doc["features"][0]["geometry"] = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
    result = read_measurements(io.BytesIO(json.dumps(doc).encode()), format="geojson")
    assert [(r.line, r.field) for r in result.report.rejected] == [(1, "geometry"), (3, "lat")]


def test_ndjson_bad_json_lines_are_rejected(tmp_path: Path) -> None:
    lines = [json.dumps(RECORDS[0]), "{not json", "", json.dumps(RECORDS[1])]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines))
    result = read_measurements(path)
    assert result.report.accepted == 2
    assert [(r.line, r.field) for r in result.report.rejected] == [(2, "row")]


def test_format_guessing() -> None:
    assert guess_format("x.csv.gz", b"") == "csv"
    assert guess_format("upload", b"PAR1....") == "parquet"
    assert guess_format("upload", b'{"type": "FeatureCollection",\n "features": []}') == "geojson"
    assert guess_format("upload", b'{"timestamp": "x"}\n{"timestamp": "y"}\n') == "ndjson"
    assert guess_format("upload", b"timestamp,lat\n") == "csv"


@pytest.mark.parametrize(
    ("name", "content"),
    [("m.geojson", b"{broken"), ("m.parquet", b"PAR1 not really"), ("m.geojson", b"[1, 2]")],
)
def test_unreadable_json_and_parquet(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError):
        read_measurements(path)


def test_ndjson_fast_and_exact_paths_agree(tmp_path: Path) -> None:
    """A clean NDJSON file goes through pyarrow's reader, one broken line through the
    line-by-line path; both give the same rows for the same records."""
    from dcm.ingest import _json

    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {k: v for k, v in r.items() if k not in ("lat", "lon")},
        }
        for r in RECORDS
    ]
    features.append({"type": "Feature", "geometry": None, "properties": {}})
    lines = [json.dumps(f) for f in features]
    clean = ("\n".join(lines) + "\n\n").encode()
    assert _json._ndjson_arrow(clean) is not None  # the vectorised path takes it
    broken = ("\n".join([*lines, "{oops"]) + "\n").encode()
    assert _json._ndjson_arrow(broken) is None
    fast = read_measurements(io.BytesIO(clean), format="ndjson")
    exact = read_measurements(io.BytesIO(broken), format="ndjson")
    pd.testing.assert_frame_equal(fast.frame, exact.frame)
    assert [(r.line, r.field) for r in fast.report.rejected] == [(3, "lat"), (4, "geometry")]
    assert [(r.line, r.field) for r in exact.report.rejected] == [
        (3, "lat"), (4, "geometry"), (5, "row"),
    ]  # fmt: skip
    assert fast.frame["measurement_id"].tolist() == ["a", "b"]
