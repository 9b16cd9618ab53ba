"""dcm.compare end to end on simulated scenarios, and the files write_comparison writes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

import dcm
from dcm.analysis.impact import population_points
from dcm.compare import (
    PARALLEL_STEP,
    PARTIAL_STATUS,
    WITHIN_STEP,
    ComparisonResult,
    compare_and_write,
    write_comparison,
)
from dcm.errors import Conflict
from dcm.schema import (
    CELL_OFFLINE_SINCE,
    CELL_STATUS_COLUMNS,
    GRID_STATUS_COLUMNS,
    OUTAGE_COLUMNS,
)
from dcm.simulate import simulate


@pytest.fixture(scope="module")
def quake() -> tuple[object, ComparisonResult]:
    scenario = simulate("quake", seed=4, scale=0.5)
    population = population_points(scenario.population, scenario.population_transform)
    result = dcm.compare(
        cells=scenario.cells,
        baseline=scenario.baseline,
        event=scenario.event,
        population=population,
        areas=scenario.areas,
        hazard=scenario.hazard,
    )
    return scenario, result


def test_compare_finds_the_quake_outages(quake) -> None:
    scenario, result = quake
    assert set(OUTAGE_COLUMNS) <= set(result.outages.columns)
    assert set(result.outages["network"]) >= {"all"}
    assert result.outages["confidence"].between(0, 1).all()
    assert (result.outages["onset"] <= result.outages["window_start"]).all()
    assert result.outages["population"].gt(0).any()
    assert list(result.cells.columns) == [*CELL_STATUS_COLUMNS, CELL_OFFLINE_SINCE]
    # Offline intervals say since when; other statuses have no such time.
    offline = result.cells["status"].eq("offline")
    assert offline.any()
    assert (
        result.cells.loc[offline, CELL_OFFLINE_SINCE] == result.cells.loc[offline, "start"]
    ).all()
    assert result.cells.loc[~offline, CELL_OFFLINE_SINCE].isna().all()
    assert set(GRID_STATUS_COLUMNS) <= set(result.grid.columns)
    assert set(result.grid["state"]) <= {"up", "down", "uncertain", "no_data"}

    # Accuracy floors at 24 h after onset (the benchmark measures the real figures).
    t = scenario.event_start + pd.Timedelta(hours=24)
    tc = scenario.truth.truth_cells
    truly = (tc["down_from"] <= t) & ~(tc["up_at"] <= t)
    cells = result.cells
    now = cells[(cells["start"] <= t) & (cells["end"] > t)]
    flagged = now[now["status"] == "offline"].merge(tc, on=["mcc", "net", "area", "cell"])
    true_off = tc[truly.to_numpy()]
    tp = flagged.merge(true_off[["mcc", "net", "area", "cell"]]).shape[0]
    precision = tp / max(len(flagged), 1)
    recall = tp / max(len(true_off), 1)
    assert precision >= 0.8, precision
    assert recall >= 0.6, recall

    pop = population_points(scenario.population, scenario.population_transform)
    lon, lat, people = pop["lon"].to_numpy(), pop["lat"].to_numpy(), pop["population"].to_numpy()
    before = scenario.truth.served(lon, lat, scenario.event_start - pd.Timedelta(minutes=1))
    served = scenario.truth.served(lon, lat, t)
    out = result.outages[
        (result.outages["window_start"] == t.floor("h")) & (result.outages["severity"] == "outage")
    ]
    tp = fp = fn = 0.0
    for net in before.columns:
        geoms = out[out["network"] == net].geometry.to_numpy()
        flag = (
            shapely.contains_xy(shapely.union_all(geoms), lon, lat)
            if len(geoms)
            else np.zeros(lon.size, dtype=bool)
        )
        down = before[net].to_numpy() & ~served[net].to_numpy()
        tp += people[flag & down].sum()
        fp += people[flag & ~down].sum()
        fn += people[~flag & down].sum()
    f1 = 2 * tp / (2 * tp + fp + fn)
    assert f1 >= 0.5, f1


def test_outage_ids_are_stable_while_an_outage_lasts(quake) -> None:
    _, result = quake
    out = result.outages
    per_id = out.groupby("outage_id").agg(
        n=("window_start", "size"), onset=("onset", "nunique"), nets=("network", "nunique")
    )
    assert (per_id["onset"] == 1).all() and (per_id["nets"] == 1).all()
    assert per_id["n"].max() >= 6  # a real outage is tracked over many windows
    # An id appears at most once per window.
    assert not out.duplicated(["outage_id", "window_start"]).any()


def test_control_week_has_no_outage() -> None:
    scenario = simulate("control", seed=4, scale=0.5)
    result = dcm.compare(cells=scenario.cells, baseline=scenario.baseline, event=scenario.event)
    assert result.outages.empty
    assert result.summary["counts"]["outages"] == 0


def test_at_judges_one_window(quake) -> None:
    scenario, _ = quake
    at = scenario.event_start + pd.Timedelta(hours=30, minutes=20)
    result = dcm.compare(
        cells=scenario.cells, baseline=scenario.baseline, event=scenario.event, at=at.isoformat()
    )
    assert list(result.windows) == [at.floor("h")]
    assert set(result.grid["window_start"]) == {at.floor("h")}
    assert set(result.outages["window_start"]) <= {at.floor("h")}


def test_compare_and_write_streams_the_grid_into_the_same_files(quake, tmp_path: Path) -> None:
    """The grid rows written as they are judged give the files of compare() followed by
    write_comparison(); the result keeps only the grid rows its summary and map read."""
    scenario, whole = quake
    write_comparison(whole, tmp_path / "whole")
    population = population_points(scenario.population, scenario.population_transform)
    inputs = {
        "cells": scenario.cells,
        "baseline": scenario.baseline,
        "event": scenario.event,
        "population": population,
        "areas": scenario.areas,
        "hazard": scenario.hazard,
    }
    result, paths = compare_and_write(tmp_path / "streamed", **inputs)
    for name in ("outages.geojson", "cells.csv", "status.parquet", "map.html"):
        assert (tmp_path / "streamed" / name).read_bytes() == (
            tmp_path / "whole" / name
        ).read_bytes(), name
    assert not (tmp_path / "streamed" / PARTIAL_STATUS).exists()
    assert result.grid_path == paths["status"] == tmp_path / "streamed" / "status.parquet"
    summaries = [
        json.loads((tmp_path / folder / "summary.json").read_text())
        for folder in ("whole", "streamed")
    ]
    assert WITHIN_STEP in summaries[1]["timings_s"]
    assert PARALLEL_STEP not in summaries[1]["timings_s"]
    for summary in summaries:
        del summary["created"], summary["timings_s"]
    assert summaries[0] == summaries[1]
    # Kept: every row of the last window, every row not up, and each window.
    full, kept = whole.grid, result.grid
    last = full["window_start"] == full["window_start"].max()
    assert 0 < len(kept) < len(full) and (full["state"] == "up").any()
    want = full[last.to_numpy() | (full["state"] != "up").to_numpy()].reset_index(drop=True)
    got_last = (kept["window_start"] == full["window_start"].max()).to_numpy()
    got = kept[got_last | (kept["state"] != "up").to_numpy()].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert set(kept["window_start"]) == set(full["window_start"])

    # A run that fails leaves no partial grid file behind.
    failing = tmp_path / "failing"
    (failing / "outages.geojson").mkdir(parents=True)  # not writable as a file
    with pytest.raises(OSError):
        compare_and_write(failing, overwrite=True, **inputs)
    assert PARTIAL_STATUS not in {p.name for p in failing.iterdir()}
    assert (failing / "outages.geojson").is_dir()
    with pytest.raises(Conflict):
        compare_and_write(failing, **inputs)


def test_write_comparison_files(quake, tmp_path: Path) -> None:
    import pyogrio

    _, result = quake
    paths = write_comparison(result, tmp_path / "out")
    assert {p.name for p in paths.values()} >= {
        "outages.geojson",
        "cells.csv",
        "status.parquet",
        "summary.json",
    }
    doc = json.loads((tmp_path / "out" / "outages.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert len(doc["features"]) == len(result.outages)
    for feature in doc["features"]:
        props = feature["properties"]
        assert props["window_start"].endswith("Z") and props["onset"].endswith("Z")
        assert props["network"] == "all" or props["network"].count("-") == 1
        geom = feature["geometry"]
        polygons = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        for rings in polygons:
            exterior = rings[0]
            assert exterior[0] == exterior[-1]
            assert shapely.LinearRing(exterior).is_ccw
            lon, lat = np.array(exterior).T
            assert (lon > -21).all() and (lon < -19).all()  # lon first, then lat
            assert (lat > -31).all() and (lat < -29).all()
        assert shape(geom).is_valid
    back = pyogrio.read_dataframe(tmp_path / "out" / "outages.geojson")
    assert len(back) == len(result.outages)
    assert back.crs.to_epsg() == 4326
    cells = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert list(cells.columns) == [*CELL_STATUS_COLUMNS, CELL_OFFLINE_SINCE]
    status = pd.read_parquet(tmp_path / "out" / "status.parquet")
    assert set(GRID_STATUS_COLUMNS) <= set(status.columns)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["software"]["name"] == "dcm"
    assert summary["parameters"]["resolution"] == 8
    assert {"inputs", "counts", "timings_s", "rejected_rows"} <= set(summary)
    with pytest.raises(Conflict):
        write_comparison(result, tmp_path / "out")
    write_comparison(result, tmp_path / "out", overwrite=True)


def test_compare_reads_files(tmp_path: Path) -> None:
    from dcm.simulate import write_scenario

    scenario = simulate("eruption", seed=5, scale=0.2)
    files = write_scenario(scenario, tmp_path / "scn")
    result = dcm.compare(
        cells=files["cells.csv.gz"],
        baseline=files["baseline.csv.gz"],
        event=files["event.csv.gz"],
        population=files["population.tif"],
        areas=files["areas.geojson"],
        hazard=files["hazard.geojson"],
    )
    inputs = result.summary["inputs"]
    assert inputs["event"]["source"].endswith("event.csv.gz")
    # The written files carry malformed rows; ingest rejects them and the summary says so.
    assert result.summary["rejected_rows"]["event"]["count"] > 0
    assert inputs["population"]["people"] > 0
    assert "areas" in result.outages.columns or result.outages.empty


@pytest.fixture
def thin_sample(sample_data: Path, tmp_path: Path) -> dict[str, Path]:
    """A tenth of the St Vincent sample's baseline and event rows, the sample's cells,
    an empty cell list, the cells and the hazard footprint moved 20 degrees west."""
    import geopandas as gpd

    rng = np.random.default_rng(2)
    files: dict[str, Path] = {}
    for name in ("baseline", "event"):
        header, *rows = gzip.decompress(
            (sample_data / "stvincent" / f"{name}.csv.gz").read_bytes()
        ).splitlines(keepends=True)  # the sample has malformed rows: keep them as they are
        files[name] = tmp_path / f"{name}.csv"
        keep = np.flatnonzero(rng.uniform(size=len(rows)) < 0.1)
        files[name].write_bytes(header + b"".join(rows[i] for i in keep))
    cells = pd.read_csv(sample_data / "stvincent" / "cells.csv.gz", dtype=str)
    files["cells"] = sample_data / "stvincent" / "cells.csv.gz"
    files["no_cells"] = tmp_path / "no_cells.csv"
    cells.iloc[:0].to_csv(files["no_cells"], index=False)
    files["far_cells"] = tmp_path / "far_cells.csv"
    cells.assign(lon=(cells["lon"].astype(float) - 20).round(6)).to_csv(
        files["far_cells"], index=False
    )
    hazard = gpd.read_file(sample_data / "stvincent" / "hazard.geojson")
    files["far_hazard"] = tmp_path / "far_hazard.geojson"
    hazard.set_geometry(hazard.geometry.translate(xoff=-20)).to_file(files["far_hazard"])
    return files


def test_compare_without_cells_detects_on_the_grid_alone(thin_sample: dict[str, Path]) -> None:
    for cells in ("no_cells", "far_cells"):
        result = dcm.compare(
            cells=thin_sample[cells], baseline=thin_sample["baseline"], event=thin_sample["event"]
        )
        (warning,) = result.summary["warnings"]
        assert warning.startswith("cells: ") and "grid alone" in warning
        assert result.cells.empty and not result.grid.empty
        assert result.summary["counts"]["cells_latest"] == {}
    assert "none of the 455 cells lies within 20 km" in warning
    assert result.summary["inputs"]["cells"]["near_measurements"] == 0
    # A frame without rows, as from a filter that left nothing.
    frame = dcm.ingest.read_cells(thin_sample["cells"]).frame.iloc[:0]
    result = dcm.compare(cells=frame, baseline=thin_sample["baseline"], event=thin_sample["event"])
    assert "holds no cells" in result.summary["warnings"][0]


def test_compare_warns_of_a_hazard_far_from_the_data(thin_sample: dict[str, Path]) -> None:
    args = {k: thin_sample[k] for k in ("cells", "baseline", "event")}
    result = dcm.compare(**args, hazard=thin_sample["far_hazard"])
    (warning,) = result.summary["warnings"]
    assert warning.startswith("hazard: ") and "does not overlap the measurements" in warning
    assert not result.cells.empty  # the cells are near: used as usual


def test_cli_compare_with_bad_inputs_warns_without_traceback(
    thin_sample: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    args = [
        "--cells", str(thin_sample["no_cells"]), "--baseline", str(thin_sample["baseline"]),
        "--event", str(thin_sample["event"]), "--hazard", str(thin_sample["far_hazard"]),
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", "from dcm.cli.main import main; main()", "compare", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "dcm: warning: cells: the cell list holds no cells" in proc.stderr
    assert "dcm: warning: hazard: the footprint" in proc.stderr
    assert "cells in the last window: none" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [w.split(":")[0] for w in summary["warnings"]] == ["cells", "hazard"]
    assert (out / "map.html").stat().st_size > 0


def test_summary_counts_confirmed_outages_and_suspected_beside_them(quake) -> None:
    _, result = quake
    out = result.outages
    assert set(out["tier"]) <= {"confirmed", "suspected"}
    suspected = out["tier"] == "suspected"
    counts = result.summary["counts"]
    assert counts["outage_features"] == len(out)
    assert counts["suspected_features"] == int(suspected.sum())
    assert counts["outages"] == out.loc[~suspected, "outage_id"].nunique()
    last = out["window_start"].max()
    for net, entry in counts["per_network"].items():
        now = out[(out["network"] == net) & (out["window_start"] == last)]
        assert entry["outages_latest"] == int((now["tier"] == "confirmed").sum())
        assert entry["suspected_latest"] == int((now["tier"] == "suspected").sum())
    certain = out["certainty"].where(~suspected, "possible")
    assert (out["certainty"] == certain).all()
    assert set(out.loc[~suspected, "certainty"]) <= {"observed", "likely"}


def test_compare_on_converted_datasets_gives_the_same_files(
    sample_data: Path, thin_sample: dict[str, Path], tmp_path: Path
) -> None:
    """The sample's CSV in, or the same CSV converted by dcm convert (small chunks, so
    copies and bad rows straddle chunk boundaries): byte-identical outages.geojson,
    cells.csv and status.parquet; a dataset at another resolution has its cells
    recomputed, with a note."""
    from dcm.convert import convert

    folder = sample_data / "stvincent"
    runs = [
        (folder / "cells.csv.gz", folder / "baseline.csv.gz", folder / "event.csv.gz", 8),
        (thin_sample["cells"], thin_sample["baseline"], thin_sample["event"], 7),
    ]
    for n, (cells, baseline, event, resolution) in enumerate(runs):
        want = dcm.compare(cells=cells, baseline=baseline, event=event)
        write_comparison(want, tmp_path / f"csv-{n}")
        data = [
            convert(
                [path], tmp_path / f"{n}-{path.name}", resolution=resolution, chunk_bytes=60_000
            ).path
            for path in (baseline, event)
        ]
        got = dcm.compare(cells=cells, baseline=data[0], event=data[1])
        write_comparison(got, tmp_path / f"ds-{n}")
        for name in ("outages.geojson", "cells.csv", "status.parquet"):
            a = (tmp_path / f"csv-{n}" / name).read_bytes()
            assert (tmp_path / f"ds-{n}" / name).read_bytes() == a, (resolution, name)
        assert got.summary["rejected_rows"] == want.summary["rejected_rows"]
        for kind in ("baseline", "event"):
            inputs = got.summary["inputs"][kind]
            assert {k: inputs[k] for k in ("rows", "rows_in", "duplicates")} == {
                k: want.summary["inputs"][kind][k] for k in ("rows", "rows_in", "duplicates")
            }
            note = "stored cells reused" if resolution == 8 else "recomputed: the dataset has"
            assert inputs["h3"].startswith(note)
        if n == 0:  # the eruption sample: outages and offline cells to compare
            assert len(got.outages) > 0 and (got.cells["status"] == "offline").any()


def test_compare_refuses_a_directory_that_is_not_a_dataset(
    thin_sample: dict[str, Path], tmp_path: Path
) -> None:
    from dcm.errors import IngestError

    with pytest.raises(IngestError, match="not a dcm dataset"):
        dcm.compare(cells=thin_sample["cells"], baseline=tmp_path, event=thin_sample["event"])


def test_cli_compare_reads_dataset_directories(
    thin_sample: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dcm.cli.main import main
    from dcm.convert import convert

    def run(argv: list[str]) -> int:
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    data = {k: convert([thin_sample[k]], tmp_path / k).path for k in ("baseline", "event")}
    args = ["-q", "compare", "--cells", str(thin_sample["cells"]), "--out", str(tmp_path / "o")]
    assert run([*args, "--baseline", str(data["baseline"]), "--event", str(data["event"])]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["inputs"]["event"]["dataset"] is True
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run([*args, "--overwrite", "--baseline", str(empty), "--event", str(data["event"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dcm: error: {empty}: a directory without _dcm.json, not a dcm dataset")
    assert "\n" not in err
