"""``dcm validate``: report, rejected-rows file, JSON, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcm.cli.main import cli, main

from .livedata import run

HEADER = "timestamp,lat,lon,status,mcc,mnc,measurement_id"
GOOD = "2023-05-24T10:00:00Z,13.4,144.7,ok,310,470,m{}"


@pytest.fixture
def measurements(tmp_path: Path) -> Path:
    lines = [HEADER, *(GOOD.format(i) for i in range(5))]
    lines.insert(3, "2023-05-24T10:00:00Z,99,144.7,ok,310,470,bad1")  # line 4
    lines.append("2023-05-24T10:00:00,13.4,144.7,ok,310,470,bad2")  # line 8
    lines.append(GOOD.format(0))  # duplicate of m0
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_lists_rejected_lines(measurements: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(measurements)])
    assert result.exit_code == 0, result.output
    assert "rows in = accepted + rejected + duplicates: 8 = 5 + 2 + 1" in result.output
    assert "outside -90..90" in result.output and "naive timestamp" in result.output


def test_json_and_rejected_file(measurements: Path, tmp_path: Path) -> None:
    out = tmp_path / "rejected.csv"
    args = ["validate", str(measurements), "--json", "--rejected", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["kind"] == "measurements"
    assert [r["line"] for r in report["rejected_rows"]] == [4, 8]
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["field"]) for r in rows] == [("4", "lat"), ("8", "timestamp")]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0  # refuses to overwrite without --overwrite
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0


def test_kind_is_sniffed_for_cells(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv.gz"
    rows = "GSM,740,1,10,100,0,-78.5,-0.2,1000,5,1,1600000000,1650000000,0\n" * 2
    path.write_bytes(gzip.compress(rows.encode()))
    result = CliRunner().invoke(cli, ["validate", str(path), "--json"])
    report = json.loads(result.output)
    assert report["kind"] == "cells"
    assert (report["accepted"], report["duplicates"]) == (1, 1)


def test_gnettrack_needs_a_time_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log.txt"
    path.write_text(
        "Timestamp\tLongitude\tLatitude\tOperator\tCellID\tLAC\tNetworkTech\tLevel\n"
        "2023.05.24_14.03.10\t144.79\t13.47\t310470\t12\t1200\t4G\t-95\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["validate", str(path)])
    assert info.value.code == 2
    assert "time zone" in capsys.readouterr().err
    ok = CliRunner().invoke(cli, ["validate", str(path), "--timezone", "+10:00", "--json"])
    assert json.loads(ok.output)["accepted"] == 1


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b\x08\x00broken", b"a;b\n1;2\n"])
def test_unreadable_files_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        main(["validate", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("dcm: error: ") and str(path) in err and err.count("\n") == 1


def test_missing_file_in_a_real_process(tmp_path: Path) -> None:
    dcm = Path(sys.executable).with_name("dcm")
    if not dcm.exists():
        pytest.skip("dcm entry point not installed next to this Python")
    missing = tmp_path / "missing.csv"
    proc = subprocess.run(
        [str(dcm), "validate", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("dcm: error: ") and "Traceback" not in proc.stderr
    assert str(missing) in proc.stderr


def test_large_files_are_read_with_progress(
    measurements: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcm.cli import validate

    monkeypatch.setattr(validate, "PROGRESS_MIN_BYTES", 10)
    result = CliRunner().invoke(cli, ["validate", str(measurements), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows_in"] == 8


def test_markup_in_values_is_printed_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "[odd] name.csv"
    path.write_text(HEADER + "\n" + "2023-05-24T10:00:00Z,[bold]x[/bold],1,ok,1,1,a\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "[bold]x[/bold]" in result.output and "[odd] name.csv" in result.output


def _cell_rows(n: int) -> str:
    """``n`` header-less OpenCelliD rows: GSM cells 50 m apart along a meridian."""
    tail = "1000,5,1,1600000000,1650000000,0"
    return "".join(
        f"GSM,740,1,10,{100 + i},0,-78.5,{-0.2 + i * 0.00045:.6f},{tail}\n" for i in range(n)
    )


def test_cell_report_gives_sites_and_the_largest(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text(_cell_rows(40))  # 40 cells over 1.95 km: sites no wider than 300 m
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if " sites; largest: " in x)
    sites, rest = line.split(" sites; largest: ")
    cells, across = rest.split(" cells, ")
    assert int(sites) >= 7 and 1 < int(cells) <= 7
    assert 0 < float(across.removesuffix(" m across").replace(",", "")) <= 300
    report = json.loads(CliRunner().invoke(cli, ["validate", str(path), "--json"]).output)
    assert report["sites"] == int(sites) and report["largest_site_cells"] == int(cells)


def _refusals(path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """stderr of validate (auto, --kind cells) and ingest (measurements, cells); all must
    refuse the file with exit code 2 and a one-line error."""
    commands = [
        ["validate", str(path)],
        ["validate", "--kind", "cells", str(path)],
        ["ingest", "--event", "quake", str(path)],
        ["ingest", "--event", "quake", "--kind", "cells", str(path)],
    ]
    assert run(["event", "create", "quake", "--start", "2023-05-24T00:00Z"], capsys)[0] == 0
    errors = []
    for args in commands:
        code, _, err = run(args, capsys)
        assert code == 2, (args, err)
        assert err.startswith(f"dcm: error: {path}: ") and err.count("\n") == 1, (args, err)
        errors.append(err)
    return errors


def test_measurements_without_status_are_refused_alike(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Serving-cell columns once made validate take this for a cell export and accept it
    while ingest refused it."""
    path = tmp_path / "no_status.csv"
    path.write_text(
        "timestamp,lat,lon,mcc,net,radio,area,cell\n"
        "2023-05-24T10:00:00Z,13.4,144.7,310,470,LTE,1,2561\n"
    )
    errors = _refusals(path, data_dir, capsys)
    missing = "missing required columns ['status']"
    assert missing in errors[0] and missing in errors[2] and errors[0] == errors[2]
    assert all("not a cell export" in e and "timestamp" in e for e in errors[1::2])


def test_zip_archives_are_refused_alike(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored (uncompressed) member starts with readable text: a large cell export
    inside once passed the binary check and was read with the archive's headers as rows."""
    import zipfile

    path = tmp_path / "cells.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("740.csv", _cell_rows(2_000))
    errors = _refusals(path, data_dir, capsys)
    assert len(set(errors)) == 1 and "ZIP archive" in errors[0] and "unzip" in errors[0]


def test_ingest_of_cells_prints_sites_like_validate(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cells.csv"
    path.write_text(_cell_rows(40))
    assert run(["event", "create", "quake", "--start", "2023-05-24T00:00Z"], capsys)[0] == 0
    code, out, _ = run(["ingest", "--event", "quake", "--kind", "cells", str(path)], capsys)
    assert code == 0, out
    code, checked, _ = run(["validate", str(path)], capsys)
    line = next(x for x in checked.splitlines() if " sites; largest: " in x)
    assert f"  {line}" in out.splitlines()
