"""Event grants: a key reads an event's datasets by source and/or licence, those
ingested after the grant included; every grant and revoke is audited."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from dcm import live
from dcm.errors import NotFound, ParameterError, PermissionDenied
from dcm.ingest import read_measurements
from dcm.store import Principal, Store

if TYPE_CHECKING:
    from conftest import Scenario

START = pd.Timestamp("2021-04-09T00:00:00Z")


def _ingest(
    store: Store,
    scenario: Scenario,
    hours: tuple[int, int],
    *,
    name: str,
    licence: str | None = None,
    visibility: str = "restricted",
) -> int:
    path = scenario.event_slice(*hours, name=name)
    return live.ingest(
        store,
        "vincent",
        path,
        licence=licence,
        visibility=visibility,
        name=name,
        principal=Principal.system(),
    ).dataset.id


def _visible(store: Store, token: str) -> set[int]:
    principal = store.authenticate(token)
    page = store.features("measurements", "vincent", limit=100_000, principal=principal)
    return {f["properties"]["dataset_id"] for f in page.features}


@pytest.fixture
def event(store: Store, admin: Principal) -> str:
    store.create_event("vincent", start=START, principal=admin)
    store.create_event("other", start=START, principal=admin)
    return "vincent"


def test_event_grant_follows_datasets_ingested_later(
    store: Store, scenario: Scenario, admin: Principal, event: str
) -> None:
    _, telco = store.create_key("telco", role="partner", principal=admin)
    _, ngo = store.create_key("ngo", role="partner", principal=admin)
    before = _ingest(store, scenario, (0, 1), name="a.csv")
    grant, new = store.grant_event("telco", event, principal=admin)
    assert new and grant.event == event and grant.source is None and grant.licence is None
    assert _visible(store, telco) == {before}
    # A dataset of the event ingested after the grant is read too; the other key's not.
    later = _ingest(store, scenario, (1, 2), name="b.csv")
    assert _visible(store, telco) == {before, later}
    assert _visible(store, ngo) == set()
    # A dataset of another event is not covered.
    elsewhere = live.ingest(store, "other", scenario.event_slice(2, 3), principal=admin).dataset.id
    assert elsewhere not in store.authenticate(telco).grants
    # Granting the same rule again changes nothing and is not audited twice.
    again, new = store.grant_event("telco", event, principal=admin)
    assert not new and again.id == grant.id
    store.revoke_event_grant("telco", event, principal=admin)
    assert _visible(store, telco) == set()
    actions = [(e.action, e.detail) for e in store.audit_log(limit=10) if e.action != "dataset.add"]
    added = {"event": event, "source": None, "licence": None}
    assert ("grant.add", added) in actions and ("grant.remove", added) in actions
    assert [a for a, _ in actions].count("grant.add") == 1


def test_grant_by_source_does_not_reveal_other_sources(
    store: Store, scenario: Scenario, admin: Principal, event: str
) -> None:
    _, telco = store.create_key("telco", role="viewer", principal=admin)
    store.grant_event("telco", event, source="telco-a.csv", principal=admin)
    a = _ingest(store, scenario, (0, 1), name="telco-a.csv")
    b = _ingest(store, scenario, (1, 2), name="telco-b.csv")
    # A prefix of another source is not that source.
    ab = _ingest(store, scenario, (2, 3), name="telco-a.csv.old")
    # dcm replay names each hour's dataset SOURCE#start/end: the slices of a granted
    # source are that source.
    path = scenario.event_slice(3, 4)
    frame = read_measurements(path).frame
    replayed = live.ingest_frame(
        store,
        event,
        frame,
        kind="measurements",
        source="telco-a.csv#2021-04-09T03:00:00Z/2021-04-09T04:00:00Z",
        checksum=hashlib.sha256(b"slice 3").hexdigest(),
        counts={"rows_in": len(frame), "accepted": len(frame)},
        principal=admin,
    ).dataset.id
    assert _visible(store, telco) == {a, replayed}
    assert not {b, ab} & store.authenticate(telco).grants


def test_grant_by_licence_and_source(
    store: Store, scenario: Scenario, admin: Principal, event: str
) -> None:
    _, key = store.create_key("research", role="partner", principal=admin)
    open_data = _ingest(store, scenario, (0, 1), name="x.csv", licence="CC-BY-4.0")
    _ingest(store, scenario, (1, 2), name="y.csv", licence="proprietary")
    _ingest(store, scenario, (2, 3), name="z.csv")
    grant, _ = store.grant_event("research", event, licence="cc-by-4.0", principal=admin)
    assert store.matching_datasets(grant) == [open_data]
    assert _visible(store, key) == {open_data}
    both = _ingest(store, scenario, (3, 4), name="w.csv", licence="CC-BY-4.0")
    store.grant_event("research", event, source="y.csv", licence="CC-BY-4.0", principal=admin)
    assert _visible(store, key) == {open_data, both}  # y.csv is not CC-BY-4.0
    (record,) = [k for k in store.list_keys() if k.name == "research"]
    assert [(g.source, g.licence) for g in record.event_grants] == [
        (None, "cc-by-4.0"),
        ("y.csv", "CC-BY-4.0"),
    ]
    # Revoking needs the exact rule: the licence-only grant stays.
    with pytest.raises(NotFound, match=r"no grant on event vincent, source y.csv \(it has"):
        store.revoke_event_grant("research", event, source="y.csv", principal=admin)
    store.revoke_event_grant(
        "research", event, source="y.csv", licence="CC-BY-4.0", principal=admin
    )
    assert _visible(store, key) == {open_data, both}


def test_partner_visibility_needs_the_grant_too(
    store: Store, scenario: Scenario, admin: Principal, event: str
) -> None:
    _, key = store.create_key("telco", role="partner", principal=admin)
    shared = _ingest(store, scenario, (0, 1), name="p.csv", visibility="partner")
    public = _ingest(store, scenario, (1, 2), name="q.csv", visibility="public")
    assert _visible(store, key) == {public}
    store.grant_event("telco", event, source="p.csv", principal=admin)
    assert _visible(store, key) == {public, shared}


def test_event_grant_errors(store: Store, admin: Principal, event: str) -> None:
    _, token = store.create_key("ops", role="analyst", principal=admin)
    with pytest.raises(NotFound, match="no event 'nowhere'"):
        store.grant_event("ops", "nowhere", principal=admin)
    with pytest.raises(NotFound, match="no API key 'nobody'"):
        store.grant_event("nobody", event, principal=admin)
    with pytest.raises(ParameterError, match="source of a grant must not be empty"):
        store.grant_event("ops", event, source=" ", principal=admin)
    with pytest.raises(PermissionDenied):
        store.grant_event("ops", event, principal=store.authenticate(token))
    with pytest.raises(NotFound, match=r"key .ops. has no grant on event vincent$"):
        store.revoke_event_grant("ops", event, principal=admin)
    assert not store.event_grants()
