"""The fast paths of the measurement reader agree with the general ones, row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcm.ingest import read_measurements
from dcm.ingest._fields import RowErrors, timestamps_iso

HEADER = "timestamp,lat,lon,status,mcc,mnc,radio,area,cell,device"


def _rows(n: int) -> list[str]:
    return [
        f'"2024-03-11T06:{i // 60 % 60:02d}:{i % 60:02d}Z",13.{i:04d},-61.2,"ok",'
        f'358,110,"LTE",7,{1000 + i},"dev{i % 7}"'
        for i in range(n)
    ]


@pytest.mark.parametrize("quoted", [True, False])
@pytest.mark.parametrize("final_newline", [True, False])
def test_bad_values_are_reported_with_line_and_raw_text(quoted: bool, final_newline: bool) -> None:
    rows = _rows(40)
    rows[4] = rows[4].replace("13.0004", "95.5")  # lat out of range
    rows[39] = rows[39].replace('"ok"', '"maybe"')  # last row: status unknown
    text = "\n".join([HEADER, *rows]) + ("\n" if final_newline else "")
    if not quoted:
        text = text.replace('"', "")
    report = read_measurements(text.encode(), format="csv").report
    assert [(r.line, r.field) for r in report.rejected] == [(6, "lat"), (41, "status")]
    raw = [r if quoted else r.replace('"', "") for r in (rows[4], rows[39])]
    assert [r.raw for r in report.rejected] == raw
    assert report.accepted == 38 and report.rows_in == 40


def test_value_spanning_lines_keeps_later_lines_right() -> None:
    rows = _rows(10)
    rows[2] = rows[2].replace('"dev2"', '"two\nlines"')
    rows[6] = rows[6].replace("13.0006", "-91")
    text = "\n".join([HEADER, *rows]) + "\n"
    result = read_measurements(text.encode(), format="csv")
    assert [(r.line, r.field) for r in result.report.rejected] == [(9, "lat")]
    assert result.report.rejected[0].raw == rows[6]
    assert len(result.frame) == 9


_INSTANTS = st.datetimes(
    min_value=pd.Timestamp("1990-01-02").to_pydatetime(),
    max_value=pd.Timestamp("2099-12-30").to_pydatetime(),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            _INSTANTS,
            st.sampled_from(["Z", "+05:30", "-02:00", "+00:00", "-11:45"]),
            st.sampled_from(["T", " "]),
            st.integers(0, 9),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_strict_iso_timestamps_parse_as_pandas_does(
    stamps: list[tuple[pd.Timestamp, str, str, int]],
) -> None:
    texts = []
    for when, zone, sep, digits in stamps:
        text = when.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
        if digits:
            text += "." + f"{when.microsecond:06d}{when.microsecond % 1000:03d}"[:digits]
        texts.append(text + zone)
    col = pd.Series(texts, dtype="string")
    errors = RowErrors(len(col))
    parsed = timestamps_iso(col, errors, "timestamp")
    expected = pd.to_datetime(pd.Series(texts), utc=True, format="ISO8601")
    assert not errors.bad.any()
    assert (parsed.to_numpy() == expected.astype("datetime64[ns, UTC]").to_numpy()).all()


def test_strict_shape_with_a_bad_date_falls_back_and_names_the_row() -> None:
    col = pd.Series(["2024-03-11T06:00:00Z", "2023-02-29T06:00:00Z", None, " "], dtype="string")
    errors = RowErrors(len(col))
    parsed = timestamps_iso(col, errors, "timestamp")
    assert errors.bad.tolist() == [False, True, False, False]
    assert parsed.iloc[0] == pd.Timestamp("2024-03-11T06:00:00Z") and parsed.isna().iloc[1:].all()


def test_only_exact_copies_are_duplicates() -> None:
    rows = _rows(6)
    same_place_other_cell = rows[1].replace(",1001,", ",9999,")
    text = "\n".join([HEADER, *rows, rows[3], same_place_other_cell, rows[3]]) + "\n"
    result = read_measurements(text.encode(), format="csv")
    assert result.report.duplicates == 2
    assert len(result.frame) == 7
    kept = result.frame["cell"].to_numpy()
    assert sorted(kept.tolist()) == sorted([1000, 1001, 1002, 1003, 1004, 1005, 9999])
    assert np.array_equal(kept[:6], [1000, 1001, 1002, 1003, 1004, 1005])  # first copies kept


def test_zero_and_negative_zero_are_the_same_place() -> None:
    rows = [f"2024-03-11T06:00:00Z,{lat},-61.2,ok,358,110,a" for lat in ("0.0", "-0.0", "-0")]
    text = "timestamp,lat,lon,status,mcc,mnc,device\n" + "\n".join(rows) + "\n"
    result = read_measurements(text.encode(), format="csv")
    assert result.report.duplicates == 2 and len(result.frame) == 1


def _hmac_hex(device: str, secret: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(secret, device.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@pytest.mark.parametrize("limit", [3, 1 << 20])
def test_device_hasher_remembers_ids_and_gives_the_plain_hashes(limit: int) -> None:
    """A hasher shared by the chunks of a read (remembering ids, or forgetting them
    past its limit) gives each chunk the HMAC of each stripped id, missing and blank
    ids missing, as hashing the chunk alone does."""
    from dcm.ingest._fields import DEFAULT_DEVICE_SECRET, DeviceHasher, hash_devices

    rng = np.random.default_rng(7)
    hasher = DeviceHasher(b"k", limit=limit)
    for size in (0, 1, 40, 200):
        values = [
            None if r < 0.1 else (" " if r < 0.15 else f" ph{rng.integers(0, 30)} ")
            for r in rng.random(size)
        ]
        chunk = pd.Series(values, dtype="string")
        want = [None if v is None or not v.strip() else _hmac_hex(v.strip(), b"k") for v in values]
        got = hasher(chunk)
        assert str(got.dtype) == "large_string[pyarrow]"
        assert [None if pd.isna(v) else v for v in got] == want
        alone = hash_devices(chunk, b"k")
        assert alone.equals(got)
    default = hash_devices(pd.Series(["a"], dtype="string"))
    assert default.iloc[0] == _hmac_hex("a", DEFAULT_DEVICE_SECRET)
    assert len(hasher._names) <= limit + 30  # forgotten past the limit
