"""The vectorised GeoJSON text writer: same text as Python's json, still RFC 7946."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
)

from dcm.errors import ParameterError
from dcm.publish import geojson_bytes, to_geojson
from dcm.publish.geojson import feature_stubs, geometry_json, prepare_geometries, property_json

SHELL = [(-61.3, 13.1), (-61.3, 13.40000000123), (-61.1, 13.4), (-61.1, 13.1)]
HOLE = [(-61.25, 13.2), (-61.15, 13.2), (-61.15, 13.3), (-61.25, 13.3)]

GEOMETRIES = [
    Point(-61.123456789, 13.987654321),
    Point(0.00001234, -0.000099),  # Python writes these with an exponent
    Point(-0.0, 0.0),
    Point(12.0, -3.0),  # whole numbers keep ".0"
    Point(1.5, 2.5, 3.5),  # 3-D: per-geometry path
    LineString([(0, 0), (1.25, 1), (2, 0.5)]),
    Polygon(SHELL, [HOLE]),
    MultiPolygon([Polygon(SHELL), Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])]),
    MultiPoint([(1, 2), (3.3333333333, 4)]),
    MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3.75)]]),
    GeometryCollection([Point(1, 1), LineString([(0, 0), (1, 1)])]),
    MultiPolygon([Polygon(SHELL), Polygon()]),  # an empty part: per-geometry path
    None,
    Polygon(),
]


def _python_text(geometry: shapely.Geometry | None) -> str | None:
    """What ``json.dumps`` writes for the geometry's dict (the reference)."""
    if geometry is None:
        return None
    return json.dumps(json.loads(shapely.to_geojson(geometry)), separators=(",", ":"))


@pytest.mark.parametrize("precision", [0, 3, 5, 7])
def test_geometry_texts_equal_python_json(precision: int) -> None:
    series = gpd.GeoSeries(GEOMETRIES, crs=4326)
    prepared = prepare_geometries(series, precision=precision)
    texts = geometry_json(prepared, precision=precision)
    assert list(texts) == [_python_text(g) for g in prepared]
    assert texts[-1] is None and texts[-2] is None  # missing and empty → null


def test_repeated_geometries_are_written_once_but_all_rows_get_text() -> None:
    polygon = Polygon(SHELL, [HOLE])
    series = gpd.GeoSeries([polygon, None, Point(1, 2), polygon, Point(1, 2)], crs=4326)
    texts = geometry_json(prepare_geometries(series))
    assert texts[0] == texts[3] and texts[2] == texts[4] and texts[1] is None
    assert texts[0] != texts[2]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-180, 180, allow_nan=False), st.floats(-90, 90, allow_nan=False)),
        min_size=2,
        max_size=6,
    ),
    st.integers(0, 7),
)
def test_any_coordinates_equal_python_json(
    coords: list[tuple[float, float]], precision: int
) -> None:
    series = gpd.GeoSeries([LineString(coords), MultiPoint(coords)], crs=4326)
    prepared = prepare_geometries(series, precision=precision)
    assert list(geometry_json(prepared, precision=precision)) == [_python_text(g) for g in prepared]


def test_non_finite_coordinates_are_refused() -> None:
    with pytest.raises(ParameterError):
        geometry_json(np.array([Point(np.nan, 1.0)], dtype=object))


def _frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "outage_id": ["a", "b", "c", "d"],
            "name": ["Kingstown </script>", 'quote " and \\', "ünïcode", None],
            "population": [1234.5, np.nan, 7.0, 1e-7],
            "onset": pd.to_datetime(
                ["2021-04-09T12:00:00Z", None, "2021-04-09T13:30:00Z", "2021-04-09T14:00:00Z"],
                utc=True,
            ),
        },
        geometry=[Polygon(SHELL, [HOLE]), None, Point(-61.2, 13.25), Polygon(SHELL)],
        crs=4326,
    )


@pytest.mark.parametrize("id_column", [None, "outage_id"])
def test_bytes_equal_json_dumps_of_the_dict(id_column: str | None) -> None:
    frame = _frame()
    expected = json.dumps(
        to_geojson(frame, id_column=id_column), separators=(",", ":"), ensure_ascii=False
    )
    assert geojson_bytes(frame, id_column=id_column) == expected.encode()


def test_property_spelled_like_the_geometry_slot_still_writes_right() -> None:
    # A property named "geometry" (null) followed by one named "properties".
    frame = gpd.GeoDataFrame(
        pd.DataFrame({"geometry": [None], "properties": [1]}).assign(where=[Point(1, 2)]),
        geometry="where",
        crs=4326,
    )
    doc = json.loads(geojson_bytes(frame))
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [1.0, 2.0]}
    assert doc["features"][0]["properties"] == {"geometry": None, "properties": 1}


def test_bytes_are_rfc_7946() -> None:
    doc = json.loads(geojson_bytes(_frame()))
    assert "crs" not in doc
    exterior, hole = doc["features"][0]["geometry"]["coordinates"]
    xy = np.asarray(exterior)
    assert 0.5 * np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]) > 0  # CCW
    xy = np.asarray(hole)
    assert 0.5 * np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]) < 0  # CW
    assert exterior[0] == exterior[-1]
    assert doc["features"][2]["geometry"]["coordinates"] == [-61.2, 13.25]  # lon, lat
    assert doc["features"][1]["geometry"] is None


def test_property_texts_equal_python_json_for_every_kind_of_column() -> None:
    n = 6
    frame = gpd.GeoDataFrame(
        {
            "float": [0.1 + 0.2, -0.0, 0.0, np.nan, 1e-7, 0.1 + 0.2],
            "float32": np.array([0.1, 2.5, -0.0, np.nan, 3.0, 0.1], dtype="float32"),
            "nullable_float": pd.array([1.5, None, 1.5, 2.0, None, -0.0], dtype="Float64"),
            "int": np.arange(n, dtype="int64") * 10**15,
            "nullable_int": pd.array([1, None, 3, 1, None, 2], dtype="Int64"),
            "bool": [True, False, True, True, False, False],
            "text": pd.array(["a", None, 'é "q" </x>', "a", "", "b"], dtype="string"),
            "object_text": ["x", None, "y", "x", np.nan, "\u2028"],
            "mixed": [1, 1.0, True, "1", None, [1, 2]],
            "category": pd.Categorical(["up", "down", None, "up", "up", "down"]),
            "when": pd.to_datetime(
                ["2021-04-09T12:00:00Z", None, "2021-04-09T12:00:00.25Z"] * 2,
                utc=True,
                format="ISO8601",
            ),
            7: ["int column name"] * n,
        },
        geometry=[Point(i, i) for i in range(n)],
        crs=4326,
    )
    expected = [
        json.dumps(f["properties"], separators=(",", ":"), ensure_ascii=False)
        for f in feature_stubs(frame)
    ]
    assert property_json(frame).to_pylist() == expected
    empty = gpd.GeoDataFrame(geometry=[Point(0, 0)], crs=4326)
    assert property_json(empty).to_pylist() == ["{}"]


@pytest.mark.parametrize(
    "frame",
    [
        gpd.GeoDataFrame({"v": []}, geometry=[], crs=4326),
        gpd.GeoDataFrame(geometry=[Point(1, 2)], crs=4326),
        gpd.GeoDataFrame({"id": [1, None], "v": [1, 2]}, geometry=[None, Point(0, 0)], crs=4326),
    ],
)
def test_bytes_of_empty_and_bare_frames_equal_json_dumps(frame: gpd.GeoDataFrame) -> None:
    id_column = "id" if "id" in frame.columns else None
    expected = json.dumps(to_geojson(frame, id_column=id_column), separators=(",", ":"))
    assert geojson_bytes(frame, id_column=id_column) == expected.encode()


def test_outage_tiers_and_certainty_are_properties() -> None:
    from dcm.schema import OUTAGE_COLUMNS, validate_frame, with_outage_tiers

    start = pd.Timestamp("2021-04-09T12:00Z")
    outages = gpd.GeoDataFrame(
        {
            "outage_id": pd.array(["a", "s", "n"], dtype="string"),
            "window_start": [start] * 3,
            "window_end": [start + pd.Timedelta("1h")] * 3,
            "network": pd.array(["all", "360-100", "all"], dtype="string"),
            "severity": pd.array(["outage", "outage", "degraded"], dtype="string"),
            "tier": pd.array(["confirmed", "suspected", "confirmed"], dtype="string"),
            "certainty": pd.array(["observed", "possible", None], dtype="string"),
            "confidence": [0.97, 0.63, np.nan],
            "area_km2": [4.0, 2.5, 1.0],
            "population": [120.0, np.nan, 3.0],
            "cells_offline": np.array([2, 0, 1], dtype=np.int64),
            "onset": [start] * 3,
        },
        geometry=[Polygon(SHELL), Polygon(SHELL, [HOLE]), Point(-61.2, 13.2).buffer(0.01)],
        crs=4326,
    )
    validate_frame(outages, OUTAGE_COLUMNS, name="outages")
    doc = to_geojson(outages)
    assert geojson_bytes(outages).decode() == json.dumps(
        doc, separators=(",", ":"), ensure_ascii=False
    )
    props = [f["properties"] for f in doc["features"]]
    assert list(props[0]) == list(OUTAGE_COLUMNS)
    assert [(p["tier"], p["certainty"]) for p in props] == [
        ("confirmed", "observed"),
        ("suspected", "possible"),
        ("confirmed", None),
    ]
    # A frame from before the tiers publishes with the defaults filled in.
    old = outages.drop(columns=["tier", "certainty"])
    filled = to_geojson(with_outage_tiers(old))
    assert [
        (f["properties"]["tier"], f["properties"]["certainty"]) for f in filled["features"]
    ] == [
        ("confirmed", "observed"),
        ("confirmed", "likely"),
        ("confirmed", None),
    ]
    assert geojson_bytes(with_outage_tiers(old)).decode() == json.dumps(
        filled, separators=(",", ":"), ensure_ascii=False
    )
