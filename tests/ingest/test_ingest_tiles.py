"""Offline basemap archives: MBTiles and PMTiles read back tile for tile, bad files refused."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from dcm.errors import IngestError
from dcm.ingest.tiles import open_tiles

from ..tilefiles import png, write_mbtiles, write_pmtiles

TILES = {
    (0, 0, 0): png((200, 220, 240)),
    (1, 0, 0): png((10, 20, 30)),  # north-west: XYZ row 0 is TMS row 1
    (1, 0, 1): png((40, 50, 60)),
    (10, 337, 477): png((90, 90, 90)),
}


def test_mbtiles_tiles_come_back_by_xyz_row(tmp_path: Path) -> None:
    archive = open_tiles(write_mbtiles(tmp_path / "b.mbtiles", TILES))
    assert (archive.kind, archive.format, archive.media_type) == ("mbtiles", "png", "image/png")
    assert (archive.min_zoom, archive.max_zoom) == (0, 10)
    assert archive.bounds == (-61.5, 12.9, -60.9, 13.6)
    assert archive.attribution == "Test basemap"
    for (z, x, y), data in TILES.items():
        assert archive.get(z, x, y) == data
    assert archive.get(1, 1, 1) is None  # not stored
    assert archive.get(1, 2, 0) is None  # outside the zoom's grid
    archive.close()


def test_pmtiles_tiles_come_back(tmp_path: Path) -> None:
    archive = open_tiles(write_pmtiles(tmp_path / "b.pmtiles", TILES))
    assert (archive.kind, archive.format, archive.encoding) == ("pmtiles", "png", None)
    assert (archive.min_zoom, archive.max_zoom) == (0, 10)
    assert archive.bounds == pytest.approx((-61.5, 12.9, -60.9, 13.6))
    assert archive.attribution == "Test basemap"
    for (z, x, y), data in TILES.items():
        assert archive.get(z, x, y) == data
    assert archive.get(10, 337, 476) is None
    doc = archive.tilejson("http://h/basemap/{z}/{x}/{y}.png")
    assert doc["tiles"] == ["http://h/basemap/{z}/{x}/{y}.png"]
    assert (doc["minzoom"], doc["maxzoom"], doc["format"]) == (0, 10, "png")


def test_gzip_vector_tiles_are_flagged(tmp_path: Path) -> None:
    mvt = {(5, 10, 15): gzip.compress(b"\x1a\x05layer", mtime=0)}
    pm = open_tiles(write_pmtiles(tmp_path / "v.pmtiles", mvt, tile_type="MVT", gzip_tiles=True))
    mb = open_tiles(write_mbtiles(tmp_path / "v.mbtiles", mvt, fmt="pbf"))
    for archive in (pm, mb):
        assert (archive.format, archive.encoding) == ("pbf", "gzip")
        assert archive.media_type == "application/vnd.mapbox-vector-tile"
        assert archive.get(5, 10, 15) == mvt[(5, 10, 15)]


def test_the_file_kind_comes_from_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = write_pmtiles(tmp_path / "named-wrong.mbtiles", TILES)
    assert open_tiles(path).kind == "pmtiles"


def _no_tiles_table(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    con.commit()
    con.close()
    return path


def _empty_mbtiles(path: Path) -> Path:
    write_mbtiles(path, {(0, 0, 0): b"x"})
    con = sqlite3.connect(path)
    con.execute("DELETE FROM tiles")
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p, "no such basemap file"),
        (lambda p: (p.write_text("hello", encoding="utf-8"), p)[1], "not an MBTiles"),
        (lambda p: (p.write_bytes(b""), p)[1], "not an MBTiles"),
        (_no_tiles_table, "not a readable MBTiles file"),
        (_empty_mbtiles, "holds no tile"),
        (lambda p: write_mbtiles(p, TILES, fmt="tiff"), "metadata 'format' is 'tiff'"),
        (
            lambda p: (p.write_bytes(write_pmtiles(p, TILES).read_bytes()[:60]), p)[1],
            "not a readable PMTiles v3 file",
        ),
    ],
    ids=["missing", "text", "empty", "no-tiles-table", "no-tile", "format", "truncated"],
)
def test_bad_files_are_refused_with_their_name_and_reason(make, reason, tmp_path: Path) -> None:
    path = tmp_path / "basemap.bin"
    make(path)
    with pytest.raises(IngestError, match=reason) as info:
        open_tiles(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
