"""Writing a scenario to a folder in real-world formats, and reading its truth back."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from dcm.errors import Conflict, IngestError
from dcm.schema import MEASUREMENT_COLUMNS, OPENCELLID_COLUMNS
from dcm.simulate.grid import truth_grid
from dcm.simulate.scenarios import Scenario
from dcm.simulate.truth import SECTOR_COLUMNS, SITE_COLUMNS, TRUTH_CELL_COLUMNS, ScenarioTruth

#: Measurement CSV columns in file order (the canonical header; ``network`` is derived).
CSV_COLUMNS = tuple(c for c in MEASUREMENT_COLUMNS if c != "network")
#: Share of rows written twice (re-uploads) and of extra malformed rows.
DUPLICATE_SHARE = 0.01
MALFORMED_SHARE = 0.003

FILES = (
    "cells.csv.gz",
    "baseline.csv.gz",
    "event.csv.gz",
    "population.tif",
    "areas.geojson",
    "hazard.geojson",
    "truth_cells.csv",
    "truth_sites.csv",
    "truth_grid.parquet",
    "scenario.json",
)


def _iso(ts: pd.Series) -> pd.Series:
    """ISO 8601 UTC strings with ``Z`` (whole seconds); empty for NaT."""
    values = pd.to_datetime(ts, utc=True).dt.tz_localize(None).to_numpy("datetime64[s]")
    text = np.char.add(np.datetime_as_string(values, unit="s"), "Z").astype(object)
    text[pd.isna(ts).to_numpy()] = ""
    return pd.Series(text, index=ts.index)


def _measurement_csv(frame: pd.DataFrame, path: Path, rng: np.random.Generator) -> dict[str, int]:
    """Write measurements as canonical CSV (gzip) with duplicates and malformed rows added."""
    out = frame[list(CSV_COLUMNS)].copy()
    out["timestamp"] = _iso(frame["timestamp"])
    # Whole numbers are written without a trailing ".0", as apps write them.
    for col in ("signal_dbm", "download_kbps", "upload_kbps", "latency_ms", "accuracy_m"):
        values = out[col].to_numpy(dtype="float64")
        if np.array_equal(values[~np.isnan(values)], np.round(values[~np.isnan(values)])):
            out[col] = pd.array(
                np.where(np.isnan(values), 0, values).astype("int64"), dtype="Int64"
            )
            out.loc[np.isnan(values), col] = pd.NA
    n = len(out)
    n_dup = round(n * DUPLICATE_SHARE)
    dup = np.sort(rng.choice(n, size=min(n_dup, n), replace=False))
    out = pd.concat([out, out.iloc[dup]]).sort_index(kind="stable").reset_index(drop=True)
    text = out.to_csv(index=False, lineterminator="\n")
    lines = text.rstrip("\n").split("\n")
    header, body = lines[0], lines[1:]
    n_bad = max(1, round(n * MALFORMED_SHARE)) if n >= 100 else 0
    pos = rng.choice(len(body), size=n_bad, replace=False) if n_bad else np.array([], int)
    at = {c: i for i, c in enumerate(CSV_COLUMNS)}
    kinds = ("lat", "timestamp", "status", "truncated", "lon", "columns")
    bad_lines = []
    for j, p in enumerate(pos):
        fields = body[p].split(",")
        fields[at["measurement_id"]] = f"x{rng.integers(0, 2**40):010x}"
        kind = kinds[j % len(kinds)]
        if kind == "lat":
            fields[at["lat"]] = str(rng.choice(["95.21734", "-123.5", "abc", ""]))
        elif kind == "lon":
            fields[at["lon"]] = str(rng.choice(["200.125", "NaN", "61,2"]))
        elif kind == "timestamp":
            fields[at["timestamp"]] = str(
                rng.choice(["2021-02-30T25:61:00Z", "yesterday", "", "1617972060x"])
            )
        elif kind == "status":
            fields[at["status"]] = str(rng.choice(["maybe", "OKAY", "unknown", "1"]))
        elif kind == "columns":
            fields = fields[:5]
        line = ",".join(fields)
        if kind == "truncated":
            line = line[: max(5, len(line) // 2)]
        bad_lines.append((int(p), line))
    # Malformed rows are extra rows (copies with a fresh id), so reading the file and
    # dropping duplicates and bad rows gives back exactly the clean frame.
    for p, line in sorted(bad_lines, reverse=True):
        body.insert(p, line)
    # mtime=0 keeps the files byte-identical for a seed (committed sample data).
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9 if n < 500_000 else 6) as fh,
    ):
        fh.write((header + "\n" + "\n".join(body) + "\n").encode("utf-8"))
    return {"rows": n, "duplicates": len(dup), "malformed": n_bad, "lines": len(body)}


def _cells_csv(cells: pd.DataFrame, path: Path) -> None:
    """OpenCelliD export: header line, created/updated as Unix seconds."""
    out = cells[list(OPENCELLID_COLUMNS)].copy()
    for col in ("created", "updated"):
        out[col] = (pd.to_datetime(out[col], utc=True).astype("int64") // 10**9).astype("int64")
    out["range"] = out["range"].round().astype("int64")
    out["averageSignal"] = out["averageSignal"].round().astype("int64")
    out.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0}, lineterminator="\n")


def _truth_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    for col in ("lon", "lat"):
        if col in out:
            out[col] = out[col].round(6)
    for col in ("down_from", "up_at"):
        out[col] = _iso(out[col])
    out.to_csv(path, index=False, lineterminator="\n")


def _geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    # RFC 7946: lon/lat, no crs member, <= 7 decimals.
    gdf.to_file(
        path,
        driver="GeoJSON",
        RFC7946="YES",
        COORDINATE_PRECISION=6,
        engine="pyogrio",
    )


def write_scenario(
    scenario: Scenario, out_dir: Path, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write the scenario's files into ``out_dir``; returns file name -> path.

    Refuses (:class:`~dcm.errors.Conflict`) when ``out_dir`` already holds files,
    unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise Conflict(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise Conflict(f"{out_dir} is not empty; use --overwrite to replace it")
        for name in FILES:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in FILES}
    # File noise has its own stream so that writing never changes the frames.
    rng = np.random.default_rng([scenario.seed, 7])

    _cells_csv(scenario.cells, paths["cells.csv.gz"])
    written = {
        "baseline": _measurement_csv(scenario.baseline, paths["baseline.csv.gz"], rng),
        "event": _measurement_csv(scenario.event, paths["event.csv.gz"], rng),
    }
    pop = scenario.population
    with rasterio.open(
        paths["population.tif"],
        "w",
        driver="GTiff",
        height=pop.shape[0],
        width=pop.shape[1],
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=scenario.population_transform,
        compress="deflate",
        predictor=3,
    ) as dst:
        dst.write(pop, 1)
        dst.update_tags(units="people per pixel")
    _geojson(scenario.areas, paths["areas.geojson"])
    _geojson(scenario.hazard, paths["hazard.geojson"])
    _truth_csv(scenario.truth.truth_cells, paths["truth_cells.csv"])
    _truth_csv(scenario.truth.sites, paths["truth_sites.csv"])
    grid = truth_grid(
        scenario.truth.index,
        scenario.population,
        scenario.population_transform,
        start=scenario.event_start,
        end=scenario.event_end,
    )
    grid.to_parquet(paths["truth_grid.parquet"], index=False, compression="zstd")
    meta = dict(scenario.truth.meta)
    meta["files"] = {"written": written, "truth_grid_rows": len(grid), "truth_grid_resolution": 8}
    paths["scenario.json"].write_text(json.dumps(meta, indent=2) + "\n")
    return paths


def load_truth(out_dir: Path) -> ScenarioTruth:
    """Read ``truth_sites.csv``, ``truth_cells.csv`` and ``scenario.json`` of a scenario."""
    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / "scenario.json").read_text())
        sites = pd.read_csv(
            out_dir / "truth_sites.csv",
            dtype={"cause": "string"},
            keep_default_na=False,
            na_values={"down_from": [""], "up_at": [""]},
        )
        cells = pd.read_csv(
            out_dir / "truth_cells.csv",
            dtype={"cause": "string"},
            keep_default_na=False,
            na_values={"down_from": [""], "up_at": [""]},
        )
    except FileNotFoundError as exc:
        raise IngestError(
            "not a scenario folder (missing truth files)", path=str(exc.filename)
        ) from exc
    for frame in (sites, cells):
        for col in ("down_from", "up_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").dt.as_unit("ns")
        for col in ("site_id", "network"):
            frame[col] = frame[col].astype("string")
    cells["radio"] = cells["radio"].astype("string")
    # Sector columns are there when some failures took down a single sector.
    site_columns = list(SITE_COLUMNS) + [c for c in SECTOR_COLUMNS if c in sites]
    return ScenarioTruth(
        meta=meta, sites=sites[site_columns], truth_cells=cells[list(TRUTH_CELL_COLUMNS)]
    )
