"""A partner following a live event through the API: an event grant by source covers
restricted data uploaded after the grant (OGC items, GDAL reading the API), never
another source's, and nothing once revoked; anonymous callers and other partners never
see any of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyogrio
import pytest

from dcm.api import create_app
from dcm.store import Principal, open_store

from .conftest import key_clients, populated_copy

EVENT = "stvincent"
ITEMS = f"/collections/{EVENT}-measurements/items"
#: Uploads land in this small box, so a bbox query returns them and few sample rows.
BOX = (-61.16, 13.30, -61.15, 13.31)
HEADER = "timestamp,lat,lon,status,mcc,mnc,measurement_id"


@pytest.fixture(scope="module")
def store_copy(populated, tmp_path_factory: pytest.TempPathFactory, sample_data: Path):
    """The sample store with keys for two partners and an uploader; ``telco`` holds an
    event grant on source ``telco-a.csv`` made before any such data exists."""
    folder = tmp_path_factory.mktemp("event-grants")
    with populated_copy(populated, folder, sample_data / "stvincent") as copy:
        admin = Principal.system()
        tokens = {}
        with open_store(copy.settings()) as store:
            for name in ("telco", "ngo", "uploader"):
                _, tokens[name] = store.create_key(name, role="partner", principal=admin)
            store.grant_event("telco", EVENT, source="telco-a.csv", principal=admin)
        yield copy, tokens


@pytest.fixture(scope="module")
def base_url(serve, store_copy) -> str:
    settings = store_copy[0].settings()
    return serve(lambda: create_app(settings))


@pytest.fixture(scope="module")
def clients(base_url: str, store_copy) -> Iterator[dict[str, httpx.Client]]:
    with key_clients(base_url, store_copy[1]) as made:
        yield made


def _upload(client: httpx.Client, name: str, prefix: str, *, seed: int) -> set[str]:
    """Upload 30 restricted rows named ``name``; returns their measurement ids."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(BOX[0] + 0.001, BOX[2] - 0.001, 30)
    lat = rng.uniform(BOX[1] + 0.001, BOX[3] - 0.001, 30)
    rows = [
        f"2021-04-10T14:{i:02d}:00Z,{a:.6f},{o:.6f},failed,360,110,{prefix}{i}"
        for i, (a, o) in enumerate(zip(lat, lon, strict=True))
    ]
    response = client.post(
        f"/events/{EVENT}/measurements",
        content="\n".join([HEADER, *rows]) + "\n",
        headers={"Content-Type": "text/csv"},
        params={"visibility": "restricted", "name": name},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["dataset"]["source"] == name and body["added"] == 30
    return {f"{prefix}{i}" for i in range(30)}


def _seen(client: httpx.Client) -> set[str]:
    """Measurement ids of the box's rows the client reads (every page)."""
    ids: set[str] = set()
    url: str | None = ITEMS
    params: dict[str, str] | None = {"bbox": ",".join(map(str, BOX)), "limit": "20"}
    while url:
        body = client.get(url, params=params).json()
        ids |= {f["properties"]["measurement_id"] for f in body["features"]}
        url = next((x["href"] for x in body["links"] if x["rel"] == "next"), None)
        params = None
    return ids


def _gdal_seen(base_url: str, token: str) -> set[str]:
    """The same through GDAL's OGC API – Features driver, with the key as a bearer token
    (GDAL does not pass GDAL_HTTP_HEADERS on to every request)."""
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token})
    try:
        frame = pyogrio.read_dataframe(
            f"OAPIF:{base_url}/collections/{EVENT}-measurements", bbox=BOX
        )
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})
    return set(frame["measurement_id"].dropna())


def test_partner_follows_the_event_by_source(
    clients: dict[str, httpx.Client], base_url: str, store_copy
) -> None:
    copy, tokens = store_copy
    assert _seen(clients["telco"]) == _seen(clients["anonymous"])  # nothing granted yet
    # Data of the granted source arrives after the grant, with another source's.
    ours = _upload(clients["uploader"], "telco-a.csv", "grant-a-", seed=1)
    theirs = _upload(clients["uploader"], "telco-b.csv", "grant-b-", seed=2)
    telco = _seen(clients["telco"])
    assert ours <= telco and not theirs & telco
    assert _gdal_seen(base_url, tokens["telco"]) == telco
    for caller in ("anonymous", "ngo", "uploader"):
        assert not (ours | theirs) & _seen(clients[caller]), caller
    # One item by id: the granted partner reads it, others get 404 without the row.
    with open_store(copy.settings()) as store:
        fid = store.db.scalar(
            "SELECT id FROM measurements WHERE measurement_id = :m", {"m": "grant-a-0"}
        )
        other = store.db.scalar(
            "SELECT id FROM measurements WHERE measurement_id = :m", {"m": "grant-b-0"}
        )
    assert clients["telco"].get(f"{ITEMS}/{fid}").status_code == 200
    assert clients["telco"].get(f"{ITEMS}/{other}").status_code == 404
    for caller in ("anonymous", "ngo"):
        response = clients[caller].get(f"{ITEMS}/{fid}")
        assert response.status_code == 404 and "grant-a-0" not in response.text

    # Revoked: the partner no longer reads the source, through either client.
    with open_store(copy.settings()) as store:
        store.revoke_event_grant("telco", EVENT, source="telco-a.csv", principal=Principal.system())
    assert not ours & _seen(clients["telco"])
    assert not ours & _gdal_seen(base_url, tokens["telco"])
    assert clients["telco"].get(f"{ITEMS}/{fid}").status_code == 404
