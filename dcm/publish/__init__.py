"""dcm.publish: output formats (GeoJSON, CSV, Parquet, GeoPackage, CAP 1.2, Atom, map HTML).

Imports stay light: the map renderer is loaded only when :func:`render_map` is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from dcm.publish._values import jsonable
from dcm.publish.assets import leaflet_assets
from dcm.publish.atom import AtomEntry, atom_feed, cap_entry
from dcm.publish.cap import (
    CAP_MIME,
    CAP_NS,
    CapMessage,
    cap_alert,
    cap_datetime,
    cap_polygons,
    cap_severity,
    certainty_from_confidence,
    outage_to_cap,
)
from dcm.publish.geojson import geojson_bytes, to_geojson, write_geojson
from dcm.publish.tables import write_csv, write_geopackage, write_json, write_parquet

_LAZY = {"render_map": "dcm.publish.webmap"}

__all__ = [
    "CAP_MIME",
    "CAP_NS",
    "AtomEntry",
    "CapMessage",
    "atom_feed",
    "cap_alert",
    "cap_datetime",
    "cap_entry",
    "cap_polygons",
    "cap_severity",
    "certainty_from_confidence",
    "geojson_bytes",
    "jsonable",
    "leaflet_assets",
    "outage_to_cap",
    "render_map",
    "to_geojson",
    "write_csv",
    "write_geojson",
    "write_geopackage",
    "write_json",
    "write_parquet",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dcm.publish' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
