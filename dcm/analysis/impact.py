"""Impact of outages: people (population points), administrative areas, hazard zones."""

from __future__ import annotations

import affine
import geopandas as gpd
import numpy as np
import pandas as pd

from dcm.schema import CRS


def population_points(array: np.ndarray, transform: affine.Affine) -> pd.DataFrame:
    """POPULATION_COLUMNS points (pixel centres with people > 0) of a population raster."""
    values = np.asarray(array, dtype="float64")
    if values.ndim == 3:
        values = values[0]
    rows, cols = np.nonzero(np.isfinite(values) & (values > 0))
    c, r, t = cols + 0.5, rows + 0.5, transform
    return pd.DataFrame(
        {
            "lon": t.a * c + t.b * r + t.c,
            "lat": t.d * c + t.e * r + t.f,
            "population": values[rows, cols],
        }
    )


def overlay_areas(
    outages: gpd.GeoDataFrame,
    *,
    areas: gpd.GeoDataFrame | None = None,
    hazard: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Add ``areas`` (names of the areas an outage touches, "; "-joined) and
    ``hazard_level`` (the hazard levels it touches, "; "-joined)."""
    out = outages.copy()
    for frame, column, label in (
        (areas, "areas", ("name", "area_id")),
        (hazard, "hazard_level", ("level", "hazard_id")),
    ):
        if frame is None or out.empty:
            continue
        name_col = next((c for c in label if c in frame.columns), None)
        if name_col is None:
            continue
        other = (
            frame[[name_col, "geometry"]].to_crs(CRS)
            if frame.crs
            else frame[[name_col, "geometry"]].set_crs(CRS)
        )
        joined = gpd.sjoin(out[["geometry"]], other, how="inner", predicate="intersects")
        names = joined.groupby(level=0)[name_col].agg(
            lambda s: "; ".join(sorted(dict.fromkeys(s.astype(str))))
        )
        out[column] = names.reindex(out.index).astype("string")
    return out
