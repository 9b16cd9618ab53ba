"""RFC 7946 output: order, orientation, precision, CRS, property values."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.polygon import orient

from dcm.errors import ParameterError
from dcm.publish import geojson_bytes, to_geojson, write_geojson


def _signed_area(ring: list[list[float]]) -> float:
    xy = np.asarray(ring)
    return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))


@pytest.fixture()
def frame() -> gpd.GeoDataFrame:
    # Exterior given clockwise and the hole counter-clockwise: both must be flipped.
    shell = [(-61.3, 13.1), (-61.3, 13.40000000123), (-61.1, 13.4), (-61.1, 13.1)]
    hole = [(-61.25, 13.2), (-61.15, 13.2), (-61.15, 13.3), (-61.25, 13.3)]
    return gpd.GeoDataFrame(
        {
            "outage_id": ["a", "b", "c"],
            "population": [1234.5, np.nan, 7.0],
            "cells_offline": np.array([3, 0, 1], dtype=np.int64),
            "network": pd.array(["all", None, "358-110"], dtype="string"),
            "count": pd.array([1, None, 2], dtype="Int64"),
            "onset": pd.to_datetime(
                ["2021-04-09T12:00:00Z", None, "2021-04-09T13:30:00.5Z"], utc=True, format="ISO8601"
            ),
        },
        geometry=[
            Polygon(shell, [hole]),
            MultiPolygon([Polygon(shell), Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])]),
            Point(-61.123456789, 13.987654321),
        ],
        crs="EPSG:4326",
    )


def test_feature_collection_structure_and_values(frame: gpd.GeoDataFrame) -> None:
    doc = to_geojson(frame, id_column="outage_id")
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc
    first, second, third = doc["features"]
    assert [f["id"] for f in doc["features"]] == ["a", "b", "c"]
    assert first["properties"]["onset"] == "2021-04-09T12:00:00Z"
    assert third["properties"]["onset"] == "2021-04-09T13:30:00.500000Z"
    assert second["properties"]["onset"] is None
    assert second["properties"]["population"] is None
    assert second["properties"]["network"] is None
    assert second["properties"]["count"] is None
    assert first["properties"]["cells_offline"] == 3
    assert isinstance(first["properties"]["cells_offline"], int)
    assert first["properties"]["population"] == 1234.5
    # Whole document must be strict JSON (no NaN tokens).
    json.loads(json.dumps(doc, allow_nan=False))


def test_orientation_closed_rings_and_precision(frame: gpd.GeoDataFrame) -> None:
    doc = to_geojson(frame, precision=6)
    polygon = doc["features"][0]["geometry"]["coordinates"]
    exterior, hole = polygon
    assert _signed_area(exterior) > 0  # counter-clockwise
    assert _signed_area(hole) < 0  # clockwise
    for ring in polygon:
        assert ring[0] == ring[-1]
    for part in doc["features"][1]["geometry"]["coordinates"]:
        assert _signed_area(part[0]) > 0
    x, y = doc["features"][2]["geometry"]["coordinates"]
    assert (x, y) == (-61.123457, 13.987654)  # lon first, 6 decimals
    assert "13.400000001" not in json.dumps(doc)


def test_reprojects_to_wgs84(frame: gpd.GeoDataFrame) -> None:
    projected = frame.to_crs("EPSG:32620")
    x, y = to_geojson(projected)["features"][2]["geometry"]["coordinates"]
    assert x == pytest.approx(-61.1234568, abs=1e-6)
    assert y == pytest.approx(13.9876543, abs=1e-6)


def test_local_times_become_utc_and_projected_without_crs_is_refused() -> None:
    local = pd.to_datetime(["2021-04-09 08:00"]).tz_localize("America/St_Vincent")
    naive = pd.to_datetime(["2021-04-09 12:00"])
    gdf = gpd.GeoDataFrame({"local": local, "naive": naive}, geometry=[Point(-61.2, 13.25)])
    props = to_geojson(gdf)["features"][0]["properties"]
    assert props == {"local": "2021-04-09T12:00:00Z", "naive": "2021-04-09T12:00:00Z"}
    with pytest.raises(ParameterError):
        to_geojson(gpd.GeoDataFrame(geometry=[Point(500000.0, 1465000.0)]))


def test_missing_and_empty_geometries_are_null() -> None:
    gdf = gpd.GeoDataFrame({"v": [1, 2]}, geometry=[None, Polygon()], crs=4326)
    assert [f["geometry"] for f in to_geojson(gdf)["features"]] == [None, None]


def test_precision_limit_and_unknown_id_column(frame: gpd.GeoDataFrame) -> None:
    with pytest.raises(ParameterError):
        to_geojson(frame, precision=8)
    with pytest.raises(ParameterError):
        to_geojson(frame, id_column="nope")


def test_bytes_and_file_round_trip(frame: gpd.GeoDataFrame, tmp_path: Path) -> None:
    raw = geojson_bytes(frame)
    assert b", " not in raw and b": " not in raw  # compact for the API
    path = write_geojson(frame, tmp_path / "outages.geojson", id_column="outage_id")
    back = gpd.read_file(path)
    assert len(back) == 3
    assert back.crs.to_epsg() == 4326
    assert shapely.equals_exact(
        back.geometry.iloc[0], shapely.orient_polygons(frame.geometry.iloc[0]), tolerance=1e-6
    )


@pytest.mark.parametrize("batch", [1, 2, 10_000])
def test_file_is_written_in_batches_with_the_bytes_of_the_text(
    frame: gpd.GeoDataFrame, tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dcm.publish.geojson as geojson

    monkeypatch.setattr(geojson, "WRITE_FEATURES", batch)  # 3 features: 3, 2 or 1 batches
    for gdf, id_column in ((frame, "outage_id"), (frame, None), (frame.iloc[:0], None)):
        path = write_geojson(gdf, tmp_path / "out.geojson", id_column=id_column)
        assert path.read_bytes() == geojson_bytes(gdf, id_column=id_column) + b"\n"
    assert json.loads(path.read_text()) == {"type": "FeatureCollection", "features": []}


def test_empty_frame() -> None:
    gdf = gpd.GeoDataFrame({"v": []}, geometry=[], crs=4326)
    assert to_geojson(gdf) == {"type": "FeatureCollection", "features": []}


@settings(max_examples=50, deadline=None)
@example(  # rounding leaves a spike at the hole's top, which fools GEOS's isCCW
    lon=0.0, lat=-1.6328125, radius=0.5546875, clockwise=True, precision=1
)
@given(
    st.floats(-170, 170),
    st.floats(-80, 80),
    st.floats(1e-4, 5),
    st.booleans(),
    st.integers(0, 7),
)
def test_any_polygon_comes_out_rfc_7946(
    lon: float, lat: float, radius: float, clockwise: bool, precision: int
) -> None:
    outer = Point(lon, lat).buffer(radius, quad_segs=8)
    polygon = Polygon(outer.exterior.coords, [Point(lon, lat).buffer(radius / 3).exterior.coords])
    polygon = orient(polygon, sign=-1.0 if clockwise else 1.0)
    doc = to_geojson(gpd.GeoDataFrame(geometry=[polygon], crs=4326), precision=precision)
    geometry = doc["features"][0]["geometry"]
    if geometry is None or geometry["type"] != "Polygon":
        return  # collapsed at this precision
    exterior, *holes = geometry["coordinates"]
    for ring in [exterior, *holes]:
        assert ring[0] == ring[-1]
        assert all(round(v, precision) == v for xy in ring for v in xy)
    if shapely.Polygon(exterior).area > 0:
        assert _signed_area(exterior) > 0
    for hole in holes:
        if shapely.Polygon(hole).area > 0:
            assert _signed_area(hole) < 0
