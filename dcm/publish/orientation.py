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
