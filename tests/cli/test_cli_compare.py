"""``dcm compare`` and ``dcm demo`` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dcm.cli.main import main
from dcm.simulate import simulate, write_scenario


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eruption")
    write_scenario(simulate("eruption", seed=2, scale=0.2), folder)
    return folder


def _args(folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "compare",
        "--cells",
        str(folder / "cells.csv.gz"),
        "--baseline",
        str(folder / "baseline.csv.gz"),
        "--event",
        str(folder / "event.csv.gz"),
        "--out",
        str(out),
        *extra,
    ]


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_compare_writes_results_and_refuses_to_overwrite(
    scenario_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    extra = (
        "--population",
        str(scenario_dir / "population.tif"),
        "--areas",
        str(scenario_dir / "areas.geojson"),
        "--hazard",
        str(scenario_dir / "hazard.geojson"),
    )
    assert _run(_args(scenario_dir, out, *extra)) == 0
    names = {p.name for p in out.iterdir()}
    assert {"outages.geojson", "cells.csv", "status.parquet", "summary.json"} <= names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["population"]["people"] > 0
    # Every step is timed, the writers too (Parquet within the judging: the grid rows
    # are written as they are judged).
    assert {
        "reading inputs",
        "writing outages.geojson",
        "writing cells.csv",
        "writing status.parquet (within the judging)",
        "rendering map.html",
    } <= set(summary["timings_s"])
    assert not (out / ".status.parquet.partial").exists()
    assert summary["outputs"] == {
        "outages": "outages.geojson",
        "cells": "cells.csv",
        "status": "status.parquet",
        "map": "map.html",
        "summary": "summary.json",
    }
    assert len(pd.read_parquet(out / "status.parquet")) > 0
    assert summary["rejected_rows"]["baseline"]["count"] > 0
    capsys.readouterr()
    assert _run(_args(scenario_dir, out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _run(_args(scenario_dir, out, "--overwrite", "--window", "2h")) == 0
    status = pd.read_parquet(out / "status.parquet")
    spans = (status["window_end"] - status["window_start"]).unique()
    assert list(spans) == [pd.Timedelta(hours=2)]


def test_compare_at_one_time(scenario_dir: Path, tmp_path: Path) -> None:
    meta = json.loads((scenario_dir / "scenario.json").read_text())
    at = (pd.Timestamp(meta["event_start"]) + pd.Timedelta(hours=20)).isoformat()
    out = tmp_path / "snap"
    assert _run(_args(scenario_dir, out, "--at", at, "--resolution", "7")) == 0
    status = pd.read_parquet(out / "status.parquet")
    assert status["window_start"].nunique() == 1
    assert json.loads((out / "summary.json").read_text())["parameters"]["resolution"] == 7


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--window", "soon"), "window"),
        (("--resolution", "2"), "resolution"),
        (("--at", "not a time"), "--at"),
    ],
)
def test_compare_bad_options_are_one_line_errors(
    scenario_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, str],
    message: str,
) -> None:
    assert _run(_args(scenario_dir, tmp_path / "x", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dcm: error:") and message in err
    assert "Traceback" not in err


def test_compare_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(_args(tmp_path, tmp_path / "x")) == 2
    assert "cells.csv.gz" in capsys.readouterr().err


def test_demo_runs_on_the_sample(
    sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (sample_data / "stvincent" / "event.csv.gz").is_file():
        pytest.skip("sample_data/stvincent is absent")
    out = tmp_path / "demo"
    assert _run(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "St Vincent" in text and "map" in text
    assert (out / "outages.geojson").is_file()
    # The demo may overwrite its own output.
    assert _run(["-q", "demo", "--out", str(out)]) == 0


def test_compare_memory_limit_and_dask_errors(
    scenario_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable --memory-limit, one below what the counts need, and a --dask
    scheduler that is not there: one `dcm: error:` line each, no traceback, no files."""
    cases = [
        (("--memory-limit", "lots"), "cannot read 'lots' as a size"),
        (("--memory-limit", "64KB"), "counts of baseline alone take"),
        (("--dask", "tcp://127.0.0.1:9"), "--dask: cannot reach the scheduler"),
    ]
    for n, (extra, message) in enumerate(cases):
        out = tmp_path / f"out-{n}"
        assert _run(_args(scenario_dir, out, *extra)) != 0
        err = capsys.readouterr().err
        assert "dcm: error:" in err and message in err, err
        assert "Traceback" not in err
        assert not (out / "outages.geojson").exists()


def test_compare_memory_limit_gives_the_same_results(
    scenario_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Small chunks (--memory-limit 170MB: about 1 MiB of CSV at a time) write the same
    outages.geojson and cells.csv as the default chunks."""
    assert _run(_args(scenario_dir, tmp_path / "a")) == 0
    assert _run(_args(scenario_dir, tmp_path / "b", "--memory-limit", "170MB")) == 0
    for name in ("outages.geojson", "cells.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _killed_then_rerun(scenario_dir: Path, tmp_path: Path, script: str) -> None:
    """A first compare, then one run by ``script`` (dcm's CLI with a kill -9 patched in)
    that dies after the partial status.parquet was begun: the previous results stay
    whole, and the next run writes them and leaves no partial file."""
    out = tmp_path / "out"
    assert _run(_args(scenario_dir, out)) == 0
    names = ("outages.geojson", "cells.csv", "status.parquet")
    before = {name: (out / name).read_bytes() for name in names}
    argv = _args(scenario_dir, out, "--overwrite")
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, timeout=600)
    assert proc.returncode == -9
    assert (out / ".status.parquet.partial").exists()  # the kill came after it was begun
    assert {name: (out / name).read_bytes() for name in names} == before
    # The leftover partial file is neither a result nor in the way.
    assert _run(argv) == 0
    assert not (out / ".status.parquet.partial").exists()
    assert {name: (out / name).read_bytes() for name in names} == before


def test_a_killed_compare_keeps_the_old_results_and_a_rerun_completes(
    scenario_dir: Path, tmp_path: Path
) -> None:
    """kill -9 after the grid rows went to the partial status.parquet, before any result
    file is written."""
    script = (
        "import os, signal, sys\n"
        "import dcm.compare\n"
        "def killed(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "dcm.compare.write_comparison = killed\n"
        "from dcm.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    _killed_then_rerun(scenario_dir, tmp_path, script)


def test_a_compare_killed_while_its_writer_thread_writes_keeps_the_old_results(
    scenario_dir: Path, tmp_path: Path
) -> None:
    """kill -9 from the status.parquet writer thread, once part of the file is written."""
    script = (
        "import os, signal, sys, threading\n"
        "from dcm.publish.tables import ParquetAppender\n"
        "write, init = ParquetAppender.write, ParquetAppender.__init__\n"
        "def small_groups(self, path, **kwargs):\n"
        "    init(self, path, row_group_rows=1000)  # the file is written part by part\n"
        "def dying(self, frame):\n"
        "    # On the writer thread, once a row group is in the file.\n"
        "    if threading.current_thread().name.startswith('dcm-status') and self._writer:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    write(self, frame)\n"
        "ParquetAppender.write, ParquetAppender.__init__ = dying, small_groups\n"
        "from dcm.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    _killed_then_rerun(scenario_dir, tmp_path, script)
