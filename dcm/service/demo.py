"""The demo: the comparison on the bundled St Vincent sample scenario, and the lines
that tell how its outages went (onset, peak, people per area, end)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

import dcm
from dcm.errors import NotFound
from dcm.schema import suspected_outages

#: Areas are compared in an equal-area projection (World Cylindrical Equal Area).
EQUAL_AREA = "EPSG:6933"

SAMPLE_FILES = (
    "cells.csv.gz",
    "baseline.csv.gz",
    "event.csv.gz",
    "population.tif",
    "areas.geojson",
    "hazard.geojson",
)


def sample_dir() -> Path:
    """The St Vincent sample folder of this checkout (raises NotFound when absent)."""
    folder = Path(dcm.__file__).resolve().parents[1] / "sample_data" / "stvincent"
    missing = [n for n in SAMPLE_FILES if not (folder / n).is_file()]
    if missing:
        raise NotFound(
            f"sample data not found: {folder} lacks {', '.join(missing)} "
            "(dcm demo needs a source checkout with sample_data/)"
        )
    return folder


def run(
    out_dir: str | Path, *, progress: Callable[..., Any] | None = None
) -> tuple[Path, Any, dict[str, Any]]:
    """Compare the St Vincent sample and write the outputs to ``out_dir`` (replaced if
    present); returns the sample folder, the :class:`dcm.compare.ComparisonResult` and
    the written paths. ``progress`` is passed to the comparison's steps."""
    from dcm.compare import compare_and_write

    folder = sample_dir()
    result, paths = compare_and_write(
        out_dir,
        overwrite=True,
        progress=progress,
        cells=folder / "cells.csv.gz",
        baseline=folder / "baseline.csv.gz",
        event=folder / "event.csv.gz",
        population=folder / "population.tif",
        areas=folder / "areas.geojson",
        hazard=folder / "hazard.geojson",
    )
    return folder, result, paths


def timeline_lines(result: Any, *, top: int = 3) -> list[str]:
    """How the outages went: onset, the peak (people per network, worst areas), the end.

    ``result``: a :class:`dcm.compare.ComparisonResult`. People at the peak come from
    the outages' ``population``; "all networks" counts each person once, those with no
    service on any network apart from those with some networks down. "Last outage
    ended" only when no site is still offline at the end of the data. Areas get the
    people of the all-network outages split by the share of each outage's area inside
    them (people are not spread evenly, so these are estimates). At most 4 lines.
    """
    from dcm.publish.webmap import peak_window, people_by_window
    from dcm.schema import ALL_NETWORKS

    outages = result.outages
    suspected = suspected_outages(outages)
    doubtful = outages[suspected]
    outages = outages[~suspected]
    if outages.empty:
        return ["no confirmed outages found", *_suspected_line(doubtful)]
    onset = pd.to_datetime(outages["onset"], utc=True).min()
    peak = peak_window(outages)
    people = people_by_window(outages).loc[peak]
    everyone = people.get(ALL_NETWORKS, people.sum())
    starts = pd.to_datetime(outages["window_start"], utc=True)
    ends = pd.to_datetime(outages["window_end"], utc=True)
    start = starts[ends == peak].min()
    at_peak = outages[(ends == peak).to_numpy() & (outages["network"] == ALL_NETWORKS).to_numpy()]
    by_severity = (
        pd.to_numeric(at_peak["population"], errors="coerce").groupby(at_peak["severity"]).sum()
    )
    if len(at_peak):
        nobody = float(by_severity.get("outage", 0.0))
        degraded = float(by_severity.get("degraded", 0.0))
        affected = (
            f"{nobody:,.0f} people with no service on any network, {degraded:,.0f} more "
            "with some networks down"
        )
    else:
        affected = f"{everyone:,.0f} people affected on one network or more"
    lines = [f"peak: {start:%Y-%m-%d %H:%M}–{peak:%H:%M} UTC, {affected}"]
    singles = [f"{net} {n:,.0f}" for net, n in people.items() if net != ALL_NETWORKS]
    if singles:
        lines.append("  at the peak per network: " + ", ".join(singles))
    worst = _areas_at(outages[(ends == peak).to_numpy()], result.areas)
    if len(worst):
        shown = ", ".join(f"{name} ≈{n:,.0f}" for name, n in worst.head(top).items())
        lines.append(f"  most affected areas at the peak: {shown} people")
    last_seen = ends.max()
    judged_end = pd.Timestamp(result.summary["windows"]["last_end"])
    judged_end = judged_end.tz_localize("UTC") if judged_end.tzinfo is None else judged_end
    sites_left = _sites_offline_at(result.cells, judged_end)
    if last_seen < judged_end and sites_left == 0:
        end = f"last outage ended {_when(last_seen)} (none seen in later windows)"
    elif last_seen < judged_end:
        # No outage area is drawn, but sites are still offline: no all clear.
        end = (
            f"no outage area after {_when(last_seen)}, but {sites_left} site(s) still "
            f"offline at the end of the data ({_when(judged_end)})"
        )
    else:
        still = outages.loc[(ends == last_seen).to_numpy(), "outage_id"].nunique()
        end = f"{still} outage(s) still open at the end of the data ({_when(last_seen)})"
    lines.append(f"outages began {_when(onset)}; {end}")
    lines += _suspected_line(doubtful)
    return lines


def _sites_offline_at(cells: pd.DataFrame, end: pd.Timestamp) -> int:
    """Sites with a cell whose offline interval lasts to ``end`` (the data's end)."""
    if cells.empty:
        return 0
    ends = pd.to_datetime(cells["end"], utc=True)
    offline = cells[(cells["status"] == "offline").to_numpy() & (ends >= end).to_numpy()]
    return int(offline["site_id"].nunique())


def _when(value: pd.Timestamp) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _areas_at(outages: gpd.GeoDataFrame, areas: gpd.GeoDataFrame | None) -> pd.Series:
    """People of the all-network outages per admin area name, largest first (estimates).

    Each outage's people are split by the share of its area inside each area
    (equal-area projection), which assumes people spread evenly within an outage.
    """
    from dcm.schema import ALL_NETWORKS

    name = next((c for c in ("name", "area_id") if areas is not None and c in areas), None)
    if areas is None or name is None or "population" not in outages or outages.empty:
        return pd.Series(dtype="float64")
    everyone = outages[(outages["network"].astype("string") == ALL_NETWORKS).to_numpy()]
    if everyone.empty:
        return pd.Series(dtype="float64")
    parts = gpd.GeoDataFrame(
        {
            "people": pd.to_numeric(everyone["population"], errors="coerce").fillna(0.0).to_numpy(),
            "whole": everyone.geometry.to_crs(EQUAL_AREA).area.to_numpy(),
        },
        geometry=everyone.geometry.to_crs(EQUAL_AREA).to_numpy(),
        crs=EQUAL_AREA,
    )
    zones = areas[[name, "geometry"]].to_crs(EQUAL_AREA)
    pieces = gpd.overlay(parts, zones, how="intersection", keep_geom_type=True)
    share = pieces["people"] * pieces.geometry.area / pieces["whole"].where(pieces["whole"] > 0)
    return share.groupby(pieces[name].to_numpy()).sum().sort_values(ascending=False)


def _suspected_line(doubtful: pd.DataFrame) -> list[str]:
    """Where the data point to outages they cannot confirm yet (at most one line)."""
    if doubtful.empty:
        return []
    from dcm.publish.webmap import peak_window, people_by_window
    from dcm.schema import ALL_NETWORKS

    peak = peak_window(doubtful)
    people = people_by_window(doubtful).loc[peak]
    everyone = people.get(ALL_NETWORKS, people.sum())
    return [
        f"suspected, not yet confirmed (data too thin): {everyone:,.0f} people at the worst "
        f"hour, ending {peak:%Y-%m-%d %H:%M} UTC"
    ]
