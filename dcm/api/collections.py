"""The collection protocol behind the OGC API – Features router.

A :class:`Collection` answers ``features(bbox, interval, limit, offset, principal)`` with
a page of GeoJSON features and the number matched; a :class:`Catalog` lists the
collections a caller may see. The router in :mod:`dcm.api.ogc` adds links, paging and
counts, so every layer (outages, cells, grid, coverage, measurements, ...) gets the same
behaviour from one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from dcm.api.dependencies import BBox, Interval

Feature = dict[str, Any]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


@dataclass(frozen=True)
class Extent:
    """Spatial extent (CRS84 ``minx, miny, maxx, maxy``) and temporal extent (UTC)."""

    bbox: BBox | None = None
    start: datetime | None = None
    end: datetime | None = None

    def to_ogc(self) -> dict[str, Any]:
        """The ``extent`` member of OGC collection metadata."""
        out: dict[str, Any] = {}
        if self.bbox is not None:
            out["spatial"] = {"bbox": [[round(v, 7) for v in self.bbox]], "crs": CRS84}
        if self.start is not None or self.end is not None:
            out["temporal"] = {
                "interval": [[_iso(self.start), _iso(self.end)]],
                "trs": GREGORIAN,
            }
        return out


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


@runtime_checkable
class Collection(Protocol):
    """One feature layer. Features are GeoJSON dicts with an ``id`` (RFC 7946, CRS84)."""

    id: str
    title: str
    description: str

    def extent(self, principal: Any) -> Extent:
        """Bounding box and time span of the features ``principal`` may read."""
        ...

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
        """One page of features matching the filters, and how many match in total.

        ``filters``: property equality filters (``network``, ``severity``, ``tier``); a
        collection ignores the ones its features do not carry.
        """
        ...

    def feature(self, feature_id: str, *, principal: Any) -> Feature:
        """One feature by id; raises :class:`~dcm.errors.NotFound`."""
        ...


@runtime_checkable
class Catalog(Protocol):
    """The set of collections, filtered by what the caller may see."""

    def collections(self, principal: Any) -> Sequence[Collection]:
        """Every collection visible to ``principal``."""
        ...

    def collection(self, collection_id: str, principal: Any) -> Collection:
        """One collection; raises NotFound (also for ones the caller may not see)."""
        ...


@dataclass
class StaticCatalog:
    """A fixed list of collections, all visible to everyone (tests, single files)."""

    items: Sequence[Collection] = field(default_factory=list)

    def collections(self, principal: Any) -> Sequence[Collection]:
        return list(self.items)

    def collection(self, collection_id: str, principal: Any) -> Collection:
        from dcm.errors import NotFound

        for item in self.items:
            if item.id == collection_id:
                return item
        raise NotFound(f"no collection {collection_id!r}")
