"""OASIS Common Alerting Protocol 1.2 (ITU-T X.1303 bis) alerts for outages.

:func:`cap_alert` writes one ``<alert>`` with at most one ``<info>`` block, in the
element order of the official schema. :func:`outage_to_cap` turns one outage
feature (:data:`dcm.schema.OUTAGE_COLUMNS`) into a :class:`CapMessage`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from dcm.errors import ParameterError
from dcm.schema import (
    ALL_NETWORKS,
    LIKELY_CONFIDENCE,
    OBSERVED_CONFIDENCE,
    OUTAGE_CERTAINTIES,
)

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MIME = "application/cap+xml"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = (
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
    "Infra", "CBRNE", "Other",
)  # fmt: skip
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

#: Polygon vertex budget: alerting gateways (e.g. WEA) cap polygons near 100 points.
MAX_VERTICES = 100
#: CAP coordinates: 6 decimals (~0.1 m) at most.
CAP_DECIMALS = 6

# CAP 1.2 §3.2.1: identifier and sender must not include spaces, commas or < and &.
_BAD_ID = re.compile(r"[\s,<&]")

Reference = tuple[str, str, dt.datetime]


def cap_datetime(value: dt.datetime | pd.Timestamp) -> str:
    """``YYYY-MM-DDThh:mm:ss-00:00`` for UTC (CAP forbids ``Z``); naive values are UTC."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ParameterError("a CAP date-time must not be missing")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def cap_polygons(
    geometry: BaseGeometry | Iterable[BaseGeometry],
    *,
    max_vertices: int = MAX_VERTICES,
    decimals: int = CAP_DECIMALS,
) -> list[str]:
    """CAP ``<polygon>`` strings (``lat,lon`` pairs, closed) for lon/lat geometries.

    Multi-polygons give one string per part; holes are dropped (CAP has none);
    exteriors are simplified until they have at most ``max_vertices`` points;
    parts that collapse below 4 points after rounding are skipped.
    """
    if max_vertices < 4:
        raise ParameterError("a CAP polygon needs at least 4 points")
    geoms = np.atleast_1d(np.asarray(geometry, dtype=object))
    parts = shapely.get_parts(geoms[~shapely.is_missing(geoms)])
    polygons = parts[shapely.get_type_id(parts) == shapely.GeometryType.POLYGON]
    polygons = shapely.polygons(shapely.get_exterior_ring(polygons))
    xy = shapely.get_coordinates(polygons)
    if len(xy) and (np.abs(xy[:, 0]).max() > 180 or np.abs(xy[:, 1]).max() > 90):
        raise ParameterError("CAP polygons must be WGS84 lon/lat degrees")
    out = []
    for polygon in polygons:
        ring = _simplified_ring(polygon, max_vertices=max_vertices, decimals=decimals)
        if ring is not None:
            out.append(" ".join(f"{lat:.{decimals}f},{lon:.{decimals}f}" for lon, lat in ring))
    return out


def _simplified_ring(polygon: Polygon, *, max_vertices: int, decimals: int) -> np.ndarray | None:
    """The closed exterior ring, rounded, with at most ``max_vertices`` points."""
    candidate = polygon
    minx, miny, maxx, maxy = polygon.bounds
    tolerance = max(maxx - minx, maxy - miny) / 1000
    while True:
        # "+ 0.0" turns -0.0 into 0.0, so a closing vertex prints like the opening one.
        ring = np.round(shapely.get_coordinates(candidate.exterior), decimals) + 0.0
        # Rounding can repeat a vertex; drop consecutive duplicates, keep closure.
        keep = np.ones(len(ring), dtype=bool)
        keep[1:] = np.any(ring[1:] != ring[:-1], axis=1)
        ring = ring[keep]
        if len(ring) <= max_vertices or tolerance <= 0:
            break
        candidate = shapely.simplify(polygon, tolerance, preserve_topology=True)
        tolerance *= 1.5
    if len(ring) < 4:
        return None
    if np.any(ring[0] != ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    return ring


def _check_choice(value: str, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ParameterError(f"CAP {name} must be one of {', '.join(choices)}; got {value!r}")


def _check_id(value: str, name: str) -> None:
    if not value or _BAD_ID.search(value):
        raise ParameterError(f"CAP {name} must be non-empty without spaces, commas, < or &")


@dataclass
class CapMessage:
    """One CAP 1.2 alert with a single ``<info>`` block and one ``<area>``.

    Times are datetimes (naive ones are taken as UTC); ``references`` are
    ``(sender, identifier, sent)`` of earlier messages; ``polygons`` are shapely
    (multi)polygons in lon/lat degrees; ``parameters`` become ``<parameter>``
    name/value pairs in order.
    """

    identifier: str
    sender: str
    sent: dt.datetime
    status: str = "Actual"
    msg_type: str = "Alert"
    scope: str = "Public"
    references: list[Reference] = field(default_factory=list)
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    note: str | None = None
    incidents: str | None = None
    event: str = "Mobile network outage"
    category: str = "Infra"
    urgency: str = "Immediate"
    severity: str = "Moderate"
    certainty: str = "Likely"
    language: str = "en-US"
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    onset: dt.datetime | None = None
    expires: dt.datetime | None = None
    area_desc: str = "Outage area"
    polygons: list[BaseGeometry] = field(default_factory=list)
    max_vertices: int = MAX_VERTICES

    def __post_init__(self) -> None:
        _check_id(self.identifier, "identifier")
        _check_id(self.sender, "sender")
        _check_choice(self.status, STATUSES, "status")
        _check_choice(self.msg_type, MSG_TYPES, "msgType")
        _check_choice(self.scope, SCOPES, "scope")
        _check_choice(self.category, CATEGORIES, "category")
        _check_choice(self.urgency, URGENCIES, "urgency")
        _check_choice(self.severity, SEVERITIES, "severity")
        _check_choice(self.certainty, CERTAINTIES, "certainty")
        if self.scope == "Restricted" and not self.restriction:
            raise ParameterError("CAP scope Restricted needs a restriction text")
        if self.scope == "Private" and not self.addresses:
            raise ParameterError("CAP scope Private needs addresses")
        if self.msg_type in ("Update", "Cancel") and not self.references:
            raise ParameterError(f"a CAP {self.msg_type} must reference the earlier message(s)")
        for sender, identifier, _ in self.references:
            _check_id(sender, "reference sender")
            _check_id(identifier, "reference identifier")
        if self.web is not None and re.search(r"\s", self.web):
            raise ParameterError("CAP web must be a URI without spaces")
        if not self.area_desc:
            raise ParameterError("CAP area_desc must not be empty")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _optional(parent: ET.Element, tag: str, text: str | None) -> None:
    if text:
        _sub(parent, tag, text)


def cap_alert(message: CapMessage) -> bytes:
    """The CAP 1.2 XML document of ``message`` (UTF-8 bytes with XML declaration)."""
    m = message
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", m.identifier)
    _sub(alert, "sender", m.sender)
    _sub(alert, "sent", cap_datetime(m.sent))
    _sub(alert, "status", m.status)
    _sub(alert, "msgType", m.msg_type)
    _optional(alert, "source", m.source)
    _sub(alert, "scope", m.scope)
    _optional(alert, "restriction", m.restriction)
    _optional(alert, "addresses", m.addresses)
    _optional(alert, "note", m.note)
    if m.references:
        refs = " ".join(f"{s},{i},{cap_datetime(t)}" for s, i, t in m.references)
        _sub(alert, "references", refs)
    _optional(alert, "incidents", m.incidents)

    info = _sub(alert, "info")
    _sub(info, "language", m.language)
    _sub(info, "category", m.category)
    _sub(info, "event", m.event)
    _sub(info, "urgency", m.urgency)
    _sub(info, "severity", m.severity)
    _sub(info, "certainty", m.certainty)
    if m.onset is not None and not pd.isna(m.onset):
        _sub(info, "onset", cap_datetime(m.onset))
    if m.expires is not None and not pd.isna(m.expires):
        _sub(info, "expires", cap_datetime(m.expires))
    _optional(info, "senderName", m.sender_name)
    _optional(info, "headline", m.headline)
    _optional(info, "description", m.description)
    _optional(info, "instruction", m.instruction)
    _optional(info, "web", m.web)
    _optional(info, "contact", m.contact)
    for name, value in m.parameters.items():
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", str(name))
        _sub(parameter, "value", str(value))
    area = _sub(info, "area")
    _sub(area, "areaDesc", m.area_desc)
    for polygon in cap_polygons(m.polygons, max_vertices=m.max_vertices):
        _sub(area, "polygon", polygon)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def _value(row: Mapping[str, Any] | pd.Series, key: str) -> Any:
    value = row.get(key)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value


def certainty_from_confidence(confidence: float | None) -> str:
    """CAP certainty: ≥ 0.9 Observed, ≥ 0.6 Likely, otherwise Possible (Unknown if missing)."""
    if confidence is None or not math.isfinite(confidence):
        return "Unknown"
    if confidence >= OBSERVED_CONFIDENCE:
        return "Observed"
    if confidence >= LIKELY_CONFIDENCE:
        return "Likely"
    return "Possible"


def cap_certainty(outage: Mapping[str, Any] | pd.Series) -> str:
    """CAP certainty of an outage feature: its ``certainty`` (observed, likely, possible)
    as Observed, Likely, Possible; without one, a suspected outage is Possible and a
    confirmed one follows :func:`certainty_from_confidence`."""
    certainty = _value(outage, "certainty")
    if certainty is not None and str(certainty).lower() in OUTAGE_CERTAINTIES:
        return str(certainty).capitalize()
    if _value(outage, "tier") == "suspected":
        return "Possible"
    return certainty_from_confidence(_value(outage, "confidence"))


def cap_severity(
    outage: Mapping[str, Any] | pd.Series, *, severe_population: float = 1000.0
) -> str:
    """CAP severity of an outage feature: Severe where no network serves (network
    ``"all"``, severity ``"outage"``) or ``population >= severe_population``, else Moderate.

    One network down, or some but not all, leaves other networks to carry calls
    (emergency calls roam), so people alone decide those.
    """
    everyone = (_value(outage, "network") or ALL_NETWORKS) == ALL_NETWORKS
    population = _value(outage, "population")
    no_service = everyone and (_value(outage, "severity") or "outage") == "outage"
    return (
        "Severe"
        if no_service or (population is not None and population >= severe_population)
        else "Moderate"
    )


def _when(value: Any) -> str:
    return cap_datetime(value)[:16].replace("T", " ") + " UTC"


def _restored_texts(
    outage: Mapping[str, Any] | pd.Series,
    *,
    network: str,
    no_service: bool,
    suspected: bool,
) -> tuple[str, str, str, str]:
    """Area description, headline, first sentence and instruction of a Cancel: the
    outage is over and service is back."""
    restored = _value(outage, "restored")
    at = f" since {_when(restored)}" if restored is not None else ""
    onset = _value(outage, "onset")
    began = f" The outage began {_when(onset)}." if onset is not None else ""
    if suspected:
        # The chain had fallen back to a suspected outage: the measurements no longer
        # point to one at all, which is what restores any outage.
        began += " It had been suspected only (too few measurements to confirm it)."
    if no_service:
        texts = (
            "Area where mobile service is restored",
            "Mobile service restored",
            f"Mobile networks serve this area again{at}.{began}",
        )
    elif network == ALL_NETWORKS:
        texts = (
            "Area where mobile service is restored",
            "Mobile networks restored",
            f"The mobile networks that were down serve this area again{at}.{began}",
        )
    else:
        texts = (
            f"Area where network {network} is restored",
            f"Mobile network {network} restored",
            f"Mobile network {network} serves this area again{at}.{began}",
        )
    return (*texts, "Service is back: no action needed. Report places still without service.")


def _changes(
    previous: Mapping[str, Any],
    outage: Mapping[str, Any] | pd.Series,
    *,
    severe_population: float,
) -> list[str]:
    """What changed since the message before, in words (people, area, tier, severity)."""
    out: list[str] = []
    for key, noun, fmt in (
        ("population", "people affected", "{:,.0f}"),
        ("area_km2", "area", "{:,.1f} km²"),
    ):
        a, b = _value(previous, key), _value(outage, key)
        if a is None or b is None or fmt.format(a) == fmt.format(b):
            continue
        verb = "grew" if b > a else ("fell" if key == "population" else "shrank")
        out.append(f"{noun} {verb} from {fmt.format(a)} to {fmt.format(b)}")
    tier_a = _value(previous, "tier") or "confirmed"
    tier_b = _value(outage, "tier") or "confirmed"
    if tier_a != tier_b:
        now = "confirmed" if tier_b == "confirmed" else "only suspected"
        out.append(f"now {now} (was {tier_a})")
    sev_a = _value(previous, "severity")
    sev_b = _value(outage, "severity")
    if sev_a and sev_b and sev_a != sev_b:
        words = {"outage": "no service", "degraded": "some networks down"}
        out.append(f"now {words.get(sev_b, sev_b)} (was {words.get(sev_a, sev_a)})")
    else:
        before = {"network": _value(outage, "network"), **previous}
        cap_a = cap_severity(before, severe_population=severe_population)
        cap_b = cap_severity(outage, severe_population=severe_population)
        if cap_a != cap_b:
            out.append(f"severity now {cap_b} (was {cap_a})")
    return out


def outage_to_cap(
    outage: Mapping[str, Any] | pd.Series,
    *,
    identifier: str,
    sender: str,
    sent: dt.datetime,
    msg_type: str = "Alert",
    references: Sequence[Reference] = (),
    status: str = "Actual",
    expires: dt.datetime | None = None,
    valid_for: dt.timedelta = dt.timedelta(hours=6),
    web: str | None = None,
    sender_name: str | None = None,
    area_desc: str | None = None,
    severe_population: float = 1000.0,
) -> CapMessage:
    """A CAP message for one outage feature (a GeoDataFrame row of OUTAGE_COLUMNS).

    Severity: :func:`cap_severity`; certainty: :func:`cap_certainty`. A suspected
    outage (``tier``) is said to be one in the headline, area and description.
    ``expires`` defaults to ``sent + valid_for``. A Cancel (the outage ended) gets
    urgency Past and says that service is restored (``restored``: since when, if known).
    An Update says what changed since the message before when the outage carries
    ``previous`` (that message's ``population``, ``area_km2``, ``tier``, ``severity``).
    """
    network = _value(outage, "network") or ALL_NETWORKS
    everyone = network == ALL_NETWORKS
    kind = _value(outage, "severity") or ("outage" if everyone else "degraded")
    population = _value(outage, "population")
    confidence = _value(outage, "confidence")
    cells = _value(outage, "cells_offline")
    area_km2 = _value(outage, "area_km2")
    onset = _value(outage, "onset")
    outage_id = _value(outage, "outage_id")
    geometry = _value(outage, "geometry")
    tier = _value(outage, "tier") or "confirmed"
    suspected = tier == "suspected"

    people = f"about {population:,.0f} people" if population is not None else None
    # Three kinds of outage feature (dcm.analysis.outages): every network down
    # ("all"/outage), some but not all down ("all"/degraded), one network down.
    no_service = everyone and kind == "outage"
    since = f" since {cap_datetime(onset)[:16].replace('T', ' ')} UTC" if onset is not None else ""
    if no_service:
        where = "Area without mobile service"
        headline = "No mobile service"
        first = f"No mobile network serves this area{since}."
        instruction = (
            "Calls, including emergency calls, may fail here on every network: use "
            "satellite phones or radio, or move to an area with service."
        )
    elif everyone:
        where = "Area with reduced mobile service"
        headline = "Some mobile networks down"
        first = f"Some mobile networks do not serve this area{since}; others still do."
        instruction = (
            "Phones on the failed networks may have no service here; phones that can "
            "roam, or SIMs of another network, may still get through."
        )
    else:
        where = f"Area without service on network {network}"
        headline = f"Mobile network {network} down"
        first = f"Mobile network {network} does not serve this area{since}."
        instruction = (
            f"Subscribers of {network} may have no service here; other networks may "
            "still carry calls, including emergency calls."
        )
    if suspected and msg_type != "Cancel":
        # The data point to an outage but cannot confirm it yet: say so first.
        kinds = {True: "all mobile networks", False: "some mobile networks"}
        affected = kinds[no_service] if everyone else f"mobile network {network}"
        where = f"Suspected outage area ({affected})"
        headline = f"Suspected outage of {affected}"
        first = (
            f"Suspected outage of {affected} in this area{since}: the measurements point "
            "to an outage but are too few to confirm it yet."
        )
    previous = _value(outage, "previous")
    changes = (
        _changes(previous, outage, severe_population=severe_population)
        if msg_type == "Update" and isinstance(previous, Mapping)
        else []
    )
    restored = msg_type == "Cancel"
    if restored:
        where, headline, first, instruction = _restored_texts(
            outage, network=network, no_service=no_service, suspected=suspected
        )
        if people and round(population) >= 1:
            headline += f" ({people} had been affected)"
    elif people:
        headline += f": {people} affected"
        before = _value(previous, "population") if changes else None
        if before is not None and round(before) != round(population):
            headline += f" (was {before:,.0f})"
    if msg_type == "Update":
        headline = "Update: " + headline

    sentences = [first]
    if changes:
        sentences.insert(0, "Update: " + "; ".join(changes) + ".")
    extent = [f"{area_km2:,.1f} km²" if area_km2 is not None else None, people]
    if any(extent):
        label = "Affected at the last report" if restored else "Affected"
        sentences.append(f"{label}: " + ", ".join(e for e in extent if e) + ".")
    if cells is not None and not restored:
        sentences.append(f"Cells offline: {int(cells)}.")
    if confidence is not None and not restored:
        sentences.append(
            f"{'Probability' if suspected else 'Confidence'} {confidence:.0%}, from "
            "crowdsourced measurements compared with the same places before the event."
        )

    parameters: dict[str, str] = {
        "network": str(network),
        "outage_severity": str(kind),
        "tier": str(tier),
    }
    if population is not None:
        parameters["population"] = f"{population:.0f}"
    if confidence is not None:
        parameters["confidence"] = f"{confidence:.2f}"
    if cells is not None:
        parameters["cells_offline"] = str(int(cells))
    if area_km2 is not None:
        parameters["area_km2"] = f"{area_km2:.2f}"
    if outage_id is not None:
        parameters["outage_id"] = str(outage_id)
    for key in ("window_start", "window_end"):
        if (value := _value(outage, key)) is not None:
            parameters[key] = cap_datetime(value)

    return CapMessage(
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        references=list(references),
        incidents=re.sub(r"[\s,<&]", "_", str(outage_id)) if outage_id is not None else None,
        event="Mobile network outage",
        category="Infra",
        urgency="Past" if msg_type == "Cancel" else "Immediate",
        severity=cap_severity(outage, severe_population=severe_population),
        certainty=cap_certainty(outage),
        sender_name=sender_name,
        headline=headline[:160],
        description=" ".join(sentences),
        instruction=instruction,
        web=web,
        parameters=parameters,
        onset=onset,
        expires=expires if expires is not None else pd.Timestamp(sent) + valid_for,
        area_desc=area_desc or where + (f" (outage {outage_id})" if outage_id else ""),
        polygons=[geometry] if geometry is not None else [],
    )
