"""The outage map: one self-contained folium/Leaflet HTML page that needs no internet.

folium normally links Leaflet, jQuery, Bootstrap and Font Awesome from CDNs. Here the
map and every layer use plain Leaflet only (no folium Popup/Marker/plugins, which need
jQuery or Bootstrap), the CDN lists are emptied, and Leaflet's JS and CSS are inlined
from :mod:`dcm.publish.assets`. Styles and popups are small JavaScript functions that
read short feature properties, so thousands of cells stay one compact GeoJSON layer.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any, cast

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from branca.element import Element, Figure, MacroElement
from folium.template import Template
from folium.utilities import JsCode

from dcm.errors import ParameterError
from dcm.publish._values import jsonable, strftime_utc
from dcm.publish.assets import leaflet_css_inline, leaflet_js
from dcm.publish.geojson import (
    concat_texts,
    geometry_json,
    join_texts,
    prepare_geometries,
    property_json,
    to_geojson,
)
from dcm.publish.orientation import add_orientation
from dcm.schema import ALL_NETWORKS, suspected_outages, with_outage_tiers

#: Coordinates on the map: 5 decimals ≈ 1 m, plenty on screen and keeps the page small.
MAP_PRECISION = 5

# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), as in
# the API's responder map, so both maps read the same. Kinds also differ by fill
# pattern and dashes, not by colour alone.
VERMILLION = "#D55E00"
ORANGE = "#E69F00"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
REDDISH_PURPLE = "#CC79A7"
BLUE = "#0072B2"
SKY_BLUE = "#56B4E9"
GREY = "#8C8C8C"
NODATA_HATCH = "dcm-nodata"
DEGRADED_HATCH = "dcm-degraded"
SUSPECTED_HATCH = "dcm-suspected"
SUSPECTED_DEGRADED_HATCH = "dcm-suspected-degraded"
#: Style key suffix of suspected outages (``outage~suspected``, ``net0~suspected`` …).
SUSPECTED = "~suspected"
#: Outline colours and dash patterns of single networks' outages; a network's own pair
#: comes from its key by :func:`network_look`, exactly as in the API's map (map.js).
NETWORK_COLOURS = (
    BLUE,
    SKY_BLUE,
    "#000000",
    "#5E3C99",
    "#1B7837",
    "#8C510A",
    "#01665E",
    "#3F5765",
)
NETWORK_DASHES = ("10 5", "3 5", "12 4 3 4")
#: Under the legend wherever cells are drawn: cell lists such as OpenCelliD's are
#: CC BY-SA 4.0, whose licence asks for attribution of the layers derived from them.
CELL_ATTRIBUTION = (
    "Cell sites, and the outage areas drawn from their coverage, derive from the cell "
    "list given (OpenCelliD data: © OpenCelliD contributors, CC BY-SA 4.0)."
)


def network_look(network: str) -> tuple[str, str]:
    """Outline colour and dash pattern of one network's outages (``"MCC-MNC"``).

    From the 32-bit FNV-1a hash of the key's UTF-8 bytes, so a network looks the same
    on every map, whatever other networks are present or the order they appear in.
    """
    h = 0x811C9DC5
    for byte in network.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    n = len(NETWORK_COLOURS)
    return NETWORK_COLOURS[h % n], NETWORK_DASHES[(h // n) % len(NETWORK_DASHES)]


#: Leaflet path options per layer kind and feature key ``s``; ``_`` is the fallback.
#: Single-network outage styles (``net0``, ``net1`` …) are added per map.
STYLES: dict[str, dict[str, dict[str, Any]]] = {
    "outage": {
        "outage": {"color": "#7A2E00", "weight": 2, "fillColor": VERMILLION, "fillOpacity": 0.5},
        "degraded": {
            "color": "#8A5A00",
            "weight": 2,
            "dashArray": "6 4",
            "fillColor": f"url(#{DEGRADED_HATCH})",
            "fillOpacity": 1,
        },
        "restored": {
            "color": BLUISH_GREEN,
            "weight": 3,
            "dashArray": "4 4",
            "fillColor": BLUISH_GREEN,
            "fillOpacity": 0.12,
        },
        "_": {"color": GREY, "weight": 2, "fillOpacity": 0.3},
    },
    "cell": {
        "offline": {
            "radius": 6,
            "color": "#000000",
            "weight": 2,
            "fillColor": VERMILLION,
            "fillOpacity": 1,
        },
        "online": {
            "radius": 4,
            "color": "#FFFFFF",
            "weight": 1,
            "fillColor": BLUISH_GREEN,
            "fillOpacity": 1,
        },
        "_": {
            "radius": 4,
            "color": "#666666",
            "weight": 2,
            "dashArray": "2 2",
            "fillColor": "#FFFFFF",
            "fillOpacity": 1,
        },
    },
    "grid": {
        "no_data": {
            "color": GREY,
            "weight": 1,
            "dashArray": "3 3",
            "fillColor": f"url(#{NODATA_HATCH})",
            "fillOpacity": 1,
        },
        "uncertain": {"stroke": False, "fillColor": YELLOW, "fillOpacity": 0.55},
        "_": {"color": GREY, "weight": 0.5, "fillOpacity": 0.1},
    },
    "area": {"_": {"color": "#333333", "weight": 1, "fill": False}},
    "hazard": {
        "_": {
            "color": REDDISH_PURPLE,
            "weight": 2,
            "dashArray": "8 6",
            "fillColor": REDDISH_PURPLE,
            "fillOpacity": 0.1,
        },
    },
}

# Inserted after Leaflet: style, marker and popup factories shared by every layer.
_HELPERS_JS = """
var DCM_STYLES = %s;
function dcmStyle(kind) {
  return function (f) { var s = DCM_STYLES[kind]; return s[f.properties.s] || s["_"]; };
}
var dcmCanvas = null;
function dcmPoint(kind, canvas) {
  return function (f, latlng) {
    var s = DCM_STYLES[kind], options = Object.assign({}, s[f.properties.s] || s["_"]);
    if (canvas) { options.renderer = dcmCanvas = dcmCanvas || L.canvas({padding: 0.5}); }
    return L.circleMarker(latlng, options);
  };
}
function dcmPopup(labels) {
  return function (f, layer) {
    layer.bindPopup(function () {
      var table = document.createElement("table");
      table.className = "dcm-popup";
      for (var key in labels) {
        var value = f.properties[key], label = labels[key], text = String(value);
        if (value === null || value === undefined || value === "") continue;
        // [label, template]: the value goes into the template at "{}".
        if (Array.isArray(label)) { text = label[1].replace("{}", text); label = label[0]; }
        var row = table.insertRow();
        var th = document.createElement("th");
        th.textContent = label;
        row.appendChild(th);
        row.insertCell().textContent = text;
      }
      return table;
    });
  };
}
// Columnar points {x: [...], y: [...], p: {key: values | {cat: names, idx: codes}}}
// expanded to GeoJSON here: a third of the bytes of per-feature GeoJSON.
function dcmPoints(cols) {
  var features = [];
  for (var i = 0; i < cols.x.length; i++) {
    var props = {};
    for (var key in cols.p) {
      var c = cols.p[key];
      props[key] = Array.isArray(c) ? c[i] : c.cat[c.idx[i]];
    }
    features.push({type: "Feature", properties: props,
                   geometry: {type: "Point", coordinates: [cols.x[i], cols.y[i]]}});
  }
  return {type: "FeatureCollection", features: features};
}
// The time control: every window's outages are embedded once (properties
// window_start/window_end, k = layer key); each outage layer draws only the selected
// window's features, the "restored" layer those of the window before that are gone.
var dcmTime = {
  windows: [], index: 0, peak: 0, byEnd: {}, points: {}, layers: [], box: null,
  setup: function (map, cfg, data) {
    var self = this, text = {};
    self.windows = cfg.windows; self.index = cfg.selected; self.peak = cfg.peak;
    cfg.windows.forEach(function (w) { text[w.end] = w.span; });
    data.features.forEach(function (f) {
      var end = f.properties.window_end;
      if (f.g !== undefined) f.geometry = data.geometries[f.g];
      f.properties.window = text[end];
      (self.byEnd[end] = self.byEnd[end] || []).push(f);
    });
    var control = L.control({position: "bottomleft"});
    control.onAdd = function () {
      var div = L.DomUtil.create("div", "dcm-time");
      div.innerHTML = cfg.markup;
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      // Arrow keys move the slider, not the map.
      L.DomEvent.on(div, "keydown", L.DomEvent.stopPropagation);
      var slider = div.querySelector("input");
      slider.addEventListener("input", function () { self.show(Number(slider.value)); });
      div.querySelector(".dcm-prev").addEventListener("click",
        function () { self.show(self.index - 1); });
      div.querySelector(".dcm-next").addEventListener("click",
        function () { self.show(self.index + 1); });
      div.querySelector(".dcm-peak").addEventListener("click",
        function () { self.show(self.peak); });
      self.box = div;
      return div;
    };
    control.addTo(map);
    self.update();
  },
  features: function (key) {
    var w = this.windows[this.index], now = this.byEnd[w.end] || [];
    if (this.points[key]) {  // status intervals [t0, t1) valid at the window's end
      return this.points[key].filter(function (f) {
        var p = f.properties;
        return p.t0 < w.end && (p.t1 === null || p.t1 === undefined || p.t1 >= w.end);
      });
    }
    if (key !== "restored") {
      return now.filter(function (f) { return f.properties.k === key; });
    }
    if (this.index === 0) return [];
    var ids = {};
    now.forEach(function (f) { ids[f.properties.id] = true; });
    var before = this.byEnd[this.windows[this.index - 1].end] || [];
    return before.filter(function (f) { return !ids[f.properties.id]; }).map(function (f) {
      var props = Object.assign({}, f.properties, {s: "restored", restored: "by " + w.until});
      return {type: "Feature", geometry: f.geometry, properties: props};
    });
  },
  add: function (layer, key, cols) {
    if (cols) this.points[key] = dcmPoints(cols).features;
    this.layers.push([layer, key]);
    layer.addData(this.features(key));
  },
  show: function (i) {
    i = Math.max(0, Math.min(this.windows.length - 1, i));
    if (i === this.index) return;
    this.index = i;
    for (var j = 0; j < this.layers.length; j++) {
      this.layers[j][0].clearLayers();
      this.layers[j][0].addData(this.features(this.layers[j][1]));
    }
    this.update();
  },
  update: function () {
    if (!this.box) return;
    var w = this.windows[this.index], slider = this.box.querySelector("input");
    var label = w.span + (this.index === this.peak ? " (peak)" : "");
    slider.value = String(this.index);
    slider.setAttribute("aria-valuetext", label + ", " + w.note);
    this.box.querySelector(".dcm-when").textContent = label;
    this.box.querySelector(".dcm-note").textContent = w.note;
    this.box.querySelector(".dcm-prev").disabled = this.index === 0;
    this.box.querySelector(".dcm-next").disabled = this.index === this.windows.length - 1;
  }
};
"""

_PAGE_CSS = """
.dcm-legend { background: #fff; padding: 6px 10px; font: 13px/1.4 sans-serif;
  box-shadow: 0 1px 5px rgba(0,0,0,.4); border-radius: 5px; max-width: 260px; }
.dcm-legend h1 { font-size: 15px; margin: 0 0 4px; }
.dcm-legend p { margin: 0 0 6px; color: #333; }
.dcm-legend i { display: inline-block; width: 14px; height: 14px; margin-right: 6px;
  vertical-align: -2px; border: 1px solid #333; }
.dcm-legend i.dot { border-radius: 50%; }
.dcm-legend p.source { margin: 6px 0 0; font-size: 11px; color: #555; }
.dcm-popup th { text-align: left; padding-right: 8px; font-weight: 600; }
@media (max-width: 600px) {
  .dcm-legend { font-size: 11px; max-width: 170px; padding: 4px 6px; }
  .dcm-legend h1 { font-size: 12px; }
}
.leaflet-container { background: #f2efe9; }
.dcm-time { background: #fff; padding: 6px 10px; font: 13px/1.4 sans-serif;
  box-shadow: 0 1px 5px rgba(0,0,0,.4); border-radius: 5px; width: 340px; max-width: 70vw; }
.dcm-time label { font-weight: 600; display: block; }
.dcm-time .dcm-row { display: flex; align-items: center; gap: 4px; }
.dcm-time input { flex: 1; min-width: 60px; }
.dcm-time button { font: inherit; padding: 2px 8px; min-width: 32px; min-height: 28px; }
.dcm-time output { display: block; font-weight: 600; }
.dcm-time .dcm-note { color: #333; }
@media (max-width: 600px) { .dcm-time { font-size: 11px; width: 220px; } }
"""

_HATCH_SVG = f"""<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>
<pattern id="{NODATA_HATCH}" patternUnits="userSpaceOnUse" width="6" height="6"
 patternTransform="rotate(45)"><rect width="6" height="6" fill="#dddddd" fill-opacity="0.6"/>
<line x1="0" y1="0" x2="0" y2="6" stroke="{GREY}" stroke-width="1.5"/></pattern>
<pattern id="{DEGRADED_HATCH}" patternUnits="userSpaceOnUse" width="6" height="6"
 patternTransform="rotate(45)"><rect width="6" height="6" fill="{ORANGE}" fill-opacity="0.35"/>
<line x1="0" y1="0" x2="0" y2="6" stroke="#8A5A00" stroke-width="2.2"/></pattern>
<pattern id="{SUSPECTED_HATCH}" patternUnits="userSpaceOnUse" width="9" height="9"
 patternTransform="rotate(-45)"><rect width="9" height="9" fill="{VERMILLION}" fill-opacity="0.12"/>
<line x1="0" y1="0" x2="0" y2="9" stroke="{VERMILLION}" stroke-width="1.5"/></pattern>
<pattern id="{SUSPECTED_DEGRADED_HATCH}" patternUnits="userSpaceOnUse" width="9" height="9"
 patternTransform="rotate(-45)"><rect width="9" height="9" fill="{ORANGE}" fill-opacity="0.12"/>
<line x1="0" y1="0" x2="0" y2="9" stroke="#8A5A00" stroke-width="1.2"/></pattern>
</defs></svg>"""


class _Raw(Element):
    """Markup inserted verbatim (branca would run a plain Element through Jinja)."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.markup = markup

    def render(self, **kwargs: Any) -> str:
        return self.markup


class _VerbatimScript(MacroElement):
    """A MacroElement whose rendered script goes into the page verbatim.

    branca puts a MacroElement's rendered script into a plain Element, which compiles
    it as a Jinja template: seconds for the megabytes of embedded outage data, and a
    ``{{`` inside the data would be read as template syntax.
    """

    def render(self, **kwargs: Any) -> None:
        figure = self.get_root()
        assert isinstance(figure, Figure)
        script = self._template.module.__dict__["script"](self, kwargs)
        # What Jinja would have made of it: the same text without one trailing newline.
        figure.script.add_child(_Raw(script.removesuffix("\n")), name=self.get_name())
        for element in self._children.values():
            element.render(**kwargs)


class _Legend(MacroElement):
    """A Leaflet control holding the title, the shown window and the colour key."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "bottomright"});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", "dcm-legend");
            div.innerHTML = {{ this.markup|tojson }};
            L.DomEvent.disableClickPropagation(div);
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, markup: str) -> None:
        super().__init__()
        self._name = "Legend"
        self.markup = markup


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _fmt_time(values: pd.Series) -> pd.Series:
    """``YYYY-MM-DD HH:MM UTC`` strings; missing stays missing."""
    return strftime_utc(pd.to_datetime(values, utc=True), "%Y-%m-%d %H:%M UTC")


def _fmt_number(values: pd.Series, *, decimals: int = 0, suffix: str = "") -> pd.Series:
    """Thousands-separated numbers as strings; missing stays missing."""
    num = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    # Each distinct number once: an outage keeps its figures window after window.
    # (by bit pattern, so that -0.0 keeps its own text).
    finite = np.isfinite(num)
    codes, distinct = pd.factorize(num[finite].view(np.int64))
    text = np.array([f"{v:,.{decimals}f}{suffix}" for v in distinct.view(np.float64)], dtype=object)
    out = np.full(len(num), None, dtype=object)
    out[finite] = text[codes]
    return pd.Series(out, index=values.index, dtype=object)


def _window_ends(*frames: pd.DataFrame | None) -> list[pd.Timestamp]:
    ends: set[pd.Timestamp] = set()
    for frame in frames:
        if frame is not None and "window_end" in frame.columns and len(frame):
            ends.update(pd.to_datetime(frame["window_end"], utc=True).dropna().unique())
    return sorted(ends)


def _in_window(frame: pd.DataFrame, window_end: pd.Timestamp | None) -> pd.DataFrame:
    if window_end is None or "window_end" not in frame.columns:
        return frame
    return frame[pd.to_datetime(frame["window_end"], utc=True) == window_end]


class _AddData(_VerbatimScript):
    """Adds compact JSON data to its parent GeoJSON layer.

    folium would embed the data pretty-printed with sorted keys; this keeps it
    compact. ``expand`` names a JS function applied to the payload first.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.addData({{ this.expand }}({{ this.payload }}));
        {% endmacro %}
        """
    )

    def __init__(self, payload: Any, *, expand: str = "") -> None:
        super().__init__()
        self._name = "AddData"
        self.payload = _script_json(payload)
        self.expand = expand


def _script_json(payload: Any) -> str:
    """Compact JSON safe inside <script>, where only "</" could end the element early."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("</", "<\\/")


class _TimeControl(_VerbatimScript):
    """Sets up ``dcmTime``: every window's outages and the slider control (see _HELPERS_JS)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        dcmTime.setup({{ this._parent.get_name() }}, {{ this.config }}, {{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any], payload: str) -> None:
        super().__init__()
        self._name = "TimeControl"
        self.config = _script_json(config)
        self.payload = payload  # already script-safe JSON (see _shared_geometries)


class _TimeFeed(_VerbatimScript):
    """Lets ``dcmTime`` fill its parent layer with the selected window's ``key`` features."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        dcmTime.add({{ this._parent.get_name() }}, {{ this.key|tojson }}
            {%- if this.payload %}, {{ this.payload }}{% endif %});
        {% endmacro %}
        """
    )

    def __init__(self, key: str, payload: Any = None) -> None:
        super().__init__()
        self._name = "TimeFeed"
        self.key = key
        # Columnar points for dcmPoints, kept by dcmTime and filtered per window.
        self.payload = _script_json(payload) if payload is not None else ""


def _layer(
    data: Any,
    *,
    kind: str,
    name: str,
    labels: Mapping[str, str | list[str]],
    show: bool = True,
    expand: str = "",
    canvas: bool = False,
    feed: str | None = None,
) -> folium.GeoJson:
    """A plain Leaflet GeoJSON layer styled and labelled by the shared JS helpers.

    ``canvas`` draws point markers on one canvas instead of one SVG node each.
    ``feed``: instead of ``data``, the time control fills the layer with the selected
    window's features of this layer key.
    """
    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": []},
        name=name,
        show=show,
        on_each_feature=JsCode(f"dcmPopup({json.dumps(labels)})"),
        style=JsCode(f"dcmStyle({json.dumps(kind)})"),
        point_to_layer=JsCode(f"dcmPoint({json.dumps(kind)}, {json.dumps(canvas)})"),
    )
    if feed is not None:
        layer.add_child(_TimeFeed(feed, data))
    else:
        layer.add_child(_AddData(data, expand=expand))
    return layer


def _column(values: pd.Series) -> list[Any] | dict[str, list[Any]]:
    """A JSON column for ``dcmPoints``: categorical when few distinct values repeat."""
    clean = values.astype(object).where(values.notna(), None)
    codes, names = pd.factorize(clean, use_na_sentinel=False)
    if len(names) * 4 < len(values):
        return {"cat": jsonable(list(names)), "idx": codes.tolist()}
    return jsonable(clean.tolist())


OUTAGE_LABELS = {
    "network": "Network",
    "severity": "Severity",
    "tier": "Status",
    "onset": "Since",
    "people": "People affected",
    "confidence": "Confidence",
    "cells": "Cells offline",
    "area": "Area",
    "window": "Window",
    "id": "Outage",
}


def _network_of(outages: pd.DataFrame) -> pd.Series:
    """Network key per outage row; ``"all"`` where missing."""
    if "network" not in outages:
        return pd.Series(ALL_NETWORKS, index=outages.index, dtype="string")
    return outages["network"].astype("string").fillna(ALL_NETWORKS)


def _outage_display(outages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Outages with the popup texts (see OUTAGE_LABELS) as properties."""
    out = gpd.GeoDataFrame(geometry=outages.geometry.values, crs=outages.crs)
    network = _network_of(outages)
    severity = (
        outages["severity"].astype(object).to_numpy()
        if "severity" in outages
        else np.full(len(outages), "outage", dtype=object)
    )
    everyone = (network == ALL_NETWORKS).to_numpy()
    out["network"] = network.where(~everyone, "all networks").to_numpy()
    out["severity"] = np.where(
        everyone & (severity == "outage"),
        "no service",
        np.where(everyone, "degraded: some networks down", "network down"),
    )
    out["tier"] = _tier_text(outages)
    out["onset"] = _fmt_time(outages["onset"]).to_numpy() if "onset" in outages else None
    out["people"] = (
        _fmt_number(outages["population"]).to_numpy() if "population" in outages else None
    )
    out["confidence"] = (
        _fmt_number(outages["confidence"] * 100, suffix=" %").to_numpy()
        if "confidence" in outages
        else None
    )
    out["cells"] = (
        _fmt_number(outages["cells_offline"]).to_numpy() if "cells_offline" in outages else None
    )
    out["area"] = (
        _fmt_number(outages["area_km2"], decimals=1, suffix=" km²").to_numpy()
        if "area_km2" in outages
        else None
    )
    if "window_start" in outages and "window_end" in outages:
        start = _fmt_time(outages["window_start"]).str.slice(0, 16)
        out["window"] = (start + " – " + _fmt_time(outages["window_end"])).to_numpy()
    out["id"] = outages["outage_id"].astype(object).to_numpy() if "outage_id" in outages else None
    return out


def _suspected(outages: pd.DataFrame) -> np.ndarray:
    """True for suspected outages (``tier``)."""
    if "tier" not in outages:
        return np.zeros(len(outages), dtype=bool)
    return (outages["tier"].astype("string") == "suspected").fillna(False).to_numpy(dtype=bool)


def _tier_text(outages: pd.DataFrame) -> np.ndarray:
    """``suspected (p = 0.63)`` or ``confirmed (observed)`` per outage, for the popup."""
    filled = with_outage_tiers(outages)
    certainty = filled["certainty"].astype(object).where(filled["certainty"].notna(), None)
    confirmed = np.where(
        certainty.isna(), "confirmed", "confirmed (" + certainty.fillna("").astype(str) + ")"
    )
    p = (
        _fmt_number(outages["confidence"], decimals=2)
        if "confidence" in outages
        else pd.Series(None, index=outages.index, dtype=object)
    )
    suspected = np.where(p.isna(), "suspected", "suspected (p = " + p.fillna("").astype(str) + ")")
    return np.where(_suspected(filled), suspected, confirmed).astype(object)


def _suspected_style(key: str, base: dict[str, Any]) -> dict[str, Any]:
    """The look of a suspected outage drawn with style ``key``: dashed outline and a
    light, sparse hatch instead of the solid fill; single networks keep their colour and
    dashes and get a faint fill of their colour."""
    if key == "outage":
        return base | {"dashArray": "5 5", "fillColor": f"url(#{SUSPECTED_HATCH})"} | _HATCHED
    if key == "degraded":
        hatch = f"url(#{SUSPECTED_DEGRADED_HATCH})"
        return base | {"dashArray": "2 5", "fillColor": hatch} | _HATCHED
    return base | {"weight": 2, "fillColor": base.get("color", GREY), "fillOpacity": 0.15}


_HATCHED = {"fillOpacity": 1, "weight": 2}


def _outage_layers(
    outages: gpd.GeoDataFrame,
    styles: dict[str, dict[str, Any]],
    legend: list[str],
    *,
    timed: bool = False,
) -> tuple[list[folium.GeoJson], str | None]:
    """One layer per network, the all-network layer first.

    All-network features are filled (no service) or hatched (degraded); each single
    network's outages are outlined in its own colour and dashes, added to ``styles``
    and ``legend``. ``timed``: the layers are empty and filled by the time control from
    the returned payload (every window's outages, ``k`` naming the layer); else each
    layer holds its data and the payload is None.
    """
    if outages.empty:
        return [], None
    out = _outage_display(outages)
    network = _network_of(outages)
    severity = out["severity"].map(
        {"no service": "outage", "degraded: some networks down": "degraded"}
    )
    everyone = (network == ALL_NETWORKS).to_numpy()
    singles = sorted(network[~everyone].unique())
    look = {net: f"net{i}" for i, net in enumerate(singles)}
    out["s"] = np.where(everyone, severity.to_numpy(), network.map(look).astype(object).to_numpy())
    # Layer keys before the suspected look is added to the style keys.
    layer_key = np.where(everyone, ALL_NETWORKS, out["s"])
    suspected = _suspected(outages)
    if suspected.any():
        out["s"] = np.where(suspected, out["s"].astype(str) + SUSPECTED, out["s"])
    payload = None
    if timed:
        out["k"] = layer_key
        for col in ("window_start", "window_end"):
            out[col] = _iso_minutes(outages[col])
        # The window's text is added in the browser: one string per window, not per feature.
        payload = _shared_geometries(
            out.drop(columns="window", errors="ignore"), precision=MAP_PRECISION
        )

    def layer(mask: np.ndarray, key: str, name: str) -> folium.GeoJson:
        data = None if timed else to_geojson(out[mask], precision=MAP_PRECISION)
        return _layer(
            data, kind="outage", name=name, labels=OUTAGE_LABELS, feed=key if timed else None
        )

    layers = []
    if everyone.any():
        layers.append(layer(everyone, ALL_NETWORKS, "Outages: all networks"))
        present = {str(k).removesuffix(SUSPECTED) for k in out["s"][everyone]}
        if "outage" in present:
            legend.append(_swatch("background:" + VERMILLION, "No service (all networks down)"))
        if "degraded" in present:
            legend.append(_swatch(_HATCH_CSS % (ORANGE, "#8A5A00"), "Some networks down"))
    for net in singles:
        color, dash = network_look(str(net))
        # fill with opacity 0 keeps the inside clickable for the popup.
        styles[look[net]] = {"color": color, "weight": 3, "dashArray": dash, "fillOpacity": 0}
        layers.append(layer((network == net).to_numpy(), look[net], f"Outages: network {net}"))
        legend.append(_swatch(f"border:3px dashed {color}", f"Network {net} down"))
    for key in {str(k).removesuffix(SUSPECTED) for k in out["s"][suspected]}:
        styles[key + SUSPECTED] = _suspected_style(key, styles.get(key, styles["_"]))
    if suspected.any():
        legend.append(
            _swatch(
                _HATCH_CSS % ("rgba(213,94,0,.5)", "#fff") + f";border:2px dashed {VERMILLION}",
                "Suspected outage (data too thin to confirm)",
            )
        )
    return layers, payload


def _shared_geometries(gdf: gpd.GeoDataFrame, *, precision: int) -> str:
    """A FeatureCollection whose repeated geometries are stored once, as script-safe JSON.

    An outage that lasts keeps its shape window after window; the geometries go to a
    ``geometries`` list and each feature names its own by index ``g`` (its
    ``geometry`` is null until the page puts it back), a fifth of the bytes on the
    St Vincent sample. The geometry texts come straight from
    :func:`~dcm.publish.geojson.geometry_json`, never parsed into Python objects.
    """
    texts = geometry_json(prepare_geometries(gdf.geometry, precision=precision))
    texts = np.where(pd.isna(texts), "null", texts)
    codes, geometries = pd.factorize(pd.Series(texts, dtype=object))
    features = concat_texts(
        '{"type":"Feature","g":',
        pc.cast(pa.array(codes), pa.large_string()),
        ',"geometry":null,"properties":',
        property_json(gdf),
        "}",
    )
    text = (
        f'{{"type":"FeatureCollection","geometries":[{",".join(geometries)}],'
        f'"features":[{join_texts(features)}]}}'
    )
    return text.replace("</", "<\\/")


def _iso_minutes(values: pd.Series) -> np.ndarray:
    """``YYYY-MM-DDTHH:MMZ`` strings (UTC) of a time column."""
    return strftime_utc(pd.to_datetime(values, utc=True), "%Y-%m-%dT%H:%MZ").to_numpy()


def people_by_window(outages: pd.DataFrame) -> pd.DataFrame:
    """People in outages per window (rows: window_end, UTC) and network (columns).

    Column ``"all"`` sums the all-network features (no service plus some networks
    down), so it counts each person once; single networks overlap each other and are
    not summed. Without a ``population`` column every value is 0.
    """
    if outages.empty or "window_end" not in outages:
        return pd.DataFrame(dtype="float64")
    people = (
        pd.to_numeric(outages["population"], errors="coerce").fillna(0.0)
        if "population" in outages
        else pd.Series(0.0, index=outages.index)
    )
    frame = pd.DataFrame(
        {
            "window_end": pd.to_datetime(outages["window_end"], utc=True),
            "network": _network_of(outages).astype(object),
            "people": people.to_numpy(dtype="float64"),
        }
    )
    table = frame.pivot_table(
        index="window_end", columns="network", values="people", aggfunc="sum", fill_value=0.0
    )
    table.columns.name = None
    return table.sort_index()


def peak_window(outages: pd.DataFrame) -> pd.Timestamp | None:
    """The window_end (UTC) with the most people in outages, counted once per person.

    Uses the all-network features where there are any, else the sum over networks;
    ties and populations of 0 go to the earliest window. None without outages.
    """
    table = people_by_window(outages)
    if table.empty:
        return None
    people = table[ALL_NETWORKS] if ALL_NETWORKS in table else table.sum(axis=1)
    # The index holds window_end timestamps; the stubs type idxmax as any Hashable.
    return pd.Timestamp(cast(pd.Timestamp, people.idxmax()))


def _peak_basis(outages: pd.DataFrame) -> pd.DataFrame:
    """The outages the peak is found in: the confirmed ones, as the summaries count them
    (suspected ones only when nothing is confirmed)."""
    confirmed = outages[~suspected_outages(outages)]
    return confirmed if len(confirmed) else outages


def _timeline(outages: pd.DataFrame) -> list[pd.Timestamp]:
    """The windows the slider steps through: every window from the first outage to the last.

    Windows without outages in between are kept (at the outages' shortest spacing), and
    one more after the last when the outages say service came back (``restored``), so
    the end of the event can be seen too.
    """
    ends = _window_ends(outages)
    if len(ends) < 2:
        return ends
    step = pd.Series(ends).diff().dropna().min()
    if step <= pd.Timedelta(0) or (ends[-1] - ends[0]) / step > 5000:
        return ends
    regular = list(pd.date_range(ends[0], ends[-1], freq=step))
    if set(ends) - set(regular):  # irregular windows: step through the ones there are
        return ends
    if "restored" in outages and pd.to_datetime(outages["restored"], utc=True).notna().any():
        regular.append(ends[-1] + step)
    return regular


def _time_config(
    outages: pd.DataFrame, windows: list[pd.Timestamp], selected: pd.Timestamp
) -> dict[str, Any]:
    """Slider windows (end, texts), the selected and the peak index, and the control markup."""
    table = people_by_window(outages).reindex(windows, fill_value=0.0)
    people = table[ALL_NETWORKS] if ALL_NETWORKS in table else table.sum(axis=1)
    counts = (
        pd.to_datetime(outages["window_end"], utc=True).value_counts().reindex(windows).fillna(0)
    )
    starts = pd.DatetimeIndex(windows) - pd.Series(windows).diff().bfill().to_numpy()
    has_people = "population" in outages
    entries = []
    for start, end, n, p in zip(starts, windows, counts.to_numpy(), people.to_numpy(), strict=True):
        note = f"{int(n):,} outage area(s)"
        if has_people:
            note += f", {p:,.0f} people affected"
        entries.append(
            {
                "end": end.strftime("%Y-%m-%dT%H:%MZ"),
                "span": f"{start:%Y-%m-%d %H:%M} – {end:%H:%M} UTC"
                if start.date() == end.date() or end.strftime("%H:%M") == "00:00"
                else f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC",
                "until": f"{end:%Y-%m-%d %H:%M} UTC",
                "note": note,
            }
        )
    basis = people_by_window(_peak_basis(outages)).reindex(windows, fill_value=0.0)
    at_peak = basis[ALL_NETWORKS] if ALL_NETWORKS in basis else basis.sum(axis=1)
    peak = int(np.argmax(at_peak.to_numpy())) if len(at_peak) else 0
    if selected not in windows:
        raise ParameterError(
            f"window_end {selected:%Y-%m-%dT%H:%MZ} is not one of the outage windows "
            f"({windows[0]:%Y-%m-%dT%H:%MZ} to {windows[-1]:%Y-%m-%dT%H:%MZ})"
        )
    index = windows.index(selected)
    last = len(windows) - 1
    markup = (
        '<label for="dcm-time-slider">Time window (UTC)</label>'
        '<output class="dcm-when" for="dcm-time-slider" aria-live="polite"></output>'
        '<div class="dcm-note"></div><div class="dcm-row">'
        '<button type="button" class="dcm-prev" aria-label="Previous window">&#9664;</button>'
        f'<input type="range" id="dcm-time-slider" min="0" max="{last}" step="1" '
        f'value="{index}" aria-label="Time window">'
        '<button type="button" class="dcm-next" aria-label="Next window">&#9654;</button>'
        '<button type="button" class="dcm-peak" aria-label="Go to the peak window">Peak</button>'
        "</div>"
    )
    return {"windows": entries, "selected": index, "peak": peak, "markup": markup}


RESTORED_LABELS = {
    "network": "Network",
    "restored": "Service back",
    "people": "People",
    "onset": "Lost since",
    "id": "Outage",
}


def _restored_layer(
    outages: gpd.GeoDataFrame,
    window: pd.Timestamp | None,
    windows: list[pd.Timestamp],
    legend: list[str],
) -> folium.GeoJson | None:
    """Outages of the previous window whose id is gone in this one: service came back."""
    if window is None or "outage_id" not in outages or window not in windows:
        return None
    position = windows.index(window)
    if position == 0:
        return None
    before = _in_window(outages, windows[position - 1])
    now = set(_in_window(outages, window)["outage_id"].dropna())
    back = before[~before["outage_id"].isin(now).to_numpy()]
    if back.empty:
        return None
    out = _outage_display(back)
    out["s"] = "restored"
    out["restored"] = f"by {window.strftime('%Y-%m-%d %H:%M')} UTC"
    legend.append(_swatch(f"border:3px dashed {BLUISH_GREEN}", "Service back since last window"))
    data = to_geojson(out, precision=MAP_PRECISION)
    return _layer(data, kind="outage", name="Restored", labels=RESTORED_LABELS)


def _cells_at(cells: pd.DataFrame, window_end: pd.Timestamp | None) -> pd.DataFrame:
    """Cell rows valid at ``window_end`` (status intervals) with lon/lat and status."""
    missing = [c for c in ("lon", "lat", "status") if c not in cells.columns]
    if missing:
        raise ParameterError(f"cells for the map need columns lon, lat, status; missing {missing}")
    frame = cells
    if window_end is not None and {"start", "end"} <= set(cells.columns):
        start = pd.to_datetime(cells["start"], utc=True)
        end = pd.to_datetime(cells["end"], utc=True)
        frame = cells[(start < window_end) & (end.isna() | (end >= window_end))]
        keys = [c for c in ("radio", "mcc", "net", "area", "cell") if c in frame.columns]
        if keys:
            frame = frame.sort_values("start").drop_duplicates(keys, keep="last")
    return frame.dropna(subset=["lon", "lat"])


#: From this many cells on, markers go on a canvas: thousands of SVG nodes make the
#: page slow on the phones responders carry.
CANVAS_CELLS = 3000

CELL_LABELS: dict[str, str | list[str]] = {
    "s": "Status",
    "n": "Network",
    "r": "Radio",
    "a": "LAC/TAC",
    "id": "Cell",
    "site": "Site",
    "p": "P(offline)",
    "h": ["To decide", "needs {} h of silence to decide"],
}


def _cells_layer(cells: pd.DataFrame, *, timed: bool = False) -> folium.GeoJson:
    """All cells as one GeoJSON layer of circle markers keyed by status.

    ``timed``: ``cells`` are status intervals (start/end) of every window; the time
    control draws those valid at the selected window's end.
    """
    if "network" in cells.columns:
        network = cells["network"].astype("string")
    elif {"mcc", "net"} <= set(cells.columns):
        network = cells["mcc"].astype("string") + "-" + cells["net"].astype("string")
    else:
        network = pd.Series(pd.NA, index=cells.index, dtype="string")
    props = {"s": _column(cells["status"]), "n": _column(network)}
    for key, col in (("r", "radio"), ("a", "area"), ("id", "cell")):
        if col in cells.columns:
            props[key] = _column(cells[col])
    if "site_id" in cells.columns:
        props["site"] = _column(cells["site_id"])
    if "p_offline" in cells.columns:
        props["p"] = _column(pd.to_numeric(cells["p_offline"], errors="coerce").round(2))
    if "silence_h_needed" in cells.columns:
        hours = pd.to_numeric(cells["silence_h_needed"], errors="coerce").astype("float64")
        hours = hours.where(np.isfinite(hours))
        # Whole hours from 10 h on: the rate behind them is rough anyway.
        props["h"] = _column(hours.round(1).where(hours < 10, hours.round(0)))
    payload = {
        "x": np.round(cells["lon"].to_numpy(dtype="float64"), MAP_PRECISION).tolist(),
        "y": np.round(cells["lat"].to_numpy(dtype="float64"), MAP_PRECISION).tolist(),
        "p": props,
    }
    if timed:
        props["t0"] = _column(pd.Series(_iso_minutes(cells["start"]), index=cells.index))
        end = pd.to_datetime(cells["end"], utc=True)
        ends = pd.Series(_iso_minutes(end), index=cells.index).where(end.notna(), None)
        props["t1"] = _column(ends)
    return _layer(
        payload,
        kind="cell",
        name="Cells",
        labels=CELL_LABELS,
        expand="dcmPoints",
        canvas=len(cells) >= CANVAS_CELLS,
        feed="cells" if timed else None,
    )


_STATE_RANK = {"up": 0, "down": 1, "uncertain": 2, "no_data": 3}


def _hex_polygons(cells: np.ndarray) -> np.ndarray:
    """Shapely hexagons (lon/lat) of H3 cell strings."""
    import h3  # lazy: only grids without geometry need it

    rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(str(c))] for c in cells]
    return np.array([shapely.Polygon(r) for r in rings], dtype=object)


def _grid_layer(grid: pd.DataFrame, legend: list[str]) -> folium.GeoJson | None:
    """Hexes where no network has data (hatched grey) or the state is uncertain.

    ``grid``: GRID_STATUS_COLUMNS rows of one window, with hex geometry or ``h3``
    strings. A hex seen by any network is not "no data": the best-known state of
    each hex wins.
    """
    if grid.empty or "state" not in grid.columns:
        return None
    has_geometry = isinstance(grid, gpd.GeoDataFrame)
    if not has_geometry and "h3" not in grid.columns:
        raise ParameterError("the map's grid needs hex geometry or an 'h3' column")
    rank = grid["state"].map(_STATE_RANK).fillna(_STATE_RANK["no_data"]).to_numpy(dtype="int64")
    key = grid["h3"].to_numpy() if "h3" in grid.columns else grid.geometry.to_wkb().to_numpy()
    codes, uniq = pd.factorize(key)
    best = np.full(len(uniq), _STATE_RANK["no_data"])
    np.minimum.at(best, codes, rank)
    first = np.unique(codes, return_index=True)[1]
    state = best[codes[first]]
    keep = first[state >= _STATE_RANK["uncertain"]]
    names = np.array(list(_STATE_RANK))[best[codes[keep]]]
    crs: Any = "EPSG:4326"
    if isinstance(grid, gpd.GeoDataFrame):
        geoms = np.asarray(grid.geometry.array, dtype=object)[keep]
        crs = grid.crs
    else:
        geoms = _hex_polygons(key[keep])
    out = gpd.GeoDataFrame({"s": names}, geometry=geoms, crs=crs)
    out["state"] = np.char.replace(names.astype(str), "_", " ")
    if "h3" in grid.columns:
        out["h3"] = key[keep]
    if "no_data" in names:
        legend.append(
            _swatch(
                _HATCH_CSS % ("#ccc", "#fff") + f";border:1px dashed {GREY}",
                "No data (not an outage)",
            )
        )
    if "uncertain" in names:
        legend.append(_swatch(f"background:{YELLOW};border:0", "Uncertain"))
    data = to_geojson(out, precision=MAP_PRECISION)
    labels = {"state": "State", "h3": "Hex"}
    return _layer(data, kind="grid", name="No data / uncertain", labels=labels)


def _outline_layer(gdf: gpd.GeoDataFrame, *, kind: str, name: str) -> folium.GeoJson:
    keep = [c for c in ("name", "area_id", "hazard_id", "level") if c in gdf.columns]
    out = gpd.GeoDataFrame(
        gdf[keep].astype(object).to_numpy(), columns=keep, geometry=gdf.geometry.values, crs=gdf.crs
    )
    labels = {c: c.replace("_", " ").capitalize() for c in keep}
    return _layer(to_geojson(out, precision=MAP_PRECISION), kind=kind, name=name, labels=labels)


_HATCH_CSS = "background:repeating-linear-gradient(45deg,%s 0 3px,%s 3px 5px)"


def _swatch(style: str, label: str, *, dot: bool = False) -> str:
    """One legend row: a coloured box (or dot) and its label."""
    cls = ' class="dot"' if dot else ""
    return f'<i{cls} style="{style}"></i>{html.escape(label)}<br>'


def _legend_markup(
    title: str, window: pd.Timestamp | None, rows: list[str], attribution: str | None
) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if window is not None:
        parts.append(f"<p>Window ending {window.strftime('%Y-%m-%d %H:%M')} UTC</p>")
    parts.extend(rows)
    if attribution:
        parts.append(f'<p class="source">{html.escape(attribution)}</p>')
    return "".join(parts)


def _bounds(frames: list[gpd.GeoDataFrame]) -> list[list[float]] | None:
    """[[south, west], [north, east]] of the first non-empty frame (outages first)."""
    for frame in frames:
        if isinstance(frame, gpd.GeoDataFrame) and len(frame) and not frame.geometry.is_empty.all():
            geo = frame.to_crs(4326) if frame.crs is not None else frame
            w, s, e, n = geo.total_bounds
            if np.all(np.isfinite([w, s, e, n])):
                return [[float(s), float(w)], [float(n), float(e)]]
    return None


def render_map(
    *,
    outages: gpd.GeoDataFrame,
    cells: pd.DataFrame | None = None,
    grid: pd.DataFrame | None = None,
    areas: gpd.GeoDataFrame | None = None,
    hazard: gpd.GeoDataFrame | None = None,
    title: str = "Mobile connectivity outages",
    window_end: Any = None,
    tiles_url: str | None = None,
    tiles_attribution: str | None = None,
    attribution: str | None = None,
    orientation: dict[str, Any] | None = None,
) -> str:
    """The outage map as one self-contained HTML page (no internet needed).

    ``outages``: OUTAGE_COLUMNS GeoDataFrame (all windows). ``cells``: lon, lat,
    status, optionally CELL_STATUS_COLUMNS intervals (start/end), ids and p_offline;
    merge cell positions from the CELL_COLUMNS frame first. ``grid``:
    GRID_STATUS_COLUMNS with hex geometry or ``h3`` strings. ``areas``/``hazard``:
    outlines. When the outages span several windows, all are embedded and a slider
    (with previous/next/peak buttons) picks the one drawn; the page opens at
    ``window_end`` (default: the peak, see :func:`peak_window`; ParameterError when
    it is not one of the windows). Cells with status intervals follow the slider; the
    grid shows the opening window. With one window, that window is shown.
    ``tiles_url`` adds an online basemap; off by default so the page works offline.
    ``attribution`` (plain text, e.g. data sources and licences) goes under the legend.
    ``orientation``: land, coastline and place names
    (:func:`dcm.publish.orientation.orientation_geojson`), drawn under everything.
    """
    outages = with_outage_tiers(outages)
    windows = _window_ends(outages, grid)
    timeline = _timeline(outages)
    timed = len(timeline) > 1
    window: pd.Timestamp | None
    if window_end is not None:
        window = _utc(window_end)
    elif timed:
        window = peak_window(_peak_basis(outages))
    else:
        window = windows[-1] if windows else None

    fmap = folium.Map(tiles=None, control_scale=True, attribution_control=tiles_url is not None)
    # No CDN: Leaflet is inlined below, nothing else is used.
    fmap.default_js = []
    fmap.default_css = []
    figure = fmap.get_root()
    assert isinstance(figure, Figure)
    figure.header.add_child(_Raw(f"<title>{html.escape(title)}</title>"), name="title")
    figure.header.add_child(_Raw(f"<style>{leaflet_css_inline()}</style>"), name="leaflet_css")
    figure.header.add_child(_Raw(f"<style>{_PAGE_CSS}</style>"), name="dcm_css")
    figure.header.add_child(_Raw(f"<script>{leaflet_js()}</script>"), name="leaflet_js")
    figure.html.add_child(_Raw(_HATCH_SVG), name="hatch")
    if tiles_url:
        folium.TileLayer(tiles_url, attr=tiles_attribution or "", name="Basemap").add_to(fmap)
    add_orientation(fmap, orientation)

    styles = {kind: dict(values) for kind, values in STYLES.items()}
    legend: list[str] = []
    # Drawn bottom to top: context, then what was judged, cells last, so the filled
    # hazard footprint never catches the clicks meant for an outage.
    context: list[str] = []
    grid_legend: list[str] = []
    if hazard is not None and len(hazard):
        _outline_layer(hazard, kind="hazard", name="Hazard").add_to(fmap)
        context.append(_swatch(f"border:2px dashed {REDDISH_PURPLE}", "Hazard"))
    if areas is not None and len(areas):
        _outline_layer(areas, kind="area", name="Districts").add_to(fmap)
        context.append(_swatch("background:none", "District"))
    shown_grid = _in_window(grid, window) if grid is not None else None
    grid_layer = _grid_layer(shown_grid, grid_legend) if shown_grid is not None else None
    if grid_layer is not None:
        grid_layer.add_to(fmap)
    restored_legend: list[str] = []
    if timed:
        layers, payload = _outage_layers(outages, styles["outage"], legend, timed=True)
        assert payload is not None and window is not None
        # Before the layers it feeds: their scripts register with dcmTime.
        _TimeControl(_time_config(outages, timeline, window), payload).add_to(fmap)
        restored = None
        if "outage_id" in outages:
            restored = _layer(
                None, kind="outage", name="Restored", labels=RESTORED_LABELS, feed="restored"
            )
            restored_legend.append(
                _swatch(f"border:3px dashed {BLUISH_GREEN}", "Service back since last window")
            )
    else:
        restored = _restored_layer(outages, window, windows, restored_legend)
        layers, _ = _outage_layers(_in_window(outages, window), styles["outage"], legend)
    if restored is not None:
        restored.add_to(fmap)  # below the current outages, which take the clicks
    for layer in layers:
        layer.add_to(fmap)
    shown_outages = _in_window(outages, window)
    legend += restored_legend
    legend += grid_legend
    # With the slider, cells with status intervals follow the selected window too.
    timed_cells = timed and cells is not None and {"start", "end"} <= set(cells.columns)
    shown_cells = _cells_at(cells, None if timed_cells else window) if cells is not None else None
    if shown_cells is not None and len(shown_cells):
        _cells_layer(shown_cells, timed=timed_cells).add_to(fmap)
        present = set(shown_cells["status"].dropna())
        for status, look in (
            ("online", f"background:{BLUISH_GREEN};border-color:#fff"),
            ("offline", f"background:{VERMILLION};border:2px solid #000"),
            ("unknown", "background:#fff;border:2px dashed #666"),
        ):
            if status in present or (status == "unknown" and present - {"online", "offline"}):
                legend.append(_swatch(look, f"Cell {status}", dot=True))
    legend += context
    figure.header.add_child(
        _Raw(f"<script>{_HELPERS_JS % json.dumps(styles)}</script>"), name="dcm_js"
    )

    folium.LayerControl(collapsed=False).add_to(fmap)
    # With a slider the window is named there; the legend says when cells/grid are from.
    fixed = [
        what
        for what, shown in (("cells", shown_cells), ("hexes", shown_grid))
        if shown is not None and len(shown) and not (what == "cells" and timed_cells)
    ]
    if timed and window is not None and fixed:
        at = window.strftime("%Y-%m-%d %H:%M")
        legend.append(f"<p>{html.escape(', '.join(fixed).capitalize())}: {at} UTC</p>")
    _Legend(_legend_markup(title, None if timed else window, legend, attribution)).add_to(fmap)

    cell_points = (
        gpd.GeoDataFrame(
            geometry=gpd.points_from_xy(shown_cells["lon"], shown_cells["lat"]), crs=4326
        )
        if shown_cells is not None
        else None
    )
    # All windows' outages frame the view, so stepping through time keeps them in sight.
    framed = outages if timed else shown_outages
    bounds = _bounds([framed, shown_grid, cell_points, areas, hazard])
    if bounds is not None:
        fmap.fit_bounds(bounds, padding=(10, 10))
    return figure.render()
