"""The web map's page and static files, served by :data:`dcm.api.webmap.router`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request

from dcm.api import webmap
from dcm.api.errors import install_error_handlers
from dcm.settings import Settings

Client = Callable[..., httpx.Client]
SW = webmap.STATIC_DIR / "sw.js"


@pytest.fixture
def client(serve: Callable[[Callable[[], FastAPI]], str]) -> Iterator[Client]:
    """Make clients of servers running only the web-map router with given settings."""
    opened: list[httpx.Client] = []

    def make(**settings: object) -> httpx.Client:
        app = FastAPI()
        app.state.settings = Settings(**settings)  # type: ignore[arg-type]
        install_error_handlers(app)
        app.include_router(webmap.router)
        opened.append(httpx.Client(base_url=serve(lambda: app)))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


def _config(page: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="dcm-config">(.*?)</script>', page)
    assert match, "page has no config element"
    config: dict[str, object] = json.loads(match.group(1))
    return config


def test_map_page_passes_event_refresh_interval_and_no_basemap_by_default(client: Client) -> None:
    response = client(map_refresh_s=42).get("/events/stvincent/map")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    config = _config(response.text)
    worker = f"/static/map/sw.js?v={hashlib.sha256(SW.read_bytes()).hexdigest()[:12]}"
    assert config == {
        "event": "stvincent",
        "api": "",
        "refresh_s": 42,
        "basemap_url": None,
        "basemap_tiles": None,
        "basemap_script": None,
        "service_worker": worker,
        "attribution": "Cells: © OpenCelliD contributors, CC BY-SA 4.0",
    }
    assert 'href="/events/stvincent/gaps"' in response.text
    assert 'href="/events/stvincent/alerts.atom"' in response.text
    # The licence of the cell-derived layers is named on the page, for print too.
    assert "CC BY-SA 4.0" in response.text and "OpenCelliD" in response.text


def test_service_worker_may_serve_the_whole_site_and_stays_under_its_root(client: Client) -> None:
    response = client().get("/static/map/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["service-worker-allowed"] == "/"
    # Behind a proxy prefix the worker's URL and scope follow the prefix.
    assert _config(webmap.render_page("e1", Settings(), root="/dcm"))["service_worker"].startswith(
        "/dcm/static/map/sw.js?v="
    )
    scope = {
        "type": "http",
        "method": "GET",
        "root_path": "/dcm",
        "query_string": b"",
        "headers": [],
        "path": "/dcm/static/map/sw.js",
    }
    worker = webmap.map_asset(Request(scope), "sw.js")
    assert worker.headers["service-worker-allowed"] == "/dcm/"


def test_map_page_passes_a_configured_basemap(client: Client) -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    config = _config(client(basemap_url=url).get("/events/e1/map").text)
    assert config["basemap_url"] == url


def test_event_name_cannot_break_out_of_the_page(client: Client) -> None:
    response = client().get("/events/x%22%3E%3Cb%3Ey%3C!--/map")
    assert response.status_code == 200
    assert "<b>y" not in response.text and "<!--" not in response.text
    assert _config(response.text)["event"] == 'x"><b>y<!--'
    assert webmap.render_page("</script><b>", Settings()).count("</script>") == 4


def test_every_script_and_stylesheet_is_served_here_with_a_content_hash(client: Client) -> None:
    http = client()
    page = http.get("/events/stvincent/map").text
    urls = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assets = [u for u in urls if "/static/" in u]
    assert len(assets) == 6  # Leaflet JS + CSS, our map and orientation JS + CSS
    for url in urls:
        assert url.startswith(("/", "data:")), f"{url} is not served by dcm"
    for url in assets:
        response = http.get(url)
        assert response.status_code == 200, url
        assert "immutable" in response.headers["cache-control"]
        digest = hashlib.sha256(response.content).hexdigest()[:12]
        assert url.endswith(f"?v={digest}"), f"{url} hash does not match its content"


def test_leaflet_images_are_served_for_its_stylesheet(client: Client) -> None:
    http = client()
    css = http.get("/static/leaflet/leaflet.css").text
    images = set(re.findall(r"url\((images/[\w.-]+)\)", css))
    assert images, "Leaflet CSS names no images"
    for image in images:
        response = http.get(f"/static/leaflet/{image}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == webmap.PLAIN_CACHE


@pytest.mark.parametrize(
    "path",
    ["/static/leaflet/../__init__.py", "/static/leaflet/leaflet.js.map", "/static/map/map.html"],
)
def test_only_known_static_files_are_served(client: Client, path: str) -> None:
    assert client().get(path).status_code == 404


def test_page_script_and_style_stay_small() -> None:
    # Guard the poor-link budget: our own code is hand-written and unminified.
    names = ("map.js", "map.css", "sw.js", "vectortiles.js")
    sizes = {name: (webmap.STATIC_DIR / name).stat().st_size for name in names}
    assert sizes["map.js"] < 60_000 and sizes["map.css"] < 14_000, sizes
    assert sizes["sw.js"] < 4_000, sizes
    # Loaded only when the offline basemap holds vector tiles.
    assert sizes["vectortiles.js"] < 18_000, sizes


def test_a_stale_content_hash_is_not_cached_for_good(client: Client) -> None:
    response = client().get("/static/map/map.js?v=000000000000")
    assert response.status_code == 200
    assert response.headers["cache-control"] == webmap.PLAIN_CACHE
