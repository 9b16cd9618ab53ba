"""Every layer of a computed event through the real API, read by GDAL's OAPIF driver."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pyogrio
import pytest

from dcm.api import create_app
from dcm.store import open_store

EVENT = "stvincent"
KINDS = ("outages", "cells", "grid", "coverage", "measurements", "areas", "hazard", "alerts")


@pytest.fixture(scope="module")
def base_url(serve, populated) -> str:
    settings = populated.settings()
    return serve(lambda: create_app(settings))


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def admin_headers(populated) -> dict[str, str]:
    # The analyst reads all derived layers without k-anonymity; the granted viewer all rows.
    return {"X-API-Key": populated.tokens["granted"]}


def test_landing_conformance_and_openapi(http: httpx.Client) -> None:
    landing = http.get("/").json()
    desc = next(link for link in landing["links"] if link["rel"] == "service-desc")
    api = http.get(desc["href"]).json()
    assert "/collections/{collection_id}/items" in api["paths"]
    params = {
        p["name"] for p in api["paths"]["/collections/{collection_id}/items"]["get"]["parameters"]
    }
    assert {"bbox", "datetime", "limit", "offset"} <= params
    conforms = http.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conforms
    # Only claim the OpenAPI 3.0 class when the served document is OpenAPI 3.0.
    claims_oas30 = any(c.endswith("/conf/oas30") for c in conforms)
    assert claims_oas30 == api["openapi"].startswith("3.0")
    assert desc["type"].endswith(f"version={'.'.join(api['openapi'].split('.')[:2])}")


def test_every_event_collection_is_listed_with_extents(http: httpx.Client) -> None:
    listed = {c["id"]: c for c in http.get("/collections").json()["collections"]}
    assert {f"{EVENT}-{kind}" for kind in KINDS} <= set(listed)
    outages = listed[f"{EVENT}-outages"]
    assert outages["itemType"] == "feature"
    minx, miny, maxx, maxy = outages["extent"]["spatial"]["bbox"][0]
    assert -61.5 < minx < maxx < -61.0 and 13.0 < miny < maxy < 13.5
    start, end = outages["extent"]["temporal"]["interval"][0]
    assert "2021-04-09" <= start < end


def test_gdal_lists_every_collection(base_url: str) -> None:
    layers = {name for name, _ in pyogrio.list_layers(f"OAPIF:{base_url}/")}
    assert {f"{EVENT}-{kind}" for kind in KINDS} <= layers


@pytest.mark.parametrize("kind", KINDS)
def test_gdal_reads_collection_with_counts_matching(
    base_url: str, http: httpx.Client, kind: str
) -> None:
    cid = f"{EVENT}-{kind}"
    matched = http.get(f"/collections/{cid}/items", params={"limit": 1}).json()["numberMatched"]
    frame = pyogrio.read_dataframe(f"OAPIF:{base_url}/collections/{cid}", layer=cid)
    assert len(frame) == matched
    assert matched > 0, f"{cid} is empty: the fixture should produce it"
    assert frame.crs is not None and frame.crs.to_string() == "OGC:CRS84"


def test_gdal_pages_with_small_page_size(base_url: str, http: httpx.Client) -> None:
    cid = f"{EVENT}-outages"
    full = http.get(f"/collections/{cid}/items", params={"limit": 10000}).json()
    frame = pyogrio.read_dataframe(f"OAPIF:{base_url}/collections/{cid}", layer=cid, PAGE_SIZE=7)
    assert len(full["features"]) > 7
    # Pages follow one stable order: no feature is repeated or skipped at a page boundary.
    assert list(frame["id"]) == [f["id"] for f in full["features"]]


def test_gdal_bbox_on_measurements(base_url: str, populated) -> None:
    cid = f"{EVENT}-measurements"
    box = (-61.24, 13.14, -61.18, 13.2)
    frame = pyogrio.read_dataframe(f"OAPIF:{base_url}/collections/{cid}", bbox=box)
    everything = pyogrio.read_dataframe(f"OAPIF:{base_url}/collections/{cid}")
    assert 0 < len(frame) < len(everything)
    # The store's R*Tree bounds are float32 rounded outwards (< 1e-5 degrees).
    xy = frame.geometry.get_coordinates()
    assert xy["x"].between(box[0] - 1e-5, box[2] + 1e-5).all()
    assert xy["y"].between(box[1] - 1e-5, box[3] + 1e-5).all()
    all_xy = everything.geometry.get_coordinates()
    inside = int((all_xy["x"].between(box[0], box[2]) & all_xy["y"].between(box[1], box[3])).sum())
    if populated.backend == "sqlite":
        assert inside <= len(frame) <= inside + 3
    else:  # PostGIS compares the double-precision points themselves
        assert len(frame) == inside


def test_items_match_the_store(http: httpx.Client, populated) -> None:
    """The anonymous measurement count is the public dataset's rows inside the box."""
    box = (-61.26, 13.12, -61.16, 13.22)
    body = http.get(
        f"/collections/{EVENT}-measurements/items",
        params={"bbox": ",".join(map(str, box)), "limit": 5},
    ).json()
    public_ids = (populated.datasets["public-1"], populated.datasets["public-2"])
    with open_store(populated.settings()) as store:
        ids = store.db.frame("SELECT id, dataset_id FROM measurements")
        public = ids.loc[ids["dataset_id"].isin(public_ids), "id"]
        inside = store.db.scalar(
            "SELECT count(*) FROM measurements WHERE dataset_id IN :ids "
            "AND lon BETWEEN :x0 AND :x1 AND lat BETWEEN :y0 AND :y1",
            {"ids": list(public_ids), "x0": box[0], "x1": box[2], "y0": box[1], "y1": box[3]},
        )
    assert body["numberMatched"] == inside > 0
    assert body["numberReturned"] == 5
    assert {int(f["id"]) for f in body["features"]} <= set(public)


def test_datetime_filter_on_outages(http: httpx.Client) -> None:
    everything = http.get(f"/collections/{EVENT}-outages/items", params={"limit": 10000}).json()
    starts = sorted({f["properties"]["window_start"] for f in everything["features"]})
    pick = starts[len(starts) // 2]
    moment = pd.Timestamp(pick) + pd.Timedelta(minutes=1)
    one = http.get(
        f"/collections/{EVENT}-outages/items",
        params={"datetime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "limit": 10000},
    ).json()
    assert (
        one["numberMatched"]
        == sum(f["properties"]["window_start"] == pick for f in everything["features"])
        > 0
    )
    later = http.get(
        f"/collections/{EVENT}-outages/items",
        params={"datetime": f"{pick}/..", "limit": 1},
    ).json()
    assert later["numberMatched"] == sum(
        f["properties"]["window_end"] > pick for f in everything["features"]
    )


def test_single_items(http: httpx.Client) -> None:
    for kind in ("outages", "cells", "grid", "areas"):
        first = http.get(f"/collections/{EVENT}-{kind}/items", params={"limit": 1}).json()
        fid = first["features"][0]["id"]
        one = http.get(f"/collections/{EVENT}-{kind}/items/{fid}")
        assert one.status_code == 200, (kind, one.text)
        assert one.headers["content-type"] == "application/geo+json"
        assert one.json()["id"] == fid
    assert http.get(f"/collections/{EVENT}-outages/items/nope").status_code == 404
    assert http.get("/collections/nothing-outages/items").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/collections/{EVENT}-measurements/items/{2**63}", 404),  # beyond a 64-bit id
        (f"/collections/{EVENT}-measurements/items/%C2%B2", 404),  # '²' is a digit to str
        (f"/collections/{EVENT}-measurements/items/%D9%A1", 404),  # Arabic-Indic one
        (f"/collections/{EVENT}-coverage/items/zz_360-110", 404),
        (f"/collections/{EVENT}-grid/items/zz_360-110_20210409T190000Z", 404),
        (f"/collections/{EVENT}-areas/items/a%00b", 400),  # PostgreSQL text cannot hold NUL
        (f"/events/{EVENT}%00", 400),
        (f"/events/{EVENT}/gaps?at=2021-04-10T00:00:00Z%00", 400),
        ("/alerts/a%00b.xml", 400),
        (f"/events/{EVENT}/gaps?at=0001-01-01T00:00:00Z", 400),  # beyond pandas' range
        (f"/events/{EVENT}/gaps?at=9999-12-31T00:00:00Z", 400),
        (f"/collections/{EVENT}-outages/items?offset={2**63}", 400),  # SQL OFFSET is 64-bit
    ],
)
def test_impossible_ids_and_urls_are_client_errors(
    http: httpx.Client, path: str, status: int
) -> None:
    response = http.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_largest_offset_is_an_empty_page(http: httpx.Client) -> None:
    body = http.get(f"/collections/{EVENT}-outages/items", params={"offset": 2**63 - 1}).json()
    assert body["features"] == [] and body["numberMatched"] > 0


def test_events_and_windows(http: httpx.Client) -> None:
    events = http.get("/events").json()["events"]
    assert [e["name"] for e in events] == [EVENT]
    event = http.get(f"/events/{EVENT}").json()
    windows = event["windows"]
    assert len(windows) > 10
    starts = [w["window_start"] for w in windows]
    assert starts == sorted(starts)
    assert all(
        pd.Timestamp(w["window_end"]) - pd.Timestamp(w["window_start"]) == pd.Timedelta("1h")
        for w in windows
    )
    outage_starts = {
        f["properties"]["window_start"]
        for f in http.get(f"/collections/{EVENT}-outages/items", params={"limit": 10000}).json()[
            "features"
        ]
    }
    assert outage_starts <= set(starts)
    assert http.get("/events/nothing").status_code == 404


def test_gap_report_json_and_csv(http: httpx.Client) -> None:
    outages = http.get(f"/collections/{EVENT}-outages/items", params={"limit": 10000}).json()
    per_window = pd.Series([f["properties"]["window_start"] for f in outages["features"]])
    busiest = per_window.value_counts().index[0]
    body = http.get(f"/events/{EVENT}/gaps", params={"at": busiest}).json()
    gaps = body["gaps"]
    assert gaps, "the sample event leaves people without service"
    people = [g["people"] for g in gaps]
    assert people == sorted(people, reverse=True)
    assert {"area_name", "network", "people", "area_km2", "cells_offline", "since", "trend"} <= set(
        gaps[0]
    )
    csv = http.get(f"/events/{EVENT}/gaps", params={"f": "csv", "at": busiest})
    assert csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(pd.io.common.StringIO(csv.text))
    assert len(table) == len(gaps)
    assert np.allclose(table["people"], people)
    assert http.get(f"/events/{EVENT}/gaps", params={"f": "xml"}).status_code == 400


def test_large_pages_are_gzipped(http: httpx.Client) -> None:
    response = http.get(
        f"/collections/{EVENT}-grid/items",
        params={"limit": 500},
        headers={"Accept-Encoding": "gzip"},
    )
    assert response.headers["content-encoding"] == "gzip"
    raw = http.get(
        f"/collections/{EVENT}-grid/items",
        params={"limit": 500},
        headers={"Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in raw.headers
    assert len(gzip.compress(raw.content)) < len(raw.content)
    assert response.json()["features"] == raw.json()["features"]


def test_outages_filter_by_tier_network_and_severity(
    http: httpx.Client, admin_headers: dict[str, str]
) -> None:
    url = f"/collections/{EVENT}-outages/items"

    def get(**params: str) -> dict:
        done = http.get(url, params={"limit": 1000, **params}, headers=admin_headers)
        assert done.status_code == 200, done.text
        return done.json()

    every = get()
    tiers = {f["properties"]["tier"] for f in every["features"]}
    assert tiers <= {"confirmed", "suspected"} and tiers
    total = 0
    for tier in ("confirmed", "suspected"):
        page = get(tier=tier)
        assert all(f["properties"]["tier"] == tier for f in page["features"])
        assert all(
            f["properties"]["certainty"] in {"observed", "likely", "possible"}
            for f in page["features"]
        )
        total += page["numberMatched"]
    assert total == every["numberMatched"]
    network = every["features"][0]["properties"]["network"]
    page = get(network=network, severity="outage")
    assert page["numberMatched"] >= 1
    assert all(
        f["properties"]["network"] == network and f["properties"]["severity"] == "outage"
        for f in page["features"]
    )
    bad = http.get(url, params={"tier": "maybe"}, headers=admin_headers)
    assert bad.status_code == 400 and "Traceback" not in bad.text
