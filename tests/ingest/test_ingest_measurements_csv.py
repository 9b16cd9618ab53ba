"""Canonical measurement CSV: field rules, line-numbered rejects, duplicates, hashing."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcm.errors import IngestError
from dcm.ingest import IngestReport, RejectedRow, read_measurements
from dcm.schema import MEASUREMENT_COLUMNS, validate_frame

HEADER = (
    "timestamp,lat,lon,status,mcc,mnc,radio,area,cell,signal_dbm,download_kbps,"
    "upload_kbps,latency_ms,accuracy_m,measurement_id,device"
)


def row(i: int, **changes: object) -> str:
    values = {
        "timestamp": f"2023-05-24T{i % 24:02d}:{i % 60:02d}:00Z",
        "lat": f"{13.3 + i * 1e-4:.6f}",
        "lon": f"{144.7 + i * 1e-4:.6f}",
        "status": "ok",
        "mcc": "310",
        "mnc": "470",
        "radio": "LTE",
        "area": "12",
        "cell": str(1000 + i),
        "signal_dbm": "-95.5",
        "download_kbps": "12000",
        "upload_kbps": "3000",
        "latency_ms": "45",
        "accuracy_m": "8",
        "measurement_id": f"m{i}",
        "device": f"phone-{i % 7}",
    }
    values.update({k: str(v) for k, v in changes.items()})
    return ",".join(values[c] for c in HEADER.split(","))


def write(tmp_path: Path, lines: list[str], name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_clean_file_matches_the_contract(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER] + [row(i) for i in range(50)])
    result = read_measurements(path)
    frame = result.frame
    assert list(frame.columns) == list(MEASUREMENT_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in MEASUREMENT_COLUMNS.items()
    }
    validate_frame(frame, MEASUREMENT_COLUMNS, name="measurements")
    assert len(frame) == 50
    assert (frame["network"] == "310-470").all()
    assert frame["cell"].tolist() == list(range(1000, 1050))
    assert result.report.rows_in == result.report.accepted == 50
    assert result.report.kind == "measurements"


def test_offsets_become_utc_and_naive_times_are_rejected(tmp_path: Path) -> None:
    lines = [
        HEADER,
        row(0, timestamp="2023-05-24T10:00:00+10:00"),
        row(1, timestamp="2023-05-24T00:30:00-02:30"),
        row(2, timestamp="2023-05-24T10:00:00"),
        row(3, timestamp="24/05/2023 10:00"),
        row(4, timestamp="2023-05-24"),  # a date has no offset either
        row(5, timestamp="2023-05-24 10:00:00.250+0530"),
    ]
    result = read_measurements(write(tmp_path, lines))
    times = result.frame["timestamp"].tolist()
    assert times == [
        pd.Timestamp("2023-05-24T00:00Z"),
        pd.Timestamp("2023-05-24T03:00Z"),
        pd.Timestamp("2023-05-24T04:30:00.250Z"),
    ]
    by_line = {r.line: r for r in result.report.rejected}
    assert by_line[4].field == "timestamp" and "naive" in by_line[4].reason
    assert by_line[5].field == "timestamp" and "ISO 8601" in by_line[5].reason
    assert by_line[6].field == "timestamp" and "naive" in by_line[6].reason


def test_net_is_an_alias_of_mnc_and_status_case_is_folded(tmp_path: Path) -> None:
    header = HEADER.replace(",mnc,", ",net,")
    lines = [header, row(0, status="OK"), row(1, status="No_Service", mnc="1")]
    frame = read_measurements(write(tmp_path, lines)).frame
    assert frame["mnc"].tolist() == [470, 1]
    assert frame["network"].tolist() == ["310-470", "310-1"]
    assert frame["status"].tolist() == ["ok", "no_service"]


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    lines = ["timestamp,lat,lon,status", "2023-05-24T10:00:00Z,13.4,144.7,failed"]
    frame = read_measurements(write(tmp_path, lines)).frame
    assert list(frame.columns) == list(MEASUREMENT_COLUMNS)
    assert frame["status"].tolist() == ["failed"]
    assert frame["network"].isna().all() and frame["mcc"].isna().all()


def test_bad_rows_are_reported_with_physical_lines(tmp_path: Path) -> None:
    lines = [
        HEADER,
        row(0),
        row(1, lat="91"),  # line 3
        "",  # line 4, blank: skipped, not a row
        row(2, device='"two\nline device"'),  # lines 5-6, good
        row(3, status="maybe"),  # line 7
        "2023-05-24T10:00:00Z,13.4,144.7",  # line 8, too few fields
        row(4, radio="6G"),  # line 9
        row(5, cell="12.5"),  # line 10
        row(6, lon="east"),  # line 11
        row(7, mcc=""),  # line 12, good (optional)
        row(8, lat=""),  # line 13, required missing
    ]
    result = read_measurements(write(tmp_path, lines))
    report = result.report
    got = [(r.line, r.field) for r in report.rejected]
    assert got == [
        (3, "lat"),
        (7, "status"),
        (8, "row"),
        (9, "radio"),
        (10, "cell"),
        (11, "lon"),
        (13, "lat"),
    ]
    assert report.rejected[0].raw == row(1, lat="91")
    assert "missing" in report.rejected[-1].reason
    assert report.accepted == 3 and report.rows_in == 10
    assert result.frame["measurement_id"].tolist() == ["m0", "m2", "m7"]


def test_one_percent_malformed_rows_are_all_listed_and_good_rows_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 2000
    bad = set(rng.choice(n, n // 100, replace=False).tolist())
    defects = [
        {"lat": "north"},
        {"timestamp": "2023-05-24 10:00"},
        {"status": "down"},
        {"lon": "-181"},
        {"mnc": "x"},
    ]
    lines = [HEADER]
    expected_bad: dict[int, str] = {}
    for i in range(n):
        if i in bad:
            defect = defects[i % len(defects)]
            lines.append(row(i, **defect))
            expected_bad[len(lines)] = next(iter(defect))
        else:
            lines.append(row(i))
    result = read_measurements(write(tmp_path, lines))
    report = result.report
    assert {r.line: r.field for r in report.rejected} == expected_bad
    assert all(r.reason for r in report.rejected)
    assert report.accepted == n - len(bad) and report.duplicates == 0
    kept = set(result.frame["measurement_id"])
    assert kept == {f"m{i}" for i in range(n) if i not in bad}


def test_duplicates_by_id_and_by_content(tmp_path: Path) -> None:
    no_id = row(9, measurement_id="")
    lines = [HEADER, row(0), row(0), row(0, signal_dbm="-80"), no_id, no_id, row(1)]
    result = read_measurements(write(tmp_path, lines))
    report = result.report
    assert report.duplicates == 3
    assert report.accepted == 3
    assert report.rows_in == report.accepted + len(report.rejected) + report.duplicates
    assert "rows in = accepted + rejected + duplicates" in report.summary()
    assert result.frame.loc[0, "signal_dbm"] == -95.5  # the first copy wins


def test_device_is_hashed_with_the_secret(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER] + [row(i) for i in range(14)])
    default = read_measurements(path).frame["device"]
    keyed = read_measurements(path, device_secret=b"installation-secret").frame["device"]
    assert not default.str.contains("phone").any()
    assert default.nunique() == keyed.nunique() == 7
    assert default[0] == default[7] and default[0] != default[1]
    assert set(default).isdisjoint(set(keyed))


def test_gzip_is_detected_by_magic_bytes_and_streams_work(tmp_path: Path) -> None:
    text = "\n".join([HEADER, row(0), row(1, lat="x"), row(2)]) + "\n"
    path = tmp_path / "no_gz_suffix.csv"
    path.write_bytes(gzip.compress(text.encode()))
    from_file = read_measurements(path)
    from_stream = read_measurements(io.BytesIO(text.encode()), name="upload.csv")
    assert len(from_file.frame) == len(from_stream.frame) == 2
    assert [r.line for r in from_file.report.rejected] == [3]
    assert from_stream.report.path == "upload.csv"


def test_crlf_and_bom(tmp_path: Path) -> None:
    text = "\ufeff" + "\r\n".join([HEADER, row(0), row(1, status="x"), row(2)]) + "\r\n"
    path = tmp_path / "windows.csv"
    path.write_bytes(text.encode("utf-8"))
    result = read_measurements(path)
    assert len(result.frame) == 2
    assert [(r.line, r.field) for r in result.report.rejected] == [(3, "status")]
    assert not result.report.rejected[0].raw.endswith("\r")


def test_stray_quotes_fall_back_to_exact_parsing(tmp_path: Path) -> None:
    lines = [HEADER, row(0, device='pho"ne'), row(1, device='"quoted, with comma"'), row(2)]
    result = read_measurements(write(tmp_path, lines))
    assert result.report.accepted == 3


def test_report_outputs(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, row(0), row(1, lat="x,y")])
    report = read_measurements(path).report
    out = tmp_path / "rejected.csv"
    report.write_rejected(out)
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["line", "field", "reason", "raw"]
    assert rows[1][:2] == ["3", "row"]
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["rows_in"] == 2 and as_json["rejected"] == 1 and as_json["balanced"]


def test_report_refuses_an_unbalanced_count() -> None:
    with pytest.raises(AssertionError):
        IngestReport("x", "measurements", 3, 1, 0, [RejectedRow(2, "lat", "bad", "")])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"a,b,c\n1,2,3\n", "missing required columns"),
        (b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"),
        (bytes(range(256)) * 40, "binary"),
        (b"timestamp,lat,lat,lon,status\n", "duplicate"),
    ],
)
def test_unreadable_files_raise_ingest_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=message) as info:
        read_measurements(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        read_measurements(tmp_path / "nope.csv")


def test_irregular_quoting_keeps_exact_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote closing an unquoted value makes pyarrow and the boundary scan disagree; the
    exact fallback still reports every row at its physical line."""
    from dcm.ingest import _csv

    calls: list[int] = []
    exact = _csv._parse_python

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return exact(*args, **kwargs)

    monkeypatch.setattr(_csv, "_parse_python", spy)
    lines = [
        HEADER,
        row(0, device='"form\x0cfeed"'),
        row(1, device='"multi\nline"'),  # lines 3-4
        row(2, lat="x"),  # line 5
        row(3, device='ab"'),  # a stray quote at the end of an unquoted value
        row(4, lat="y"),  # line 7
        row(5),
    ]
    result = read_measurements(write(tmp_path, lines))
    assert calls == [1]
    assert [(r.line, r.field) for r in result.report.rejected] == [(5, "lat"), (7, "lat")]
    assert result.report.rejected[1].raw == row(4, lat="y")
    assert result.frame["measurement_id"].tolist() == ["m0", "m1", "m3", "m5"]


def test_ndjson_line_numbers_ignore_unicode_separators(tmp_path: Path) -> None:
    good = (
        '{"timestamp": "2023-05-24T10:00:00Z", "lat": 1, "lon": 2, "status": "ok", '
        '"device": "a\u2028b"}'
    )
    bad = '{"timestamp": "2023-05-24T10:00:00Z", "lat": 100, "lon": 2, "status": "ok"}'
    path = tmp_path / "m.ndjson"
    path.write_text("\n".join([good, bad]), encoding="utf-8")
    result = read_measurements(path)
    assert result.report.accepted == 1
    assert [(r.line, r.field) for r in result.report.rejected] == [(2, "lat")]


def test_bytes_are_a_source_too() -> None:
    from dcm.ingest import sniff_kind

    data = "\n".join([HEADER, row(0), row(1, lat="x")]).encode()
    assert sniff_kind(data) == "measurements"
    result = read_measurements(data, name="upload.csv")
    assert result.report.accepted == 1 and result.report.path == "upload.csv"
    assert read_measurements(gzip.compress(data)).report.path == "<bytes>"


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_tab_and_semicolon_files(tmp_path: Path, delimiter: str) -> None:
    lines = [HEADER, row(0), row(1, status="x")]
    path = write(tmp_path, [line.replace(",", delimiter) for line in lines])
    result = read_measurements(path)
    assert result.report.accepted == 1
    assert [(r.line, r.field) for r in result.report.rejected] == [(3, "status")]
