"""The query parsers behind bbox and datetime, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dcm.api.dependencies import Interval, parse_bbox, parse_datetime
from dcm.errors import ParameterError


def test_bbox_four_and_six_numbers() -> None:
    assert parse_bbox("-61.3, 13.1,-61.1,13.4") == (-61.3, 13.1, -61.1, 13.4)
    assert parse_bbox("-61.3,13.1,-5,-61.1,13.4,100") == (-61.3, 13.1, -61.1, 13.4)


@pytest.mark.parametrize("text", ["", "1,2,3,4,5", "1,2,nan,4", "0,0,inf,1", "200,0,201,1"])
def test_bbox_refused(text: str) -> None:
    with pytest.raises(ParameterError):
        parse_bbox(text)


def test_datetime_instant_with_offset_is_utc() -> None:
    moment = datetime(2021, 4, 9, 16, 41, tzinfo=UTC)
    assert parse_datetime("2021-04-09T12:41:00-04:00") == Interval(moment, moment)
    assert parse_datetime("2021-04-09T16:41:00Z") == Interval(moment, moment)


def test_datetime_date_is_the_whole_day() -> None:
    day = parse_datetime("2021-04-09")
    assert day.start == datetime(2021, 4, 9, tzinfo=UTC)
    assert day.end == datetime(2021, 4, 10, tzinfo=UTC) - timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2021-04-09T00:00:00Z/..", datetime(2021, 4, 9, tzinfo=UTC), None),
        ("../2021-04-09T00:00:00Z", None, datetime(2021, 4, 9, tzinfo=UTC)),
        ("/2021-04-09T00:00:00Z", None, datetime(2021, 4, 9, tzinfo=UTC)),
        (
            "2021-04-08/2021-04-09",
            datetime(2021, 4, 8, tzinfo=UTC),
            datetime(2021, 4, 10, tzinfo=UTC) - timedelta(microseconds=1),
        ),
    ],
)
def test_datetime_intervals(text: str, start: datetime | None, end: datetime | None) -> None:
    assert parse_datetime(text) == Interval(start, end)


def test_interval_overlap() -> None:
    window = (datetime(2021, 4, 9, 12, tzinfo=UTC), datetime(2021, 4, 9, 13, tzinfo=UTC))
    assert Interval(None, window[0]).overlaps(*window)
    assert not Interval(window[1] + timedelta(seconds=1), None).overlaps(*window)
    assert Interval(None, None).overlaps(None, None)


@pytest.mark.parametrize("text", ["", "..", "../..", "a/b/c", "2021-13-01", "x/.."])
def test_datetime_refused(text: str) -> None:
    with pytest.raises(ParameterError):
        parse_datetime(text)
