"""The batch outage map: ``map.html`` of ``dcm compare``, one self-contained page.

The page is the live map's own client (``map.html``, ``map.js``, ``map.css`` and the
orientation script, see :mod:`dcm.publish.assets`) with Leaflet, the client and the
data inlined, so it opens from disk with no server and no request. Where the live map
asks the OGC API for a window's outages, cells and grid, the batch map's script reads
the same GeoJSON from an embedded ``<script type="application/json" id="dcm-data">``:
every window's outages (repeated shapes stored once), the cells' status intervals as
columns, the grid of the opening window, areas, hazard and the land and place names
around the data. The page opens at the peak (:func:`peak_window` of the confirmed
outages) unless another window is asked for.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from dcm.errors import ParameterError
from dcm.publish._values import jsonable, strftime_utc
from dcm.publish.assets import inline_client, map_page, script_json
from dcm.publish.geojson import (
    concat_texts,
    geometry_json,
    join_texts,
    prepare_geometries,
    property_json,
    to_geojson,
)
from dcm.schema import ALL_NETWORKS, suspected_outages, with_outage_tiers

#: Coordinates on the map: 5 decimals ≈ 1 m, plenty on screen and keeps the page small.
MAP_PRECISION = 5

#: Outline colours and dash patterns of single networks' outages (Okabe–Ito blues, then
#: dark tones that stay apart from the vermillion and orange of the all-network areas); a
#: network's own pair comes from its key by :func:`network_look`, as in map.js.
NETWORK_COLOURS = (
    "#0072B2",
    "#56B4E9",
    "#000000",
    "#5E3C99",
    "#1B7837",
    "#8C510A",
    "#01665E",
    "#3F5765",
)
NETWORK_DASHES = ("10 5", "3 5", "12 4 3 4")
#: Under the legend wherever cells are drawn: cell lists such as OpenCelliD's are
#: CC BY-SA 4.0, whose licence asks for attribution of the layers derived from them.
CELL_ATTRIBUTION = (
    "Cell sites, and the outage areas drawn from their coverage, derive from the cell "
    "list given (OpenCelliD data: © OpenCelliD contributors, CC BY-SA 4.0)."
)
#: Outage properties the client reads (as the API's outages layer names them).
OUTAGE_PROPERTIES = (
    "outage_id",
    "window_start",
    "window_end",
    "network",
    "severity",
    "tier",
    "certainty",
    "confidence",
    "area_km2",
    "population",
    "cells_offline",
    "onset",
)
#: Cell properties the client reads (as the API's cells layer names them).
CELL_PROPERTIES = (
    "status",
    "network",
    "radio",
    "area",
    "cell",
    "site_id",
    "p_offline",
    "silence_h_needed",
    "start",
    "end",
    "offline_since",
)
_TIMES = ("window_start", "window_end", "onset", "start", "end", "offline_since")
_MINUTES = "%Y-%m-%dT%H:%MZ"


def network_look(network: str) -> tuple[str, str]:
    """Outline colour and dash pattern of one network's outages (``"MCC-MNC"``).

    From the 32-bit FNV-1a hash of the key's UTF-8 bytes, so a network looks the same
    on every map, whatever other networks are present or the order they appear in
    (``netLook`` in the client's map.js is the same function).
    """
    h = 0x811C9DC5
    for byte in network.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    n = len(NETWORK_COLOURS)
    return NETWORK_COLOURS[h % n], NETWORK_DASHES[(h // n) % len(NETWORK_DASHES)]


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _window_ends(*frames: pd.DataFrame | None) -> list[pd.Timestamp]:
    ends: set[pd.Timestamp] = set()
    for frame in frames:
        if frame is not None and "window_end" in frame.columns and len(frame):
            ends.update(pd.to_datetime(frame["window_end"], utc=True).dropna().unique())
    return sorted(ends)


def _in_window(frame: pd.DataFrame, window_end: pd.Timestamp | None) -> pd.DataFrame:
    if window_end is None or "window_end" not in frame.columns:
        return frame
    return frame[pd.to_datetime(frame["window_end"], utc=True) == window_end]


def _iso_minutes(values: pd.Series) -> np.ndarray:
    """``YYYY-MM-DDTHH:MMZ`` strings (UTC) of a time column; None where missing."""
    return strftime_utc(pd.to_datetime(values, utc=True), _MINUTES).to_numpy()


def _network_of(outages: pd.DataFrame) -> pd.Series:
    """Network key per outage row; ``"all"`` where missing."""
    if "network" not in outages:
        return pd.Series(ALL_NETWORKS, index=outages.index, dtype="string")
    return outages["network"].astype("string").fillna(ALL_NETWORKS)


def _column(values: pd.Series) -> list[Any] | dict[str, list[Any]]:
    """A JSON column of embedded points: categorical when few distinct values repeat."""
    clean = values.astype(object).where(values.notna(), None)
    codes, names = pd.factorize(clean, use_na_sentinel=False)
    if len(names) * 4 < len(values):
        return {"cat": jsonable(list(names)), "idx": codes.tolist()}
    return jsonable(clean.tolist())


def _shared_geometries(gdf: gpd.GeoDataFrame, *, precision: int) -> str:
    """JSON of features whose repeated geometries are stored once.

    An outage that lasts keeps its shape window after window; the geometries go to a
    ``geometries`` list and each feature (``{"g": index, "properties": …}``) names its
    own by index, a fifth of the bytes on the St Vincent sample; the client makes
    GeoJSON features of them. The geometry texts come straight from
    :func:`~dcm.publish.geojson.geometry_json`, never parsed into Python objects.
    """
    texts = geometry_json(prepare_geometries(gdf.geometry, precision=precision))
    texts = np.where(pd.isna(texts), "null", texts)
    codes, geometries = pd.factorize(pd.Series(texts, dtype=object))
    features = concat_texts(
        '{"g":',
        pc.cast(pa.array(codes), pa.large_string()),
        ',"properties":',
        property_json(gdf),
        "}",
    )
    return f'{{"geometries":[{",".join(geometries)}],"features":[{join_texts(features)}]}}'


def people_by_window(outages: pd.DataFrame) -> pd.DataFrame:
    """People in outages per window (rows: window_end, UTC) and network (columns).

    Column ``"all"`` sums the all-network features (no service plus some networks
    down), so it counts each person once; single networks overlap each other and are
    not summed. Without a ``population`` column every value is 0.
    """
    if outages.empty or "window_end" not in outages:
        return pd.DataFrame(dtype="float64")
    people = (
        pd.to_numeric(outages["population"], errors="coerce").fillna(0.0)
        if "population" in outages
        else pd.Series(0.0, index=outages.index)
    )
    frame = pd.DataFrame(
        {
            "window_end": pd.to_datetime(outages["window_end"], utc=True),
            "network": _network_of(outages).astype(object),
            "people": people.to_numpy(dtype="float64"),
        }
    )
    table = frame.pivot_table(
        index="window_end", columns="network", values="people", aggfunc="sum", fill_value=0.0
    )
    table.columns.name = None
    return table.sort_index()


def peak_window(outages: pd.DataFrame) -> pd.Timestamp | None:
    """The window_end (UTC) with the most people in outages, counted once per person.

    Uses the all-network features where there are any, else the sum over networks;
    ties and populations of 0 go to the earliest window. None without outages.
    """
    table = people_by_window(outages)
    if table.empty:
        return None
    people = table[ALL_NETWORKS] if ALL_NETWORKS in table else table.sum(axis=1)
    # The index holds window_end timestamps; the stubs type idxmax as any Hashable.
    return pd.Timestamp(cast(pd.Timestamp, people.idxmax()))


def _peak_basis(outages: pd.DataFrame) -> pd.DataFrame:
    """The outages the peak is found in: the confirmed ones, as the summaries count them
    (suspected ones only when nothing is confirmed)."""
    confirmed = outages[~suspected_outages(outages)]
    return confirmed if len(confirmed) else outages


def _timeline(outages: pd.DataFrame) -> list[pd.Timestamp]:
    """The windows the slider steps through: every window from the first outage to the last.

    Windows without outages in between are kept (at the outages' shortest spacing), and
    one more after the last when the outages say service came back (``restored``), so
    the end of the event can be seen too.
    """
    ends = _window_ends(outages)
    if len(ends) < 2:
        return ends
    step = pd.Series(ends).diff().dropna().min()
    if step <= pd.Timedelta(0) or (ends[-1] - ends[0]) / step > 5000:
        return ends
    regular = list(pd.date_range(ends[0], ends[-1], freq=step))
    if set(ends) - set(regular):  # irregular windows: step through the ones there are
        return ends
    if "restored" in outages and pd.to_datetime(outages["restored"], utc=True).notna().any():
        regular.append(ends[-1] + step)
    return regular


def _cells_at(cells: pd.DataFrame, window_end: pd.Timestamp | None) -> pd.DataFrame:
    """Cell rows valid at ``window_end`` (status intervals) with lon/lat and status."""
    missing = [c for c in ("lon", "lat", "status") if c not in cells.columns]
    if missing:
        raise ParameterError(f"cells for the map need columns lon, lat, status; missing {missing}")
    frame = cells
    if window_end is not None and {"start", "end"} <= set(cells.columns):
        start = pd.to_datetime(cells["start"], utc=True)
        end = pd.to_datetime(cells["end"], utc=True)
        frame = cells[(start < window_end) & (end.isna() | (end >= window_end))]
        keys = [c for c in ("radio", "mcc", "net", "area", "cell") if c in frame.columns]
        if keys:
            frame = frame.sort_values("start").drop_duplicates(keys, keep="last")
    return frame.dropna(subset=["lon", "lat"])


#: Hex states from best to worst known, for grids without a combined ("all") network.
_STATE_RANK = {"up": 0, "down": 1, "uncertain": 2, "no_data": 3}


def _hex_polygons(cells: np.ndarray) -> np.ndarray:
    """Shapely hexagons (lon/lat) of H3 cell strings."""
    import h3  # lazy: only grids without geometry need it

    rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(str(c))] for c in cells]
    return np.array([shapely.Polygon(r) for r in rings], dtype=object)


def _times_as_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with the time columns among ``columns`` as ``YYYY-MM-DDTHH:MMZ`` text."""
    out = frame.copy()
    for col in set(columns) & set(_TIMES) & set(out.columns):
        out[col] = _iso_minutes(out[col])
    return out


def _outage_layer(outages: gpd.GeoDataFrame) -> str:
    """Every window's outages, properties as the API's outages layer names them."""
    keep = [c for c in OUTAGE_PROPERTIES if c in outages.columns]
    frame = _times_as_text(pd.DataFrame(outages[keep]), OUTAGE_PROPERTIES)
    frame["network"] = _network_of(outages).astype(object).to_numpy()
    if "confidence" in frame:
        frame["confidence"] = pd.to_numeric(frame["confidence"], errors="coerce").round(3)
    if "area_km2" in frame:
        frame["area_km2"] = pd.to_numeric(frame["area_km2"], errors="coerce").round(2)
    if "population" in frame:
        frame["population"] = pd.to_numeric(frame["population"], errors="coerce").round(0)
    gdf = gpd.GeoDataFrame(frame, geometry=outages.geometry.values, crs=outages.crs)
    return _shared_geometries(gdf, precision=MAP_PRECISION)


def _cell_layer(cells: pd.DataFrame) -> dict[str, Any]:
    """Cells (status intervals when they have start/end) as columns of points."""
    frame = cells.copy()
    if "network" not in frame.columns and {"mcc", "net"} <= set(frame.columns):
        frame["network"] = frame["mcc"].astype("string") + "-" + frame["net"].astype("string")
    frame = _times_as_text(frame, CELL_PROPERTIES)
    if "p_offline" in frame:
        frame["p_offline"] = pd.to_numeric(frame["p_offline"], errors="coerce").round(2)
    if "silence_h_needed" in frame:
        hours = pd.to_numeric(frame["silence_h_needed"], errors="coerce").astype("float64")
        hours = hours.where(np.isfinite(hours))
        # Whole hours from 10 h on: the rate behind them is rough anyway.
        frame["silence_h_needed"] = hours.round(1).where(hours < 10, hours.round(0))
    props = {c: _column(frame[c]) for c in CELL_PROPERTIES if c in frame.columns}
    return {
        "x": np.round(cells["lon"].to_numpy(dtype="float64"), MAP_PRECISION).tolist(),
        "y": np.round(cells["lat"].to_numpy(dtype="float64"), MAP_PRECISION).tolist(),
        "p": props,
    }


def _grid_layer(grid: pd.DataFrame) -> str | None:
    """One window's grid states per hex: the combined ("all") network where the grid has
    it, else every network's row (the client draws the worst state of each hex). Hexes
    where service is up are left out: they are most of the grid and the least news."""
    if grid.empty or "state" not in grid.columns:
        return None
    grid = grid[(grid["state"] != "up").to_numpy()]
    if grid.empty:
        return None
    has_geometry = isinstance(grid, gpd.GeoDataFrame)
    if not has_geometry and "h3" not in grid.columns:
        raise ParameterError("the map's grid needs hex geometry or an 'h3' column")
    if "network" in grid.columns and (grid["network"] == ALL_NETWORKS).any():
        grid = grid[(grid["network"] == ALL_NETWORKS).to_numpy()]
    keep = [c for c in ("h3", "network", "state", "window_start", "window_end") if c in grid]
    frame = _times_as_text(pd.DataFrame(grid[keep]), ("window_start", "window_end"))
    if "network" not in frame:
        frame["network"] = ALL_NETWORKS
    if isinstance(grid, gpd.GeoDataFrame):
        geometry = gpd.GeoSeries(grid.geometry.values, crs=grid.crs)
    else:
        geometry = gpd.GeoSeries(_hex_polygons(grid["h3"].to_numpy()), crs=4326)
    gdf = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry=geometry.values)
    return _shared_geometries(gdf, precision=MAP_PRECISION)


def _outline_layer(gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    """Areas or hazard zones with the properties the client labels them by."""
    keep = [c for c in ("name", "area_id", "hazard_id", "level") if c in gdf.columns]
    out = gpd.GeoDataFrame(
        gdf[keep].astype(object).to_numpy(), columns=keep, geometry=gdf.geometry.values, crs=gdf.crs
    )
    return to_geojson(out, precision=MAP_PRECISION)


def _windows(
    outages: pd.DataFrame, grid: pd.DataFrame | None
) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """The windows the time control steps through (ends) and their starts.

    Every window from the first outage to the last (:func:`_timeline`); without
    outages, the grid's. A start is the one the data gives for that end, else the end
    minus the windows' spacing (an hour when there is one window only).
    """
    ends = _timeline(outages) if len(outages) else _window_ends(grid)
    known: dict[pd.Timestamp, pd.Timestamp] = {}
    for frame in (outages, grid):
        if frame is not None and len(frame) and {"window_start", "window_end"} <= set(frame):
            pairs = pd.DataFrame(
                {
                    "end": pd.to_datetime(frame["window_end"], utc=True),
                    "start": pd.to_datetime(frame["window_start"], utc=True),
                }
            ).drop_duplicates("end")
            known.update(zip(pairs["end"], pairs["start"], strict=True))
    step = pd.Series(ends).diff().dropna().min() if len(ends) > 1 else pd.Timedelta(hours=1)
    starts = [known.get(end, end - step) for end in ends]
    return ends, starts


def _window_index(
    windows: list[pd.Timestamp], wanted: pd.Timestamp | None, *, what: str
) -> int | None:
    if wanted is None:
        return None
    if wanted not in windows:
        raise ParameterError(
            f"{what} {wanted:%Y-%m-%dT%H:%MZ} is not one of the outage windows "
            f"({windows[0]:%Y-%m-%dT%H:%MZ} to {windows[-1]:%Y-%m-%dT%H:%MZ})"
            if windows
            else f"{what} {wanted:%Y-%m-%dT%H:%MZ}: the map has no windows"
        )
    return windows.index(wanted)


def _page_data(parts: Mapping[str, Any], layers: Mapping[str, str]) -> str:
    """The ``dcm-data`` element: ``parts`` as JSON and ``layers`` (already JSON text)
    under ``layers``, ``<`` escaped so nothing ends the element early."""
    head = script_json(dict(parts))[:-1]
    body = ",".join(f'"{name}":{text}' for name, text in layers.items())
    text = f'{head},"layers":{{{body}}}}}'
    # "<" only occurs inside JSON strings, where \u003c reads the same.
    text = text.replace("<", "\\u003c")
    return f'<script type="application/json" id="dcm-data">{text}</script>'


_DATA_ELEMENT = re.compile(r'<script type="application/json" id="dcm-data">(.*?)</script>', re.S)


def read_page_data(page: str) -> dict[str, Any]:
    """The data a batch map page carries (what :func:`render_map` embedded): ``event``
    (windows, ``high_water``), ``selected`` and ``peak`` window indexes, ``grid_window``
    and ``layers`` in their compact form. ParameterError when the page has none."""
    found = _DATA_ELEMENT.search(page)
    if found is None:
        raise ParameterError("the page holds no embedded map data (id dcm-data)")
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _nav(downloads: Mapping[str, str] | None) -> str:
    """The batch map's links: the listed outages as CSV (made in the page) and the files
    written beside it (label -> relative URL)."""
    links = [
        '<a id="dl-outages-csv" href="#" download="outages.csv" type="text/csv">'
        "Listed outages (CSV)</a>"
    ]
    for label, href in (downloads or {}).items():
        links.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>')
    return "".join(links)


def render_map(
    *,
    outages: gpd.GeoDataFrame,
    cells: pd.DataFrame | None = None,
    grid: pd.DataFrame | None = None,
    areas: gpd.GeoDataFrame | None = None,
    hazard: gpd.GeoDataFrame | None = None,
    title: str = "Mobile connectivity outages",
    window_end: Any = None,
    tiles_url: str | None = None,
    tiles_attribution: str | None = None,
    attribution: str | None = None,
    orientation: dict[str, Any] | None = None,
    downloads: Mapping[str, str] | None = None,
    made: Any = None,
) -> str:
    """The outage map as one self-contained HTML page (no server, no internet needed).

    ``outages``: OUTAGE_COLUMNS GeoDataFrame (all windows). ``cells``: lon, lat,
    status, optionally CELL_STATUS_COLUMNS intervals (start/end, ``offline_since``), ids
    and p_offline; merge cell positions from the CELL_COLUMNS frame first. ``grid``:
    GRID_STATUS_COLUMNS with hex geometry or ``h3`` strings. ``areas``/``hazard``:
    outlines. Every window's outages are embedded and the time control steps through
    them; the page opens at ``window_end`` (default: the peak, see
    :func:`peak_window`; ParameterError when it is not one of the windows). Cells with
    status intervals follow the time control; the grid is embedded for the opening
    window only, without the hexes where service is up (a week of states would outweigh
    everything else).
    ``tiles_url`` adds an online basemap; off by default so the page works offline.
    ``attribution`` (plain text, e.g. data sources and licences) goes in the source
    note. ``orientation``: land, coastline and place names
    (:func:`dcm.publish.orientation.orientation_geojson`), drawn under everything.
    ``downloads``: links (label -> URL relative to the page, e.g. ``outages.geojson``).
    ``made``: when the map was made, shown beside the data's time.
    """
    outages = with_outage_tiers(outages)
    if cells is not None:
        shown_cells = _cells_at(cells, None)  # every interval: the client picks per window
    windows, starts = _windows(outages, grid)
    peak = peak_window(_peak_basis(outages)) if len(windows) > 1 else None
    wanted = _utc(window_end) if window_end is not None else None
    selected = _window_index(windows, wanted, what="window_end")
    if selected is None:
        selected = windows.index(peak) if peak in windows else len(windows) - 1
    opening = windows[selected] if windows else None

    layers: dict[str, str] = {}
    if len(outages):
        layers["outages"] = _outage_layer(outages)
    if cells is not None and len(shown_cells):
        layers["cells"] = script_json(_cell_layer(shown_cells))
    shown_grid = _in_window(grid, opening) if grid is not None else None
    grid_text = _grid_layer(shown_grid) if shown_grid is not None else None
    if grid_text is not None:
        layers["grid"] = grid_text
    for name, frame in (("areas", areas), ("hazard", hazard)):
        if frame is not None and len(frame):
            layers[name] = script_json(_outline_layer(frame))
    if orientation and orientation.get("features"):
        layers["orientation"] = script_json(orientation)

    def text(t: pd.Timestamp) -> str:
        return f"{t:{_MINUTES}}"

    event = {
        "name": title,
        "description": title,
        # "end" first: readers of the page find the windows by it.
        "windows": [
            {"end": text(e), "start": text(s)} for e, s in zip(windows, starts, strict=True)
        ],
        "high_water": text(windows[-1]) if windows else None,
        "made": text(_utc(made)) if made is not None else None,
    }
    parts = {
        "selected": selected if windows else None,
        "peak": windows.index(peak) if peak in windows else None,
        "grid_window": text(opening) if grid_text is not None and opening is not None else None,
        "event": event,
    }
    config = {
        "event": "dcm",
        "api": "",
        "refresh_s": 3600,
        "basemap_url": tiles_url,
        "basemap_attribution": tiles_attribution,
        "basemap_tiles": None,
        "service_worker": None,
        "attribution": None,
    }
    styles, scripts = inline_client()
    return map_page(
        title=title,
        config=config,
        styles=styles,
        scripts=scripts,
        nav=_nav(downloads),
        attribution=html.escape(attribution or ""),
        data=_page_data(parts, layers),
    )
