"""Property tests: any bytes, any mangled CSV → rows and a balanced report, or IngestError.

Never another exception, and never a lost row: every data record is accepted, rejected
(with a line inside the file) or counted as a duplicate.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dcm.errors import IngestError
from dcm.ingest import (
    IngestResult,
    read_cells,
    read_gnettrack,
    read_measurements,
    read_towercollector,
    sniff_kind,
)
from dcm.schema import CELL_COLUMNS, MEASUREMENT_COLUMNS

# DCM_FUZZ_EXAMPLES=5000 for a deep run; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("DCM_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HEADER = (
    "timestamp,lat,lon,status,mcc,mnc,radio,area,cell,signal_dbm,download_kbps,"
    "upload_kbps,latency_ms,accuracy_m,measurement_id,device"
)
GOOD_ROW = "2023-05-24T10:00:00Z,13.4,144.7,ok,310,470,LTE,1,2,-90,1000,200,40,5,{i},dev"
CELL_ROW = "LTE,740,1,50404,{i},0,-79.85,-2.07,1000,5,1,1347360297,1382522448,0"


def physical_lines(data: bytes) -> int:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    # Lines end at LF, CRLF or a lone CR (as the readers count them).
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1


def check(result: IngestResult, data: bytes, columns: dict[str, str]) -> None:
    report = result.report
    assert report.rows_in == report.accepted + len(report.rejected) + report.duplicates
    assert len(result.frame) == report.accepted
    assert list(result.frame.columns) == list(columns)
    lines = physical_lines(data)
    assert all(1 <= r.line <= lines for r in report.rejected)
    assert all(r.field and r.reason for r in report.rejected)


def run(reader, data: bytes, columns: dict[str, str], **kw) -> None:  # type: ignore[no-untyped-def]
    try:
        result = reader(io.BytesIO(data), name="fuzz", **kw)
    except IngestError as exc:
        assert str(exc).startswith("fuzz: ")
        return
    check(result, data, columns)


@FUZZ
@given(st.binary(max_size=2000))
def test_measurements_from_arbitrary_bytes(data: bytes) -> None:
    run(read_measurements, data, MEASUREMENT_COLUMNS, format="csv")
    run(read_measurements, data, MEASUREMENT_COLUMNS)


@FUZZ
@given(st.binary(max_size=2000))
def test_cells_and_app_logs_from_arbitrary_bytes(data: bytes) -> None:
    run(read_cells, data, CELL_COLUMNS)
    run(read_towercollector, data, MEASUREMENT_COLUMNS)
    run(read_gnettrack, data, MEASUREMENT_COLUMNS, timezone="UTC")
    with contextlib.suppress(IngestError):
        sniff_kind(io.BytesIO(data), name="fuzz")


# Mangling operations applied to a valid file, as they happen to real exports.
_noise = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def mangled(draw: st.DrawFn, header: str | None, row: str) -> bytes:
    n = draw(st.integers(min_value=0, max_value=25))
    lines = ([header] if header else []) + [row.format(i=i) for i in range(n)]
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        if not lines:
            break
        k = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from(["replace", "insert", "cut", "dup", "quote", "drop", "blank"]))
        fields = lines[k].split(",")
        if op == "replace":
            j = draw(st.integers(min_value=0, max_value=len(fields) - 1))
            fields[j] = draw(_noise)
            lines[k] = ",".join(fields)
        elif op == "insert":
            lines[k] = lines[k] + "," + draw(_noise)
        elif op == "cut":
            lines[k] = lines[k][: draw(st.integers(min_value=0, max_value=len(lines[k])))]
        elif op == "dup":
            lines.insert(k, lines[k])
        elif op == "quote":
            pos = draw(st.integers(min_value=0, max_value=len(lines[k])))
            lines[k] = lines[k][:pos] + '"' + lines[k][pos:]
        elif op == "drop":
            del lines[k]
        else:
            lines.insert(k, "")
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    data = (ending.join(lines) + draw(st.sampled_from(["", ending]))).encode("utf-8")
    if draw(st.booleans()):
        data = gzip.compress(data)
    return data


@FUZZ
@given(mangled(HEADER, GOOD_ROW))
def test_mangled_measurement_csv(data: bytes) -> None:
    run(read_measurements, data, MEASUREMENT_COLUMNS, format="csv")


@FUZZ
@given(mangled(None, CELL_ROW))
def test_mangled_cell_export(data: bytes) -> None:
    run(read_cells, data, CELL_COLUMNS)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=39), max_size=6, unique=True))
def test_every_good_row_survives_next_to_bad_ones(bad: list[int]) -> None:
    """Rows broken on purpose are reported at their line; all others are kept."""
    lines = [HEADER]
    for i in range(40):
        lines.append(
            GOOD_ROW.format(i=i).replace("13.4", "x") if i in bad else GOOD_ROW.format(i=i)
        )
    data = ("\n".join(lines) + "\n").encode()
    result = read_measurements(io.BytesIO(data), name="fuzz")
    assert sorted(r.line for r in result.report.rejected) == sorted(i + 2 for i in bad)
    kept = pd.to_numeric(result.frame["measurement_id"]).tolist()
    assert kept == [i for i in range(40) if i not in bad]


_RECORD = (
    '{{"timestamp": "2023-05-24T10:00:00Z", "lat": 13.4, "lon": 144.7, "status": "ok", '
    '"mcc": 310, "mnc": 470, "measurement_id": "m{i}"}}'
)
_FEATURE = (
    '{{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [144.7, 13.4]}}, '
    '"properties": {{"timestamp": "2023-05-24T10:00:00Z", "status": "ok", "cell": {i}}}}}'
)


@FUZZ
@given(st.sampled_from([_RECORD, _FEATURE]).flatmap(lambda row: mangled(None, row)))
def test_mangled_ndjson(data: bytes) -> None:
    run(read_measurements, data, MEASUREMENT_COLUMNS, format="ndjson")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.builds(lambda v: {"type": "Feature", "geometry": v, "properties": {}}, _JSON),
            st.builds(lambda v: {"timestamp": v, "lat": v, "lon": 1, "status": "ok"}, _JSON),
            st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
@example(
    records=[{"type": "Feature", "geometry": {"": [None, None]}, "properties": {}}],
    as_collection=False,
)
def test_odd_json_values(records: list[object], as_collection: bool) -> None:
    """Any geometry or field value, and nesting far deeper than Python's recursion
    limit: rows and a report, or one IngestError, never a crash."""
    texts = [r if isinstance(r, str) else json.dumps(r) for r in records]
    if as_collection:
        # One feature a line: reported "lines" of GeoJSON are feature numbers.
        collection = '{"type": "FeatureCollection", "features": [\n' + ",\n".join(texts)
        data = (collection + "\n]}").encode()
        run(read_measurements, data, MEASUREMENT_COLUMNS, format="geojson")
    else:
        run(read_measurements, "\n".join(texts).encode(), MEASUREMENT_COLUMNS, format="ndjson")
