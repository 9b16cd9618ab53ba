"""The live service on both backends: hourly ingest + update, outage ids, alerts, gaps.

One module-scoped run per backend feeds the scenario in two-hour slices, updating after
each, and records what every update did; the tests check that record and the store.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from dcm import live
from dcm.analysis import DetectionParams, build_baseline, detect
from dcm.publish import cap_alert
from dcm.settings import Settings
from dcm.store import Principal, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import LiveRun, Scenario

STEP = 2  # hours per ingested slice (see the live_run fixture)


def test_each_update_recomputes_only_the_new_windows(live_run: LiveRun) -> None:
    start = live_run.scenario.start
    for i, summary in enumerate(live_run.updates):
        expected = [start + pd.Timedelta(hours=STEP * i + k) for k in range(STEP)]
        assert summary.windows == expected
        windows = live_run.windows_after[i]
        computed = windows[~windows["dirty"]]
        # Earlier windows keep the run that computed them.
        assert (
            computed["run_id"].to_numpy()
            == [
                live_run.updates[int((w - start) / pd.Timedelta("1h")) // STEP].run_id
                for w in computed["window_start"]
            ]
        ).all()
        # Windows after the data high-water mark wait (silence there is only the future).
        assert computed["window_start"].max() == expected[-1]
        assert windows["dirty"].sum() > 0
    assert [s.baseline_rebuilt for s in live_run.updates] == [True] + [False] * (
        len(live_run.updates) - 1
    )


def test_outage_ids_are_stable_and_match_a_full_recomputation(live_run: LiveRun) -> None:
    store = live_run.store
    stored = store.outages("vincent")
    assert len(stored) > 0
    main = stored[stored["network"] == "360-10"].iloc[0]
    # The first outage keeps its id over every window it lasts, onset at its first window.
    same = stored[stored["outage_id"] == main["outage_id"]]
    assert len(same) >= 8
    assert (same["onset"] == same["window_start"].min()).all()
    assert same["window_start"].diff().dropna().eq(pd.Timedelta("1h")).all()
    # One batch detection over all windows gives the same ids and areas.
    event_rows = store.measurements("vincent", period="event")
    params = live.detection_params(store.get_event("vincent"))
    model = build_baseline(
        store.measurements("vincent", period="baseline"), store.cells("vincent"), params
    )
    windows = pd.DatetimeIndex(
        sorted(store.event_windows("vincent").query("~dirty")["window_start"])
    )
    batch = detect(
        model, event_rows, params=params, windows=windows, population=store.population("vincent")
    ).outages
    key = ["window_start", "outage_id"]
    got = stored.sort_values(key, ignore_index=True)
    want = batch.sort_values(key, ignore_index=True)
    assert got["outage_id"].tolist() == want["outage_id"].astype(str).tolist()
    assert got["area_km2"].to_numpy() == pytest.approx(want["area_km2"].to_numpy())
    assert got["population"].to_numpy() == pytest.approx(want["population"].to_numpy())


def test_late_data_recomputes_the_span_it_touches(live_run: LiveRun, tmp_path_factory) -> None:
    store, scenario = live_run.store, live_run.scenario
    before = store.outages("vincent")
    last_run = live_run.updates[-1].run_id
    late = (
        scenario.event[(scenario.event["timestamp"] - scenario.start) // pd.Timedelta("1h") == 3]
        .head(5)
        .copy()
    )
    late["measurement_id"] = late["measurement_id"] + "-late"
    late["timestamp"] = late["timestamp"] + pd.Timedelta(minutes=1)
    path = tmp_path_factory.mktemp("late") / "late.csv"
    late.assign(timestamp=late["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        path, index=False
    )
    outcome = live.ingest(store, "vincent", path, principal=Principal.system())
    assert outcome.added == 5
    summary = live.update(
        store, "vincent", principal=Principal.system(), now=scenario.start + pd.Timedelta(hours=40)
    )
    hour3 = scenario.start + pd.Timedelta(hours=3)
    span = pd.Timedelta(DetectionParams().span)
    assert summary.windows == list(pd.date_range(hour3, hour3 + span, freq="h"))
    windows = store.event_windows("vincent")
    rerun = windows[windows["run_id"] == summary.run_id]["window_start"]
    assert list(rerun) == summary.windows
    assert (windows[~windows["window_start"].isin(summary.windows)]["run_id"] <= last_run).all()
    after = store.outages("vincent")
    # Five more ok reports in hour 3 do not change which outages exist, nor their ids.
    assert sorted(after["outage_id"]) == sorted(before["outage_id"])


def test_alerts_go_alert_update_cancel_with_references(live_run: LiveRun) -> None:
    messages = live_run.store.alert_messages("vincent")
    chains: dict[str, list] = {}
    for message in messages:
        chains.setdefault(message.outage_id, []).append(message)
    assert chains
    first = messages[0]
    main = [m.msg_type for m in chains[first.outage_id]]
    assert main[0] == "Alert" and main[-1] == "Cancel" and "Update" in main
    # Each Update follows a material change since the message before it.
    for chain in chains.values():
        for before, message in itertools.pairwise(chain):
            if message.msg_type != "Update":
                continue
            old, new = before.properties, message.properties
            ratios = [new[k] / old[k] for k in ("area_km2", "population") if old.get(k)]
            assert new["severity"] != old["severity"] or any(r >= 1.25 or r <= 0.75 for r in ratios)
            assert message.sent > before.sent
            # It keeps the figures it is compared with, and says what changed.
            assert new["previous"] == {
                k: old.get(k) for k in ("population", "area_km2", "tier", "severity", "network")
            }
            description = live.cap_message(message).description
            assert description.startswith("Update: ") and " from " in description
    for chain in chains.values():
        assert chain[0].msg_type == "Alert" and chain[0].references == ()
        assert chain[-1].msg_type == "Cancel"  # service is back everywhere at the end
        assert [m.msg_type for m in chain].count("Cancel") == 1
        for i, message in enumerate(chain[1:], start=1):
            refs = [r.split(",")[1] for r in message.references]
            assert refs == [m.identifier for m in chain[:i]]
            assert message.sent >= chain[i - 1].sent
    assert len({m.identifier for m in messages}) == len(messages)
    # Stored messages render as CAP 1.2.
    xml = cap_alert(live.cap_message(chains[first.outage_id][-1])).decode()
    assert "<msgType>Cancel</msgType>" in xml and first.identifier in xml
    # Every Cancel says service is back, in its headline and description.
    for chain in chains.values():
        cancel = live.cap_message(chain[-1])
        assert "restored" in cancel.headline and " down" not in cancel.headline
        assert "again since " + chain[-1].properties["restored"][:10] in cancel.description
    geo = live.alerts_geojson(live_run.store, "vincent")
    assert {f["properties"]["msg_type"] for f in geo["features"]} == {"Cancel"}


def test_gap_report_ranks_areas_by_people(live_run: LiveRun) -> None:
    store, start = live_run.store, live_run.scenario.start
    at = start + pd.Timedelta(hours=16)
    report = live.gap_report(store, "vincent", at=at)
    assert list(report.columns) == list(live.GAP_COLUMNS)
    assert len(report) >= 2
    assert report["people"].is_monotonic_decreasing
    by_area = report[report["network"] == "360-10"].set_index("area_id")
    # The outage lies mostly in the West district.
    others = by_area["people"].drop("W")
    assert by_area.loc["W", "people"] > (others.max() if len(others) else 0.0)
    assert by_area.loc["W", "people"] <= 450 * 20 + 1e-6
    assert by_area.loc["W", "area_name"] == "West"
    # People per district add up to the people of the outage polygons of that window.
    outages = store.outages("vincent", windows=[at])
    total = outages.loc[outages["network"] == "360-10", "population"].sum()
    assert by_area["people"].sum() == pytest.approx(total, rel=0.05)
    # Sites fail 8 h in; coverage outages are drawn once sites stayed offline for
    # coverage_confirm_windows hourly windows.
    first = 8 + DetectionParams().coverage_confirm_windows - 1
    assert (by_area["since"] == start + pd.Timedelta(hours=first)).all()
    assert (by_area["area_km2"] > 0).all() and (by_area["cells_offline"] >= 0).all()
    delta = report["people"] - report["people_before"]
    moved = delta.abs() > (0.1 * report["people_before"]).clip(lower=10)
    expected = moved.map({True: "x", False: "stable"}).where(
        ~moved, delta.gt(0).map({True: "growing", False: "shrinking"})
    )
    assert report["trend"].tolist() == expected.tolist()
    # Six hours before the first outage window there was nothing: everything is growing.
    early = live.gap_report(store, "vincent", at=start + pd.Timedelta(hours=first + 1))
    # (a district the outage only grazes, fewer than 10 people, counts as stable).
    assert (early["trend"] == "growing").any()
    assert (early.loc[early["people"] > 10, "trend"] == "growing").all()
    assert (early["people_before"] == 0).all()
    # At the end service is back: no gaps.
    assert live.gap_report(store, "vincent").empty


def test_derived_layers_of_the_run(live_run: LiveRun) -> None:
    store = live_run.store
    analyst = Principal(name="a", role="analyst")
    # Baseline coverage: every baseline report is counted once per network and once in "all".
    coverage = store.features("coverage", "vincent", limit=100_000, principal=analyst)
    props = [f["properties"] for f in coverage.features]
    baseline_rows = len(store.measurements("vincent", period="baseline"))
    assert sum(p["measurements"] for p in props if p["network"] == "all") == baseline_rows
    assert sum(p["measurements"] for p in props if p["network"] != "all") == baseline_rows
    assert all(0 <= p["ok_share"] <= 1 for p in props)
    # Cell status of the latest window: points at the cells' positions.
    cells = store.features(
        "cells",
        "vincent",
        filters={"window": "latest"},
        limit=1000,
        principal=Principal.anonymous(),
    )
    assert cells.number_matched == len(store.cells("vincent"))
    for feature in cells.features:
        assert feature["properties"]["status"] in ("online", "offline", "unknown")
        lon, lat = feature["geometry"]["coordinates"]
        assert -61.27 < lon < -61.19 and 13.19 < lat < 13.27
    # Grid of the latest window, hex polygons, per network and "all".
    grid = store.features(
        "grid", "vincent", filters={"window": "latest"}, limit=10_000, principal=analyst
    )
    assert {f["properties"]["network"] for f in grid.features} >= {"360-10", "360-50", "all"}
    assert {f["geometry"]["type"] for f in grid.features} == {"Polygon"}


@pytest.mark.postgres
def test_both_backends_store_the_same_results(
    both_backends: tuple[str, str], tmp_path: Path, scenario: Scenario
) -> None:
    results = []
    for i, url in enumerate(both_backends):
        settings = Settings(
            data_dir=tmp_path / f"d{i}",
            secret="same",
            alert_min_population=0.0,
            alert_min_area_km2=0.5,
            alert_min_confidence=0.5,
        )
        with open_store(settings, url=url) as store:
            admin = Principal.system()
            store.create_event("vincent", start=scenario.start, principal=admin)
            for kind, path in (
                ("cells", scenario.cells),
                ("baseline", scenario.baseline),
                ("population", scenario.population),
            ):
                live.ingest(store, "vincent", path, kind=kind, principal=admin)
            for first in range(0, 16, 4):
                live.ingest(
                    store, "vincent", scenario.event_slice(first, first + 4), principal=admin
                )
                live.update(
                    store,
                    "vincent",
                    principal=admin,
                    now=scenario.start + pd.Timedelta(hours=first + 4),
                )
            outages = store.outages("vincent").drop(columns="geometry")
            grid = store.grid_status("vincent")
            alerts = [
                (m.identifier, m.msg_type, m.references) for m in store.alert_messages("vincent")
            ]
            devices = sorted(
                r[0] for r in store.db.query("SELECT DISTINCT device FROM measurements")
            )
            results.append((outages, grid, alerts, devices))
    (o1, g1, a1, d1), (o2, g2, a2, d2) = results
    assert len(o1) > 0 and len(a1) > 0
    pd.testing.assert_frame_equal(o1, o2)
    pd.testing.assert_frame_equal(g1, g2)
    assert a1 == a2
    assert d1 == d2  # same secret, same hashed device ids


def test_suspected_outages_open_alert_chains_only_when_asked(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from dcm.live import _passes

    row = pd.Series({"population": 500.0, "area_km2": 2.0, "confidence": 0.8, "tier": "suspected"})
    quiet = SimpleNamespace(settings=Settings(data_dir=tmp_path))
    loud = SimpleNamespace(settings=Settings(data_dir=tmp_path, alert_suspected=True))
    assert not _passes(row, quiet)  # type: ignore[arg-type]
    assert _passes(row, loud)  # type: ignore[arg-type]
    confirmed = row.copy()
    confirmed["tier"] = "confirmed"
    assert _passes(confirmed, quiet)  # type: ignore[arg-type]
    older = row.drop("tier")  # stored before tiers existed: confirmed
    assert _passes(older, quiet)  # type: ignore[arg-type]
