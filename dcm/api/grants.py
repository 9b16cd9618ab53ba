"""An event's grants to partners' keys, for admins: ``/events/{event}/grants``.

The same store operations as ``dcm keys grant/revoke --event``: a grant lets a key read
the event's datasets (only those of a source and/or licence when given), datasets
ingested later included; each change is written to the audit log under the calling
admin key. Other callers get 401 (no key) or 403.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcm.api.dependencies import PrincipalDep, StoreDep
from dcm.api.ogc import JSON, CompactJSONResponse, base_url

router = APIRouter(tags=["Access"])

EventName = Annotated[str, PathParam(description="Event name, e.g. 'stvincent'.")]
#: Largest id accepted (the stores' ids are 64-bit integers).
MAX_ID = 2**62
GrantId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="Grant id, from the list.")]


class GrantRequest(BaseModel):
    """A grant of an event to a key: ``source`` and ``licence`` narrow it (left out: any)."""

    model_config = ConfigDict(extra="forbid")

    key: int | str = Field(description="API key id or name.", examples=["telco"])
    source: str | None = Field(
        default=None,
        max_length=1000,
        description="Only datasets of this source (an upload's name or a file's name; "
        "`dcm replay` slices of it too).",
        examples=["telco-a.csv"],
    )
    licence: str | None = Field(
        default=None,
        max_length=200,
        description="Only datasets under this licence (case-insensitive).",
        examples=["CC-BY-4.0"],
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: int | str) -> int | str:
        # A name of digits is an id (as on the command line): keep it in the id range.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a key")
        number = value if isinstance(value, int) else int(value) if value.isdigit() else None
        if number is not None and not 1 <= number <= MAX_ID:
            raise ValueError(f"key id out of range 1-{MAX_ID}")
        return value


def _iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _grant_body(grant: Any, key: Any, datasets: list[int], href: str) -> dict[str, Any]:
    return {
        "id": grant.id,
        "event": grant.event,
        "key": {"id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix},
        "source": grant.source,
        "licence": grant.licence,
        "created_at": _iso(grant.created_at),
        "description": grant.describe(),
        # What the grant covers now; datasets ingested later join when they match.
        "datasets": datasets,
        "links": [{"href": f"{href}/{grant.id}", "rel": "self", "type": JSON}],
    }


@router.get(
    "/events/{event}/grants",
    response_class=CompactJSONResponse,
    summary="Grants of an event (admins)",
)
def list_grants(
    request: Request, event: EventName, store: StoreDep, principal: PrincipalDep
) -> Response:
    """The keys that may read this event's datasets by an event grant, oldest first, and
    the datasets each grant covers now. Admin keys only."""
    from dcm import service

    rules = service.list_event_grants(store, event, principal=principal)
    name = store.get_event(event).name
    href = f"{base_url(request)}/events/{name}/grants"
    keys = {k.id: k for k in store.list_keys()}
    grants = [_grant_body(g, keys[g.key_id], store.matching_datasets(g), href) for g in rules]
    return CompactJSONResponse(
        {"event": name, "grants": grants, "links": [{"href": href, "rel": "self", "type": JSON}]}
    )


@router.post(
    "/events/{event}/grants",
    response_class=CompactJSONResponse,
    status_code=201,
    summary="Grant an event to a key (admins)",
    responses={200: {"description": "The key already held this very grant."}},
)
def create_grant(
    request: Request,
    event: EventName,
    grant: GrantRequest,
    store: StoreDep,
    principal: PrincipalDep,
) -> Response:
    """Let a key read this event's datasets, restricted ones included: every dataset, or
    only those of ``source`` and/or ``licence``, datasets ingested later too (a source
    may be named before any of its data arrives; while the grant covers no dataset,
    ``sources_of_event`` lists the event's sources as stored). 201 with the grant and
    ``Location``; 200 when the key already held it (nothing changes). Unknown key or
    event: 404; an empty source or licence: 400. Audited as ``grant.add``. Admin keys
    only."""
    from dcm import service

    outcome = service.grant_event(
        store, grant.key, event, source=grant.source, licence=grant.licence, principal=principal
    )
    rule = outcome.grant
    href = f"{base_url(request)}/events/{rule.event}/grants"
    body = _grant_body(rule, store.get_key(rule.key_id), outcome.datasets, href)
    body["new"] = outcome.new
    if not outcome.datasets:
        body["sources_of_event"] = outcome.sources
    return CompactJSONResponse(
        body,
        status_code=201 if outcome.new else 200,
        headers={"Location": f"{href}/{rule.id}"},
    )


@router.delete(
    "/events/{event}/grants/{grant}",
    status_code=204,
    summary="Revoke an event grant (admins)",
)
def delete_grant(
    event: EventName, grant: GrantId, store: StoreDep, principal: PrincipalDep
) -> Response:
    """Remove one grant of this event: the key no longer reads the datasets it covered
    (unless another grant covers them), from its next request on. 404 when the event has
    no such grant. Audited as ``grant.remove``. Admin keys only."""
    from dcm import service

    service.revoke_grant_by_id(store, event, grant, principal=principal)
    return Response(status_code=204)
