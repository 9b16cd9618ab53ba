"""Orientation on the responder map, in real headless Chromium over loopback: the coast
and place names drawn under the St Vincent sample's outages, and offline basemaps drawn
from dcm's own /basemap tiles: raster (MBTiles) and vector (Mapbox Vector Tiles in
MBTiles and PMTiles, written by the independent ``mapbox-vector-tile`` encoder, decoded
and drawn by the map's own vectortiles.js). Nothing leaves the machine."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import pytest
import shapely
from fastapi import FastAPI

from dcm.analysis.land import COAST_MARGIN_M, widen
from dcm.ingest.orientation import read_land
from dcm.settings import Settings

from .. import browser as cdp
from ..tilefiles import mvt_tiles, png, tile_of, write_mbtiles, write_pmtiles

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVENT = "stvincent"
BASEMAP_ZOOM = 10

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _app(settings: Settings) -> FastAPI:
    from dcm.api import create_app

    return create_app(settings)


@pytest.fixture(scope="module")
def settings(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store holding the St Vincent sample event, every window computed."""
    cdp.require_chromium()
    settings = Settings(data_dir=tmp_path_factory.mktemp("store"), map_refresh_s=3600)
    cdp.load_sample_event(settings, sample_data / EVENT, name=EVENT)
    return settings


@pytest.fixture(scope="module")
def basemap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raster tiles over St Vincent at one zoom, as an MBTiles file."""
    (x0, y0), (x1, y1) = tile_of(-61.5, 13.6, BASEMAP_ZOOM), tile_of(-60.9, 12.9, BASEMAP_ZOOM)
    tiles = {
        (BASEMAP_ZOOM, x, y): png((120 + 10 * (x - x0), 160, 120 + 10 * (y - y0)))
        for x in range(x0, x1 + 1)
        for y in range(y0, y1 + 1)
    }
    return write_mbtiles(tmp_path_factory.mktemp("tiles") / "island.mbtiles", tiles)


#: Vector basemap features (WGS84): a bay west of the island, a road across it, a town.
WATER = shapely.box(-61.36, 13.20, -61.30, 13.36)
ROAD = shapely.LineString([(-61.23, 13.16), (-61.15, 13.34)])
TOWN = shapely.Point(-61.22, 13.16)
#: Points the tests sample: in the bay, on land clear of everything, on the road.
IN_WATER, ON_LAND, ON_ROAD = (13.25, -61.33), (13.25, -61.26), (13.25, -61.19)
#: The tile (z 12) stored as garbage in the vector MBTiles: in view, away from the points.
BROKEN = (12, *tile_of(-61.33, 13.33, 12))
VECTOR_ZOOMS = range(10, 13)


def _vector_layers(schema: str) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """The same map in the OpenMapTiles or the Protomaps schema, with a layer this map
    does not know (buildings) over the land point, which must stay unpainted."""
    house = shapely.Point(ON_LAND[1], ON_LAND[0]).buffer(0.01)
    if schema == "openmaptiles":
        return {
            "water": [(WATER, {"class": "ocean"})],
            "transportation": [(ROAD, {"class": "primary"})],
            "place": [(TOWN, {"name": "Testtown", "class": "town"})],
            "building": [(house, {"render_height": 5})],
        }
    earth = shapely.box(-61.45, 13.05, -61.05, 13.45)
    return {
        "earth": [(earth, {"kind": "earth"})],
        "water": [(WATER, {"kind": "water"})],
        "roads": [(ROAD, {"kind": "major_road"})],
        "places": [(TOWN, {"name": "Testtown", "kind": "locality", "population": 2000})],
        "buildings": [(house, {"kind": "building"})],
    }


@pytest.fixture(scope="module")
def vector_basemaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Vector basemaps over St Vincent, zooms 10-12: gzip-compressed OpenMapTiles tiles
    in MBTiles (one stored as garbage) and plain Protomaps tiles in PMTiles."""
    folder = tmp_path_factory.mktemp("vector")
    omt = mvt_tiles(_vector_layers("openmaptiles"), zooms=VECTOR_ZOOMS, gzip_tiles=True)
    assert BROKEN in omt
    omt[BROKEN] = gzip.compress(b"\x1a\x09\x0a\x05water\x12\xff\xff\xff")  # cut short
    pm = mvt_tiles(_vector_layers("protomaps"), zooms=VECTOR_ZOOMS)
    return {
        "mbtiles": write_mbtiles(folder / "omt.mbtiles", omt, fmt="pbf", attribution="Test OSM"),
        "pmtiles": write_pmtiles(folder / "pm.pmtiles", pm, tile_type="MVT"),
    }


@pytest.fixture(scope="module")
def urls(
    settings: Settings,
    basemap: Path,
    vector_basemaps: dict[str, Path],
    serve: Callable[[Callable[[], FastAPI]], str],
) -> dict[str, str]:
    made = {"plain": serve(lambda: _app(settings))}
    for name, path in {"basemap": basemap, **vector_basemaps}.items():
        with_tiles = settings.model_copy(update={"basemap": path})
        made[name] = serve(lambda s=with_tiles: _app(s))
    return made


def _open(url: str) -> Iterator[Any]:
    with cdp.Chromium(cdp.require_chromium(), width=1100, height=800) as browser:
        browser.navigate(f"{url}/events/{EVENT}/map")
        browser.wait_js("window.dcm && window.dcm.ready", timeout=90)
        browser.wait_js("window.dcm.orientation && window.dcm.orientation.ready", timeout=60)
        browser.idle(timeout=60)
        yield browser


@pytest.fixture(scope="module")
def plain(urls: dict[str, str]) -> Iterator[Any]:
    yield from _open(urls["plain"])


@pytest.fixture(scope="module")
def tiled(urls: dict[str, str]) -> Iterator[Any]:
    yield from _open(urls["basemap"])


def _requests_stay_local(page: Any) -> list[Any]:
    requests = [r for r in list(page.requests.values()) if not r.url.startswith("data:")]
    assert requests
    for r in requests:
        assert r.host == "127.0.0.1", f"request left loopback: {r}"
        assert r.failed is None, f"request failed: {r}"
    return requests


def test_coast_and_place_names_are_drawn_under_the_outages(plain: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    plain.screenshot(ARTIFACTS / "map-orientation.png")
    names = plain.evaluate("[...document.querySelectorAll('.dcm-place')].map(e => e.textContent)")
    assert "Kingstown" in names
    assert len(names) >= 5
    coast = plain.evaluate(
        "[...document.querySelectorAll('.leaflet-orientation-pane path.dcm-coast')]"
        ".map(p => p.getAttribute('d').length)"
    )
    assert coast and max(coast) > 200  # the island's outline, hundreds of path commands
    # Land lies under the data, place names over the outages but under the cell sites.
    z = plain.evaluate(
        "['orientation', 'areas', 'outages', 'orientation-labels', 'cells'].map(n =>"
        " +getComputedStyle(document.querySelector(`.leaflet-${n}-pane`)).zIndex)"
    )
    assert z == sorted(z)
    info = plain.evaluate("window.dcm.orientation")
    assert info["land"] == 1 and info["basemap"] is None and info["errors"] == []
    assert "GeoNames" in plain.evaluate(
        "document.querySelector('.leaflet-control-attribution').textContent"
    )


def test_plain_map_makes_no_request_beyond_this_server(plain: Any) -> None:
    requests = _requests_stay_local(plain)
    assert any("/orientation?" in r.url and r.status == 200 for r in requests)
    assert not any("/basemap/" in r.url for r in requests)


def test_live_outages_stay_on_the_island(urls: dict[str, str]) -> None:
    body = httpx.get(
        f"{urls['plain']}/collections/{EVENT}-outages/items", params={"limit": 10000}, timeout=60
    ).json()
    geoms = shapely.from_geojson(
        [shapely.to_geojson(shapely.geometry.shape(f["geometry"])) for f in body["features"]]
    )
    assert len(geoms) > 0
    land = read_land(tuple(shapely.total_bounds(geoms)))
    assert land is not None
    assert shapely.covers(widen(land, COAST_MARGIN_M + 5), geoms).all()


def test_offline_basemap_tiles_are_drawn_from_dcm(tiled: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tiled.screenshot(ARTIFACTS / "map-offline-basemap.png")
    loaded = tiled.evaluate(
        "[...document.querySelectorAll('img.leaflet-tile')]"
        ".filter(i => i.src.includes('/basemap/') && i.complete && i.naturalWidth === 256)"
        ".map(i => i.src)"
    )
    assert loaded, "no basemap tile was drawn"
    assert all(f"/basemap/{BASEMAP_ZOOM}/" in src for src in loaded)
    info = tiled.evaluate("window.dcm.orientation")
    assert info["basemap"] == "png" and info["labels"] == 0  # the basemap has its own
    requests = _requests_stay_local(tiled)
    tiles = [r for r in requests if "/basemap/" in r.url and r.url.endswith(".png")]
    assert tiles and all(r.status in (200, 304) for r in tiles)


#: The basemap's canvas pixel (RGBA) under a point, and its tile, among the tiles of the
#: map's zoom; null where no tile is drawn.
PIXEL_JS = """(([lat, lon], dx, dy) => {
  const map = dcm.map, pt = map.latLngToContainerPoint([lat, lon]);
  const box = map.getContainer().getBoundingClientRect();
  const x = box.left + pt.x + dx, y = box.top + pt.y + dy;
  for (const c of document.querySelectorAll(`canvas.leaflet-tile[data-z="${map.getZoom()}"]`)) {
    const r = c.getBoundingClientRect();
    if (x < r.left || x >= r.right || y < r.top || y >= r.bottom) continue;
    const k = c.width / r.width;
    const px = c.getContext('2d').getImageData(Math.floor((x - r.left) * k),
      Math.floor((y - r.top) * k), 1, 1).data;
    return { rgba: [...px], tile: c.dataset.tile };
  }
  return null;
})"""


def _pixel(page: Any, at: tuple[float, float], dx: int = 0, dy: int = 0) -> dict[str, Any]:
    found = page.evaluate(f"{PIXEL_JS}({list(at)}, {dx}, {dy})")
    assert found is not None, f"no basemap tile drawn under {at}"
    return found


def _colour(page: Any, name: str) -> list[int]:
    hexa = page.evaluate(f"dcm.vectorTiles.STYLE.{name}")
    return [int(hexa[i : i + 2], 16) for i in (1, 3, 5)] + [255]


def _near(rgba: list[int], colour: list[int], tol: int = 6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgba, colour, strict=True))


def _show(page: Any, zoom: int, centre: tuple[float, float] = (13.25, -61.26)) -> None:
    """Frame ``centre`` (by default the bay and the island) at ``zoom`` and wait for
    every basemap tile."""
    page.evaluate(f"void dcm.map.setView({list(centre)}, {zoom}, {{ animate: false }})")
    page.wait_js(f"dcm.map.getZoom() === {zoom} && !dcm.basemapLayer.isLoading()", timeout=60)
    page.idle(timeout=60)


@pytest.fixture(scope="module", params=["mbtiles", "pmtiles"])
def vector(request: pytest.FixtureRequest, urls: dict[str, str]) -> Iterator[Any]:
    for browser in _open(urls[request.param]):
        browser.archive = request.param
        yield browser


def test_vector_basemap_draws_water_roads_and_names(vector: Any) -> None:
    _show(vector, 12)
    ARTIFACTS.mkdir(exist_ok=True)
    vector.screenshot(ARTIFACTS / f"map-vector-basemap-{vector.archive}.png")
    water, land, road = _colour(vector, "water"), _colour(vector, "land"), _colour(vector, "road")
    assert _near(_pixel(vector, IN_WATER)["rgba"], water)
    on_land = _pixel(vector, ON_LAND)["rgba"]
    # The buildings layer there is not one this map knows: the land stays plain.
    assert _near(on_land, land) and not _near(on_land, water)
    around = [_pixel(vector, ON_ROAD, dx, 0)["rgba"] for dx in range(-4, 5)]
    assert any(_near(p, road, 3) for p in around), around
    assert not _near(_pixel(vector, ON_ROAD, 30, 0)["rgba"], road, 3)
    # The town's name in dark letters around its point.
    dark = [
        _pixel(vector, (TOWN.y, TOWN.x), dx, dy)["rgba"]
        for dx in range(-24, 25, 2)
        for dy in range(-4, 5, 2)
    ]
    assert any(max(p[:3]) < 120 for p in dark)
    info = vector.evaluate("dcm.orientation")
    assert info["basemap"] == "pbf" and info["labels"] == 0  # the basemap names places
    stats = info["vector"]
    assert "Testtown" in stats["labels"]
    assert {"water", "road", "place"} <= set(stats["roles"])
    assert "building" not in stats["roles"] and "buildings" not in stats["roles"]


def test_vector_basemap_stays_sharp_past_its_deepest_zoom(vector: Any) -> None:
    # The archive stops at 12: at 14 its tiles' parts are drawn again, as vectors.
    water, road = _colour(vector, "water"), _colour(vector, "road")
    _show(vector, 14, ON_ROAD)
    around = [_pixel(vector, ON_ROAD, dx, 0)["rgba"] for dx in range(-6, 7)]
    assert any(_near(p, road, 3) for p in around)
    edge = (13.25, -61.30)  # the bay's eastern shore
    _show(vector, 14, edge)
    assert _near(_pixel(vector, edge, -40)["rgba"], water)
    # Sharp: from water to land within a few pixels, not a blur of 4 enlarged pixels.
    row = [_pixel(vector, edge, dx, 0)["rgba"] for dx in range(-3, 4)]
    assert _near(row[0], water) and not _near(row[-1], water)
    requested = vector.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(u => u.includes('/basemap/') && !u.endsWith('.json'))"
    )
    assert requested and not any("/basemap/13/" in u or "/basemap/14/" in u for u in requested)
    _show(vector, 12)


def test_a_broken_vector_tile_leaves_only_itself_blank(vector: Any) -> None:
    _show(vector, 12)
    stats = vector.evaluate("dcm.orientation.vector")
    broken = "/".join(map(str, BROKEN))
    tiles = vector.evaluate(
        "[...document.querySelectorAll('canvas.leaflet-tile[data-z=\"12\"]')]"
        ".map(c => c.dataset.tile)"
    )
    assert broken in tiles  # in view
    if vector.archive == "pmtiles":
        assert stats["failed"] == 0 and stats["errors"] == []
    else:
        # The MBTiles holds it as garbage: it stays blank, the others are drawn.
        assert any("varint" in e or "past" in e for e in stats["errors"]), stats["errors"]
        blank = vector.evaluate(
            f"(() => {{ const c = document.querySelector('canvas[data-tile=\"{broken}\"]');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " return d.every((v, i) => i % 4 !== 3 || v === 0); })()"
        )
        assert blank
    assert stats["drawn"] >= len(tiles) - 1
    assert vector.evaluate("dcm.ready") and vector.evaluate("dcm.orientation.errors") == []


def test_vector_basemap_requests_stay_local_and_load_only_with_it(vector: Any, plain: Any) -> None:
    requests = _requests_stay_local(vector)
    tiles = [r for r in requests if "/basemap/1" in r.url and r.url.endswith(".pbf")]
    # 404 where the archive holds no tile (this small one only has tiles with features).
    assert all(r.status in (200, 304, 404) for r in tiles)
    assert sum(r.status == 200 for r in tiles) >= 4
    script = [r for r in requests if "/static/map/vectortiles.js" in r.url]
    assert len(script) == 1 and script[0].status in (200, 304)
    # The plain map's first load does not carry the vector renderer.
    assert not any("vectortiles.js" in r.url for r in _requests_stay_local(plain))


def test_vector_tiles_decode_like_an_independent_decoder(vector: Any) -> None:
    """Every geometry type, property types and holes, encoded by mapbox-vector-tile and
    gzip-compressed: vectortiles.js (through DecompressionStream) reads what the
    package's own decoder reads."""
    polygon = shapely.Polygon(
        [(100, 100), (3000, 100), (3000, 3000), (100, 3000)],
        [[(1000, 1000), (1000, 2000), (2000, 2000), (2000, 1000)]],
    )
    layers = [
        {
            "name": "mixed",
            "features": [
                {"geometry": polygon, "properties": {"name": "Lac", "depth": -12, "ok": True}},
                {"geometry": shapely.MultiPoint([(5, 7), (4000, 12)]), "properties": {"f": 2.5}},
                {
                    "geometry": shapely.MultiLineString([[(0, 0), (10, 4000)], [(7, 7), (9, 9)]]),
                    "properties": {"big": 2**40, "name": "Rue"},
                },
            ],
        },
        {"name": "empty", "features": []},
    ]
    options = {"y_coord_down": True, "extents": 4096}
    raw = mapbox_vector_tile.encode(layers, default_options=options)
    expected = mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True})
    blob = base64.b64encode(gzip.compress(raw)).decode()
    got = vector.evaluate(
        f"(async () => {{ const b = Uint8Array.from(atob('{blob}'), c => c.charCodeAt(0));"
        " return dcm.vectorTiles.decode(await dcm.vectorTiles.inflate(b)); })()"
    )
    assert set(got) == set(expected)
    for name, layer in expected.items():
        assert got[name]["extent"] == layer["extent"]
        assert len(got[name]["features"]) == len(layer["features"])
        for mine, theirs in zip(got[name]["features"], layer["features"], strict=True):
            assert mine["properties"] == pytest.approx(theirs["properties"])
            geom = shapely.geometry.shape(theirs["geometry"])
            kind = {"Point": 1, "MultiPoint": 1, "LineString": 2, "MultiLineString": 2}
            assert mine["type"] == kind.get(geom.geom_type, 3)
            coords = [shapely.get_coordinates(g).ravel().tolist() for g in _parts(geom)]
            assert mine["parts"] == coords


def _parts(geom: Any) -> list[Any]:
    """The rings and lines of a geometry, in MVT order, each ring closed."""
    if geom.geom_type == "MultiPoint":
        return list(geom.geoms)  # one MoveTo with several points: one part each
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        polys = getattr(geom, "geoms", [geom])
        return [r for p in polys for r in (p.exterior, *p.interiors)]
    return list(getattr(geom, "geoms", [geom]))


def test_truncated_vector_tiles_fail_cleanly(vector: Any) -> None:
    """Every prefix of a real tile either decodes or raises an Error: no hang, no
    runaway loop, nothing but Error objects."""
    raw = mapbox_vector_tile.encode(
        [{"name": "water", "features": [{"geometry": WATER.buffer(1), "properties": {"a": 1}}]}]
    )
    blob = base64.b64encode(raw).decode()
    outcome = vector.evaluate(
        f"(() => {{ const b = Uint8Array.from(atob('{blob}'), c => c.charCodeAt(0));"
        " const out = {ok: 0, failed: 0, other: []};"
        " for (let n = 0; n < b.length; n++) {"
        "   try { dcm.vectorTiles.decode(b.subarray(0, n)); out.ok++; }"
        "   catch (e) { if (e instanceof Error) out.failed++; else out.other.push(String(e)); } }"
        " return out; })()"
    )
    assert outcome["other"] == []
    assert outcome["failed"] > 0 and outcome["ok"] + outcome["failed"] == len(raw)
