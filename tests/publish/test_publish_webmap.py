"""The batch outage map (``map.html``): the live map's own client with its data inlined.

One page that opens from disk with no request: Leaflet, the shared ``map.js``/``map.css``
and every window's layers are in it. Checked on the HTML, then in headless Chromium
opened from a file:// URL (every request recorded, none may leave the file).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from dcm.errors import ParameterError
from dcm.publish import leaflet_assets, render_map
from dcm.publish.assets import MAP_CLIENT_DIR
from dcm.publish.webmap import network_look, read_page_data

from .. import browser as cdp

T0 = pd.Timestamp("2021-04-09T12:00:00Z")


class _Links(HTMLParser):
    """Collects every src/href attribute and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append((tag, name, value))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _outages(windows: int = 3) -> gpd.GeoDataFrame:
    rows = []
    for w in range(windows):
        start = T0 + pd.Timedelta(hours=w)
        common = {"window_start": start, "window_end": start + pd.Timedelta(hours=1), "onset": T0}
        rows.append(
            common
            | {
                "outage_id": "all",
                "network": "all",
                "severity": "outage",
                "confidence": 0.93,
                "area_km2": 12.5,
                "population": 1234.0 + w,
                "cells_offline": 3,
                "geometry": Point(-61.2, 13.3).buffer(0.02 + 0.01 * w),
            }
        )
        rows.append(
            common
            | {
                "outage_id": "net",
                "network": "358-110",
                "severity": "outage",
                "confidence": 0.7,
                "area_km2": 3.0,
                "population": np.nan,
                "cells_offline": 1,
                "geometry": box(-61.15, 13.2, -61.1, 13.25),
            }
        )
        rows.append(
            common
            | {
                "outage_id": "part",
                "network": "all",
                "severity": "degraded",
                "confidence": 0.8,
                "area_km2": 3.0,
                "population": 50.0,
                "cells_offline": 0,
                "geometry": box(-61.15, 13.2, -61.1, 13.25),
            }
        )
        if w == windows - 2:  # ends before the last window: service came back there
            rows.append(
                common
                | {
                    "outage_id": "gone",
                    "network": "all",
                    "severity": "outage",
                    "confidence": 0.95,
                    "area_km2": 1.0,
                    "population": 77.0,
                    "cells_offline": 2,
                    "geometry": box(-61.3, 13.1, -61.25, 13.15),
                }
            )
    return gpd.GeoDataFrame(rows, crs="EPSG:4326")


def _cells(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "radio": "LTE",
            "mcc": 358,
            "net": 110,
            "area": rng.integers(1, 9, n),
            "cell": np.arange(n),
            "lon": -61.2 + rng.normal(0, 0.05, n),
            "lat": 13.25 + rng.normal(0, 0.05, n),
            "status": rng.choice(["online", "offline", "unknown"], n),
            "p_offline": rng.random(n),
        }
    )


def _suspected_outages() -> gpd.GeoDataFrame:
    """Two windows: a confirmed no-service outage, a suspected one and a suspected
    outage of one network."""
    outages = _outages(2)
    outages["tier"] = "confirmed"
    outages["certainty"] = "observed"
    rows = []
    for w in range(2):
        start = T0 + pd.Timedelta(hours=w)
        common = {"window_start": start, "window_end": start + pd.Timedelta(hours=1), "onset": T0}
        rows.append(
            common
            | {
                "outage_id": "maybe",
                "network": "all",
                "severity": "outage",
                "tier": "suspected",
                "certainty": "possible",
                "confidence": 0.63,
                "area_km2": 2.0,
                "population": 40.0,
                "cells_offline": 0,
                "geometry": box(-61.35, 13.35, -61.3, 13.4),
            }
        )
        rows.append(
            common
            | {
                "outage_id": "maybe-net",
                "network": "358-50",
                "severity": "outage",
                "tier": "suspected",
                "certainty": "possible",
                "confidence": 0.55,
                "area_km2": 1.0,
                "population": 10.0,
                "cells_offline": 0,
                "geometry": box(-61.05, 13.35, -61.0, 13.4),
            }
        )
    extra = gpd.GeoDataFrame(rows, crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.concat([outages, extra], ignore_index=True), crs="EPSG:4326")


def _client_size() -> int:
    """Bytes of Leaflet and the client's own files, which every page carries."""
    own = sum((MAP_CLIENT_DIR / n).stat().st_size for n in ("map.js", "map.css", "map.html"))
    return own + sum(p.stat().st_size for p in leaflet_assets().values())


def _outage_props(page: str) -> list[dict[str, Any]]:
    return [f["properties"] for f in read_page_data(page)["layers"]["outages"]["features"]]


def test_map_is_self_contained_and_carries_the_shared_client_and_every_window() -> None:
    page = render_map(
        outages=_outages(),
        cells=_cells(),
        title="St Vincent <test>",
        attribution="Cells: OpenCelliD (CC BY-SA 4.0)",
        downloads={"Outages (GeoJSON)": "outages.geojson"},
    )
    parser = _Links()
    parser.feed(page)
    external = [u for u in parser.urls if re.match(r"(https?:)?//", u[2])]
    assert external == [], external
    # Nothing linked but the empty favicon (a data: URI, which stops the browser asking).
    linked = re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"([^\"]*)\"", page)
    assert linked == ["data:,"], linked
    leaflet = leaflet_assets()["leaflet.js"].read_text(encoding="utf-8")
    assert any(leaflet[-2000:] in s for s in parser.scripts)  # Leaflet inlined verbatim
    # The live map's own script and stylesheet, verbatim: one client for both maps.
    for name in ("map.js", "orientation.js"):
        code = (MAP_CLIENT_DIR / name).read_text(encoding="utf-8")
        assert code in parser.scripts, name
    assert (MAP_CLIENT_DIR / "map.css").read_text(encoding="utf-8") in page
    assert "leaflet-control-layers" in page  # Leaflet CSS inlined
    assert "url(images/" not in page  # CSS images embedded as data URIs
    assert "jquery" not in page.lower() and "bootstrap" not in page.lower()
    assert "folium" not in page.lower()
    # Every window is embedded (people of the no-service outage grow 1,234 → 1,236).
    props = _outage_props(page)
    people = sorted({p["population"] for p in props if p["outage_id"] == "all"})
    assert people == [1234.0, 1235.0, 1236.0]
    assert "gone" in {p["outage_id"] for p in props}
    assert len(props) == len(_outages())
    assert 'lang="en"' in page and "St Vincent &lt;test&gt;" in page
    assert "Cells: OpenCelliD (CC BY-SA 4.0)" in page
    assert '<a href="outages.geojson">Outages (GeoJSON)</a>' in page
    cells = read_page_data(page)["layers"]["cells"]
    assert len(cells["x"]) == len(cells["y"]) == 300


def test_map_window_choice_and_errors() -> None:
    data = read_page_data(render_map(outages=_outages(1)))
    assert len(data["event"]["windows"]) == 1 and data["selected"] == 0
    # Several: opens at the peak (most people: 1,235 + 50 + 77 in the second window) …
    data = read_page_data(render_map(outages=_outages()))
    assert data["event"]["windows"] == [
        {"end": "2021-04-09T13:00Z", "start": "2021-04-09T12:00Z"},
        {"end": "2021-04-09T14:00Z", "start": "2021-04-09T13:00Z"},
        {"end": "2021-04-09T15:00Z", "start": "2021-04-09T14:00Z"},
    ]
    assert data["peak"] == data["selected"] == 1
    assert data["event"]["high_water"] == "2021-04-09T15:00Z"
    # … or at the window asked for.
    page = render_map(outages=_outages(), window_end=T0 + pd.Timedelta(hours=1))
    assert read_page_data(page)["selected"] == 0
    page = render_map(outages=_outages(), window_end="2021-04-09T15:00Z")
    assert read_page_data(page)["selected"] == 2
    with pytest.raises(ParameterError):
        render_map(outages=_outages(), cells=_cells().drop(columns="lat"))
    with pytest.raises(ParameterError, match="not one of the outage windows"):
        render_map(outages=_outages(), window_end=T0 + pd.Timedelta(minutes=90))
    # The peak counts confirmed outages (1,361 people in the first window, 1,285 in the
    # second): a suspected million in the second does not move it.
    outages = _suspected_outages()
    second = outages["window_end"] == outages["window_end"].max()
    outages.loc[second & (outages["outage_id"] == "maybe"), "population"] = 1e6
    assert read_page_data(render_map(outages=outages))["peak"] == 0


def test_embedded_data_is_verbatim_and_cannot_end_its_element() -> None:
    outages = _outages()
    outages["outage_id"] = "{{ 7 * 7 }} </script> <!-- {% if x %}"
    page = render_map(outages=outages)
    data = page[page.index('id="dcm-data">') :]
    data = data[: data.index("</script>")]
    assert "<" not in data.removeprefix('id="dcm-data">')
    props = _outage_props(page)
    assert {p["outage_id"] for p in props} == {"{{ 7 * 7 }} </script> <!-- {% if x %}"}
    # Every window's outages share one list of distinct shapes.
    layer = read_page_data(page)["layers"]["outages"]
    assert len(layer["features"]) == len(outages)
    assert len(layer["geometries"]) == len(set(outages.geometry.to_wkb())) < len(outages)


def test_map_stays_small_with_many_cells() -> None:
    page = render_map(outages=_outages(1), cells=_cells(5000))
    # Per cell well under 100 bytes on top of Leaflet and the client.
    assert len(page.encode()) - _client_size() < 5000 * 100


def test_map_without_data_and_with_opt_in_basemap() -> None:
    empty = gpd.GeoDataFrame({"network": [], "severity": []}, geometry=[], crs="EPSG:4326")
    data = read_page_data(render_map(outages=empty))
    assert data["event"]["windows"] == [] and data["layers"] == {}
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"
    page = render_map(outages=_outages(), tiles_url=tiles, tiles_attribution="© Example")
    assert tiles in page and "© Example" in page  # only when asked for
    assert tiles not in render_map(outages=_outages())


@pytest.mark.slow
def test_map_of_real_opencellid_cells(shared_data: Path) -> None:
    from dcm.ingest import read_cells

    cells = read_cells(shared_data / "opencellid" / "ecuador_740.csv.gz").frame
    cells["status"] = np.where(cells["samples"].fillna(0) > 5, "online", "unknown")
    empty = gpd.GeoDataFrame({"network": [], "severity": []}, geometry=[], crs="EPSG:4326")
    page = render_map(outages=empty, cells=cells)
    per_cell = (len(page.encode()) - _client_size()) / len(cells)
    assert len(cells) > 70_000
    assert per_cell < 70
    layer = read_page_data(page)["layers"]["cells"]
    west, east, south, north = min(layer["x"]), max(layer["x"]), min(layer["y"]), max(layer["y"])
    assert -6 < south < north < 2 and -93 < west < east < -75  # Ecuador incl. Galápagos


def test_leaflet_assets_are_files() -> None:
    assets = leaflet_assets()
    assert {"leaflet.js", "leaflet.css", "images/layers.png"} <= set(assets)
    assert all(p.is_file() for p in assets.values())


def test_suspected_outages_keep_their_tier_in_the_data() -> None:
    props = _outage_props(render_map(outages=_suspected_outages()))
    tiers = {(p["outage_id"], p["tier"], p.get("certainty")) for p in props}
    assert ("maybe", "suspected", "possible") in tiers
    assert ("all", "confirmed", "observed") in tiers
    # Frames from before the tiers: every outage confirmed.
    assert {p["tier"] for p in _outage_props(render_map(outages=_outages(2)))} == {"confirmed"}


# -- in headless Chromium, from a file:// URL ----------------------------------------------


def _open(browser: Any, path: Path) -> Any:
    browser.navigate("about:blank")
    browser.navigate(path.as_uri())
    browser.wait_js("window.dcm && window.dcm.ready", timeout=60)
    browser.idle()
    return browser


@pytest.fixture(scope="module")
def chromium() -> Any:
    with cdp.Chromium(cdp.require_chromium(), width=1280, height=820) as browser:
        yield browser


def _count(page: Any, pane: str, cls: str = "") -> int:
    return int(page.evaluate(f"document.querySelectorAll('.leaflet-{pane}-pane path{cls}').length"))


def _popup(page: Any, selector: str) -> str:
    """Open the popup of the first drawn feature matching ``selector`` and read it."""
    page.evaluate("(dcm.map.closePopup(), true)")
    page.wait_js("!document.querySelector('.leaflet-popup')")  # the last one has faded out
    page.evaluate(
        f"document.querySelector({selector!r}).dispatchEvent("
        "new MouseEvent('click', {bubbles: true}))"
    )
    text = page.wait_js("document.querySelector('.leaflet-popup-content')?.innerText")
    page.evaluate("(dcm.map.closePopup(), true)")
    return str(text)


@pytest.mark.browser
def test_batch_map_opens_from_disk_with_no_request_and_draws_its_layers(
    tmp_path: Path, chromium: Any
) -> None:
    grid = pd.DataFrame(  # no geometry: hexes come from the h3 ids
        {
            "h3": ["885e711483fffff", "885e711493fffff"],
            "network": "all",
            "state": ["no_data", "uncertain"],
            "window_start": T0 + pd.Timedelta(hours=2),
            "window_end": T0 + pd.Timedelta(hours=3),
        }
    )
    hazard = gpd.GeoDataFrame(
        {"hazard_id": ["h1"], "level": ["red"]}, geometry=[box(-62, 12, -60, 14)], crs=4326
    )
    page = render_map(
        outages=_outages(),
        cells=_cells(40),
        grid=grid,
        hazard=hazard,
        window_end=T0 + pd.Timedelta(hours=3),
    )
    path = tmp_path / "map.html"
    path.write_text(page, encoding="utf-8")
    browser = _open(chromium, path)
    urls = [r.url for r in browser.requests.values()]
    assert all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
    assert not [c for c in browser.console if c.startswith("exception")], browser.console
    assert browser.evaluate("dcm.errors") == []
    assert browser.evaluate("[dcm.index, dcm.windows, dcm.live]") == [2, 3, False]
    # The last window: no service, one network, degraded; "gone" is back (restored).
    assert _count(browser, "outages") == 3 and _count(browser, "restored") == 1
    assert _count(browser, "outages", ".dcm-net") == 1
    assert _count(browser, "hazard") == 1
    look = browser.evaluate(
        "(p => [p.getAttribute('stroke'), p.getAttribute('stroke-dasharray')])"
        "(document.querySelector('.leaflet-outages-pane path.dcm-net'))"
    )
    assert look == list(network_look("358-110"))
    # A click at the no-service outage reaches the outage, not the hazard below.
    hit = browser.evaluate(
        """(() => { const p = dcm.map.latLngToContainerPoint([13.3, -61.2]);
             const r = dcm.map.getContainer().getBoundingClientRect();
             return document.elementFromPoint(r.left + p.x, r.top + p.y).getAttribute('fill');
           })()"""
    )
    assert hit == "#D55E00"
    popup = _popup(browser, ".leaflet-outages-pane path.dcm-outage")
    assert "People affected" in popup and "≈ 1,200" in popup
    assert "Confidence" in popup and "93 %" in popup
    back = _popup(browser, ".leaflet-restored-pane path")
    assert "Service back" in back and "gone" in back
    # The grid of the opening window, off by default like the live map's.
    assert browser.evaluate("dcm.drawn.grid") == 0
    browser.evaluate("document.querySelector('input[name=grid][value=no_data]').click()")
    browser.wait_js("dcm.drawn.grid === 1")
    dash = browser.evaluate(
        "document.querySelector('.leaflet-grid-pane path').getAttribute('stroke-dasharray')"
    )
    assert dash == "3 3"
    note = browser.evaluate("document.getElementById('grid-note').textContent")
    assert "2021-04-09 15:00" in note
    # Unticking the network's box removes exactly its outline.
    browser.evaluate("document.querySelector('#networks input[value=\"358-110\"]').click()")
    assert _count(browser, "outages", ".dcm-net") == 0 and _count(browser, "outages") == 2
    urls = [r.url for r in browser.requests.values()]
    assert all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls


@pytest.mark.browser
def test_batch_time_control_opens_at_the_peak_and_steps_through_windows(
    tmp_path: Path, chromium: Any
) -> None:
    # Cell 1 is offline until 14:00 (offline since 10:00, before the data), then online.
    cells = pd.DataFrame(
        {
            "mcc": 358,
            "net": 110,
            "area": 1,
            "cell": [1, 1, 2],
            "site_id": ["s1", "s1", "s2"],
            "lon": [-61.2, -61.2, -61.25],
            "lat": [13.25, 13.25, 13.2],
            "status": ["offline", "online", "online"],
            "start": [T0, T0 + pd.Timedelta(hours=2), T0],
            "end": [T0 + pd.Timedelta(hours=2), pd.NaT, pd.NaT],
            "offline_since": [T0 - pd.Timedelta(hours=2), pd.NaT, pd.NaT],
        }
    )
    path = tmp_path / "map.html"
    path.write_text(render_map(outages=_outages(4), cells=cells), encoding="utf-8")
    browser = _open(chromium, path)
    label = "document.getElementById('window-label').textContent"
    # Opens at the peak, the third window: the "gone" outage is out only then.
    assert browser.evaluate("[dcm.index, dcm.peak]") == [2, 2]
    peak_label = browser.evaluate(label)
    assert peak_label.startswith("2021-04-09 14:00 – 15:00") and "(peak)" in peak_label
    assert browser.evaluate("dcm.drawn.outages") == 4
    assert browser.evaluate("dcm.totals.sites") == 0  # cell 1 back online by 15:00
    # The keyboard: ArrowLeft on the focused slider steps back, the map stays put.
    center = "dcm.map.getCenter().toString()"
    before_keys = browser.evaluate(center)
    browser.evaluate("document.getElementById('slider').focus()")
    for kind in ("keyDown", "keyUp"):
        browser.send(
            "Input.dispatchKeyEvent",
            {"type": kind, "key": "ArrowLeft", "code": "ArrowLeft", "windowsVirtualKeyCode": 37},
            session=browser.session,
        )
    browser.wait_js("dcm.index === 1")
    assert browser.evaluate(center) == before_keys
    assert browser.evaluate("dcm.drawn.outages") == 3  # no service, one network, degraded
    assert browser.evaluate("dcm.totals.sites") == 1  # cell 1 still offline at 14:00
    assert "(peak)" not in browser.evaluate(label)
    popup = _popup(browser, ".leaflet-cells-pane path")
    assert "Offline since2021-04-09 10:00 UTC" in popup.replace("\t", "").replace("\n", "")
    # The last window: "gone" drawn as restored; Next disabled; the Peak button goes back.
    browser.evaluate(
        "(() => { const s = document.getElementById('slider'); s.value = '3';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    browser.wait_js("dcm.index === 3")
    assert browser.evaluate("document.getElementById('next').disabled") is True
    assert browser.evaluate("dcm.drawn.restored") == 1
    browser.evaluate("document.getElementById('peak').click()")
    browser.wait_js("dcm.index === 2")
    assert browser.evaluate(label) == peak_label


@pytest.mark.browser
def test_batch_suspected_outage_is_dashed_with_its_probability(
    tmp_path: Path, chromium: Any
) -> None:
    cells = _cells(3).assign(
        status=["unknown", "offline", "online"], silence_h_needed=[7.46, np.nan, np.inf]
    )
    path = tmp_path / "map.html"
    path.write_text(render_map(outages=_suspected_outages(), cells=cells), encoding="utf-8")
    browser = _open(chromium, path)
    assert browser.evaluate("dcm.errors") == []
    legend = browser.evaluate("document.getElementById('panel').textContent")
    assert "Suspected outage (data too thin to confirm)" in legend
    found = "document.querySelectorAll('.leaflet-outages-pane path.dcm-suspected')"
    assert browser.evaluate(f"{found}.length") == 1
    look = browser.evaluate(
        f"(() => {{ const p = {found}[0]; return [p.getAttribute('stroke-dasharray'),"
        " getComputedStyle(p).fill]; })()"
    )
    assert look[0] == "5 5" and "dcm-suspected-hatch" in look[1], look
    assert "suspected (p = 0.63)" in _popup(browser, ".leaflet-outages-pane path.dcm-suspected")
    assert "confirmed (observed)" in _popup(browser, ".leaflet-outages-pane path.dcm-outage")
    # Every cell drawn: the unknown one tells how long a silence would decide it.
    for status in ("unknown", "online"):
        browser.evaluate(f"document.querySelector('input[name=cells][value={status}]').click()")
    browser.wait_js("dcm.drawn.cells === 3")
    texts = browser.evaluate(
        """(() => { const out = [];
             dcm.map.eachLayer(l => { if (l.feature && l.feature.properties.status) {
               l.openPopup(); out.push([l.feature.properties.status,
                 [...document.querySelectorAll('.leaflet-popup-content')].pop().innerText]);
             } });
             return out; })()"""
    )
    said = dict(texts)
    assert "needs 7.5 h of silence to decide" in said["unknown"]
    assert "silence" not in said["offline"] and "silence" not in said["online"]


@pytest.mark.browser
def test_batch_map_without_outages_frames_its_cells_or_stays_empty(
    tmp_path: Path, chromium: Any
) -> None:
    empty = gpd.GeoDataFrame({"network": [], "severity": []}, geometry=[], crs="EPSG:4326")
    online = _cells(50).assign(status="online")  # none drawn by default
    path = tmp_path / "cells.html"
    path.write_text(render_map(outages=empty, cells=online), encoding="utf-8")
    browser = _open(chromium, path)
    assert browser.evaluate("[dcm.errors, dcm.windows]") == [[], 0]
    assert _count(browser, "cells") == 0
    view = browser.evaluate(
        "(b => [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()])(dcm.map.getBounds())"
    )
    lon, lat = online["lon"], online["lat"]
    assert view[0] <= lon.min() < lon.max() <= view[2] and view[2] - view[0] < 2
    assert view[1] <= lat.min() < lat.max() <= view[3]
    updated = browser.evaluate("document.getElementById('updated').textContent")
    assert updated == "No outage windows in these data"
    path.write_text(render_map(outages=empty), encoding="utf-8")
    browser = _open(chromium, path)
    assert browser.evaluate("[dcm.errors, dcm.windows, dcm.map.getZoom()]") == [[], 0, 2]
