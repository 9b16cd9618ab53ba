"""What a responder reads off the web map at a glance, in real headless Chromium.

Who is cut off, on which network, since when: per-network outages drawn from the start
in fixed colours, the list of current outages, totals and their chart, a shareable
link, local time, downloads; then phone and print layouts, accessibility (axe-core,
injected from local disk) and reopening the map offline through its service worker.
The API is the small fake of ``test_webmap_browser`` served on loopback.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from dcm.publish.webmap import network_look
from dcm.settings import Settings

from .. import browser as cdp
from .conftest import running_server
from .test_webmap_browser import ARTIFACTS, DESCRIPTION, EVENT, fake_app

pytestmark = pytest.mark.browser

#: axe-core's browser build, installed from the npm registry by .ci/setup-chromium.sh.
AXE_JS = Path(os.environ.get("DCM_AXE_JS", "/opt/dcm-test/axe/node_modules/axe-core/axe.min.js"))


@pytest.fixture(scope="module")
def base_url(serve: Callable[[Callable[[], FastAPI]], str]) -> str:
    return serve(lambda: fake_app(Settings(map_refresh_s=3600)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with cdp.Chromium(cdp.require_chromium(), width=1280, height=820) as chromium:
        yield chromium


def _open(browser: Any, url: str) -> Any:
    browser.navigate("about:blank")
    browser.navigate(url)
    browser.wait_js("window.dcm && window.dcm.ready")
    browser.idle()
    return browser


@pytest.fixture
def page(base_url: str, browser: Any) -> Any:
    """The map of the fake event, freshly loaded for each test."""
    return _open(browser, f"{base_url}/events/{EVENT}/map")


def _key(page: Any, key: str, code: int, text: str = "") -> None:
    for kind in ("keyDown", "keyUp"):
        event = {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}
        if text and kind == "keyDown":
            event["text"] = text
        page.send("Input.dispatchKeyEvent", event, session=page.session)


def _axe(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not AXE_JS.is_file():
        message = f"axe-core is absent ({AXE_JS}): run .ci/setup-chromium.sh"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: never let the check pass unseen
        pytest.skip(message)
    page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;true")
    found = page.evaluate(
        """axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
             .filter(v => ['serious', 'critical'].includes(v.impact))
             .map(v => ({id: v.id, impact: v.impact,
                         nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))""",
        timeout=60,
    )
    return list(found)


# -- Deliver 1: who is cut off, on which network, since when ------------------------------


def test_every_network_is_drawn_from_the_start_in_its_own_fixed_colour(page: Any) -> None:
    path = "document.querySelector('.leaflet-outages-pane path.dcm-net')"
    look = page.evaluate(
        f"[{path}.getAttribute('stroke'), {path}.getAttribute('stroke-dasharray')]"
    )
    assert look == list(network_look("358-50"))
    # The colour follows the network key only: the same in any order, and the same
    # function as the batch map's (dcm.publish.webmap.network_look).
    keys = ["358-50", "358-110", "360-100", "360-110", "722-310", "001-01"]
    js = page.evaluate(f"{keys!r}.map(k => dcm.netLook(k))")
    assert js == [list(network_look(k)) for k in keys]
    assert page.evaluate(f"{keys[::-1]!r}.map(k => dcm.netLook(k))") == js[::-1]
    legend = page.evaluate(
        "document.querySelector('#networks input[value=\"358-50\"]')"
        ".parentElement.querySelector('svg path').getAttribute('stroke')"
    )
    assert legend == network_look("358-50")[0]


def test_current_outages_are_listed_with_district_network_people_since_and_tier(
    page: Any,
) -> None:
    items = page.evaluate("[...document.querySelectorAll('#outage-list li')].map(l => l.innerText)")
    assert len(items) == page.evaluate("dcm.drawn.outages") == 2
    network = next(i for i in items if "358-50" in i)
    for text in ("Saint Patrick", "≈ 1,200 people", "since 2021-04-09 13:00 UTC", "(2 h)"):
        assert text in network, (text, network)
    assert "confirmed (observed)" in network
    assert page.evaluate("document.getElementById('outage-none').hidden") is True
    # A step back: the list follows the window (o1 no service in Charlotte comes first).
    page.evaluate("document.getElementById('prev').click()")
    page.wait_js("dcm.index === 1 && dcm.listed === 3")
    first = page.evaluate("document.querySelector('#outage-list li').innerText")
    assert first.startswith("Charlotte") and "all networks" in first


def test_list_items_are_reached_by_keyboard_and_frame_their_outage(page: Any) -> None:
    before = page.evaluate("dcm.map.getZoom()")
    # Tab from the slider until a list button has the focus: it is in the tab order.
    page.evaluate("document.getElementById('slider').disabled = false")
    page.evaluate("document.getElementById('slider').focus()")
    for _ in range(40):
        _key(page, "Tab", 9)
        if page.evaluate("document.activeElement.classList.contains('outage-item')"):
            break
    else:
        pytest.fail("no outage in the list could be reached with Tab")
    name = page.evaluate("document.activeElement.textContent")
    assert "show on the map" in name and "since 2021-04-09" in name
    _key(page, "Enter", 13, "\r")
    popup = page.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    assert "2021-04-09 13:00" in popup
    page.wait_js(f"dcm.map.getZoom() !== {before}")
    bounds = page.evaluate(
        "(() => { const b = dcm.map.getBounds(); return [b.getWest(), b.getEast()]; })()"
    )
    # The outage (centred on -61.24, radius 0.05 degrees) fills the view.
    assert bounds[0] > -61.5 and bounds[1] < -61.0, bounds


def test_totals_and_their_chart_over_time(page: Any) -> None:
    page.wait_js("dcm.chart")
    assert page.evaluate("dcm.totals") == {
        "none": 0,
        "degraded": 1234,
        "sites": 3,
        "suspected": 0,
    }
    texts = page.evaluate(
        "['total-none', 'total-degraded', 'total-sites']"
        ".map(id => document.getElementById(id).textContent)"
    )
    assert texts == ["0", "1,200", "3"]
    # People with no service per window: o1 (1234) in the first two, none in the last.
    assert page.evaluate("dcm.chart") == [1234, 1234, 0]
    chart = page.evaluate(
        """(() => { const s = document.querySelector('#chart svg');
             return [s.getAttribute('role'), s.getAttribute('aria-label'),
                     s.querySelector('path.chart-none').getAttribute('d')]; })()"""
    )
    assert chart[0] == "img" and "peak ≈ 1,200 at 2021-04-09 12:00 UTC" in chart[1]
    assert chart[2].startswith("M0 ") and chart[2].count("H") >= 3
    # Clicking the chart's first third selects the first window.
    page.evaluate(
        """(() => { const r = document.getElementById('chart').getBoundingClientRect();
             document.getElementById('chart').dispatchEvent(new MouseEvent('click',
               {clientX: r.left + r.width / 6, clientY: r.top + 5, bubbles: true})); })()"""
    )
    page.wait_js("dcm.index === 0 && dcm.totals.none === 1234")


def test_a_copied_link_reopens_the_same_window_boxes_and_view(page: Any, browser: Any) -> None:
    page.evaluate("document.getElementById('prev').click()")
    page.wait_js("dcm.index === 1")
    page.evaluate("document.querySelector('#networks input[value=\"358-50\"]').click()")
    page.evaluate("document.querySelector('input[name=layer][value=hazard]').click()")
    page.evaluate("document.querySelector('input[name=cells][value=online]').click()")
    page.evaluate("dcm.map.setView([13.3, -61.2], 12, {animate: false}) && true")
    page.wait_js("dcm.link && dcm.link.includes('m=12/13.3')")
    link = page.evaluate("dcm.link")
    assert "w=2021-04-09T13:00:00Z" in link
    assert "network:358-50" in link and "layer:hazard" in link and "on=cells:online" in link
    _open(browser, link)
    assert browser.evaluate("dcm.index") == 1
    assert browser.evaluate("dcm.map.getZoom()") == 12
    center = browser.evaluate("[dcm.map.getCenter().lat, dcm.map.getCenter().lng]")
    assert center == pytest.approx([13.3, -61.2], abs=1e-4)
    boxes = browser.evaluate(
        """['#networks input[value="358-50"]', 'input[name=layer][value=hazard]',
            'input[name=cells][value=online]', 'input[name=cells][value=offline]']
            .map(s => document.querySelector(s).checked)"""
    )
    assert boxes == [False, False, True, True]
    assert browser.evaluate("dcm.drawn.outages") == 2  # o1 and o3; 358-50 hidden
    assert browser.evaluate("dcm.drawn.cells") == 8


def test_title_last_update_with_date_and_local_time(browser: Any, base_url: str) -> None:
    # No time zone from the event: the browser's, named.
    browser.send(
        "Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"}, session=browser.session
    )
    try:
        _open(browser, f"{base_url}/events/{EVENT}/map")
        assert browser.evaluate("document.getElementById('title').textContent") == DESCRIPTION
        assert browser.evaluate("document.title").startswith(DESCRIPTION)
        updated = browser.evaluate("dcm.updated")
        assert re.search(r"last updated \d{4}-\d\d-\d\d \d\d:\d\d UTC", updated), updated
        local = browser.evaluate("document.getElementById('window-local').textContent")
        assert local == "09 Apr, 23:00 – 10 Apr, 00:00 local time (Asia/Tokyo)"
    finally:
        browser.send("Emulation.setTimezoneOverride", {"timezoneId": ""}, session=browser.session)


def test_the_events_own_time_zone_wins(
    browser: Any, serve: Callable[[Callable[[], FastAPI]], str]
) -> None:
    url = serve(lambda: fake_app(Settings(map_refresh_s=3600), timezone="America/St_Vincent"))
    _open(browser, f"{url}/events/{EVENT}/map")
    local = browser.evaluate("document.getElementById('window-local').textContent")
    assert local == "09 Apr, 10:00 – 09 Apr, 11:00 local time (America/St_Vincent)"


def test_download_links_give_the_windows_layers_and_the_gap_report(page: Any) -> None:
    links = page.evaluate(
        """Object.fromEntries([...document.querySelectorAll('nav a')]
             .map(a => [a.id || a.textContent, a.href]))"""
    )
    window = "datetime=2021-04-09T14%3A00%3A01Z%2F2021-04-09T14%3A59%3A59Z"
    assert "/collections/stvincent-outages/items?f=geojson" in links["dl-outages"]
    assert window in links["dl-outages"] and window in links["dl-cells"]
    fetched = page.evaluate(
        """Promise.all(['dl-outages', 'dl-cells', 'dl-gaps', 'dl-gaps-csv', 'dl-outages-csv']
             .map(id => fetch(document.getElementById(id).href).then(async r =>
               [id, r.status, await r.text()])))"""
    )
    got = {name: (code, body) for name, code, body in fetched}
    assert all(code == 200 for code, _ in got.values()), got
    assert '"358-50"' in got["dl-outages"][1] and '"status"' in got["dl-cells"][1]
    assert got["dl-gaps-csv"][1].startswith("area,people")
    csv = got["dl-outages-csv"][1].splitlines()
    assert csv[0].startswith("district,network,severity,tier")
    assert sorted(r.split(",")[1] for r in csv[1:]) == ["358-50", "all"]
    name = page.evaluate("document.getElementById('dl-outages-csv').download")
    assert name == "stvincent-outages-2021040914.csv"


def test_no_request_leaves_loopback(page: Any) -> None:
    for r in list(page.requests.values()):
        if r.url.startswith(("data:", "blob:")):
            continue
        assert r.host == "127.0.0.1", f"request left loopback: {r}"
        assert r.failed is None or r.failed == "net::ERR_ABORTED", f"request failed: {r}"


def test_overlays_from_other_scripts_join_the_legend(page: Any) -> None:
    page.evaluate(
        """dcm.addOverlay('testlayer', L.circleMarker([13.25, -61.2], {pane: 'testlayer',
             radius: 5, className: 'test-overlay'}), {label: 'Test overlay', zIndex: 330})
           && true"""
    )
    assert page.evaluate("document.querySelectorAll('.leaflet-testlayer-pane path').length") == 1
    assert page.evaluate("getComputedStyle(dcm.map.getPane('testlayer')).zIndex") == "330"
    page.evaluate("document.querySelector('input[name=layer][value=testlayer]').click()")
    assert page.evaluate("document.querySelectorAll('.leaflet-testlayer-pane path').length") == 0
    assert "layer:testlayer" in page.evaluate("location.hash")


# -- Deliver 5: phone, print, accessibility, offline ---------------------------------------


def test_axe_core_finds_no_serious_violation(page: Any) -> None:
    assert _axe(page) == []
    # With a popup open and a list item focused too.
    page.evaluate("document.querySelector('.outage-item').click()")
    page.wait_js("document.querySelector('.leaflet-popup-content')")
    assert _axe(page) == []


def test_phone_layout_keeps_the_time_control_clear_and_pinch_zoom(base_url: str) -> None:
    with cdp.Chromium(cdp.require_chromium(), width=390, height=844) as phone:
        phone.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
            session=phone.session,
        )
        phone.send("Emulation.setTouchEmulationEnabled", {"enabled": True}, session=phone.session)
        _open(phone, f"{base_url}/events/{EVENT}/map")
        boxes = phone.evaluate(
            """Object.fromEntries(['map', 'panel', 'slider', 'prev', 'play'].map(id => {
                 const r = document.getElementById(id).getBoundingClientRect();
                 return [id, [r.left, r.top, r.right, r.bottom]]; }))"""
        )
        _, top, right, bottom = boxes["map"]
        assert right <= 390 and bottom - top > 300, boxes
        for control in ("slider", "prev", "play"):
            c = boxes[control]
            assert c[1] >= bottom, f"{control} lies over the map: {boxes}"
            assert c[2] <= 390 and c[0] >= 0, f"{control} is off screen: {boxes}"
            hit = phone.evaluate(
                f"document.elementFromPoint({(c[0] + c[2]) / 2}, {(c[1] + c[3]) / 2})?.id"
            )
            assert hit == control, f"{control} is covered by {hit}"
        viewport = phone.evaluate("document.querySelector('meta[name=viewport]').content")
        assert "user-scalable=no" not in viewport and "maximum-scale" not in viewport
        assert phone.evaluate("dcm.map.touchZoom.enabled()") is True
        assert phone.evaluate("dcm.drawn.outages") == 2
        phone.screenshot(ARTIFACTS / "webmap-phone.png")
        assert _axe(phone) == []


@pytest.mark.parametrize(("paper", "size"), [("A4", (11.69, 8.27)), ("Letter", (11.0, 8.5))])
def test_print_shows_title_time_legend_source_and_attribution_without_controls(
    page: Any, paper: str, size: tuple[float, float]
) -> None:
    page.send("Emulation.setEmulatedMedia", {"media": "print"}, session=page.session)
    try:
        shown = page.evaluate(
            """(() => { const seen = (s) => [...document.querySelectorAll(s)]
                 .some(e => e.getClientRects().length &&
                            getComputedStyle(e).visibility !== 'hidden');
               return Object.fromEntries(['h1', '#window-label', '#panel legend', '.source',
                 '.leaflet-control-attribution', '#total-none', 'nav', '.time-buttons button',
                 'input[type=range]', 'input[type=checkbox]', '.leaflet-control-zoom',
                 '#outage-list button'].map(s => [s, seen(s)])); })()"""
        )
    finally:
        page.send("Emulation.setEmulatedMedia", {"media": ""}, session=page.session)
    for wanted in ("h1", "#window-label", "#panel legend", ".source", "#total-none"):
        assert shown[wanted], (wanted, shown)
    assert shown[".leaflet-control-attribution"], shown
    for control in ("nav", ".time-buttons button", "input[type=range]", "input[type=checkbox]"):
        assert not shown[control], (control, shown)
    assert not shown[".leaflet-control-zoom"] and not shown["#outage-list button"]
    attribution = page.evaluate("document.querySelector('.source').textContent")
    assert "OpenCelliD" in attribution and "CC BY-SA 4.0" in attribution
    assert "CC BY-SA 4.0" in page.evaluate(
        "document.querySelector('.leaflet-control-attribution').textContent"
    )
    width, height = size
    pdf = page.send(
        "Page.printToPDF",
        {
            "landscape": True,
            "paperWidth": width,
            "paperHeight": height,
            "printBackground": True,
            "preferCSSPageSize": True,
        },
        session=page.session,
        timeout=60,
    )["data"]
    raw = base64.b64decode(pdf)
    assert len(re.findall(rb"/Type\s*/Page\b", raw)) == 1, paper
    # The page keeps the chosen paper (landscape), in PDF points.
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", raw)
    assert box, "no MediaBox"
    assert [round(float(v) / 72, 1) for v in box.groups()] == [round(width, 1), round(height, 1)]
    (ARTIFACTS / f"webmap-print-{paper}.pdf").write_bytes(raw)


def test_map_reopens_offline_with_the_last_data_stamped(browser: Any) -> None:
    with running_server(lambda: fake_app(Settings(map_refresh_s=3600))) as url:
        _open(browser, f"{url}/events/{EVENT}/map")
        # The service worker controls the page and the page has kept its copy.
        browser.wait_js("navigator.serviceWorker.controller && dcm.saved", timeout=20)
        assert browser.evaluate("dcm.offline") is False
        link = browser.evaluate("dcm.link")
        online = sorted(
            browser.evaluate(
                "[...document.querySelectorAll('#outage-list li')].map(l => l.innerText)"
            )
        )
    # The server is gone: reload.
    sent = len(browser.requests)
    _open(browser, link)
    assert browser.evaluate("dcm.errors") == []
    assert browser.evaluate("dcm.offline") is True
    stamp = browser.evaluate("document.getElementById('updated').textContent")
    assert stamp.startswith("Offline — data as of 2021-04-09 15:00 UTC"), stamp
    assert "saved 20" in stamp
    assert browser.evaluate("document.getElementById('updated').classList.contains('offline')")
    assert browser.evaluate("dcm.drawn.outages") == 2
    assert browser.evaluate("document.querySelectorAll('.leaflet-outages-pane path').length") == 2
    offline = sorted(
        browser.evaluate("[...document.querySelectorAll('#outage-list li')].map(l => l.innerText)")
    )
    assert offline == online
    # Nothing reached a server: every answer came from the worker.
    later = list(browser.requests.values())[sent:]
    assert later and all(r.host == "127.0.0.1" for r in later)
    browser.screenshot(ARTIFACTS / "webmap-offline.png")
    time.sleep(0.1)


def test_cell_popup_says_since_when_the_cell_is_offline(page: Any) -> None:
    # The status interval shown starts at 12:00; the cell has been offline since 07:00
    # (offline_since, the start of its current offline interval).
    page.evaluate(
        "document.querySelector('.leaflet-cells-pane path').dispatchEvent("
        "new MouseEvent('click', {bubbles: true}))"
    )
    popup = page.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    assert re.search(r"Status\s+offline", popup), popup
    assert re.search(r"Offline since\s+2021-04-09 07:00 UTC", popup), popup
    assert "From" not in popup
    # An online cell keeps the start of its interval.
    page.evaluate("document.querySelector('input[name=cells][value=online]').click()")
    page.wait_js("dcm.drawn.cells === 8")
    online = page.evaluate(
        """(() => { let text = null; dcm.map.eachLayer(l => {
             if (!text && l.feature && l.feature.properties.status === 'online') {
               l.openPopup();
               text = [...document.querySelectorAll('.leaflet-popup-content')].pop().innerText;
             } }); return text; })()"""
    )
    assert re.search(r"From\s+2021-04-09 12:00 UTC", online) and "Offline since" not in online
