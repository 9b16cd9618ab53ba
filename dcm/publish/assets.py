"""Leaflet's JavaScript, CSS and images from the installed ``django-js-lib-leaflet`` package.

The map must work without internet, so Leaflet comes from a Python package instead
of a CDN. The package is only located, never imported: its ``apps`` module needs
Django.
"""

from __future__ import annotations

import base64
import importlib.util
import re
from functools import cache
from pathlib import Path

LEAFLET_PACKAGE = "js_lib_leaflet"


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
