"""Plain records returned by :class:`dcm.store.Store` (no database handles inside)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd

#: Dataset kinds a store keeps (``dcm ingest --kind``).
DATASET_KINDS = ("measurements", "baseline", "cells", "population", "areas", "hazard")
#: Who may read a dataset's rows: everyone, partners with a grant (and analysts/admins),
#: or only keys granted that dataset.
VISIBILITIES = ("public", "partner", "restricted")
#: Collections served by :meth:`dcm.store.Store.features` (OGC API – Features items).
COLLECTION_KINDS = ("outages", "cells", "grid", "coverage", "measurements", "areas", "hazard")
#: Columns of a stored cell-status row (besides event_id and run_id), as the results
#: repository writes them and the ``cells`` layer reads them.
CELL_STATUS_STORED = (
    "fid",
    "radio",
    "mcc",
    "net",
    "area",
    "cell",
    "network",
    "site_id",
    "status",
    "start_time",
    "end_time",
    "p_offline",
    "silence_h_needed",
    "offline_since",
    "lon",
    "lat",
)
#: CAP message types the alert lifecycle writes.
MSG_TYPES = ("Alert", "Update", "Cancel")


@dataclass(frozen=True)
class Event:
    """A disaster event: the unit measurements, results and alerts belong to.

    ``area`` is a GeoJSON geometry dict (EPSG:4326) or None. ``high_water`` is the latest
    measurement timestamp ingested for the event period; ``window`` the analysis window
    length (pandas offset string, e.g. ``"1h"``).
    """

    id: int
    name: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    description: str | None
    area: dict[str, Any] | None
    window: str
    created_at: pd.Timestamp
    high_water: pd.Timestamp | None = None


@dataclass(frozen=True)
class Dataset:
    """One ingested file: provenance, licence, visibility and row counts.

    ``rows_in``/``accepted``/``rejected``/``duplicates`` are the reader's counts;
    ``added`` is how many rows were new to the store (0 when everything was known).
    The raw bytes live in ``data_dir/raw/<checksum>``.
    """

    id: int
    event_id: int
    kind: str
    source: str
    licence: str | None
    visibility: str
    owner: str | None
    checksum: str
    rows_in: int
    accepted: int
    rejected: int
    duplicates: int
    added: int
    ingested_at: pd.Timestamp


@dataclass(frozen=True)
class EventGrant:
    """A key may read the datasets of an event, those ingested later included.

    ``source``/``licence`` None: any. A dataset matches ``source`` when its source is it
    or a slice of it (``dcm replay`` names each hour ``SOURCE#start/end``), ``licence``
    when its licence is it (case-insensitive).
    """

    id: int
    key_id: int
    event_id: int
    event: str
    source: str | None
    licence: str | None
    created_at: pd.Timestamp

    def describe(self) -> str:
        """``event stvincent, source x.csv, licence CC-BY-4.0`` (only what it names)."""
        parts = [f"event {self.event}"]
        parts += [f"source {self.source}"] if self.source is not None else []
        parts += [f"licence {self.licence}"] if self.licence is not None else []
        return ", ".join(parts)


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (never the clear token: only its sha256 is kept).

    ``grants``: dataset ids granted one by one; ``event_grants``: rules granting an
    event's datasets (by source and/or licence).
    """

    id: int
    name: str
    role: str
    prefix: str
    created_at: pd.Timestamp
    revoked_at: pd.Timestamp | None
    grants: frozenset[int] = field(default_factory=frozenset)
    event_grants: tuple[EventGrant, ...] = ()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class AlertMessage:
    """One CAP message of an alert's lifecycle, as stored.

    ``identifier`` is unique per message; ``references`` lists earlier messages as
    CAP ``sender,identifier,sent`` triples (empty for the first ``Alert``). ``geometry`` is a
    GeoJSON polygon dict; ``properties`` holds the outage figures at the time of the
    message (area_km2, population, cells_offline, confidence, severity, tier, certainty,
    window_start, window_end, onset; messages from before the tiers lack tier and
    certainty).
    """

    identifier: str
    event_id: int
    outage_id: str
    network: str
    msg_type: str
    sent: pd.Timestamp
    references: tuple[str, ...]
    geometry: dict[str, Any]
    properties: dict[str, Any]


@dataclass(frozen=True)
class Run:
    """One ``dcm update`` pass: which windows it recomputed and when."""

    id: int
    event_id: int
    started_at: pd.Timestamp
    finished_at: pd.Timestamp | None
    windows: int
    status: str
    info: dict[str, Any]


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to which target, and when."""

    id: int
    at: pd.Timestamp
    key_id: int | None
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class FeaturePage(NamedTuple):
    """One page of GeoJSON Feature dicts and the number of features matching the query."""

    features: list[dict[str, Any]]
    number_matched: int
