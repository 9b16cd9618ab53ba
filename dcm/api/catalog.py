"""The store's layers as OGC collections: ``{event}-{kind}`` for every event.

Kinds are the store's :data:`~dcm.store.COLLECTION_KINDS` (outages, cells, grid,
coverage, measurements, areas, hazard) plus ``alerts`` (the latest CAP message of each
alert). Access rules stay in the store: every query passes the caller's principal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from dcm.api.collections import Collection, Extent, Feature
from dcm.api.dependencies import BBox, Interval
from dcm.errors import NotFound

#: Title and description of each collection kind.
KINDS: dict[str, tuple[str, str]] = {
    "outages": (
        "Outage areas",
        "One polygon per outage area, network and time window; network 'all' where no "
        "network serves. Ids stay stable while an outage persists.",
    ),
    "cells": (
        "Cell status",
        "Status intervals per cell (online, offline, unknown) with the probability it is offline.",
    ),
    "grid": (
        "Grid status",
        "Per H3 hexagon, network and window: expected and observed reports, state "
        "(up, down, uncertain, no_data). Hexes with too few distinct devices are hidden "
        "from public callers.",
    ),
    "coverage": (
        "Baseline coverage",
        "Where each network was heard before the event (H3 hexagons with report counts).",
    ),
    "measurements": (
        "Measurements",
        "Raw crowdsourced measurements; only datasets the caller may read are returned.",
    ),
    "areas": ("Admin areas", "Administrative areas used for the gap report."),
    "hazard": ("Hazard zones", "Hazard footprints of the event by level."),
    "alerts": (
        "Alerts",
        "Latest CAP message of each outage alert (Alert, Update or Cancel); the CAP "
        "document is at /alerts/{identifier}.xml.",
    ),
}


def _utc(moment: Any) -> Any:
    return None if moment is None else pd.Timestamp(moment).to_pydatetime()


class ExtentCache:
    """Collection extents per (collection, what the caller may read), kept ``ttl_s`` seconds.

    An extent scans every row a caller may read (a third of a second at 500 000
    measurements) and ``/collections`` asks for all of them; metadata a few seconds old
    is fine, rows never come from here.
    """

    def __init__(self, *, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple[Any, ...], tuple[float, Extent]] = {}

    def get(self, key: tuple[Any, ...], compute: Callable[[], Extent]) -> Extent:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        extent = compute()
        self._entries[key] = (now, extent)
        return extent


def _access_key(principal: Any) -> tuple[Any, ...]:
    """What decides which rows a principal reads: role and granted datasets."""
    return (principal.role, principal.authenticated, tuple(sorted(principal.grants)))


class StoreCollection:
    """One store layer of one event."""

    def __init__(self, store: Any, event: str, kind: str, *, extents: ExtentCache) -> None:
        self._store = store
        self._extents = extents
        self.event = event
        self.kind = kind
        self.id = f"{event}-{kind}"
        title, self.description = KINDS[kind]
        self.title = f"{title} — {event}"

    def extent(self, principal: Any) -> Extent:
        def compute() -> Extent:
            bbox, (start, end) = self._store.extent(self.kind, self.event, principal=principal)
            return Extent(bbox=bbox, start=_utc(start), end=_utc(end))

        return self._extents.get((self.id, *_access_key(principal)), compute)

    def features(
        self,
        *,
        bbox: BBox | None,
        interval: Interval | None,
        limit: int,
        offset: int,
        principal: Any,
        filters: Mapping[str, Any] | None = None,
    ) -> tuple[Sequence[Feature], int]:
        span = None if interval is None else (interval.start, interval.end)
        page = self._store.features(
            self.kind,
            self.event,
            bbox=bbox,
            interval=span,
            limit=limit,
            offset=offset,
            principal=principal,
            filters=dict(filters or {}),
        )
        return page.features, page.number_matched

    def feature(self, feature_id: str, *, principal: Any) -> Feature:
        feature: Feature = self._store.feature(
            self.kind, self.event, feature_id, principal=principal
        )
        return feature


class AlertCollection:
    """The latest message of each alert of an event (a few dozen at most, kept in memory)."""

    kind = "alerts"

    def __init__(self, store: Any, event: str) -> None:
        self._store = store
        self.event = event
        self.id = f"{event}-alerts"
        title, self.description = KINDS["alerts"]
        self.title = f"{title} — {event}"

    def _all(self) -> list[Feature]:
        from dcm import service

        features: list[Feature] = service.alerts_geojson(self._store, self.event)["features"]
        return features

    @staticmethod
    def _times(features: list[Feature]) -> tuple[pd.Series, pd.Series]:
        props = pd.DataFrame(
            [f["properties"] for f in features], columns=["window_start", "window_end"]
        )
        return (
            pd.to_datetime(props["window_start"], utc=True),
            pd.to_datetime(props["window_end"], utc=True),
        )

    def extent(self, principal: Any) -> Extent:
        features = self._all()
        if not features:
            return Extent()
        geoms = shapely.from_geojson([_geometry_text(f) for f in features])
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        start, end = self._times(features)
        return Extent(
            bbox=(float(minx), float(miny), float(maxx), float(maxy)),
            start=_utc(start.min()) if start.notna().any() else None,
            end=_utc(end.max()) if end.notna().any() else None,
        )

    def features(
        self,
        *,
        bbox: BBox | None,
        interval: Interval | None,
        limit: int,
        offset: int,
        principal: Any,
        filters: Mapping[str, Any] | None = None,
    ) -> tuple[Sequence[Feature], int]:
        features = self._all()
        if not features:
            return [], 0
        keep = np.ones(len(features), dtype=bool)
        if bbox is not None:
            geoms = shapely.from_geojson([_geometry_text(f) for f in features])
            keep &= shapely.intersects(geoms, shapely.box(*bbox))
        if interval is not None:
            start, end = self._times(features)
            if interval.end is not None:
                keep &= ~(start > pd.Timestamp(interval.end)).to_numpy(bool)
            if interval.start is not None:
                keep &= ~(end <= pd.Timestamp(interval.start)).to_numpy(bool)
        rows = np.flatnonzero(keep)
        return [features[i] for i in rows[offset : offset + limit]], len(rows)

    def feature(self, feature_id: str, *, principal: Any) -> Feature:
        for feature in self._all():
            if feature["id"] == feature_id:
                return feature
        raise NotFound(f"no alert {feature_id[:80]!r} in {self.id!r}")


def _geometry_text(feature: Feature) -> str:
    return json.dumps(feature["geometry"])


class StoreCatalog:
    """Every event's collections, read through the store with the caller's principal."""

    def __init__(self, store: Any) -> None:
        from dcm.store import COLLECTION_KINDS

        self._store = store
        self.kinds: tuple[str, ...] = (*COLLECTION_KINDS, "alerts")
        self.extents = ExtentCache()

    def _make(self, event: str, kind: str) -> Collection:
        if kind == "alerts":
            return AlertCollection(self._store, event)
        return StoreCollection(self._store, event, kind, extents=self.extents)

    def collections(self, principal: Any) -> Sequence[Collection]:
        return [
            self._make(event.name, kind)
            for event in self._store.list_events()
            for kind in self.kinds
        ]

    def collection(self, collection_id: str, principal: Any) -> Collection:
        for kind in self.kinds:
            event = collection_id.removesuffix(f"-{kind}")
            if event != collection_id and event:
                try:
                    name: str = self._store.event_name(event)
                except NotFound:
                    break
                return self._make(name, kind)
        raise NotFound(f"no collection {collection_id!r}")
