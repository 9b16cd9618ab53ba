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
