"""Update runs and their results: outages, cell and grid status, coverage, baseline cache."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import shapely

from dcm.errors import NotFound
from dcm.schema import (
    CELL_OFFLINE_SINCE,
    CELL_STATUS_COLUMNS,
    CRS,
    GRID_STATUS_COLUMNS,
    OUTAGE_COLUMNS,
    UTC_TS,
    empty_frame,
    with_outage_tiers,
)
from dcm.store._db import (
    fid_times,
    frame_records,
    frame_rows,
    placeholders,
    to_ts,
    to_utc,
    ts_column,
    ts_text,
)
from dcm.store.models import CELL_STATUS_STORED, Run
from dcm.store.repositories.base import (
    _KEY_CHUNK,
    Repository,
    _bounds,
    _empty_outages,
    _json,
    _now,
    _typed,
    geometry_columns,
)

if TYPE_CHECKING:
    from dcm.analysis.baseline import Baseline


class ResultRepository(Repository):
    """Runs of ``dcm update`` and the results they save, window by window."""

    # -- runs and results ------------------------------------------------------------------
    _RUN_SQL = "SELECT id, event_id, started_at, finished_at, windows, status, info FROM runs"

    def _run(self, run_id: int) -> Run:
        row = self.db.one(f"{self._RUN_SQL} WHERE id = :id", {"id": int(run_id)})
        if row is None:
            raise NotFound(f"no run {run_id}")
        return Run(
            id=int(row[0]),
            event_id=int(row[1]),
            started_at=to_ts(row[2]),  # type: ignore[arg-type]
            finished_at=to_ts(row[3]),
            windows=int(row[4]),
            status=row[5],
            info=json.loads(row[6]) if row[6] else {},
        )

    def start_run(self, event: str | int, *, info: dict[str, Any] | None = None) -> Run:
        run_id = self.db.scalar(
            "INSERT INTO runs (event_id, started_at, info) VALUES (:event, :started, :info) "
            "RETURNING id",
            {"event": self.event_id(event), "started": ts_text(_now()), "info": _json(info or {})},
        )
        return self._run(int(run_id))

    def finish_run(
        self,
        run_id: int,
        *,
        status: str = "ok",
        windows: int = 0,
        info: dict[str, Any] | None = None,
    ) -> Run:
        merged = self._run(run_id).info | (info or {})
        self.db.execute(
            "UPDATE runs SET finished_at = :finished, status = :status, windows = :windows, "
            "info = :info WHERE id = :id",
            {
                "finished": ts_text(_now()),
                "status": status,
                "windows": int(windows),
                "info": _json(merged),
                "id": int(run_id),
            },
        )
        return self._run(run_id)

    def fail_unfinished_runs(self, event: str | int) -> int:
        """Mark runs of ``event`` that never finished (their process died; their results
        were rolled back) as failed; returns how many. Call it holding the event lock."""
        eid = self.event_id(event)
        rows = self.db.query(
            "SELECT id FROM runs WHERE event_id = :event AND finished_at IS NULL",
            {"event": eid},
        )
        for (run_id,) in rows:  # rare: one per update that died
            self.finish_run(int(run_id), status="failed", info={"error": "interrupted"})
        return len(rows)

    def save_results(
        self,
        event: str | int,
        run_id: int,
        *,
        windows: pd.DatetimeIndex,
        outages: gpd.GeoDataFrame,
        cells: pd.DataFrame,
        grid: pd.DataFrame,
        marks: pd.Series | None = None,
    ) -> None:
        """Replace the results of ``windows`` (starts) in one transaction, mark them clean.

        ``outages`` follows OUTAGE_COLUMNS (+ geometry), ``cells`` CELL_STATUS_COLUMNS,
        ``grid`` GRID_STATUS_COLUMNS plus ``devices`` (distinct devices per row, used for
        k-anonymity). Rows outside ``windows`` are ignored. ``marks`` (from
        :meth:`dirty_marks`, read before computing) keeps a window dirty when new data
        marked it again since.
        """
        ev = self.get_event(event)
        starts = pd.DatetimeIndex(windows).unique().sort_values()
        if starts.tz is None:
            starts = starts.tz_localize("UTC")
        if len(starts) == 0:
            return
        length = pd.Timedelta(ev.window)
        lo, hi = starts.min(), starts.max() + length
        keys = [ts_text(s) for s in starts]
        in_outages = outages[outages["window_start"].isin(starts)] if len(outages) else outages
        in_grid = grid[grid["window_start"].isin(starts)] if len(grid) else grid
        # Cell status intervals are stored clipped to the recomputed span.
        in_cells = cells[(cells["end"] > lo) & (cells["start"] < hi)] if len(cells) else cells
        now = ts_text(_now())
        with self.db.transaction():
            for i in range(0, len(keys), _KEY_CHUNK):
                chunk = {"event": ev.id, "starts": keys[i : i + _KEY_CHUNK]}
                for table in ("outages", "grid"):
                    self.db.execute(
                        f"DELETE FROM {table} WHERE event_id = :event AND window_start IN :starts",
                        chunk,
                    )
                self.db.execute(
                    "DELETE FROM cell_status WHERE event_id = :event AND start_time IN :starts",
                    chunk,
                )
            self._write_outages(ev.id, run_id, in_outages)
            self._write_grid(ev.id, run_id, in_grid)
            self._write_cell_status(ev.id, run_id, in_cells, starts, length)
            # Without marks, a window is clean whatever happened meanwhile (-1 matches
            # any count).
            seen = (
                marks.reindex(starts).fillna(0).astype("int64").tolist()
                if marks is not None
                else [-1] * len(starts)
            )
            self.db.executemany(
                "INSERT INTO event_windows (event_id, window_start, window_end, dirty, "
                "computed_at, run_id, marks) VALUES (:event, :start, :end, 0, :now, :run, "
                ":marks) ON CONFLICT "
                "(event_id, window_start) DO UPDATE SET dirty = CASE WHEN excluded.marks "
                "IN (-1, event_windows.marks) THEN 0 ELSE event_windows.dirty END, "
                "computed_at = excluded.computed_at, run_id = excluded.run_id, "
                "marks = event_windows.marks",
                [
                    {
                        "event": ev.id,
                        "start": k,
                        "end": ts_text(s + length),
                        "now": now,
                        "run": run_id,
                        "marks": m,
                    }
                    for k, s, m in zip(keys, starts, seen, strict=True)
                ],
            )

    def _write_outages(self, eid: int, run_id: int, outages: gpd.GeoDataFrame) -> None:
        if outages is None or len(outages) == 0:
            return
        frame = pd.DataFrame(with_outage_tiers(outages).drop(columns=outages.geometry.name))
        texts, bounds = geometry_columns(outages.geometry.to_numpy())
        frame = frame.reindex(columns=list(OUTAGE_COLUMNS))
        starts = fid_times(frame["window_start"])
        frame["fid"] = [
            f"{o}@{s}" for o, s in zip(frame["outage_id"].astype(str), starts, strict=True)
        ]
        for col in ("window_start", "window_end", "onset"):
            frame[col] = ts_column(frame[col])
        frame["event_id"], frame["run_id"], frame["geojson"] = eid, run_id, texts
        frame[["minx", "miny", "maxx", "maxy"]] = bounds
        cols = [
            "event_id",
            "run_id",
            "fid",
            *OUTAGE_COLUMNS,
            "geojson",
            "minx",
            "miny",
            "maxx",
            "maxy",
        ]
        self.db.executemany(
            f"INSERT INTO outages ({', '.join(cols)}) VALUES ({placeholders(cols)})",
            frame_records(frame, cols),
        )

    def _write_grid(self, eid: int, run_id: int, grid: pd.DataFrame) -> None:
        if grid is None or len(grid) == 0:
            return
        frame = grid.reindex(columns=[*GRID_STATUS_COLUMNS, "devices"]).copy()
        frame["devices"] = frame["devices"].fillna(0).astype("int64")
        self._ensure_hexes(frame["h3"].astype(str).unique())
        frame["window_start"] = ts_column(frame["window_start"])
        frame["window_end"] = ts_column(frame["window_end"])
        frame["event_id"], frame["run_id"] = eid, run_id
        cols = ["event_id", "run_id", *GRID_STATUS_COLUMNS, "devices"]
        self.db.bulk_insert("grid", cols, frame_rows(frame, cols))

    def _ensure_hexes(self, hexes: Iterable[str]) -> None:
        """Store the polygon of each H3 cell once (shared by grid and coverage layers)."""
        import h3

        wanted = list(dict.fromkeys(hexes))
        known: set[str] = set()
        for i in range(0, len(wanted), _KEY_CHUNK):
            known.update(
                r[0]
                for r in self.db.query(
                    "SELECT h3 FROM hexes WHERE h3 IN :hexes",
                    {"hexes": wanted[i : i + _KEY_CHUNK]},
                )
            )
        missing = [h for h in wanted if h not in known]
        if not missing:
            return
        # cell_to_boundary gives (lat, lng) pairs; GeoJSON wants closed (lon, lat) rings.
        rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(h)] for h in missing]
        polygons = shapely.polygons([r + r[:1] for r in rings])
        texts, bounds = geometry_columns(polygons)
        self.db.executemany(
            "INSERT INTO hexes (h3, geojson, minx, miny, maxx, maxy) VALUES (:h3, :geojson, "
            ":minx, :miny, :maxx, :maxy) ON CONFLICT DO NOTHING",
            [
                {"h3": h, "geojson": t, **_bounds(b)}
                for h, t, b in zip(missing, texts, bounds, strict=True)
            ],
        )

    def _write_cell_status(
        self,
        eid: int,
        run_id: int,
        cells: pd.DataFrame,
        starts: pd.DatetimeIndex,
        length: pd.Timedelta,
    ) -> None:
        """Store cell status per recomputed window (intervals split at window bounds)."""
        if cells is None or len(cells) == 0:
            return
        frame = cells.reindex(columns=list(CELL_STATUS_COLUMNS)).reset_index(drop=True)
        # One row per (cell interval, window it overlaps): an interval spanning several
        # recomputed windows is split so each window can be replaced on its own later.
        win = pd.DataFrame({"w": starts})
        pairs = frame.reset_index().merge(win, how="cross")
        pairs = pairs[(pairs["start"] < pairs["w"] + length) & (pairs["end"] > pairs["w"])]
        if pairs.empty:
            return
        offline = pairs["status"].eq("offline").fillna(False).to_numpy(dtype=bool)
        pairs["offline_since"] = pairs["start"].where(offline)
        pairs["start"] = pairs["w"]
        pairs["end"] = pairs["w"] + length
        self._carry_offline_since(eid, pairs, starts, length)
        located = self.db.frame(
            "SELECT radio, mcc, net, area, cell, lon, lat, network FROM cells "
            "WHERE event_id = :event",
            {"event": eid},
        )
        keys = ["radio", "mcc", "net", "area", "cell"]
        for k in keys[1:]:
            pairs[k] = pairs[k].astype("int64")
            located[k] = located[k].astype("int64")
        pairs = pairs.merge(located.drop_duplicates(keys), on=keys, how="left")
        pairs["fid"] = [
            f"{r}-{m}-{n}-{a}-{c}@{s}"
            for r, m, n, a, c, s in zip(
                pairs["radio"],
                pairs["mcc"],
                pairs["net"],
                pairs["area"],
                pairs["cell"],
                fid_times(pairs["start"]),
                strict=True,
            )
        ]
        pairs["start_time"] = ts_column(pairs["start"])
        pairs["end_time"] = ts_column(pairs["end"])
        pairs["event_id"], pairs["run_id"] = eid, run_id
        cols = ["event_id", "run_id", *CELL_STATUS_STORED]
        pairs["offline_since"] = ts_column(pairs["offline_since"])
        self.db.bulk_insert("cell_status", cols, frame_rows(pairs, cols))

    def _carry_offline_since(
        self, eid: int, pairs: pd.DataFrame, starts: pd.DatetimeIndex, length: pd.Timedelta
    ) -> None:
        """``offline_since`` of offline rows whose interval begins at a recomputed window
        right after one not recomputed now: the stored row of that window, when the cell
        was offline there too, says since when (in place)."""
        begins = pairs["offline_since"].notna() & pairs["offline_since"].eq(pairs["w"])
        before = pairs.loc[begins, "w"] - length
        before = before[~before.isin(starts)]
        if before.empty:
            return
        keys = ["radio", "mcc", "net", "area", "cell"]
        wanted = [ts_text(w) for w in pd.DatetimeIndex(before.unique())]
        stored = self.db.frame(
            "SELECT radio, mcc, net, area, cell, start_time, "
            "coalesce(offline_since, start_time) AS since FROM cell_status "
            "WHERE event_id = :event AND status = 'offline' AND start_time IN :starts",
            {"event": eid, "starts": wanted},
        )
        if stored.empty:
            return
        stored["w"] = to_utc(stored.pop("start_time")) + length
        stored["since"] = to_utc(stored["since"])
        for k in keys[1:]:
            stored[k] = stored[k].astype("int64")
        probe = pairs.loc[before.index, [*keys, "w"]].copy()
        for k in keys[1:]:
            probe[k] = probe[k].astype("int64")
        probe["radio"] = probe["radio"].astype(object)
        stored["radio"] = stored["radio"].astype(object)
        found = probe.reset_index().merge(
            stored.drop_duplicates([*keys, "w"]), on=[*keys, "w"], how="inner"
        )
        pairs.loc[found["index"].to_numpy(), "offline_since"] = found["since"].to_numpy()

    def save_coverage(self, event: str | int, coverage: pd.DataFrame) -> None:
        """Replace the baseline coverage layer: per h3 and network ``measurements``,
        ``ok_count``, ``fail_count``, ``devices``."""
        eid = self.event_id(event)
        cols = ["event_id", "h3", "network", "measurements", "ok_count", "fail_count", "devices"]
        frame = coverage.copy()
        frame["event_id"] = eid
        with self.db.transaction():
            self.db.execute("DELETE FROM coverage WHERE event_id = :event", {"event": eid})
            if len(frame):
                self._ensure_hexes(frame["h3"].astype(str).unique())
                self.db.executemany(
                    f"INSERT INTO coverage ({', '.join(cols)}) VALUES ({placeholders(cols)})",
                    frame_records(frame, cols),
                )

    def outages(
        self, event: str | int, *, windows: Sequence[pd.Timestamp] | None = None
    ) -> gpd.GeoDataFrame:
        """Stored outage polygons (all windows, or those starting at ``windows``)."""
        where = "event_id = :event"
        params: dict[str, Any] = {"event": self.event_id(event)}
        if windows is not None:
            keys = [ts_text(w) for w in windows]
            if not keys:
                return _empty_outages()
            where += " AND window_start IN :windows"
            params["windows"] = keys
        raw = self.db.frame(
            f"SELECT {', '.join(OUTAGE_COLUMNS)}, geojson FROM outages WHERE {where} "
            "ORDER BY window_start, outage_id",
            params,
        )
        if raw.empty:
            return _empty_outages()
        for col in ("window_start", "window_end", "onset"):
            raw[col] = to_utc(raw[col])
        geometry = shapely.from_geojson(raw.pop("geojson").to_numpy())
        return gpd.GeoDataFrame(_typed(raw, OUTAGE_COLUMNS), geometry=geometry, crs=CRS)

    def cell_status(
        self, event: str | int, *, windows: Sequence[pd.Timestamp] | None = None
    ) -> pd.DataFrame:
        """Stored cell status per window (CELL_STATUS_COLUMNS + ``offline_since``, network,
        lon, lat): all windows, or those starting at ``windows``."""
        where = "event_id = :event"
        params: dict[str, Any] = {"event": self.event_id(event)}
        if windows is not None:
            keys = [ts_text(w) for w in windows]
            if keys:
                where += " AND start_time IN :windows"
                params["windows"] = keys
            else:
                where += " AND 1 = 0"
        raw = self.db.frame(
            "SELECT radio, mcc, net, area, cell, site_id, status, start_time AS start, "
            'end_time AS "end", p_offline, silence_h_needed, offline_since, network, lon, lat '
            f"FROM cell_status WHERE {where} ORDER BY start_time, id",
            params,
        )
        if raw.empty:
            return empty_frame({**CELL_STATUS_COLUMNS, CELL_OFFLINE_SINCE: UTC_TS})
        for col in ("start", "end", "offline_since"):
            raw[col] = to_utc(raw[col])
        return _typed(raw, CELL_STATUS_COLUMNS)

    def grid_status(self, event: str | int) -> pd.DataFrame:
        """Stored grid status (GRID_STATUS_COLUMNS + devices); internal, no k-anonymity."""
        raw = self.db.frame(
            f"SELECT {', '.join(GRID_STATUS_COLUMNS)}, devices FROM grid "
            "WHERE event_id = :event ORDER BY window_start, h3, network",
            {"event": self.event_id(event)},
        )
        if raw.empty:
            return empty_frame({**GRID_STATUS_COLUMNS, "devices": "int64"})
        raw["window_start"] = to_utc(raw["window_start"])
        raw["window_end"] = to_utc(raw["window_end"])
        return _typed(raw, {**GRID_STATUS_COLUMNS, "devices": "int64"})

    # -- baseline cache ------------------------------------------------------------------
    def load_baseline(self, event: str | int, key: str) -> Baseline | None:
        """The cached baseline model of ``key`` (its inputs, parameters and dcm version),
        or None when there is none or it does not parse (it is then rebuilt)."""
        from dcm.store.baselines import baseline_from_bytes

        value = self.db.scalar(
            "SELECT data FROM baselines WHERE event_id = :event AND fingerprint = :key",
            {"event": self.event_id(event), "key": key},
        )
        return None if value is None else baseline_from_bytes(bytes(value))

    def cached_baseline(self, event: str | int) -> Baseline | None:
        """The event's cached baseline model whatever its key (the last one an update
        built; None when there is none or it does not parse)."""
        from dcm.store.baselines import baseline_from_bytes

        value = self.db.scalar(
            "SELECT data FROM baselines WHERE event_id = :event ORDER BY created_at DESC LIMIT 1",
            {"event": self.event_id(event)},
        )
        return None if value is None else baseline_from_bytes(bytes(value))

    def save_baseline(self, event: str | int, key: str, model: Baseline) -> None:
        """Cache the baseline model (Parquet and JSON, see :mod:`dcm.store.baselines`);
        earlier ones of the event are dropped."""
        from dcm.store.baselines import baseline_to_bytes

        eid = self.event_id(event)
        data = baseline_to_bytes(model)
        with self.db.transaction():
            self.db.execute("DELETE FROM baselines WHERE event_id = :event", {"event": eid})
            self.db.execute(
                "INSERT INTO baselines (event_id, fingerprint, created_at, data) "
                "VALUES (:event, :key, :created, :data)",
                {"event": eid, "key": key, "created": ts_text(_now()), "data": data},
            )
