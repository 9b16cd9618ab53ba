"""Values a database cannot store never leave ingest: NUL characters and far timestamps.

PostgreSQL text cannot hold U+0000 and pandas' nanosecond timestamps end in 2262, so
such rows are rejected with their line, field and reason (cells' optional dates become
missing instead), and the good rows of the same file are kept.
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dcm.ingest import read_cells, read_gnettrack, read_measurements, read_towercollector
from dcm.ingest._fields import NUL_CHARACTER, OUT_OF_RANGE, TIMESTAMP_MAX, TIMESTAMP_MIN
from dcm.schema import CELL_COLUMNS, MEASUREMENT_COLUMNS, OPENCELLID_COLUMNS

HEADER = "timestamp,lat,lon,status,mcc,mnc,radio,area,cell,signal_dbm,measurement_id,device"
FIELDS = HEADER.split(",")
GOOD = {
    "timestamp": "2023-05-24T10:00:00Z", "lat": "13.4", "lon": "144.7", "status": "ok",
    "mcc": "310", "mnc": "470", "radio": "LTE", "area": "1", "cell": "2",
    "signal_dbm": "-90", "measurement_id": "m0", "device": "phone",
}  # fmt: skip
CELL = {
    "radio": "LTE", "mcc": "740", "net": "1", "area": "50404", "cell": "1", "unit": "0",
    "lon": "-79.85", "lat": "-2.07", "range": "1000", "samples": "5", "changeable": "1",
    "created": "1347360297", "updated": "1382522448", "averageSignal": "0",
}  # fmt: skip


def csv_of(rows: list[dict[str, str]], fields: list[str]) -> bytes:
    return (
        "\n".join([",".join(fields), *(",".join(r[f] for f in fields) for r in rows)]) + "\n"
    ).encode()


def measurement(i: int, **values: str) -> dict[str, str]:
    return GOOD | {"measurement_id": f"m{i}"} | values


def balanced(report) -> bool:  # type: ignore[no-untyped-def]
    return report.rows_in == report.accepted + len(report.rejected) + report.duplicates


@pytest.mark.parametrize("field", FIELDS)
def test_nul_in_any_measurement_field_rejects_only_that_row(field: str) -> None:
    bad = measurement(2, **{field: GOOD[field][:1] + "\x00" + GOOD[field][1:]})
    data = csv_of([measurement(1), bad, measurement(3)], FIELDS)
    result = read_measurements(io.BytesIO(data), name="nul.csv")
    report = result.report
    assert [(r.line, r.field) for r in report.rejected] == [(3, field)]
    assert report.rejected[0].reason.startswith(NUL_CHARACTER)
    assert report.accepted == 2 and balanced(report)
    assert result.frame["measurement_id"].tolist() == ["m1", "m3"]


def test_nul_is_rejected_in_ndjson_and_parquet_too() -> None:
    records = [
        {"timestamp": "2023-05-24T10:00:00Z", "lat": 13.4, "lon": 144.7, "status": "ok",
         "measurement_id": mid, "device": dev}
        for mid, dev in (("a", "phone"), ("b\x00", "phone"), ("c", "ph\x00one"), ("d", "phone"))
    ]  # fmt: skip
    ndjson = "\n".join(json.dumps(r) for r in records).encode()
    result = read_measurements(io.BytesIO(ndjson), name="nul.ndjson")
    assert [(r.line, r.field) for r in result.report.rejected] == [
        (2, "measurement_id"),
        (3, "device"),
    ]
    assert result.frame["measurement_id"].tolist() == ["a", "d"]

    table = pa.Table.from_pylist(records)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    result = read_measurements(io.BytesIO(buffer.getvalue()), name="nul.parquet")
    assert [(r.line, r.field) for r in result.report.rejected] == [
        (2, "measurement_id"),
        (3, "device"),
    ]


def test_nul_in_app_logs_is_rejected() -> None:
    header = "measured_at,lat,lon,mcc,mnc,lac,cell_id,net_type,neighboring,dbm,device"
    row = "2023-05-24T10:00:00Z,13.4,144.7,310,470,1,{cell},LTE,false,-90,{device}"
    lines = [header, row.format(cell=1, device="a"), row.format(cell=2, device="b\x00")]
    result = read_towercollector(io.BytesIO(("\n".join(lines) + "\n").encode()), name="tc.csv")
    assert [(r.line, r.field, r.reason[: len(NUL_CHARACTER)]) for r in result.report.rejected] == [
        (3, "device", NUL_CHARACTER)
    ]
    assert result.report.accepted == 1


@pytest.mark.parametrize("field", list(OPENCELLID_COLUMNS))
def test_nul_in_any_cell_field_rejects_only_that_row(field: str) -> None:
    bad = CELL | {"cell": "2", field: CELL[field][:1] + "\x00" + CELL[field][1:]}
    data = csv_of([CELL, bad, CELL | {"cell": "3"}], list(OPENCELLID_COLUMNS))
    result = read_cells(io.BytesIO(data), name="cells.csv")
    assert [(r.line, r.field) for r in result.report.rejected] == [(3, field)]
    assert result.report.rejected[0].reason.startswith(NUL_CHARACTER)
    assert sorted(result.frame["cell"]) == [1, 3] and balanced(result.report)


@pytest.mark.parametrize(
    "stamp",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1677-09-21T00:12:43.145224193Z",  # inside datetime64[ns], outside dcm's range
        "2262-04-11T23:47:16.854775808Z",  # one ns past datetime64[ns]
        "1989-12-31T23:59:59+00:00",
        "2099-12-31T23:00:00-05:00",  # 2100-01-01T04:00Z
    ],
)
def test_far_timestamps_are_rejected_not_raised(stamp: str) -> None:
    rows = [measurement(1), measurement(2, timestamp=stamp), measurement(3)]
    result = read_measurements(io.BytesIO(csv_of(rows, FIELDS)), name="far.csv")
    report = result.report
    assert [(r.line, r.field) for r in report.rejected] == [(3, "timestamp")]
    assert report.rejected[0].reason.startswith(OUT_OF_RANGE)
    assert result.frame["measurement_id"].tolist() == ["m1", "m3"]


def test_far_year_next_to_nanosecond_stamps_is_out_of_range() -> None:
    # A nanosecond value elsewhere makes pandas parse the column in ns, where year 1
    # cannot be represented: it must still read as out of range, not as "not ISO 8601".
    rows = [
        measurement(1, timestamp="2023-05-24T10:00:00.123456789Z"),
        measurement(2, timestamp="0001-01-01T00:00:00Z"),
    ]
    result = read_measurements(io.BytesIO(csv_of(rows, FIELDS)), name="ns.csv")
    assert [r.reason[: len(OUT_OF_RANGE)] for r in result.report.rejected] == [OUT_OF_RANGE]
    assert result.frame["timestamp"].iloc[0] == pd.Timestamp("2023-05-24T10:00:00.123456789Z")


def test_edges_of_the_range_are_kept() -> None:
    rows = [
        measurement(1, timestamp="1990-01-01T00:00:00Z"),
        measurement(2, timestamp="2099-12-31T23:59:59.999999Z"),
    ]
    result = read_measurements(io.BytesIO(csv_of(rows, FIELDS)), name="edges.csv")
    assert result.report.accepted == 2, result.report.rejected


def test_far_timestamps_in_parquet_and_app_logs() -> None:
    from datetime import UTC, datetime

    stamps = [datetime(2023, 5, 24, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
              datetime(9999, 12, 31, tzinfo=UTC)]  # fmt: skip
    table = pa.table(
        {
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "lat": [13.4] * 3,
            "lon": [144.7] * 3,
            "status": ["ok"] * 3,
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    result = read_measurements(io.BytesIO(buffer.getvalue()), name="far.parquet")
    assert [(r.line, r.reason) for r in result.report.rejected] == [
        (2, OUT_OF_RANGE),
        (3, OUT_OF_RANGE),
    ]

    log = "Timestamp\tLongitude\tLatitude\tLevel\n" + "".join(
        f"{ts}\t144.79\t13.47\t-95\n"
        for ts in ("2023.05.24_14.03.10", "0001.01.01_00.00.00", "9999.12.31_23.59.59",
                   "0001-01-01T00:00:00Z")
    )  # fmt: skip
    for timezone in ("Pacific/Guam", "+10:00"):
        result = read_gnettrack(io.BytesIO(log.encode()), timezone=timezone, name="g.txt")
        assert [(r.line, r.reason) for r in result.report.rejected] == [
            (3, OUT_OF_RANGE),
            (4, OUT_OF_RANGE),
            (5, OUT_OF_RANGE),
        ]


@pytest.mark.parametrize(
    ("created", "kept"),
    [
        ("0", None),
        ("-62135596800", None),  # 0001-01-01
        ("253402300799", None),  # 9999-12-31
        ("1e20", None),
        ("1e400", None),  # overflows a float
        ("1347360297", pd.Timestamp(1347360297, unit="s", tz="UTC")),
    ],
)
def test_odd_cell_dates_become_missing_and_the_cell_is_kept(
    created: str, kept: pd.Timestamp | None
) -> None:
    data = csv_of([CELL | {"created": created, "updated": created}], list(OPENCELLID_COLUMNS))
    result = read_cells(io.BytesIO(data), name="cells.csv")
    assert result.report.accepted == 1 and not result.report.rejected
    for column in ("created", "updated"):
        value = result.frame[column].iloc[0]
        assert (pd.isna(value) and kept is None) or value == kept


def test_cell_date_that_is_not_a_number_rejects_the_row() -> None:
    data = csv_of([CELL, CELL | {"cell": "2", "created": "yesterday"}], list(OPENCELLID_COLUMNS))
    result = read_cells(io.BytesIO(data), name="cells.csv")
    assert [(r.line, r.field) for r in result.report.rejected] == [(3, "created")]


@settings(max_examples=60, deadline=None)
@given(
    year=st.integers(1, 9999),
    rest=st.sampled_from(["-01-01T00:00:00Z", "-06-15T12:30:00.5+05:30", "-12-31T23:59:59Z"]),
    # Any characters (NUL included) except those that end a CSV value or record.
    text=st.text(st.characters(blacklist_characters='\n\r,"', codec="utf-8"), max_size=12),
)
# Two rows full of control characters in a small file are bad rows, not a binary file.
@example(year=2020, rest="-01-01T00:00:00Z", text="\x1f" * 12)
def test_any_year_or_text_gives_a_balanced_report(year: int, rest: str, text: str) -> None:
    stamp = f"{year:04d}{rest}"
    rows = [
        measurement(1),
        measurement(2, timestamp=stamp),
        measurement(3, measurement_id=f"id{text}"),
        measurement(4, device=f"d{text}"),
    ]
    data = "\n".join([HEADER, *(",".join(r[f] for f in FIELDS) for r in rows)]) + "\n"
    result = read_measurements(io.BytesIO(data.encode()), name="h.csv")
    report = result.report
    assert balanced(report)
    frame = result.frame
    assert list(frame.columns) == list(MEASUREMENT_COLUMNS)
    assert frame["timestamp"].between(TIMESTAMP_MIN, TIMESTAMP_MAX, inclusive="left").all()
    for column in ("measurement_id", "device", "status", "radio", "network"):
        assert not frame[column].astype("string").str.contains("\x00", regex=False).any()
    in_range = TIMESTAMP_MIN.year <= year < TIMESTAMP_MAX.year
    assert ("m2" in set(frame["measurement_id"])) == in_range
    row2 = [r for r in report.rejected if r.line == 3]
    assert in_range or (row2 and row2[0].reason.startswith(OUT_OF_RANGE))
    has_nul = "\x00" in text
    kept_ids = frame["measurement_id"].str.startswith("id").sum()
    assert kept_ids == (0 if has_nul else 1)


@settings(max_examples=40, deadline=None)
@given(seconds=st.one_of(st.floats(allow_nan=False), st.integers(-(10**30), 10**30)))
def test_any_cell_seconds_keep_the_cell(seconds: float) -> None:
    data = csv_of([CELL | {"created": str(seconds)}], list(OPENCELLID_COLUMNS))
    result = read_cells(io.BytesIO(data), name="cells.csv")
    assert result.report.accepted == 1 and list(result.frame.columns) == list(CELL_COLUMNS)
    created = result.frame["created"].iloc[0]
    assert pd.isna(created) or TIMESTAMP_MIN <= created < TIMESTAMP_MAX


def test_nul_check_skips_only_columns_whose_text_holds_none() -> None:
    """The one-pass check of an Arrow column's character data never lets a NUL by:
    a NUL anywhere in the data (even outside a sliced column's values) sends the
    column to the per-value search, which finds only the values holding one."""
    import pyarrow as pa

    from dcm.ingest._fields import RowErrors, _may_hold_nul, refuse_nul

    def arrow(values: pa.Array) -> pd.Series:
        return pd.Series(pd.arrays.ArrowExtensionArray(values))

    clean = arrow(pa.array(["a", "bc", None]))
    dirty = arrow(pa.array(["a", "b\x00c", None]))
    sliced = arrow(pa.array(["x\x00", "a", "b"]).slice(1))  # the NUL lies outside
    assert not _may_hold_nul(clean)
    assert _may_hold_nul(dirty) and _may_hold_nul(sliced)
    assert _may_hold_nul(pd.Series(["a"], dtype=object))  # not Arrow: searched
    frame = pd.DataFrame({"device": dirty, "radio": clean, "status": sliced})
    errors = RowErrors(3)
    refuse_nul(frame, errors, ["device", "radio", "status"])
    assert errors.bad.tolist() == [False, True, False]
