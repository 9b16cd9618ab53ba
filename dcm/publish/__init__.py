"""dcm.publish: output formats (GeoJSON, CSV, Parquet, GeoPackage, CAP 1.2, Atom, map HTML).

Imports stay light: folium is loaded only when :func:`render_map` is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from dcm.publish.assets import leaflet_assets
from dcm.publish.geojson import geojson_bytes, to_geojson, write_geojson

_LAZY = {"render_map": "dcm.publish.webmap"}

__all__ = [
    "geojson_bytes",
    "leaflet_assets",
    "render_map",
    "to_geojson",
    "write_geojson",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dcm.publish' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
