"""Cells offline per outage: the offline cells of the sites whose service area the
outage is, not only those standing inside it (a mast serves the area around it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from dcm.analysis.coverage import ALL_DEGRADED, ALL_OUTAGE, CoverageInput
from dcm.analysis.outages import _cells_serving

# Two sites on the equator, 1 km reach: s0 (network 0) at 0°, s1 (network 1) at 0.05°E.
# 1 km is 0.00898° of longitude there.
COVERAGE = CoverageInput(
    lon=np.array([0.0, 0.05]),
    lat=np.array([0.0, 0.0]),
    network=np.array([0, 1]),
    reach=np.array([[1000.0, 1000.0], [1000.0, np.nan]]),
    p=np.array([[0.99, 0.99], [0.99, 0.99]]),
)
CELLS = pd.DataFrame(
    {
        "site_id": ["s0", "s0", "s1", "s1"],
        "lon": [0.0, 0.0, 0.05, 0.05],
        "lat": [0.0, 0.0, 0.0, 0.0],
        "network": ["360-1", "360-1", "360-2", "360-2"],
    }
)
CELL_NET = np.array([0, 0, 1, 1])
# Cells × windows: s0's two cells offline in both windows, s1's first cell in both,
# s1's second cell never.
OFFLINE = np.array([[True, True], [True, True], [True, True], [False, False]])


def count(parts: list[tuple[int, int, shapely.Geometry]]) -> list[int]:
    layer = np.array([p[0] for p in parts])
    col = np.array([p[1] for p in parts])
    geoms = np.array([p[2] for p in parts], dtype=object)
    out = _cells_serving(geoms, layer, col, CELLS, CELL_NET, OFFLINE, COVERAGE)
    assert out is not None
    return out.tolist()


def test_an_outage_counts_the_offline_cells_of_the_sites_serving_it() -> None:
    beside_s0 = shapely.box(0.002, -0.002, 0.006, 0.002)  # in s0's reach, no cell inside
    both = shapely.box(-0.004, -0.001, 0.054, 0.001)
    far = shapely.box(0.2, 0.0, 0.21, 0.01)
    edge = shapely.box(0.00885, -0.0005, 0.0095, 0.0005)  # beyond 98 % of s0's reach
    assert count(
        [
            (0, 0, beside_s0),  # s0's 2 offline cells, though none stands inside
            (1, 0, beside_s0),  # network 1's outage: s0 is not its site
            (ALL_OUTAGE, 0, both),  # every network: s0's 2 + s1's 1 offline cell
            (ALL_DEGRADED, 0, both),
            (1, 0, far),
            (0, 0, edge),
            (1, 1, both),  # s1 is no server in window 1 (no reach): nothing counts
        ]
    ) == [2, 0, 3, 3, 0, 0, 0]


def test_without_matching_sites_the_caller_counts_cells_where_they_stand() -> None:
    geoms = np.array([shapely.box(-0.01, -0.01, 0.01, 0.01)], dtype=object)
    args = (geoms, np.array([0]), np.array([0]))
    assert _cells_serving(*args, CELLS, CELL_NET, OFFLINE, None) is None
    fewer = CELLS.assign(site_id=["s0", "s0", "s1", "s2"])  # three sites, two coverage rows
    assert _cells_serving(*args, fewer, CELL_NET, OFFLINE, COVERAGE) is None
