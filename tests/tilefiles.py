"""Real tile archives for the basemap tests, written in ``tmp_path``: PNG tiles, Mapbox
Vector Tiles (through the ``mapbox-vector-tile`` encoder), MBTiles 1.3 (SQLite, TMS rows)
and PMTiles v3 (through Protomaps' ``pmtiles`` writer)."""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

Tiles = Mapping[tuple[int, int, int], bytes]  # (z, x, y) XYZ -> tile bytes


def png(rgb: tuple[int, int, int], *, size: int = 256) -> bytes:
    """A solid ``size`` x ``size`` RGB PNG (signature, IHDR, IDAT, IEND with CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * size  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def write_mbtiles(
    path: Path,
    tiles: Tiles,
    *,
    fmt: str = "png",
    bounds: str = "-61.5,12.9,-60.9,13.6",
    attribution: str = "Test basemap",
) -> Path:
    """An MBTiles file: ``metadata`` and ``tiles`` with TMS rows (``2**z - 1 - y``)."""
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        con.execute(
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, "
            "tile_data BLOB)"
        )
        con.executemany(
            "INSERT INTO metadata VALUES (?, ?)",
            [
                ("name", "test"),
                ("format", fmt),
                ("bounds", bounds),
                ("attribution", attribution),
                ("minzoom", str(min(z for z, _, _ in tiles))),
                ("maxzoom", str(max(z for z, _, _ in tiles))),
            ],
        )
        con.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, 2**z - 1 - y, data) for (z, x, y), data in tiles.items()],
        )
    con.close()
    return path


def write_pmtiles(
    path: Path,
    tiles: Tiles,
    *,
    tile_type: str = "PNG",
    gzip_tiles: bool = False,
    attribution: str = "Test basemap",
) -> Path:
    """A PMTiles v3 archive of ``tiles`` (``tile_type``: PNG, JPEG, WEBP or MVT)."""
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import write

    with write(str(path)) as writer:
        for (z, x, y), data in sorted(tiles.items(), key=lambda kv: zxy_to_tileid(*kv[0])):
            writer.write_tile(zxy_to_tileid(z, x, y), data)
        writer.finalize(
            {
                "tile_type": TileType[tile_type],
                "tile_compression": Compression.GZIP if gzip_tiles else Compression.NONE,
                "min_lon_e7": int(-61.5e7),
                "min_lat_e7": int(12.9e7),
                "max_lon_e7": int(-60.9e7),
                "max_lat_e7": int(13.6e7),
                "center_zoom": 10,
                "center_lon_e7": int(-61.2e7),
                "center_lat_e7": int(13.25e7),
            },
            {"attribution": attribution, "name": "test"},
        )
    return path


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ column and row of the web-mercator tile holding (lon, lat) at zoom ``z``."""
    import math

    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    lat_r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n)
    return x, y


def mercator(lon: float, lat: float) -> tuple[float, float]:
    """Web-mercator metres (EPSG:3857) of a WGS84 point."""
    import math

    r = 6378137.0
    return math.radians(lon) * r, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * r


def mvt_tiles(
    layers: Mapping[str, list[tuple[Any, dict[str, Any]]]],
    *,
    zooms: range,
    bbox: tuple[float, float, float, float] = (-61.5, 12.9, -60.9, 13.6),
    gzip_tiles: bool = False,
) -> dict[tuple[int, int, int], bytes]:
    """Mapbox Vector Tiles (through the ``mapbox-vector-tile`` encoder) of ``layers``
    (name -> [(shapely geometry in WGS84, properties)]) at ``zooms`` over ``bbox``; each
    tile holds what its square (plus a small buffer) holds, extent 4096."""
    import gzip

    import mapbox_vector_tile
    import shapely

    half, extent, pad = 20037508.342789244, 4096, 64
    out = {}
    for z in zooms:
        (x0, y0), (x1, y1) = tile_of(bbox[0], bbox[3], z), tile_of(bbox[2], bbox[1], z)
        size = 2 * half / 2**z
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                # Tile units, y down from the tile's north edge (what MVT stores).
                def to_tile(
                    c: np.ndarray, x: int = x, y: int = y, size: float = size
                ) -> np.ndarray:
                    m = np.array([mercator(lon, lat) for lon, lat in c]).reshape(-1, 2)
                    u = (m[:, 0] + half - x * size) / size * extent
                    v = (half - m[:, 1] - y * size) / size * extent
                    return np.column_stack([u, v])

                encoded = []
                for name, features in layers.items():
                    kept = []
                    for geom, props in features:
                        clipped = shapely.clip_by_rect(
                            shapely.transform(geom, to_tile), -pad, -pad, extent + pad, extent + pad
                        )
                        if not clipped.is_empty:
                            kept.append({"geometry": clipped, "properties": props})
                    if kept:
                        encoded.append({"name": name, "features": kept})
                if not encoded:
                    continue
                data = mapbox_vector_tile.encode(
                    encoded, default_options={"y_coord_down": True, "extents": extent}
                )
                out[(z, x, y)] = gzip.compress(data) if gzip_tiles else data
    return out
