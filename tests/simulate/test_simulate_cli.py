"""``dcm simulate`` through the real click group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcm.cli.main import EXIT_USER_ERROR, cli, main
from dcm.errors import Conflict


def test_cli_writes_a_scenario_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "sv"
    args = [
        "simulate",
        "--scenario",
        "stvincent-control",
        "--seed",
        "4",
        "--scale",
        "0.02",
        "--out",
        str(out),
    ]
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "stvincent-control" in result.output
    meta = json.loads((out / "scenario.json").read_text())
    assert meta["seed"] == 4
    again = runner.invoke(cli, args)
    assert again.exit_code != 0
    assert isinstance(again.exception, Conflict)
    assert runner.invoke(cli, [*args, "--overwrite"]).exit_code == 0


def test_main_turns_refusal_into_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--scenario", "control", "--scale", "0.01", "--out", str(tmp_path)])
    assert exc.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err


def test_cli_rejects_unknown_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "--scenario", "meteor", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2


def test_cli_passes_conditions_to_the_simulator(tmp_path: Path) -> None:
    out = tmp_path / "c"
    args = [
        "simulate",
        "--scenario",
        "stvincent",
        "--seed",
        "3",
        "--out",
        str(out),
        "--density",
        "0.05",
        "--onset-hour",
        "22",
        "--outage-hours",
        "1,300",
        "--power-delay-h",
        "2,24",
        "--sector-share",
        "0.5",
        "--clustering",
        "2",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "scenario.json").read_text())
    assert meta["conditions"] == {
        "density": 0.05,
        "onset_hour": 22.0,
        "outage_hours": [1.0, 300.0],
        "power_delay_h": [2.0, 24.0],
        "sector_share": 0.5,
        "clustering": 2.0,
        "cells_from": None,
        "bbox": None,
    }
    assert meta["event_start"].startswith("2021-04-10T02:00:00")  # 22:00 local, UTC-4
    assert "sector" in (out / "truth_sites.csv").read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--density", "9", "density must be between"),
        ("--onset-hour", "-1", "onset_hour"),
        ("--outage-hours", "3", "--outage-hours takes 2"),
        ("--power-delay-h", "5,x", "--power-delay-h takes 2"),
        ("--sector-share", "2", "sector_share"),
        ("--clustering", "0", "clustering"),
        ("--bbox", "1,2,3", "--bbox takes 4"),
        ("--cells-from", "cells.csv", "together"),
    ],
)
def test_cli_refuses_bad_conditions_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, words: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--scenario", "control", "--out", str(tmp_path / "x"), option, value])
    assert exc.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("dcm: error:") and words in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_runs_on_real_cells(tmp_path: Path, shared_data: Path) -> None:
    export = shared_data / "opencellid" / "ecuador_740.csv.gz"
    if not export.is_file():
        pytest.skip(f"OpenCelliD export {export} is absent")
    out = tmp_path / "real"
    args = ["simulate", "--scenario", "control", "--out", str(out), "--density", "0.05"]
    args += ["--cells-from", str(export), "--bbox", "-78.50,-0.20,-78.46,-0.15"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "scenario.json").read_text())
    assert meta["conditions"]["bbox"] == [-78.5, -0.2, -78.46, -0.15]
    assert meta["region"].startswith("OpenCelliD cells in")
    assert meta["counts"]["sites"] > 100 and meta["counts"]["sites_down"] == 0
