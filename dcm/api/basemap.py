"""Orientation for the maps, offline: ``/orientation`` (land, coastline, borders, place
names from data installed with dcm) and ``/basemap/...`` (the tiles of an MBTiles or
PMTiles file the installation was given, ``DCM_BASEMAP`` / ``dcm serve --basemap``).

Both are public reference data: no key is needed and nothing of an event is shown.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from dcm.api.dependencies import ZoomDep, parse_bbox
from dcm.api.ogc import generalise
from dcm.errors import NotFound, ParameterError
from dcm.ingest.tiles import TileArchive

router = APIRouter(tags=["Orientation"])

#: Largest box (degrees on each side) ``/orientation`` answers: a country, not the world.
MAX_SPAN_DEG = 20.0
#: Tiles never change under the same file: clients may keep them a day.
TILE_CACHE = "public, max-age=86400"
#: URL extensions accepted per tile format.
_EXTENSIONS = {
    "png": {"png"},
    "jpg": {"jpg", "jpeg"},
    "webp": {"webp"},
    "avif": {"avif"},
    "pbf": {"pbf", "mvt"},
}


def get_basemap(request: Request) -> TileArchive:
    """The installation's offline basemap; 404 when none is configured."""
    archive: TileArchive | None = getattr(request.app.state, "basemap", None)
    if archive is None:
        raise NotFound("no offline basemap is configured (dcm serve --basemap FILE)")
    return archive


BasemapDep = Annotated[TileArchive, Depends(get_basemap)]


@router.get("/orientation", summary="Land, coastline, borders and place names in a box")
def orientation_features(
    bbox: Annotated[
        str,
        Query(
            description="minx,miny,maxx,maxy in CRS84 degrees, at most "
            f"{MAX_SPAN_DEG:g}° on each side.",
            examples=["-61.3,13.1,-61.1,13.4"],
        ),
    ],
    zoom: ZoomDep = None,
    places: Annotated[int, Query(ge=0, le=2000, description="Most place names returned.")] = 300,
) -> JSONResponse:
    """GeoJSON: ``kind`` = ``land`` (a country's land in the box; its outline is the
    coastline and the borders) or ``place`` (name, population; largest first). From
    Natural Earth 1:10m (public domain) and GeoNames (CC BY 4.0), installed with dcm;
    ``zoom`` simplifies outlines to half a pixel at that web-map zoom."""
    from dcm.compare import orientation

    box = parse_bbox(bbox)
    if box[2] - box[0] > MAX_SPAN_DEG or box[3] - box[1] > MAX_SPAN_DEG:
        raise ParameterError(f"bbox spans more than {MAX_SPAN_DEG:g}° on a side")
    doc: dict[str, Any] = orientation(box, places=places)
    if zoom is not None:
        doc["features"] = generalise(doc["features"], zoom)
    return JSONResponse(
        doc, media_type="application/geo+json", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/basemap/tiles.json", summary="TileJSON of the offline basemap")
def basemap_tilejson(request: Request, archive: BasemapDep) -> JSONResponse:
    """TileJSON 3.0.0 of the configured offline basemap (format, zooms, bounds,
    attribution); 404 when there is none."""
    root = str(request.base_url).rstrip("/")
    url = f"{root}/basemap/{{z}}/{{x}}/{{y}}.{archive.format}"
    return JSONResponse(archive.tilejson(url))


@router.get("/basemap/{z}/{x}/{y}.{ext}", summary="A tile of the offline basemap")
def basemap_tile(
    archive: BasemapDep,
    z: Annotated[int, Path(ge=0, le=30)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    ext: str,
) -> Response:
    """The tile's bytes as stored; 404 where the archive has none. Gzip-compressed
    vector tiles are sent with ``Content-Encoding: gzip``."""
    if ext.lower() not in _EXTENSIONS[archive.format]:
        raise NotFound(f"the basemap holds {archive.format} tiles, not {ext}")
    data = archive.get(z, x, y)
    if data is None:
        raise NotFound(f"no basemap tile {z}/{x}/{y}")
    headers = {"Cache-Control": TILE_CACHE}
    if archive.encoding:
        headers["Content-Encoding"] = archive.encoding
    return Response(data, media_type=archive.media_type, headers=headers)
