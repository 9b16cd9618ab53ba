"""``zoom`` on the OGC items routes: outlines simplified for the map's zoom level."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import shapely

from dcm.api import create_app
from dcm.api.ogc import generalise, pixel_degrees

EVENT = "stvincent"


@pytest.fixture(scope="module")
def http(serve, populated) -> Iterator[httpx.Client]:
    settings = populated.settings()
    with httpx.Client(base_url=serve(lambda: create_app(settings)), timeout=30) as client:
        yield client


def _shapes(body: dict[str, Any]) -> np.ndarray:
    return shapely.from_geojson([json.dumps(f["geometry"]) for f in body["features"]])


@pytest.mark.parametrize("kind", ["outages", "areas", "hazard"])
def test_low_zoom_sends_fewer_vertices_and_bytes(http: httpx.Client, kind: str) -> None:
    url = f"/collections/{EVENT}-{kind}/items"
    full = http.get(url, params={"limit": 10000})
    near = http.get(url, params={"limit": 10000, "zoom": 16})
    far = http.get(url, params={"limit": 10000, "zoom": 8})
    for response in (full, near, far):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/geo+json"
    bodies = [r.json() for r in (full, near, far)]
    assert bodies[0]["numberMatched"] > 0, f"{kind} is empty: the fixture should produce it"
    ids = [[f["id"] for f in b["features"]] for b in bodies]
    assert ids[0] == ids[1] == ids[2]
    assert bodies[0]["numberMatched"] == bodies[2]["numberMatched"]
    shapes = [_shapes(b) for b in bodies]
    for generalised in shapes[1:]:
        assert shapely.is_valid(generalised).all()
        assert not shapely.is_empty(generalised).any()
        assert (shapely.get_type_id(generalised) == shapely.get_type_id(shapes[0])).all()
    vertices = [int(shapely.get_num_coordinates(s).sum()) for s in shapes]
    assert vertices[2] < vertices[1] <= vertices[0], vertices
    sizes = [len(r.content) for r in (full, near, far)]
    assert sizes[2] < sizes[1] < sizes[0], sizes
    # Half a pixel at zoom 8 is the most any outline may move.
    moved = shapely.hausdorff_distance(shapes[0], shapes[2])
    assert moved.max() <= pixel_degrees(8), moved.max()


def test_single_item_and_next_links_keep_zoom(http: httpx.Client) -> None:
    url = f"/collections/{EVENT}-areas/items"
    page = http.get(url, params={"limit": 1, "zoom": 6}).json()
    assert "zoom=6" in next(link["href"] for link in page["links"] if link["rel"] == "next")
    fid = page["features"][0]["id"]
    one = http.get(f"{url}/{fid}", params={"zoom": 6}).json()
    full = http.get(f"{url}/{fid}").json()
    assert one["geometry"] == page["features"][0]["geometry"]
    assert shapely.get_num_coordinates(shapely.from_geojson(json.dumps(one["geometry"]))) < (
        shapely.get_num_coordinates(shapely.from_geojson(json.dumps(full["geometry"])))
    )


def test_points_are_untouched(http: httpx.Client) -> None:
    url = f"/collections/{EVENT}-cells/items"
    plain = http.get(url, params={"limit": 50}).json()["features"]
    zoomed = http.get(url, params={"limit": 50, "zoom": 3}).json()["features"]
    assert plain and [f["geometry"] for f in zoomed] == [f["geometry"] for f in plain]


@pytest.mark.parametrize("zoom", ["99", "-1", "23", "x", "8.5", ""])
def test_bad_zoom_is_a_problem(http: httpx.Client, zoom: str) -> None:
    for path in ("items", "items/nope"):
        response = http.get(f"/collections/{EVENT}-outages/{path}", params={"zoom": zoom})
        assert response.status_code == 400, (zoom, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "zoom" in response.json()["detail"]


def test_zoom_is_in_the_openapi(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    items = "/collections/{collection_id}/items"
    for route in (items, items + "/{feature_id}"):
        zoom = next(p for p in paths[route]["get"]["parameters"] if p["name"] == "zoom")
        assert zoom["in"] == "query" and not zoom.get("required")
        assert zoom["schema"]["anyOf"][0]["maximum"] == 22


def test_generalise_keeps_tiny_outlines_and_input() -> None:
    # A 50 m square far from the equator and a detailed circle: at zoom 0 the square
    # would round to nothing, so it keeps its unrounded simplification.
    square = {
        "type": "Polygon",
        "coordinates": [
            [[10.0, 60.0], [10.0009, 60.0], [10.0009, 60.00045], [10.0, 60.00045], [10.0, 60.0]]
        ],
    }
    circle = json.loads(shapely.to_geojson(shapely.Point(-61.2, 13.25).buffer(0.1, 64)))
    point = {"type": "Point", "coordinates": [-61.123456789, 13.1]}
    features = [
        {"type": "Feature", "id": str(i), "geometry": g, "properties": {}}
        for i, g in enumerate([square, circle, point, None])
    ]
    before = json.dumps(features)
    for zoom in (0, 8, 16, 22):
        out = generalise(features, zoom)
        shapes = shapely.from_geojson([json.dumps(f["geometry"]) for f in out[:2]])
        assert shapely.is_valid(shapes).all() and not shapely.is_empty(shapes).any()
        assert out[2]["geometry"] == point and out[3]["geometry"] is None
    assert json.dumps(features) == before  # the collection's dicts are not changed
    coarse = generalise(features, 8)[1]["geometry"]["coordinates"][0]
    assert len(coarse) < len(circle["coordinates"][0])
    assert all(len(repr(v).split(".")[1]) <= 3 for xy in coarse for v in xy)
