"""CAP 1.2 alerts (validated against the official schema) and the Atom feed."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import xmlschema
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon

from dcm.errors import ParameterError
from dcm.publish import (
    CAP_NS,
    AtomEntry,
    CapMessage,
    atom_feed,
    cap_alert,
    cap_datetime,
    cap_entry,
    cap_polygons,
    certainty_from_confidence,
    outage_to_cap,
)

NS = {"cap": CAP_NS}
ATOM = {"a": "http://www.w3.org/2005/Atom"}
SENT = dt.datetime(2021, 4, 9, 13, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def schema(cap_schema: Path) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(cap_schema)


def _valid(schema: xmlschema.XMLSchema, doc: bytes) -> ET.Element:
    schema.validate(doc.decode("utf-8"))
    return ET.fromstring(doc)


def _outage(**changes: object) -> pd.Series:
    big = Point(-61.2, 13.3).buffer(0.05, quad_segs=64)  # 257 vertices
    holed = Polygon(big.exterior.coords, [Point(-61.2, 13.3).buffer(0.01).exterior.coords])
    row = {
        "outage_id": "stv-0007",
        "window_start": pd.Timestamp("2021-04-09T12:00Z"),
        "window_end": pd.Timestamp("2021-04-09T13:00Z"),
        "network": "all",
        "severity": "outage",
        "confidence": 0.93,
        "area_km2": 12.5,
        "population": 1234.0,
        "cells_offline": np.int64(3),
        "onset": pd.Timestamp("2021-04-09T11:20Z"),
        "geometry": MultiPolygon([holed, Point(-61.0, 13.1).buffer(0.01)]),
    }
    return pd.Series(row | changes)


def test_outage_alert_is_valid_cap(schema: xmlschema.XMLSchema) -> None:
    message = outage_to_cap(
        _outage(), identifier="dcm-stv-0007-1", sender="alerts@dcm.example", sent=SENT
    )
    doc = cap_alert(message)
    assert doc.startswith(b"<?xml")
    root = _valid(schema, doc)
    assert root.tag == f"{{{CAP_NS}}}alert"
    assert root.findtext("cap:sent", namespaces=NS) == "2021-04-09T13:05:00-00:00"
    info = root.find("cap:info", NS)
    assert info.findtext("cap:category", namespaces=NS) == "Infra"
    assert info.findtext("cap:severity", namespaces=NS) == "Severe"
    assert info.findtext("cap:certainty", namespaces=NS) == "Observed"
    assert info.findtext("cap:onset", namespaces=NS) == "2021-04-09T11:20:00-00:00"
    assert info.findtext("cap:expires", namespaces=NS) == "2021-04-09T19:05:00-00:00"
    params = {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in info.findall("cap:parameter", NS)
    }
    assert params["network"] == "all"
    assert params["population"] == "1234"
    assert params["confidence"] == "0.93"
    assert params["cells_offline"] == "3"
    polygons = info.findall("cap:area/cap:polygon", NS)
    assert len(polygons) == 2  # one per part of the multipolygon, hole dropped
    for polygon in polygons:
        pairs = polygon.text.split(" ")
        assert 4 <= len(pairs) <= 100
        assert pairs[0] == pairs[-1]
        lat, lon = (float(v) for v in pairs[0].split(","))
        assert 13 < lat < 14 and -62 < lon < -60  # latitude first
        assert all(re.fullmatch(r"-?\d+\.\d{1,6},-?\d+\.\d{1,6}", p) for p in pairs)
    assert len(doc) < 8000


def test_degraded_update_and_cancel(schema: xmlschema.XMLSchema) -> None:
    first = ("alerts@dcm.example", "dcm-stv-0007-1", SENT)
    update = outage_to_cap(
        _outage(network="358-110", severity="degraded", population=20.0, confidence=0.65),
        identifier="dcm-stv-0007-2",
        sender="alerts@dcm.example",
        sent=SENT + dt.timedelta(hours=1),
        msg_type="Update",
        references=[first],
    )
    root = _valid(schema, cap_alert(update))
    assert root.findtext("cap:msgType", namespaces=NS) == "Update"
    assert root.findtext("cap:references", namespaces=NS) == (
        "alerts@dcm.example,dcm-stv-0007-1,2021-04-09T13:05:00-00:00"
    )
    info = root.find("cap:info", NS)
    assert info.findtext("cap:severity", namespaces=NS) == "Moderate"
    assert info.findtext("cap:certainty", namespaces=NS) == "Likely"
    assert "358-110" in info.findtext("cap:headline", namespaces=NS)

    cancel = outage_to_cap(
        _outage(population=np.nan, confidence=0.4, onset=pd.NaT),
        identifier="dcm-stv-0007-3",
        sender="alerts@dcm.example",
        sent=SENT + dt.timedelta(hours=2),
        msg_type="Cancel",
        references=[first, ("alerts@dcm.example", "dcm-stv-0007-2", SENT)],
    )
    root = _valid(schema, cap_alert(cancel))
    info = root.find("cap:info", NS)
    assert info.findtext("cap:urgency", namespaces=NS) == "Past"
    assert info.findtext("cap:certainty", namespaces=NS) == "Possible"
    assert info.find("cap:onset", NS) is None
    names = [p.findtext("cap:valueName", namespaces=NS) for p in info.findall("cap:parameter", NS)]
    assert "population" not in names
    assert len(root.findtext("cap:references", namespaces=NS).split(" ")) == 2


def test_message_with_every_optional_element(schema: xmlschema.XMLSchema) -> None:
    message = CapMessage(
        identifier="x-1",
        sender="s@example.org",
        sent=dt.datetime(2021, 4, 9, 9, 5, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
        status="Exercise",
        scope="Restricted",
        restriction="Responders only",
        source="dcm",
        note="exercise",
        incidents="stv-1",
        sender_name="Emergency Telecommunications Cluster",
        headline="h",
        description="d",
        instruction="i",
        web="https://dcm.example/alerts/x-1.xml",
        contact="etc@example.org",
        parameters={"n": 1},
        onset=dt.datetime(2021, 4, 9, 12),  # naive: UTC
        expires=dt.datetime(2021, 4, 10, 12),
        area_desc="Test area",
        polygons=[Polygon([(0, 0), (1, 0), (1, 1), (0, 0)])],
    )
    root = _valid(schema, cap_alert(message))
    assert root.findtext("cap:sent", namespaces=NS) == "2021-04-09T13:05:00-00:00"  # to UTC
    assert root.findtext("cap:info/cap:onset", namespaces=NS) == "2021-04-09T12:00:00-00:00"
    no_area = CapMessage(
        identifier="x-2", sender="s", sent=SENT, msg_type="Ack", references=[("s", "x-1", SENT)]
    )
    root = _valid(schema, cap_alert(no_area))
    assert root.find("cap:info/cap:area/cap:polygon", NS) is None


def test_cap_rules_are_enforced() -> None:
    with pytest.raises(ParameterError):
        CapMessage(identifier="has space", sender="s", sent=SENT)
    with pytest.raises(ParameterError):
        CapMessage(identifier="a", sender="s", sent=SENT, status="Live")
    with pytest.raises(ParameterError):
        CapMessage(identifier="a", sender="s", sent=SENT, msg_type="Cancel")  # no references
    with pytest.raises(ParameterError):
        CapMessage(identifier="a", sender="s", sent=SENT, scope="Restricted")
    with pytest.raises(ParameterError):
        cap_polygons([Point(500000, 1500000).buffer(10)])  # projected metres
    assert "Z" not in cap_datetime(pd.Timestamp("2021-04-09T12:00Z"))


def test_polygon_simplification_and_collapse() -> None:
    ring = cap_polygons(Point(0, 0).buffer(1.0, quad_segs=500), max_vertices=30)
    assert len(ring) == 1 and 4 <= len(ring[0].split(" ")) <= 30
    tiny = Polygon([(0, 0), (1e-8, 0), (1e-8, 1e-8), (0, 0)])
    assert cap_polygons(tiny) == []  # collapses when rounded to 6 decimals


def test_certainty_thresholds() -> None:
    assert [certainty_from_confidence(c) for c in (0.95, 0.9, 0.6, 0.59, float("nan"))] == [
        "Observed",
        "Observed",
        "Likely",
        "Possible",
        "Unknown",
    ]


def _info(schema: xmlschema.XMLSchema, outage: pd.Series) -> tuple[ET.Element, dict[str, str]]:
    message = outage_to_cap(outage, identifier="dcm-t", sender="alerts@dcm.example", sent=SENT)
    info = _valid(schema, cap_alert(message)).find("cap:info", NS)
    params = {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in info.findall("cap:parameter", NS)
    }
    return info, params


@pytest.mark.parametrize(
    ("tier", "certainty", "confidence", "expected"),
    [
        ("confirmed", "observed", 0.5, "Observed"),  # the column wins over the confidence
        ("confirmed", "likely", 0.95, "Likely"),
        ("suspected", "possible", 0.95, "Possible"),
        ("suspected", None, 0.95, "Possible"),  # suspected without certainty
        (None, None, 0.95, "Observed"),  # rows from before the tiers: confidence rule
        (None, None, 0.65, "Likely"),
        (None, None, np.nan, "Unknown"),
    ],
)
def test_certainty_follows_the_outage_certainty(
    schema: xmlschema.XMLSchema,
    tier: str | None,
    certainty: str | None,
    confidence: float,
    expected: str,
) -> None:
    info, params = _info(schema, _outage(tier=tier, certainty=certainty, confidence=confidence))
    assert info.findtext("cap:certainty", namespaces=NS) == expected
    assert params["tier"] == (tier or "confirmed")


@pytest.mark.parametrize(
    ("network", "kind", "headline"),
    [
        ("360-100", "outage", "Suspected outage of mobile network 360-100: about 1,234 people"),
        ("all", "outage", "Suspected outage of all mobile networks: about 1,234 people"),
        ("all", "degraded", "Suspected outage of some mobile networks: about 1,234 people"),
    ],
)
def test_suspected_outage_says_so(
    schema: xmlschema.XMLSchema, network: str, kind: str, headline: str
) -> None:
    outage = _outage(
        network=network, severity=kind, tier="suspected", certainty="possible", confidence=0.63
    )
    info, params = _info(schema, outage)
    assert info.findtext("cap:headline", namespaces=NS) == headline + " affected"
    description = info.findtext("cap:description", namespaces=NS)
    assert description.startswith("Suspected outage of ") and "Probability 63%" in description
    assert info.findtext("cap:area/cap:areaDesc", namespaces=NS).startswith("Suspected outage")
    assert info.findtext("cap:certainty", namespaces=NS) == "Possible"
    assert params["tier"] == "suspected" and params["confidence"] == "0.63"
    # The same outage confirmed reads as today.
    confirmed, _ = _info(schema, _outage(network=network, severity=kind, tier="confirmed"))
    assert not confirmed.findtext("cap:headline", namespaces=NS).startswith("Suspected")


def test_atom_feed_links_cap_documents() -> None:
    message = outage_to_cap(_outage(), identifier="dcm-1", sender="alerts@dcm.example", sent=SENT)
    entries = [
        cap_entry(message, cap_url="https://dcm.example/alerts/dcm-1.xml"),
        AtomEntry(
            id="urn:dcm:alert:dcm-0",
            title="Older <alert> & co",
            updated=SENT - dt.timedelta(hours=3),
            summary="s",
            cap_url="https://dcm.example/alerts/dcm-0.xml",
        ),
    ]
    doc = atom_feed(
        entries,
        feed_id="urn:dcm:event:stv",
        title="St Vincent alerts",
        self_url="https://dcm.example/events/stv/alerts.atom",
    )
    root = ET.fromstring(doc)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    assert root.findtext("a:updated", namespaces=ATOM) == "2021-04-09T13:05:00Z"
    self_link = root.find("a:link[@rel='self']", ATOM)
    assert self_link.get("href") == "https://dcm.example/events/stv/alerts.atom"
    assert root.findtext("a:author/a:name", namespaces=ATOM) == "dcm"
    items = root.findall("a:entry", ATOM)
    assert [i.findtext("a:id", namespaces=ATOM) for i in items] == [
        "https://dcm.example/alerts/dcm-1.xml",
        "urn:dcm:alert:dcm-0",
    ]
    assert items[1].findtext("a:title", namespaces=ATOM) == "Older <alert> & co"
    for item in items:
        link = item.find("a:link", ATOM)
        assert link.get("rel") == "alternate"
        assert link.get("type") == "application/cap+xml"
        assert link.get("href").endswith(".xml")
        assert item.findtext("a:summary", namespaces=ATOM)
        assert item.findtext("a:updated", namespaces=ATOM).endswith("Z")
    with pytest.raises(ParameterError):
        atom_feed([], feed_id="", title="t", self_url="u")


@pytest.mark.parametrize(
    ("network", "kind", "population", "severity", "headline"),
    [
        ("all", "outage", 10.0, "Severe", "No mobile service"),
        ("all", "degraded", 10.0, "Moderate", "Some mobile networks down"),
        ("all", "degraded", 5000.0, "Severe", "Some mobile networks down"),
        ("358-110", "outage", 10.0, "Moderate", "Mobile network 358-110 down"),
        ("358-110", "outage", 5000.0, "Severe", "Mobile network 358-110 down"),
    ],
)
def test_severity_by_outage_kind_and_people(
    schema: xmlschema.XMLSchema,
    network: str,
    kind: str,
    population: float,
    severity: str,
    headline: str,
) -> None:
    message = outage_to_cap(
        _outage(network=network, severity=kind, population=population),
        identifier="dcm-k",
        sender="alerts@dcm.example",
        sent=SENT,
    )
    info = _valid(schema, cap_alert(message)).find("cap:info", NS)
    assert info.findtext("cap:severity", namespaces=NS) == severity
    assert info.findtext("cap:headline", namespaces=NS).startswith(headline)


def test_real_hurricane_swath_polygons(schema: xmlschema.XMLSchema, shared_data: Path) -> None:
    import geopandas as gpd
    import shapely

    swath = gpd.read_file(shared_data / "hazard" / "nhc_ida_AL092021_windswath.geojson")
    assert shapely.get_num_coordinates(swath.geometry.values).max() > 1000
    message = CapMessage(
        identifier="ida-swath",
        sender="s@example.org",
        sent=SENT,
        event="Hurricane wind swath",
        category="Met",
        area_desc="Hurricane Ida 34/50/64 kt wind swath",
        polygons=list(swath.geometry),
    )
    doc = cap_alert(message)
    root = _valid(schema, doc)
    polygons = root.findall("cap:info/cap:area/cap:polygon", NS)
    assert len(polygons) >= len(swath)
    for text in polygons:
        pairs = [tuple(map(float, p.split(","))) for p in text.text.split(" ")]
        assert 4 <= len(pairs) <= 100 and pairs[0] == pairs[-1]
        ring = Polygon([(lon, lat) for lat, lon in pairs])
        assert ring.is_valid  # simplification kept a usable ring
    # Simplified outline still covers nearly the same area as the original.
    simplified = shapely.union_all(
        [
            Polygon([(lon, lat) for lat, lon in (map(float, p.split(",")) for p in t.text.split())])
            for t in polygons
        ]
    )
    original = shapely.union_all(
        shapely.polygons(shapely.get_exterior_ring(shapely.get_parts(swath.geometry.values)))
    )
    overlap = simplified.intersection(original).area / original.union(simplified).area
    assert overlap > 0.95
    assert len(doc) < 60_000


@settings(max_examples=60, deadline=None)
@example(  # -2e-18 rounds to -0.0: the ring must still close as written text
    points=[(0.0, 0.0), (0.0, -1.0), (1.0, 0.0), (-2.0854641847081225e-18, -1.0)],
    max_vertices=100,
)
@given(
    st.lists(st.tuples(st.floats(-179.9, 179.9), st.floats(-89.9, 89.9)), min_size=3, max_size=400),
    st.integers(4, 120),
)
def test_cap_polygon_strings_always_follow_the_rules(
    points: list[tuple[float, float]], max_vertices: int
) -> None:
    hull = shapely.convex_hull(shapely.multipoints(points))
    for text in cap_polygons(hull, max_vertices=max_vertices):
        pairs = text.split(" ")
        assert 4 <= len(pairs) <= max_vertices
        assert pairs[0] == pairs[-1]
        for pair in pairs:
            lat, lon = pair.split(",")
            assert -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180
            assert len(lat.split(".")[1]) <= 6 and len(lon.split(".")[1]) <= 6


def test_cancel_says_service_is_restored(schema: xmlschema.XMLSchema) -> None:
    first = ("alerts@dcm.example", "dcm-stv-0007-1", SENT)
    restored = pd.Timestamp("2021-04-12T10:00Z")
    texts = {}
    for network, severity in (("360-100", "outage"), ("all", "outage"), ("all", "degraded")):
        cancel = outage_to_cap(
            _outage(network=network, severity=severity, population=499.0, restored=restored),
            identifier="dcm-stv-0007-2",
            sender="alerts@dcm.example",
            sent=SENT + dt.timedelta(days=3),
            msg_type="Cancel",
            references=[first],
        )
        info = _valid(schema, cap_alert(cancel)).find("cap:info", NS)
        texts[network, severity] = (
            info.findtext("cap:headline", namespaces=NS),
            info.findtext("cap:description", namespaces=NS),
        )
        assert info.findtext("cap:urgency", namespaces=NS) == "Past"
        entry = cap_entry(cancel, cap_url="https://dcm.example/alerts/x.xml")
        assert "down" not in entry.title and "restored" in entry.title
    assert texts["360-100", "outage"] == (
        "Mobile network 360-100 restored (about 499 people had been affected)",
        "Mobile network 360-100 serves this area again since 2021-04-12 10:00 UTC. The outage "
        "began 2021-04-09 11:20 UTC. Affected at the last report: 12.5 km², about 499 people.",
    )
    assert (
        texts["all", "outage"][0] == "Mobile service restored (about 499 people had been affected)"
    )
    assert texts["all", "degraded"][1].startswith(
        "The mobile networks that were down serve this area again since 2021-04-12 10:00 UTC."
    )


def test_update_says_what_changed(schema: xmlschema.XMLSchema) -> None:
    first = ("alerts@dcm.example", "dcm-stv-0007-1", SENT)

    def update(previous: dict[str, object], **now: object) -> tuple[str, str]:
        message = outage_to_cap(
            _outage(network="360-100", previous=previous, **now),
            identifier="dcm-stv-0007-2",
            sender="alerts@dcm.example",
            sent=SENT + dt.timedelta(hours=1),
            msg_type="Update",
            references=[first],
        )
        info = _valid(schema, cap_alert(message)).find("cap:info", NS)
        return info.findtext("cap:headline", namespaces=NS), info.findtext(
            "cap:description", namespaces=NS
        )

    before = {"population": 499.0, "area_km2": 12.5, "tier": "confirmed", "severity": "outage"}
    headline, text = update(before | {"population": 200.0, "area_km2": 20.0})
    assert headline == "Update: Mobile network 360-100 down: about 1,234 people affected (was 200)"
    assert text.startswith(
        "Update: people affected grew from 200 to 1,234; area shrank from 20.0 km² to 12.5 km²"
        "; severity now Severe (was Moderate). Mobile network 360-100 does not serve"
    )
    _, text = update(before | {"tier": "suspected"}, population=300.0)
    assert text.startswith(
        "Update: people affected fell from 499 to 300; now confirmed (was suspected). "
    )


def test_cancel_of_an_outage_that_fell_back_to_suspected_says_restored() -> None:
    cancel = outage_to_cap(
        _outage(network="360-110", tier="suspected", population=0.4),
        identifier="dcm-stv-0007-3",
        sender="alerts@dcm.example",
        sent=SENT,
        msg_type="Cancel",
        references=[("alerts@dcm.example", "dcm-stv-0007-1", SENT)],
    )
    assert cancel.headline == "Mobile network 360-110 restored"  # no "about 0 people"
    assert "It had been suspected only" in cancel.description
