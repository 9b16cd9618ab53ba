"""Orientation on the responder map, in real headless Chromium over loopback: the coast
and place names drawn under the St Vincent sample's outages, and an offline basemap
(MBTiles) drawn from dcm's own /basemap tiles. Nothing leaves the machine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from fastapi import FastAPI

from dcm.analysis.land import COAST_MARGIN_M, widen
from dcm.ingest.orientation import read_land
from dcm.settings import Settings

from .. import browser as cdp
from ..tilefiles import png, tile_of, write_mbtiles

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVENT = "stvincent"
BASEMAP_ZOOM = 10

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _app(settings: Settings) -> FastAPI:
    from dcm.api import create_app

    return create_app(settings)


@pytest.fixture(scope="module")
def settings(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store holding the St Vincent sample event, every window computed."""
    cdp.require_chromium()
    settings = Settings(data_dir=tmp_path_factory.mktemp("store"), map_refresh_s=3600)
    cdp.load_sample_event(settings, sample_data / EVENT, name=EVENT)
    return settings


@pytest.fixture(scope="module")
def basemap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raster tiles over St Vincent at one zoom, as an MBTiles file."""
    (x0, y0), (x1, y1) = tile_of(-61.5, 13.6, BASEMAP_ZOOM), tile_of(-60.9, 12.9, BASEMAP_ZOOM)
    tiles = {
        (BASEMAP_ZOOM, x, y): png((120 + 10 * (x - x0), 160, 120 + 10 * (y - y0)))
        for x in range(x0, x1 + 1)
        for y in range(y0, y1 + 1)
    }
    return write_mbtiles(tmp_path_factory.mktemp("tiles") / "island.mbtiles", tiles)


@pytest.fixture(scope="module")
def urls(
    settings: Settings, basemap: Path, serve: Callable[[Callable[[], FastAPI]], str]
) -> dict[str, str]:
    with_tiles = settings.model_copy(update={"basemap": basemap})
    return {"plain": serve(lambda: _app(settings)), "basemap": serve(lambda: _app(with_tiles))}


def _open(url: str) -> Iterator[Any]:
    with cdp.Chromium(cdp.require_chromium(), width=1100, height=800) as browser:
        browser.navigate(f"{url}/events/{EVENT}/map")
        browser.wait_js("window.dcm && window.dcm.ready", timeout=90)
        browser.wait_js("window.dcm.orientation && window.dcm.orientation.ready", timeout=60)
        browser.idle(timeout=60)
        yield browser


@pytest.fixture(scope="module")
def plain(urls: dict[str, str]) -> Iterator[Any]:
    yield from _open(urls["plain"])


@pytest.fixture(scope="module")
def tiled(urls: dict[str, str]) -> Iterator[Any]:
    yield from _open(urls["basemap"])


def _requests_stay_local(page: Any) -> list[Any]:
    requests = [r for r in list(page.requests.values()) if not r.url.startswith("data:")]
    assert requests
    for r in requests:
        assert r.host == "127.0.0.1", f"request left loopback: {r}"
        assert r.failed is None, f"request failed: {r}"
    return requests


def test_coast_and_place_names_are_drawn_under_the_outages(plain: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    plain.screenshot(ARTIFACTS / "map-orientation.png")
    names = plain.evaluate("[...document.querySelectorAll('.dcm-place')].map(e => e.textContent)")
    assert "Kingstown" in names
    assert len(names) >= 5
    coast = plain.evaluate(
        "[...document.querySelectorAll('.leaflet-orientation-pane path.dcm-coast')]"
        ".map(p => p.getAttribute('d').length)"
    )
    assert coast and max(coast) > 200  # the island's outline, hundreds of path commands
    # Land lies under the data, place names over the outages but under the cell sites.
    z = plain.evaluate(
        "['orientation', 'areas', 'outages', 'orientation-labels', 'cells'].map(n =>"
        " +getComputedStyle(document.querySelector(`.leaflet-${n}-pane`)).zIndex)"
    )
    assert z == sorted(z)
    info = plain.evaluate("window.dcm.orientation")
    assert info["land"] == 1 and info["basemap"] is None and info["errors"] == []
    assert "GeoNames" in plain.evaluate(
        "document.querySelector('.leaflet-control-attribution').textContent"
    )


def test_plain_map_makes_no_request_beyond_this_server(plain: Any) -> None:
    requests = _requests_stay_local(plain)
    assert any("/orientation?" in r.url and r.status == 200 for r in requests)
    assert not any("/basemap/" in r.url for r in requests)


def test_live_outages_stay_on_the_island(urls: dict[str, str]) -> None:
    body = httpx.get(
        f"{urls['plain']}/collections/{EVENT}-outages/items", params={"limit": 10000}, timeout=60
    ).json()
    geoms = shapely.from_geojson(
        [shapely.to_geojson(shapely.geometry.shape(f["geometry"])) for f in body["features"]]
    )
    assert len(geoms) > 0
    land = read_land(tuple(shapely.total_bounds(geoms)))
    assert land is not None
    assert shapely.covers(widen(land, COAST_MARGIN_M + 5), geoms).all()


def test_offline_basemap_tiles_are_drawn_from_dcm(tiled: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tiled.screenshot(ARTIFACTS / "map-offline-basemap.png")
    loaded = tiled.evaluate(
        "[...document.querySelectorAll('img.leaflet-tile')]"
        ".filter(i => i.src.includes('/basemap/') && i.complete && i.naturalWidth === 256)"
        ".map(i => i.src)"
    )
    assert loaded, "no basemap tile was drawn"
    assert all(f"/basemap/{BASEMAP_ZOOM}/" in src for src in loaded)
    info = tiled.evaluate("window.dcm.orientation")
    assert info["basemap"] == "png" and info["labels"] == 0  # the basemap has its own
    requests = _requests_stay_local(tiled)
    tiles = [r for r in requests if "/basemap/" in r.url and r.url.endswith(".png")]
    assert tiles and all(r.status in (200, 304) for r in tiles)
