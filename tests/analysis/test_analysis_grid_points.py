"""points_to_cells: distinct coordinate pairs are told apart, each row gets its own cell."""

from __future__ import annotations

import h3
import numpy as np

from dcm.analysis.grid import points_to_cells


def test_points_to_cells_tells_pairs_apart_that_share_a_coordinate() -> None:
    # Same latitude or same longitude, swapped values, missing and infinite values.
    lat = np.array([10.0, 10.0, 20.0, 20.0, np.nan, 10.0, 5.0, np.inf, 10.0])
    lon = np.array([20.0, 21.0, 10.0, 20.0, 20.0, 20.0, np.nan, 1.0, 21.0])
    got = points_to_cells(lat, lon, 7)
    ok = np.isfinite(lat) & np.isfinite(lon)
    want = [
        h3.str_to_int(h3.latlng_to_cell(a, b, 7)) if good else 0
        for a, b, good in zip(lat, lon, ok, strict=True)
    ]
    assert got.tolist() == want
    assert len(set(got[ok].tolist())) == 4
    assert points_to_cells(np.array([]), np.array([]), 8).shape == (0,)


def test_parent_cells_and_resolutions_agree_with_h3() -> None:
    from dcm.analysis.grid import cell_resolutions, parent_cells

    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-85, 85, 2000), rng.uniform(-180, 180, 2000)
    cells = np.append(points_to_cells(lat, lon, 9), 0)
    assert (cell_resolutions(cells[:-1]) == 9).all()
    for res in (0, 3, 8, 9):
        got = parent_cells(cells, res)
        want = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in cells[:-1]]
        assert got[:-1].tolist() == want and got[-1] == 0
        assert (cell_resolutions(got[:-1]) == res).all()
