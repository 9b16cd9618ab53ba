"""Bbox queries of every layer through the real API, on both backends: a bbox page holds
exactly the features whose geometry's bounds meet the box (PostGIS ``&&`` built with
GeoAlchemy2 on PostgreSQL; bbox columns and R*Trees on SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import shapely

from dcm.api import create_app
from dcm.api.dependencies import MAX_LIMIT

EVENT = "stvincent"
KINDS = ("outages", "cells", "grid", "coverage", "measurements", "areas", "hazard")
#: Index bounds are 32-bit floats rounded outwards (SQLite R*Tree, PostGIS boxes of
#: polygons): a geometry this close outside the box may be matched too.
EDGE = 1e-5


@pytest.fixture(scope="module")
def http(serve, populated) -> Iterator[httpx.Client]:
    settings = populated.settings()
    with httpx.Client(base_url=serve(lambda: create_app(settings)), timeout=60) as client:
        yield client


def _all_items(http: httpx.Client, kind: str, headers: dict[str, str], **params: str) -> list:
    features: list = []
    while True:
        body = http.get(
            f"/collections/{EVENT}-{kind}/items",
            params={**params, "limit": MAX_LIMIT, "offset": len(features)},
            headers=headers,
        ).json()
        features.extend(body["features"])
        if len(body["features"]) < MAX_LIMIT:
            assert body["numberMatched"] == len(features)
            return features


def _meets(bounds: np.ndarray, box: tuple[float, ...], pad: float) -> np.ndarray:
    return (
        (bounds[:, 0] <= box[2] + pad)
        & (bounds[:, 2] >= box[0] - pad)
        & (bounds[:, 1] <= box[3] + pad)
        & (bounds[:, 3] >= box[1] - pad)
    )


@pytest.mark.parametrize("who", ["anonymous", "granted"])
def test_bbox_pages_hold_the_features_that_meet_the_box(
    http: httpx.Client, populated, who: str
) -> None:
    headers = {} if who == "anonymous" else {"X-API-Key": populated.tokens["granted"]}
    rng = np.random.default_rng(11)
    checked = 0
    for kind in KINDS:
        everything = [f for f in _all_items(http, kind, headers) if f["geometry"] is not None]
        if not everything:
            continue
        geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in everything])
        bounds = shapely.bounds(geoms)
        ids = np.array([str(f["id"]) for f in everything])
        # Boxes around features of the layer (so they hold some), of several sizes.
        for k in rng.choice(len(everything), size=min(4, len(everything)), replace=False):
            cx, cy = (bounds[k, 0] + bounds[k, 2]) / 2, (bounds[k, 1] + bounds[k, 3]) / 2
            half = float(rng.uniform(0.003, 0.04))
            box = (cx - half, cy - half, cx + half, cy + half)
            got = _all_items(http, kind, headers, bbox=",".join(f"{v:.6f}" for v in box))
            box = tuple(float(f"{v:.6f}") for v in box)
            got_ids = {str(f["id"]) for f in got}
            assert len(got_ids) == len(got)  # no feature twice across pages
            inside = set(ids[_meets(bounds, box, 0.0)])
            near = set(ids[_meets(bounds, box, EDGE)])
            assert inside <= got_ids <= near, (kind, box)
            assert got_ids
            checked += 1
    assert checked >= 20
