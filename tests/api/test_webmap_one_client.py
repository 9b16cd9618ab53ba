"""One map client: the batch ``map.html`` (opened from a file://, no server) and the live
map (served by the API) draw the same thing from the same data.

The batch page is rendered by :func:`dcm.publish.webmap.render_map` from the very layers
the small fake API of ``test_webmap_browser`` serves; both open in headless Chromium at
the same window and are read back: legend entries, outage list rows, totals and chart,
network colours, what each pane draws. Neither may make a request beyond its file or
loopback, and axe-core finds no serious violation in either. The batch page also keeps
the live map's phone layout and its one-page A4/Letter print.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from fastapi import FastAPI

from dcm.publish.webmap import network_look, render_map
from dcm.settings import Settings

from .. import browser as cdp
from .test_webmap_browser import ARTIFACTS, DESCRIPTION, EVENT, _fake_layers, fake_app
from .test_webmap_responder import _axe

pytestmark = pytest.mark.browser

_TIMES = ("window_start", "window_end", "onset", "start", "end", "offline_since")


def _frame(features: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame.from_features(features, crs=4326)
    for col in set(_TIMES) & set(frame.columns):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


@pytest.fixture(scope="module")
def batch_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch map of the fake API's data, opening at its latest window as the live
    map does, with the built-in land and place names around it."""
    from dcm.compare import orientation

    layers = _fake_layers()
    outages = _frame(layers["outages"])
    points = _frame(layers["cells"])
    cells = pd.DataFrame(points.drop(columns="geometry")).assign(
        lon=points.geometry.x, lat=points.geometry.y
    )
    west, south, east, north = outages.total_bounds
    page = render_map(
        outages=outages,
        cells=cells,
        grid=_frame(layers["grid"]),
        areas=_frame(layers["areas"]),
        hazard=_frame(layers["hazard"]),
        title=DESCRIPTION,
        window_end=outages["window_end"].max(),
        orientation=orientation((west - 0.3, south - 0.3, east + 0.3, north + 0.3)),
    )
    path = tmp_path_factory.mktemp("batch") / "map.html"
    path.write_text(page, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def live_url(serve: Callable[[Callable[[], FastAPI]], str]) -> str:
    return serve(lambda: fake_app(Settings(map_refresh_s=3600))) + f"/events/{EVENT}/map"


def _open(browser: Any, url: str) -> Any:
    browser.navigate("about:blank")
    browser.navigate(url)
    browser.wait_js("window.dcm && window.dcm.ready", timeout=60)
    browser.wait_js("dcm.chart && dcm.orientation && dcm.orientation.ready", timeout=30)
    browser.idle()
    return browser


@pytest.fixture(scope="module")
def live(live_url: str) -> Iterator[Any]:
    with cdp.Chromium(cdp.require_chromium(), width=1280, height=820) as browser:
        yield _open(browser, live_url)


@pytest.fixture(scope="module")
def batch(batch_path: Path) -> Iterator[Any]:
    with cdp.Chromium(cdp.require_chromium(), width=1280, height=820) as browser:
        yield _open(browser, batch_path.as_uri())


#: What a reader sees of the map, read the same way from both pages.
PICTURE = """(() => {
  const seen = (e) => e.getClientRects().length && !e.closest('[hidden]');
  const text = (s) => [...document.querySelectorAll(s)].filter(seen)
    .map((e) => e.innerText.replace(/\\s+/g, ' ').trim());
  const paths = (pane) => [...document.querySelectorAll(`.leaflet-${pane}-pane path`)]
    .map((p) => [(p.getAttribute('class') || '').replace('leaflet-interactive', '').trim(),
                 p.getAttribute('stroke'), p.getAttribute('stroke-dasharray'),
                 p.getAttribute('fill')]).sort();
  return {
    title: document.getElementById('title').textContent,
    window: document.getElementById('window-label').textContent,
    legend: text('#panel legend, #panel fieldset label'),
    list: text('#outage-list li'),
    totals: text('section.totals dd'),
    chart: dcm.chart, peak: dcm.peak, totalsRaw: dcm.totals,
    drawn: dcm.drawn, outages: paths('outages'), restored: paths('restored'),
    cells: paths('cells'), areas: paths('areas').length, hazard: paths('hazard'),
    land: dcm.orientation.land,
    lang: document.documentElement.lang,
    landmarks: [...document.querySelectorAll('header, main, nav, aside, [role=region]')]
      .map((e) => e.getAttribute('aria-label') || e.tagName),
  };
})()"""


def test_both_maps_draw_the_same_legend_list_totals_and_colours(live: Any, batch: Any) -> None:
    assert live.evaluate("[dcm.live, dcm.errors]") == [True, []]
    assert batch.evaluate("[dcm.live, dcm.errors]") == [False, []]
    seen_live, seen_batch = live.evaluate(PICTURE), batch.evaluate(PICTURE)
    # Nothing trivially equal: the window has outages, a network, cells, a restored area.
    assert seen_live["title"] == DESCRIPTION
    assert len(seen_live["list"]) == 2 and seen_live["drawn"]["outages"] == 2
    assert seen_live["drawn"]["restored"] == 1 and seen_live["drawn"]["cells"] == 3
    assert seen_live["land"] == 1 and seen_live["lang"] == "en"
    for key in seen_live:
        assert seen_live[key] == seen_batch[key], (key, seen_live[key], seen_batch[key])
    assert "Network 358-50 down" in seen_live["legend"]
    net = [p for p in seen_live["outages"] if "dcm-net" in p[0]]
    assert [p[1:3] for p in net] == [list(network_look("358-50"))]


def test_both_maps_follow_the_time_control_alike(live: Any, batch: Any) -> None:
    for page in (live, batch):
        page.evaluate("document.getElementById('prev').click()")
        page.wait_js("dcm.index === 1")
        page.idle()
    seen_live, seen_batch = live.evaluate(PICTURE), batch.evaluate(PICTURE)
    assert seen_live["window"].startswith("2021-04-09 13:00 – 14:00 (2 of 3)")
    assert len(seen_live["list"]) == 3
    for key in ("window", "list", "totals", "outages", "restored", "drawn"):
        assert seen_live[key] == seen_batch[key], (key, seen_live[key], seen_batch[key])
    for page in (live, batch):
        page.evaluate("document.getElementById('latest').click()")
        page.wait_js("dcm.index === 2")


def test_batch_map_makes_no_request_and_live_map_stays_on_loopback(live: Any, batch: Any) -> None:
    for r in list(batch.requests.values()):
        assert r.url.startswith(("file:", "data:", "blob:")), f"batch map requested {r}"
    assert len([r for r in batch.requests.values() if r.url.startswith("file:")]) == 1
    for r in list(live.requests.values()):
        if r.url.startswith(("data:", "blob:")):
            continue
        assert r.host == "127.0.0.1", f"request left loopback: {r}"


def test_axe_core_finds_no_serious_violation_on_either_map(live: Any, batch: Any) -> None:
    assert _axe(live) == []
    assert _axe(batch) == []
    batch.evaluate("document.querySelector('.outage-item').click()")
    batch.wait_js("document.querySelector('.leaflet-popup-content')")
    assert _axe(batch) == []
    batch.screenshot(ARTIFACTS / "webmap-batch.png")


def test_batch_map_on_a_phone_keeps_the_time_control_clear_and_pinch_zoom(
    batch_path: Path,
) -> None:
    with cdp.Chromium(cdp.require_chromium(), width=390, height=844) as phone:
        phone.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
            session=phone.session,
        )
        phone.send("Emulation.setTouchEmulationEnabled", {"enabled": True}, session=phone.session)
        _open(phone, batch_path.as_uri())
        boxes = phone.evaluate(
            """Object.fromEntries(['map', 'slider', 'prev', 'play'].map(id => {
                 const r = document.getElementById(id).getBoundingClientRect();
                 return [id, [r.left, r.top, r.right, r.bottom]]; }))"""
        )
        bottom = boxes["map"][3]
        for control in ("slider", "prev", "play"):
            c = boxes[control]
            assert c[1] >= bottom and c[2] <= 390, (control, boxes)
            hit = phone.evaluate(
                f"document.elementFromPoint({(c[0] + c[2]) / 2}, {(c[1] + c[3]) / 2})?.id"
            )
            assert hit == control, f"{control} is covered by {hit}"
        viewport = phone.evaluate("document.querySelector('meta[name=viewport]').content")
        assert "user-scalable=no" not in viewport and "maximum-scale" not in viewport
        assert phone.evaluate("dcm.map.touchZoom.enabled()") is True
        phone.screenshot(ARTIFACTS / "webmap-batch-phone.png")
        assert _axe(phone) == []


@pytest.mark.parametrize(("paper", "size"), [("A4", (11.69, 8.27)), ("Letter", (11.0, 8.5))])
def test_batch_map_prints_title_time_legend_and_source_without_controls(
    batch: Any, paper: str, size: tuple[float, float]
) -> None:
    batch.send("Emulation.setEmulatedMedia", {"media": "print"}, session=batch.session)
    try:
        shown = batch.evaluate(
            """(() => { const seen = (s) => [...document.querySelectorAll(s)]
                 .some(e => e.getClientRects().length &&
                            getComputedStyle(e).visibility !== 'hidden');
               return Object.fromEntries(['h1', '#window-label', '#panel legend', '.source',
                 '#total-none', 'nav', '.time-buttons button', 'input[type=range]',
                 'input[type=checkbox]', '.leaflet-control-zoom', '#outage-list button']
                 .map(s => [s, seen(s)])); })()"""
        )
    finally:
        batch.send("Emulation.setEmulatedMedia", {"media": ""}, session=batch.session)
    for wanted in ("h1", "#window-label", "#panel legend", ".source", "#total-none"):
        assert shown[wanted], (wanted, shown)
    for control in (
        "nav",
        ".time-buttons button",
        "input[type=range]",
        "input[type=checkbox]",
        ".leaflet-control-zoom",
        "#outage-list button",
    ):
        assert not shown[control], (control, shown)
    width, height = size
    raw = base64.b64decode(
        batch.send(
            "Page.printToPDF",
            {
                "landscape": True,
                "paperWidth": width,
                "paperHeight": height,
                "printBackground": True,
                "preferCSSPageSize": True,
            },
            session=batch.session,
            timeout=60,
        )["data"]
    )
    assert len(re.findall(rb"/Type\s*/Page\b", raw)) == 1, paper
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", raw)
    assert box, "no MediaBox"
    assert [round(float(v) / 72, 1) for v in box.groups()] == [round(width, 1), round(height, 1)]
    (ARTIFACTS / f"webmap-batch-print-{paper}.pdf").write_bytes(raw)
