"""Alerts over HTTP: GeoJSON of current alerts, CAP 1.2 documents valid against the
official schema, and an Atom feed linking them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import xmlschema

from dcm.api import create_app
from dcm.store import open_store

EVENT = "stvincent"
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
SENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
PAIR = re.compile(r"^-?\d+(\.\d{1,6})?,-?\d+(\.\d{1,6})?$")


@pytest.fixture(scope="module")
def http(serve, populated) -> Iterator[httpx.Client]:
    settings = populated.settings()
    with httpx.Client(base_url=serve(lambda: create_app(settings)), timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def identifiers(populated) -> list[str]:
    with open_store(populated.settings()) as store:
        found = [m.identifier for m in store.alert_messages(EVENT)]
    assert found, "the sample event should raise alerts"
    return found


@pytest.fixture(scope="module")
def schema(cap_schema: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(cap_schema))


def test_current_alerts_geojson(http: httpx.Client, identifiers: list[str]) -> None:
    response = http.get(f"/events/{EVENT}/alerts")
    assert response.headers["content-type"] == "application/geo+json"
    every = http.get(f"/events/{EVENT}/alerts", params={"cancelled": "true"}).json()["features"]
    current = response.json()["features"]
    assert every and len(current) <= len(every)
    for feature in every:
        props = feature["properties"]
        assert props["msg_type"] in ("Alert", "Update", "Cancel")
        assert props["identifier"] == feature["id"] in identifiers
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
        (link,) = feature["links"]
        assert link["type"] == "application/cap+xml"
        assert link["href"].endswith(f"/alerts/{feature['id']}.xml")
    assert all(f["properties"]["msg_type"] != "Cancel" for f in current)


def test_every_cap_document_is_valid(
    http: httpx.Client, identifiers: list[str], schema: xmlschema.XMLSchema
) -> None:
    for identifier in identifiers:
        response = http.get(f"/alerts/{identifier}.xml")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/cap+xml")
        schema.validate(response.content)
        root = ET.fromstring(response.content)
        assert root.findtext(f"{CAP}identifier") == identifier
        assert SENT.match(root.findtext(f"{CAP}sent") or "")
        polygons = root.findall(f"{CAP}info/{CAP}area/{CAP}polygon")
        assert polygons
        for polygon in polygons:
            pairs = polygon.text.split()
            assert len(pairs) >= 4 and pairs[0] == pairs[-1]
            assert all(PAIR.match(p) for p in pairs)
            lat, lon = (float(v) for v in pairs[0].split(","))
            assert 12.5 < lat < 13.6 and -61.6 < lon < -60.9  # lat,lon order
        web = root.findtext(f"{CAP}info/{CAP}web")
        assert web and web.endswith(f"/events/{EVENT}/map")


def test_unknown_alert_is_404(http: httpx.Client) -> None:
    response = http.get("/alerts/no-such-alert.xml")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_atom_feed_links_cap_documents(
    http: httpx.Client, identifiers: list[str], schema: xmlschema.XMLSchema
) -> None:
    response = http.get(f"/events/{EVENT}/alerts.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    assert entries
    linked = []
    for entry in entries:
        (link,) = [x for x in entry.findall(f"{ATOM}link") if x.get("rel") == "alternate"]
        assert link.get("type") == "application/cap+xml"
        linked.append(link.get("href"))
    assert len(set(linked)) == len(linked)
    first = http.get(httpx.URL(linked[0]).path)
    schema.validate(first.content)
    assert {h.rsplit("/", 1)[-1].removesuffix(".xml") for h in linked} <= set(identifiers)
    updated = [e.findtext(f"{ATOM}updated") for e in entries]
    assert updated == sorted(updated, reverse=True)


def test_cap_and_atom_links_come_from_the_public_url_not_the_host_header(
    serve, populated, identifiers: list[str], schema: xmlschema.XMLSchema
) -> None:
    public = "https://alerts.example.org/dcm"
    settings = populated.settings().model_copy(update={"public_url": public + "/"})
    hostile = {"Host": "evil.example.net"}
    with httpx.Client(base_url=serve(lambda: create_app(settings)), timeout=30) as client:
        feed_response = client.get(f"/events/{EVENT}/alerts.atom", headers=hostile)
        cap_response = client.get(f"/alerts/{identifiers[-1]}.xml", headers=hostile)
        geojson = client.get(f"/events/{EVENT}/alerts?cancelled=true", headers=hostile)
    for response in (feed_response, cap_response):
        assert response.status_code == 200
        assert b"evil.example.net" not in response.content
    feed = ET.fromstring(feed_response.content)
    assert feed.findtext(f"{ATOM}id") == f"{public}/events/{EVENT}/alerts.atom"
    hrefs = [link.get("href") for link in feed.iter(f"{ATOM}link")]
    ids = [e.findtext(f"{ATOM}id") for e in feed.findall(f"{ATOM}entry")]
    assert hrefs and ids
    assert all(h.startswith(public + "/") for h in hrefs + ids)
    root = ET.fromstring(cap_response.content)
    schema.validate(cap_response.content)
    assert root.findtext(f"{CAP}info/{CAP}web") == f"{public}/events/{EVENT}/map"
    cap_links = [
        link["href"]
        for feature in geojson.json()["features"]
        for link in feature["links"]
        if link["type"] == "application/cap+xml"
    ]
    assert cap_links and all(h.startswith(f"{public}/alerts/") for h in cap_links)


def test_public_url_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from dcm.settings import DEFAULT_PUBLIC_URL, Settings

    monkeypatch.setenv("DCM_PUBLIC_URL", "https://dcm.example.org/svg/")
    assert Settings(data_dir=tmp_path).public_base() == "https://dcm.example.org/svg"
    monkeypatch.delenv("DCM_PUBLIC_URL")
    assert Settings(data_dir=tmp_path).public_base() == DEFAULT_PUBLIC_URL
    for bad in ("ftp://dcm.example.org", "dcm.example.org", "https://x.org/?a=1"):
        with pytest.raises(ValidationError, match="public_url must be an http"):
            Settings(data_dir=tmp_path, public_url=bad)
