"""Collection queries for the API: bbox, interval, paging, feature by id, extent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from dcm import live
from dcm.errors import NotFound, ParameterError
from dcm.store import Principal, Store

if TYPE_CHECKING:
    from conftest import Scenario

START = pd.Timestamp("2021-04-09T00:00:00Z")
EDGE = 1e-5  # R*Tree bounds are 32-bit: points this close to a box edge may go either way


def fill_vincent(store: Store, scenario: Scenario, admin: Principal) -> Store:
    """Event "vincent" with the scenario's first four hours, ingested in two public slices."""
    store.create_event("vincent", start=START, principal=admin)
    for first, last in ((0, 2), (2, 4)):
        live.ingest(
            store,
            "vincent",
            scenario.event_slice(first, last),
            visibility="public",
            principal=admin,
        )
    return store


@pytest.fixture
def filled(store: Store, scenario: Scenario, admin: Principal) -> Store:
    return fill_vincent(store, scenario, admin)


def test_bbox_pages_match_a_brute_force_filter(filled: Store) -> None:
    rows = filled.db.frame("SELECT id, lon, lat FROM measurements")
    anyone = Principal.anonymous()
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, y = rng.uniform(-61.26, -61.22), rng.uniform(13.20, 13.24)
        box = (x, y, x + 0.02, y + 0.015)
        page = filled.features("measurements", "vincent", bbox=box, limit=100_000, principal=anyone)
        got = {int(f["id"]) for f in page.features}
        assert page.number_matched == len(got)
        inside = rows[rows["lon"].between(box[0], box[2]) & rows["lat"].between(box[1], box[3])]
        near = rows[
            rows["lon"].between(box[0] - EDGE, box[2] + EDGE)
            & rows["lat"].between(box[1] - EDGE, box[3] + EDGE)
        ]
        assert set(inside["id"]) <= got <= set(near["id"])
        assert len(got) > 20
        for feature in page.features[:20]:
            lon, lat = feature["geometry"]["coordinates"]
            assert box[0] - EDGE <= lon <= box[2] + EDGE and box[1] - EDGE <= lat <= box[3] + EDGE


def test_paging_is_stable_and_complete(filled: Store) -> None:
    anyone = Principal.anonymous()
    box = (-61.25, 13.21, -61.22, 13.24)
    whole = filled.features("measurements", "vincent", bbox=box, limit=100_000, principal=anyone)
    seen: list[str] = []
    offset = 0
    while True:
        page = filled.features(
            "measurements", "vincent", bbox=box, limit=37, offset=offset, principal=anyone
        )
        assert page.number_matched == whole.number_matched
        seen.extend(f["id"] for f in page.features)
        if len(page.features) < 37:
            break
        offset += 37
    assert seen == [f["id"] for f in whole.features]
    assert seen == sorted(seen, key=int)


def test_interval_and_filters(filled: Store, scenario: Scenario) -> None:
    anyone = Principal.anonymous()
    lo, hi = START + pd.Timedelta("1h"), START + pd.Timedelta("2h")
    page = filled.features(
        "measurements", "vincent", interval=(lo, hi), limit=100_000, principal=anyone
    )
    times = scenario.event["timestamp"]
    assert page.number_matched == int(((times >= lo) & (times <= hi)).sum())
    for feature in page.features:
        assert lo <= pd.Timestamp(feature["properties"]["timestamp"]) <= hi
    boxed = filled.features(
        "measurements",
        "vincent",
        interval=(lo, hi),
        limit=5,
        bbox=(-61.26, 13.20, -61.23, 13.23),
        filters={"network": "360-10"},
        principal=anyone,
    )
    assert 0 < boxed.number_matched < page.number_matched
    assert all(f["properties"]["network"] == "360-10" for f in boxed.features)
    one = filled.feature("measurements", "vincent", boxed.features[0]["id"], principal=anyone)
    assert one == boxed.features[0]
    with pytest.raises(NotFound):
        filled.feature("measurements", "vincent", "999999999", principal=anyone)
    with pytest.raises(ParameterError):
        filled.features("measurements", "vincent", bbox=(1, 1, 0, 0), principal=anyone)
    with pytest.raises(NotFound):
        filled.features("rainfall", "vincent", principal=anyone)


def test_outage_features_by_bbox_window_and_id(store: Store, admin: Principal) -> None:
    store.create_event("vincent", start=START, principal=admin)
    run = store.start_run("vincent")
    windows = pd.date_range(START, periods=3, freq="h")
    west = shapely.box(-61.26, 13.20, -61.24, 13.22)
    east = shapely.box(-61.22, 13.20, -61.20, 13.22)
    outages = gpd.GeoDataFrame(
        {
            "outage_id": ["a", "a", "a", "b"],
            "window_start": [*windows, windows[2]],
            "window_end": [*(windows + pd.Timedelta("1h")), windows[2] + pd.Timedelta("1h")],
            "network": ["360-10", "360-10", "360-10", "all"],
            "severity": ["outage"] * 4,
            "confidence": [0.9, 0.95, 0.97, 0.8],
            "area_km2": [4.0, 4.5, 5.0, 4.7],
            "population": [100.0, 120.0, np.nan, 80.0],
            "cells_offline": [1, 2, 2, 0],
            "onset": [windows[0]] * 3 + [windows[2]],
        },
        geometry=[west, west, west, east],
        crs="EPSG:4326",
    )
    store.save_results(
        "vincent",
        run.id,
        windows=windows,
        outages=outages,
        cells=pd.DataFrame(),
        grid=pd.DataFrame(),
    )
    anyone = Principal.anonymous()
    everything = store.features("outages", "vincent", limit=10, principal=anyone)
    assert everything.number_matched == 4
    latest = store.features("outages", "vincent", filters={"window": "latest"}, principal=anyone)
    assert {f["properties"]["outage_id"] for f in latest.features} == {"a", "b"}
    boxed = store.features(
        "outages", "vincent", bbox=(-61.23, 13.19, -61.19, 13.23), principal=anyone
    )
    assert [f["properties"]["outage_id"] for f in boxed.features] == ["b"]
    timed = store.features(
        "outages", "vincent", principal=anyone, interval=(windows[1] + pd.Timedelta("10min"), None)
    )
    assert timed.number_matched == 3
    feature = everything.features[0]
    assert feature["id"] == "a@20210409T000000Z"
    assert feature["properties"]["window_start"] == "2021-04-09T00:00:00Z"
    assert feature["geometry"]["type"] == "Polygon"
    assert shapely.geometry.shape(feature["geometry"]).equals(west)
    assert store.feature("outages", "vincent", feature["id"], principal=anyone) == feature
    assert everything.features[2]["properties"]["population"] is None
    bbox, (lo, hi) = store.extent("outages", "vincent", principal=anyone)
    assert bbox == pytest.approx((-61.26, 13.20, -61.20, 13.22))
    assert (lo, hi) == (windows[0], windows[2] + pd.Timedelta("1h"))
    # Saving a window again replaces its rows (an update recomputes it).
    store.save_results(
        "vincent",
        run.id,
        windows=windows[2:],
        outages=outages.iloc[:0],
        cells=pd.DataFrame(),
        grid=pd.DataFrame(),
    )
    assert store.features("outages", "vincent", principal=anyone).number_matched == 2
    # The latest computed window now has no outage: "latest" shows none, not an older one.
    latest = store.features("outages", "vincent", filters={"window": "latest"}, principal=anyone)
    assert latest.number_matched == 0


def test_measurement_extent_follows_new_data(
    filled: Store, scenario: Scenario, admin: Principal
) -> None:
    anyone = Principal.anonymous()
    bbox, (first, last) = filled.extent("measurements", "vincent", principal=anyone)
    times = scenario.event["timestamp"]
    assert first == times.min() and last == times[times < START + pd.Timedelta("4h")].max()
    assert bbox[0] >= -61.26 and bbox[2] <= -61.20
    live.ingest(filled, "vincent", scenario.event_slice(4, 6), visibility="public", principal=admin)
    _, (_, later) = filled.extent("measurements", "vincent", principal=anyone)
    assert later == times[times < START + pd.Timedelta("6h")].max()
    # Rows of datasets the caller may not read do not widen its extent.
    live.ingest(filled, "vincent", scenario.event_slice(6, 8), principal=admin)
    assert filled.extent("measurements", "vincent", principal=anyone)[1][1] == later
    assert filled.extent("measurements", "vincent", principal=admin)[1][1] > later


def test_outage_tier_and_cell_silence_in_the_layers(store: Store, admin: Principal) -> None:
    store.create_event("vincent", start=START, principal=admin)
    run = store.start_run("vincent")
    windows = pd.date_range(START, periods=2, freq="h")
    west = shapely.box(-61.26, 13.20, -61.24, 13.22)
    east = shapely.box(-61.22, 13.20, -61.20, 13.22)
    common = {
        "network": "360-10",
        "severity": "outage",
        "area_km2": 4.0,
        "population": 100.0,
        "cells_offline": 1,
        "onset": START,
    }
    new = gpd.GeoDataFrame(
        {
            "outage_id": ["a", "s"],
            "window_start": [windows[0]] * 2,
            "window_end": [windows[1]] * 2,
            "tier": ["confirmed", "suspected"],
            "certainty": ["observed", "possible"],
            "confidence": [0.97, 0.63],
        }
        | common,
        geometry=[west, east],
        crs="EPSG:4326",
    )
    # A frame from before the tiers: confirmed, certainty from the confidence.
    old = gpd.GeoDataFrame(
        {
            "outage_id": ["b", "c"],
            "window_start": [windows[1]] * 2,
            "window_end": [windows[1] + pd.Timedelta("1h")] * 2,
            "confidence": [0.7, np.nan],
        }
        | common,
        geometry=[west, east],
        crs="EPSG:4326",
    )
    cells = pd.DataFrame(
        {
            "radio": "LTE",
            "mcc": 360,
            "net": 10,
            "area": 1,
            "cell": [1, 2],
            "site_id": ["s1", "s2"],
            "status": ["unknown", "offline"],
            "start": windows[0],
            "end": windows[1],
            "p_offline": [0.4, 0.95],
            "silence_h_needed": [7.5, np.nan],
        }
    )
    store.save_results(
        "vincent",
        run.id,
        windows=windows,
        outages=pd.concat([new, old], ignore_index=True),
        cells=cells,
        grid=pd.DataFrame(),
    )
    anyone = Principal.anonymous()
    props = {
        f["properties"]["outage_id"]: f["properties"]
        for f in store.features("outages", "vincent", principal=anyone).features
    }
    assert {k: (p["tier"], p["certainty"]) for k, p in props.items()} == {
        "a": ("confirmed", "observed"),
        "s": ("suspected", "possible"),
        "b": ("confirmed", "likely"),
        "c": ("confirmed", None),
    }
    suspected = store.features(
        "outages", "vincent", filters={"tier": "suspected"}, principal=anyone
    )
    assert [f["properties"]["outage_id"] for f in suspected.features] == ["s"]
    assert suspected.features[0]["properties"]["confidence"] == 0.63
    confirmed = store.features(
        "outages", "vincent", filters={"tier": "confirmed", "window": "latest"}, principal=anyone
    )
    assert confirmed.number_matched == 2
    frame = store.outages("vincent")
    assert frame["tier"].tolist() == ["confirmed", "suspected", "confirmed", "confirmed"]
    assert frame["certainty"].dtype == "string"
    # Cells: hours of silence needed to decide, missing where not computed.
    found = store.features("cells", "vincent", principal=anyone).features
    needed = {f["properties"]["cell"]: f["properties"]["silence_h_needed"] for f in found}
    assert needed == {1: 7.5, 2: None}
    status = store.cell_status("vincent")
    assert status["silence_h_needed"].dtype == "float64"
    assert status.set_index("cell")["silence_h_needed"].loc[1] == 7.5
    assert np.isnan(status.set_index("cell")["silence_h_needed"].loc[2])


def test_event_names_are_found_once(
    store: Store, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API finds a collection's event by name on every request: after the first
    lookup the name and id come from the store's cache, without a query."""
    event = store.create_event("cached", start=START, principal=admin)
    with pytest.raises(NotFound):
        store.event_name("missing")
    assert store.event_name("cached") == "cached"
    assert store.event_name(str(event.id)) == "cached"
    assert store.event_id("cached") == event.id

    def no_query(*args: object, **kwargs: object) -> None:
        raise AssertionError("queried the database")

    monkeypatch.setattr(store.db, "one", no_query)
    monkeypatch.setattr(store.db, "query", no_query)
    assert store.event_name("cached") == "cached"
    assert store.event_name(str(event.id)) == "cached"
    assert store.event_id("cached") == event.id
    with pytest.raises(AssertionError):
        store.event_name("missing")  # not found before: asked again
