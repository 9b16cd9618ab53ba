"""The :class:`Store`: one facade over the repositories of :mod:`dcm.store.repositories`
(events and datasets, measurements, results, alerts, keys and audit) and the API's
feature queries."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pandas as pd

from dcm.errors import NotFound, ParameterError, StoreError
from dcm.settings import Settings
from dcm.store import _features
from dcm.store._db import Database
from dcm.store.access import Principal
from dcm.store.migrations import migrate
from dcm.store.models import FeaturePage
from dcm.store.repositories import (
    AlertRepository,
    EventRepository,
    KeyRepository,
    MeasurementRepository,
    ResultRepository,
)
from dcm.store.repositories.base import BBox, Interval, geometry_columns

__all__ = ["BBox", "Interval", "Store", "geometry_columns", "open_store"]


class Store(
    EventRepository, MeasurementRepository, ResultRepository, AlertRepository, KeyRepository
):
    """Persistent store of one dcm installation (SQLite file or PostgreSQL + PostGIS).

    Open it with :func:`dcm.store.open_store`. Methods that change data take the acting
    :class:`Principal`, check it, and write an audit log entry. Timestamps go in and out as
    tz-aware UTC ``pd.Timestamp``; geometries as GeoJSON dicts or shapely objects in
    EPSG:4326. Its database lends each thread (or each request bound with
    :meth:`~dcm.store._db.Database.bound`) a pooled connection of its own, so one store
    serves the whole API.
    """

    backend: str  #: ``"sqlite"`` or ``"postgresql"``
    settings: Settings

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.backend = db.backend
        self.settings = settings
        #: (id, name) of events asked for by name or id: events are never renamed or deleted.
        self._event_keys: dict[str | int, tuple[int, str]] = {}
        self._population: dict[int, tuple[int, pd.DataFrame]] = {}
        self._extents: dict[tuple[Any, ...], tuple[BBox | None, Interval]] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        """The number of the last migration applied."""
        return int(self.db.scalar("SELECT coalesce(max(version), 0) FROM schema_version") or 0)

    @property
    def data_dir(self) -> Path:
        """Where raw uploads (``raw/<sha256>``) and the secret live."""
        return Path(self.settings.data_dir)

    def device_secret(self) -> str:
        """Secret used to hash device ids: ``Settings.secret``, else ``data_dir/secret``
        (generated once, mode 0600)."""
        if self.settings.secret:
            return self.settings.secret
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: two processes starting at once must not both write a secret
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
        return path.read_text().strip()

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
        count: bool = True,
    ) -> FeaturePage:
        """A page of GeoJSON Feature dicts of a collection and the number matched.

        ``kind`` is one of :data:`COLLECTION_KINDS`. ``bbox`` is (minlon, minlat, maxlon,
        maxlat); ``interval`` (start, end) with None for open ends. ``filters`` may hold
        ``network``, ``window`` (a window start, or ``"latest"``), ``state`` (grid),
        ``status`` (cells, measurements), ``period`` (measurements). Rows the principal
        may not read are never returned nor counted; the grid and coverage layers hide
        hexes with fewer than ``k_anonymity`` distinct devices from viewers and partners.
        ``count=False`` skips numberMatched (returned as -1).
        """
        query = _features.build(
            self,
            kind,
            event,
            bbox=bbox,
            interval=interval,
            principal=principal,
            filters=filters or {},
        )
        if limit < 0 or offset < 0:
            raise ParameterError("limit and offset must not be negative")
        return _features.page(self, query, limit=limit, offset=offset, count=count)

    def feature(
        self, kind: str, event: str | int, feature_id: str, *, principal: Principal
    ) -> dict[str, Any]:
        """One GeoJSON Feature; NotFound if absent or not readable by ``principal``."""
        query = _features.build(
            self,
            kind,
            event,
            bbox=None,
            interval=None,
            principal=principal,
            filters={"fid": feature_id},
        )
        found = _features.page(self, query, limit=1, offset=0, count=False).features
        if not found:
            shown = _features.shown_id(str(feature_id))
            raise NotFound(f"no feature {shown} in {kind} of event {event!r}")
        return found[0]

    def extent(
        self, kind: str, event: str | int, *, principal: Principal
    ) -> tuple[BBox | None, Interval]:
        """Spatial (bbox) and temporal extent of a collection for its metadata.

        The measurements extent scans every row of the event, so it is kept until a
        measurement is added (keyed by the readable datasets and the largest row id).
        """
        query = _features.build(
            self, kind, event, bbox=None, interval=None, principal=principal, filters={}
        )
        if kind != "measurements":
            return _features.extent(self, query)
        key = (
            self.event_id(event),
            tuple(query.params.values()),
            query.empty,
            self.db.scalar("SELECT max(id) FROM measurements"),
        )
        found = self._extents.get(key)
        if found is None:
            found = _features.extent(self, query)
            self._extents = {key: found}  # only the latest state is worth keeping
        return found


def open_store(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> Store:
    """Open (and migrate) the store named by ``url`` or ``settings``.

    ``sqlite:///path`` opens a SQLite file in WAL mode; ``postgresql://...`` a PostgreSQL
    database with PostGIS. Without either, ``Settings().resolved_database_url()``.
    ``pool_size`` and ``max_overflow`` bound the connections of its engine's pool.
    """
    settings = settings or Settings()
    db = Database(
        url or settings.resolved_database_url(),
        busy_timeout_s=settings.store_busy_timeout_s,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
    try:
        migrate(db)
    except StoreError:
        db.close()
        raise
    return Store(db, settings)
