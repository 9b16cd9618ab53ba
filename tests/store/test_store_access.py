"""Access control in the store: hashed keys, roles, grants, k-anonymity, audit log."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from dcm import live
from dcm.errors import AuthenticationRequired, NotFound, PermissionDenied
from dcm.store import COLLECTION_KINDS, Principal, Store

if TYPE_CHECKING:
    from conftest import Scenario

START = pd.Timestamp("2021-04-09T00:00:00Z")


@pytest.fixture
def shared(store: Store, scenario: Scenario, admin: Principal) -> dict[str, int]:
    """An event with one public, one partner and one restricted measurement dataset and
    restricted admin areas; returns dataset ids by name."""
    store.create_event("vincent", start=START, principal=admin)
    ids = {}
    for name, (first, last), visibility in (
        ("public", (0, 1), "public"),
        ("partner", (1, 2), "partner"),
        ("restricted", (2, 3), "restricted"),
    ):
        path = scenario.event_slice(first, last)
        ids[name] = live.ingest(
            store, "vincent", path, visibility=visibility, principal=admin
        ).dataset.id
    ids["areas"] = live.ingest(
        store, "vincent", scenario.areas, kind="areas", visibility="restricted", principal=admin
    ).dataset.id
    return ids


def _visible_datasets(store: Store, principal: Principal) -> set[int]:
    page = store.features("measurements", "vincent", limit=100_000, principal=principal)
    assert page.number_matched == len(page.features)
    return {f["properties"]["dataset_id"] for f in page.features}


def _rows(store: Store, dataset_id: int) -> int:
    return int(
        store.db.scalar(
            "SELECT count(*) FROM measurements WHERE dataset_id = :id", {"id": dataset_id}
        )
    )


def test_keys_are_stored_hashed(store: Store, admin: Principal) -> None:
    record, token = store.create_key("ops", role="analyst", principal=admin)
    assert token.startswith("dcm_") and len(token) > 40
    stored = store.db.query("SELECT * FROM api_keys")
    assert len(stored) == 1
    assert not any(token in str(value) for value in stored[0])
    assert hashlib.sha256(token.encode()).hexdigest() in stored[0]
    principal = store.authenticate(token)
    assert (principal.name, principal.role, principal.key_id) == ("ops", "analyst", record.id)
    assert store.authenticate(None) == Principal.anonymous()
    with pytest.raises(AuthenticationRequired):
        store.authenticate(token + "x")
    store.revoke_key("ops", principal=admin)
    with pytest.raises(AuthenticationRequired):
        store.authenticate(token)
    assert not store.get_key("ops").active


def test_viewer_reads_only_public_rows_through_every_query(
    store: Store, shared: dict[str, int], admin: Principal
) -> None:
    _, token = store.create_key("viewer", role="viewer", principal=admin)
    viewer = store.authenticate(token)
    for principal in (viewer, Principal.anonymous()):
        assert _visible_datasets(store, principal) == {shared["public"]}
        page = store.features("measurements", "vincent", limit=5, principal=principal)
        assert page.number_matched == _rows(store, shared["public"])
        boxed = store.features(
            "measurements",
            "vincent",
            bbox=(-61.3, 13.1, -61.1, 13.3),
            limit=100_000,
            principal=principal,
        )
        assert {f["properties"]["dataset_id"] for f in boxed.features} == {shared["public"]}
        hidden = store.db.scalar(
            "SELECT min(id) FROM measurements WHERE dataset_id = :id", {"id": shared["restricted"]}
        )
        with pytest.raises(NotFound):
            store.feature("measurements", "vincent", str(hidden), principal=principal)
        assert store.features("areas", "vincent", principal=principal).number_matched == 0
        with pytest.raises(NotFound):
            store.feature("areas", "vincent", "W", principal=principal)
        assert store.extent("areas", "vincent", principal=principal)[0] is None
        visible = {d.id for d in store.list_datasets("vincent", principal=principal)}
        assert visible == {shared["public"]}
        for kind in COLLECTION_KINDS:  # no collection leaks the hashed device ids
            for feature in store.features(kind, "vincent", limit=50, principal=principal).features:
                assert "device" not in feature["properties"]


def test_partner_and_grants(store: Store, shared: dict[str, int], admin: Principal) -> None:
    _, plain = store.create_key("ngo", role="partner", principal=admin)
    _, granted = store.create_key(
        "telco", role="partner", grants=[shared["partner"]], principal=admin
    )
    _, analyst = store.create_key("analyst", role="analyst", principal=admin)
    assert _visible_datasets(store, store.authenticate(plain)) == {shared["public"]}
    assert _visible_datasets(store, store.authenticate(granted)) == {
        shared["public"],
        shared["partner"],
    }
    # Analysts read partner data without a grant, but restricted data only with one.
    assert _visible_datasets(store, store.authenticate(analyst)) == {
        shared["public"],
        shared["partner"],
    }
    store.grant("analyst", shared["restricted"], principal=admin)
    assert _visible_datasets(store, store.authenticate(analyst)) == {
        shared["public"],
        shared["partner"],
        shared["restricted"],
    }
    store.revoke_grant("analyst", shared["restricted"], principal=admin)
    assert shared["restricted"] not in _visible_datasets(store, store.authenticate(analyst))
    # Only admins get the (hashed) device column.
    admin_page = store.features("measurements", "vincent", limit=3, principal=admin)
    assert all(f["properties"]["device"] for f in admin_page.features)
    analyst_page = store.features(
        "measurements", "vincent", limit=3, principal=store.authenticate(analyst)
    )
    assert all("device" not in f["properties"] for f in analyst_page.features)


def test_writes_are_authorised_and_audited(
    store: Store, shared: dict[str, int], admin: Principal, scenario: Scenario
) -> None:
    _, token = store.create_key("viewer", role="viewer", principal=admin)
    viewer = store.authenticate(token)
    with pytest.raises(PermissionDenied):
        store.create_event("other", start=START, principal=viewer)
    with pytest.raises(AuthenticationRequired):
        store.create_event("other", start=START, principal=Principal.anonymous())
    with pytest.raises(PermissionDenied):
        live.ingest(store, "vincent", scenario.event_slice(5, 6), principal=viewer)
    with pytest.raises(PermissionDenied):
        live.update(store, "vincent", principal=viewer)
    with pytest.raises(PermissionDenied):
        store.create_key("x", role="admin", principal=viewer)
    _, partner_token = store.create_key("telco", role="partner", principal=admin)
    partner = store.authenticate(partner_token)
    outcome = live.ingest(store, "vincent", scenario.event_slice(5, 6), principal=partner)
    assert outcome.dataset.owner == "telco"
    log = store.audit_log()
    actions = [(e.action, e.actor) for e in log]
    assert ("dataset.add", "telco") in actions
    assert ("key.create", "system") in actions
    assert ("event.create", "system") in actions
    entry = next(e for e in log if e.action == "dataset.add" and e.actor == "telco")
    assert entry.target == f"dataset:{outcome.dataset.id}"
    assert entry.key_id == partner.key_id
    assert entry.at <= pd.Timestamp.now(tz="UTC")


def test_k_anonymity_hides_sparse_hexes(store: Store, admin: Principal) -> None:
    store.create_event("vincent", start=START, principal=admin)
    run = store.start_run("vincent")
    hexes = ["88283082a3fffff", "88283082a7fffff", "88283082abfffff"]
    grid = pd.DataFrame(
        {
            "h3": hexes,
            "network": "360-10",
            "window_start": START,
            "window_end": START + pd.Timedelta(hours=1),
            "expected_count": 5.0,
            "observed_count": [1, 2, 9],
            "ok_count": [1, 2, 9],
            "fail_count": 0,
            "state": "up",
            "p_down": 0.01,
            "devices": [1, 2, 5],
        }
    )
    empty = gpd.GeoDataFrame({"outage_id": []}, geometry=[], crs="EPSG:4326")
    store.save_results(
        "vincent",
        run.id,
        windows=pd.DatetimeIndex([START]),
        outages=empty,
        cells=pd.DataFrame(),
        grid=grid,
    )
    store.save_coverage(
        "vincent",
        pd.DataFrame(
            {
                "h3": hexes,
                "network": "all",
                "measurements": 10,
                "ok_count": 9,
                "fail_count": 1,
                "devices": [2, 3, 4],
            }
        ),
    )
    k = store.settings.k_anonymity
    assert k == 3
    for principal in (Principal.anonymous(), Principal(name="p", role="partner")):
        page = store.features("grid", "vincent", limit=10, principal=principal)
        assert [f["properties"]["h3"] for f in page.features] == [hexes[2]]
        assert page.number_matched == 1
        coverage = store.features("coverage", "vincent", limit=10, principal=principal)
        assert {f["properties"]["h3"] for f in coverage.features} == set(hexes[1:])
        with pytest.raises(NotFound):
            store.feature(
                "grid", "vincent", f"{hexes[0]}_360-10_20210409T000000Z", principal=principal
            )
    analyst = Principal(name="a", role="analyst")
    page = store.features("grid", "vincent", limit=10, principal=analyst)
    assert page.number_matched == 3
    feature = store.feature("grid", "vincent", page.features[0]["id"], principal=analyst)
    ring = shapely.geometry.shape(feature["geometry"])
    assert ring.geom_type == "Polygon" and ring.is_valid and ring.area > 0
