"""What the store's repositories share: the database, settings, helpers and constants."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from dcm.schema import CRS, MEASUREMENT_COLUMNS, OUTAGE_COLUMNS, empty_frame
from dcm.settings import Settings
from dcm.store._db import Database
from dcm.store.models import Dataset, Event

if TYPE_CHECKING:
    from dcm.store.access import Principal as _Principal

BBox = tuple[float, float, float, float]
Interval = tuple[pd.Timestamp | None, pd.Timestamp | None]

#: H3 resolution of the per-measurement index (~0.015 km² hexes): fine enough to prefilter
#: any map viewport, coarse grids are its parents.
MEASUREMENT_H3_RESOLUTION = 10

_MEASUREMENT_DB_COLUMNS = (
    "event_id",
    "dataset_id",
    "period",
    "mkey",
    "ts",
    "lon",
    "lat",
    "h3",
    "status",
    "mcc",
    "mnc",
    "network",
    "radio",
    "area",
    "cell",
    "signal_dbm",
    "download_kbps",
    "upload_kbps",
    "latency_ms",
    "accuracy_m",
    "measurement_id",
    "device",
)
_KEY_CHUNK = 500
_EVENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def geometry_columns(geoms: Any) -> tuple[list[str], np.ndarray]:
    """GeoJSON text (≤ 7 decimals, RFC 7946) and (n, 4) bounds of shapely geometries."""
    arr = np.asarray(geoms, dtype=object)
    arr = shapely.set_precision(arr, 1e-7)
    return list(shapely.to_geojson(arr)), shapely.bounds(arr)


def _bounds(box: Sequence[float]) -> dict[str, float]:
    """``minx, miny, maxx, maxy`` of one geometry as INSERT parameters."""
    return dict(zip(("minx", "miny", "maxx", "maxy"), map(float, box), strict=True))


def content_keys(frame: pd.DataFrame) -> pd.Series:
    """Deduplication key per measurement: ``id:<measurement_id>``, else a content hash."""
    content = [c for c in MEASUREMENT_COLUMNS if c != "measurement_id" and c in frame.columns]
    hashes = pd.util.hash_pandas_object(frame[content], index=False).to_numpy()
    hashed = pd.Series(np.char.mod("h:%016x", hashes.astype("uint64")), index=frame.index)
    if "measurement_id" not in frame.columns:
        return hashed
    ids = frame["measurement_id"].astype("string")
    return ("id:" + ids).where(ids.notna(), hashed).astype(object)


class Repository:
    """One concern of the :class:`~dcm.store.Store` (events, measurements, results,
    alerts, keys): its methods use ``self.db`` and the few methods of the other
    repositories declared below; the store is all of them at once."""

    db: Database
    backend: str  #: ``"sqlite"`` or ``"postgresql"``
    settings: Settings
    _event_keys: dict[str | int, tuple[int, str]]
    _population: dict[int, tuple[int, pd.DataFrame]]
    _extents: dict[tuple[Any, ...], tuple[BBox | None, Interval]]

    if TYPE_CHECKING:

        @property
        def data_dir(self) -> Path: ...

        def device_secret(self) -> str: ...

        def event_id(self, event: str | int | Event) -> int: ...

        def event_name(self, event: str | int | Event) -> str: ...

        def get_event(self, event: str | int | Event) -> Event: ...

        def get_dataset(self, dataset_id: int) -> Dataset: ...

        def _ensure_hexes(self, hexes: Iterable[str]) -> None: ...

        def audit(
            self,
            principal: _Principal,
            action: str,
            target: str,
            detail: dict[str, Any] | None = None,
        ) -> None: ...


def _drop_stale_tmp(path: Path) -> None:
    """Remove partial copies of ``path`` left by processes that died while writing them
    (``.<sha256>.<pid>.tmp`` of a pid no longer running)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError, IndexError):
            continue


def _empty_outages() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(empty_frame(OUTAGE_COLUMNS), geometry=[], crs=CRS)


def _typed(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Cast columns read back from the database to the contract's dtypes."""
    for col, dtype in columns.items():
        if col not in frame.columns or dtype.startswith("datetime64"):
            continue
        if dtype == "string":
            frame[col] = frame[col].astype("string")
        elif dtype in ("Int64", "int64"):
            values = pd.to_numeric(frame[col]).astype("Int64")
            frame[col] = (
                values.astype("int64") if dtype == "int64" and values.notna().all() else values
            )
        else:
            frame[col] = pd.to_numeric(frame[col]).astype(dtype)  # type: ignore[call-overload]
    return frame
