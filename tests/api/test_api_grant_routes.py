"""Admins manage an event's grants through the API (``/events/{event}/grants``), on both
backends: a partner's access to restricted layers follows each grant and revoke at once
(OGC items, and GDAL reading the API), every change is audited under the admin's key,
and anyone else, or a bad request, gets a clear problem document and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dcm.api import create_app
from dcm.store import Principal, open_store

from .conftest import key_clients, populated_copy
from .test_api_event_grants import EVENT, _gdal_seen, _seen, _upload

GRANTS = f"/events/{EVENT}/grants"


@pytest.fixture(scope="module")
def store_copy(populated, tmp_path_factory: pytest.TempPathFactory, sample_data: Path):
    """The sample store with an admin, an analyst, a partner to grant to, an uploader."""
    folder = tmp_path_factory.mktemp("grant-routes")
    with populated_copy(populated, folder, sample_data / "stvincent") as copy:
        system = Principal.system()
        tokens = {}
        with open_store(copy.settings()) as store:
            for name, role in (
                ("admin", "admin"),
                ("analyst", "analyst"),
                ("telco", "partner"),
                ("uploader", "partner"),
            ):
                # Named apart from the keys the shared store already holds.
                _, tokens[name] = store.create_key(f"g-{name}", role=role, principal=system)
        yield copy, tokens


@pytest.fixture(scope="module")
def base_url(serve, store_copy) -> str:
    settings = store_copy[0].settings()
    return serve(lambda: create_app(settings))


@pytest.fixture(scope="module")
def clients(base_url: str, store_copy) -> Iterator[dict[str, httpx.Client]]:
    with key_clients(base_url, store_copy[1]) as made:
        yield made


def _grants(admin: httpx.Client) -> list[dict[str, Any]]:
    response = admin.get(GRANTS)
    assert response.status_code == 200, response.text
    return response.json()["grants"]


def test_partner_access_follows_grants_made_and_revoked_through_the_api(
    clients: dict[str, httpx.Client], base_url: str, store_copy
) -> None:
    copy, tokens = store_copy
    admin, telco = clients["admin"], clients["telco"]
    ours = _upload(clients["uploader"], "telco-a.csv", "route-a-", seed=11)
    theirs = _upload(clients["uploader"], "telco-b.csv", "route-b-", seed=12)
    assert not (ours | theirs) & _seen(telco)
    assert not ours & _gdal_seen(base_url, tokens["telco"])

    response = admin.post(GRANTS, json={"key": "g-telco", "source": "telco-a.csv"})
    assert response.status_code == 201, response.text
    grant = response.json()
    with open_store(copy.settings()) as store:
        wanted = [d.id for d in store.list_datasets(EVENT) if d.source == "telco-a.csv"]
        admin_id = store.get_key("g-admin").id
    assert wanted and grant["datasets"] == wanted
    assert grant["new"] is True and grant["key"]["name"] == "g-telco"
    assert grant["source"] == "telco-a.csv" and grant["licence"] is None
    assert response.headers["location"].endswith(f"{GRANTS}/{grant['id']}")
    # Read at once, through either client; the other source stays hidden.
    seen = _seen(telco)
    assert ours <= seen and not theirs & seen
    assert ours <= _gdal_seen(base_url, tokens["telco"])

    again = admin.post(GRANTS, json={"key": str(grant["key"]["id"]), "source": "telco-a.csv"})
    assert again.status_code == 200 and again.json()["id"] == grant["id"]
    assert again.json()["new"] is False
    listed = _grants(admin)
    assert [(g["id"], g["key"]["name"], g["datasets"]) for g in listed] == [
        (grant["id"], "g-telco", wanted)
    ]

    response = admin.delete(f"{GRANTS}/{grant['id']}")
    assert response.status_code == 204 and response.content == b""
    assert not ours & _seen(telco)
    assert not ours & _gdal_seen(base_url, tokens["telco"])
    assert _grants(admin) == []
    gone = admin.delete(f"{GRANTS}/{grant['id']}")
    assert gone.status_code == 404 and f"no grant {grant['id']}" in gone.json()["detail"]

    # Audited like the CLI, under the admin's key; the repeated grant is not.
    with open_store(copy.settings()) as store:
        log = [e for e in store.audit_log(limit=50) if e.action.startswith("grant.")]
        telco_id = store.get_key("g-telco").id
    assert [e.action for e in log[:2]] == ["grant.remove", "grant.add"]
    assert len([e for e in log if e.action == "grant.add"]) == 1
    for entry in log[:2]:
        assert (entry.key_id, entry.actor, entry.target) == (admin_id, "g-admin", f"key:{telco_id}")
        assert entry.detail == {"event": EVENT, "source": "telco-a.csv", "licence": None}


def test_a_grant_by_licence_and_one_before_any_data(clients: dict[str, httpx.Client]) -> None:
    admin = clients["admin"]
    response = admin.post(GRANTS, json={"key": "g-telco", "source": "later.csv"})
    assert response.status_code == 201
    body = response.json()
    # No dataset yet: the event's sources are listed to spot a misspelt one.
    assert body["datasets"] == [] and body["sources_of_event"]
    assert "later.csv" not in body["sources_of_event"]
    by_licence = admin.post(GRANTS, json={"key": "g-telco", "licence": "CC-BY-4.0"}).json()
    assert by_licence["description"] == f"event {EVENT}, licence CC-BY-4.0"
    assert {g["id"] for g in _grants(admin)} == {body["id"], by_licence["id"]}
    for made in (body, by_licence):
        assert admin.delete(f"{GRANTS}/{made['id']}").status_code == 204
    assert _grants(admin) == []


@pytest.mark.parametrize(
    ("caller", "status"), [("anonymous", 401), ("telco", 403), ("analyst", 403)]
)
def test_only_admins_see_or_change_grants(
    clients: dict[str, httpx.Client], caller: str, status: int
) -> None:
    client = clients[caller]
    made = clients["admin"].post(GRANTS, json={"key": "g-uploader"}).json()
    try:
        for response in (
            client.get(GRANTS),
            client.post(GRANTS, json={"key": "g-telco"}),
            client.delete(f"{GRANTS}/{made['id']}"),
            # Refused before the event is looked up: nothing told about other events.
            client.get("/events/no-such-event/grants"),
        ):
            assert response.status_code == status, response.text
            problem = response.json()
            assert problem["status"] == status and problem["detail"]
            assert "g-uploader" not in response.text
        assert [g["id"] for g in _grants(clients["admin"])] == [made["id"]]
    finally:
        clients["admin"].delete(f"{GRANTS}/{made['id']}")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", GRANTS, {"key": "nobody"}, 404, "no API key 'nobody'"),
        ("POST", GRANTS, {"key": 424242}, 404, "no API key 424242"),
        ("POST", "/events/no-such-event/grants", {"key": "g-telco"}, 404, "no event"),
        ("GET", "/events/no-such-event/grants", None, 404, "no event"),
        ("POST", GRANTS, {"key": "g-telco", "source": "  "}, 400, "source of a grant"),
        ("POST", GRANTS, {"key": "g-telco", "licence": ""}, 400, "licence of a grant"),
        ("POST", GRANTS, {"source": "a.csv"}, 400, "key"),
        ("POST", GRANTS, {"key": "g-telco", "dataset": 3}, 400, "dataset"),
        ("POST", GRANTS, {"key": "9" * 30}, 400, "key id out of range"),
        ("POST", GRANTS, {"key": ""}, 400, "must name a key"),
        ("DELETE", f"{GRANTS}/999999", None, 404, "no grant 999999"),
        ("DELETE", f"{GRANTS}/{'9' * 40}", None, 400, "grant"),
        ("DELETE", f"{GRANTS}/abc", None, 400, "grant"),
        ("GET", f"{GRANTS}?key=telco", None, 400, "unknown query parameter"),
    ],
)
def test_bad_grant_requests_get_clear_problems(
    clients: dict[str, httpx.Client],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    says: str,
) -> None:
    response = clients["admin"].request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert says in problem["detail"], problem
    assert "Traceback" not in response.text and "SELECT" not in response.text
    assert _grants(clients["admin"]) == []


def test_grant_routes_are_documented(clients: dict[str, httpx.Client]) -> None:
    spec = clients["anonymous"].get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/events/{event}/grants"]) == {"get", "post"}
    assert set(paths["/events/{event}/grants/{grant}"]) == {"delete"}
    post = paths["/events/{event}/grants"]["post"]
    assert {"200", "201"} <= set(post["responses"])
    schema = spec["components"]["schemas"]["GrantRequest"]
    assert {"key", "source", "licence"} == set(schema["properties"])
    assert schema["required"] == ["key"]
    for op in (post, paths["/events/{event}/grants/{grant}"]["delete"]):
        assert "Admin keys only" in " ".join(op["description"].split())
