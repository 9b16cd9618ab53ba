"""Outages cut to the land: geometry, area and what is left alone."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from dcm.analysis.coverage import M_PER_DEG_LAT, area_km2
from dcm.analysis.land import clip_to_land, widen

# A square island 0.1° wide at 13° N; an outage half on it, one at sea, one inland.
LAND = shapely.box(-61.3, 13.1, -61.2, 13.2)


def _outages() -> gpd.GeoDataFrame:
    geoms = [
        shapely.box(-61.25, 13.12, -61.15, 13.18),  # half of it east of the shore
        shapely.box(-61.0, 13.0, -60.95, 13.05),  # open sea
        shapely.box(-61.28, 13.15, -61.26, 13.17),  # inland
    ]
    return gpd.GeoDataFrame(
        {
            "outage_id": ["half", "sea", "inland"],
            "area_km2": area_km2(np.array(geoms)),
            "population": [10.0, 0.0, 5.0],
        },
        geometry=geoms,
        crs=4326,
    )


def test_clip_keeps_the_land_part_and_recomputes_the_area() -> None:
    out = clip_to_land(_outages(), LAND, margin_m=0)
    assert list(out["outage_id"]) == ["half", "inland"]
    half = out.set_index("outage_id").loc["half"]
    assert half.geometry.bounds[2] == pytest.approx(-61.2)
    assert half["area_km2"] == pytest.approx(area_km2(np.array([half.geometry]))[0], abs=1e-3)
    assert half["area_km2"] == pytest.approx(_outages()["area_km2"][0] / 2, rel=0.01)
    # An outage wholly inland is the same shape, other columns untouched.
    inland = out.set_index("outage_id").loc["inland"]
    assert shapely.equals(inland.geometry, _outages().geometry[2])
    assert inland["population"] == 5.0


def test_margin_widens_the_shore_by_that_many_metres() -> None:
    out = clip_to_land(_outages(), LAND, margin_m=500)
    east_edge = out.set_index("outage_id").loc["half"].geometry.bounds[2]
    widened_m = (east_edge - (-61.2)) * 111_320 * np.cos(np.radians(13.15))
    assert widened_m == pytest.approx(500, rel=0.05)
    grown = widen(LAND, 500)
    north_m = (grown.bounds[3] - 13.2) * M_PER_DEG_LAT
    assert north_m == pytest.approx(500, rel=0.02)


def test_no_land_leaves_the_frame_as_it_is() -> None:
    frame = _outages()
    assert clip_to_land(frame, None) is frame
    assert clip_to_land(frame, shapely.Polygon()) is frame
    empty = frame.iloc[:0]
    assert clip_to_land(empty, LAND).empty


def test_clip_never_changes_its_input_and_keeps_polygons_only() -> None:
    frame = _outages()
    before = frame.copy()
    # A land shape that touches the outage along a line and at a point as well.
    land = shapely.union_all([LAND, shapely.box(-61.15, 13.18, -61.1, 13.25)])
    out = clip_to_land(frame, land, margin_m=0)
    assert frame.equals(before)
    types = set(shapely.get_type_id(out.geometry.to_numpy()))
    assert types <= {3, 6}  # Polygon, MultiPolygon
