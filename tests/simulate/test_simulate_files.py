"""write_scenario / load_truth: files in real formats, readable by standard tools."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from dcm.errors import Conflict
from dcm.schema import OPENCELLID_COLUMNS, STATUSES
from dcm.simulate import Scenario, load_truth, simulate, write_scenario
from dcm.simulate.writer import CSV_COLUMNS, FILES


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Path]:
    sc = simulate("stvincent", seed=2, scale=0.2)
    out = tmp_path_factory.mktemp("stvincent")
    paths = write_scenario(sc, out)
    assert set(paths) == set(FILES)
    assert all(p.is_file() for p in paths.values())
    return sc, out


def test_measurement_csv_has_duplicates_and_malformed_rows(written: tuple[Scenario, Path]) -> None:
    sc, out = written
    for name, frame in (("baseline", sc.baseline), ("event", sc.event)):
        with gzip.open(out / f"{name}.csv.gz", "rt") as fh:
            header = fh.readline().strip()
        assert header.split(",") == list(CSV_COLUMNS)
        raw = pd.read_csv(
            out / f"{name}.csv.gz", dtype=str, keep_default_na=False, on_bad_lines="skip"
        )
        parsed = pd.to_datetime(
            raw["timestamp"], utc=True, format="%Y-%m-%dT%H:%M:%SZ", errors="coerce"
        )
        good_ts = parsed.notna()
        lat = pd.to_numeric(raw["lat"], errors="coerce")
        lon = pd.to_numeric(raw["lon"], errors="coerce")
        valid = (
            good_ts
            & raw["status"].isin(STATUSES)
            & lat.between(-90, 90)
            & lon.between(-180, 180)
            & raw["device"].str.len().eq(16)
        )
        assert (~valid).sum() >= 1
        assert (~valid).sum() <= 0.01 * len(frame)
        clean = raw[valid]
        dups = clean.duplicated().sum()
        assert 0.005 * len(frame) <= dups <= 0.015 * len(frame)
        dedup = clean.drop_duplicates()
        # The file holds exactly the clean frame plus noise.
        assert set(dedup["measurement_id"]) == set(frame["measurement_id"])
        ts = pd.to_datetime(dedup["timestamp"], utc=True, format="ISO8601")
        assert ts.min() >= frame["timestamp"].min()
        meta = json.loads((out / "scenario.json").read_text())
        assert meta["files"]["written"][name]["duplicates"] == dups


def test_cells_csv_is_an_opencellid_export(written: tuple[Scenario, Path]) -> None:
    sc, out = written
    cells = pd.read_csv(out / "cells.csv.gz")
    assert list(cells.columns) == list(OPENCELLID_COLUMNS)
    assert len(cells) == len(sc.cells)
    assert cells["created"].dtype == np.int64
    assert (cells["created"] < sc.baseline_start.timestamp()).all()
    assert (cells["updated"] > cells["created"]).mean() > 0.9
    assert 0.3 < (cells["range"] == 1000).mean() < 0.6
    assert set(cells["mcc"]) == {360}
    assert set(cells["radio"]) <= {"GSM", "UMTS", "LTE", "NR"}


def test_population_geotiff(written: tuple[Scenario, Path]) -> None:
    sc, out = written
    with rasterio.open(out / "population.tif") as src:
        assert src.crs.to_epsg() == 4326
        band = src.read(1)
        assert src.transform == sc.population_transform
        assert abs(src.res[0] - 0.0009) < 1e-9
    np.testing.assert_array_equal(band, sc.population)


def test_geojson_layers(written: tuple[Scenario, Path]) -> None:
    _, out = written
    areas = gpd.read_file(out / "areas.geojson")
    hazard = gpd.read_file(out / "hazard.geojson")
    assert {"area_id", "name"} <= set(areas.columns)
    assert len(areas) == 5 and areas.is_valid.all()
    assert set(hazard["level"]) == {"red", "orange", "green"}
    doc = json.loads((out / "areas.geojson").read_text())
    assert "crs" not in doc


def test_truth_grid(written: tuple[Scenario, Path]) -> None:
    sc, out = written
    grid = pd.read_parquet(out / "truth_grid.parquet")
    assert {"h3", "network", "hour", "served"} <= set(grid.columns)
    assert grid["served"].dtype == bool
    assert str(grid["hour"].dt.tz) == "UTC"
    assert grid["hour"].min() == sc.event_start.floor("h")
    assert grid["hour"].max() < sc.event_end
    assert set(grid["network"]) == {"360-110", "360-100"}
    assert (grid["population"] > 0).all()
    assert not grid.duplicated(["h3", "network", "hour"]).any()
    # Some hexes lose service during the eruption and get it back later.
    by_hex = grid.groupby(["h3", "network"])["served"].agg(["min", "max", "last"])
    assert ((by_hex["min"] == False) & (by_hex["max"] == True)).sum() > 0  # noqa: E712
    first = grid[grid["hour"] == grid["hour"].min()]
    assert first["served"].mean() > 0.9


def test_load_truth_round_trip(written: tuple[Scenario, Path]) -> None:
    sc, out = written
    truth = load_truth(out)
    pd.testing.assert_frame_equal(truth.sites, sc.truth.sites)
    pd.testing.assert_frame_equal(truth.truth_cells, sc.truth.truth_cells)
    assert len(truth.truth_cells) == len(sc.truth.truth_cells)
    assert truth.meta["name"] == "stvincent" and truth.meta["seed"] == 2
    lon = np.linspace(-61.25, -61.12, 40)
    lat = np.linspace(13.15, 13.37, 40)
    t = sc.event_start + pd.Timedelta(hours=30)
    pd.testing.assert_frame_equal(truth.served(lon, lat, t), sc.truth.served(lon, lat, t))


def test_refuses_to_overwrite(written: tuple[Scenario, Path], tmp_path: Path) -> None:
    sc, out = written
    with pytest.raises(Conflict):
        write_scenario(sc, out)
    small = simulate("stvincent-control", seed=2, scale=0.02)
    write_scenario(small, tmp_path / "x")
    write_scenario(small, tmp_path / "x", overwrite=True)
    assert json.loads((tmp_path / "x" / "scenario.json").read_text())["name"] == (
        "stvincent-control"
    )
