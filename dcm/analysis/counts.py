"""Partial counts: the interface between reading measurements and judging them.

Every measurement the method uses is reduced, chunk by chunk, to small associative
tables (:class:`BaselineCounts`, :class:`EventCounts`): sums, maxima and distinct keys
per grid cell, network, cell, site, hour or window. Two chunks' counts ``merge`` into the
counts of both, exactly, whatever the order; :func:`dcm.analysis.baseline.build_baseline`
and :func:`dcm.analysis.detect.detect` then decide on the merged tables alone. A frame
held in memory is simply one chunk, so the in-memory, the streamed (``dcm compare`` on
large files) and the distributed (Dask) comparisons run the very same decisions on the
very same numbers.

Chunk counts hold codes into their own lists (networks, device ids); merging maps them
onto the union. Everything here is exact: medians are kept as value counts per group,
the failures that follow a window's last ok report as their timestamps (only those later
than the last ok report seen so far, so the table shrinks as chunks merge).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from dcm.analysis.baseline import (
    PreparedMeasurements,
    cell_index,
    network_list,
    prepare_cells,
    prepare_measurements,
)
from dcm.analysis.coverage import sighting_reach, site_positions
from dcm.analysis.grouping import group_frame, key_groups, match_rows, sorted_unique
from dcm.analysis.params import DetectionParams

HOUR_NS = 3_600_000_000_000
#: "No time": the timestamp of a group without any (an ok report, a row).
NO_TS = np.iinfo("int64").min

_GRID_B = {"h3": "int64", "network": "int64", "hour": "int64", "count": "int64"}
_GRID_B |= {"ok_count": "int64", "fail_count": "int64"}
_SIGHT_B = {"cell": "int64", "h3": "int64", "count": "int64"}
# The tables that grow with the rows (about one entry per ok report when devices and
# download speeds rarely repeat) are stored narrow: codes, hours since the epoch and
# counts fit 32 bits; values and H3 cells keep 64.
_VALUES = {"h3": "int64", "network": "int32", "value": "float64", "n": "int32"}
_REPORTERS = {"site": "int32", "hour": "int32", "device": "int32"}
_SITE_HOURS = {"site": "int32", "hour": "int32", "n": "int32"}
_PLACE_DEVICES = {"site": "int64", "h3": "int64", "device": "int64", "n": "int64"}
_DEV_SIGHT = {"site": "int64", "h3": "int64", "network": "int64", "w": "int64"}
_DEV_SIGHT |= {"device": "int64", "n": "int64"}
_GRID_E = {"h3": "int64", "network": "int64", "w": "int64", "n": "int64", "ok": "int64"}
_GRID_E |= {"named": "int64", "fail": "int64", "last_ok": "int64"}
_LATE = {"h3": "int64", "network": "int64", "w": "int64", "ts": "int64"}
_SIGHT_E = {"cell": "int64", "h3": "int64", "network": "int64", "w": "int64", "n": "int64"}
_SIGHT_E |= {"last": "int64", "far": "float64"}


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})


def _frame(columns: dict[str, str], **values: np.ndarray) -> pd.DataFrame:
    # copy=False: each column its own block (consolidating them copies every row).
    return pd.DataFrame({c: np.asarray(values[c], dtype=t) for c, t in columns.items()}, copy=False)


def _distinct_reporters(site: np.ndarray, hour: np.ndarray, device: np.ndarray) -> pd.DataFrame:
    """The distinct (site, hour, device) rows, sorted: packed into one int64 per row
    when their ranges allow (a 1-D sort, far cheaper in time and memory than on three
    columns)."""
    site, hour, device = (np.asarray(a, dtype="int64") for a in (site, hour, device))
    if site.size:
        h0 = int(hour.min())
        n_hour = int(hour.max()) - h0 + 1
        n_dev = int(device.max()) + 1
        n_site = int(site.max()) + 1
        if min(int(site.min()), int(device.min())) >= 0 and n_site * n_hour * n_dev < 2**62:
            key = sorted_unique((site * n_hour + (hour - h0)) * n_dev + device)
            rest, device = np.divmod(key, n_dev)
            site, hour = np.divmod(rest, n_hour)
            return _frame(_REPORTERS, site=site, hour=hour + h0, device=device)
    order, starts = key_groups([site, hour, device])
    first = order[starts]
    return _frame(_REPORTERS, site=site[first], hour=hour[first], device=device[first])


def _recode(codes: np.ndarray, old: tuple[str, ...], new: tuple[str, ...]) -> np.ndarray:
    """Network codes into ``old`` as codes into ``new`` (-1 stays -1, missing names -1)."""
    if old == new:
        return codes
    lut = np.append(pd.Index(new).get_indexer(pd.Index(old)), -1).astype("int64")
    return lut[codes]


def _extent(prep: PreparedMeasurements) -> np.ndarray:
    """[west, south, east, north] of the rows (NaN without any)."""
    if len(prep) == 0:
        return np.full(4, np.nan)
    return np.array([prep.lon.min(), prep.lat.min(), prep.lon.max(), prep.lat.max()])


def _merge_extent(parts: Iterable[tuple[int, np.ndarray]]) -> np.ndarray:
    """The extent of parts of (rows, extent): NaN coordinates spread as in a whole-frame
    min/max; parts without rows are left out."""
    held = [e for n, e in parts if n]
    if not held:
        return np.full(4, np.nan)
    stacked = np.vstack(held)
    return np.array(
        [
            stacked[:, 0].min(),
            stacked[:, 1].min(),
            stacked[:, 2].max(),
            stacked[:, 3].max(),
        ]
    )


def _ts_bounds(parts: Iterable[tuple[int, int, int]]) -> tuple[int, int]:
    """(min, max) timestamp over parts of (rows, min, max) that hold rows."""
    held = [(lo, hi) for n, lo, hi in parts if n]
    if not held:
        return NO_TS, NO_TS
    return min(lo for lo, _ in held), max(hi for _, hi in held)


@dataclass(frozen=True)
class CellContext:
    """What counting needs to know of the cells: the cell frame (as
    :func:`~dcm.analysis.baseline.prepare_cells` gives it), each cell's site row and
    each site's position."""

    cells: pd.DataFrame
    cell_site: np.ndarray
    site_lon: np.ndarray
    site_lat: np.ndarray
    #: the cells' (mcc, net, area, cell) keys, built once for every chunk's lookup
    cell_index: pd.MultiIndex | None = None

    @classmethod
    def of(cls, cells: pd.DataFrame, *, prepared: bool = False) -> CellContext:
        cells = cells if prepared else prepare_cells(cells)
        # The same site numbering as the baseline model's (factorize in cell order).
        codes, ids = pd.factorize(cells["site_id"].astype(str))
        cell_site = np.asarray(codes, dtype="int64")
        lon, lat = site_positions(cells, cell_site, len(ids))
        return cls(
            cells=cells,
            cell_site=cell_site,
            site_lon=lon,
            site_lat=lat,
            cell_index=cell_index(cells),
        )

    @property
    def n_site(self) -> int:
        return int(self.site_lon.shape[0])

    def without_cells(self) -> CellContext:
        return CellContext.of(self.cells.iloc[:0], prepared=True)


def _sightings(
    prep: PreparedMeasurements, sel: np.ndarray, ctx: CellContext, params: DetectionParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Site row, distance from the site and usability of the selected ok sightings."""
    site = ctx.cell_site[prep.cell[sel]]
    d, use = sighting_reach(
        site=site,
        lon=prep.lon[sel],
        lat=prep.lat[sel],
        accuracy_m=prep.accuracy_m[sel],
        site_lon=ctx.site_lon,
        site_lat=ctx.site_lat,
        params=params,
    )
    return site, d, use


@dataclass(frozen=True)
class BaselineCounts:
    """Partial counts of baseline measurements (see the module doc).

    ``grid``: (h3, network, hour of day) → count, ok_count, fail_count (every row;
    network -1: unknown). ``sightings``: (cell, h3) → count of ok reports naming a cell.
    ``signal``/``download``: (h3, network, value) → n, the values of ok reports (their
    medians). ``reach``: per site, the farthest usable sighting (-inf: none).
    ``reporters``: distinct (site, hour since epoch, device code into ``devices``) of ok
    sightings. ``site_hours``: (site, hour since epoch) → n ok sightings.
    ``place_devices``: (site, h3, device code into ``devices``) → n ok sightings: who
    heard each site in each grid cell, and how often (each phone's habit).
    """

    networks: tuple[str, ...]
    rows: int
    ts_min: int
    ts_max: int
    extent: np.ndarray
    grid: pd.DataFrame
    sightings: pd.DataFrame
    signal: pd.DataFrame
    download: pd.DataFrame
    reach: np.ndarray
    reporters: pd.DataFrame
    devices: np.ndarray
    site_hours: pd.DataFrame
    place_devices: pd.DataFrame

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        ctx: CellContext,
        params: DetectionParams,
        *,
        networks: tuple[str, ...] | None = None,
    ) -> BaselineCounts:
        """Counts of one chunk of measurements (``networks``: fixed list, default: those
        of the chunk and the cells)."""
        nets = networks or tuple(sorted(set(network_list(frame)) | set(network_list(ctx.cells))))
        prep = prepare_measurements(
            frame,
            cells=ctx.cells,
            networks=nets,
            resolution=params.resolution,
            cell_keys=ctx.cell_index,
        )
        hour_abs = prep.ts // HOUR_NS
        grid = group_frame(
            _frame(
                _GRID_B,
                h3=prep.h3,
                network=prep.network,
                hour=hour_abs % 24,
                count=np.ones(len(prep)),
                ok_count=prep.ok,
                fail_count=prep.fail,
            ),
            ["h3", "network", "hour"],
            ["count", "ok_count", "fail_count"],
        )
        seen = prep.ok & (prep.cell >= 0)
        sightings = group_frame(
            _frame(_SIGHT_B, cell=prep.cell[seen], h3=prep.h3[seen], count=np.ones(seen.sum())),
            ["cell", "h3"],
            ["count"],
        )
        okm = prep.ok & (prep.network >= 0)
        values = {
            name: _value_counts(prep.h3[okm], prep.network[okm], getattr(prep, col)[okm])
            for name, col in (("signal", "signal_dbm"), ("download", "download_kbps"))
        }
        site, d, use = _sightings(prep, seen, ctx, params)
        reach = np.full(ctx.n_site, -np.inf)
        np.maximum.at(reach, site[use], d[use])
        with_dev = seen & (prep.device >= 0)
        reporters = _distinct_reporters(
            ctx.cell_site[prep.cell[with_dev]],
            hour_abs[with_dev],
            prep.device[with_dev],
        )
        # Phones' habits only when the decisions read them (they cost a row per
        # distinct place and phone).
        habit = with_dev if params.takeover_by_device else with_dev & False
        place_devices = group_frame(
            _frame(
                _PLACE_DEVICES,
                site=ctx.cell_site[prep.cell[habit]],
                h3=prep.h3[habit],
                device=prep.device[habit],
                n=np.ones(int(habit.sum())),
            ),
            ["site", "h3", "device"],
            ["n"],
        )
        site_hours = group_frame(
            _frame(_SITE_HOURS, site=site, hour=hour_abs[seen], n=np.ones(site.size)),
            ["site", "hour"],
            ["n"],
        )
        return cls(
            networks=nets,
            rows=len(prep),
            ts_min=int(prep.ts.min()) if len(prep) else NO_TS,
            ts_max=int(prep.ts.max()) if len(prep) else NO_TS,
            extent=_extent(prep),
            grid=grid,
            sightings=sightings,
            signal=values["signal"],
            download=values["download"],
            reach=reach,
            reporters=reporters,
            devices=prep.devices,
            site_hours=site_hours,
            place_devices=place_devices,
        )

    @classmethod
    def merge_all(
        cls, parts: list[BaselineCounts], *, networks: tuple[str, ...] | None = None
    ) -> BaselineCounts:
        """The counts of all ``parts`` together (``networks``: the list to code networks
        by; default: the union of the parts' lists, sorted)."""
        if not parts:
            raise ValueError("no counts to merge")
        nets = networks or tuple(sorted(set().union(*(p.networks for p in parts))))
        if len(parts) == 1 and parts[0].networks == nets:
            return parts[0]

        def cat(name: str, columns: dict[str, str]) -> pd.DataFrame:
            frames = []
            for p in parts:
                f = getattr(p, name)
                if "network" in f.columns and p.networks != nets:
                    f = f.assign(network=_recode(f["network"].to_numpy(), p.networks, nets))
                frames.append(f)
            if not frames:
                return _empty(columns)
            return pd.concat(frames, ignore_index=True).astype(columns)

        devices, luts = _union_names([p.devices for p in parts])
        reporters = _distinct_reporters(
            np.concatenate([p.reporters["site"].to_numpy() for p in parts]),
            np.concatenate([p.reporters["hour"].to_numpy() for p in parts]),
            np.concatenate(
                [lut[p.reporters["device"].to_numpy()] for p, lut in zip(parts, luts, strict=True)]
            ),
        )
        place_frames = [
            p.place_devices.assign(device=lut[p.place_devices["device"].to_numpy()])
            for p, lut in zip(parts, luts, strict=True)
        ]
        lo, hi = _ts_bounds((p.rows, p.ts_min, p.ts_max) for p in parts)
        return cls(
            networks=nets,
            rows=sum(p.rows for p in parts),
            ts_min=lo,
            ts_max=hi,
            extent=_merge_extent((p.rows, p.extent) for p in parts),
            grid=group_frame(
                cat("grid", _GRID_B),
                ["h3", "network", "hour"],
                ["count", "ok_count", "fail_count"],
            ),
            sightings=group_frame(cat("sightings", _SIGHT_B), ["cell", "h3"], ["count"]),
            signal=group_frame(cat("signal", _VALUES), ["h3", "network", "value"], ["n"]),
            download=group_frame(cat("download", _VALUES), ["h3", "network", "value"], ["n"]),
            reach=np.maximum.reduce([p.reach for p in parts]),
            reporters=reporters,
            devices=np.asarray(devices, dtype=object),
            site_hours=group_frame(cat("site_hours", _SITE_HOURS), ["site", "hour"], ["n"]),
            place_devices=group_frame(
                pd.concat(place_frames, ignore_index=True)
                if place_frames
                else _empty(_PLACE_DEVICES),
                ["site", "h3", "device"],
                ["n"],
            ),
        )

    def merge(self, other: BaselineCounts) -> BaselineCounts:
        return BaselineCounts.merge_all([self, other])

    def seen_networks(self) -> tuple[str, ...]:
        """Networks of the measurements themselves (not only of the cells), sorted."""
        codes = sorted_unique(self.grid["network"].to_numpy())
        return tuple(sorted(self.networks[c] for c in codes if c >= 0))

    def without_cells(self, ctx: CellContext) -> BaselineCounts:
        """The counts as if no cell list had been given (``ctx``: without cells): nothing
        names a cell, and the networks are those of the measurements alone."""
        bare = replace(
            self,
            sightings=self.sightings.iloc[:0],
            reach=np.full(ctx.n_site, -np.inf),
            reporters=self.reporters.iloc[:0],
            site_hours=self.site_hours.iloc[:0],
            place_devices=self.place_devices.iloc[:0],
        )
        nets = self.seen_networks()
        if nets == self.networks:
            return bare
        return BaselineCounts.merge_all([bare], networks=nets)

    @property
    def nbytes(self) -> int:
        return _nbytes(self)


def _union_names(names: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct names of all lists (first seen first) and, per list, the position
    of each of its names in them: one Arrow dictionary encoding of the lists end to
    end (its dictionary is the union; far faster than object indexes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [pa.array(n, type=pa.string()) for n in names]
    encoded = pc.dictionary_encode(pa.chunked_array(arrays, type=pa.string()))
    if encoded.num_chunks:
        union = encoded.chunk(encoded.num_chunks - 1).dictionary
        codes = np.concatenate(
            [c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks]
        ).astype("int64")
    else:
        union, codes = pa.array([], type=pa.string()), np.zeros(0, "int64")
    luts = np.split(codes, np.cumsum([len(a) for a in arrays])[:-1])
    return np.asarray(union.to_numpy(zero_copy_only=False), dtype=object), luts


def _value_counts(h3: np.ndarray, network: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    """(h3, network, value) → n of the non-missing values."""
    have = ~np.isnan(value)
    return group_frame(
        _frame(
            _VALUES, h3=h3[have], network=network[have], value=value[have], n=np.ones(have.sum())
        ),
        ["h3", "network", "value"],
        ["n"],
    )


def group_medians(values: pd.DataFrame) -> pd.DataFrame:
    """Median value per (h3, network) from (h3, network, value, n) rows sorted by
    them: the middle value, or the mean of the two middle ones, as pandas gives it."""
    if values.empty:
        return pd.DataFrame(
            {"h3": pd.Series([], dtype="int64"), "network": pd.Series([], dtype="int64")}
        ).assign(median=pd.Series([], dtype="float64"))
    key = values[["h3", "network"]].to_numpy()
    start = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(axis=1)])
    n = values["n"].to_numpy("int64")
    cum = np.cumsum(n)
    total = np.add.reduceat(n, start)
    before = np.r_[0, cum[start[1:] - 1]] if start.size > 1 else np.array([0])
    v = values["value"].to_numpy("float64")
    # Positions (0-based, within the group) of the two middle values.
    lo_pos = before + (total - 1) // 2
    hi_pos = before + total // 2
    lo = v[np.searchsorted(cum, lo_pos, side="right")]
    hi = v[np.searchsorted(cum, hi_pos, side="right")]
    med = np.where(lo_pos == hi_pos, lo, (lo + hi) / 2)
    return pd.DataFrame(
        {"h3": key[start, 0], "network": key[start, 1], "median": med.astype("float64")}
    )


@dataclass(frozen=True)
class EventCounts:
    """Partial counts of event measurements per window (see the module doc).

    Windows are numbered ``(ts - phase) // window_ns`` (since the epoch). Rows outside
    the grid (h3 0) count only in ``rows``, ``ts_min``/``ts_max`` and ``extent``.
    ``grid``: (h3, network, window) → n (every row), ok, named (ok reports naming a
    cell), fail, last_ok (time of the last ok report; NO_TS: none). ``late``: (h3,
    network, window, ts) of failure reports of a known network later than the last ok
    report of their group seen so far. ``sightings``: (cell, h3, network, window) → n ok
    reports naming the cell, last (their last time), far (farthest usable one from the
    cell's site, -inf: none). ``device_sightings``: (site, h3, network, window, device
    code into ``devices``) → n of the ok reports naming a cell that carry a device id.
    Networks are coded by the baseline's list.
    """

    networks: tuple[str, ...]
    window_ns: int
    phase: int
    rows: int
    ts_min: int
    ts_max: int
    extent: np.ndarray
    grid: pd.DataFrame
    late: pd.DataFrame
    sightings: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)
    device_sightings: pd.DataFrame = field(default_factory=lambda: _empty(_DEV_SIGHT))
    devices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        ctx: CellContext,
        params: DetectionParams,
        *,
        networks: tuple[str, ...],
        phase: int = 0,
    ) -> EventCounts:
        """Counts of one chunk of event measurements, networks coded by ``networks``
        (the baseline's), windows of ``params.window`` starting at ``phase`` ns past a
        multiple of the window."""
        win_ns = int(params.window_td.value)
        prep = prepare_measurements(
            frame,
            cells=ctx.cells,
            networks=networks,
            resolution=params.resolution,
            cell_keys=ctx.cell_index,
        )
        w = (prep.ts - phase) // win_ns
        on = prep.h3 != 0
        keyed = on & (prep.network >= 0)
        named = prep.ok & (prep.cell >= 0)
        grid = _frame(
            _GRID_E,
            h3=prep.h3[on],
            network=prep.network[on],
            w=w[on],
            n=np.ones(on.sum()),
            ok=prep.ok[on] & (prep.network[on] >= 0),
            named=named[on] & (prep.network[on] >= 0),
            fail=prep.fail[on] & (prep.network[on] >= 0),
            last_ok=np.where(prep.ok[on] & (prep.network[on] >= 0), prep.ts[on], NO_TS),
        )
        grid = group_frame(grid, ["h3", "network", "w"], ["n", "ok", "named", "fail"], ("last_ok",))
        fails = keyed & prep.fail
        late = _prune_late(
            _frame(
                _LATE, h3=prep.h3[fails], network=prep.network[fails], w=w[fails], ts=prep.ts[fails]
            ),
            grid,
        )
        sel = on & named
        site, d, use = _sightings(prep, sel, ctx, params)
        sightings = group_frame(
            _frame(
                _SIGHT_E,
                cell=prep.cell[sel],
                h3=prep.h3[sel],
                network=prep.network[sel],
                w=w[sel],
                n=np.ones(site.size),
                last=prep.ts[sel],
                far=np.where(use, d, -np.inf),
            ),
            ["cell", "h3", "network", "w"],
            ["n"],
            ("last", "far"),
        )
        if not params.takeover_by_device:
            device_sightings = _empty(_DEV_SIGHT)
            dev_names = np.empty(0, dtype=object)
        else:
            mine = sel & (prep.device >= 0)
            device_sightings = group_frame(
                _frame(
                    _DEV_SIGHT,
                    site=ctx.cell_site[prep.cell[mine]],
                    h3=prep.h3[mine],
                    network=prep.network[mine],
                    w=w[mine],
                    device=prep.device[mine],
                    n=np.ones(int(mine.sum())),
                ),
                ["site", "h3", "network", "w", "device"],
                ["n"],
            )
            dev_names = prep.devices
        return cls(
            networks=networks,
            window_ns=win_ns,
            phase=phase,
            rows=len(prep),
            ts_min=int(prep.ts.min()) if len(prep) else NO_TS,
            ts_max=int(prep.ts.max()) if len(prep) else NO_TS,
            extent=_extent(prep),
            grid=grid,
            late=late,
            sightings=sightings,
            device_sightings=device_sightings,
            devices=dev_names,
        )

    @classmethod
    def merge_all(cls, parts: list[EventCounts]) -> EventCounts:
        if not parts:
            raise ValueError("no counts to merge")
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        for p in parts[1:]:
            if (p.networks, p.window_ns, p.phase) != (first.networks, first.window_ns, first.phase):
                raise ValueError("event counts of different networks or windows do not merge")
        grid = group_frame(
            pd.concat([p.grid for p in parts], ignore_index=True),
            ["h3", "network", "w"],
            ["n", "ok", "named", "fail"],
            ("last_ok",),
        )
        devices, luts = _union_names([p.devices for p in parts])
        dev_frames = [
            p.device_sightings.assign(device=lut[p.device_sightings["device"].to_numpy()])
            for p, lut in zip(parts, luts, strict=True)
        ]
        lo, hi = _ts_bounds((p.rows, p.ts_min, p.ts_max) for p in parts)
        return replace(
            first,
            rows=sum(p.rows for p in parts),
            ts_min=lo,
            ts_max=hi,
            extent=_merge_extent((p.rows, p.extent) for p in parts),
            grid=grid,
            late=_prune_late(pd.concat([p.late for p in parts], ignore_index=True), grid),
            sightings=group_frame(
                pd.concat([p.sightings for p in parts], ignore_index=True),
                ["cell", "h3", "network", "w"],
                ["n"],
                ("last", "far"),
            ),
            device_sightings=group_frame(
                pd.concat(dev_frames, ignore_index=True),
                ["site", "h3", "network", "w", "device"],
                ["n"],
            ),
            devices=np.asarray(devices, dtype=object),
        )

    def merge(self, other: EventCounts) -> EventCounts:
        return EventCounts.merge_all([self, other])

    def without_cells(self, networks: tuple[str, ...]) -> EventCounts:
        """The counts as if no cell list had been given: nothing names a cell, networks
        coded by ``networks`` (the baseline's without the cells' networks)."""
        grid = self.grid.assign(named=0)
        late = self.late
        if networks != self.networks:
            code = _recode(grid["network"].to_numpy(), self.networks, networks)
            known = code >= 0
            grid = grid.assign(
                network=code,
                ok=np.where(known, grid["ok"], 0),
                fail=np.where(known, grid["fail"], 0),
                last_ok=np.where(known, grid["last_ok"], NO_TS),
            )
            grid = group_frame(
                grid, ["h3", "network", "w"], ["n", "ok", "named", "fail"], ("last_ok",)
            )
            code = _recode(late["network"].to_numpy(), self.networks, networks)
            late = late.assign(network=code).loc[code >= 0].reset_index(drop=True)
        return replace(
            self,
            networks=networks,
            grid=grid,
            late=late,
            sightings=self.sightings.iloc[:0],
            device_sightings=self.device_sightings.iloc[:0],
        )

    def in_windows(self, first: int, n_win: int) -> WindowCounts:
        """The counts of windows ``first`` .. ``first + n_win - 1`` (numbered as in
        ``grid``), renumbered 0 .. n_win - 1, failures after the last ok report counted."""

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            w = frame["w"].to_numpy() - first
            inside = (w >= 0) & (w < n_win)
            return frame.loc[inside].assign(w=w[inside]).reset_index(drop=True)

        grid = cut(self.grid)
        late = cut(self.late)
        # Failures later than their group's last ok report, counted per group.
        at, after = _after_last_ok(late, grid)
        after &= at >= 0
        grid["fail_after"] = np.bincount(at[after], minlength=len(grid)).astype("int64")
        return WindowCounts(
            n_win=n_win,
            grid=grid,
            sightings=cut(self.sightings),
            device_sightings=cut(self.device_sightings),
            devices=self.devices,
        )

    @property
    def nbytes(self) -> int:
        return _nbytes(self)


def _prune_late(late: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Failure rows no earlier than their group's last ok report are dropped: they can
    never be "after the last ok" once more rows come in."""
    if late.empty:
        return late.reset_index(drop=True)
    _, after = _after_last_ok(late, grid)
    return late.loc[after].reset_index(drop=True)


def _after_last_ok(late: pd.DataFrame, grid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row of ``grid`` holding each failure row's (h3, network, w) group (-1: none)
    and whether the failure is later than that group's ``last_ok`` (NO_TS: none)."""
    keys = ["h3", "network", "w"]
    at = match_rows([grid[k].to_numpy() for k in keys], [late[k].to_numpy() for k in keys])
    last = grid["last_ok"].to_numpy("int64")
    last_ok = np.where(at >= 0, last[np.maximum(at, 0)] if last.size else NO_TS, NO_TS)
    return at, late["ts"].to_numpy("int64") > last_ok


@dataclass(frozen=True)
class WindowCounts:
    """Event counts of the windows judged (0 .. ``n_win`` - 1): ``grid`` as in
    :class:`EventCounts` plus ``fail_after`` (failures after the last ok report of their
    (h3, network, window)), ``sightings``, ``device_sightings`` and ``devices`` as
    there."""

    n_win: int
    grid: pd.DataFrame
    sightings: pd.DataFrame
    device_sightings: pd.DataFrame = field(default_factory=lambda: _empty(_DEV_SIGHT))
    devices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))


def _nbytes(counts: BaselineCounts | EventCounts) -> int:
    total = 0
    for value in vars(counts).values():
        if isinstance(value, pd.DataFrame):
            total += int(value.memory_usage(index=True, deep=False).sum())
        elif isinstance(value, np.ndarray):
            total += int(value.nbytes)
    return total


__all__ = [
    "NO_TS",
    "BaselineCounts",
    "CellContext",
    "EventCounts",
    "WindowCounts",
    "group_medians",
]
