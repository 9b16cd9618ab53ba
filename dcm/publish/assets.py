"""The map client's files: Leaflet from the installed ``django-js-lib-leaflet`` package,
and dcm's own page template, script and stylesheets.

The map must work without internet, so Leaflet comes from a Python package instead
of a CDN. The package is only located, never imported: its ``apps`` module needs
Django.

One client serves both maps: the live map (``dcm serve``, which links these files from
``/static/…``) and the batch ``map.html`` of ``dcm compare`` (which inlines them). The
client's own files are package data under ``dcm/api/static/``, where the API serves
them; they are read here as files, nothing of ``dcm.api`` is imported.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

LEAFLET_PACKAGE = "js_lib_leaflet"
#: The map client's page template, script and stylesheets (package data).
MAP_CLIENT_DIR = Path(__file__).resolve().parents[1] / "api" / "static"
#: Inlined in the batch map, in this order (the service worker only serves the live map).
CLIENT_STYLES = ("map.css", "orientation.css")
CLIENT_SCRIPTS = ("map.js", "orientation.js")


def leaflet_dir() -> Path:
    """Folder holding ``leaflet.js``, ``leaflet.css`` and ``images/``."""
    spec = importlib.util.find_spec(LEAFLET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("Leaflet assets are missing: install the 'django-js-lib-leaflet' package")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / LEAFLET_PACKAGE
    if not (folder / "leaflet.js").is_file():
        raise ImportError(f"Leaflet assets are missing: no leaflet.js in {folder}")
    return folder


def leaflet_assets() -> dict[str, Path]:
    """Leaflet's files by their path relative to ``leaflet.css`` (``images/layers.png`` …).

    Keys are the names the CSS refers to, so the API can serve them side by side.
    """
    folder = leaflet_dir()
    assets = {"leaflet.js": folder / "leaflet.js", "leaflet.css": folder / "leaflet.css"}
    for image in sorted((folder / "images").glob("*.png")):
        assets[f"images/{image.name}"] = image
    return assets


@cache
def leaflet_js() -> str:
    """Leaflet's minified JavaScript, safe to place inside a ``<script>`` element."""
    code = (leaflet_dir() / "leaflet.js").read_text(encoding="utf-8")
    # A literal "</script" would end the inline element early.
    return code.replace("</script", "<\\/script")


@cache
def leaflet_css_inline() -> str:
    """Leaflet's CSS with its images embedded as ``data:`` URIs (no further requests)."""
    assets = leaflet_assets()
    css = assets["leaflet.css"].read_text(encoding="utf-8")

    def embed(match: re.Match[str]) -> str:
        image = assets.get(match.group(1))
        if image is None:
            return match.group(0)
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\((images/[\w.-]+\.png)\)", embed, css)


def script_json(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>`` and ``&``
    are escaped, so no value can end the element early."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def _template() -> Template:
    return Template((MAP_CLIENT_DIR / "map.html").read_text(encoding="utf-8"))


def map_page(
    *,
    title: str,
    config: dict[str, Any],
    styles: str,
    scripts: str,
    nav: str,
    attribution: str,
    data: str = "",
) -> str:
    """The map page (``map.html``): one template for the live and the batch map.

    ``styles``/``scripts``: the markup that links or inlines Leaflet and the client;
    ``nav``: the download links; ``attribution``: HTML for the source note; ``data``:
    the batch map's ``<script id="dcm-data">`` element (empty on the live map).
    """
    return _template().substitute(
        title=html.escape(title),
        styles=styles,
        config=script_json(config),
        data=data,
        nav=nav,
        attribution=attribution,
        scripts=scripts,
    )


def _inline_script(code: str) -> str:
    # A literal "</script" would end the inline element early.
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


@cache
def inline_client() -> tuple[str, str]:
    """``<style>`` and ``<script>`` markup holding Leaflet and the map client, for a page
    that must open from disk without any request."""
    css = [leaflet_css_inline()]
    css += [(MAP_CLIENT_DIR / name).read_text(encoding="utf-8") for name in CLIENT_STYLES]
    styles = "\n".join(f"<style>{c}</style>" for c in css)
    js = [leaflet_js()]
    js += [(MAP_CLIENT_DIR / name).read_text(encoding="utf-8") for name in CLIENT_SCRIPTS]
    return styles, "\n".join(_inline_script(c) for c in js)
