"""Sites' service areas and the offline cells serving an area, on a hand-computed case.

Three districts in a row along the equator-ish latitude 13.0 (each 0.02° wide, x from
-61.30): A [0, 0.02), B [0.02, 0.04), C [0.04, 0.06). At 13° one degree of longitude is
111,320 · cos 13° ≈ 108,468 m, so 0.01° ≈ 1,085 m.

* site s1 (network 360-100, two cells, both offline) at x 0.010 (mean of its cells at
  0.009 and 0.011): baseline reach 1,500 m (±0.0138°) → serves A and B, not C;
* site s2 (360-100, one cell offline) at x 0.050: no baseline reach, baseline range
  600 m (±0.0055°) → serves C only;
* site s3 (360-110, one cell offline) at x 0.030: not in the baseline; OpenCelliD range
  5,000 m clipped to 2,500 m (±0.023°) → serves A, B and C;
* site s4 (360-110, online): never counted.

Offline cells per district: A: 360-100 2, 360-110 1, all 3; B: 360-100 2, 360-110 1,
all 3; C: 360-100 1, 360-110 1, all 2. Counting cells located in each district instead
would give A 2, B 1, C 1.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from dcm.analysis.serving import cells_serving_areas, site_service_areas
from dcm.schema import CRS

X0, Y = -61.30, 13.0


def _districts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"area_id": ["A", "B", "C"]},
        geometry=[shapely.box(X0 + x, Y - 0.05, X0 + x + 0.02, Y + 0.05) for x in (0, 0.02, 0.04)],
        crs=CRS,
    )


def _cells() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": ["s1", "s1", "s2", "s3", "s4"],
            "network": ["360-100", "360-100", "360-100", "360-110", "360-110"],
            "cell": [1, 2, 3, 4, 5],
            "lon": [X0 + x for x in (0.009, 0.011, 0.050, 0.030, 0.035)],
            "lat": [Y] * 5,
            "range": [1000.0, 1000.0, 800.0, 5000.0, 1000.0],
        }
    )


BASELINE_SITES = pd.DataFrame(
    {
        "site_id": ["s1", "s2", "s4"],
        "reach_m": [1500.0, np.nan, 900.0],
        "range_m": [1000.0, 600.0, 1000.0],
    }
)


def test_service_radius_is_the_baseline_reach_else_its_range_else_opencellid() -> None:
    service = site_service_areas(_cells(), BASELINE_SITES).set_index("site_id")
    assert service.loc[["s1", "s2", "s3", "s4"], "radius_m"].tolist() == [
        1500.0,
        600.0,
        2500.0,  # 5,000 m clipped to the largest cell range
        900.0,
    ]
    # Without a baseline: every site from its cells' OpenCelliD range.
    alone = site_service_areas(_cells()).set_index("site_id")["radius_m"]
    assert alone.loc[["s1", "s2", "s3"]].tolist() == [1000.0, 800.0, 2500.0]
    # The disc is centred on the mean of the site's cells, of the radius in metres.
    disc = service.loc["s1", "geometry"]
    minx, _, maxx, _ = disc.bounds
    m_per_deg = 111_320 * np.cos(np.radians(Y))
    assert (minx + maxx) / 2 == pytest.approx(X0 + 0.010, abs=1e-9)
    assert (maxx - minx) / 2 * m_per_deg == pytest.approx(1500.0, rel=2e-3)
    assert service.loc["s3", "network"] == "360-110"


def test_offline_cells_count_where_their_sites_serve() -> None:
    cells = _cells()
    offline = cells[cells["cell"] != 5]
    service = site_service_areas(cells, BASELINE_SITES)
    counts = cells_serving_areas(_districts(), offline, service)
    got = {(r.area_id, r.network): r.cells for r in counts.itertuples()}
    assert got == {
        ("A", "360-100"): 2,
        ("A", "360-110"): 1,
        ("A", "all"): 3,
        ("B", "360-100"): 2,
        ("B", "360-110"): 1,
        ("B", "all"): 3,
        ("C", "360-100"): 1,
        ("C", "360-110"): 1,
        ("C", "all"): 2,
    }


def test_cell_of_an_unknown_site_counts_where_it_stands() -> None:
    service = site_service_areas(_cells(), BASELINE_SITES)
    stray = pd.DataFrame(
        {"site_id": ["elsewhere"], "network": ["360-100"], "lon": [X0 + 0.045], "lat": [Y]}
    )
    counts = cells_serving_areas(_districts(), stray, service)
    assert counts.values.tolist() == [["C", "360-100", 1], ["C", "all", 1]]
    assert cells_serving_areas(_districts(), stray.iloc[0:0], service).empty
