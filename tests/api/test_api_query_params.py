"""API edges: unknown query parameters are refused with 400, over-long feature ids are
404, the outage filters are in the API definition, and the gap report comes as HTML and
PDF for planners. Runs over HTTP against the hand-made store of tests/gapstore.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from dcm.api import create_app

from .. import gapstore

COLLECTIONS = ("outages", "cells", "grid", "coverage", "measurements", "areas", "hazard", "alerts")


@pytest.fixture(scope="module")
def http(serve, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("hand")
    store = gapstore.build(folder)
    settings = store.settings
    store.close()
    with httpx.Client(base_url=serve(lambda: create_app(settings)), timeout=60) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "wrong"),
    [
        ("/collections/isle-outages/items?netwrok=360-100", "netwrok"),
        ("/collections/isle-outages/items?limit=5&sevrity=outage&f=json", "sevrity"),
        ("/collections/isle-cells/items/x?foo=1", "foo"),
        ("/collections?page=2", "page"),
        ("/events/isle/gaps?format=csv", "format"),
        ("/events/isle/alerts.atom?since=2021", "since"),
        ("/?q=1", "q"),
    ],
)
def test_unknown_query_parameters_are_400_naming_them(
    http: httpx.Client, path: str, wrong: str
) -> None:
    response = http.get(path)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert detail.startswith(f"unknown query parameter(s): {wrong} (this endpoint takes: ")


def test_declared_query_parameters_still_work(http: httpx.Client) -> None:
    response = http.get(
        "/collections/isle-outages/items",
        params={
            "f": "json",
            "bbox": "-61.31,13.09,-61.25,13.13",
            "datetime": "2021-04-09T21:30:00Z",
            "limit": 10,
            "offset": 0,
            "network": "360-100",
            "severity": "outage",
            "tier": "confirmed",
            "zoom": 12,
        },
    )
    assert response.status_code == 200, response.text
    ids = sorted(f["id"] for f in response.json()["features"])
    assert ids == ["A@20210409T210000Z", "B@20210409T210000Z"]
    # The next-page link the server writes is accepted too.
    page = http.get("/collections/isle-outages/items", params={"limit": 1}).json()
    (nxt,) = [link["href"] for link in page["links"] if link["rel"] == "next"]
    assert http.get(nxt).status_code == 200
    assert http.get("/events/isle/gaps", params={"f": "csv", "at": "2021-04-09T21:00Z"}).is_success
    assert http.get("/events/isle/alerts", params={"cancelled": "true"}).is_success
    # OGC API – Features Part 2 parameters GDAL sends: CRS84, the layers' own CRS, only.
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    both = {"crs": crs84, "bbox-crs": crs84, "bbox": "-61.31,13.09,-61.25,13.13"}
    assert http.get("/collections/isle-outages/items", params=both).is_success
    other = http.get("/collections/isle-outages/items", params={"crs": "EPSG:3857"})
    assert other.status_code == 400 and "CRS84 only" in other.json()["detail"]


@pytest.mark.parametrize("kind", COLLECTIONS)
def test_a_5000_digit_feature_id_is_404(http: httpx.Client, kind: str) -> None:
    response = http.get(f"/collections/isle-{kind}/items/{'9' * 5000}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.json()["detail"]) < 200


def test_outage_filters_are_in_the_api_definition(http: httpx.Client) -> None:
    api = http.get("/openapi.json").json()
    params = {
        p["name"]: p
        for p in api["paths"]["/collections/{collection_id}/items"]["get"]["parameters"]
    }
    assert {"network", "severity", "tier", "bbox", "datetime", "limit", "offset", "f"} <= set(
        params
    )
    assert "outages" in params["network"]["description"]
    severity = params["severity"]["schema"]
    choices = {v for option in severity.get("anyOf", [severity]) for v in option.get("enum", [])}
    assert choices == {"outage", "degraded"}
    conformance = http.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    gaps = api["paths"]["/events/{event}/gaps"]["get"]
    (f,) = [p for p in gaps["parameters"] if p["name"] == "f"]
    assert set(f["schema"]["enum"]) == {"json", "csv", "html", "pdf"}


def test_gap_report_as_html_and_pdf(http: httpx.Client) -> None:
    page = http.get("/events/isle/gaps", params={"f": "html"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    rows = re.findall(
        r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"n\">([^<]*)</td>", page.text
    )
    assert rows == [
        ("West", "360-100", "300"),
        ("East", "360-100", "100"),
        ("East", "no network", "50"),
    ]
    assert "<svg" in page.text
    pdf = http.get("/events/isle/gaps", params={"f": "pdf", "at": "2021-04-09T20:00:00Z"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert http.get("/events/nope/gaps", params={"f": "html"}).status_code == 404
