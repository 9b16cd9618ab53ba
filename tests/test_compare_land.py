"""Outages of the St Vincent sample cut to the coast, and the batch map's orientation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

import dcm
from dcm.analysis.land import COAST_MARGIN_M, widen
from dcm.compare import ComparisonResult, outages_bbox, write_comparison
from dcm.ingest.orientation import read_land
from dcm.publish.webmap import read_page_data

pytestmark = pytest.mark.slow


def _run(sample_data: Path, *, land: bool) -> ComparisonResult:
    folder = sample_data / "stvincent"
    return dcm.compare(
        cells=folder / "cells.csv.gz",
        baseline=folder / "baseline.csv.gz",
        event=folder / "event.csv.gz",
        population=folder / "population.tif",
        areas=folder / "areas.geojson",
        hazard=folder / "hazard.geojson",
        land=land,
    )


@pytest.fixture(scope="module")
def results(sample_data: Path) -> dict[str, ComparisonResult]:
    return {"clipped": _run(sample_data, land=True), "raw": _run(sample_data, land=False)}


def test_no_outage_runs_out_to_sea(results: dict[str, ComparisonResult]) -> None:
    clipped, raw = results["clipped"].outages, results["raw"].outages
    box = outages_bbox(raw)
    assert box is not None
    land = read_land(box)
    assert land is not None
    geoms = clipped.geometry.to_numpy()
    shore = widen(land, COAST_MARGIN_M + 5)  # 5 m: float rounding of the clipped rings
    assert shapely.covers(shore, geoms).all()
    # Before cutting, half the outage area of the sample lay at sea.
    at_sea = shapely.area(shapely.difference(raw.geometry.to_numpy(), widen(land, 400)))
    assert at_sea.sum() > 0.3 * shapely.area(raw.geometry.to_numpy()).sum()
    # Outages remain, on the island, and their area is recomputed.
    assert clipped["outage_id"].nunique() > 0.6 * raw["outage_id"].nunique() > 0
    assert clipped["area_km2"].sum() < raw["area_km2"].sum()
    recomputed = dcm.analysis.coverage.area_km2(geoms)
    np.testing.assert_allclose(clipped["area_km2"], recomputed, atol=1e-3)


def test_summary_tells_what_the_coast_did(results: dict[str, ComparisonResult]) -> None:
    land = results["clipped"].summary["inputs"]["land"]
    assert land["land_found"] is True
    assert land["cut"] > 0 and land["dropped"] >= 0
    assert "GSHHG" in land["source"]
    assert "land" not in results["raw"].summary["inputs"]


def test_batch_map_embeds_coast_and_place_names(
    results: dict[str, ComparisonResult], tmp_path: Path
) -> None:
    paths = write_comparison(results["clipped"], tmp_path)
    page = paths["map"].read_text(encoding="utf-8")
    # The land and place names travel in the page's data; the shared client draws them.
    land = read_page_data(page)["layers"]["orientation"]
    kinds = {f["properties"]["kind"] for f in land["features"]}
    names = {f["properties"]["name"] for f in land["features"] if f["properties"]["name"]}
    assert "land" in kinds
    assert {"Kingstown", "Georgetown", "Chateaubelair"} <= names
    assert "GeoNames (CC BY 4.0)" in land["attribution"]
    assert "dcm-coast" in page  # the client's coast style
    outages = json.loads(paths["outages"].read_text(encoding="utf-8"))
    assert len(outages["features"]) == len(results["clipped"].outages)
