"""Reusable request dependencies: bbox, datetime, paging, zoom, settings, store, caller.

All are ``async`` so FastAPI runs them on the event loop instead of handing each to the
thread pool (a hop costs more than parsing a bbox); :func:`get_principal` sends only the
key lookup to a worker thread.

The parsers (:func:`parse_bbox`, :func:`parse_datetime`) are plain functions raising
:class:`~dcm.errors.ParameterError`, so they are testable without a server and give the
same 400 problem details wherever they are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from dcm.errors import ParameterError
from dcm.settings import Settings

#: OGC API – Features default and maximum page size.
DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000
#: Largest ``offset``: SQL OFFSET is a signed 64-bit integer on both backends.
MAX_OFFSET = 2**63 - 1
#: Web-map zoom levels (256-pixel tiles) the ``zoom`` parameter accepts.
MAX_ZOOM = 22

BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Interval:
    """A closed time interval in UTC; ``None`` at either end means open (``..``)."""

    start: datetime | None
    end: datetime | None

    def overlaps(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether ``[start, end]`` (``None`` = unbounded) meets this interval."""
        if self.end is not None and start is not None and start > self.end:
            return False
        return not (self.start is not None and end is not None and end < self.start)


@dataclass(frozen=True)
class Page:
    """``limit`` features starting at ``offset`` (0-based)."""

    limit: int
    offset: int


def parse_bbox(text: str) -> BBox:
    """``minx,miny,maxx,maxy`` (or the 6-number 3D form) in CRS84 degrees -> 2D box.

    Raises ParameterError on a wrong count, non-numbers, out-of-range coordinates or a
    box whose minimum exceeds its maximum (boxes across the antimeridian are refused).
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 6):
        raise ParameterError(f"bbox needs 4 or 6 comma-separated numbers, got {len(parts)}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ParameterError(f"bbox values must be numbers: {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ParameterError("bbox values must be finite numbers")
    if len(values) == 6:  # minx, miny, minz, maxx, maxy, maxz
        values = [values[0], values[1], values[3], values[4]]
    minx, miny, maxx, maxy = values
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise ParameterError("bbox longitudes must be within [-180, 180]")
    if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise ParameterError("bbox latitudes must be within [-90, 90]")
    if miny > maxy:
        raise ParameterError("bbox minimum latitude is greater than its maximum")
    if minx > maxx:
        raise ParameterError("bbox across the antimeridian (minx > maxx) is not supported")
    return (minx, miny, maxx, maxy)


def _parse_instant(text: str, *, end: bool) -> datetime:
    """An RFC 3339 date-time (``Z`` or offset; naive means UTC) or a date.

    A bare date stands for the whole day: its start as an interval start, its last
    microsecond as an interval end.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ParameterError(f"datetime {text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_datetime(text: str) -> Interval:
    """OGC ``datetime``: an instant, ``start/end``, or half-open ``../end``, ``start/..``.

    An empty side (``/end``) is open like ``..``. Raises ParameterError when the text
    cannot be read or the start is after the end.
    """
    text = text.strip()
    if "/" not in text:
        if text in ("", ".."):
            raise ParameterError("datetime needs an instant or an interval")
        if len(text) == 10:  # a date: the whole day
            return Interval(_parse_instant(text, end=False), _parse_instant(text, end=True))
        moment = _parse_instant(text, end=False)
        return Interval(moment, moment)
    if text.count("/") != 1:
        raise ParameterError(f"datetime interval {text!r} must have exactly one '/'")
    left, right = (s.strip() for s in text.split("/"))
    start = None if left in ("", "..") else _parse_instant(left, end=False)
    end = None if right in ("", "..") else _parse_instant(right, end=True)
    if start is None and end is None:
        raise ParameterError("datetime interval must be bounded on at least one side")
    if start is not None and end is not None and start > end:
        raise ParameterError("datetime interval starts after it ends")
    return Interval(start, end)


async def bbox_query(
    bbox: Annotated[
        str | None,
        Query(
            description="Only features intersecting this box: minx,miny,maxx,maxy "
            "(or minx,miny,minz,maxx,maxy,maxz) in CRS84 degrees.",
            examples=["-61.3,13.1,-61.1,13.4"],
        ),
    ] = None,
) -> BBox | None:
    """The ``bbox`` query parameter, validated."""
    return None if bbox is None else parse_bbox(bbox)


async def datetime_query(
    value: Annotated[
        str | None,
        Query(
            alias="datetime",
            description="Only features whose time meets this instant or interval "
            "(RFC 3339; '..' for an open end), e.g. 2021-04-09T12:00:00Z/..",
        ),
    ] = None,
) -> Interval | None:
    """The ``datetime`` query parameter as an :class:`Interval`."""
    return None if value is None else parse_datetime(value)


async def page_query(
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description="Number of features per page."),
    ] = DEFAULT_LIMIT,
    offset: Annotated[
        int,
        Query(ge=0, le=MAX_OFFSET, description="Index of the first feature (0-based)."),
    ] = 0,
) -> Page:
    """``limit`` and ``offset`` paging parameters."""
    return Page(limit=limit, offset=offset)


async def zoom_query(
    zoom: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ZOOM,
            description="Web-map zoom level (0-22, 256-pixel tiles) the features are drawn "
            "at: polygon and line geometries are simplified to about half a screen pixel "
            "(Douglas-Peucker, topology kept) and their coordinates rounded to match. "
            "Points are unchanged; without it geometries come at full detail.",
            examples=[12],
        ),
    ] = None,
) -> int | None:
    """The ``zoom`` query parameter (validated by FastAPI: a bad value is a 400)."""
    return zoom


#: The one coordinate reference system of every layer (OGC API – Features Part 2 names).
CRS84_NAMES = frozenset(
    {"http://www.opengis.net/def/crs/OGC/1.3/CRS84", "[OGC:CRS84]", "OGC:CRS84"}
)


async def crs_query(
    crs: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Coordinate reference system of the answer (OGC API – Features Part "
            "2); only http://www.opengis.net/def/crs/OGC/1.3/CRS84, the default.",
        ),
    ] = None,
    bbox_crs: Annotated[
        str | None,
        Query(
            alias="bbox-crs",
            max_length=200,
            description="Coordinate reference system of bbox; only CRS84, the default.",
        ),
    ] = None,
) -> None:
    """``crs`` and ``bbox-crs``, which clients such as GDAL send: CRS84 is accepted (it is
    what every layer is in), any other CRS is a 400."""
    for name, value in (("crs", crs), ("bbox-crs", bbox_crs)):
        if value is not None and value.strip() not in CRS84_NAMES:
            raise ParameterError(
                f"{name} {value[:80]!r} is not offered: layers are in "
                "http://www.opengis.net/def/crs/OGC/1.3/CRS84 only"
            )


async def refuse_nul_characters(request: Request) -> None:
    """Refuse a path or query holding a NUL character (``%00``) with 400, on every route.

    No event, feature or alert name holds one, and PostgreSQL text cannot: without this
    the same URL would be a 404 on SQLite and a database error on PostgreSQL.
    """
    if "\x00" in request.scope["path"] or any(
        "\x00" in name or "\x00" in value for name, value in request.query_params.multi_items()
    ):
        raise ParameterError("the URL holds a NUL character (%00)")


def _query_names(dependant: Any) -> set[str]:
    """Query parameter names a route declares, with those of its dependencies."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not declare with 400, naming them.

    A misspelt filter (``?netwrok=360-100``) would otherwise be ignored and answer with
    every feature, which a client cannot tell from a filtered answer.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) if known else "none"
        raise ParameterError(
            f"unknown query parameter(s): {', '.join(unknown)} (this endpoint takes: {takes})"
        )


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Any:
    """The store the app was created with."""
    return request.app.state.store


async def api_key(
    x_api_key: Annotated[
        str | None, Header(description="API key; alternatively 'Authorization: Bearer KEY'.")
    ] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str | None:
    """The caller's API key from ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


async def get_principal(
    key: Annotated[str | None, Depends(api_key)],
    store: Annotated[Any, Depends(get_store)],
) -> Any:
    """Who is calling: the key's principal, or the anonymous viewer when no key is given.

    The principal's grants are resolved per request: datasets granted one by one and
    those its event grants cover now, so a dataset ingested a moment ago is included.

    A key that the store does not know raises AuthenticationRequired (401), never a
    silent downgrade to anonymous. Only a key needs the database (on a worker thread).
    """
    if key is None:
        from dcm.store import Principal

        return Principal.anonymous()
    return await run_in_threadpool(store.authenticate, key)


BBoxDep = Annotated[BBox | None, Depends(bbox_query)]
IntervalDep = Annotated[Interval | None, Depends(datetime_query)]
PageDep = Annotated[Page, Depends(page_query)]
ZoomDep = Annotated[int | None, Depends(zoom_query)]
CrsDep = Annotated[None, Depends(crs_query)]
PrincipalDep = Annotated[Any, Depends(get_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Any, Depends(get_store)]
