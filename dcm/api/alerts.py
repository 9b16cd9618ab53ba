"""Outage alerts: GeoJSON of the current alerts, CAP 1.2 documents and an Atom feed."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from dcm.api.dependencies import PrincipalDep, SettingsDep, StoreDep
from dcm.api.ogc import JSON, GeoJSONResponse, base_url

router = APIRouter(tags=["Alerts"])

CAP_XML = "application/cap+xml"
ATOM_XML = "application/atom+xml"

EventName = Annotated[str, PathParam(description="Event name, e.g. 'stvincent'.")]


def cap_url(base: str, identifier: str) -> str:
    """Where the CAP document of a message is served."""
    return f"{base}/alerts/{identifier}.xml"


def _cap_message(store: Any, message: Any, base: str) -> Any:
    """The publishable CAP message of a stored one, linking the event's web map."""
    from dcm import service

    event = store.get_event(message.event_id).name
    return dataclasses.replace(service.cap_message(message), web=f"{base}/events/{event}/map")


@router.get(
    "/events/{event}/alerts",
    response_class=GeoJSONResponse,
    summary="Current alerts",
    responses={200: {"content": {"application/geo+json": {}}}},
)
def event_alerts(
    request: Request,
    event: EventName,
    store: StoreDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    cancelled: Annotated[
        bool, Query(description="Also list alerts whose latest message is a Cancel.")
    ] = False,
) -> Response:
    """The latest CAP message of each open alert of the event as GeoJSON: outage polygon,
    figures, ``msg_type`` (Alert, Update, Cancel), ``identifier`` and a link to its CAP
    document."""
    from dcm import service

    name = store.get_event(event).name
    base = base_url(request)
    public = settings.public_base()
    doc = service.alerts_geojson(store, name)
    features = [f for f in doc["features"] if cancelled or f["properties"]["msg_type"] != "Cancel"]
    for feature in features:
        feature["links"] = [
            {
                "href": cap_url(public, feature["properties"]["identifier"]),
                "rel": "alternate",
                "type": CAP_XML,
                "title": "CAP 1.2 document",
            }
        ]
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            "links": [
                {"href": str(request.url), "rel": "self", "type": "application/geo+json"},
                {
                    "href": f"{public}/events/{name}/alerts.atom",
                    "rel": "alternate",
                    "type": ATOM_XML,
                },
                {"href": f"{base}/events/{name}", "rel": "up", "type": JSON},
            ],
        }
    )


@router.get(
    "/alerts/{identifier}.xml",
    summary="CAP 1.2 document",
    responses={200: {"content": {CAP_XML: {}}}},
)
def cap_document(
    identifier: str, store: StoreDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    """One CAP 1.2 message (Alert, Update or Cancel) as XML; its links start with the
    configured public URL (``DCM_PUBLIC_URL``)."""
    from dcm.publish import cap_alert

    message = store.alert_message(identifier)
    body = cap_alert(_cap_message(store, message, settings.public_base()))
    return Response(body, media_type=CAP_XML)


@router.get(
    "/events/{event}/alerts.atom",
    summary="Atom feed of alerts",
    responses={200: {"content": {ATOM_XML: {}}}},
)
def alerts_feed(
    event: EventName, store: StoreDep, principal: PrincipalDep, settings: SettingsDep
) -> Response:
    """Atom feed with one entry per alert (its latest message, cancellations included),
    newest first, each linking its CAP document (``application/cap+xml``). Ids and links
    start with the configured public URL (``DCM_PUBLIC_URL``), never the Host header."""
    from dcm import service
    from dcm.publish import atom_feed, cap_entry

    name = store.get_event(event).name
    base = settings.public_base()
    messages = sorted(service.latest_alerts(store, name), key=lambda m: m.sent, reverse=True)
    entries = [
        cap_entry(_cap_message(store, m, base), cap_url=cap_url(base, m.identifier))
        for m in messages
    ]
    feed = atom_feed(
        entries,
        feed_id=f"{base}/events/{name}/alerts.atom",
        title=f"dcm alerts — {name}",
        self_url=f"{base}/events/{name}/alerts.atom",
    )
    return Response(feed, media_type=ATOM_XML)
