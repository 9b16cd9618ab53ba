"""Offline basemaps the user brings: MBTiles (SQLite) and PMTiles v3 archives.

A responder deploying dcm where the internet is down can load an extract made before
(an OpenStreetMap region rendered to raster tiles, or vector tiles) and dcm serves its
tiles itself. :func:`open_tiles` checks the file at once and answers with a
:class:`TileArchive`; ``get(z, x, y)`` returns a tile's bytes (XYZ numbering, as web
maps ask for them) or None.

MBTiles 1.3: table ``tiles(zoom_level, tile_column, tile_row, tile_data)`` with TMS rows
(``tile_row = 2**z - 1 - y``) and ``metadata(name, value)``. PMTiles v3: read with the
``pmtiles`` package (Protomaps' reference reader) from a memory map.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcm.errors import IngestError

#: Tile formats, their media types and URL extensions.
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "pbf": "application/vnd.mapbox-vector-tile",
}
#: Formats a browser draws as an image layer.
RASTER_FORMATS = frozenset({"png", "jpg", "webp", "avif"})
_MBTILES_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp", "pbf": "pbf"}
_PMTILES_FORMATS = {1: "pbf", 2: "png", 3: "jpg", 4: "webp", 5: "avif"}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class TileArchive:
    """An opened tile archive. ``format``: png | jpg | webp | avif | pbf; ``bounds``:
    (west, south, east, north) degrees or None; ``encoding``: ``gzip`` when the stored
    tiles are gzip-compressed (vector tiles usually are), else None."""

    path: Path
    kind: str  # "mbtiles" | "pmtiles"
    format: str
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float] | None = None
    attribution: str | None = None
    name: str | None = None
    encoding: str | None = None
    _reader: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def raster(self) -> bool:
        return self.format in RASTER_FORMATS

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """The tile at zoom ``z``, column ``x``, row ``y`` (XYZ, row 0 at the north), or
        None when the archive has none there."""
        if z < 0 or not (0 <= x < 2**z and 0 <= y < 2**z):
            return None
        if self.kind == "mbtiles":
            with self._lock:  # one connection, shared by the server's threads
                row = self._reader.execute(
                    "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? "
                    "AND tile_row = ?",
                    (z, x, 2**z - 1 - y),
                ).fetchone()
            return None if row is None or row[0] is None else bytes(row[0])
        data = self._reader.get(z, x, y)
        return None if data is None else bytes(data)

    def tilejson(self, tiles_url: str) -> dict[str, Any]:
        """A TileJSON 3.0.0 description, with ``tiles_url`` as the tile URL template."""
        doc: dict[str, Any] = {
            "tilejson": "3.0.0",
            "tiles": [tiles_url],
            "minzoom": self.min_zoom,
            "maxzoom": self.max_zoom,
            "format": self.format,
        }
        if self.bounds is not None:
            doc["bounds"] = list(self.bounds)
        if self.attribution:
            doc["attribution"] = self.attribution
        if self.name:
            doc["name"] = self.name
        return doc

    def close(self) -> None:
        if self.kind == "mbtiles":
            self._reader.close()


def open_tiles(path: str | Path) -> TileArchive:
    """Open an ``.mbtiles`` or ``.pmtiles`` file (by its first bytes, not its name).

    Raises IngestError naming the file and the reason when it is missing, unreadable,
    not a tile archive, or holds no tile.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError("no such basemap file", path=str(path))
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise IngestError(f"cannot read the basemap: {exc.strerror}", path=str(path)) from exc
    if head.startswith(b"PMTiles"):
        return _open_pmtiles(path)
    if head.startswith(b"SQLite format 3\x00"):
        return _open_mbtiles(path)
    raise IngestError("not an MBTiles (SQLite) or PMTiles v3 file", path=str(path))


def _bounds(values: list[float]) -> tuple[float, float, float, float] | None:
    if len(values) != 4:
        return None
    west, south, east, north = values
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        return None
    return (west, south, east, north)


def _open_mbtiles(path: Path) -> TileArchive:
    try:
        con = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        meta = dict(con.execute("SELECT name, value FROM metadata").fetchall())
        zooms = con.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        sample = con.execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
    except sqlite3.Error as exc:
        raise IngestError(
            f"not a readable MBTiles file (needs tables metadata and tiles): {exc}",
            path=str(path),
        ) from exc
    if zooms is None or zooms[0] is None:
        con.close()
        raise IngestError("the MBTiles file holds no tile", path=str(path))
    fmt = _MBTILES_FORMATS.get(str(meta.get("format", "")).lower())
    if fmt is None:
        con.close()
        raise IngestError(
            f"MBTiles metadata 'format' is {meta.get('format')!r}; expected one of "
            f"{', '.join(sorted(_MBTILES_FORMATS))}",
            path=str(path),
        )
    try:
        bounds = _bounds([float(v) for v in str(meta.get("bounds", "")).split(",")])
    except ValueError:
        bounds = None
    gz = fmt == "pbf" and sample is not None and bytes(sample[0][:2]) == _GZIP_MAGIC
    return TileArchive(
        path=path,
        kind="mbtiles",
        format=fmt,
        min_zoom=int(zooms[0]),
        max_zoom=int(zooms[1]),
        bounds=bounds,
        attribution=meta.get("attribution"),
        name=meta.get("name"),
        encoding="gzip" if gz else None,
        _reader=con,
    )


def _open_pmtiles(path: Path) -> TileArchive:
    from pmtiles.reader import MmapSource, Reader
    from pmtiles.tile import Compression

    try:
        with path.open("rb") as f:
            source = MmapSource(f)  # the map outlives the file object
        reader = Reader(source)
        header = reader.header()
        metadata = reader.metadata() if header["metadata_length"] else {}
    except Exception as exc:  # the reader raises its own types and struct/gzip errors
        reason = type(exc).__name__ if not str(exc) else str(exc)
        raise IngestError(f"not a readable PMTiles v3 file ({reason})", path=str(path)) from exc
    if header["internal_compression"] != Compression.GZIP:
        raise IngestError(
            f"PMTiles directories compressed with {header['internal_compression'].name} "
            "are not supported (gzip only)",
            path=str(path),
        )
    fmt = _PMTILES_FORMATS.get(header["tile_type"].value)
    if fmt is None:
        raise IngestError("PMTiles tile type is unknown", path=str(path))
    compression = header["tile_compression"]
    if compression not in (Compression.NONE, Compression.GZIP, Compression.UNKNOWN):
        raise IngestError(
            f"PMTiles tiles compressed with {compression.name} are not supported",
            path=str(path),
        )
    if header["addressed_tiles_count"] == 0 and header["tile_entries_count"] == 0:
        raise IngestError("the PMTiles file holds no tile", path=str(path))
    bounds = _bounds(
        [header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7")]
    )
    meta = metadata if isinstance(metadata, dict) else {}
    return TileArchive(
        path=path,
        kind="pmtiles",
        format=fmt,
        min_zoom=int(header["min_zoom"]),
        max_zoom=int(header["max_zoom"]),
        bounds=bounds,
        attribution=meta.get("attribution"),
        name=meta.get("name"),
        encoding="gzip" if compression == Compression.GZIP else None,
        _reader=reader,
    )
