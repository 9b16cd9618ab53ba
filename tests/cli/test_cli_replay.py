"""``dcm replay``: slices in time order, idempotent re-runs, clear errors."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from dcm.cli.main import EXIT_NOT_FOUND, EXIT_USER_ERROR
from dcm.cli.replay import slice_bounds

from .livedata import START, run, write_cells, write_measurements

SLICE_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\dZ)\s+\+(\d+)\s+rows\s+(\d+) window")


@pytest.fixture
def event(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Event ``vincent`` with a two-day baseline and two cells."""
    assert run(["event", "create", "vincent", "--start", "2021-04-09T00:00Z"], capsys)[0] == 0
    write_measurements(tmp_path / "baseline.csv", START - pd.Timedelta("2D"), 48, seed=2)
    for kind, path in (
        ("baseline", tmp_path / "baseline.csv"),
        ("cells", write_cells(tmp_path / "cells.csv")),
    ):
        code, _, err = run(["ingest", "--event", "vincent", "--kind", kind, str(path)], capsys)
        assert code == 0, err
    return "vincent"


def _slices(out: str) -> list[tuple[pd.Timestamp, int, int]]:
    found = [SLICE_LINE.match(line) for line in out.splitlines()]
    return [(pd.Timestamp(m[1]), int(m[2]), int(m[3])) for m in found if m]


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "dcm.sqlite")


def test_replay_feeds_slices_in_order_and_rerun_adds_nothing(
    event: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = write_measurements(tmp_path / "event.csv", START, 4, seed=1)
    code, out, err = run(["replay", "--event", event, str(tmp_path / "event.csv")], capsys)
    assert code == 0, err
    slices = _slices(out)
    times = [t for t, _, _ in slices]
    assert times == list(pd.date_range(START, periods=4, freq="1h"))
    expected = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("1h").value_counts()
    assert [added for _, added, _ in slices] == [int(expected[t]) for t in times]
    assert all(windows >= 1 for _, _, windows in slices)
    assert f"4 slice(s), {len(frame)} rows added" in out

    with _db(data_dir) as db:
        sources = [
            r[0]
            for r in db.execute("SELECT source FROM datasets WHERE kind = ?", ("measurements",))
        ]
        audited = db.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'dataset.add'"
        ).fetchone()[0]
        # Each slice's rows belong to its own dataset, stored with the slice bounds.
        per_dataset = db.execute(
            "SELECT d.source, min(m.ts), max(m.ts) FROM measurements m "
            "JOIN datasets d ON d.id = m.dataset_id WHERE m.period = 'event' "
            "GROUP BY d.id ORDER BY d.id"
        ).fetchall()
    assert [s.rsplit("#", 1)[1][:20] for s in sources] == [f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in times]
    assert audited == 2 + 4  # baseline, cells, one per slice
    for source, first, last in per_dataset:
        lo, hi = (pd.Timestamp(b) for b in source.rsplit("#", 1)[1].split("/"))
        assert lo <= pd.Timestamp(first) and pd.Timestamp(last) < hi

    code, out, err = run(["replay", "--event", event, str(tmp_path / "event.csv")], capsys)
    assert code == 0, err
    again = _slices(out)
    assert [t for t, _, _ in again] == times
    assert all(added == 0 and windows == 0 for _, added, windows in again)
    assert "4 slice(s), 0 rows added" in out
    with _db(data_dir) as db:
        assert db.execute("SELECT count(*) FROM datasets").fetchone()[0] == 2 + 4
        assert db.execute("SELECT count(*) FROM measurements WHERE period = 'event'").fetchone()[
            0
        ] == len(frame)


def test_replay_from_and_hours_select_slices(
    event: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = write_measurements(tmp_path / "event.csv", START, 4, seed=3)
    hours = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("1h")
    argv = ["replay", "--event", event, "--step", "30min", str(tmp_path / "event.csv")]
    code, out, err = run(
        [*argv[:-1], "--from", "2021-04-09T01:00Z", "--hours", "2", argv[-1]], capsys
    )
    assert code == 0, err
    slices = _slices(out)
    assert [t for t, _, _ in slices] == list(
        pd.date_range("2021-04-09T01:00Z", periods=4, freq="30min")
    )
    in_range = int(hours.between(START + pd.Timedelta("1h"), START + pd.Timedelta("2h")).sum())
    assert sum(added for _, added, _ in slices) == in_range

    # -q: a progress bar on stderr instead of slice lines, the summary still printed.
    code, out, err = run([*argv[:3], "-q", *argv[3:]], capsys)
    assert code == 0, err
    assert _slices(out) == [] and f"{len(frame) - in_range} rows added" in out
    with _db(data_dir) as db:
        stored = db.execute("SELECT count(*) FROM measurements WHERE period = 'event'")
        assert stored.fetchone()[0] == len(frame)


def test_replay_errors_are_one_line(
    event: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\x01not a csv at all\xff\xfe")
    for argv, code_expected, needle in (
        (["replay", "--event", event, str(garbage)], EXIT_USER_ERROR, "garbage.csv"),
        (["replay", "--event", event, str(tmp_path / "none.csv")], EXIT_USER_ERROR, "not found"),
        (["replay", "--event", "nope", str(garbage)], EXIT_NOT_FOUND, "nope"),
        (["replay", "--event", event, "--step", "soon", str(garbage)], EXIT_USER_ERROR, "--step"),
    ):
        code, out, err = run(argv, capsys)
        assert code == code_expected, (argv, out, err)
        assert "Traceback" not in err and needle in err
        assert len(err.strip().splitlines()) == 1 and err.startswith("dcm: error:")

    write_measurements(tmp_path / "event.csv", START, 2, seed=4)
    run(["event", "create", "bare", "--start", "2021-04-09T00:00Z"], capsys)
    code, _, err = run(["replay", "--event", "bare", str(tmp_path / "event.csv")], capsys)
    assert code == EXIT_USER_ERROR and "no baseline" in err and "Traceback" not in err
    with _db(data_dir) as db:  # refused before any slice was stored
        assert (
            db.execute(
                "SELECT count(*) FROM datasets d JOIN events e ON e.id = d.event_id "
                "WHERE e.name = 'bare'"
            ).fetchone()[0]
            == 0
        )
    code, _, err = run(
        [
            "replay",
            "--event",
            event,
            "--until",
            "2021-04-10",
            "--hours",
            "3",
            str(tmp_path / "event.csv"),
        ],
        capsys,
    )
    assert code == EXIT_USER_ERROR and "not both" in err


def test_slice_bounds_cover_the_data() -> None:
    times = pd.Series(pd.to_datetime(["2021-04-09T10:20Z", "2021-04-09T12:59Z"]))
    step = pd.Timedelta("1h")
    starts = slice_bounds(times, step=step)
    assert list(starts) == list(pd.date_range("2021-04-09T10:00Z", periods=3, freq="1h"))
    assert len(slice_bounds(times, step=step, hours=1)) == 1
    with pytest.raises(ValueError, match="not after"):
        slice_bounds(times, step=step, until=pd.Timestamp("2021-04-09T09:00Z"))
