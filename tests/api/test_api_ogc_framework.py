"""The OGC API – Features router over a small in-test collection, read by real clients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pyogrio
import pytest
from fastapi import FastAPI

from dcm.api import ogc
from dcm.api.collections import Collection, Extent, Feature, StaticCatalog
from dcm.api.dependencies import BBox, Interval, get_principal
from dcm.api.errors import install_error_handlers
from dcm.errors import NotFound

T0 = datetime(2021, 4, 9, 12, tzinfo=UTC)


class PointCollection:
    """Points with one timestamp each, filtered with numpy: the protocol, nothing more."""

    def __init__(self, id: str, n: int, *, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.id = id
        self.title = f"{n} points"
        self.description = "random points over St Vincent"
        self.lon = rng.uniform(-61.28, -61.12, n)
        self.lat = rng.uniform(13.13, 13.38, n)
        self.time = [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 600, n)]

    def extent(self, principal: Any) -> Extent:
        return Extent(
            bbox=(self.lon.min(), self.lat.min(), self.lon.max(), self.lat.max()),
            start=min(self.time),
            end=max(self.time),
        )

    def _mask(self, bbox: BBox | None, interval: Interval | None) -> np.ndarray:
        mask = np.ones(len(self.lon), dtype=bool)
        if bbox is not None:
            mask &= (self.lon >= bbox[0]) & (self.lon <= bbox[2])
            mask &= (self.lat >= bbox[1]) & (self.lat <= bbox[3])
        if interval is not None:
            mask &= np.array([interval.overlaps(t, t) for t in self.time])
        return mask

    def _feature(self, i: int) -> Feature:
        return {
            "type": "Feature",
            "id": str(i),
            "geometry": {"type": "Point", "coordinates": [self.lon[i], self.lat[i]]},
            "properties": {"n": i, "timestamp": self.time[i].isoformat()},
        }

    def features(
        self,
        *,
        bbox: BBox | None,
        interval: Interval | None,
        limit: int,
        offset: int,
        principal: Any,
        filters: Any = None,
    ) -> tuple[Sequence[Feature], int]:
        rows = np.flatnonzero(self._mask(bbox, interval))
        return [self._feature(int(i)) for i in rows[offset : offset + limit]], len(rows)

    def feature(self, feature_id: str, *, principal: Any) -> Feature:
        if not feature_id.isdigit() or int(feature_id) >= len(self.lon):
            raise NotFound(f"no feature {feature_id}")
        return self._feature(int(feature_id))


POINTS = PointCollection("points", 57)


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(ogc.router)
    app.state.catalog = StaticCatalog([POINTS, PointCollection("few", 3, seed=1)])
    app.dependency_overrides[get_principal] = lambda: None
    return app


@pytest.fixture(scope="module")
def base_url(serve) -> str:
    return serve(make_app)


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url) as http:
        yield http


def test_point_collection_follows_the_protocol() -> None:
    assert isinstance(POINTS, Collection)


def test_landing_links_service_desc_conformance_and_data(client: httpx.Client) -> None:
    links = {link["rel"]: link for link in client.get("/").json()["links"]}
    assert links["service-desc"]["href"].endswith("/openapi.json")
    assert links["conformance"]["href"].endswith("/conformance")
    assert links["data"]["href"].endswith("/collections")
    classes = client.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("/conf/geojson") for c in classes)


def test_collection_metadata_has_extents(client: httpx.Client) -> None:
    meta = client.get("/collections/points").json()
    assert meta["itemType"] == "feature"
    (bbox,) = meta["extent"]["spatial"]["bbox"]
    assert bbox[0] == pytest.approx(POINTS.lon.min())
    assert meta["extent"]["temporal"]["interval"][0][0].endswith("Z")
    assert client.get("/collections/nothing").status_code == 404


def test_items_paging_links_and_counts(client: httpx.Client) -> None:
    response = client.get("/collections/points/items", params={"limit": 20, "offset": 20})
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["numberMatched"] == 57
    assert body["numberReturned"] == 20
    assert [f["id"] for f in body["features"]] == [str(i) for i in range(20, 40)]
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert "offset=40" in rels["next"] and "offset=0" in rels["prev"]
    last = client.get(rels["next"]).json()
    assert last["numberReturned"] == 17
    assert "next" not in {link["rel"] for link in last["links"]}


def test_items_default_limit_is_ten(client: httpx.Client) -> None:
    assert client.get("/collections/points/items").json()["numberReturned"] == 10


def test_alternate_media_type(client: httpx.Client) -> None:
    page = client.get("/collections/points/items").json()
    alternate = next(link for link in page["links"] if link["rel"] == "alternate")
    assert alternate["type"] == "application/json"
    plain = client.get(alternate["href"])
    assert plain.headers["content-type"] == "application/json"
    assert plain.json()["features"] == page["features"]
    assert client.get("/collections/points/items", params={"f": "xml"}).status_code == 400


def test_items_bbox_and_datetime_filter(client: httpx.Client) -> None:
    box = (-61.25, 13.15, -61.18, 13.30)
    body = client.get(
        "/collections/points/items", params={"bbox": ",".join(map(str, box)), "limit": 100}
    ).json()
    inside = (POINTS.lon >= box[0]) & (POINTS.lon <= box[2])
    inside &= (POINTS.lat >= box[1]) & (POINTS.lat <= box[3])
    assert body["numberMatched"] == int(inside.sum()) > 0
    later = T0 + timedelta(hours=5)
    body = client.get(
        "/collections/points/items",
        params={"datetime": later.isoformat().replace("+00:00", "Z") + "/..", "limit": 100},
    ).json()
    assert body["numberMatched"] == sum(t >= later for t in POINTS.time)
    six = client.get(
        "/collections/points/items",
        params={"bbox": f"{box[0]},{box[1]},0,{box[2]},{box[3]},100", "limit": 100},
    ).json()
    assert six["numberMatched"] == int(inside.sum())


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "1,2,3"},
        {"bbox": "a,b,c,d"},
        {"bbox": "0,10,1,5"},
        {"bbox": "0,0,1,95"},
        {"datetime": "yesterday"},
        {"datetime": "2021-04-10T00:00:00Z/2021-04-09T00:00:00Z"},
        {"datetime": "../.."},
        {"limit": "0"},
        {"limit": "abc"},
        {"offset": "-1"},
    ],
)
def test_bad_parameters_are_400_problems(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get("/collections/points/items", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 400 and body["title"] and body["detail"]


def test_single_item_and_missing_item(client: httpx.Client) -> None:
    feature = client.get("/collections/points/items/5").json()
    assert feature["id"] == "5" and feature["geometry"]["type"] == "Point"
    missing = client.get("/collections/points/items/999")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:dcm:problem:not-found"


def test_gdal_lists_the_collections(base_url: str) -> None:
    layers = {name for name, _ in pyogrio.list_layers(f"OAPIF:{base_url}/")}
    assert layers == {"points", "few"}


def test_gdal_pages_through_all_features(base_url: str) -> None:
    frame = pyogrio.read_dataframe(f"OAPIF:{base_url}/collections/points", layer="points")
    assert sorted(frame["n"].tolist()) == list(range(57))


def test_gdal_small_page_size_follows_next_links(base_url: str) -> None:
    frame = pyogrio.read_dataframe(
        f"OAPIF:{base_url}/collections/points", layer="points", PAGE_SIZE=7
    )
    assert sorted(frame["n"].tolist()) == list(range(57))


def test_gdal_bbox_filter(base_url: str) -> None:
    box = (-61.25, 13.15, -61.18, 13.30)
    frame = pyogrio.read_dataframe(f"OAPIF:{base_url}/collections/points", bbox=box)
    inside = (POINTS.lon >= box[0]) & (POINTS.lon <= box[2])
    inside &= (POINTS.lat >= box[1]) & (POINTS.lat <= box[3])
    assert sorted(frame["n"].tolist()) == np.flatnonzero(inside).tolist()
