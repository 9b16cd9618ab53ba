"""The web map of the St Vincent sample event, served by the real API, in headless Chromium.

The sample scenario is loaded into a temporary store (ingest + update of every window),
the API is served on loopback and the page is checked against what the API itself
returns: the outages drawn are the outages of the selected window, stepping the time
control changes what is drawn, every request stays on loopback and succeeds, responses
are compressed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI

from dcm.settings import Settings

from .. import browser as cdp
from .test_webmap_responder import _axe

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVENT = "stvincent"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _app(settings: Settings) -> FastAPI:
    from dcm.api import create_app

    return create_app(settings)


@pytest.fixture(scope="module")
def settings(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store holding the St Vincent sample event, every window computed."""
    cdp.require_chromium()  # skip before the slow load when there is no browser
    settings = Settings(data_dir=tmp_path_factory.mktemp("store"), map_refresh_s=3600)
    cdp.load_sample_event(settings, sample_data / EVENT, name=EVENT)
    return settings


@pytest.fixture(scope="module")
def base_url(settings: Settings, serve: Callable[[Callable[[], FastAPI]], str]) -> str:
    return serve(lambda: _app(settings))


@pytest.fixture(scope="module")
def admin_key(settings: Settings) -> str:
    """A key that may read the restricted measurements of the sample."""
    from dcm.store import Principal, open_store

    with open_store(settings) as store:
        _, token = store.create_key("map-test", role="admin", principal=Principal.system())
    return str(token)


@pytest.fixture(scope="module")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[Any]:

    with cdp.Chromium(cdp.require_chromium(), width=1280, height=860) as browser:
        browser.navigate(f"{base_url}/events/{EVENT}/map")
        browser.wait_js("window.dcm && window.dcm.ready", timeout=60)
        browser.idle(timeout=60)
        yield browser


def _same_time(a: str, b: str) -> bool:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return parse(a) == parse(b)


def _window_features(api: httpx.Client, kind: str, window: dict[str, str]) -> list[dict]:
    """Every feature of one window, straight from the API (following next links)."""
    url: str | None = f"/collections/{EVENT}-{kind}/items"
    params: dict[str, Any] | None = {
        "datetime": f"{window['start']}/{window['end']}",
        "limit": 1000,
    }
    out: list[dict] = []
    while url:
        body = api.get(url, params=params).raise_for_status().json()
        out += [
            f
            for f in body["features"]
            if _same_time(f["properties"].get("window_start", window["start"]), window["start"])
        ]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        params = None
    return out


def _drawn(page: Any, pane: str) -> int:
    return int(page.evaluate(f"document.querySelectorAll('.leaflet-{pane}-pane path').length"))


def _go_to(page: Any, index: int) -> None:
    """Move the time slider as a user would and wait for the window to be drawn."""
    page.evaluate(
        f"(() => {{ const s = document.getElementById('slider'); s.value = {index};"
        " s.dispatchEvent(new Event('input')); })()"
    )
    page.wait_js(f"dcm.index === {index}")
    page.idle()


def _picture(page: Any) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('.leaflet-outages-pane path, .leaflet-grid-pane path,"
        " .leaflet-cells-pane path')].map(p => p.getAttribute('d') + p.getAttribute('fill'))"
    )


def test_map_of_an_unknown_event_is_not_found(api: httpx.Client) -> None:
    response = api.get("/events/atlantis/map")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_sample_map_opens_on_the_latest_window_with_its_outages(
    page: Any, api: httpx.Client
) -> None:
    assert page.evaluate("dcm.errors") == []
    assert page.evaluate("dcm.windows") > 100  # a week of hourly windows
    assert page.evaluate("dcm.index") == page.evaluate("dcm.windows") - 1
    window = page.evaluate("dcm.window")
    # Every outage of the window, for all networks and for single networks alike.
    shown = _window_features(api, "outages", window)
    assert _drawn(page, "outages") == len(shown)
    assert page.evaluate("dcm.listed") == len(shown)
    # The sample ends with a single network still down: drawn at once, in the list.
    nets = [f for f in shown if f["properties"]["network"] != "all"]
    assert nets, "the sample's last window has no single-network outage"
    drawn = page.evaluate("document.querySelectorAll('.leaflet-outages-pane path.dcm-net').length")
    assert drawn == len(nets)
    listed = page.evaluate("document.getElementById('outage-list').innerText")
    assert all(f["properties"]["network"] in listed for f in nets)
    assert _drawn(page, "areas") == 5  # the five parishes
    assert _drawn(page, "hazard") >= 1
    assert "Data to 2021-04-16" in page.evaluate("dcm.updated")


def test_peak_window_draws_its_outages_with_popups(page: Any, api: httpx.Client) -> None:
    body = api.get(f"/collections/{EVENT}-outages/items", params={"limit": 10000}).json()
    per_window = Counter(f["properties"]["window_start"] for f in body["features"])
    singles = Counter(
        f["properties"]["window_start"]
        for f in body["features"]
        if f["properties"]["network"] != "all"
    )
    assert per_window, "the eruption sample has no outage"
    peak, count = per_window.most_common(1)[0]
    starts = page.evaluate("dcm.windowStarts")
    index = next(i for i, s in enumerate(starts) if _same_time(s, peak))
    _go_to(page, index)
    assert _drawn(page, "outages") == count
    # Single networks' outages are drawn from the start, outlined in their own colour.
    nets = "document.querySelectorAll('.leaflet-outages-pane path.dcm-net')"
    assert page.evaluate(f"{nets}.length") == singles[peak]
    # Each listed outage is named by its parish, even a ring whose centre lies outside;
    # one beyond the parishes' outlines by the nearest ("near Charlotte").
    parishes = page.evaluate(
        "[...document.querySelectorAll('#outage-list strong')].map(s => s.textContent)"
    )
    assert len(parishes) == count
    areas = api.get(f"/collections/{EVENT}-areas/items", params={"limit": 100}).json()
    names = {f["properties"]["name"] for f in areas["features"]}
    assert {p.removeprefix("near ") for p in parishes} <= names, parishes
    assert _axe(page) == []
    path = page.screenshot(ARTIFACTS / "webmap.png")
    assert path.stat().st_size > 20_000
    page.evaluate(
        "document.querySelector('.leaflet-outages-pane path').dispatchEvent("
        "new MouseEvent('click', {bubbles: true}))"
    )
    popup = page.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    for label in (
        "Since (onset)",
        "People affected",
        "Networks down",
        "Confidence",
        "Cells offline",
    ):
        assert label in popup


def test_sample_map_prints_on_one_page(page: Any) -> None:
    pdf = page.print_pdf()
    (ARTIFACTS / "webmap-print.pdf").write_bytes(pdf)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1


def test_stepping_the_time_control_changes_what_is_drawn(page: Any, api: httpx.Client) -> None:
    # Step back from the peak: each window draws exactly the API's outages, and within a
    # day of windows the picture changes (outages grow from their onset).
    index, before = page.evaluate("dcm.index"), _picture(page)
    for step in range(1, 25):
        page.evaluate("document.getElementById('prev').click()")
        page.wait_js(f"dcm.index === {index - step}")
        page.idle()
        window = page.evaluate("dcm.window")
        shown = _window_features(api, "outages", window)
        assert _drawn(page, "outages") == len(shown), window
        if _picture(page) != before:
            break
    else:
        pytest.fail("24 steps back in time drew the same picture")
    assert page.evaluate("document.getElementById('window-label').textContent").startswith(
        window["start"][:10]
    )


def test_sample_map_requests_stay_on_loopback_succeed_and_are_compressed(page: Any) -> None:
    requests = [r for r in list(page.requests.values()) if not r.url.startswith("data:")]
    assert requests
    for r in requests:
        assert r.host == "127.0.0.1", f"request left loopback: {r}"
        assert r.failed is None, f"request failed: {r}"
        expected = (401, 403, 200) if "-measurements/" in r.url else (200, 304)
        assert r.status in expected, f"unexpected status: {r}"
        big = r.encoded_bytes > 2000 and r.status == 200 and not r.url.endswith(".png")
        if big:
            assert r.headers.get("content-encoding") == "gzip", f"not compressed: {r}"


def _layer_requests(page: Any) -> list[tuple[str, str | None]]:
    """(layer, zoom parameter) of every item request the page made so far, in order."""
    out = []
    for r in list(page.requests.values()):
        found = re.search(rf"/collections/{EVENT}-(\w+)/items\?(.*)", r.url)
        if found:
            zoom = parse_qs(found[2]).get("zoom", [None])[0]
            out.append((found[1], zoom))
    return out


def test_outlines_are_asked_for_at_the_map_zoom_and_again_only_past_a_level(page: Any) -> None:
    zoom = str(page.evaluate("dcm.zoom"))
    asked = _layer_requests(page)
    for kind in ("outages", "areas", "hazard"):
        assert (kind, zoom) in asked, (kind, zoom, asked)
    assert all(z is None for kind, z in asked if kind in ("cells", "measurements")), asked
    sent = len(asked)
    page.evaluate("document.querySelector('.leaflet-control-zoom-in').click()")
    page.wait_js(f"dcm.zoom === {int(zoom) + 1}")
    page.idle()
    again = _layer_requests(page)[sent:]
    # Outages twice: this window's and the one before (where service came back).
    assert sorted(again) == sorted(
        [
            ("outages", str(int(zoom) + 1)),
            ("outages", str(int(zoom) + 1)),
            ("areas", str(int(zoom) + 1)),
            ("hazard", str(int(zoom) + 1)),
        ]
    ), again
    # Back to the level seen before: drawn from the cache, no request.
    page.evaluate("document.querySelector('.leaflet-control-zoom-out').click()")
    page.wait_js(f"dcm.zoom === {zoom}")
    page.idle()
    assert len(_layer_requests(page)) == sent + len(again)
    assert _drawn(page, "outages") > 0


def test_density_toggle_only_for_keys_that_read_measurements(
    page: Any, base_url: str, admin_key: str
) -> None:
    assert page.evaluate("document.getElementById('density-toggle').hidden") is True
    page.navigate("about:blank")
    page.navigate(f"{base_url}/events/{EVENT}/map#key={admin_key}")
    page.wait_js("window.dcm && window.dcm.ready", timeout=60)
    assert page.evaluate("document.getElementById('density-toggle').hidden") is False
    page.evaluate("document.querySelector('input[value=density]').click()")
    page.wait_js("dcm.drawn.density > 0", timeout=30)
    page.idle()
