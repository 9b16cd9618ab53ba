"""The live service over the store: ingest files, incremental updates, alerts, gap reports.

::

    from dcm import live
    outcome = live.ingest(store, "vincent", "hour.csv", kind="measurements",
                          principal=principal)          # idempotent by checksum and row id
    summary = live.update(store, "vincent", principal=principal)   # dirty windows only
    gaps = live.gap_report(store, "vincent")             # DataFrame, ranked by people
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from dcm.ingest.report import IngestReport
from dcm.store import Dataset, Principal, Store

#: Columns of :func:`gap_report`.
GAP_COLUMNS = (
    "area_id",
    "area_name",
    "network",
    "people",
    "area_km2",
    "cells_offline",
    "since",
    "people_before",
    "trend",
)


@dataclass
class IngestOutcome:
    """What :func:`ingest` did: the dataset record, the reader's report, rows added and
    windows marked for recomputation. ``new`` is False when the file was already known."""

    dataset: Dataset
    report: IngestReport | None
    added: int
    new: bool
    dirty_windows: int = 0


@dataclass
class UpdateSummary:
    """What :func:`update` recomputed."""

    event: str
    run_id: int | None
    windows: list[pd.Timestamp] = field(default_factory=list)
    outages: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def ingest(
    store: Store,
    event: str | int,
    source: str | Path | BinaryIO | bytes,
    *,
    kind: str = "measurements",
    licence: str | None = None,
    visibility: str = "restricted",
    name: str | None = None,
    principal: Principal,
) -> IngestOutcome:
    """Read ``source`` with the dcm.ingest reader for ``kind`` and add it to ``event``.

    The raw bytes are kept under ``data_dir/raw/<sha256>``; a file already ingested for
    the event (same checksum and kind) adds nothing; measurement rows already stored (same
    measurement_id or content hash) are skipped. New event measurements mark the windows
    from their timestamp to timestamp + evidence span dirty.
    """
    raise NotImplementedError


def update(
    store: Store, event: str | int, *, principal: Principal, full: bool = False
) -> UpdateSummary:
    """Recompute the dirty windows of ``event`` (all windows with ``full``), keep outage
    ids stable by tracking from the previous window, then run the alert lifecycle."""
    raise NotImplementedError


def gap_report(
    store: Store, event: str | int, *, at: pd.Timestamp | None = None, trend_hours: int = 6
) -> pd.DataFrame:
    """People without service per admin area and network (columns :data:`GAP_COLUMNS`).

    Population inside the outage polygons of the latest window (or the window at ``at``),
    area km², cells offline, onset, people ``trend_hours`` earlier and the trend
    (growing/shrinking/stable), ranked by people affected, most first.
    """
    raise NotImplementedError


def alerts_geojson(store: Store, event: str | int) -> dict[str, Any]:
    """The latest CAP message of each alert of ``event`` as a GeoJSON FeatureCollection."""
    raise NotImplementedError
