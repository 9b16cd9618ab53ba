"""Scenarios on the real cell geometry of an OpenCelliD export (Ecuador, MCC 740)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from dcm.errors import ParameterError
from dcm.ingest import read_cells
from dcm.schema import OPENCELLID_COLUMNS
from dcm.simulate import Conditions, Scenario, simulate, write_scenario
from dcm.simulate.realcells import cells_in_bbox

#: A box in northern Quito: ~210 sites, and one CDMA cell (not simulated).
QUITO_BOX = (-78.50, -0.20, -78.46, -0.15)
KEYS = ["radio", "mcc", "net", "area", "cell"]


@pytest.fixture(scope="module")
def export(shared_data: Path) -> Path:
    path = shared_data / "opencellid" / "ecuador_740.csv.gz"
    if not path.is_file():
        pytest.skip(f"OpenCelliD export {path} is absent")
    return path


@pytest.fixture(scope="module")
def quito(export: Path) -> Scenario:
    cond = Conditions(cells_from=str(export), bbox=QUITO_BOX, density=0.5, sector_share=0.3)
    return simulate("quake", seed=2, conditions=cond)


def _raw_rows_in_box(export: Path) -> pd.DataFrame:
    """The export's rows inside the box, read independently of dcm (no header in the file)."""
    raw = pd.read_csv(
        export,
        header=None,
        names=list(OPENCELLID_COLUMNS),  # the format's column order, a published fact
    )
    w, s, e, n = QUITO_BOX
    inside = raw["lon"].between(w, e) & raw["lat"].between(s, n)
    return raw[inside].sort_values(KEYS).reset_index(drop=True)


def test_written_cells_are_exactly_the_export_rows_in_the_box(
    quito: Scenario, export: Path, tmp_path: Path
) -> None:
    paths = write_scenario(quito, tmp_path / "quito")
    written = pd.read_csv(paths["cells.csv.gz"]).sort_values(KEYS).reset_index(drop=True)
    expected = _raw_rows_in_box(export)
    assert len(expected) > 1000 and "CDMA" in set(expected["radio"])
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    meta = json.loads(paths["scenario.json"].read_text())
    assert meta["conditions"]["bbox"] == list(QUITO_BOX)
    assert meta["utc_offset_h"] == -5.0


def test_truth_cells_are_the_simulated_export_cells(quito: Scenario) -> None:
    truth = quito.truth.truth_cells
    cells = quito.cells
    modelled = cells[cells["radio"] != "CDMA"]
    pd.testing.assert_frame_equal(
        truth[KEYS].sort_values(KEYS).reset_index(drop=True),
        modelled[KEYS]
        .astype(truth[KEYS].dtypes.to_dict())
        .sort_values(KEYS)
        .reset_index(drop=True),
    )
    # Sites are the export's own co-location / eNodeB groups.
    site_of = modelled.set_index(KEYS)["site_id"]
    assert (truth.set_index(KEYS)["site_id"] == site_of.reindex(truth.set_index(KEYS).index)).all()
    assert set(quito.truth.sites["site_id"]) == set(modelled["site_id"])


def test_measurements_name_real_cells_that_are_up(quito: Scenario) -> None:
    ok = quito.event[quito.event["status"] == "ok"].rename(columns={"mnc": "net"})
    ok = ok.astype(
        {"radio": "string", "mcc": "int64", "net": "int64", "area": "int64", "cell": "int64"}
    )
    joined = ok.merge(quito.truth.truth_cells, on=KEYS, how="left", validate="many_to_one")
    assert joined["site_id"].notna().all()
    down = (joined["timestamp"] >= joined["down_from"]) & (
        joined["up_at"].isna() | (joined["timestamp"] < joined["up_at"])
    )
    assert not down.any()
    assert quito.truth.sites["down_from"].notna().sum() > 5
    hours = (quito.event_start - quito.baseline_start) / pd.Timedelta(hours=1)
    per_site_hour = len(quito.baseline) / len(quito.truth.sites) / hours
    assert per_site_hour == pytest.approx(0.5, rel=0.2)
    # Reports come from where the cells are.
    w, s, e, n = QUITO_BOX
    assert quito.baseline["lon"].between(w - 0.01, e + 0.01).mean() > 0.99
    assert quito.baseline["lat"].between(s - 0.01, n + 0.01).mean() > 0.99


def test_region_follows_the_cells(quito: Scenario) -> None:
    w, _, _, n = QUITO_BOX
    t = quito.population_transform
    assert w - 0.01 <= t.c <= w + 0.05 and n - 0.05 <= t.f <= n + 0.01
    # People live where sites are dense: most people within 1 km of a site.
    rows, cols = np.nonzero(quito.population > 0)
    lon = t.c + t.a * (cols + 0.5)
    lat = t.f + t.e * (rows + 0.5)
    sites = quito.truth.sites
    from scipy.spatial import cKDTree

    scale = np.array([111_320 * np.cos(np.radians(-0.17)), 110_574])
    tree = cKDTree(sites[["lon", "lat"]].to_numpy() * scale)
    dist, _ = tree.query(np.column_stack((lon, lat)) * scale)
    people = quito.population[rows, cols]
    assert people[dist < 1_000].sum() > 0.9 * people.sum()
    # The hazard sits inside the region.
    assert not quito.hazard.empty
    assert shapely.box(*QUITO_BOX).intersects(quito.hazard.union_all())
    assert set(quito.areas["area_id"]) == {f"BX-{i:02d}" for i in range(1, 10)}


def test_real_cells_need_a_box_with_sites(export: Path) -> None:
    with pytest.raises(ParameterError, match="sites"):
        simulate("quake", conditions=Conditions(cells_from=str(export), bbox=(0, 0, 0.1, 0.1)))
    with pytest.raises(ParameterError, match="not 'stvincent'"):
        simulate("stvincent", conditions=Conditions(cells_from=str(export), bbox=QUITO_BOX))


def test_cells_in_bbox_keeps_rows_inside(export: Path) -> None:
    frame = read_cells(export).frame
    inside = cells_in_bbox(frame, QUITO_BOX)
    w, s, e, n = QUITO_BOX
    assert inside["lon"].between(w, e).all() and inside["lat"].between(s, n).all()
    outside = frame[~(frame["lon"].between(w, e) & frame["lat"].between(s, n))]
    assert len(inside) + len(outside) == len(frame)
