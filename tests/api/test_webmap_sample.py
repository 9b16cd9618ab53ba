"""The web map of the St Vincent sample event, served by the real API, in headless Chromium.

The sample scenario is loaded into a temporary store (ingest + update of every window),
the API is served on loopback and the page is checked against what the API itself
returns: the outages drawn are the outages of the selected window, stepping the time
control changes what is drawn, every request stays on loopback and succeeds, responses
are compressed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dcm.settings import Settings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVENT = "stvincent"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _harness() -> Any:
    name = "dcm_test_webmap_cdp"
    if name not in sys.modules:
        path = Path(__file__).with_name("test_webmap_cdp.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def _app(settings: Settings) -> FastAPI:
    """The real ``create_app``; until it lands, its OGC and web-map routers over the store."""
    try:
        from dcm.api import create_app
    except ImportError:
        return _stand_in_app(settings)
    app: FastAPI = create_app(settings)
    return app


class _StoreCollection:
    """One store layer behind the OGC router's collection protocol."""

    def __init__(self, store: Any, kind: str) -> None:
        self.store, self.kind = store, kind
        self.id, self.title, self.description = f"{EVENT}-{kind}", kind, kind

    def extent(self) -> Any:
        from dcm.api.collections import Extent

        return Extent()

    def features(
        self, *, bbox: Any, interval: Any, limit: int, offset: int, principal: Any
    ) -> tuple[list[dict], int]:
        span = None if interval is None else (interval.start, interval.end)
        page = self.store.features(
            self.kind,
            EVENT,
            bbox=bbox,
            interval=span,
            limit=limit,
            offset=offset,
            principal=principal,
        )
        return page.features, page.number_matched


def _stand_in_app(settings: Settings) -> FastAPI:
    from fastapi.middleware.gzip import GZipMiddleware

    from dcm.api import ogc, webmap
    from dcm.api.collections import StaticCatalog
    from dcm.api.errors import install_error_handlers
    from dcm.store import COLLECTION_KINDS, open_store

    store = open_store(settings)
    app = FastAPI()
    app.state.settings, app.state.store = settings, store
    app.state.catalog = StaticCatalog([_StoreCollection(store, k) for k in COLLECTION_KINDS])
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    install_error_handlers(app)
    app.include_router(ogc.router)
    app.include_router(webmap.router)

    @app.get("/events/{event}")
    def event(event: str) -> dict[str, Any]:
        ev = store.get_event(event)
        windows = store.event_windows(event)
        return {
            "name": ev.name,
            "high_water": ev.high_water.isoformat(),
            "area": ev.area,
            "windows": [
                {"window_start": s.isoformat(), "window_end": e.isoformat()}
                for s, e in zip(windows["window_start"], windows["window_end"], strict=True)
            ],
        }

    return app


@pytest.fixture(scope="module")
def base_url(
    serve: Callable[[FastAPI], str], sample_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    harness = _harness()
    harness.require_chromium()  # skip before the slow load when there is no browser
    settings = Settings(data_dir=tmp_path_factory.mktemp("store"), map_refresh_s=3600)
    harness.load_sample_event(settings, sample_data / EVENT, name=EVENT)
    return serve(_app(settings))


@pytest.fixture(scope="module")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[Any]:
    harness = _harness()
    with harness.Chromium(harness.require_chromium(), width=1280, height=860) as browser:
        browser.navigate(f"{base_url}/events/{EVENT}/map")
        browser.wait_js("window.dcm && window.dcm.ready", timeout=60)
        browser.idle(timeout=60)
        yield browser


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
            if f["properties"].get("window_start", window["start"]) == window["start"]
        ]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        params = None
    return out


def _drawn(page: Any, pane: str) -> int:
    return int(page.evaluate(f"document.querySelectorAll('.leaflet-{pane}-pane path').length"))


def test_sample_map_draws_the_outages_of_the_selected_window(page: Any, api: httpx.Client) -> None:
    assert page.evaluate("dcm.errors") == []
    windows = page.evaluate("dcm.windows")
    assert windows > 100  # a week of hourly windows
    window = page.evaluate("dcm.window")
    shown = [
        f for f in _window_features(api, "outages", window) if f["properties"]["network"] == "all"
    ]
    assert page.evaluate("dcm.drawn.outages") == len(shown)
    assert _drawn(page, "outages") == len(shown)
    assert _drawn(page, "areas") == 5  # the five parishes
    assert _drawn(page, "hazard") >= 1
    page.screenshot(ARTIFACTS / "webmap-stvincent.png")


def test_stepping_back_in_time_changes_what_is_drawn(page: Any) -> None:
    # Grid states change from window to window even where no outage does.
    page.evaluate("""[...document.querySelectorAll('input[name=grid]')]
                       .filter(i => !i.checked).forEach(i => i.click())""")
    page.wait_js("dcm.drawn.grid > 0")
    page.idle()

    def picture() -> list[str]:
        return page.evaluate(
            "[...document.querySelectorAll('.leaflet-grid-pane path, "
            ".leaflet-outages-pane path')].map(p => p.getAttribute('d') + "
            "p.getAttribute('fill'))"
        )

    latest, index = picture(), page.evaluate("dcm.index")
    page.evaluate(
        "document.getElementById('slider').value = 10;"
        "document.getElementById('slider').dispatchEvent(new Event('input'))"
    )
    page.wait_js("dcm.index === 10")
    page.idle()
    assert page.evaluate("dcm.drawn.grid") > 0
    assert picture() != latest
    page.evaluate("document.getElementById('next').click()")
    page.wait_js("dcm.index === 11")
    page.idle()
    assert index > 11


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
