"""The :class:`Store`: events, datasets, measurements, results, alerts, keys, audit log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from dcm.settings import Settings
from dcm.store.access import Principal
from dcm.store.models import (
    AlertMessage,
    ApiKey,
    AuditEntry,
    Dataset,
    Event,
    FeaturePage,
    Run,
)

BBox = tuple[float, float, float, float]
Interval = tuple[pd.Timestamp | None, pd.Timestamp | None]


class Store:
    """Persistent store of one dcm installation (SQLite file or PostgreSQL + PostGIS).

    Open it with :func:`dcm.store.open_store`. Methods that change data take the acting
    :class:`Principal`, check it, and write an audit log entry. Timestamps go in and out as
    tz-aware UTC ``pd.Timestamp``; geometries as GeoJSON dicts or shapely objects in
    EPSG:4326. A store object is not shared between threads: open one per thread.
    """

    backend: str  #: ``"sqlite"`` or ``"postgresql"``
    settings: Settings

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection."""
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The number of the last migration applied."""
        raise NotImplementedError

    @property
    def data_dir(self) -> Path:
        """Where raw uploads (``raw/<sha256>``) and the secret live."""
        raise NotImplementedError

    def device_secret(self) -> str:
        """Secret used to hash device ids: ``Settings.secret``, else ``data_dir/secret``
        (generated once, mode 0600)."""
        raise NotImplementedError

    # -- events --------------------------------------------------------------------------
    def create_event(
        self,
        name: str,
        *,
        start: pd.Timestamp | str,
        end: pd.Timestamp | str | None = None,
        area: dict[str, Any] | None = None,
        description: str | None = None,
        window: str = "1h",
        principal: Principal,
    ) -> Event:
        """Create an event; :class:`~dcm.errors.Conflict` if the name exists."""
        raise NotImplementedError

    def get_event(self, event: str | int) -> Event:
        """An event by name or id; :class:`~dcm.errors.NotFound` otherwise."""
        raise NotImplementedError

    def list_events(self) -> list[Event]:
        """All events, newest start first."""
        raise NotImplementedError

    def event_windows(self, event: str | int) -> pd.DataFrame:
        """Windows of an event: ``window_start, window_end, dirty, computed_at, run_id``."""
        raise NotImplementedError

    # -- datasets and raw files ------------------------------------------------------------
    def keep_raw(self, data: bytes) -> tuple[str, Path]:
        """Write ``data`` to ``data_dir/raw/<sha256>`` (once) and return (checksum, path)."""
        raise NotImplementedError

    def find_dataset(self, event: str | int, checksum: str, kind: str) -> Dataset | None:
        """The dataset of ``event`` with this checksum and kind, if already ingested."""
        raise NotImplementedError

    def add_dataset(
        self,
        event: str | int,
        *,
        kind: str,
        source: str,
        checksum: str,
        licence: str | None,
        visibility: str,
        counts: dict[str, int],
        principal: Principal,
    ) -> Dataset:
        """Record a dataset (counts: rows_in, accepted, rejected, duplicates, added)."""
        raise NotImplementedError

    def get_dataset(self, dataset_id: int) -> Dataset:
        raise NotImplementedError

    def list_datasets(
        self, event: str | int | None = None, *, principal: Principal | None = None
    ) -> list[Dataset]:
        """Datasets (of one event), only those ``principal`` may read when given."""
        raise NotImplementedError

    def set_dataset_added(self, dataset_id: int, added: int) -> None:
        """Set how many rows of a dataset were new to the store."""
        raise NotImplementedError

    # -- data rows -----------------------------------------------------------------------
    def insert_measurements(
        self, event: str | int, dataset_id: int, frame: pd.DataFrame, *, period: str
    ) -> pd.DataFrame:
        """Insert measurement rows (MEASUREMENT_COLUMNS) of ``period`` baseline|event.

        Rows already stored for the event (same measurement_id, else same content hash)
        are skipped. Returns the rows actually added.
        """
        raise NotImplementedError

    def insert_cells(self, event: str | int, dataset_id: int, frame: pd.DataFrame) -> int:
        """Insert cells (CELL_COLUMNS); known (radio, mcc, net, area, cell) are skipped."""
        raise NotImplementedError

    def insert_population(self, event: str | int, dataset_id: int, frame: pd.DataFrame) -> int:
        """Insert population points (POPULATION_COLUMNS), replacing earlier ones."""
        raise NotImplementedError

    def insert_areas(self, event: str | int, dataset_id: int, gdf: gpd.GeoDataFrame) -> int:
        """Insert admin areas (area_id, name, geometry)."""
        raise NotImplementedError

    def insert_hazard(self, event: str | int, dataset_id: int, gdf: gpd.GeoDataFrame) -> int:
        """Insert hazard footprints (hazard_id, level, geometry)."""
        raise NotImplementedError

    def measurements(
        self,
        event: str | int,
        *,
        period: str | None = None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Stored measurements as a MEASUREMENT_COLUMNS frame (analysis input, all rows).

        ``start``/``end`` select ``start <= timestamp < end``. Internal: not filtered by
        principal, so never hand its output to an API caller.
        """
        raise NotImplementedError

    def cells(self, event: str | int) -> pd.DataFrame:
        """Stored cells as a CELL_COLUMNS frame."""
        raise NotImplementedError

    def population(self, event: str | int) -> pd.DataFrame | None:
        """Stored population points (POPULATION_COLUMNS) or None."""
        raise NotImplementedError

    def areas(self, event: str | int) -> gpd.GeoDataFrame | None:
        """Stored admin areas or None."""
        raise NotImplementedError

    def hazard(self, event: str | int) -> gpd.GeoDataFrame | None:
        """Stored hazard footprints or None."""
        raise NotImplementedError

    # -- incremental state -----------------------------------------------------------------
    def mark_dirty(self, event: str | int, windows: pd.DatetimeIndex) -> int:
        """Mark windows (by start) for recomputation; returns how many are dirty now."""
        raise NotImplementedError

    def dirty_windows(self, event: str | int) -> pd.DatetimeIndex:
        """Starts of windows waiting for recomputation, ascending."""
        raise NotImplementedError

    # -- runs and results ------------------------------------------------------------------
    def start_run(self, event: str | int, *, info: dict[str, Any] | None = None) -> Run:
        raise NotImplementedError

    def finish_run(
        self,
        run_id: int,
        *,
        status: str = "ok",
        windows: int = 0,
        info: dict[str, Any] | None = None,
    ) -> Run:
        raise NotImplementedError

    def save_results(
        self,
        event: str | int,
        run_id: int,
        *,
        windows: pd.DatetimeIndex,
        outages: gpd.GeoDataFrame,
        cells: pd.DataFrame,
        grid: pd.DataFrame,
    ) -> None:
        """Replace the results of ``windows`` (starts) in one transaction, mark them clean.

        ``outages`` follows OUTAGE_COLUMNS (+ geometry), ``cells`` CELL_STATUS_COLUMNS,
        ``grid`` GRID_STATUS_COLUMNS plus ``devices`` (distinct devices per row, used for
        k-anonymity).
        """
        raise NotImplementedError

    def outages(
        self, event: str | int, *, windows: Sequence[pd.Timestamp] | None = None
    ) -> gpd.GeoDataFrame:
        """Stored outage polygons (all windows, or those starting at ``windows``)."""
        raise NotImplementedError

    def cell_status(self, event: str | int) -> pd.DataFrame:
        """Stored cell status intervals (CELL_STATUS_COLUMNS)."""
        raise NotImplementedError

    def grid_status(self, event: str | int) -> pd.DataFrame:
        """Stored grid status (GRID_STATUS_COLUMNS + devices); internal, no k-anonymity."""
        raise NotImplementedError

    # -- alerts --------------------------------------------------------------------------
    def add_alert_message(self, message: AlertMessage) -> None:
        raise NotImplementedError

    def alert_messages(
        self, event: str | int | None = None, *, outage_id: str | None = None
    ) -> list[AlertMessage]:
        """Stored CAP messages (of one event / outage), oldest first."""
        raise NotImplementedError

    def alert_message(self, identifier: str) -> AlertMessage:
        """One CAP message by identifier; NotFound otherwise."""
        raise NotImplementedError

    # -- features for the API ----------------------------------------------------------------
    def features(
        self,
        kind: str,
        event: str | int,
        *,
        bbox: BBox | None = None,
        interval: Interval | None = None,
        limit: int = 10,
        offset: int = 0,
        principal: Principal,
        filters: dict[str, Any] | None = None,
    ) -> FeaturePage:
        """A page of GeoJSON Feature dicts of a collection and the number matched.

        ``kind`` is one of :data:`COLLECTION_KINDS`. ``bbox`` is (minlon, minlat, maxlon,
        maxlat); ``interval`` (start, end) with None for open ends. ``filters`` may hold
        ``network`` and ``window`` (window start) where the kind has them. Rows the
        principal may not read are never returned nor counted.
        """
        raise NotImplementedError

    def feature(
        self, kind: str, event: str | int, feature_id: str, *, principal: Principal
    ) -> dict[str, Any]:
        """One GeoJSON Feature; NotFound if absent or not readable by ``principal``."""
        raise NotImplementedError

    def extent(
        self, kind: str, event: str | int, *, principal: Principal
    ) -> tuple[BBox | None, Interval]:
        """Spatial (bbox) and temporal extent of a collection for its metadata."""
        raise NotImplementedError

    # -- keys, grants, audit ---------------------------------------------------------------
    def create_key(
        self,
        name: str,
        *,
        role: str,
        grants: Iterable[int] = (),
        principal: Principal,
    ) -> tuple[ApiKey, str]:
        """Create an API key; returns the record and the clear token (shown once)."""
        raise NotImplementedError

    def list_keys(self) -> list[ApiKey]:
        raise NotImplementedError

    def revoke_key(self, key: int | str, *, principal: Principal) -> ApiKey:
        """Revoke a key by id or name."""
        raise NotImplementedError

    def grant(self, key: int | str, dataset_id: int, *, principal: Principal) -> None:
        raise NotImplementedError

    def revoke_grant(self, key: int | str, dataset_id: int, *, principal: Principal) -> None:
        raise NotImplementedError

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a clear API key; anonymous for None.

        Raises :class:`~dcm.errors.AuthenticationRequired` for an unknown or revoked key.
        """
        raise NotImplementedError

    def audit(
        self, principal: Principal, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit log entry."""
        raise NotImplementedError

    def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Latest audit entries, newest first."""
        raise NotImplementedError


def open_store(settings: Settings | None = None, *, url: str | None = None) -> Store:
    """Open (and migrate) the store named by ``url`` or ``settings``.

    ``sqlite:///path`` opens a SQLite file in WAL mode; ``postgresql://...`` a PostgreSQL
    database with PostGIS. Without either, ``Settings().resolved_database_url()``.
    """
    raise NotImplementedError
