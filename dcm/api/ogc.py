"""OGC API – Features Part 1 (core, GeoJSON, OpenAPI 3.0) over the collection protocol.

One router adds the links, ``numberMatched``/``numberReturned``, ``timeStamp`` and the
``next``/``prev`` paging for every :class:`~dcm.api.collections.Collection`, so GDAL's
OAPIF driver, QGIS and OWSLib read every layer the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from dcm.api.collections import CRS84, Catalog, Collection, Feature
from dcm.api.dependencies import BBoxDep, CrsDep, IntervalDep, PageDep, PrincipalDep, ZoomDep

GEOJSON = "application/geo+json"
JSON = "application/json"
# FastAPI writes OpenAPI 3.1, so the service description says so and the OGC "oas30"
# conformance class (which requires OpenAPI 3.0) is not claimed.
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


class CompactJSONResponse(Response):
    """``application/json`` without spaces: pages stay small on poor links."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class GeoJSONResponse(CompactJSONResponse):
    """``application/geo+json``, rendered like :class:`CompactJSONResponse`."""

    media_type = GEOJSON


FeatureFormat = Annotated[
    Literal["geojson", "json"] | None,
    Query(
        alias="f",
        description="Media type of the answer: application/geo+json (default) or "
        "application/json for clients that do not know GeoJSON's type.",
    ),
]


def _feature_response(content: dict[str, Any], f: str | None) -> Response:
    if f == "json":
        return CompactJSONResponse(content)
    return GeoJSONResponse(content)


def _alternate(request: Request, f: str | None) -> dict[str, str]:
    """The link to the same features in the other media type."""
    other = "geojson" if f == "json" else "json"
    href = str(request.url.include_query_params(f=other))
    return _link(href, "alternate", GEOJSON if other == "geojson" else JSON, f"As {other}")


#: Geometry types simplified for a zoom level; points have no detail to drop.
_SIMPLIFIED = {"LineString", "MultiLineString", "Polygon", "MultiPolygon"}


def pixel_degrees(zoom: int) -> float:
    """Width of one screen pixel in degrees of longitude at a web-map ``zoom`` level."""
    return 360.0 / (256 * 2**zoom)


def generalise(features: Sequence[Feature], zoom: int) -> list[Feature]:
    """Features with line and polygon geometries simplified for drawing at ``zoom``.

    Tolerance: half a pixel, in degrees, narrowed by cos(latitude) at each geometry's
    centre (a pixel spans fewer degrees of latitude away from the equator on Web
    Mercator). Coordinates are rounded to the decimals that tolerance still shows; a
    geometry that rounding would make invalid keeps its unrounded simplification.
    Points and features without geometry are returned as they are; the input dicts are
    never changed.
    """
    out = list(features)
    picked = [
        i
        for i, feature in enumerate(out)
        if (feature.get("geometry") or {}).get("type") in _SIMPLIFIED
    ]
    if not picked:
        return out
    shapes = shapely.from_geojson([json.dumps(out[i]["geometry"]) for i in picked])
    bounds = shapely.bounds(shapes)
    latitude = np.radians((bounds[:, 1] + bounds[:, 3]) / 2)
    # At least a tenth of the equator's tolerance: stays sane next to the poles.
    tolerance = pixel_degrees(zoom) / 2 * np.clip(np.cos(latitude), 0.1, 1.0)
    simplified = shapely.simplify(shapes, tolerance, preserve_topology=True)
    # The decimals that still resolve the page's finest tolerance (0.5e-d <= tolerance),
    # never finer than the store's 1e-7 degrees.
    decimals = min(7, max(0, math.ceil(-math.log10(2 * float(tolerance.min())))))
    rounded = shapely.transform(simplified, lambda xy: np.round(xy, decimals))
    broken = ~shapely.is_valid(rounded) | shapely.is_empty(rounded)
    rounded[broken] = simplified[broken]
    # GEOS returns a one-part multi-geometry as a single part: keep the GeoJSON type the
    # collection declares, so clients reading a typed layer (GDAL) see no change.
    for multi, single, build in ((5, 1, shapely.multilinestrings), (6, 3, shapely.multipolygons)):
        lost = (shapely.get_type_id(shapes) == multi) & (shapely.get_type_id(rounded) == single)
        if lost.any():
            rounded[lost] = build(rounded[lost].reshape(-1, 1))
    for i, text in zip(picked, shapely.to_geojson(rounded), strict=True):
        out[i] = {**out[i], "geometry": json.loads(text)}
    return out


router = APIRouter(tags=["OGC API – Features"])


async def get_catalog(request: Request) -> Catalog:
    """The catalog the app was created with."""
    catalog: Catalog = request.app.state.catalog
    return catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
CollectionId = Annotated[
    str, Path(description="Collection id, e.g. 'stvincent-outages'.", examples=["demo-outages"])
]


def base_url(request: Request) -> str:
    """The server's root URL as the client called it, without a trailing slash."""
    return str(request.base_url).rstrip("/")


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


@router.get("/", response_class=CompactJSONResponse, summary="Landing page")
def landing(request: Request) -> Response:
    """Service title and links to the API definition, conformance and collections."""
    base = base_url(request)
    return CompactJSONResponse(
        {
            "title": "dcm — Disaster Connectivity Mapper",
            "description": "Where people lost mobile connectivity after a disaster, on which "
            "networks, since when, and where service is coming back.",
            "links": [
                _link(f"{base}/", "self", JSON, "This document"),
                _link(f"{base}/openapi.json", "service-desc", OPENAPI, "API definition"),
                _link(f"{base}/docs", "service-doc", "text/html", "API documentation"),
                _link(f"{base}/conformance", "conformance", JSON, "Conformance classes"),
                _link(f"{base}/collections", "data", JSON, "Feature collections"),
                _link(f"{base}/events", "events", JSON, "Events"),
            ],
        }
    )


@router.get("/conformance", response_class=CompactJSONResponse, summary="Conformance classes")
def conformance() -> Response:
    """The OGC API – Features conformance classes this server implements."""
    return CompactJSONResponse({"conformsTo": CONFORMANCE})


def collection_metadata(collection: Collection, base: str, principal: Any) -> dict[str, Any]:
    """OGC collection metadata with extent, CRS and links."""
    href = f"{base}/collections/{collection.id}"
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": collection.extent(principal).to_ogc(),
        "links": [
            _link(href, "self", JSON, "This collection"),
            _link(f"{href}/items", "items", GEOJSON, "Features"),
        ],
    }


@router.get("/collections", response_class=CompactJSONResponse, summary="Collections")
def collections(request: Request, catalog: CatalogDep, principal: PrincipalDep) -> Response:
    """Every collection the caller may read."""
    base = base_url(request)
    return CompactJSONResponse(
        {
            "links": [_link(f"{base}/collections", "self", JSON, "Collections")],
            "collections": [
                collection_metadata(c, base, principal) for c in catalog.collections(principal)
            ],
        }
    )


@router.get(
    "/collections/{collection_id}", response_class=CompactJSONResponse, summary="Collection"
)
def collection(
    request: Request, collection_id: CollectionId, catalog: CatalogDep, principal: PrincipalDep
) -> Response:
    """Metadata of one collection: extents, CRS, item type, links."""
    found = catalog.collection(collection_id, principal)
    return CompactJSONResponse(collection_metadata(found, base_url(request), principal))


@router.get(
    "/collections/{collection_id}/items",
    response_class=GeoJSONResponse,
    summary="Features",
    responses={200: {"content": {GEOJSON: {}}}},
)
def items(
    request: Request,
    collection_id: CollectionId,
    catalog: CatalogDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    interval: IntervalDep,
    page: PageDep,
    zoom: ZoomDep,
    crs: CrsDep,
    f: FeatureFormat = None,
    network: Annotated[
        str | None,
        Query(max_length=32, description='outages, cells, grid: "MCC-MNC" or "all"'),
    ] = None,
    severity: Annotated[
        Literal["outage", "degraded"] | None, Query(description="outages: outage or degraded")
    ] = None,
    tier: Annotated[
        Literal["confirmed", "suspected"] | None,
        Query(description="outages: confirmed, or suspected (the data cannot confirm yet)"),
    ] = None,
) -> Response:
    """A page of features filtered by ``bbox`` and ``datetime`` (and, for outages,
    ``network``, ``severity`` and ``tier``), with ``next``/``prev`` links; with ``zoom``,
    outlines simplified for that web-map zoom level."""
    found = catalog.collection(collection_id, principal)
    filters = {
        k: v for k, v in {"network": network, "severity": severity, "tier": tier}.items() if v
    }
    # Filters only when asked for: collections without such properties need not know them.
    extra: dict[str, Any] = {"filters": filters} if filters else {}
    features, matched = found.features(
        bbox=bbox,
        interval=interval,
        limit=page.limit,
        offset=page.offset,
        principal=principal,
        **extra,
    )
    if zoom is not None:
        features = generalise(features, zoom)
    returned = len(features)
    url = request.url
    links = [
        _link(str(url), "self", JSON if f == "json" else GEOJSON, "This page"),
        _alternate(request, f),
        _link(f"{base_url(request)}/collections/{found.id}", "collection", JSON, "The collection"),
    ]
    if page.offset + returned < matched:
        nxt = url.include_query_params(limit=page.limit, offset=page.offset + page.limit)
        links.append(_link(str(nxt), "next", GEOJSON, "Next page"))
    if page.offset > 0:
        prev = url.include_query_params(limit=page.limit, offset=max(0, page.offset - page.limit))
        links.append(_link(str(prev), "prev", GEOJSON, "Previous page"))
    return _feature_response(
        {
            "type": "FeatureCollection",
            "features": list(features),
            "numberMatched": matched,
            "numberReturned": returned,
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "links": links,
        },
        f,
    )


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    response_class=GeoJSONResponse,
    summary="Feature",
    responses={200: {"content": {GEOJSON: {}}}},
)
def item(
    request: Request,
    collection_id: CollectionId,
    feature_id: str,
    catalog: CatalogDep,
    principal: PrincipalDep,
    zoom: ZoomDep,
    crs: CrsDep,
    f: FeatureFormat = None,
) -> Response:
    """One feature by id; with ``zoom``, its outline simplified for that zoom level."""
    found = catalog.collection(collection_id, principal)
    feature = dict(found.feature(feature_id, principal=principal))
    if zoom is not None:
        feature = generalise([feature], zoom)[0]
    href = f"{base_url(request)}/collections/{found.id}"
    feature["links"] = [
        _link(str(request.url), "self", JSON if f == "json" else GEOJSON, "This feature"),
        _alternate(request, f),
        _link(href, "collection", JSON, "The collection"),
    ]
    return _feature_response(feature, f)
