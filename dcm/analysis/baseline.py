"""The baseline model: what each place and network looked like before the event.

:func:`build_baseline` runs once per event on the pre-event measurements and the
cell list; :func:`dcm.analysis.detect.detect` then judges any set of event windows
against it. Every count is a group-by sum, so chunks can be counted separately and
added up (see :func:`count_baseline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcm.analysis.coverage import fallback_reach, site_positions
from dcm.analysis.evidence import reporters_bound, window_sums
from dcm.analysis.grid import cell_resolutions, disk_cells, edge_length_m, points_to_cells
from dcm.analysis.grouping import sorted_unique
from dcm.analysis.params import DetectionParams
from dcm.errors import SchemaError
from dcm.schema import MEASUREMENT_REQUIRED, validate_frame

if TYPE_CHECKING:
    from dcm.analysis.counts import BaselineCounts, CellContext

CELL_KEY = ("mcc", "net", "area", "cell")
FAIL_STATUSES = ("no_service", "failed")


@dataclass(frozen=True)
class PreparedMeasurements:
    """Measurements reduced to what counting needs (numpy arrays, one row each)."""

    ts: np.ndarray  #: int64 ns since epoch, UTC
    h3: np.ndarray  #: int64 H3 cell at the analysis resolution
    network: np.ndarray  #: int64 index into the network list, -1 when unknown
    ok: np.ndarray  #: bool, status == "ok"
    fail: np.ndarray  #: bool, status in no_service/failed
    cell: np.ndarray  #: int64 row of the cell frame, -1 when unknown
    signal_dbm: np.ndarray
    download_kbps: np.ndarray
    lon: np.ndarray  #: float64 degrees
    lat: np.ndarray  #: float64 degrees
    accuracy_m: np.ndarray  #: float64 reported position accuracy, NaN when unknown
    device: np.ndarray  #: int64 code of the (hashed) device id into ``devices``, -1 when unknown
    #: the device ids as strings, first seen first (object array)
    devices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class Baseline:
    """Pre-event model of the measurements.

    ``grid``: one row per (h3, network) seen in the baseline with columns ``h3``
    (int64), ``network`` (index into ``networks``), ``count``, ``ok_count``,
    ``fail_count``, ``rate`` (reports per hour), ``fail_share`` (smoothed share of
    failure reports), ``served`` (the network gave ok service there),
    ``signal_dbm`` and ``download_kbps`` (medians of ok reports).
    ``cell_areas``: (``cell`` row, ``h3``, ``weight``) where each cell serves; weights
    of a cell sum to 1; ``observed`` says whether it comes from sightings or from
    the nominal range. ``cell_rate``: sightings per hour of each cell.
    ``sites``: one row per site (``site_id``, ``network`` index, ``rate`` sightings
    per hour of all its cells, ``lon``/``lat`` mean position of its cells, ``reach_m``
    farthest precise sighting (NaN: none), ``range_m`` clipped OpenCelliD range,
    ``reporters`` distinct devices sighting it per day (NaN: no device ids));
    ``cell_site``: site row of each cell.
    ``site_areas``: (``site``, ``h3``, ``count``, ``share_of_hex``) where each site was
    heard; ``share_of_hex`` is its share of the network's sightings in that grid cell.
    """

    params: DetectionParams
    start: pd.Timestamp
    end: pd.Timestamp
    networks: tuple[str, ...]
    grid: pd.DataFrame
    hour_profile: np.ndarray
    cells: pd.DataFrame
    cell_areas: pd.DataFrame
    cell_rate: np.ndarray
    network_fail_share: np.ndarray
    sites: pd.DataFrame
    cell_site: np.ndarray
    site_areas: pd.DataFrame
    #: (``site``, ``h3``, ``device`` (categorical of device ids), ``n``): each phone's
    #: ok sightings of each site per grid cell, its habit there (empty: no device ids).
    habits: pd.DataFrame = field(default_factory=lambda: no_habits())
    #: Gamma shape k of hour-to-hour variation of a site's sightings (smaller = burstier).
    site_dispersion: float = 10.0
    #: Per hour of the day (at a span's end): the exponent c with which working sites'
    #: silence over ``params.prior_silence_span`` comes out as often in the baseline as
    #: ``exp(-c · silence LLR)`` says (see :func:`silence_fit`).
    silence_scale: np.ndarray = field(default_factory=lambda: np.ones(24))
    #: Per hour of the day: how many times the variance of independent sites the count
    #: of silent working sites has in the baseline (at least 1; see :func:`silence_fit`).
    silence_spread: np.ndarray = field(default_factory=lambda: np.ones(24))
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return max((self.end - self.start) / pd.Timedelta(hours=1), 1.0)

    def network_index(self, names: pd.Series) -> np.ndarray:
        """Index of each network name in ``networks`` (-1 when unknown or missing)."""
        lookup = pd.Index(self.networks)
        target = pd.Index(names.astype("string").fillna(""))
        return np.asarray(lookup.get_indexer(target), dtype="int64")


def prepare_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cell frame with one row per (mcc, net, area, cell), index 0..n-1.

    Radio is not part of the key: measurements often lack it, and OpenCelliD cell
    ids rarely repeat across radios within one area.
    """
    validate_frame(cells, {c: "int64" for c in CELL_KEY}, name="cells", required=CELL_KEY)
    out = cells.drop_duplicates(list(CELL_KEY)).reset_index(drop=True).copy()
    if "network" not in out.columns:
        out["network"] = out["mcc"].astype("string") + "-" + out["net"].astype("string")
    if "site_id" not in out.columns or out["site_id"].isna().any():
        # Without a site grouping from ingest, a cell is its own site.
        own = (
            out["network"].astype("string")
            + ":"
            + out["area"].astype("string")
            + ":"
            + out["cell"].astype("string")
        )
        site = out["site_id"] if "site_id" in out.columns else pd.Series(pd.NA, index=out.index)
        out["site_id"] = site.astype("string").fillna(own)
    return out


def prepare_measurements(
    frame: pd.DataFrame,
    *,
    cells: pd.DataFrame,
    networks: tuple[str, ...],
    resolution: int,
    cell_keys: pd.MultiIndex | None = None,
) -> PreparedMeasurements:
    """Grid cell, network index, status flags and serving cell row of each measurement.

    An ``h3`` column of cells at ``resolution`` (from a ``dcm convert`` dataset) is
    used as it is instead of computing the cells again. ``cell_keys``: the cells' keys
    (:func:`cell_index` of ``cells``) when they are looked up chunk after chunk.
    """
    validate_frame(
        frame,
        {"timestamp": "datetime64[ns, UTC]"},
        name="measurements",
        required=MEASUREMENT_REQUIRED,
    )
    n = len(frame)
    ts = frame["timestamp"].dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").view("int64")
    lat = frame["lat"].to_numpy("float64")
    lon = frame["lon"].to_numpy("float64")
    h3cells = _given_cells(frame, resolution)
    if h3cells is None:
        h3cells = points_to_cells(lat, lon, resolution)
    status = frame["status"].astype("string").str.lower()
    ok = (status == "ok").fillna(False).to_numpy(dtype=bool)
    fail = status.isin(FAIL_STATUSES).fillna(False).to_numpy(dtype=bool)
    if "network" in frame.columns:
        names = frame["network"].astype("string")
    elif {"mcc", "mnc"} <= set(frame.columns):
        names = (
            frame["mcc"].astype("Int64").astype("string")
            + "-"
            + frame["mnc"].astype("Int64").astype("string")
        )
    else:
        names = pd.Series(pd.NA, index=frame.index, dtype="string")
    network = _network_codes(names, networks)
    cell = np.full(n, -1, dtype="int64")
    if {"mcc", "mnc", "area", "cell"} <= set(frame.columns) and len(cells):
        key = cell_index(cells) if cell_keys is None else cell_keys
        have = frame[["mcc", "mnc", "area", "cell"]].notna().all(axis=1).to_numpy()
        if have.any():
            sub = frame.loc[have, ["mcc", "mnc", "area", "cell"]].astype("int64")
            cell[have] = key.get_indexer(pd.MultiIndex.from_frame(sub))

    device, devices = device_codes(frame)

    def numeric(col: str) -> np.ndarray:
        if col in frame.columns:
            return pd.to_numeric(frame[col], errors="coerce").to_numpy("float64", na_value=np.nan)
        return np.full(n, np.nan)

    return PreparedMeasurements(
        ts=ts,
        h3=h3cells,
        network=network,
        ok=ok,
        fail=fail,
        cell=cell,
        signal_dbm=numeric("signal_dbm"),
        download_kbps=numeric("download_kbps"),
        lon=lon,
        lat=lat,
        accuracy_m=numeric("accuracy_m"),
        device=device,
        devices=devices,
    )


def cell_index(cells: pd.DataFrame) -> pd.MultiIndex:
    """The (mcc, net, area, cell) key of each row of a prepared cell frame."""
    return pd.MultiIndex.from_frame(cells[list(CELL_KEY)].astype("int64"))


def _network_codes(names: pd.Series, networks: tuple[str, ...]) -> np.ndarray:
    """Index of each network name (missing: "") in ``networks``, -1 for none (Arrow's
    lookup: far faster than a pandas index of Python strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array(names, type=pa.large_string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = pc.fill_null(text, "")
    where = pc.index_in(text, value_set=pa.array(list(networks), type=pa.large_string()))
    return pc.fill_null(where, -1).to_numpy(zero_copy_only=False).astype("int64")


def device_codes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Code of each row's device id (-1: none) and the ids as strings, first seen first
    (``pd.factorize``'s codes and uniques; Arrow's dictionary encoding for text, far
    faster on Arrow-backed columns). A device column of another type (a frame given
    directly) still tells devices apart."""
    if "device" not in frame.columns:
        return np.full(len(frame), -1, dtype="int64"), np.empty(0, dtype=object)
    col = frame["device"]
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pa.array(col, from_pandas=True)
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        encoded = pc.dictionary_encode(text)
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        names = encoded.dictionary.to_numpy(zero_copy_only=False)
        return codes.astype("int64"), np.asarray(names, dtype=object)
    codes, uniques = pd.factorize(col)
    return np.asarray(codes, dtype="int64"), np.asarray(pd.Index(uniques).astype(str), dtype=object)


def _given_cells(frame: pd.DataFrame, resolution: int) -> np.ndarray | None:
    """The frame's ``h3`` column (int64 cells, as ``dcm convert`` stores them) when every
    cell is at ``resolution``; None otherwise (the cells are then computed)."""
    if "h3" not in frame.columns:
        return None
    col = frame["h3"]
    if not pd.api.types.is_integer_dtype(col.dtype) or col.isna().any():
        return None
    cells = col.to_numpy("int64")
    return cells if bool((cell_resolutions(cells) == resolution).all()) else None


def network_list(*frames: pd.DataFrame) -> tuple[str, ...]:
    """Sorted network keys ("MCC-MNC") appearing in any of the frames."""
    names: set[str] = set()
    for frame in frames:
        if "network" in frame.columns:
            names |= set(frame["network"].dropna().astype(str).unique())
    return tuple(sorted(names))


def count_baseline(prepared: PreparedMeasurements) -> pd.DataFrame:
    """Partial counts of one chunk: per (h3, network, hour of day) and per (cell, h3).

    Returns one long frame with columns ``kind`` ("grid" | "cell"), ``h3``,
    ``network``, ``hour``, ``cell``, ``count``, ``ok_count``, ``fail_count``; the
    sum of chunk results (grouped again) equals the count of the whole.
    """
    hour = (prepared.ts // 3_600_000_000_000) % 24
    grid = (
        pd.DataFrame(
            {
                "h3": prepared.h3,
                "network": prepared.network,
                "hour": hour,
                "count": 1,
                "ok_count": prepared.ok.astype("int64"),
                "fail_count": prepared.fail.astype("int64"),
            }
        )
        .groupby(["h3", "network", "hour"], as_index=False)
        .sum()
    )
    grid["kind"] = "grid"
    grid["cell"] = -1
    seen = prepared.ok & (prepared.cell >= 0)
    cell = pd.DataFrame({"cell": prepared.cell[seen], "h3": prepared.h3[seen], "count": 1})
    cell = cell.groupby(["cell", "h3"], as_index=False).sum()
    cell["kind"] = "cell"
    return (
        pd.concat([grid, cell], ignore_index=True)
        .fillna({"network": -1, "hour": -1, "ok_count": 0, "fail_count": 0})
        .astype({"network": "int64", "hour": "int64", "ok_count": "int64", "fail_count": "int64"})
    )


def build_baseline(
    baseline: pd.DataFrame,
    cells: pd.DataFrame,
    params: DetectionParams | None = None,
    *,
    networks: tuple[str, ...] | None = None,
) -> Baseline:
    """Build the baseline model from pre-event measurements and the cell list.

    ``baseline``: measurement frame (dcm.schema.MEASUREMENT_COLUMNS); ``cells``:
    cell frame (dcm.schema.CELL_COLUMNS). ``networks`` fixes the network list
    (default: every network in the measurements and cells). The frame is counted as
    one chunk (:class:`dcm.analysis.counts.BaselineCounts`) and the model built from
    the counts (:func:`baseline_from_counts`).
    """
    from dcm.analysis.counts import BaselineCounts, CellContext

    params = params or DetectionParams()
    if len(baseline) == 0:
        raise SchemaError("baseline: no measurements")
    ctx = CellContext.of(cells)
    counts = BaselineCounts.from_frame(baseline, ctx, params, networks=networks)
    return baseline_from_counts(counts, ctx, params, networks=networks)


def baseline_from_counts(
    counts: BaselineCounts,
    ctx: CellContext,
    params: DetectionParams | None = None,
    *,
    networks: tuple[str, ...] | None = None,
) -> Baseline:
    """The baseline model from the merged counts of all baseline measurements and the
    cells they were counted with (``ctx``)."""
    from dcm.analysis.counts import BaselineCounts, group_medians

    params = params or DetectionParams()
    if counts.rows == 0:
        raise SchemaError("baseline: no measurements")
    if networks is not None and networks != counts.networks:
        counts = BaselineCounts.merge_all([counts], networks=networks)
    networks = counts.networks
    cells = ctx.cells
    start = pd.Timestamp(counts.ts_min, tz="UTC").floor("h")
    end = pd.Timestamp(counts.ts_max, tz="UTC").ceil("h")
    if end <= start:
        end = start + pd.Timedelta(hours=1)
    hours = max((end - start) / pd.Timedelta(hours=1), 1.0)
    grid_h = counts.grid

    # Hour-of-day profile, pooled over all places: per-place hourly counts are far
    # too sparse, and the daily rhythm of a population is much the same everywhere.
    hours_of_day = pd.date_range(start, end, freq="h", inclusive="left").hour
    hour_exposure = np.bincount(hours_of_day, minlength=24).astype("float64")
    per_hour = np.bincount(grid_h["hour"], weights=grid_h["count"], minlength=24)
    rate_h = np.divide(per_hour, hour_exposure, out=np.zeros(24), where=hour_exposure > 0)
    mean_rate = per_hour.sum() / hours
    # Smooth over neighbouring hours; keep a floor so a quiet hour never says "nobody".
    smooth = (np.roll(rate_h, 1) + 2 * rate_h + np.roll(rate_h, -1)) / 4
    profile = np.maximum(smooth / mean_rate if mean_rate > 0 else np.ones(24), 0.05)
    profile = profile / profile.mean()

    grid = grid_h.groupby(["h3", "network"], as_index=False)[
        ["count", "ok_count", "fail_count"]
    ].sum()
    grid = grid[grid["network"] >= 0].reset_index(drop=True)
    net_fail = np.zeros(len(networks))
    tot = grid.groupby("network")[["count", "fail_count"]].sum()
    net_fail[tot.index.to_numpy()] = (tot["fail_count"] / tot["count"]).to_numpy()
    net_fail = np.maximum(net_fail, params.fail_share_floor)
    w = params.fail_share_weight
    grid["fail_share"] = np.maximum(
        (grid["fail_count"] + w * net_fail[grid["network"]]) / (grid["count"] + w),
        params.fail_share_floor,
    )
    grid["rate"] = grid["count"] / hours
    grid["served"] = grid["ok_count"] > 0
    # Medians of ok reports, exact from the value counts per (h3, network).
    for col, values in (("signal_dbm", counts.signal), ("download_kbps", counts.download)):
        med = group_medians(values).rename(columns={"median": col})
        grid = grid.merge(med, on=["h3", "network"], how="left")

    sightings = counts.sightings
    cell_areas, cell_rate = _cell_service_areas(sightings, cells, params, hours)
    sites, cell_site, site_areas = _site_service_areas(sightings, cells, networks, hours)
    _site_reach(sites, counts, cells, cell_site, params)
    sites["reporters"] = _site_reporters(counts, cell_site, len(sites), start, end)
    dispersion = _site_dispersion(counts, cell_site, sites["rate"].to_numpy(), profile, start, end)
    scale, spread = silence_fit(
        counts.site_hours,
        sites,
        profile,
        start,
        end,
        dispersion=min(dispersion, params.site_dispersion_max),
        span_hours=params.prior_silence_windows * params.window_td / pd.Timedelta(hours=1),
    )
    place = counts.place_devices
    habits = pd.DataFrame(
        {
            "site": place["site"].to_numpy("int64"),
            "h3": place["h3"].to_numpy("int64"),
            "device": pd.Categorical.from_codes(
                place["device"].to_numpy(), categories=pd.Index(counts.devices, dtype=object)
            ),
            "n": place["n"].to_numpy("int64"),
        }
    )
    return Baseline(
        params=params,
        start=start,
        end=end,
        networks=networks,
        grid=grid,
        hour_profile=profile,
        cells=cells,
        cell_areas=cell_areas,
        cell_rate=cell_rate,
        network_fail_share=net_fail,
        sites=sites,
        cell_site=cell_site,
        site_areas=site_areas,
        habits=habits,
        site_dispersion=dispersion,
        silence_scale=scale,
        silence_spread=spread,
        stats={
            "measurements": float(counts.rows),
            "hours": hours,
            "grid_cells": float(grid["h3"].nunique()),
            "cells_heard": float((cell_rate > 0).sum()),
        },
    )


def no_habits() -> pd.DataFrame:
    """An empty :attr:`Baseline.habits` (no device ids in the baseline)."""
    return pd.DataFrame(
        {
            "site": pd.Series([], dtype="int64"),
            "h3": pd.Series([], dtype="int64"),
            "device": pd.Categorical([], categories=pd.Index([], dtype=object)),
            "n": pd.Series([], dtype="int64"),
        }
    )


def _cell_service_areas(
    sightings: pd.DataFrame, cells: pd.DataFrame, params: DetectionParams, hours: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """Where each cell serves: observed sightings, else a disc of its clipped range."""
    per_cell = sightings.groupby("cell")["count"].sum()
    cell_rate = np.zeros(len(cells))
    cell_rate[per_cell.index.to_numpy()] = per_cell.to_numpy() / hours
    observed = sightings[["cell", "h3", "count"]].copy()
    observed["weight"] = observed["count"] / observed["cell"].map(per_cell)
    observed["observed"] = True
    unheard = np.flatnonzero(cell_rate == 0)
    nominal = pd.DataFrame(columns=["cell", "h3", "weight", "observed"])
    if unheard.size:
        sub = cells.iloc[unheard]
        given = pd.to_numeric(sub["range"], errors="coerce") if "range" in sub else None
        rng = (
            np.full(unheard.size, params.cell_range_min_m)
            if given is None
            else given.fillna(params.cell_range_min_m).to_numpy("float64")
        )
        rng = np.clip(rng, params.cell_range_min_m, params.cell_range_max_m)
        k = np.maximum(np.round(rng / (np.sqrt(3) * edge_length_m(params.resolution))), 0)
        centre = points_to_cells(
            sub["lat"].to_numpy("float64"), sub["lon"].to_numpy("float64"), params.resolution
        )
        valid = centre != 0
        row, h3cells = disk_cells(centre[valid], k[valid].astype("int64"))
        idx = unheard[valid][row]
        sizes = np.bincount(row, minlength=int(valid.sum()))[row]
        nominal = pd.DataFrame(
            {"cell": idx, "h3": h3cells, "weight": 1.0 / sizes, "observed": False}
        )
    areas = pd.concat(
        [observed[["cell", "h3", "weight", "observed"]], nominal], ignore_index=True
    ).astype({"cell": "int64", "h3": "int64", "weight": "float64", "observed": bool})
    return areas, cell_rate


def _site_service_areas(
    sightings: pd.DataFrame, cells: pd.DataFrame, networks: tuple[str, ...], hours: float
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Sites, the site of each cell, and where each site was heard.

    Sites fail whole (mast, power, backhaul), so their cells' sightings are pooled:
    a site is heard far more often than any one of its cells.
    """
    site_codes, site_ids = pd.factorize(cells["site_id"].astype(str))
    cell_site = np.asarray(site_codes, dtype="int64")
    net_idx = pd.Index(networks).get_indexer(pd.Index(cells["network"].astype(str)))
    sites = pd.DataFrame({"site_id": np.asarray(site_ids, dtype=object)})
    first = pd.Series(np.arange(len(cells))).groupby(cell_site).first()
    sites["network"] = net_idx[first.to_numpy()]
    per = pd.DataFrame(
        {
            "site": cell_site[sightings["cell"].to_numpy()],
            "h3": sightings["h3"].to_numpy(),
            "count": sightings["count"].to_numpy("float64"),
        }
    )
    per = per.groupby(["site", "h3"], as_index=False)[["count"]].sum()
    per["network"] = sites["network"].to_numpy()[per["site"].to_numpy()]
    hex_total = per.groupby(["h3", "network"])["count"].transform("sum")
    per["share_of_hex"] = per["count"] / hex_total
    rate = np.bincount(per["site"], weights=per["count"], minlength=len(sites)) / hours
    sites["rate"] = rate
    return sites, cell_site, per[["site", "h3", "network", "count", "share_of_hex"]]


def _site_reach(
    sites: pd.DataFrame,
    counts: BaselineCounts,
    cells: pd.DataFrame,
    cell_site: np.ndarray,
    params: DetectionParams,
) -> None:
    """Add each site's position (mean of its cells), ``reach_m`` (farthest precise
    sighting, NaN when none; counted in ``counts.reach``) and ``range_m`` (fallback:
    clipped OpenCelliD range)."""
    n_site = len(sites)
    lon, lat = site_positions(cells, cell_site, n_site)
    sites["lon"], sites["lat"] = lon, lat
    reach = counts.reach if counts.reach.size == n_site else np.full(n_site, -np.inf)
    sites["reach_m"] = np.where(np.isfinite(reach), reach, np.nan)
    sites["range_m"] = fallback_reach(cells, cell_site, n_site, params)


def _site_reporters(
    counts: BaselineCounts,
    cell_site: np.ndarray,
    n_site: int,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> np.ndarray:
    """Distinct devices that sighted each site per day, averaged over the baseline days
    (NaN where device ids are unknown).

    People, not reports, are the independent units: a site heard by two phones goes
    quiet for a day whenever they do, however many reports they usually send.
    ``counts.reporters`` holds the distinct (site, hour, device) of ok sightings; days
    start at ``start`` (a whole hour), so each hour lies in one day.
    """
    rep = counts.reporters
    out = np.full(n_site, np.nan)
    if rep.empty:
        return out
    day = (rep["hour"].to_numpy("int64") - start.value // 3_600_000_000_000) // 24
    n_days = max(int(np.ceil((end - start) / pd.Timedelta(days=1))), 1)
    site = rep["site"].to_numpy("int64")
    device = rep["device"].to_numpy("int64")
    n_dev = int(device.max()) + 1
    day = np.clip(day, 0, n_days - 1)
    # One int64 per (site, day, device): a 1-D unique (a sort) is far cheaper than rows.
    distinct = sorted_unique((site * n_days + day) * n_dev + device)
    out[:] = np.bincount(distinct // (n_days * n_dev), minlength=n_site) / n_days
    return out


def _site_dispersion(
    counts: BaselineCounts,
    cell_site: np.ndarray,
    rate: np.ndarray,
    profile: np.ndarray,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> float:
    """Pooled gamma shape k of hourly site sightings around rate × hour profile.

    Method of moments over all (site, hour) pairs: Var(x) = mu + mu² / k, so
    k = sum(mu²) / sum((x - mu)² - x). Hours of a site come and go with the few
    people near it; a Poisson model would call such lulls outages. The sightings per
    (site, hour) come from ``counts.site_hours``.
    """
    per = counts.site_hours
    if per.empty:
        return 10.0
    site = per["site"].to_numpy("int64")
    hour_ix = per["hour"].to_numpy("int64") - start.value // 3_600_000_000_000
    n_hours = int((end - start) // pd.Timedelta(hours=1))
    ok = (hour_ix >= 0) & (hour_ix < n_hours)
    counts_sh = np.bincount(
        site[ok] * n_hours + hour_ix[ok],
        weights=per["n"].to_numpy()[ok],
        minlength=len(rate) * n_hours,
    ).reshape(len(rate), n_hours)
    hours = pd.date_range(start, periods=n_hours, freq="h").hour.to_numpy()
    mu = rate[:, None] * profile[hours][None, :]
    busy = rate >= 0.5  # quiet sites say little about variance
    if not busy.any():
        return 10.0
    x, m = counts_sh[busy], mu[busy]
    excess = float(((x - m) ** 2 - x).sum())
    if excess <= 0:
        return 100.0
    return float(np.clip((m**2).sum() / excess, 0.5, 100.0))


#: Exponents tried for :func:`silence_fit` (silence judged 0.2 to 5 times as telling).
_SCALES = np.geomspace(0.2, 5.0, 97)
#: Silence LLRs are binned this finely (nats) up to _S_MAX for the fit; beyond it a
#: working site's silence is too rare to count (e^-30).
_S_STEP, _S_MAX = 0.01, 30.0


def silence_fit(
    site_hours: pd.DataFrame,
    sites: pd.DataFrame,
    profile: np.ndarray,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    dispersion: float,
    span_hours: float,
    chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Per hour of the day: how telling working sites' silence over ``span_hours`` is,
    and how much more the count of silent sites spreads than independent sites would.

    For every site heard in the baseline and every baseline hour, the silence LLR the
    detector would give a whole span of expected sightings (the smaller of the
    hour-by-hour gamma term, shape ``dispersion``, and the reporters bound) is ``s``;
    the model says a working site is that silent with probability ``e^-s``. Sites are
    burstier or steadier than that, so per hour of the day at the span's end the
    exponent ``c`` is found with ``sum e^(-c·s) = the number of silent spans`` (ones
    where the baseline is too short or nothing is silent).

    With ``q = e^(-c·s)``, the number of silent sites at one span's end would have
    variance ``sum q (1 - q)`` if sites fell silent independently. They do not (a
    quiet night quiets many at once), so the second array is, per hour of the day,
    the mean over the baseline's spans ending then of
    ``(silent - sum q)^2 / sum q (1 - q)``, at least 1: the factor by which
    :func:`dcm.analysis.prior.silent_share` widens its standard error.

    ``site_hours``: (site, hour since epoch) → n ok sightings
    (``BaselineCounts.site_hours``). The ``s`` are counted in bins of 0.01 nats per
    hour (and per span), so the fit costs a histogram.
    """
    span = round(span_hours)
    n_hours = int((end - start) // pd.Timedelta(hours=1))
    rate = sites["rate"].to_numpy("float64")
    heard = np.flatnonzero(rate > 0)
    if span < 1 or n_hours < 2 * span or heard.size == 0 or site_hours.empty:
        return np.ones(24), np.ones(24)
    reporters = sites["reporters"].to_numpy("float64")
    shape = np.where(np.isfinite(reporters), np.maximum(reporters, 0.5), np.inf)
    hours = pd.date_range(start, periods=n_hours, freq="h").hour.to_numpy()
    hour_end = hours[span - 1 :]
    n_spans = hour_end.size
    k = max(dispersion, 1e-6)
    row_of = np.full(len(rate), -1)
    row_of[heard] = np.arange(heard.size)
    site = site_hours["site"].to_numpy("int64")
    hour_ix = site_hours["hour"].to_numpy("int64") - start.value // 3_600_000_000_000
    keep = (hour_ix >= 0) & (hour_ix < n_hours) & (row_of[np.clip(site, 0, len(rate) - 1)] >= 0)
    row, hour_ix = row_of[site[keep]], hour_ix[keep]
    n = site_hours["n"].to_numpy("float64")[keep]
    n_bins = int(_S_MAX / _S_STEP)
    silent = np.zeros(n_spans)
    count = np.zeros(n_spans * n_bins)
    total = np.zeros(24 * n_bins)
    for lo in range(0, heard.size, chunk):
        hi = min(lo + chunk, heard.size)
        mine = (row >= lo) & (row < hi)
        x = np.bincount(
            (row[mine] - lo) * n_hours + hour_ix[mine],
            weights=n[mine],
            minlength=(hi - lo) * n_hours,
        ).reshape(hi - lo, n_hours)
        silent += (window_sums(x, span)[:, span - 1 :] <= 0).sum(axis=0)
        del x
        mu = rate[heard[lo:hi], None] * profile[hours][None, :]
        hourly = window_sums(k * np.log1p(mu / k), span)[:, span - 1 :]
        s = reporters_bound(hourly, window_sums(mu, span)[:, span - 1 :], shape[heard[lo:hi], None])
        near = s < _S_MAX
        span_ix = np.broadcast_to(np.arange(n_spans)[None, :], s.shape)[near]
        b = (s[near] / _S_STEP).astype("int64")
        count += np.bincount(span_ix * n_bins + b, minlength=n_spans * n_bins)
        total += np.bincount(hour_end[span_ix] * n_bins + b, weights=s[near], minlength=24 * n_bins)
    count = count.reshape(n_spans, n_bins)
    by_hour = np.zeros((24, n_bins))
    np.add.at(by_hour, hour_end, count)
    total = total.reshape(24, n_bins)
    silent_by_hour = np.bincount(hour_end, weights=silent, minlength=24)
    scale, spread = np.ones(24), np.ones(24)
    for h in range(24):
        used = by_hour[h] > 0
        if silent_by_hour[h] <= 0 or not used.any():
            continue
        # Σ e^(-c·s) over the bins (at each bin's mean s) falls as c rises: the c
        # where it meets the silent spans.
        mean_s = total[h, used] / by_hour[h, used]
        modelled = np.exp(-np.outer(_SCALES, mean_s)) @ by_hour[h, used]
        scale[h] = float(np.interp(-silent_by_hour[h], -modelled, _SCALES))
        # The silent count of each span ending at this hour against the model's.
        mine = hour_end == h
        q = np.exp(-scale[h] * mean_s)
        binned = count[mine][:, used]
        expect = binned @ q
        var = binned @ (q * (1.0 - q))
        ok = var > 0
        if ok.any():
            z2 = (silent[mine][ok] - expect[ok]) ** 2 / var[ok]
            spread[h] = max(float(z2.mean()), 1.0)
    return scale, spread
