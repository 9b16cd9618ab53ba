"""The responder web map in real headless Chromium, served over loopback.

The page is loaded from a uvicorn server on 127.0.0.1 and driven over the DevTools
protocol (see ``tests/browser.py``); every request it makes is recorded. The browser
cannot resolve or reach anything but loopback, so a script or font fetched from the
internet would show up as a failed request.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi import FastAPI, Header, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, Response

from dcm.api import basemap, webmap
from dcm.api.errors import install_error_handlers
from dcm.errors import AuthenticationRequired, NotFound
from dcm.settings import Settings

from .. import browser as cdp

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVENT = "stvincent"
T0 = datetime(2021, 4, 9, 12, tzinfo=UTC)
ANALYST_KEY = "analyst-key"


pytestmark = pytest.mark.browser


# -- a small API with realistically shaped layers ----------------------------------------


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hexagon(lon: float, lat: float, r: float) -> dict[str, Any]:
    ring = [
        [
            round(lon + r * math.cos(math.radians(a)), 6),
            round(lat + r * math.sin(math.radians(a)), 6),
        ]
        for a in range(0, 361, 60)
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def _fake_layers(*, suspected: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Three hourly windows: an outage that starts, spreads and ends. ``suspected`` adds
    a suspected no-service outage to the last window, and to every cell the hours of
    silence needed to decide."""
    windows = [(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1)) for h in range(3)]
    outages: list[dict[str, Any]] = []
    # o1: no service anywhere, then o3: network 358-50 down (o2) while 358-110 serves.
    plan = {
        0: [("o1", "all", "outage", -61.18, 0.08)],
        1: [
            ("o1", "all", "outage", -61.18, 0.1),
            ("o3", "all", "degraded", -61.24, 0.06),
            ("o2", "358-50", "outage", -61.24, 0.06),
        ],
        2: [("o3", "all", "degraded", -61.24, 0.05), ("o2", "358-50", "outage", -61.24, 0.05)],
    }
    for w, layers in plan.items():
        start, end = windows[w]
        for oid, network, severity, lon, r in layers:
            outages.append(
                {
                    "type": "Feature",
                    "id": f"{oid}-{w}",
                    "geometry": _hexagon(lon, 13.3, r),
                    "properties": {
                        "outage_id": oid,
                        "window_start": _iso(start),
                        "window_end": _iso(end),
                        "network": network,
                        "severity": severity,
                        "confidence": 0.9,
                        "area_km2": 40.0,
                        "population": 1234.0,
                        "cells_offline": 3,
                        "onset": _iso(windows[0][0] if oid == "o1" else windows[1][0]),
                        "tier": "confirmed",
                        "certainty": "observed",
                    },
                }
            )
    if suspected:
        start, end = windows[2]
        outages.append(
            {
                "type": "Feature",
                "id": "o4-2",
                "geometry": _hexagon(-61.05, 13.3, 0.03),
                "properties": {
                    "outage_id": "o4",
                    "window_start": _iso(start),
                    "window_end": _iso(end),
                    "network": "all",
                    "severity": "outage",
                    "tier": "suspected",
                    "certainty": "possible",
                    "confidence": 0.63,
                    "area_km2": 9.0,
                    "population": 300.0,
                    "cells_offline": 0,
                    "onset": _iso(start),
                },
            }
        )
    cells = [
        {
            "type": "Feature",
            "id": f"c{i}",
            "geometry": {"type": "Point", "coordinates": [-61.25 + 0.02 * i, 13.2 + 0.01 * i]},
            "properties": {
                "network": "358-50" if i % 2 else "358-110",
                "cell": 100 + i,
                "area": 1,
                "radio": "LTE",
                "site_id": f"s{i}",
                "status": "offline" if i < 3 else "online",
                "start": _iso(T0),
                "end": _iso(windows[-1][1]),
                "p_offline": 0.8,
                # Offline cells went down before the data's first window.
                "offline_since": _iso(T0 - timedelta(hours=5)) if i < 3 else None,
            }
            | ({"silence_h_needed": 7.46} if suspected else {}),
        }
        for i in range(8)
    ]
    grid = [
        {
            "type": "Feature",
            "id": f"g{w}-{i}",
            "geometry": _hexagon(-61.3 + 0.03 * i, 13.15, 0.015),
            "properties": {
                "h3": f"h{i}",
                "network": "358-50",
                "state": state,
                "window_start": _iso(windows[w][0]),
                "window_end": _iso(windows[w][1]),
            },
        }
        for w in range(3)
        for i, state in enumerate(["up", "down", "uncertain", "no_data"])
    ]
    areas = [
        {
            "type": "Feature",
            "id": name,
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[x0, 13.12], [x0 + 0.1, 13.12], [x0 + 0.1, 13.38], [x0, 13.38], [x0, 13.12]]
                ],
            },
            "properties": {"area_id": name, "name": name},
        }
        for name, x0 in (("Charlotte", -61.2), ("Saint Patrick", -61.3))
    ]
    hazard = [
        {
            "type": "Feature",
            "id": "h1",
            "geometry": _hexagon(-61.18, 13.33, 0.06),
            "properties": {"hazard_id": "h1", "level": "red"},
        }
    ]
    measurements = [
        {
            "type": "Feature",
            "id": f"m{i}",
            "geometry": {"type": "Point", "coordinates": [-61.28 + 0.001 * i, 13.2]},
            "properties": {"timestamp": _iso(T0 + timedelta(minutes=i)), "status": "ok"},
        }
        for i in range(150)
    ]
    return {
        "outages": outages,
        "cells": cells,
        "grid": grid,
        "areas": areas,
        "hazard": hazard,
        "measurements": measurements,
        "windows": [{"window_start": _iso(s), "window_end": _iso(e)} for s, e in windows],
    }


def _overlaps(props: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    s = props.get("window_start") or props.get("start") or props.get("timestamp")
    e = props.get("window_end") or props.get("end") or s
    if s is None:
        return True
    fs, fe = (datetime.fromisoformat(v.replace("Z", "+00:00")) for v in (s, e))
    return not ((end is not None and fs > end) or (start is not None and fe < start))


DESCRIPTION = "La Soufrière eruption, St Vincent"


def fake_app(
    settings: Settings, *, suspected: bool = False, timezone: str | None = None
) -> FastAPI:
    """The routes the page uses, answering like the OGC API (paging, datetime, 401).
    ``timezone`` is given as the event's own (an IANA name) when set."""
    data = _fake_layers(suspected=suspected)
    app = FastAPI()
    app.state.settings = settings
    app.add_middleware(GZipMiddleware, minimum_size=500)
    install_error_handlers(app)
    app.include_router(webmap.router)
    app.include_router(basemap.router)  # /orientation: the built-in coast and place names

    @app.get("/events/{event}")
    def event(event: str) -> JSONResponse:
        if data.get("down"):
            return JSONResponse({"title": "unavailable"}, status_code=503)
        if event != EVENT:
            raise NotFound(event)
        return JSONResponse(
            {
                "name": EVENT,
                "description": DESCRIPTION,
                "windows": data["windows"],
                "high_water": data["windows"][-1]["window_end"],
            }
            | ({"timezone": timezone} if timezone else {})
        )

    @app.get("/collections/{cid}/items")
    def items(
        request: Request,
        cid: str,
        limit: int = 10,
        offset: int = 0,
        x_api_key: str | None = Header(None),
    ) -> JSONResponse:
        event, _, kind = cid.partition("-")
        if event != EVENT or kind not in data:
            raise NotFound(cid)
        if kind == "measurements" and x_api_key != ANALYST_KEY:
            raise AuthenticationRequired("measurements need an analyst key")
        start = end = None
        if "datetime" in request.query_params:
            a, b = request.query_params["datetime"].split("/")
            start, end = (datetime.fromisoformat(v.replace("Z", "+00:00")) for v in (a, b))
        found = [f for f in data[kind] if _overlaps(f["properties"], start, end)]
        page = found[offset : offset + limit]
        links = []
        if offset + limit < len(found):
            links.append(
                {
                    "rel": "next",
                    "type": "application/geo+json",
                    "href": str(request.url.include_query_params(offset=offset + limit)),
                }
            )
        return JSONResponse(
            {
                "type": "FeatureCollection",
                "features": page,
                "numberMatched": len(found),
                "numberReturned": len(page),
                "links": links,
            },
            media_type="application/geo+json",
        )

    @app.get("/collections/{cid}")
    def collection(cid: str) -> JSONResponse:
        """Collection metadata: the map frames the event by the areas' extent."""
        event, _, kind = cid.partition("-")
        if event != EVENT or kind not in data:
            raise NotFound(cid)
        shapes = shapely.from_geojson([json.dumps(f["geometry"]) for f in data[kind]])
        bbox = shapely.total_bounds(shapes).tolist()
        return JSONResponse({"id": cid, "extent": {"spatial": {"bbox": [bbox]}}})

    @app.get("/tiles/{z}/{x}/{y}.png")
    def tile(z: int, x: int, y: int) -> Response:
        """A stand-in basemap tile server on the same host."""
        png = webmap.leaflet_files()["images/layers.png"].read_bytes()
        return Response(png, media_type="image/png")

    @app.get("/events/{event}/gaps")
    def gaps(event: str, f: str = "json", at: str | None = None) -> Response:
        """A one-row gap report, as JSON or CSV."""
        if f == "csv":
            return Response("area,people\nCharlotte,1234\n", media_type="text/csv")
        return JSONResponse({"event": event, "at": at, "gaps": [{"area": "Charlotte"}]})

    @app.post("/_test/down")
    def go_down() -> dict[str, bool]:
        data["down"] = True  # type: ignore[assignment]
        return {"down": True}

    @app.post("/_test/windows")
    def add_window() -> dict[str, int]:
        """New data arrives: one more window, with the last window's outages moved on."""
        last = data["windows"][-1]
        end = datetime.fromisoformat(last["window_end"].replace("Z", "+00:00"))
        new = {"window_start": last["window_end"], "window_end": _iso(end + timedelta(hours=1))}
        data["windows"].append(new)
        for f in [
            f for f in data["outages"] if f["properties"]["window_start"] == last["window_start"]
        ]:
            data["outages"].append(
                {**f, "id": f"{f['id']}+", "properties": {**f["properties"], **new}}
            )
        return {"windows": len(data["windows"])}

    return app


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(serve: Callable[[Callable[[], FastAPI]], str]) -> str:
    return serve(lambda: fake_app(Settings(map_refresh_s=3600)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with cdp.Chromium(cdp.require_chromium(), width=1280, height=820) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def page(base_url: str, browser: Any) -> Any:
    """The map of the sample event, loaded and settled."""
    browser.navigate(f"{base_url}/events/{EVENT}/map")
    browser.wait_js("window.dcm && window.dcm.ready")
    browser.idle()
    return browser


def _drawn_outages(page: Any) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('.leaflet-outages-pane path')].map(p => p.getAttribute('d'))"
    )


# -- tests -------------------------------------------------------------------------------


def test_page_draws_outage_polygons_of_the_latest_window(page: Any) -> None:
    assert page.evaluate("dcm.errors") == []
    assert page.evaluate("dcm.windows") == 3
    assert page.evaluate("dcm.index") == 2
    paths = _drawn_outages(page)
    # The degraded area and, drawn from the start, network 358-50's own outage.
    assert len(paths) == 2 and all(p.startswith("M") for p in paths)
    for kind in ("dcm-degraded", "dcm-net"):
        found = f"document.querySelectorAll('.leaflet-outages-pane path.{kind}').length"
        assert page.evaluate(found) == 1, kind
    assert page.evaluate("dcm.drawn.areas") == 2
    assert page.evaluate("dcm.drawn.hazard") == 1


def test_legend_and_time_control_are_present_and_labelled(page: Any) -> None:
    controls = page.evaluate(
        """[...document.querySelectorAll('#panel button, #panel input')]
             .map(e => [e.tagName, e.type, e.getAttribute('aria-label') ||
                        (e.closest('label') || e).textContent || ''])"""
    )
    kinds = {(tag, kind) for tag, kind, _ in controls}
    assert {("BUTTON", "button"), ("INPUT", "range"), ("INPUT", "checkbox")} <= kinds
    assert all(label.strip() for _, _, label in controls), controls
    legend = page.evaluate(
        "[...document.querySelectorAll('#panel legend')].map(l => l.textContent)"
    )
    assert {"Outage areas", "Cell sites", "Grid status", "Context"} <= set(legend)
    label = page.evaluate("document.getElementById('window-label').textContent")
    assert label.startswith("2021-04-09 14:00 – 15:00") and "3 of 3" in label
    assert "Data to 2021-04-09 15:00 UTC" in page.evaluate("dcm.updated")


def test_stepping_the_time_control_changes_what_is_drawn(page: Any) -> None:
    latest = _drawn_outages(page)
    page.evaluate("document.getElementById('prev').click()")
    page.wait_js("dcm.index === 1")
    page.idle()
    middle = _drawn_outages(page)
    assert len(middle) == 3 and middle != latest
    # Keyboard: the slider moves with the arrow keys.
    page.evaluate("document.getElementById('slider').focus()")
    for kind in ("keyDown", "keyUp"):
        page.send(
            "Input.dispatchKeyEvent",
            {"type": kind, "key": "ArrowLeft", "code": "ArrowLeft", "windowsVirtualKeyCode": 37},
            session=page.session,
        )
    page.wait_js("dcm.index === 0")
    page.idle()
    first = _drawn_outages(page)
    assert len(first) == 1 and first != latest
    assert "09 12:00 – 13:00" in page.evaluate(
        "document.getElementById('window-label').textContent"
    )
    # Back to a window seen before: drawn again from memory, no new request.
    sent = len(page.requests)
    page.evaluate("document.getElementById('latest').click()")
    page.wait_js("dcm.index === 2")
    page.idle()
    assert _drawn_outages(page) == latest
    assert len(page.requests) == sent


def test_play_steps_through_every_window_and_stops_at_the_latest(page: Any) -> None:
    seen: set[int] = set()
    page.evaluate("document.getElementById('play').click()")
    assert page.evaluate("document.getElementById('play').getAttribute('aria-pressed')") == "true"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen.add(page.evaluate("dcm.index"))
        if page.evaluate("document.getElementById('play').getAttribute('aria-pressed')") == "false":
            break
        time.sleep(0.1)
    seen.add(page.evaluate("dcm.index"))  # it may have moved on since the last look
    assert seen == {0, 1, 2}
    assert page.evaluate("dcm.index") == 2


def test_no_request_left_loopback_or_failed(page: Any) -> None:
    requests = list(page.requests.values())
    assert requests
    for r in requests:
        if r.url.startswith("data:"):
            continue
        assert r.host == "127.0.0.1", f"request left loopback: {r}"
        assert r.failed is None, f"request failed: {r}"
        # Anonymous visitors may not read measurements: the page probes once and hides it.
        expected = 401 if "-measurements/" in r.url else 200
        assert r.status in (expected, 304), f"unexpected status: {r}"
    kinds = {re.sub(r"\?.*", "", r.url.rsplit("/", 1)[-1]) for r in requests}
    assert {"map", "leaflet.js", "leaflet.css", "map.js", "map.css"} <= kinds


def test_measurement_density_is_hidden_without_access(page: Any) -> None:
    assert page.evaluate("document.getElementById('density-toggle').hidden") is True


def _click(page: Any, selector: str) -> None:
    """A real mouse click at the centre of the element's box."""
    box = page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        page.send(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            session=page.session,
        )


def test_outage_popup_tells_onset_people_networks_confidence_cells(page: Any) -> None:
    _click(page, ".leaflet-outages-pane path.dcm-degraded")
    popup = page.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    assert "Degraded: some networks down" in popup
    for text in (
        "Since (onset)",
        "2021-04-09 13:00",
        "People affected",
        "≈ 1,200",
        "Networks down",
        "358-50",
        "Confidence",
        "90 %",
        "Cells offline",
    ):
        assert text in popup, (text, popup)
    page.evaluate("document.querySelector('.leaflet-popup-close-button').click()")


def test_per_network_outages_are_drawn_until_their_network_is_unticked(page: Any) -> None:
    box = "#networks input[value='358-50']"
    assert page.evaluate(f"document.querySelector({box!r}).checked") is True
    page.evaluate(f"document.querySelector({box!r}).click()")
    assert (
        page.evaluate("document.querySelectorAll('.leaflet-outages-pane path.dcm-net').length") == 0
    )
    page.evaluate(f"document.querySelector({box!r}).click()")
    assert (
        page.evaluate("document.querySelectorAll('.leaflet-outages-pane path.dcm-net').length") == 1
    )


def test_grid_layer_is_fetched_only_when_shown(page: Any) -> None:
    def grid_requests() -> int:
        return sum("-grid/items" in r.url for r in list(page.requests.values()))

    assert grid_requests() == 0
    page.evaluate("document.querySelector('input[name=grid][value=no_data]').click()")
    page.wait_js("dcm.drawn.grid === 1")
    assert grid_requests() == 1
    state = page.evaluate(
        "document.querySelector('.leaflet-grid-pane path').getAttribute('stroke-dasharray')"
    )
    assert state == "3 3"  # "no data" is told apart by its dashed outline
    page.evaluate("document.querySelector('input[name=grid][value=no_data]').click()")
    page.wait_js("dcm.drawn.grid === 0")
    assert grid_requests() == 1


def test_screenshot_shows_the_map(page: Any) -> None:
    path = page.screenshot(ARTIFACTS / "webmap-small-api.png")
    assert path.stat().st_size > 10_000


def test_print_layout_is_one_page(page: Any) -> None:
    pdf = page.print_pdf()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1


def test_page_refreshes_itself_and_follows_new_windows(
    browser: Any, serve: Callable[[Callable[[], FastAPI]], str]
) -> None:
    url = serve(lambda: fake_app(Settings(map_refresh_s=1)))
    browser.navigate(f"{url}/events/{EVENT}/map")
    browser.wait_js("window.dcm && window.dcm.ready")
    assert browser.evaluate("[dcm.windows, dcm.index]") == [3, 2]
    browser.evaluate(f"fetch('{url}/_test/windows', {{method: 'POST'}})")
    # The next refresh (1 s) finds the new window and moves to it: the map stays live.
    browser.wait_js("dcm.windows === 4 && dcm.index === 3", timeout=10)
    browser.idle()
    assert "Data to 2021-04-09 16:00 UTC" in browser.evaluate("dcm.updated")
    assert browser.evaluate("dcm.drawn.outages") == 2  # degraded area and 358-50

    # Nothing new on the server: a refresh asks for the event only, no layer again.
    def count(test: Callable[[str], bool]) -> int:
        return sum(test(r.url) for r in list(browser.requests.values()))

    def is_event(url: str) -> bool:
        return url.endswith(f"/events/{EVENT}")

    layers, events = count(lambda u: "/collections/" in u), count(is_event)
    deadline = time.monotonic() + 10
    while count(is_event) < events + 2:  # two more refreshes
        assert time.monotonic() < deadline, "the page stopped refreshing"
        time.sleep(0.1)
    browser.idle()
    assert count(lambda u: "/collections/" in u) == layers
    # The server goes away: the banner says so and the map keeps what it has.
    browser.evaluate(f"fetch('{url}/_test/down', {{method: 'POST'}})")
    browser.wait_js("document.getElementById('updated').classList.contains('stale')", timeout=10)
    assert "Server unreachable" in browser.evaluate("dcm.updated")
    assert "showing data to 2021-04-09 16:00 UTC" in browser.evaluate("dcm.updated")
    assert browser.evaluate("dcm.drawn.outages") == 2  # degraded area and 358-50


def test_configured_basemap_is_drawn_under_the_layers(
    browser: Any, serve: Callable[[Callable[[], FastAPI]], str]
) -> None:
    url = serve(lambda: fake_app(Settings(basemap_url="/tiles/{z}/{x}/{y}.png")))
    sent = len(browser.requests)
    browser.navigate(f"{url}/events/{EVENT}/map")
    browser.wait_js("window.dcm && window.dcm.ready")
    browser.wait_js("document.querySelectorAll('.leaflet-tile-loaded').length > 0")
    browser.idle()
    tiles = [r for r in list(browser.requests.values())[sent:] if "/tiles/" in r.url]
    assert tiles and all(r.status == 200 and r.failed is None for r in tiles), tiles
    # One zoom level only: no world tiles fetched before the view was set.
    assert len({r.url.split("/tiles/")[1].split("/")[0] for r in tiles}) == 1
    assert "Basemap" in browser.evaluate(
        "document.querySelector('.leaflet-control-attribution').textContent"
    )


def test_analyst_key_shows_measurement_density(browser: Any, base_url: str) -> None:
    browser.navigate("about:blank")
    browser.navigate(f"{base_url}/events/{EVENT}/map#key={ANALYST_KEY}")
    browser.wait_js("window.dcm && window.dcm.ready")
    # The key is not left in the address bar (the shared view replaces it).
    assert "key" not in browser.evaluate("location.hash")
    assert ANALYST_KEY not in browser.evaluate("location.href")
    assert browser.evaluate("document.getElementById('density-toggle').hidden") is False
    browser.evaluate("document.querySelector('input[value=density]').click()")
    browser.wait_js("dcm.drawn.density > 0")
    time.sleep(0.1)


def test_suspected_outage_is_dashed_hatched_and_in_the_legend(
    browser: Any, serve: Callable[[Callable[[], FastAPI]], str]
) -> None:
    url = serve(lambda: fake_app(Settings(map_refresh_s=3600), suspected=True))
    browser.navigate(f"{url}/events/{EVENT}/map")
    browser.wait_js("window.dcm && window.dcm.ready")
    browser.idle()
    assert browser.evaluate("dcm.errors") == []
    legend = browser.evaluate("document.getElementById('panel').textContent")
    assert "Suspected outage (data too thin to confirm)" in legend
    found = "document.querySelectorAll('.leaflet-outages-pane path.dcm-suspected')"
    assert browser.evaluate(f"{found}.length") == 1
    look = browser.evaluate(
        f"(() => {{ const p = {found}[0]; return [p.getAttribute('stroke-dasharray'),"
        " getComputedStyle(p).fill]; })()"
    )
    assert look[0] == "5 5" and "dcm-suspected-hatch" in look[1], look
    # The confirmed outage beside it keeps its look.
    assert (
        browser.evaluate(
            "document.querySelector('.leaflet-outages-pane path.dcm-degraded')"
            ".getAttribute('stroke-dasharray')"
        )
        == "6 4"
    )
    _click(browser, ".leaflet-outages-pane path.dcm-suspected")
    popup = browser.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    assert "Suspected: No service on any network" in popup
    assert "suspected (p = 0.63)" in popup
    browser.evaluate("document.querySelector('.leaflet-popup-close-button').click()")
    browser.wait_js("!document.querySelector('.leaflet-popup-content')")
    # The legend entry is also a toggle.
    box = "document.querySelector('input[name=tier][value=suspected]')"
    browser.evaluate(f"{box}.click()")
    assert browser.evaluate(f"{found}.length") == 0
    browser.evaluate(f"{box}.click()")
    assert browser.evaluate(f"{found}.length") == 1
    # Cells: how long a silence the data need before the site could be called offline.
    _click(browser, ".leaflet-cells-pane path")
    popup = browser.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    assert "needs 7.5 h of silence to decide" in popup, popup
    browser.evaluate("document.querySelector('.leaflet-popup-close-button').click()")
