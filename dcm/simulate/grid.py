"""The per-hexagon truth: for each populated H3 cell, network and hour, served or not."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd

from dcm.simulate.geo import pixel_centres
from dcm.simulate.truth import SiteIndex

#: H3 resolution of the truth grid (~0.74 km² hexagons).
TRUTH_RESOLUTION = 8
#: A hexagon counts as served when at least this share of its people is served.
SERVED_SHARE = 0.5


def truth_grid(
    index: SiteIndex,
    population: np.ndarray,
    transform: object,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    resolution: int = TRUTH_RESOLUTION,
) -> pd.DataFrame:
    """Served state per (h3, network, hour) over [start, end), populated hexagons only.

    A pixel is served when a covering site of the network is up at the middle of
    the hour; the hexagon is served when >= ``SERVED_SHARE`` of its people are.
    Columns: h3 (string), network (string), hour (UTC, hour start), served (bool),
    served_share (float32), population (float32).
    """
    rows_i, cols_i = np.nonzero(population > 0)
    lon, lat = pixel_centres(transform, rows_i, cols_i)
    pop = population[rows_i, cols_i].astype("float64")
    cells = np.array(
        [h3.latlng_to_cell(float(a), float(o), resolution) for a, o in zip(lat, lon, strict=True)]
    )
    hexes, code = np.unique(cells, return_inverse=True)
    hex_pop = np.bincount(code, weights=pop, minlength=len(hexes))
    hours = pd.date_range(start.floor("h"), end, freq="h", inclusive="left").as_unit("ns")
    mids = np.clip(
        hours.as_unit("ns").asi8 + 1_800_000_000_000,
        start.as_unit("ns").value,
        end.as_unit("ns").value - 1,
    )
    xy = index.proj.to_xy(lon, lat)
    frames = []
    for network in index.networks:
        cand, _ = index.candidates(xy, network)
        changes = np.isin(cand, np.flatnonzero(index.down_ns < np.iinfo(np.int64).max))
        moving = changes.any(axis=1)
        static_served = (cand >= 0).any(axis=1)
        share = np.empty((len(hours), len(hexes)))
        base_w = pop * (static_served & ~moving)
        base = np.bincount(code, weights=base_w, minlength=len(hexes))
        cand_m, code_m, pop_m, xy_m = cand[moving], code[moving], pop[moving], xy[moving]
        covers = index.covers(cand_m, xy_m)
        for h, t in enumerate(mids):
            served_m = index.up_mask(cand_m, int(t), xy_m, covers=covers).any(axis=1)
            share[h] = base + np.bincount(code_m, weights=pop_m * served_m, minlength=len(hexes))
        share /= hex_pop[None, :]
        frames.append(
            pd.DataFrame(
                {
                    "h3": np.tile(hexes, len(hours)),
                    "network": network,
                    "hour": np.repeat(hours, len(hexes)),
                    "served": share.ravel() >= SERVED_SHARE,
                    "served_share": share.ravel().astype("float32"),
                    "population": np.tile(hex_pop, len(hours)).astype("float32"),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["h3"] = out["h3"].astype("string")
    out["network"] = out["network"].astype("string")
    return out
