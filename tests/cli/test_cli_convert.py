"""``dcm convert``: measurement files → a partitioned Parquet dataset, atomically."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from dcm.analysis.grid import points_to_cells
from dcm.cli.main import main
from dcm.convert import convert
from dcm.errors import Conflict, IngestError
from dcm.ingest import read_measurements
from dcm.ingest.dataset import DatasetWriter, read_dataset


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def event_csv(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fifth of the sample's event rows (malformed rows kept as they are), plain CSV."""
    header, *rows = gzip.decompress(
        (sample_data / "stvincent" / "event.csv.gz").read_bytes()
    ).splitlines(keepends=True)
    path = tmp_path_factory.mktemp("convert") / "event.csv"
    path.write_bytes(header + b"".join(rows[::5]))
    return path


def test_convert_writes_a_partitioned_dataset_with_the_whole_report(
    event_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "event_ds"
    assert _run(["convert", str(event_csv), "--out", str(out), "--resolution", "7"]) == 0
    text = capsys.readouterr().out
    whole = read_measurements(event_csv)
    report = whole.report
    assert report.rejected_count > 0
    assert f"{report.rows_in:,} rows in" in text and f"{report.rejected_count:,} rejected" in text

    meta = json.loads((out / "_dcm.json").read_text())
    assert meta["resolution"] == 7 and meta["rows"] == len(whole.frame)
    assert meta["rejected"] == report.rejected_count
    (source,) = meta["sources"]
    assert source["path"] == str(event_csv) and source["rows_in"] == report.rows_in

    # Hive partitions by UTC day and resolution-3 parent cell.
    days = {p.name for p in out.glob("day=*")}
    want_days = {f"day={d}" for d in whole.frame["timestamp"].dt.strftime("%Y-%m-%d").unique()}
    assert days == want_days
    parents = {p.name.removeprefix("h3_parent=") for p in out.glob("day=*/h3_parent=*")}
    assert parents and all(h3.get_resolution(p) == 3 for p in parents)
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    stored = table.to_pandas().sort_values("row")
    assert str(table.schema.field("h3").type) == "int64"
    cells = points_to_cells(stored["lat"].to_numpy(), stored["lon"].to_numpy(), 7)
    assert (stored["h3"].to_numpy() == cells).all()
    parent = [h3.cell_to_parent(h3.int_to_str(int(c)), 3) for c in cells[:200]]
    assert stored["h3_parent"].astype(str).tolist()[:200] == parent

    # The rejected rows, line for line, as dcm validate reports them.
    with (out / "_rejected.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], int(r["line"]), r["field"], r["reason"]) for r in rows] == [
        (str(event_csv), r.line, r.field, r.reason) for r in report.rejected
    ]

    # Read back: the same rows, in the same order, as the whole-file reader gives.
    read = read_dataset(out, batch_rows=1000)
    pd.testing.assert_frame_equal(read.frame.drop(columns="h3"), whole.frame)
    assert read.report.to_dict() == report.to_dict() | {"path": str(out)}


def test_convert_several_files_and_overwrite(event_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = convert([event_csv], out, chunk_bytes=50_000)
    assert len({p.name for p in out.glob("day=*/h3_parent=*/*.parquet")}) > 1
    with pytest.raises(Conflict, match="exists; use --overwrite"):
        convert([event_csv], out)
    again = tmp_path / "again.csv"
    again.write_bytes(event_csv.read_bytes())
    second = convert([event_csv, again], out, overwrite=True)
    assert [s["path"] for s in second.meta["sources"]] == [str(event_csv), str(again)]
    assert second.meta["rows"] == 2 * first.meta["rows"]
    # The second file repeats the first: its rows are copies when read together.
    read = read_dataset(out)
    assert len(read.frame) == first.meta["rows"]
    assert read.report.duplicates == 2 * first.reports[0].duplicates + first.meta["rows"]
    assert not list(tmp_path.glob(".ds.*"))  # no temporary or old copy left behind


def test_a_failed_convert_leaves_no_dataset(
    event_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    calls = []

    def broken(self: DatasetWriter, frame: pd.DataFrame, **_: np.ndarray) -> None:
        calls.append(len(frame))
        if len(calls) == 2:
            raise RuntimeError("disk gone")
        original(self, frame, **_)

    original = DatasetWriter.write
    monkeypatch.setattr(DatasetWriter, "write", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        convert([event_csv], out, chunk_bytes=20_000)
    assert len(calls) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_killed_convert_leaves_no_dataset_and_keeps_the_old_one(
    event_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    script = (
        "import os, signal, sys\n"
        "from dcm.ingest.dataset import DatasetWriter\n"
        "def commit(self, meta):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"  # killed just before the rename
        "DatasetWriter.commit = commit\n"
        "from dcm.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    cmd = [sys.executable, "-c", script, "-q", "convert", str(event_csv), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, timeout=600)
    assert proc.returncode == -9
    assert not out.exists()
    # With --overwrite, a killed convert leaves the old dataset whole.
    convert([event_csv], out)
    before = read_dataset(out).frame
    proc = subprocess.run([*cmd, "--overwrite"], capture_output=True, timeout=600)
    assert proc.returncode == -9
    pd.testing.assert_frame_equal(read_dataset(out).frame, before)


def test_convert_errors_are_one_line(
    event_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.csv"
    assert _run(["convert", str(missing), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dcm: error: {missing}: file not found"
    taken = tmp_path / "taken"
    taken.mkdir()
    assert _run(["convert", str(event_csv), "--out", str(taken)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"dcm: error: {taken} exists; use --overwrite to replace it"
    )
    assert _run(["convert", str(event_csv), "--out", str(taken), "--overwrite"]) == 2
    assert "is not a dcm dataset; refusing" in capsys.readouterr().err
    assert _run(["convert", str(event_csv), "--out", str(tmp_path / "x"), "--resolution", "3"]) == 2
    assert "resolution must be an integer from 5 to 10" in capsys.readouterr().err
    binary = tmp_path / "junk.csv"
    binary.write_bytes(bytes(range(256)) * 64)
    assert _run(["convert", str(binary), "--out", str(tmp_path / "y")]) == 2
    assert "binary data, not a text file" in capsys.readouterr().err
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y.*"))
    with pytest.raises(IngestError, match="not a dcm dataset"):
        read_dataset(taken)
