"""Events, their windows, the gap report and measurement uploads."""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from dcm.api.catalog import KINDS
from dcm.api.dependencies import PrincipalDep, StoreDep, parse_datetime
from dcm.api.ogc import JSON, CompactJSONResponse, base_url
from dcm.errors import IngestError, InputTooLarge, ParameterError
from dcm.ingest._source import GZIP_MAGIC, Inflater, InputLimits

router = APIRouter(tags=["Events"])

EventName = Annotated[str, PathParam(description="Event name, e.g. 'stvincent'.")]

#: Gap report moments dcm can compute with: frames hold nanosecond timestamps (years
#: 1677-2262) and a report reaches hours before and after the moment.
GAPS_AT_RANGE = (datetime(1700, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))

#: Errors of a write that found no room: the disk, a quota or the process's file-size limit.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

#: Upload media type -> file suffix the ingest readers understand.
UPLOAD_TYPES = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "application/geo+json": ".geojson",
    "application/json": ".geojson",
    "application/x-ndjson": ".ndjson",
    "application/ndjson": ".ndjson",
    "application/jsonl": ".ndjson",
    "application/geo+json-seq": ".ndjson",
    "application/gzip": "",
    "application/x-gzip": "",
}


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_summary(event: Any, base: str) -> dict[str, Any]:
    href = f"{base}/events/{event.name}"
    return {
        "name": event.name,
        "description": event.description,
        "start": _iso(event.start),
        "end": _iso(event.end),
        "window": event.window,
        "high_water": _iso(event.high_water),
        "area": event.area,
        "collections": [f"{event.name}-{kind}" for kind in KINDS],
        "links": [
            {"href": href, "rel": "self", "type": JSON},
            {"href": f"{href}/map", "rel": "alternate", "type": "text/html", "title": "Web map"},
            {"href": f"{href}/alerts", "rel": "alerts", "type": "application/geo+json"},
            {
                "href": f"{href}/alerts.atom",
                "rel": "alternate",
                "type": "application/atom+xml",
                "title": "Alerts (Atom feed of CAP documents)",
            },
            {"href": f"{href}/gaps", "rel": "gaps", "type": JSON},
            {"href": f"{href}/gaps?f=csv", "rel": "gaps", "type": "text/csv"},
            {"href": f"{href}/gaps?f=html", "rel": "gaps", "type": "text/html"},
            {"href": f"{href}/gaps?f=pdf", "rel": "gaps", "type": "application/pdf"},
        ],
    }


@router.get("/events", response_class=CompactJSONResponse, summary="Events")
def list_events(request: Request, store: StoreDep, principal: PrincipalDep) -> Response:
    """Every event, newest first, with links to its layers, alerts and gap report."""
    base = base_url(request)
    return CompactJSONResponse(
        {
            "events": [_event_summary(e, base) for e in store.list_events()],
            "links": [{"href": f"{base}/events", "rel": "self", "type": JSON}],
        }
    )


@router.get("/events/{event}", response_class=CompactJSONResponse, summary="Event")
def get_event(
    request: Request, event: EventName, store: StoreDep, principal: PrincipalDep
) -> Response:
    """One event and its computed windows (``window_start``/``window_end``, oldest first),
    for the map's time control."""
    found = store.get_event(event)
    windows = store.event_windows(found.id)
    computed = windows[windows["computed_at"].notna()]
    body = _event_summary(found, base_url(request))
    body["windows"] = [
        {"window_start": s, "window_end": e, "dirty": bool(d)}
        for s, e, d in zip(
            computed["window_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            computed["window_end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            computed["dirty"],
            strict=True,
        )
    ]
    body["updated"] = _iso(computed["computed_at"].max()) if len(computed) else None
    return CompactJSONResponse(body)


@router.get(
    "/events/{event}/gaps",
    summary="Gap report",
    responses={
        200: {"content": {JSON: {}, "text/csv": {}, "text/html": {}, "application/pdf": {}}}
    },
)
def gaps(
    event: EventName,
    store: StoreDep,
    principal: PrincipalDep,
    f: Annotated[
        Literal["json", "csv", "html", "pdf"],
        Query(
            description="Output format: json, csv, or for planners html (table and chart "
            "of people cut off over time) or pdf."
        ),
    ] = "json",
    at: Annotated[
        str | None,
        Query(description="Report the window holding this time (RFC 3339); default latest."),
    ] = None,
) -> Response:
    """People without service per admin area and network, ranked by people affected:
    km² of outage, cells offline, since when, and the trend over the last hours."""
    from dcm import service

    moment = None if at is None else parse_datetime(at).start
    if moment is not None and not GAPS_AT_RANGE[0] <= moment <= GAPS_AT_RANGE[1]:
        raise ParameterError(f"at {at!r} is outside the years 1700-2200")
    name = store.get_event(event).name
    if f in ("html", "pdf"):
        document = service.gap_document(
            store, name, fmt=f, at=None if moment is None else pd.Timestamp(moment)
        )
        media = "text/html; charset=utf-8" if f == "html" else "application/pdf"
        return Response(
            document,
            media_type=media,
            headers={"Content-Disposition": f'inline; filename="{name}-gaps.{f}"'},
        )
    report = service.gap_report(store, name, at=None if moment is None else pd.Timestamp(moment))
    report = report.assign(since=report["since"].map(_iso))
    if f == "csv":
        text = report.to_csv(index=False, lineterminator="\n")
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="{name}-gaps.csv"'},
        )
    records = report.astype(object).where(report.notna(), None).to_dict(orient="records")
    return CompactJSONResponse(
        {"event": name, "generated": _iso(pd.Timestamp.now(tz="UTC")), "gaps": records}
    )


def upload_label(name: str | None, content_type: str, content_encoding: str) -> str:
    """File name for the upload whose suffix tells the ingest readers its format
    (``hour.csv.gz``): from the media type and encoding, added to ``name`` if missing."""
    media = content_type.split(";")[0].strip().lower()
    if media not in UPLOAD_TYPES:
        raise HTTPException(
            415,
            f"unsupported Content-Type {media or '(none)'!r}: send CSV (text/csv), GeoJSON "
            "(application/geo+json) or NDJSON (application/x-ndjson), optionally gzipped",
        )
    gz = "gzip" in content_encoding.lower() or media in ("application/gzip", "application/x-gzip")
    label = (name or "upload").strip() or "upload"
    fmt = UPLOAD_TYPES[media]
    if not label.lower().removesuffix(".gz").endswith(fmt):
        label = label.removesuffix(".gz") + fmt
    if gz and not label.lower().endswith(".gz"):
        label += ".gz"
    return label


@router.post(
    "/events/{event}/measurements",
    summary="Upload measurements",
    status_code=201,
    response_class=CompactJSONResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("text/csv", "application/geo+json", "application/x-ndjson")
            },
        }
    },
)
async def upload_measurements(
    request: Request,
    event: EventName,
    store: StoreDep,
    principal: PrincipalDep,
    kind: Annotated[
        Literal["measurements", "baseline"],
        Query(description="Event-period measurements or pre-event baseline."),
    ] = "measurements",
    visibility: Annotated[
        Literal["public", "partner", "restricted"], Query(description="Who may read the rows.")
    ] = "restricted",
    licence: Annotated[str | None, Query(description="Licence of the data.")] = None,
    name: Annotated[str | None, Query(description="Source name kept with the dataset.")] = None,
) -> Response:
    """Ingest an upload (CSV, GeoJSON or NDJSON by Content-Type; gzip by Content-Encoding
    or application/gzip) and return the validation report: rows in, accepted, rejected
    (with line, field and reason), duplicates. Needs a key that may ingest (partner or
    above). The body is streamed to a file, never held in memory whole, and refused (413)
    as soon as it passes ``DCM_MAX_UPLOAD_BYTES``, or once gunzipped
    ``DCM_MAX_DECOMPRESSED_BYTES`` or ``DCM_MAX_INFLATION_RATIO``. No database connection
    is held while the body arrives; a refused upload leaves no file behind."""
    # Refuse before reading a byte of the body: no key, no rights, or no such event.
    principal.require(principal.can_ingest(None), f"ingest into {event}")
    event = (await run_in_threadpool(store.get_event, event)).name
    headers = request.headers
    label = upload_label(name, headers.get("content-type", ""), headers.get("content-encoding", ""))
    settings = request.app.state.settings
    with _upload_file(settings.data_dir) as path:
        async with request.app.state.store.released():
            size, checksum = await _receive(
                request,
                path,
                label=label,
                limits=InputLimits.from_settings(settings),
                max_bytes=settings.max_upload_bytes,
            )
        if size == 0:
            raise IngestError("empty upload", path=label)
        from dcm import service

        # On a worker thread: the store proxy resolves to the store lent to this request.
        try:
            outcome = await run_in_threadpool(
                lambda: service.ingest_upload(
                    store,
                    event,
                    path,
                    checksum=checksum,
                    kind=kind,
                    licence=licence,
                    visibility=visibility,
                    name=label,
                    principal=principal,
                )
            )
        except OSError as exc:  # the raw copy or the rows waiting on disk found no room
            if exc.errno in _NO_ROOM:
                raise HTTPException(
                    507, "the server has no room left for the upload: nothing was kept; try later"
                ) from exc
            raise
    dataset = outcome.dataset
    body = {
        "event": event,
        "new": outcome.new,
        "added": outcome.added,
        "dirty_windows": outcome.dirty_windows,
        "dataset": {
            "id": dataset.id,
            "kind": dataset.kind,
            "source": dataset.source,
            "licence": dataset.licence,
            "visibility": dataset.visibility,
            "checksum": dataset.checksum,
            "ingested_at": _iso(dataset.ingested_at),
        },
        "report": outcome.report.to_dict() if outcome.report is not None else None,
    }
    return CompactJSONResponse(body, status_code=201 if outcome.new else 200)


@contextmanager
def _upload_file(data_dir: Path) -> Iterator[Path]:
    """A path in ``data_dir/uploads`` for one upload body, removed afterwards whatever
    happens (files of server processes that died are removed at start-up)."""
    folder = Path(data_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"upload-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def sweep_uploads(data_dir: Path) -> int:
    """Remove upload files left by server processes no longer running; returns how many."""
    removed = 0
    for path in (Path(data_dir) / "uploads").glob("upload-*-*"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            removed += 1
        except (ValueError, PermissionError):
            continue
    return removed


async def _receive(
    request: Request, path: Path, *, label: str, limits: InputLimits, max_bytes: int
) -> tuple[int, str]:
    """Stream the request body to ``path`` chunk by chunk; returns its size in bytes and
    SHA-256. Gzip bodies are inflated on the way (output dropped) to refuse one that
    passes ``limits`` before it is kept; a full disk answers 507 with nothing kept."""
    size = 0
    digest = hashlib.sha256()
    head = b""
    inflater: Inflater | None = None
    try:
        with path.open("wb") as out:
            async for chunk in request.stream():
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise InputTooLarge(
                        f"refused: upload larger than {max_bytes:,} bytes (the limit is "
                        "DCM_MAX_UPLOAD_BYTES)",
                        path=label,
                    )
                digest.update(chunk)
                out.write(chunk)
                if len(head) < 2:  # gzip or not is known from the first two bytes
                    chunk = head + chunk  # every byte not yet looked at
                    head = chunk[:2]
                    if len(head) < 2:
                        continue
                    if head == GZIP_MAGIC:
                        inflater = Inflater(limits, name=label)
                if inflater is not None:
                    try:
                        inflater.feed(chunk, keep=False)
                    except InputTooLarge:
                        raise
                    except IngestError:  # corrupt: the reader reports it with its reason
                        inflater = None
                elif size > limits.max_bytes:
                    raise limits.too_large(size, name=label)
    except ClientDisconnect as exc:  # nobody to answer; not a server error either
        raise HTTPException(400, "the client went away before the upload ended") from exc
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise HTTPException(
                507, "the server has no room left for the upload: nothing was kept; try later"
            ) from exc
        raise
    return size, digest.hexdigest()
