"""Figures planners read, against a hand-made store (tests/gapstore.py): the gap
report's ``since`` per area and network, and cells' ``offline_since``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcm import live
from dcm.store import Principal

from .. import gapstore


def test_gap_report_since_comes_from_the_outages_touching_each_area(
    tmp_path: Path, store_url: str
) -> None:
    with gapstore.build(tmp_path, url=store_url) as store:
        report = live.gap_report(store, gapstore.EVENT)
    rows = [
        (r.area_name, r.network, r.people, r.since, r.cells_offline) for r in report.itertuples()
    ]
    # Outage A (onset T0) lies in West; B and N (onset W1) in East: East's outage began
    # at W1 although the network's first outage began at T0. Cells offline count the
    # sites serving the area: cell 1 stands in West but its service area reaches East.
    assert rows == [
        ("West", "360-100", 300.0, gapstore.T0, 1),
        ("East", "360-100", 100.0, gapstore.W1, 2),
        ("East", "all", 50.0, gapstore.W1, 2),
    ]
    # The window before: only A, since T0.
    with gapstore.build(tmp_path / "again") as store:
        early = live.gap_report(store, gapstore.EVENT, at=gapstore.T0)
    assert early[["area_name", "network", "since"]].values.tolist() == [
        ["West", "360-100", gapstore.T0]
    ]


def test_cells_carry_the_start_of_their_offline_interval(tmp_path: Path, store_url: str) -> None:
    with gapstore.build(tmp_path, url=store_url) as store:
        status = store.cell_status(gapstore.EVENT)
        page = store.features(
            "cells",
            gapstore.EVENT,
            limit=10,
            principal=Principal.system(),
            filters={"status": "offline"},
        )
    last = status[status["start"] == gapstore.W1].set_index("cell")
    # Cell 1 was offline in W0 too (saved by an earlier update): since T0, not W1.
    assert last.loc[1, "offline_since"] == gapstore.T0
    assert last.loc[2, "offline_since"] == gapstore.W1
    first = status[status["start"] == gapstore.T0].set_index("cell")
    assert first.loc[1, "offline_since"] == gapstore.T0
    assert pd.isna(first.loc[2, "offline_since"])  # online then
    props = {
        (f["properties"]["cell"], f["properties"]["start"]): f["properties"]["offline_since"]
        for f in page.features
    }
    assert props == {
        (1, "2021-04-09T20:00:00Z"): "2021-04-09T20:00:00Z",
        (1, "2021-04-09T21:00:00Z"): "2021-04-09T20:00:00Z",
        (2, "2021-04-09T21:00:00Z"): "2021-04-09T21:00:00Z",
    }


def test_gap_history_counts_people_cut_off_per_window_and_network(tmp_path: Path) -> None:
    with gapstore.build(tmp_path) as store:
        history = live.gap_history(store, gapstore.EVENT)
        until_first = live.gap_history(store, gapstore.EVENT, until=gapstore.T0)
    # W0: A holds West's 300; nobody lacks every network. W1: 360-100 loses A, B and N
    # (300 + 50 + 50); N alone is where no network serves (50).
    assert history.values.tolist() == [
        [gapstore.T0, "360-100", 300.0],
        [gapstore.T0, "all", 0.0],
        [gapstore.W1, "360-100", 400.0],
        [gapstore.W1, "all", 50.0],
    ]
    assert until_first.values.tolist() == [[gapstore.T0, "360-100", 300.0]]


def test_cell_status_of_chosen_windows(tmp_path: Path, store_url: str) -> None:
    with gapstore.build(tmp_path, url=store_url) as store:
        every = store.cell_status(gapstore.EVENT)
        last = store.cell_status(gapstore.EVENT, windows=[gapstore.W1])
        none = store.cell_status(gapstore.EVENT, windows=[])
    assert len(every) == 4 and none.empty
    expected = every[every["start"] == gapstore.W1].reset_index(drop=True)
    pd.testing.assert_frame_equal(last.reset_index(drop=True), expected)
