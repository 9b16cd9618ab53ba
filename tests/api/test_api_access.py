"""Access control at the HTTP layer: keys, roles, grants, k-anonymity, refused writes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dcm.api import create_app
from dcm.store import open_store

EVENT = "stvincent"
MEASUREMENTS = f"/collections/{EVENT}-measurements/items"


@pytest.fixture(scope="module")
def base_url(serve, populated) -> str:
    settings = populated.settings()
    return serve(lambda: create_app(settings))


@pytest.fixture(scope="module")
def clients(base_url: str, populated) -> Iterator[dict[str, httpx.Client]]:
    """One client per caller: anonymous, and each key (viewer, granted, partner, analyst)."""
    made = {"anonymous": httpx.Client(base_url=base_url, timeout=30)}
    for name, token in populated.tokens.items():
        made[name] = httpx.Client(base_url=base_url, timeout=30, headers={"X-API-Key": token})
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def rows(populated) -> dict[str, object]:
    """Measurement ids by readability, straight from the database."""
    with open_store(populated.settings()) as store:
        frame = store.db.frame("SELECT id, dataset_id, lon, lat FROM measurements")
        grid = store.db.frame("SELECT devices FROM grid")
    public = {populated.datasets["public-1"], populated.datasets["public-2"]}
    is_public = frame["dataset_id"].isin(public)
    return {
        "public": set(frame.loc[is_public, "id"]),
        "restricted": set(frame.loc[~is_public, "id"]),
        "restricted_frame": frame[~is_public],
        "all": set(frame["id"]),
        "grid_all": len(grid),
        "grid_k": int((grid["devices"] >= 3).sum()),
    }


def _all_ids(client: httpx.Client, url: str, **params: str) -> list[int]:
    """Every feature id of a collection, following next links (an export of the layer)."""
    ids: list[int] = []
    next_url: str | None = url
    query: dict[str, str] | None = {"limit": "5000", **params}
    while next_url:
        body = client.get(next_url, params=query).json()
        ids += [int(f["id"]) for f in body["features"]]
        next_url = next((x["href"] for x in body["links"] if x["rel"] == "next"), None)
        query = None
    return ids


@pytest.mark.parametrize("caller", ["anonymous", "viewer", "partner"])
def test_callers_without_grants_export_only_public_rows(
    clients: dict[str, httpx.Client], rows: dict, caller: str
) -> None:
    ids = _all_ids(clients[caller], MEASUREMENTS)
    assert len(ids) == len(set(ids))
    assert set(ids) == rows["public"]
    matched = clients[caller].get(MEASUREMENTS, params={"limit": 1}).json()["numberMatched"]
    assert matched == len(rows["public"])


def test_granted_key_reaches_every_row(clients: dict[str, httpx.Client], rows: dict) -> None:
    body = clients["granted"].get(MEASUREMENTS, params={"limit": 1}).json()
    assert body["numberMatched"] == len(rows["all"])
    restricted = sorted(rows["restricted"])[:50]
    found = {
        int(f["id"])
        for offset in (0, 1000)
        for f in clients["granted"]
        .get(MEASUREMENTS, params={"limit": 1000, "offset": offset})
        .json()["features"]
    }
    assert found & set(restricted)


def test_bbox_around_restricted_rows_returns_only_public(
    clients: dict[str, httpx.Client], rows: dict
) -> None:
    frame = rows["restricted_frame"]
    lon, lat = float(frame["lon"].iloc[0]), float(frame["lat"].iloc[0])
    box = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    viewer = set(_all_ids(clients["viewer"], MEASUREMENTS, bbox=box))
    granted = set(_all_ids(clients["granted"], MEASUREMENTS, bbox=box))
    assert int(frame["id"].iloc[0]) in granted
    assert viewer and not viewer & rows["restricted"]
    assert viewer < granted


def test_single_restricted_item_is_hidden(clients: dict[str, httpx.Client], rows: dict) -> None:
    hidden = min(rows["restricted"])
    for caller in ("anonymous", "viewer", "partner"):
        response = clients[caller].get(f"{MEASUREMENTS}/{hidden}")
        assert response.status_code == 404, caller
        assert "geometry" not in response.json()
    assert clients["granted"].get(f"{MEASUREMENTS}/{hidden}").status_code == 200
    assert clients["viewer"].get(f"{MEASUREMENTS}/{min(rows['public'])}").status_code == 200


def test_devices_never_reach_non_admins(clients: dict[str, httpx.Client]) -> None:
    for caller in ("anonymous", "granted", "analyst"):
        body = clients[caller].get(MEASUREMENTS, params={"limit": 50}).json()
        assert body["features"]
        assert all("device" not in f["properties"] for f in body["features"])


def test_grid_hides_sparse_hexes_from_public(clients: dict[str, httpx.Client], rows: dict) -> None:
    url = f"/collections/{EVENT}-grid/items"
    viewer = clients["viewer"].get(url, params={"limit": 1}).json()["numberMatched"]
    analyst = clients["analyst"].get(url, params={"limit": 1}).json()["numberMatched"]
    assert viewer == rows["grid_k"]
    assert analyst == rows["grid_all"]
    assert rows["grid_k"] < rows["grid_all"], "the fixture should have sparse hexes"


def test_extent_of_measurements_follows_access(
    clients: dict[str, httpx.Client], rows: dict
) -> None:
    viewer = clients["viewer"].get(f"/collections/{EVENT}-measurements").json()
    granted = clients["granted"].get(f"/collections/{EVENT}-measurements").json()
    v_box = viewer["extent"]["spatial"]["bbox"][0]
    g_box = granted["extent"]["spatial"]["bbox"][0]
    assert g_box[0] <= v_box[0] and g_box[2] >= v_box[2]
    v_time = viewer["extent"]["temporal"]["interval"][0]
    g_time = granted["extent"]["temporal"]["interval"][0]
    assert g_time[0] < v_time[0], "the restricted baseline starts weeks before the event"


def test_reports_and_alerts_carry_no_raw_rows(clients: dict[str, httpx.Client]) -> None:
    for url in (f"/events/{EVENT}/gaps", f"/events/{EVENT}/alerts", f"/events/{EVENT}"):
        text = clients["viewer"].get(url).text
        assert "measurement_id" not in text and "device" not in text


def test_bearer_header_equals_x_api_key(
    base_url: str, populated, clients: dict[str, httpx.Client]
) -> None:
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {populated.tokens['granted']}"}
    ) as bearer:
        assert (
            bearer.get(MEASUREMENTS, params={"limit": 1}).json()["numberMatched"]
            == (clients["granted"].get(MEASUREMENTS, params={"limit": 1}).json()["numberMatched"])
        )


def test_unknown_key_is_401_not_anonymous(base_url: str) -> None:
    with httpx.Client(base_url=base_url, headers={"X-API-Key": "dcm_not-a-key"}) as client:
        response = client.get(MEASUREMENTS)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_writes_need_a_key_with_rights(clients: dict[str, httpx.Client], rows: dict) -> None:
    csv = "timestamp,lat,lon,status\n2021-04-10T10:00:00Z,13.2,-61.2,ok\n"
    url = f"/events/{EVENT}/measurements"
    headers = {"Content-Type": "text/csv"}
    anonymous = clients["anonymous"].post(url, content=csv, headers=headers)
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "urn:dcm:problem:authentication-required"
    viewer = clients["viewer"].post(url, content=csv, headers=headers)
    assert viewer.status_code == 403
    assert viewer.json()["type"] == "urn:dcm:problem:permission-denied"
    # Nothing was stored by the refused writes.
    matched = clients["granted"].get(MEASUREMENTS, params={"limit": 1}).json()["numberMatched"]
    assert matched == len(rows["all"])
