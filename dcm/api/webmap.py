"""The responder web map: ``/events/{event}/map`` and the static files it needs.

The page is a small HTML template plus hand-written Leaflet JavaScript
(``static/map.js``) that fetches every layer from the OGC API – Features routes, so it
follows new data without a rebuild. Everything it loads comes from this server: Leaflet
from the installed ``django-js-lib-leaflet`` package, our own script and stylesheet from
``dcm/api/static/``; no font, icon or tile is fetched from elsewhere unless
``Settings.basemap_url`` asks for a basemap.

Static files carry a content hash in their URL (``?v=…``) and are served with a long
``Cache-Control`` lifetime; the page itself is revalidated on every visit.
"""

from __future__ import annotations

import hashlib
import html
from functools import cache
from pathlib import Path
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from dcm.errors import NotFound
from dcm.publish.assets import MAP_CLIENT_DIR, leaflet_assets, map_page
from dcm.settings import Settings

#: The map client's own files (shared with the batch map, see dcm.publish.assets).
STATIC_DIR = MAP_CLIENT_DIR
#: Our own files served under ``/static/map/`` (name -> media type).
MAP_FILES = {
    "map.js": "text/javascript",
    "map.css": "text/css",
    "sw.js": "text/javascript",
    "orientation.js": "text/javascript",
    "orientation.css": "text/css",
    "vectortiles.js": "text/javascript",
}
#: Cell sites and the outage areas drawn from their coverage derive from cell lists such
#: as OpenCelliD's, whose licence (CC BY-SA 4.0) asks for attribution wherever they show.
CELL_ATTRIBUTION = (
    "Cell sites, and the outage areas drawn from their coverage, derive from "
    '<a href="https://opencellid.org">OpenCelliD</a> data '
    "(© OpenCelliD contributors, "
    '<a href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA 4.0</a>).'
)
#: Static assets never change under the same ``?v=`` hash: cache them for a year.
ASSET_CACHE = "public, max-age=31536000, immutable"
#: Files requested without the hash (Leaflet's CSS asks for its images by name).
PLAIN_CACHE = "public, max-age=86400"

router = APIRouter(tags=["Web map"])


@cache
def leaflet_files() -> dict[str, Path]:
    """Leaflet 1.9.4's files by name (``leaflet.js``, ``leaflet.css``, ``images/*.png``)."""
    try:
        return leaflet_assets()
    except ImportError as exc:
        raise NotFound(str(exc)) from None


@cache
def _digest(path: Path) -> str:
    """Short content hash of a file, for cache-busting asset URLs."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else Settings()


def page_config(event: str, settings: Settings, *, root: str = "") -> dict[str, Any]:
    """What the page's script needs: event, API root, refresh interval (s), basemap, the
    service worker's URL and the attribution of the cell-derived layers."""
    return {
        "event": event,
        "api": root,
        "refresh_s": max(int(settings.map_refresh_s), 1),
        "basemap_url": settings.basemap_url,
        # The offline basemap (MBTiles/PMTiles) dcm serves itself, drawn by orientation.js.
        "basemap_tiles": f"{root}/basemap/tiles.json" if settings.basemap else None,
        # Its vector-tile renderer, loaded only when the basemap holds vector tiles.
        "basemap_script": (
            f"{root}/static/map/vectortiles.js?v={_digest(STATIC_DIR / 'vectortiles.js')}"
            if settings.basemap
            else None
        ),
        "service_worker": f"{root}/static/map/sw.js?v={_digest(STATIC_DIR / 'sw.js')}",
        "attribution": "Cells: © OpenCelliD contributors, CC BY-SA 4.0",
    }


#: The live map's download links (``$event_path`` and ``$cells_path`` filled in); map.js
#: points the layer links at the selected window.
LIVE_NAV = (
    '<a id="dl-outages" href="$event_path/alerts" type="application/geo+json">'
    "Outages (GeoJSON)</a>"
    '<a id="dl-outages-csv" href="#" download="outages.csv" type="text/csv">'
    "Listed outages (CSV)</a>"
    '<a id="dl-cells" href="$cells_path" type="application/geo+json">Cells (GeoJSON)</a>'
    '<a id="dl-gaps" href="$event_path/gaps">Gap report</a>'
    '<a id="dl-gaps-csv" href="$event_path/gaps?f=csv" type="text/csv">Gap report (CSV)</a>'
    '<a href="$event_path/alerts.atom" type="application/atom+xml">Alerts (CAP/Atom)</a>'
)


def render_page(event: str, settings: Settings, *, root: str = "") -> str:
    """The live map page's HTML for one event: scripts and stylesheets linked from here."""
    leaflet = leaflet_files()
    own = {name: STATIC_DIR / name for name in MAP_FILES}
    event_path = html.escape(f"{root}/events/{event}", quote=True)
    cells_path = html.escape(f"{root}/collections/{event}-cells/items?f=geojson", quote=True)
    css = [
        f"{root}/static/leaflet/leaflet.css?v={_digest(leaflet['leaflet.css'])}",
        f"{root}/static/map/map.css?v={_digest(own['map.css'])}",
        f"{root}/static/map/orientation.css?v={_digest(own['orientation.css'])}",
    ]
    js = [
        f"{root}/static/leaflet/leaflet.js?v={_digest(leaflet['leaflet.js'])}",
        f"{root}/static/map/map.js?v={_digest(own['map.js'])}",
        f"{root}/static/map/orientation.js?v={_digest(own['orientation.js'])}",
    ]
    styles = "\n".join(f'<link rel="stylesheet" href="{url}">' for url in css)
    styles += (
        '\n<link rel="alternate" type="application/atom+xml" title="Alerts (CAP/Atom)" '
        f'href="{event_path}/alerts.atom">'
    )
    return map_page(
        title=event,
        attribution=CELL_ATTRIBUTION,
        config=page_config(event, settings, root=root),
        styles=styles,
        scripts="\n".join(f'<script src="{url}"></script>' for url in js),
        nav=Template(LIVE_NAV).substitute(event_path=event_path, cells_path=cells_path),
    )


EventId = Annotated[str, PathParam(description="Event name, e.g. 'stvincent'.")]


@router.get("/events/{event}/map", response_class=HTMLResponse, summary="Responder web map")
def event_map(request: Request, event: EventId) -> HTMLResponse:
    """The web map of one event: outages, cells, grid status, hazard and areas over time."""
    store = getattr(request.app.state, "store", None)
    if store is not None:
        event = store.get_event(event).name  # NotFound -> 404 before any page is sent
    root = request.scope.get("root_path", "").rstrip("/")
    page = render_page(event, _settings(request), root=root)
    # Revalidate each visit so a changed refresh interval or script hash is picked up.
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


def _asset(path: Path, media_type: str | None, request: Request) -> FileResponse:
    # Only a URL naming the current content may be cached for good.
    versioned = request.query_params.get("v") == _digest(path)
    headers = {"Cache-Control": ASSET_CACHE if versioned else PLAIN_CACHE}
    if path.name == "sw.js":
        # The worker lives under /static/map/ but serves the map's page and layers.
        root = request.scope.get("root_path", "").rstrip("/")
        headers["Service-Worker-Allowed"] = f"{root}/"
    return FileResponse(path, media_type=media_type, headers=headers)


@router.get("/static/map/{name}", include_in_schema=False)
def map_asset(request: Request, name: str) -> FileResponse:
    """The map's own script and stylesheet."""
    if name not in MAP_FILES:
        raise NotFound(f"no static file {name!r}")
    return _asset(STATIC_DIR / name, MAP_FILES[name], request)


@router.get("/static/leaflet/{name:path}", include_in_schema=False)
def leaflet_asset(request: Request, name: str) -> FileResponse:
    """Leaflet's script, stylesheet and images from the installed package."""
    path = leaflet_files().get(name)
    if path is None:
        raise NotFound(f"no Leaflet file {name!r}")
    media = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}[path.suffix]
    return _asset(path, media, request)
