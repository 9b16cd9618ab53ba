"""Offline orientation over HTTP: ``/orientation`` (land, borders, places) and the
``/basemap`` tiles of an MBTiles or PMTiles file, served by real uvicorn and ``dcm serve``."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import shapely
from fastapi import FastAPI

from dcm.errors import IngestError
from dcm.settings import Settings

from ..tilefiles import png, tile_of, write_mbtiles, write_pmtiles
from .serving import dcm_serve

X, Y = tile_of(-61.2, 13.25, 10)
RASTER = {(0, 0, 0): png((200, 220, 240)), (10, X, Y): png((90, 120, 90))}
MVT_RAW = b"\x1a\x0b\x0a\x05water\x78\x02"  # a vector tile's first bytes, for the test
VECTOR = {(10, X, Y): gzip.compress(MVT_RAW, mtime=0)}
ST_VINCENT = "-61.5,13.1,-61.0,13.45"


def _app(settings: Settings) -> FastAPI:
    from dcm.api import create_app

    return create_app(settings)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiles")
    return {
        "mbtiles": write_mbtiles(folder / "osm.mbtiles", RASTER),
        "pmtiles": write_pmtiles(folder / "osm.pmtiles", VECTOR, tile_type="MVT", gzip_tiles=True),
    }


@pytest.fixture(scope="module")
def servers(
    files: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    serve: Callable[[Callable[[], FastAPI]], str],
) -> dict[str, str]:
    out = {}
    for name, basemap in (
        ("mbtiles", files["mbtiles"]),
        ("pmtiles", files["pmtiles"]),
        ("none", None),
    ):
        settings = Settings(data_dir=tmp_path_factory.mktemp(name), basemap=basemap)
        out[name] = serve(lambda s=settings: _app(s))
    return out


def test_mbtiles_tiles_are_served_byte_for_byte(servers: dict[str, str]) -> None:
    with httpx.Client(base_url=servers["mbtiles"]) as client:
        for (z, x, y), data in RASTER.items():
            r = client.get(f"/basemap/{z}/{x}/{y}.png")
            assert r.status_code == 200
            assert r.content == data
            assert r.headers["content-type"] == "image/png"
            assert "max-age" in r.headers["cache-control"]
        missing = client.get(f"/basemap/10/{X + 1}/{Y}.png")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get(f"/basemap/10/{X}/{Y}.pbf").status_code == 404  # wrong format
        assert client.get("/basemap/40/0/0.png").status_code in (400, 404, 422)
        tj = client.get("/basemap/tiles.json").json()
    assert tj["format"] == "png" and (tj["minzoom"], tj["maxzoom"]) == (0, 10)
    assert tj["tiles"] == [f"{servers['mbtiles']}/basemap/{{z}}/{{x}}/{{y}}.png"]
    assert tj["bounds"] == [-61.5, 12.9, -60.9, 13.6]
    assert tj["attribution"] == "Test basemap"


def test_pmtiles_vector_tiles_keep_their_gzip(servers: dict[str, str]) -> None:
    url = f"{servers['pmtiles']}/basemap/10/{X}/{Y}.pbf"
    r = httpx.get(url)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert r.content == MVT_RAW  # decoded by the client: the stored gzip was sent once
    with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as raw:
        assert b"".join(raw.iter_raw()) == VECTOR[(10, X, Y)]
    assert httpx.get(f"{servers['pmtiles']}/basemap/9/0/0.pbf").status_code == 404


def test_without_a_basemap_the_tiles_are_not_found(servers: dict[str, str]) -> None:
    for path in ("/basemap/tiles.json", f"/basemap/10/{X}/{Y}.png"):
        r = httpx.get(servers["none"] + path)
        assert r.status_code == 404
        assert "--basemap" in r.json()["detail"]


def test_orientation_has_the_island_its_towns_and_credits(servers: dict[str, str]) -> None:
    r = httpx.get(f"{servers['none']}/orientation", params={"bbox": ST_VINCENT})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert "GSHHG" in doc["attribution"] and "GeoNames" in doc["attribution"]
    land = [f for f in doc["features"] if f["properties"]["kind"] == "land"]
    places = [f for f in doc["features"] if f["properties"]["kind"] == "place"]
    assert len(land) == 1
    island = shapely.geometry.shape(land[0]["geometry"])
    assert 0.025 < island.area < 0.033  # ~345 km² in square degrees at 13° N
    names = [f["properties"]["name"] for f in places]
    assert {"Kingstown", "Georgetown", "Chateaubelair"} <= set(names)
    pops = [f["properties"]["population"] for f in places]
    assert pops == sorted(pops, reverse=True)
    few = httpx.get(f"{servers['none']}/orientation", params={"bbox": ST_VINCENT, "places": 2})
    assert [f["properties"]["name"] for f in few.json()["features"][1:]] == names[:2]


def test_orientation_outlines_follow_the_zoom(servers: dict[str, str]) -> None:
    def coordinates(zoom: int | None) -> int:
        params = {"bbox": ST_VINCENT} | ({"zoom": str(zoom)} if zoom is not None else {})
        doc = httpx.get(f"{servers['none']}/orientation", params=params).json()
        land = next(f for f in doc["features"] if f["properties"]["kind"] == "land")
        return shapely.get_num_coordinates(shapely.geometry.shape(land["geometry"]))

    assert coordinates(7) < coordinates(12) <= coordinates(None)


@pytest.mark.parametrize(
    ("bbox", "detail"),
    [("-100,0,0,50", "more than"), ("1,2,3", "4 or 6"), ("-61,13,-62,14", "antimeridian")],
)
def test_orientation_refuses_bad_boxes(servers: dict[str, str], bbox: str, detail: str) -> None:
    r = httpx.get(f"{servers['none']}/orientation", params={"bbox": bbox})
    assert r.status_code == 400
    assert detail in r.json()["detail"]


def test_open_sea_has_no_orientation(servers: dict[str, str]) -> None:
    doc = httpx.get(f"{servers['none']}/orientation", params={"bbox": "-20.5,-30.5,-19.5,-29.5"})
    assert doc.json()["features"] == []


def test_a_bad_basemap_stops_the_app_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "extract.mbtiles"
    bad.write_text("not tiles", encoding="utf-8")
    with pytest.raises(IngestError, match="not an MBTiles"):
        _app(Settings(data_dir=tmp_path, basemap=bad))


def test_dcm_serve_refuses_a_bad_basemap_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "extract.pmtiles"
    bad.write_bytes(b"PMTiles\x03" + b"\x00" * 20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcm.cli.main",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
            "--basemap",
            str(bad),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dcm: error: ") and str(bad) in lines[0]
    assert "PMTiles" in lines[0] and "Traceback" not in done.stderr


def test_dcm_serve_serves_the_basemap_it_is_given(files: dict[str, Path], tmp_path: Path) -> None:
    with dcm_serve(tmp_path, args=["--basemap", str(files["mbtiles"])]) as (base, _):
        r = httpx.get(f"{base}/basemap/10/{X}/{Y}.png")
        assert r.status_code == 200 and r.content == RASTER[(10, X, Y)]
        page = httpx.get(f"{base}/basemap/tiles.json").json()
        assert page["format"] == "png"
