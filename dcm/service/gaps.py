"""The gap report: people without service per admin area and network, and its history."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from dcm.errors import ParameterError
from dcm.schema import ALL_NETWORKS, CRS, suspected_outages
from dcm.service.updating import detection_params
from dcm.store import Event, Store

#: Columns of :func:`gap_report`.
GAP_COLUMNS = (
    "area_id",
    "area_name",
    "network",
    "people",
    "area_km2",
    "cells_offline",
    "since",
    "people_before",
    "trend",
)

#: A trend moves when people affected change by more than this share (and 10 people).
TREND_SHARE = 0.1

#: Equal-area projection for km² of intersections (World Cylindrical Equal Area).
_EQUAL_AREA = "EPSG:6933"


def _people_per_area(
    outages: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, population: pd.DataFrame | None
) -> pd.DataFrame:
    """People, km² and onset per (area, network) for one window's outages."""
    cols = ["area_id", "network", "people", "area_km2", "since"]
    if outages.empty:
        return pd.DataFrame(columns=cols)
    # People without service on a network: its own outages, plus places where no
    # network serves (network "all", severity outage). Degraded "all" polygons still
    # have service from some network, so they count for nobody.
    nobody = outages[(outages["network"] == ALL_NETWORKS) & (outages["severity"] == "outage")]
    per_net = outages[outages["network"] != ALL_NETWORKS]
    layers = {ALL_NETWORKS: nobody}
    for network, group in per_net.groupby("network"):
        layers[str(network)] = pd.concat([group, nobody])
    rows = []
    area_geoms = areas.geometry.to_numpy()
    area_eq = gpd.GeoSeries(area_geoms, crs=CRS).to_crs(_EQUAL_AREA).to_numpy()
    pts = None
    if population is not None and len(population):
        pts = gpd.GeoDataFrame(
            population[["population"]],
            geometry=gpd.points_from_xy(population["lon"], population["lat"]),
            crs=CRS,
        )
    for network, layer in layers.items():
        if layer.empty:
            continue
        shape = shapely.union_all(layer.geometry.to_numpy())
        shape_eq = gpd.GeoSeries([shape], crs=CRS).to_crs(_EQUAL_AREA).iloc[0]
        hit = shapely.intersects(area_geoms, shape)
        km2 = shapely.area(shapely.intersection(area_eq, shape_eq)) / 1e6
        people = np.zeros(len(areas))
        if pts is not None:
            inside = pts[shapely.contains_xy(shape, pts.geometry.x, pts.geometry.y)]
            if len(inside):
                joined = gpd.sjoin(
                    inside,
                    areas[["geometry"]].reset_index(drop=True),
                    how="inner",
                    predicate="within",
                )
                sums = joined.groupby("index_right")["population"].sum()
                people[sums.index.to_numpy()] = sums.to_numpy()
        since = _onset_per_area(layer, area_geoms)
        for i in np.nonzero(hit)[0]:  # one row per area touched (a few dozen at most)
            rows.append((areas["area_id"].iloc[i], network, people[i], km2[i], since[i]))
    return pd.DataFrame(rows, columns=cols)


def _onset_per_area(layer: gpd.GeoDataFrame, area_geoms: np.ndarray) -> pd.Series:
    """Earliest onset of the outages of ``layer`` that touch each area (NaT where none
    does): an area's outage began when the first outage reaching it did, not when the
    first outage anywhere on the network did."""
    area, outage = shapely.STRtree(layer.geometry.to_numpy()).query(
        area_geoms, predicate="intersects"
    )
    onset = pd.DatetimeIndex(pd.to_datetime(layer["onset"], utc=True))[outage]
    first = pd.Series(onset, index=area).groupby(level=0).min()
    return first.reindex(range(len(area_geoms)))


def gap_report(
    store: Store, event: str | int, *, at: pd.Timestamp | None = None, trend_hours: int = 6
) -> pd.DataFrame:
    """People without service per admin area and network (columns :data:`GAP_COLUMNS`).

    Population inside the confirmed outage polygons of the latest computed window (or the window
    holding ``at``), km² of outage inside the area, offline cells of the sites serving
    it (:func:`_cells_offline`), onset (``since``),
    people ``trend_hours`` earlier and the trend (``growing``/``shrinking``/``stable``),
    ranked by people affected, most first. Network ``"all"`` counts places where no
    network serves. Without stored areas, the whole event is one area (its name).
    """
    ev = store.get_event(event)
    win = pd.Timedelta(ev.window)
    windows = store.event_windows(ev.id)
    done = windows.loc[~windows["dirty"], "window_start"]
    if done.empty:
        return pd.DataFrame(columns=list(GAP_COLUMNS))
    if at is not None:
        at_ts = pd.Timestamp(at)
        at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
        latest = at_ts.floor(win)
    else:
        latest = done.max()
    before = latest - pd.Timedelta(hours=trend_hours)
    areas = store.areas(ev.id)
    if areas is None:
        outline = shapely.box(-180, -90, 180, 90)
        areas = gpd.GeoDataFrame(
            {"area_id": [ev.name], "name": [ev.name]}, geometry=[outline], crs=CRS
        )
    areas = areas.reset_index(drop=True)
    population = store.population(ev.id)
    outages = store.outages(ev.id, windows=[latest, before])
    # Planners act on confirmed outages; suspected ones are on the map and in the layers.
    outages = outages[~suspected_outages(outages)]
    now_rows = _people_per_area(outages[outages["window_start"] == latest], areas, population)
    if now_rows.empty:
        return pd.DataFrame(columns=list(GAP_COLUMNS))
    then_rows = _people_per_area(outages[outages["window_start"] == before], areas, population)
    report = now_rows.merge(
        then_rows[["area_id", "network", "people"]].rename(columns={"people": "people_before"}),
        on=["area_id", "network"],
        how="left",
    )
    report["people_before"] = report["people_before"].fillna(0.0)
    delta = report["people"] - report["people_before"]
    moved = delta.abs() > np.maximum(TREND_SHARE * report["people_before"], 10.0)
    report["trend"] = np.where(moved, np.where(delta > 0, "growing", "shrinking"), "stable")
    report["cells_offline"] = _cells_offline(store, ev, latest, areas, report)
    names = dict(zip(areas["area_id"], areas.get("name", areas["area_id"]), strict=True))
    report["area_name"] = report["area_id"].map(names)
    report["area_km2"] = report["area_km2"].round(3)
    report["people"] = report["people"].round(1)
    report["since"] = pd.to_datetime(report["since"], utc=True)
    report = report.sort_values(["people", "area_km2"], ascending=False, ignore_index=True)
    return report[list(GAP_COLUMNS)]


def gap_window(
    store: Store, event: str | int, *, at: pd.Timestamp | None = None
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Start and end of the window :func:`gap_report` reports (the one holding ``at``, or
    the latest computed); None before any window is computed."""
    ev = store.get_event(event)
    win = pd.Timedelta(ev.window)
    windows = store.event_windows(ev.id)
    done = windows.loc[~windows["dirty"], "window_start"]
    if done.empty:
        return None
    if at is None:
        start = pd.Timestamp(done.max())
    else:
        at_ts = pd.Timestamp(at)
        at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
        start = at_ts.floor(win)
    return start, start + win


def gap_document(
    store: Store,
    event: str | int,
    *,
    fmt: str = "html",
    at: pd.Timestamp | None = None,
    generated: pd.Timestamp | None = None,
) -> bytes:
    """The gap report for planners as an HTML page or a PDF (``fmt`` ``html`` | ``pdf``):
    :func:`gap_report`'s ranked table and :func:`gap_history`'s chart up to its window."""
    from dcm.publish.report import gap_report_pdf, render_gap_report

    ev = store.get_event(event)
    window = gap_window(store, ev.id, at=at)
    report = gap_report(store, ev.id, at=at)
    history = gap_history(store, ev.id, until=None if window is None else window[0])
    args = {
        "event": ev.name,
        "window": window,
        "generated": generated if generated is not None else pd.Timestamp.now(tz="UTC"),
    }
    if fmt == "pdf":
        return gap_report_pdf(report, history, **args)
    if fmt != "html":
        raise ParameterError(f"unknown report format {fmt!r} (use html or pdf)")
    return render_gap_report(report, history, **args).encode("utf-8")


def gap_history(
    store: Store, event: str | int, *, until: pd.Timestamp | None = None
) -> pd.DataFrame:
    """People without service per computed window and network, for the gap report's
    chart: ``window_start``, ``network``, ``people`` (a row for every computed window up
    to ``until`` and every network with an outage; 0 where none).

    Counted as :func:`gap_report` counts them: people inside the network's confirmed
    outages or where no network serves; ``"all"``: where no network serves. Without
    population, people are NaN.
    """
    ev = store.get_event(event)
    windows = store.event_windows(ev.id)
    done = pd.DatetimeIndex(windows.loc[~windows["dirty"], "window_start"]).sort_values()
    if until is not None:
        stop = pd.Timestamp(until)
        stop = stop.tz_localize("UTC") if stop.tzinfo is None else stop.tz_convert("UTC")
        done = done[done <= stop.floor(pd.Timedelta(ev.window))]
    cols = ["window_start", "network", "people"]
    outages = store.outages(ev.id, windows=list(done)) if len(done) else None
    if outages is None or outages.empty:
        return pd.DataFrame(columns=cols)
    outages = outages[~suspected_outages(outages)]
    population = store.population(ev.id)
    nobody = (outages["network"] == ALL_NETWORKS) & (outages["severity"] == "outage")
    networks = sorted(set(outages["network"].astype(str)) - {ALL_NETWORKS})
    networks += [ALL_NETWORKS] if nobody.any() else []
    pts = None
    if population is not None and len(population):
        pts = (
            population["lon"].to_numpy("float64"),
            population["lat"].to_numpy("float64"),
            population["population"].to_numpy("float64"),
        )
    rows = []
    for window, group in outages.groupby("window_start"):  # one union per window and network
        none_here = group[
            (group["network"] == ALL_NETWORKS) & (group["severity"] == "outage")
        ].geometry.to_numpy()
        for network in networks:
            own = group[group["network"] == network].geometry.to_numpy()
            shapes = none_here if network == ALL_NETWORKS else np.concatenate([own, none_here])
            people = 0.0
            if pts is None:
                people = np.nan
            elif len(shapes):
                shape = shapely.union_all(shapes)
                people = float(pts[2][shapely.contains_xy(shape, pts[0], pts[1])].sum())
            rows.append((window, network, people))
    found = pd.DataFrame(rows, columns=cols)
    # Windows without any confirmed outage are rows of 0 people, so the chart falls to 0.
    full = pd.MultiIndex.from_product([done, networks], names=["window_start", "network"])
    found = found.set_index(["window_start", "network"]).reindex(full)
    found["people"] = found["people"].fillna(0.0 if pts is not None else np.nan)
    return found.reset_index()


def _cells_offline(
    store: Store, event: Event, window: pd.Timestamp, areas: gpd.GeoDataFrame, report: pd.DataFrame
) -> np.ndarray:
    """Offline cells of the window whose site serves each report row's area (per
    network; all networks for ``"all"``): sites' service areas from the cached baseline
    model (:func:`dcm.analysis.serving.site_service_areas`)."""
    from dcm.analysis.serving import cells_serving_areas, site_service_areas

    status = store.cell_status(event.id, windows=[window])
    status = status[status["status"] == "offline"]
    if status.empty:
        return np.zeros(len(report), dtype="int64")
    baseline = store.cached_baseline(event.id)
    service = site_service_areas(
        store.cells(event.id),
        None if baseline is None else baseline.sites,
        params=detection_params(event),
    )
    counts = cells_serving_areas(areas, status, service)
    found = counts.set_index(["area_id", "network"])["cells"]
    keys = pd.MultiIndex.from_arrays([report["area_id"], report["network"]])
    return found.reindex(keys).fillna(0).to_numpy("int64")
