"""The outage map: self-contained (no CDN), Leaflet inlined, data and layers present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from dcm.errors import ParameterError
from dcm.publish import leaflet_assets, render_map
from dcm.publish.webmap import network_look

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


def test_map_is_self_contained_and_has_the_data() -> None:
    page = render_map(
        outages=_outages(),
        cells=_cells(),
        title="St Vincent <test>",
        attribution="Cells: OpenCelliD (CC BY-SA 4.0)",
    )
    parser = _Links()
    parser.feed(page)
    external = [u for u in parser.urls if re.match(r"(https?:)?//", u[2])]
    assert external == [], external
    assert not re.search(r"<(script|link)[^>]+(src|href)=", page)
    leaflet = leaflet_assets()["leaflet.js"].read_text(encoding="utf-8")
    assert any(leaflet[-2000:] in s for s in parser.scripts)  # Leaflet inlined verbatim
    assert "leaflet-control-layers" in page  # Leaflet CSS inlined
    assert "url(images/" not in page  # CSS images embedded as data URIs
    assert "jquery" not in page.lower() and "bootstrap" not in page.lower()
    # Every window is embedded for the slider (people of the no-service outage grow
    # 1,234 → 1,236), and the restored layer is in the legend.
    assert "1,234" in page and "1,235" in page and "1,236" in page
    assert '"id":"gone"' in page and "Service back since last window" in page
    # The control's markup travels as a JSON string (quotes escaped).
    assert '<input type=\\"range\\"' in page and 'aria-label=\\"Time window\\"' in page
    assert "Outages: network 358-110" in page and "Outages: all networks" in page
    assert "St Vincent &lt;test&gt;" in page
    assert "OpenCelliD (CC BY-SA 4.0)" in page
    assert "L.control.layers" in page


def _time_config(page: str) -> dict:
    """The slider configuration the page hands to dcmTime.setup."""
    found = re.search(r'dcmTime\.setup\(map_[0-9a-f]+, (\{.*?\}), \{"type":"Feature', page)
    assert found, "no time control in the page"
    return json.loads(found.group(1))


def test_map_window_choice_and_errors() -> None:
    # One window: drawn directly, no slider.
    page = render_map(outages=_outages(1))
    assert "1,234" in page and "dcmTime.setup(" not in page
    # Several: opens at the peak (most people: 1,235 + 50 + 77 in the second window) …
    config = _time_config(render_map(outages=_outages()))
    assert [w["end"] for w in config["windows"]] == [
        "2021-04-09T13:00Z",
        "2021-04-09T14:00Z",
        "2021-04-09T15:00Z",
    ]
    assert config["peak"] == config["selected"] == 1
    assert config["windows"][1]["note"] == "4 outage area(s), 1,362 people affected"
    # … or at the window asked for.
    page = render_map(outages=_outages(), window_end=T0 + pd.Timedelta(hours=1))
    assert _time_config(page)["selected"] == 0
    page = render_map(outages=_outages(), window_end="2021-04-09T15:00Z")
    assert _time_config(page)["selected"] == 2
    with pytest.raises(ParameterError):
        render_map(outages=_outages(), cells=_cells().drop(columns="lat"))
    with pytest.raises(ParameterError, match="not one of the outage windows"):
        render_map(outages=_outages(), window_end=T0 + pd.Timedelta(minutes=90))


def test_embedded_data_is_verbatim_not_a_template() -> None:
    # The data goes into the page as is: not read as Jinja syntax, no "</" to end a script.
    outages = _outages()
    outages["outage_id"] = "{{ 7 * 7 }} </script> {% if x %}"
    page = render_map(outages=outages)
    assert page.count('"id":"{{ 7 * 7 }} <\\/script> {% if x %}"') == len(outages)
    # Every window's outages share one list of distinct shapes.
    payload = re.search(r'dcmTime\.setup\(map_[0-9a-f]+, \{.*?\}, (\{"type".*?\})\);', page)
    assert payload is not None
    data = json.loads(payload.group(1).replace("<\\/", "</"))
    assert len(data["features"]) == len(outages)
    assert len(data["geometries"]) == len(set(outages.geometry.to_wkb())) < len(outages)


def test_map_stays_small_with_many_cells() -> None:
    page = render_map(outages=_outages(1), cells=_cells(5000))
    leaflet_size = sum(p.stat().st_size for p in leaflet_assets().values())
    # Per cell well under 100 bytes on top of Leaflet itself.
    assert len(page.encode()) - leaflet_size < 5000 * 100


def test_map_without_data_and_with_opt_in_basemap() -> None:
    empty = gpd.GeoDataFrame({"network": [], "severity": []}, geometry=[], crs="EPSG:4326")
    page = render_map(outages=empty)
    assert "L.map(" in page and not re.search(r"map_[0-9a-f]+\.fitBounds\(", page)
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"
    page = render_map(outages=_outages(), tiles_url=tiles, tiles_attribution="© Example")
    assert tiles in page and "Example" in page  # only when asked for


def test_many_cells_go_on_a_canvas() -> None:
    few = render_map(outages=_outages(1), cells=_cells(100))
    many = render_map(outages=_outages(1), cells=_cells(4000))
    assert 'dcmPoint("cell", false)' in few
    assert 'dcmPoint("cell", true)' in many


@pytest.mark.slow
def test_map_of_real_opencellid_cells(shared_data: Path) -> None:
    from dcm.ingest import read_cells

    cells = read_cells(shared_data / "opencellid" / "ecuador_740.csv.gz").frame
    cells["status"] = np.where(cells["samples"].fillna(0) > 5, "online", "unknown")
    empty = gpd.GeoDataFrame({"network": [], "severity": []}, geometry=[], crs="EPSG:4326")
    page = render_map(outages=empty, cells=cells)
    leaflet_size = sum(p.stat().st_size for p in leaflet_assets().values())
    per_cell = (len(page.encode()) - leaflet_size) / len(cells)
    assert len(cells) > 70_000
    assert per_cell < 70
    bounds = re.search(
        r"fitBounds\(\s*\[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]", page
    )
    south, west, north, east = map(float, bounds.groups())
    assert -6 < south < north < 2 and -93 < west < east < -75  # Ecuador incl. Galápagos


def test_leaflet_assets_are_files() -> None:
    assets = leaflet_assets()
    assert {"leaflet.js", "leaflet.css", "images/layers.png"} <= set(assets)
    assert all(p.is_file() for p in assets.values())


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium"
)
def test_map_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = tmp_path / "map.html"
    grid = gpd.GeoDataFrame(
        {
            "h3": ["a", "b"],
            "network": "all",
            "state": ["no_data", "uncertain"],
            "window_end": T0 + pd.Timedelta(hours=3),
        },
        geometry=[box(-61.3, 13.1, -61.29, 13.11), box(-61.28, 13.1, -61.27, 13.11)],
        crs="EPSG:4326",
    )
    path.write_text(render_map(outages=_outages(), cells=_cells(50), grid=grid), encoding="utf-8")
    result = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = result.stdout
    paths = re.findall(r"<path[^>]*leaflet-interactive", dom)
    # 2 outages + 2 grid hexes + 50 cells drawn as SVG paths.
    assert len(paths) >= 54
    assert "dcm-legend" in dom and "leaflet-control-layers" in dom
    assert shutil.which(str(CHROMIUM))


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium"
)
def test_map_works_offline_with_popups_and_layer_toggle(tmp_path: Path) -> None:
    grid = pd.DataFrame(  # no geometry: hexes come from the h3 ids
        {
            "h3": ["885e711483fffff", "885e711493fffff"],
            "network": "all",
            "state": ["no_data", "uncertain"],
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
    map_var = re.search(r"var (map_[0-9a-f]+) = L\.map\(", page).group(1)
    with cdp.Chromium(str(CHROMIUM)) as browser:
        browser.navigate(path.as_uri())
        browser.idle()
        urls = [r.url for r in browser.requests.values()]
        assert all(u.startswith(("file:", "data:")) for u in urls), urls
        assert not [c for c in browser.console if c.startswith("exception")], browser.console
        count = "document.querySelectorAll('path.leaflet-interactive').length"
        total = browser.evaluate(count)
        assert total == 3 + 1 + 2 + 40 + 1  # outages, restored, hexes, cells, hazard
        # What a click at the no-service outage hits: the outage, not the hazard below.
        hit = browser.evaluate(
            f"""(() => {{ const p = {map_var}.latLngToContainerPoint([13.3, -61.2]);
                const r = document.getElementById({map_var}.getContainer().id)
                  .getBoundingClientRect();
                return document.elementFromPoint(r.left + p.x, r.top + p.y)
                  .getAttribute('fill'); }})()"""
        )
        assert hit == "#D55E00"
        fills = browser.evaluate(
            "[...document.querySelectorAll('path.leaflet-interactive')]"
            ".map(p => p.getAttribute('fill'))"
        )
        assert fills.count("url(#dcm-nodata)") == 1  # the no-data hex, hatched
        assert fills.count("url(#dcm-degraded)") == 1  # the degraded outage, hatched
        dashes = browser.evaluate(
            "[...document.querySelectorAll('path.leaflet-interactive')]"
            ".map(p => p.getAttribute('stroke-dasharray'))"
        )
        # The single-network outage is outlined in its network's own colour and dashes,
        # the same as on the API's map.
        assert network_look("358-110")[1] in dashes
        popup = browser.evaluate(
            f"""(() => {{ let text = null;
                {map_var}.eachLayer(l => {{
                  if (l.feature && l.feature.properties.id === 'all') {{
                    l.openPopup(l.getBounds().getCenter());
                    text = document.querySelector('.leaflet-popup-content').textContent;
                  }} }});
                return text; }})()"""
        )
        assert "People affected1,236" in popup and "Confidence93 %" in popup
        # Unticking the per-network layer removes exactly its one polygon.
        browser.evaluate(
            """[...document.querySelectorAll('.leaflet-control-layers-overlays label')]
                 .find(l => l.textContent.includes('network 358-110'))
                 .querySelector('input').click()"""
        )
        assert browser.evaluate(count) == total - 1


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium"
)
def test_map_time_slider_steps_through_windows(tmp_path: Path) -> None:
    # Cell 1 is offline until 14:00, then online; cell 2 stays online.
    cells = pd.DataFrame(
        {
            "mcc": 358,
            "net": 110,
            "area": 1,
            "cell": [1, 1, 2],
            "lon": [-61.2, -61.2, -61.25],
            "lat": [13.25, 13.25, 13.2],
            "status": ["offline", "online", "online"],
            "start": [T0, T0 + pd.Timedelta(hours=2), T0],
            "end": [T0 + pd.Timedelta(hours=2), pd.NaT, pd.NaT],
        }
    )
    path = tmp_path / "map.html"
    page = render_map(outages=_outages(4), cells=cells)
    path.write_text(page, encoding="utf-8")
    map_var = re.search(r"var (map_[0-9a-f]+) = L\.map\(", page).group(1)
    count = "document.querySelectorAll('path.leaflet-interactive').length"
    offline = (
        "[...document.querySelectorAll('path.leaflet-interactive')].filter(p =>"
        " p.getAttribute('fill') === '#D55E00' && p.getAttribute('stroke') === '#000000').length"
    )
    label = "document.querySelector('.dcm-time output').textContent"
    with cdp.Chromium(str(CHROMIUM)) as browser:
        browser.navigate(path.as_uri())
        browser.idle()
        assert not [c for c in browser.console if c.startswith("exception")], browser.console
        # Opens at the peak, the third window: the "gone" outage is out only then.
        assert browser.evaluate("document.querySelector('.dcm-time input').value") == "2"
        peak_label = browser.evaluate(label)
        assert browser.evaluate(count) == 4 + 2 and "(peak)" in peak_label
        assert browser.evaluate(offline) == 0  # cell 1 back online by 15:00
        assert "2021-04-09 14:00 – 15:00 UTC" in peak_label
        # The keyboard: ArrowLeft on the focused slider steps back, the map stays put.
        center = f"{map_var}.getCenter().toString()"
        before_keys = browser.evaluate(center)
        browser.evaluate("document.querySelector('.dcm-time input').focus()")
        for kind in ("keyDown", "keyUp"):
            browser.send(
                "Input.dispatchKeyEvent",
                {
                    "type": kind,
                    "key": "ArrowLeft",
                    "code": "ArrowLeft",
                    "windowsVirtualKeyCode": 37,
                },
                session=browser.session,
            )
        assert browser.evaluate("document.querySelector('.dcm-time input').value") == "1"
        assert browser.evaluate(center) == before_keys
        assert browser.evaluate(count) == 3 + 2  # no service, one network, degraded; cells
        assert browser.evaluate(offline) == 1  # cell 1 still offline at 14:00
        before = browser.evaluate(label)
        assert "2021-04-09 13:00 – 14:00 UTC" in before and "(peak)" not in before
        # The slider itself, as the arrow keys or a pointer leave it: the last window,
        # where "gone" is drawn as restored.
        browser.evaluate(
            """(() => { const s = document.querySelector('.dcm-time input');
                s.value = '3'; s.dispatchEvent(new Event('input')); })()"""
        )
        assert browser.evaluate(count) == 4 + 2
        assert "2021-04-09 15:00 – 16:00 UTC" in browser.evaluate(label)
        assert browser.evaluate("document.querySelector('.dcm-time .dcm-next').disabled")
        fills = browser.evaluate(
            "[...document.querySelectorAll('path.leaflet-interactive')]"
            ".map(p => p.getAttribute('stroke'))"
        )
        assert "#009E73" in fills  # the restored outline
        assert "people affected" in browser.evaluate(
            "document.querySelector('.dcm-time input').getAttribute('aria-valuetext')"
        )
        browser.evaluate("document.querySelector('.dcm-time .dcm-peak').click()")
        assert browser.evaluate(label) == peak_label


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


def test_suspected_outages_have_their_own_look_and_legend() -> None:
    page = render_map(outages=_suspected_outages())
    assert "Suspected outage (data too thin to confirm)" in page
    assert '"outage~suspected"' in page and '"net1~suspected"' in page
    assert "suspected (p = 0.63)" in page and "confirmed (observed)" in page
    # Frames from before the tiers: no suspected look, no legend entry, still a map.
    old = _outages(2)
    plain = render_map(outages=old)
    assert "Suspected outage" not in plain and "confirmed (observed)" in plain
    assert "~suspected" not in plain


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium"
)
def test_suspected_outage_is_dashed_with_its_probability_in_chromium(tmp_path: Path) -> None:
    cells = _cells(3).assign(
        status=["unknown", "offline", "online"], silence_h_needed=[7.46, np.nan, np.inf]
    )
    page = render_map(outages=_suspected_outages(), cells=cells)
    path = tmp_path / "map.html"
    path.write_text(page, encoding="utf-8")
    map_var = re.search(r"var (map_[0-9a-f]+) = L\.map\(", page).group(1)
    with cdp.Chromium(str(CHROMIUM)) as browser:
        browser.navigate(path.as_uri())
        browser.idle()
        assert not [c for c in browser.console if c.startswith("exception")], browser.console
        legend = browser.evaluate("document.querySelector('.dcm-legend').textContent")
        assert "Suspected outage (data too thin to confirm)" in legend
        drawn = browser.evaluate(
            """[...document.querySelectorAll('path.leaflet-interactive')]
                 .map(p => [p.getAttribute('stroke-dasharray'), p.getAttribute('fill'),
                            p.getAttribute('stroke')])"""
        )
        assert ["5 5", "url(#dcm-suspected)", "#7A2E00"] in drawn  # suspected, all networks
        assert [None, "#D55E00", "#7A2E00"] in drawn  # the confirmed one stays solid
        # The hatch pattern it points to is in the page.
        assert browser.evaluate("!!document.getElementById('dcm-suspected')")

        def popup(test: str) -> str:
            return browser.evaluate(
                f"""(() => {{ let text = null;
                    {map_var}.closePopup();
                    {map_var}.eachLayer(l => {{
                      if (l.feature && {test}) {{
                        l.openPopup(l.getLatLng ? l.getLatLng() : l.getBounds().getCenter());
                        text = [...document.querySelectorAll('.leaflet-popup-content')]
                          .pop().textContent;
                      }} }});
                    return text; }})()"""
            )

        assert "Statussuspected (p = 0.63)" in popup("l.feature.properties.id === 'maybe'")
        assert "Statusconfirmed (observed)" in popup("l.feature.properties.id === 'all'")
        assert "needs 7.5 h of silence to decide" in popup("l.feature.properties.s === 'unknown'")
        for status in ("offline", "online"):  # unknown or infinite: no line
            text = popup(f"l.feature.properties.s === {status!r}")
            assert text and "silence" not in text
