"""Orientation for the maps: land, coastline, borders and place names as GeoJSON.

One FeatureCollection serves both maps: the API returns it (``/orientation``) for the
live map's ``static/orientation.js`` to draw, and the batch map embeds it. Features carry
``kind``: ``land`` (the land in the box, drawn filled; its outline is the coastline),
``border`` (national borders) or ``place`` (a point with ``name`` and ``population``).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from dcm.publish.geojson import to_geojson

#: Decimals kept: ~1 m, far finer than 1:10m data.
PRECISION = 5


def orientation_geojson(
    land: shapely.Geometry | None,
    borders: gpd.GeoDataFrame,
    places: pd.DataFrame,
    *,
    attribution: str = "",
) -> dict[str, Any]:
    """A FeatureCollection of ``land`` (one ``land`` feature: fill it, its outline is the
    coastline), ``borders`` (``border`` lines between countries) and ``places``
    (``name``, ``population``, ``lon``, ``lat``: ``place`` points, in their order), plus an
    ``attribution`` member naming the sources."""
    kinds = ["land"] * (land is not None) + ["border"] * len(borders) + ["place"] * len(places)
    geoms = np.concatenate(
        [
            np.array([land] if land is not None else [], dtype=object),
            borders.geometry.to_numpy(dtype=object),
            shapely.points(places["lon"].to_numpy(), places["lat"].to_numpy()),
        ]
    )
    n_other = len(kinds) - len(places)
    frame = gpd.GeoDataFrame(
        {
            "kind": kinds,
            "name": [None] * n_other + places["name"].astype(str).tolist(),
            "population": np.concatenate(
                [np.full(n_other, np.nan), places["population"].to_numpy(dtype="float64")]
            ),
        },
        geometry=gpd.GeoSeries(geoms, crs=4326),
    )
    doc = to_geojson(frame, precision=PRECISION)
    doc["attribution"] = attribution
    return doc


#: Looks shared with ``static/orientation.js``: pale land, grey-blue coast, dark labels.
LAND_STYLE = {"fillColor": "#f4f1ea", "fillOpacity": 1.0, "color": "#7a96a8", "weight": 1.2}
BORDER_STYLE = {"color": "#8a7f8f", "weight": 1.2, "dashArray": "6 3", "fill": False}


def add_orientation(fmap: Any, orientation: dict[str, Any] | None) -> None:
    """Draw an :func:`orientation_geojson` collection on a folium map, under the data:
    land with its coastline in a low pane, place names as text labels. Nothing without
    features."""
    if not orientation or not orientation.get("features"):
        return
    import folium

    land = [f for f in orientation["features"] if f["properties"]["kind"] in ("land", "border")]
    places = [f for f in orientation["features"] if f["properties"]["kind"] == "place"]
    pane = folium.map.CustomPane("orientation", z_index=250)
    pane.add_to(fmap)
    labels = folium.map.CustomPane("orientation-labels", z_index=640, pointer_events=False)
    labels.add_to(fmap)
    group = folium.FeatureGroup(name="Land and places", control=False)
    if land:
        folium.GeoJson(
            {"type": "FeatureCollection", "features": land},
            name="Land",
            style_function=_style,
            pane="orientation",
            interactive=False,
        ).add_to(group)
    for f in places:
        lon, lat = f["geometry"]["coordinates"]
        name = str(f["properties"]["name"])
        folium.Marker(
            [lat, lon],
            icon=folium.DivIcon(
                html=f'<span class="dcm-place">{_escape(name)}</span>',
                class_name="dcm-place-label",
                icon_size=(0, 0),
            ),
            pane="orientation-labels",
            interactive=False,
        ).add_to(group)
    group.add_to(fmap)
    attribution = orientation.get("attribution")
    css = (
        "<style>.dcm-place-label{background:none;border:0}"
        ".dcm-place{position:absolute;transform:translate(-50%,-50%);white-space:nowrap;"
        "font:600 11px/1.2 system-ui,sans-serif;color:#2b2b2b;"
        "text-shadow:0 0 3px #fff,0 0 3px #fff,0 0 3px #fff}"
        ".leaflet-container{background:#dfe9ef}"
        ".dcm-orientation-credit{position:fixed;right:4px;bottom:2px;z-index:1000;"
        "font:10px/1.3 system-ui,sans-serif;color:#444;background:rgba(255,255,255,.75);"
        "padding:0 4px}</style>"
    )
    fmap.get_root().header.add_child(folium.Element(css))
    if attribution:
        note = f'<div class="dcm-orientation-credit">{_escape(attribution)}</div>'
        fmap.get_root().html.add_child(folium.Element(note))


def _style(feature: dict[str, Any]) -> dict[str, Any]:
    if feature["properties"]["kind"] == "border":
        return dict(BORDER_STYLE, className="dcm-border")
    return dict(LAND_STYLE, className="dcm-coast")


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
