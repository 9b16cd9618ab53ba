"""Event grants to partners' keys: what ``dcm keys grant/revoke --event`` and the API's
``/events/{event}/grants`` both call. Admins only; each change is audited by the store
under the caller."""

from __future__ import annotations

from dataclasses import dataclass

from dcm.errors import NotFound
from dcm.store import Principal, Store
from dcm.store.models import EventGrant


@dataclass(frozen=True)
class GrantOutcome:
    """A grant made (``new``) or found already held, the datasets it covers now and,
    when it covers none, the event's sources as stored (``dcm replay`` slices under
    their file's name), to spot a source given otherwise than it was ingested."""

    grant: EventGrant
    new: bool
    datasets: list[int]
    sources: list[str]


def event_sources(store: Store, event: str | int) -> list[str]:
    """The sources of an event's datasets, replay slices under their file's name."""
    return sorted({d.source.split("#", 1)[0] for d in store.list_datasets(event)})


def grant_event(
    store: Store,
    key: int | str,
    event: str | int,
    *,
    source: str | None = None,
    licence: str | None = None,
    principal: Principal,
) -> GrantOutcome:
    """Let ``key`` read ``event``'s datasets (only those of ``source`` and/or ``licence``
    when given), datasets ingested later too. Granting a rule the key holds changes
    nothing. NotFound for an unknown key or event, ParameterError for an empty source or
    licence, PermissionDenied unless ``principal`` is an admin."""
    grant, new = store.grant_event(key, event, source=source, licence=licence, principal=principal)
    datasets = store.matching_datasets(grant)
    return GrantOutcome(grant, new, datasets, [] if datasets else event_sources(store, grant.event))


def list_event_grants(store: Store, event: str | int, *, principal: Principal) -> list[EventGrant]:
    """The event grants of ``event``, oldest first (admins only)."""
    principal.require(principal.can_manage_keys(), "list grants")
    event_id = store.get_event(event).id
    return [g for g in store.event_grants() if g.event_id == event_id]


def revoke_grant_by_id(
    store: Store, event: str | int, grant_id: int, *, principal: Principal
) -> EventGrant:
    """Remove grant ``grant_id`` of ``event``; NotFound when the event has no such grant."""
    principal.require(principal.can_manage_keys(), "revoke grant")
    found = store.get_event(event)
    rule = next(
        (g for g in list_event_grants(store, found.id, principal=principal) if g.id == grant_id),
        None,
    )
    if rule is None:
        raise NotFound(f"event {found.name!r} has no grant {grant_id}")
    return store.revoke_event_grant(
        rule.key_id, found.name, source=rule.source, licence=rule.licence, principal=principal
    )
