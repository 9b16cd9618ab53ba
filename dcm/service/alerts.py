"""The CAP alert lifecycle over the stored outages: Alert, Update, Cancel."""

from __future__ import annotations

from typing import Any

import pandas as pd
import shapely

from dcm.store import AlertMessage, Event, Store

#: CAP sender of the alerts this installation issues (overridable per call).
DEFAULT_SENDER = "dcm@disaster-connectivity-mapper.invalid"
#: A change of area or people by this share or more makes a CAP Update.
MATERIAL_CHANGE = 0.25


def cap_severity(properties: dict[str, Any], *, severe_population: float = 1000.0) -> str:
    """CAP severity of an outage, as :func:`dcm.publish.cap.outage_to_cap` decides it."""
    from dcm.publish.cap import cap_severity as publish_cap_severity

    return publish_cap_severity(properties, severe_population=severe_population)


#: Properties an Update compares with the message before it (kept as ``previous``).
_COMPARED = ("population", "area_km2", "tier", "severity", "network")


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Area or people changed by MATERIAL_CHANGE or more, or the severity or the tier
    (suspected → confirmed) changed."""
    if old.get("severity") != new.get("severity") or cap_severity(old) != cap_severity(new):
        return True
    if (old.get("tier") or "confirmed") != (new.get("tier") or "confirmed"):
        return True
    for key in ("area_km2", "population"):
        a, b = old.get(key), new.get(key)
        if a is None or b is None or a != a or b != b:
            continue
        if a == 0:
            if b != 0:
                return True
        elif abs(b - a) / abs(a) >= MATERIAL_CHANGE:
            return True
    return False


def _passes(row: pd.Series, store: Store) -> bool:
    """Whether an outage without an open chain gets an Alert. A suspected outage opens
    one only with ``alert_suspected``: it is on the map and in the layers, but alerts
    wait until the data confirm it (an open chain follows it through both tiers)."""
    s = store.settings
    tier = row.get("tier")
    if not s.alert_suspected and isinstance(tier, str) and tier == "suspected":
        return False
    people = row["population"]
    people_ok = s.alert_min_population <= 0 or (
        pd.notna(people) and people >= s.alert_min_population
    )
    return bool(
        people_ok
        and row["area_km2"] >= s.alert_min_area_km2
        and row["confidence"] >= s.alert_min_confidence
    )


def _properties(row: pd.Series, event: Event, sender: str) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ")

    def num(v: Any) -> float | None:
        return None if pd.isna(v) else float(v)

    return {
        "event": event.name,
        "sender": sender,
        "outage_id": str(row["outage_id"]),
        "network": str(row["network"]),
        "severity": str(row["severity"]),
        "tier": str(row["tier"]),
        "certainty": None if pd.isna(row["certainty"]) else str(row["certainty"]),
        "confidence": num(row["confidence"]),
        "area_km2": num(row["area_km2"]),
        "population": num(row["population"]),
        "cells_offline": None if pd.isna(row["cells_offline"]) else int(row["cells_offline"]),
        "window_start": iso(row["window_start"]),
        "window_end": iso(row["window_end"]),
        "onset": iso(row["onset"]),
    }


def _reference(message: AlertMessage) -> str:
    from dcm.publish.cap import cap_datetime

    sender = message.properties.get("sender", DEFAULT_SENDER)
    return f"{sender},{message.identifier},{cap_datetime(message.sent)}"


def refresh_alerts(
    store: Store, event: str | int, *, now: pd.Timestamp | None = None, sender: str = DEFAULT_SENDER
) -> dict[str, int]:
    """Alert lifecycle on the latest computed window; returns messages written per type.

    An outage passing the thresholds (``Settings.alert_min_population``,
    ``alert_min_area_km2``, ``alert_min_confidence``) without an open alert gets an
    ``Alert``; an open alert whose outage changed materially (area or people ±25 %,
    severity) an ``Update``; an open alert whose outage is gone from the latest window a
    ``Cancel``. Each message after the first references the ones before it.
    """
    ev = store.get_event(event)
    sent = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    sent = (sent.tz_localize("UTC") if sent.tzinfo is None else sent.tz_convert("UTC")).floor("s")
    windows = store.event_windows(ev.id)
    done = windows[~windows["dirty"]]
    counts = {"Alert": 0, "Update": 0, "Cancel": 0}
    if done.empty:
        return counts
    latest = done["window_start"].max()
    current = store.outages(ev.id, windows=[latest])
    chains: dict[str, list[AlertMessage]] = {}
    for message in store.alert_messages(ev.id):
        chains.setdefault(message.outage_id, []).append(message)
    open_chains = {k: v for k, v in chains.items() if v[-1].msg_type != "Cancel"}

    def write(
        msg_type: str,
        outage_id: str,
        network: str,
        geometry: dict[str, Any],
        properties: dict[str, Any],
    ) -> None:
        chain = chains.get(outage_id, [])
        # A cancelled outage that comes back opens a new chain: new identifiers.
        identifier = f"dcm-{ev.name}-{outage_id}-{len(chain) + 1}"
        refs = tuple(_reference(m) for m in open_chains.get(outage_id, []))
        message = AlertMessage(
            identifier=identifier,
            event_id=ev.id,
            outage_id=outage_id,
            network=network,
            msg_type=msg_type,
            sent=sent,
            references=refs if msg_type != "Alert" else (),
            geometry=geometry,
            properties=properties,
        )
        store.add_alert_message(message)
        chains.setdefault(outage_id, []).append(message)
        counts[msg_type] += 1

    seen: set[str] = set()
    for _, row in current.iterrows():  # a handful of outages per window
        outage_id = str(row["outage_id"])
        seen.add(outage_id)
        props = _properties(row, ev, sender)
        geometry = shapely.geometry.mapping(shapely.set_precision(row.geometry, 1e-6))
        geometry = _plain(geometry)
        if outage_id in open_chains:
            before = open_chains[outage_id][-1].properties
            if _changed(before, props):
                # The Update says what changed since the message before it.
                props["previous"] = {k: before.get(k) for k in _COMPARED}
                write("Update", outage_id, props["network"], geometry, props)
        elif _passes(row, store):
            write("Alert", outage_id, props["network"], geometry, props)
    for outage_id, chain in open_chains.items():
        if outage_id not in seen:
            last = chain[-1]
            props = {k: v for k, v in last.properties.items() if k != "previous"}
            props["restored"] = latest.strftime("%Y-%m-%dT%H:%M:%SZ")
            write("Cancel", outage_id, last.network, last.geometry, props)
    return counts


def _plain(value: Any) -> Any:
    """GeoJSON mapping with lists instead of tuples (JSON round-trips compare equal)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def latest_alerts(store: Store, event: str | int) -> list[AlertMessage]:
    """The latest message of each alert chain of ``event`` (open and cancelled)."""
    last: dict[str, AlertMessage] = {}
    for message in store.alert_messages(event):
        last[message.outage_id] = message
    return list(last.values())


def alerts_geojson(store: Store, event: str | int) -> dict[str, Any]:
    """The latest CAP message of each alert of ``event`` as a GeoJSON FeatureCollection."""
    features = [
        {
            "type": "Feature",
            "id": m.identifier,
            "geometry": m.geometry,
            "properties": {
                **m.properties,
                "identifier": m.identifier,
                "msg_type": m.msg_type,
                "sent": m.sent.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "references": list(m.references),
            },
        }
        for m in latest_alerts(store, event)
    ]
    return {"type": "FeatureCollection", "features": features}


def cap_message(message: AlertMessage) -> Any:
    """The :class:`dcm.publish.CapMessage` of a stored alert message (render it with
    :func:`dcm.publish.cap_alert`)."""
    from dcm.publish.cap import outage_to_cap

    props = message.properties
    outage = {**props, "geometry": shapely.geometry.shape(message.geometry)}
    for key in ("onset", "window_start", "window_end", "restored"):
        if outage.get(key):
            outage[key] = pd.Timestamp(outage[key])
    references = []
    for ref in message.references:
        sender, identifier, sent = ref.split(",")
        references.append((sender, identifier, pd.Timestamp(sent).to_pydatetime()))
    return outage_to_cap(
        outage,
        identifier=message.identifier,
        sender=props.get("sender", DEFAULT_SENDER),
        sent=message.sent.to_pydatetime(),
        msg_type=message.msg_type,
        references=references,
    )
