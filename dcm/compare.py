"""``dcm.compare``: baseline vs. event measurements, from frames or files, to results.

``compare(...)`` reads what it is given as paths (through :mod:`dcm.ingest`), runs
the method (:mod:`dcm.analysis`) and returns a :class:`ComparisonResult`;
``write_comparison(result, out_dir)`` writes the result files (through
:mod:`dcm.publish`); ``compare_and_write(out_dir, ...)`` does both, writing the grid
rows to ``status.parquet`` as they are judged (never the whole grid in memory). The
module itself is callable, so ``dcm.compare(...)`` works both as ``from dcm.compare
import compare`` and after ``import dcm.compare``.
"""

from __future__ import annotations

import shutil
import sys
import time
import types
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from dcm import __version__
from dcm.analysis import DEFAULT_RESOLUTION, DetectionParams, detect
from dcm.analysis.baseline import baseline_from_counts, network_list
from dcm.analysis.counts import BaselineCounts, CellContext, EventCounts
from dcm.analysis.coverage import object_ids
from dcm.analysis.detect import event_windows
from dcm.analysis.impact import overlay_areas, population_points
from dcm.analysis.land import clip_to_land
from dcm.errors import Conflict, IngestError, ParameterError, SchemaError
from dcm.memory import release_freed_memory
from dcm.scan import ChunkSize, parse_memory, pieces_of, scan_local, scan_with_dask, summarise
from dcm.schema import (
    CELL_OFFLINE_SINCE,
    CRS,
    POPULATION_COLUMNS,
    suspected_outages,
    validate_frame,
)

Frame = pd.DataFrame | str | Path
Progress = Callable[[str], None]

OUTPUT_FILES = ("outages.geojson", "cells.csv", "status.parquet", "summary.json", "map.html")

#: A cell list with no cell within this distance (km) of the measurements' extent is set
#: aside: detection runs on the grid alone.
CELLS_NEAR_KM = 20.0

#: Name in ``timings_s`` of the step that runs alongside the other writers.
PARALLEL_STEP = "writing status.parquet (alongside the others)"
#: Name in ``timings_s`` of status.parquet's writing when the grid rows are written as
#: they are judged (part of the judging step's time).
WITHIN_STEP = "writing status.parquet (within the judging)"
#: Where :func:`compare_and_write` writes the grid rows until the other files are written.
PARTIAL_STATUS = ".status.parquet.partial"


@dataclass
class ComparisonResult:
    """What a comparison found.

    ``outages``: GeoDataFrame with dcm.schema.OUTAGE_COLUMNS (+ ``restored``,
    ``hexes``, ``areas``, ``hazard_level``) per outage and window; ``cells``:
    CELL_STATUS_COLUMNS intervals; ``grid``: GRID_STATUS_COLUMNS rows; ``summary``:
    JSON-ready dict; ``windows``: window starts judged.

    ``grid_path``: the Parquet file holding every grid row when :func:`compare` wrote
    them there as it judged; ``grid`` then holds only the rows the summary and the map
    read (see :class:`_GridSink`).
    """

    outages: gpd.GeoDataFrame
    cells: pd.DataFrame
    grid: pd.DataFrame
    summary: dict[str, Any]
    windows: pd.DatetimeIndex
    cell_positions: pd.DataFrame = field(default_factory=pd.DataFrame)
    areas: gpd.GeoDataFrame | None = None
    hazard: gpd.GeoDataFrame | None = None
    grid_path: Path | None = None


def compare(
    *,
    cells: Frame,
    baseline: Frame,
    event: Frame,
    window: str = "1h",
    resolution: int = DEFAULT_RESOLUTION,
    population: pd.DataFrame | str | Path | None = None,
    areas: gpd.GeoDataFrame | str | Path | None = None,
    hazard: gpd.GeoDataFrame | str | Path | None = None,
    at: str | pd.Timestamp | None = None,
    params: DetectionParams | None = None,
    progress: Progress | None = None,
    land: bool = True,
    memory_limit: int | str | None = None,
    client: Any = None,
    status: Progress | None = None,
    grid_path: str | Path | None = None,
) -> ComparisonResult:
    """Compare event measurements with the baseline; frames or paths in, results out.

    ``cells``: cell frame (dcm.schema.CELL_COLUMNS) or an OpenCelliD/MLS export path;
    ``baseline``/``event``: measurement frames or files (CSV, GeoJSON, Parquet, NDJSON)
    or dataset directories written by :func:`dcm.convert.convert`;
    ``population``: POPULATION_COLUMNS points or a raster path; ``areas``/``hazard``:
    GeoDataFrames or vector files; ``at``: judge only the window holding this time.
    ``params`` overrides the defaults; ``window``/``resolution`` override ``params``.
    ``land``: cut the outage polygons to the built-in coastline (Natural Earth 1:10m,
    :func:`clip_outages_to_land`); where it has no land, outages stay as they are.

    Measurements are never held whole: each input is read chunk by chunk and counted
    (:mod:`dcm.scan`), and the method decides on the counts. ``memory_limit`` (bytes
    or a size such as ``"2GB"``) sizes the chunks and stops the run with a
    :class:`~dcm.errors.ParameterError` when the counts alone outgrow it. ``client``: a
    ``dask.distributed.Client``; the reading and counting then run on its workers and
    only the counts come back. ``status``: called with short progress lines (rows
    counted) that replace each other.

    ``grid_path``: write the grid rows (GRID_STATUS_COLUMNS, the bytes
    :func:`write_comparison` would write as ``status.parquet``) to this Parquet file
    as they are judged, so the whole grid (16 M rows for 50 k cells and 72 windows) is
    never held; the result's ``grid`` then holds only the rows its summary and map read.
    """
    say = progress or (lambda _msg: None)
    params = (params or DetectionParams()).with_(window=window, resolution=resolution)
    timings: dict[str, float] = {}
    inputs: dict[str, Any] = {}
    rejected: dict[str, Any] = {}

    def step(name: str) -> _Timer:
        say(name)
        return _Timer(timings, name)

    limit = parse_memory(memory_limit) if isinstance(memory_limit, str) else memory_limit
    at_ts = _parse_time(at) if at is not None else None
    with step("reading inputs"):
        cells_f = _load(cells, "cells", inputs, rejected)
        inputs["baseline"] = inputs["event"] = {}  # filled as they are counted, in this order
        pop_f = _load_population(population, inputs)
        areas_f = _load_vector(areas, "areas", inputs)
        hazard_f = _load_vector(hazard, "hazard", inputs)
    ctx = CellContext.of(cells_f)
    reading = _Reading(params, ChunkSize.for_limit(limit), limit, client, say, status)
    with step("counting the baseline"):
        base_counts = reading.count(
            baseline,
            "baseline",
            partial(BaselineCounts.from_frame, ctx=ctx, params=params),
            BaselineCounts.merge_all,
            inputs,
            rejected,
        )
    networks = (
        base_counts.networks if base_counts is not None else tuple(sorted(network_list(ctx.cells)))
    )
    with step("counting the event"):
        # Windows start at multiples of the window length (phase 0), as event_windows
        # and --at floor them.
        event_counts = reading.count(
            event,
            "event",
            partial(EventCounts.from_frame, ctx=ctx, params=params, networks=networks),
            EventCounts.merge_all,
            inputs,
            rejected,
        )
    if event_counts is None or event_counts.rows == 0:
        raise ParameterError("event: no valid measurements to compare")
    extent = _both_extents(base_counts, event_counts)
    cells_f, warnings = _check_inputs(cells_f, extent, hazard_f, inputs)
    if len(cells_f) == 0 and len(ctx.cells):
        # The cell list was set aside: count as if it had never been given.
        ctx = ctx.without_cells()
        if base_counts is not None:
            base_counts = base_counts.without_cells(ctx)
            networks = base_counts.networks
        event_counts = event_counts.without_cells(networks)
    windows = event_windows(event_counts, window=params.window_td, at=at_ts)

    with step("building the baseline"):
        if base_counts is None:
            raise SchemaError("baseline: no measurements")
        model = baseline_from_counts(base_counts, ctx, params)
    del base_counts
    release_freed_memory()  # what counting freed, before the judging's large arrays
    sink = _GridSink(Path(grid_path), last=windows.max()) if grid_path is not None else None
    with step(f"judging {len(windows)} window(s)"):
        try:
            found = detect(
                model,
                event_counts,
                params=params,
                windows=windows,
                population=pop_f,
                hazard=hazard_f,
                grid_sink=sink.write if sink is not None else None,
            )
        finally:
            if sink is not None:
                sink.close()
    grid = found.grid
    if sink is not None:
        timings[WITHIN_STEP] = round(sink.seconds, 3)
        grid = sink.kept(empty=found.grid)
    outages = found.outages
    release_freed_memory()
    if land:
        with step("cutting outages to the land"):
            outages, inputs["land"] = clip_outages_to_land(outages)
    with step("overlaying areas and hazard"):
        outages = overlay_areas(outages, areas=areas_f, hazard=hazard_f)
    cell_positions = model.cells[
        ["radio", "mcc", "net", "area", "cell", "site_id", "network", "lon", "lat"]
    ].copy()
    # Intervals join the windows of one status, so an offline interval starts when the
    # cell went offline.
    cells = found.cells.assign(
        **{CELL_OFFLINE_SINCE: found.cells["start"].where(found.cells["status"].eq("offline"))}
    )
    summary = _summary(
        outages=outages,
        cells=found.cells,
        grid=grid,
        windows=found.windows,
        params=params,
        inputs=inputs,
        rejected=rejected,
        timings=timings,
        volume=found.volume,
        networks=model.networks,
        population=pop_f,
        warnings=warnings,
    )
    return ComparisonResult(
        outages=outages,
        cells=cells,
        grid=grid,
        summary=summary,
        windows=found.windows,
        cell_positions=cell_positions,
        areas=areas_f,
        hazard=hazard_f,
        grid_path=Path(grid_path) if grid_path is not None else None,
    )


#: Grid parts handed to :class:`_GridSink`'s writer thread and not yet written, at most
#: (each a window's rows, about 5 MB for 80 k rows): bounds what waiting adds to the peak.
SINK_PENDING_PARTS = 2


class _GridSink:
    """Takes :func:`~dcm.analysis.detect.detect`'s grid rows part by part: writes them
    all to a Parquet file (:class:`dcm.publish.tables.ParquetAppender`) and keeps what
    the summary and the map read: every row of the ``last`` window, the rows whose
    state is not up, and each part's first row (so every window with rows is known).

    The parts are written in order by one thread beside the judging: Arrow's
    conversion and Parquet encoding run in C++ without the GIL, so they overlap the
    judging of the next windows on a second core (the same calls on the same parts in
    the same order: the same file). At most :data:`SINK_PENDING_PARTS` parts wait;
    :meth:`write` waits for the oldest beyond them, and raises what writing it raised.
    """

    def __init__(self, path: Path, *, last: pd.Timestamp) -> None:
        from dcm.publish.tables import ParquetAppender

        self.file = ParquetAppender(path)
        self.last = last
        self.parts: list[pd.DataFrame] = []
        self.seconds = 0.0  # time the writer thread spent writing
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcm-status")
        self._pending: deque[Future[None]] = deque()

    def _write(self, part: pd.DataFrame) -> None:
        t0 = time.perf_counter()
        self.file.write(part)
        self.seconds += time.perf_counter() - t0

    def write(self, part: pd.DataFrame) -> None:
        # What is kept is read before the part is handed over (then only the writer
        # reads it).
        if len(part) and part["window_start"].iloc[0] == self.last:
            self.parts.append(part)
        else:
            keep = (part["state"] != "up").to_numpy(copy=True)
            keep[:1] = True
            self.parts.append(part[keep])
        while len(self._pending) >= SINK_PENDING_PARTS:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, part))

    def close(self) -> None:
        """Wait for the parts handed over, then write the file's end; raises the first
        error writing raised."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        t0 = time.perf_counter()
        self.file.close()
        self.seconds += time.perf_counter() - t0

    def kept(self, *, empty: pd.DataFrame) -> pd.DataFrame:
        """The kept rows in their order (``empty``, the grid's columns, without parts)."""
        return pd.concat(self.parts, ignore_index=True) if self.parts else empty


def compare_and_write(
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    **options: Any,
) -> tuple[ComparisonResult, dict[str, Path]]:
    """:func:`compare` with ``options`` and :func:`write_comparison` to ``out_dir``; the
    grid rows go to ``status.parquet`` as they are judged (through a partial file in
    ``out_dir``, removed if the run fails), so the whole grid is never held. Refuses
    (:class:`~dcm.errors.Conflict`) to replace existing files unless ``overwrite``,
    before any work."""
    out = Path(out_dir)
    check_out_dir(out, overwrite=overwrite)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL_STATUS
    try:
        result = compare(progress=progress, grid_path=partial, **options)
        paths = write_comparison(result, out, overwrite=overwrite, progress=progress)
    except BaseException:
        partial.unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    return result, paths


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """Conflict when ``out`` is a file, or holds result files and not ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise Conflict(f"{out} exists and is not a directory")
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise Conflict(f"{out} already holds {', '.join(existing)}; use --overwrite to replace")


def write_comparison(
    result: ComparisonResult,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write outages.geojson, cells.csv, status.parquet, summary.json and map.html.

    Refuses (:class:`~dcm.errors.Conflict`) to replace existing files unless
    ``overwrite``. map.html is skipped with a warning when the map renderer is absent.
    When the result's grid rows were written as they were judged (``grid_path``), that
    file becomes status.parquet (moved; ``result.grid_path`` then names it).
    """
    from dcm import publish

    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    check_out_dir(out, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    timings = dict(result.summary.get("timings_s", {}))

    def step(name: str) -> _Timer:
        say(name)
        return _Timer(timings, name)

    def write_status() -> Path:
        target = out / "status.parquet"
        if result.grid_path is not None:  # written while judging
            result.grid_path = Path(shutil.move(result.grid_path, target))
            return result.grid_path
        with _Timer(timings, PARALLEL_STEP):
            return publish.write_parquet(result.grid, target)

    # Parquet encoding runs in Arrow's C++ without the GIL: it overlaps the other
    # writers, which are mostly Python.
    with ThreadPoolExecutor(max_workers=1) as pool:
        say("writing status.parquet")
        status = pool.submit(write_status)
        outages = result.outages.drop(columns=["hexes"], errors="ignore")
        with step("writing outages.geojson"):
            paths["outages"] = publish.write_geojson(
                outages, out / "outages.geojson", id_column=None
            )
        with step("writing cells.csv"):
            paths["cells"] = publish.write_csv(result.cells, out / "cells.csv")
        paths["status"] = out / "status.parquet"
        with step("rendering map.html"):
            from dcm.publish.webmap import CELL_ATTRIBUTION, render_map

            bbox = _map_bbox(result)
            cells = _cells_for_map(result)
            html = render_map(
                outages=outages,
                cells=cells,
                grid=result.grid,  # the opening window's hexes that are not up
                areas=result.areas,
                hazard=result.hazard,
                title="dcm: mobile connectivity outages",
                orientation=orientation(bbox) if bbox is not None else None,
                attribution=CELL_ATTRIBUTION if cells is not None and len(cells) else None,
                # The files written beside the map, linked from its header.
                downloads={
                    "Outages (GeoJSON)": "outages.geojson",
                    "Cells (CSV)": "cells.csv",
                    "Summary (JSON)": "summary.json",
                },
            )
            path = out / "map.html"
            path.write_text(html, encoding="utf-8")
        paths["map"] = path
        status.result()  # re-raises what the Parquet writer raised
    summary = dict(result.summary)
    summary["timings_s"] = timings  # the writing steps too (summary.json itself excepted)
    summary["outputs"] = {k: p.name for k, p in paths.items()} | {"summary": "summary.json"}
    paths["summary"] = publish.write_json(summary, out / "summary.json")
    return paths


#: Margin (degrees) around the outages within which land is looked up.
LAND_LOOKUP_MARGIN_DEG = 0.05


def outages_bbox(
    outages: gpd.GeoDataFrame, *, margin: float = LAND_LOOKUP_MARGIN_DEG
) -> tuple[float, float, float, float] | None:
    """The outages' extent widened by ``margin`` degrees (clamped to the globe), or None."""
    if outages.empty:
        return None
    west, south, east, north = (float(v) for v in outages.total_bounds)
    if not np.isfinite([west, south, east, north]).all():
        return None
    return (
        max(west - margin, -180.0),
        max(south - margin, -90.0),
        min(east + margin, 180.0),
        min(north + margin, 90.0),
    )


def clip_outages_to_land(
    outages: gpd.GeoDataFrame,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Outage polygons cut to the built-in land (:mod:`dcm.ingest.orientation`), and what
    was done, for the summary: ``land`` found or not, features ``cut`` and ``dropped``."""
    from dcm.ingest.orientation import ATTRIBUTION, read_land

    bbox = outages_bbox(outages)
    land = read_land(bbox) if bbox is not None else None
    info: dict[str, Any] = {"source": ATTRIBUTION, "land_found": land is not None}
    if land is None:
        return outages, info | {"cut": 0, "dropped": 0}
    out = clip_to_land(outages, land)
    # Clipping hands back the very same shape object where nothing was cut.
    before = object_ids(outages.geometry.loc[out.index].to_numpy())
    changed = before != object_ids(out.geometry.to_numpy())
    return out, info | {"cut": int(changed.sum()), "dropped": len(outages) - len(out)}


#: Place names a map shows at most (the largest places first).
MAP_PLACES = 300


def orientation(bbox: tuple[float, float, float, float], *, places: int = MAP_PLACES) -> dict:
    """Land, coastline, national borders and the largest ``places`` place names in ``bbox`` as one
    GeoJSON FeatureCollection (:func:`dcm.publish.orientation.orientation_geojson`), from
    the built-in offline data (:mod:`dcm.ingest.orientation`)."""
    from dcm.ingest.orientation import ATTRIBUTION, read_borders, read_land, read_places
    from dcm.publish.orientation import orientation_geojson

    return orientation_geojson(
        read_land(bbox),
        read_borders(bbox),
        read_places(bbox, limit=places),
        attribution=ATTRIBUTION,
    )


def _map_bbox(result: ComparisonResult) -> tuple[float, float, float, float] | None:
    """What the batch map shows: outages, areas, hazard and cells, with a margin."""
    boxes = [
        f.total_bounds
        for f in (result.outages, result.areas, result.hazard)
        if f is not None and len(f)
    ]
    pos = result.cell_positions
    if not pos.empty and {"lon", "lat"} <= set(pos.columns):
        lon, lat = pos["lon"].to_numpy(dtype=float), pos["lat"].to_numpy(dtype=float)
        if np.isfinite(lon).any():
            boxes.append(np.array([np.nanmin(lon), np.nanmin(lat), np.nanmax(lon), np.nanmax(lat)]))
    boxes = [b for b in boxes if np.isfinite(b).all()]
    if not boxes:
        return None
    stacked = np.vstack(boxes)
    margin = LAND_LOOKUP_MARGIN_DEG * 2
    return (
        max(float(stacked[:, 0].min()) - margin, -180.0),
        max(float(stacked[:, 1].min()) - margin, -90.0),
        min(float(stacked[:, 2].max()) + margin, 180.0),
        min(float(stacked[:, 3].max()) + margin, 90.0),
    )


def _cells_for_map(result: ComparisonResult) -> pd.DataFrame | None:
    """Cell status intervals with positions (for the map); None without cells."""
    pos = result.cell_positions
    if pos.empty:
        return None if result.cells.empty else result.cells
    return result.cells.merge(
        pos.drop(columns=["radio", "site_id"]), on=["mcc", "net", "area", "cell"], how="left"
    )


class _Timer:
    def __init__(self, sink: dict[str, float], name: str) -> None:
        self.sink, self.name = sink, name

    def __enter__(self) -> _Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sink[self.name] = round(time.perf_counter() - self.t0, 3)


def _load(
    source: Frame,
    kind: str,
    inputs: dict[str, Any],
    rejected: dict[str, Any],
    *,
    resolution: int = DEFAULT_RESOLUTION,
    say: Progress = lambda _msg: None,
) -> pd.DataFrame:
    """A frame as given, or read through dcm.ingest with its report kept."""
    if isinstance(source, pd.DataFrame):
        inputs[kind] = {"source": "frame", "rows": len(source)}
        return source
    from dcm import ingest

    path = Path(source)
    if not path.exists():
        raise IngestError("no such file", path=str(path))
    result = ingest.read_cells(path) if kind == "cells" else ingest.read_measurements(path)
    report = result.report
    inputs[kind] = {
        "source": str(path),
        "rows": len(result.frame),
        "rows_in": report.rows_in,
        "duplicates": report.duplicates,
    }
    rejected[kind] = {"count": report.rejected_count, "reasons": report.reasons()}
    return result.frame


class _Reading:
    """How measurement inputs are read and counted: chunk sizes, memory limit, Dask
    client, progress."""

    def __init__(
        self,
        params: DetectionParams,
        size: ChunkSize,
        limit: int | None,
        client: Any,
        say: Progress,
        status: Progress | None,
    ) -> None:
        self.params, self.size, self.limit, self.client = params, size, limit, client
        self.say, self.status = say, status

    def count(
        self,
        source: Frame,
        kind: str,
        counter: Callable[[pd.DataFrame], Any],
        merge_all: Callable[[list[Any]], Any],
        inputs: dict[str, Any],
        rejected: dict[str, Any],
    ) -> Any:
        """Merged counts of one input (None without rows); its report goes to the
        summary's ``inputs`` and ``rejected_rows``."""
        pieces, info = pieces_of(source, kind, resolution=self.params.resolution)
        if "h3" in info and not info["h3"].startswith("stored"):
            self.say(f"{kind}: H3 cells {info['h3']}")
        if self.client is not None:
            counts, parts = scan_with_dask(self.client, pieces, counter, merge_all, size=self.size)
        else:
            counts, parts = scan_local(
                pieces,
                counter,
                merge_all,
                size=self.size,
                limit=self.limit,
                label=kind,
                tick=self.status,
            )
        name = str(source) if not isinstance(source, pd.DataFrame) else kind
        inputs[kind], report = summarise(info, parts, name=name)
        if report:
            rejected[kind] = report
        return counts


def _both_extents(*counts: Any) -> np.ndarray:
    """[west, south, east, north] of the measurements behind all ``counts``."""
    held = [c.extent for c in counts if c is not None and c.rows]
    stacked = np.vstack(held)
    return np.array(
        [stacked[:, 0].min(), stacked[:, 1].min(), stacked[:, 2].max(), stacked[:, 3].max()]
    )


def _load_population(
    source: pd.DataFrame | str | Path | None, inputs: dict[str, Any]
) -> pd.DataFrame | None:
    if source is None:
        return None
    if isinstance(source, pd.DataFrame):
        frame = validate_frame(source, POPULATION_COLUMNS, name="population")
        inputs["population"] = {"source": "frame", "rows": len(frame)}
        return frame
    path = Path(source)
    from dcm import ingest

    reader = getattr(ingest, "read_population", None)
    if reader is not None:
        frame = reader(path)
    else:
        import rasterio

        try:
            with rasterio.open(path) as src:
                frame = population_points(src.read(1, masked=True).filled(0), src.transform)
        except rasterio.errors.RasterioIOError as exc:
            raise IngestError(f"cannot read population raster: {exc}", path=str(path)) from exc
    inputs["population"] = {
        "source": str(path),
        "pixels": len(frame),
        "people": float(frame["population"].sum()),
    }
    return frame


def _load_vector(
    source: gpd.GeoDataFrame | str | Path | None, kind: str, inputs: dict[str, Any]
) -> gpd.GeoDataFrame | None:
    if source is None:
        return None
    if isinstance(source, gpd.GeoDataFrame):
        inputs[kind] = {"source": "frame", "features": len(source)}
        return source
    path = Path(source)
    from dcm import ingest

    reader = getattr(ingest, f"read_{kind}", None)
    if reader is not None:
        frame = reader(path)
    else:
        import pyogrio

        if not path.exists():
            raise IngestError("no such file", path=str(path))
        try:
            frame = gpd.read_file(path)
        except pyogrio.errors.DataSourceError as exc:
            raise IngestError(f"cannot read {kind}: {exc}", path=str(path)) from exc
        frame = frame.to_crs(CRS) if frame.crs else frame.set_crs(CRS)
    inputs[kind] = {"source": str(path), "features": len(frame)}
    return frame


def _check_inputs(
    cells: pd.DataFrame,
    extent: np.ndarray,
    hazard: gpd.GeoDataFrame | None,
    inputs: dict[str, Any],
) -> tuple[pd.DataFrame, list[str]]:
    """The cells to use and warnings about inputs that cannot say much about the event.

    A cell list without a cell within ``CELLS_NEAR_KM`` of the measurements' extent is
    set aside (its positions would place sites where nobody measured): detection then
    runs on the grid alone, as it does without cells. A hazard footprint that does not
    overlap the measurements' extent gets a warning. ``extent``: [west, south, east,
    north] of the baseline and event measurements together.
    """
    warnings: list[str] = []
    west, south, east, north = (float(v) for v in extent)
    extent = f"lon {west:.3f}..{east:.3f}, lat {south:.3f}..{north:.3f}"
    grid_alone = "outages come from the grid alone and no cell or site status is known"
    if cells.empty:
        warnings.append(f"cells: the cell list holds no cells; {grid_alone}")
    elif {"lon", "lat"} <= set(cells.columns):
        pad_lat = CELLS_NEAR_KM / 111.195
        widest = np.cos(np.radians(min(89.0, max(abs(south), abs(north)) + pad_lat)))
        pad_lon = pad_lat / widest
        near = (
            cells["lon"].between(west - pad_lon, east + pad_lon)
            & cells["lat"].between(south - pad_lat, north + pad_lat)
        ).to_numpy()
        inputs.setdefault("cells", {})["near_measurements"] = int(near.sum())
        if not near.any():
            warnings.append(
                f"cells: none of the {len(cells):,} cells lies within {CELLS_NEAR_KM:g} km "
                f"of the measurements ({extent}); the cell list is set aside: {grid_alone}"
            )
            cells = cells.iloc[:0]
    if hazard is not None and len(hazard):
        import shapely

        box = shapely.box(west, south, east, north)
        if not hazard.geometry.intersects(box).any():
            hw, hs, he, hn = hazard.total_bounds
            warnings.append(
                f"hazard: the footprint (lon {hw:.3f}..{he:.3f}, lat {hs:.3f}..{hn:.3f}) "
                f"does not overlap the measurements ({extent}); no outage can lie in it"
            )
    return cells, warnings


def _parse_time(value: str | pd.Timestamp) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"--at: cannot read {value!r} as a time (ISO 8601)") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _summary(
    *,
    outages: gpd.GeoDataFrame,
    cells: pd.DataFrame,
    grid: pd.DataFrame,
    windows: pd.DatetimeIndex,
    params: DetectionParams,
    inputs: dict[str, Any],
    rejected: dict[str, Any],
    timings: dict[str, float],
    volume: pd.Series,
    networks: tuple[str, ...],
    population: pd.DataFrame | None,
    warnings: list[str],
) -> dict[str, Any]:
    """JSON-ready summary: inputs, parameters, counts, rejected rows, warnings about the
    inputs, timings, version."""
    last = windows.max()
    # Counts are of confirmed outages; suspected ones are counted beside them.
    suspected = suspected_outages(outages)
    doubtful = outages[suspected]
    outages = outages[~suspected]
    latest = outages[outages["window_start"] == last]
    per_network: dict[str, Any] = {}
    for net in [*networks, "all"]:
        sel = outages[outages["network"] == net]
        now = latest[latest["network"] == net]
        maybe = doubtful[(doubtful["network"] == net) & (doubtful["window_start"] == last)]
        entry: dict[str, Any] = {
            "outages_total": int(sel["outage_id"].nunique()),
            "outages_latest": len(now),
            "area_km2_latest": round(float(now["area_km2"].sum()), 3),
            "cells_offline_latest": int(now["cells_offline"].sum()),
            "suspected_latest": len(maybe),
        }
        if population is not None:
            entry["people_latest"] = round(float(now["population"].sum()), 1)
            entry["people_suspected_latest"] = round(float(maybe["population"].sum()), 1)
            peak = sel.groupby("window_start")["population"].sum()
            entry["people_peak"] = round(float(peak.max()), 1) if len(peak) else 0.0
        if net == "all" and len(now):
            entry["by_severity_latest"] = {
                str(k): int(v) for k, v in now.groupby("severity").size().items()
            }
        if net == "all" and population is not None:
            # No service on any network, and degraded (some networks down): apart.
            for severity, key in (("outage", "no_service"), ("degraded", "degraded")):
                part = now[now["severity"] == severity]
                entry[f"people_{key}_latest"] = round(float(part["population"].sum()), 1)
        per_network[net] = entry
    cells_last = cells[cells["end"] == cells["end"].max()] if len(cells) else cells
    offline_last = cells_last[cells_last["status"] == "offline"]
    states = grid[grid["window_start"] == last].groupby(["network", "state"]).size()
    return {
        "software": {"name": "dcm", "version": __version__},
        "created": pd.Timestamp.now(tz="UTC").isoformat().replace("+00:00", "Z"),
        "inputs": inputs,
        "parameters": params.as_dict(),
        "rejected_rows": rejected,
        "windows": {
            "count": len(windows),
            "first_start": windows.min(),
            "last_end": windows.max() + params.window_td,
        },
        "counts": {
            "outage_features": len(outages) + len(doubtful),
            "outages": int(outages["outage_id"].nunique()),
            "suspected_features": len(doubtful),
            "per_network": per_network,
            "cells_latest": {
                str(k): int(v) for k, v in cells_last.groupby("status").size().items()
            },
            # Sites with a cell still offline at the end of the data: no all clear
            # while there are any, outage polygon or not.
            "sites_offline_latest": int(offline_last["site_id"].nunique()),
            "grid_latest": {
                f"{net}:{state}": int(n)
                for net, state, n in states.reset_index().itertuples(index=False)
            },
        },
        "volume_factor": {
            "median": float(np.median(volume)) if len(volume) else None,
            "min": float(volume.min()) if len(volume) else None,
            "max": float(volume.max()) if len(volume) else None,
        },
        "warnings": warnings,
        "timings_s": timings,
    }


class _CallableModule(types.ModuleType):
    """Lets ``dcm.compare(...)`` call :func:`compare` once the module is imported."""

    def __call__(self, *args: Any, **kwargs: Any) -> ComparisonResult:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
