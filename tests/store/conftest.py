"""Store fixtures: a fresh store on each backend, and a small outage scenario as files.

The ``store`` fixture is parametrised over SQLite (a file in tmp_path) and PostgreSQL +
PostGIS (a throw-away schema in the database named by ``DCM_TEST_POSTGRES_URL``; the
postgres variant skips when that variable is unset).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest

from dcm import live
from dcm.schema import OPENCELLID_COLUMNS
from dcm.settings import Settings
from dcm.store import Principal, Store, open_store

PG_ENV = "DCM_TEST_POSTGRES_URL"


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema},public')}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def backend_url(backend: str, folder: Path) -> Iterator[str]:
    """URL of an empty store: a SQLite file in ``folder``, or a throw-away schema in the
    PostgreSQL database of ``DCM_TEST_POSTGRES_URL`` (skips when unset)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'dcm.sqlite'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (run .ci/setup-postgres.sh and export its output)")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Database URL of an empty store on each backend."""
    with backend_url(request.param, tmp_path) as url:
        yield url


def make_settings(data_dir: Path) -> Settings:
    """Settings with the given data directory and low alert thresholds."""
    return Settings(
        data_dir=data_dir,
        secret="test-secret",
        k_anonymity=3,
        alert_min_population=0.0,
        alert_min_area_km2=0.5,
        alert_min_confidence=0.5,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def store(store_url: str, settings: Settings) -> Iterator[Store]:
    """An open, migrated, empty store on each backend."""
    with open_store(settings, url=store_url) as opened:
        yield opened


@pytest.fixture
def admin() -> Principal:
    return Principal.system()


# -- a small scenario ----------------------------------------------------------------------

START = pd.Timestamp("2021-04-09T00:00:00Z")
WEST, EAST, SOUTH, NORTH = -61.26, -61.20, 13.20, 13.26
NETWORKS = ((360, 10), (360, 50))


@dataclass
class Scenario:
    """Files of a tiny two-network scenario: network 360-10 fails in the west part of
    the box from hour ``onset``; from hour ``grow`` the outage covers the west two thirds;
    from hour ``restore`` service is back."""

    folder: Path
    start: pd.Timestamp
    cells: Path
    baseline: Path
    event: pd.DataFrame
    areas: Path
    population: Path

    def event_slice(self, first_hour: int, last_hour: int, name: str | None = None) -> Path:
        """Event measurements with first_hour <= hour < last_hour, as a CSV file."""
        hours = (self.event["timestamp"] - START) // pd.Timedelta(hours=1)
        part = self.event[(hours >= first_hour) & (hours < last_hour)]
        path = self.folder / (name or f"event_{first_hour:03d}_{last_hour:03d}.csv")
        _write_measurements(part, path)
        return path


def _write_measurements(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)


def _cells() -> pd.DataFrame:
    """One site per network every ~1.5 km, one LTE cell each (an eNB of its own: the
    ECI is eNB × 256 + sector)."""
    rows = []
    for mcc, mnc in NETWORKS:
        shift = 0.004 if mnc == 50 else 0.0
        k = 0
        for lon in np.arange(WEST + 0.007, EAST, 0.014):
            for lat in np.arange(SOUTH + 0.007, NORTH, 0.014):
                k += 1
                rows.append(
                    (
                        "LTE",
                        mcc,
                        mnc,
                        100 + mnc,
                        (1000 * mnc + k) * 256 + 1,
                        0,
                        lon + shift,
                        lat + shift,
                        1500,
                        50,
                        1,
                        1600000000,
                        1610000000,
                        -90,
                    )
                )
    return pd.DataFrame(
        rows,
        columns=list(OPENCELLID_COLUMNS),
    )


def _reports(
    rng: np.random.Generator, start: pd.Timestamp, hours: int, per_hour: int, cells: pd.DataFrame
) -> pd.DataFrame:
    n = hours * per_hour
    ts = start + pd.to_timedelta(rng.uniform(0, hours * 3600, n).round(), unit="s")
    lon = rng.uniform(WEST, EAST, n)
    lat = rng.uniform(SOUTH, NORTH, n)
    net = rng.integers(0, len(NETWORKS), n)
    frame = pd.DataFrame({"timestamp": ts, "lat": lat.round(6), "lon": lon.round(6)})
    frame["mcc"] = [NETWORKS[i][0] for i in net]
    frame["mnc"] = [NETWORKS[i][1] for i in net]
    frame["radio"] = "LTE"
    frame["status"] = "ok"
    # Serving cell: the nearest cell of the network.
    frame["area"] = 0
    frame["cell"] = 0
    for mnc in {m for _, m in NETWORKS}:
        mine = frame["mnc"].to_numpy() == mnc
        cand = cells[cells["net"] == mnc]
        d = (frame.loc[mine, "lon"].to_numpy()[:, None] - cand["lon"].to_numpy()[None, :]) ** 2 + (
            frame.loc[mine, "lat"].to_numpy()[:, None] - cand["lat"].to_numpy()[None, :]
        ) ** 2
        best = d.argmin(axis=1)
        frame.loc[mine, "area"] = cand["area"].to_numpy()[best]
        frame.loc[mine, "cell"] = cand["cell"].to_numpy()[best]
    frame["signal_dbm"] = -90.0
    frame["device"] = [f"phone-{i}" for i in rng.integers(0, 400, n)]
    return frame.sort_values("timestamp", ignore_index=True)


def build_scenario(
    folder: Path,
    *,
    hours: int = 34,
    onset: int = 8,
    grow: int = 14,
    restore: int = 22,
    per_hour: int = 500,
    baseline_days: int = 3,
) -> Scenario:
    """Write the scenario files to ``folder`` and return them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    cells = _cells()
    cells_path = folder / "cells.csv"
    cells.to_csv(cells_path, index=False)
    baseline = _reports(
        rng, START - pd.Timedelta(days=baseline_days), 24 * baseline_days, per_hour, cells
    )
    baseline["measurement_id"] = [f"b{i}" for i in range(len(baseline))]
    baseline_path = folder / "baseline.csv"
    _write_measurements(baseline, baseline_path)

    event = _reports(rng, START, hours, per_hour, cells)
    hour = ((event["timestamp"] - START) // pd.Timedelta(hours=1)).to_numpy()
    west_edge = np.where(hour >= grow, WEST + (EAST - WEST) * 2 / 3, WEST + (EAST - WEST) / 3)
    down = (
        (event["mnc"].to_numpy() == 10)
        & (event["lon"].to_numpy() < west_edge)
        & (hour >= onset)
        & (hour < restore)
    )
    event.loc[down, "status"] = "no_service"
    event.loc[down, ["area", "cell"]] = None
    event.loc[down, "signal_dbm"] = np.nan
    event["measurement_id"] = [f"e{i}" for i in range(len(event))]

    areas = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"area_id": aid, "name": name},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[w, SOUTH], [e, SOUTH], [e, NORTH], [w, NORTH], [w, SOUTH]]],
                },
            }
            for aid, name, w, e in (
                ("W", "West", WEST - 0.01, WEST + (EAST - WEST) / 2),
                ("E", "East", WEST + (EAST - WEST) / 2, EAST + 0.01),
            )
        ],
    }
    areas_path = folder / "areas.geojson"
    areas_path.write_text(json.dumps(areas))
    population_path = folder / "population.tif"
    _write_population(population_path)
    return Scenario(folder, START, cells_path, baseline_path, event, areas_path, population_path)


def _write_population(path: Path, *, pixel: float = 0.002, people: float = 20.0) -> None:
    """A GeoTIFF with ``people`` in every pixel of the box (EPSG:4326)."""
    import rasterio
    from affine import Affine

    width = round((EAST - WEST) / pixel)
    height = round((NORTH - SOUTH) / pixel)
    data = np.full((height, width), people, dtype="float32")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(pixel, 0.0, WEST, 0.0, -pixel, NORTH),
        nodata=-1.0,
    ) as dst:
        dst.write(data, 1)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The small outage scenario (files written once per session)."""
    return build_scenario(tmp_path_factory.mktemp("scenario"))


# -- a live run: the scenario fed hour by hour -----------------------------------------------

LIVE_STEP = 2  # hours per ingested slice


@dataclass
class LiveRun:
    """A store fed with the scenario in slices, and what each update did."""

    store: Store
    scenario: Scenario
    updates: list[live.UpdateSummary] = field(default_factory=list)
    windows_after: list[pd.DataFrame] = field(default_factory=list)


@pytest.fixture(scope="module", params=BACKENDS)
def live_run(
    request: pytest.FixtureRequest, scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveRun]:
    folder = tmp_path_factory.mktemp("live")
    with backend_url(request.param, folder) as url:
        store = open_store(make_settings(folder / "data"), url=url)
        admin = Principal.system()
        store.create_event("vincent", start=scenario.start, principal=admin)
        for kind, path in (
            ("cells", scenario.cells),
            ("baseline", scenario.baseline),
            ("areas", scenario.areas),
            ("population", scenario.population),
        ):
            live.ingest(store, "vincent", path, kind=kind, principal=admin)
        record = LiveRun(store, scenario)
        hours = int((scenario.event["timestamp"].max() - scenario.start) / pd.Timedelta("1h")) + 1
        for first in range(0, hours, LIVE_STEP):
            live.ingest(
                store, "vincent", scenario.event_slice(first, first + LIVE_STEP), principal=admin
            )
            now = scenario.start + pd.Timedelta(hours=first + LIVE_STEP)
            record.updates.append(live.update(store, "vincent", principal=admin, now=now))
            record.windows_after.append(store.event_windows("vincent"))
        try:
            yield record
        finally:
            store.close()


@pytest.fixture
def both_backends(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """URLs of an empty SQLite store and an empty PostgreSQL store (skips without one)."""
    with backend_url("sqlite", tmp_path) as lite, backend_url("postgres", tmp_path) as pg:
        yield lite, pg
