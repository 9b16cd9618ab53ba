/* dcm map orientation, offline: land, coastline, borders and place names from this
   server (/orientation), or from the page itself on the batch map, under the map's data;
   and the installation's offline basemap (/basemap/…) when one is configured. Runs after
   map.js, which lends it window.dcm.map. */
(function () {
  'use strict';

  const dcm = window.dcm;
  if (!dcm || !dcm.map) return;
  const map = dcm.map;
  const cfg = JSON.parse(document.getElementById('dcm-config').textContent);
  const API = cfg.api || '';
  const MAX_SPAN = 20;            // degrees: the server's limit for one box
  const LABEL_BOX = [46, 16];     // px a label keeps clear around its centre
  // Read by the browser tests and handy in the console.
  const info = dcm.orientation = { ready: false, land: 0, places: 0, labels: 0,
    basemap: null, vector: null, errors: [] };

  map.createPane('orientation').style.zIndex = 250;        // under every data layer
  const labelPane = map.createPane('orientation-labels');  // over outages, under cells
  labelPane.style.zIndex = 420;
  labelPane.style.pointerEvents = 'none';

  const land = L.layerGroup().addTo(map);
  const labels = L.layerGroup().addTo(map);
  let loaded = null;              // { bounds, zoom } of the data drawn
  let places = [];                // [{ name, population, latlng }], largest first
  let ownBasemap = false;         // a basemap with its own coast and names is drawn
  let credited = false;

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const zoomBucket = () => Math.max(0, Math.min(22, Math.ceil(map.getZoom())));

  function landStyle() {
    // Over a basemap of its own the 1:10m coast only hints where the land is.
    return ownBasemap
      ? { color: '#4d6b7d', weight: 1, opacity: 0.5, dashArray: '4 4', fill: false,
        className: 'dcm-coast' }
      : { color: '#7a96a8', weight: 1.2, fillColor: '#f4f1ea', fillOpacity: 1,
        className: 'dcm-coast' };
  }

  // Largest places first; a label that would overlap one already placed is left out.
  function placeLabels() {
    labels.clearLayers();
    if (ownBasemap) { info.labels = 0; return; }
    const taken = [];
    const view = map.getBounds().pad(0.1);
    for (const p of places) {
      if (!view.contains(p.latlng)) continue;
      const pt = map.latLngToContainerPoint(p.latlng);
      const w = Math.max(LABEL_BOX[0], p.name.length * 7) / 2, h = LABEL_BOX[1] / 2;
      if (taken.some((t) => Math.abs(t.x - pt.x) < t.w + w && Math.abs(t.y - pt.y) < 2 * h)) {
        continue;
      }
      taken.push({ x: pt.x, y: pt.y, w });
      labels.addLayer(L.marker(p.latlng, {
        pane: 'orientation-labels', interactive: false, keyboard: false,
        icon: L.divIcon({ className: 'dcm-place-label', iconSize: null,
          html: `<span class="dcm-place" title="${esc(p.name)}">${esc(p.name)}</span>` }),
      }));
    }
    info.labels = taken.length;
  }

  async function load() {
    const view = map.getBounds();
    const zoom = zoomBucket();
    if (loaded && (loaded.whole || loaded.zoom === zoom) && loaded.bounds.contains(view)) {
      placeLabels();
      return;
    }
    let doc;
    if (dcm.embedded) {
      // The batch map carries the land and places around its data: drawn once.
      doc = dcm.embedded.layers.orientation;
      if (!doc || !doc.features) return;
      loaded = { bounds: L.latLngBounds([-90, -180], [90, 180]), zoom, whole: true };
    } else {
      const box = view.pad(0.5);
      const w = Math.max(box.getWest(), -180), e = Math.min(box.getEast(), 180);
      const s = Math.max(box.getSouth(), -90), n = Math.min(box.getNorth(), 90);
      if (e - w > MAX_SPAN || n - s > MAX_SPAN) return;   // the world view before framing
      const q = new URLSearchParams({ bbox: [w, s, e, n].map((v) => v.toFixed(5)).join(','),
        zoom: String(zoom) });
      try {
        const r = await fetch(`${API}/orientation?${q}`);
        if (!r.ok) throw new Error(`${r.status} /orientation`);
        doc = await r.json();
      } catch (err) {
        info.errors.push(String(err));
        return;
      }
      loaded = { bounds: L.latLngBounds([s, w], [n, e]), zoom };
    }
    const lands = doc.features.filter((f) => f.properties.kind === 'land');
    places = doc.features.filter((f) => f.properties.kind === 'place').map((f) => ({
      name: String(f.properties.name), population: f.properties.population,
      latlng: L.latLng(f.geometry.coordinates[1], f.geometry.coordinates[0]),
    }));
    land.clearLayers();
    if (lands.length) {
      land.addLayer(L.geoJSON({ type: 'FeatureCollection', features: lands },
        { pane: 'orientation', interactive: false, style: landStyle }));
    }
    map.getContainer().classList.toggle('dcm-has-land', lands.length > 0);
    if (!credited && doc.attribution && map.attributionControl) {
      map.attributionControl.addAttribution(esc(doc.attribution));
      credited = true;
    }
    info.land = lands.length;
    info.places = places.length;
    placeLabels();
    info.ready = true;
  }

  // vectortiles.js, fetched only when the basemap holds vector tiles.
  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(s);
    });
  }

  // The offline basemap under everything: raster tiles as images, vector tiles (MVT)
  // drawn on canvas by vectortiles.js.
  async function addBasemap() {
    if (!cfg.basemap_tiles) return;
    try {
      const r = await fetch(cfg.basemap_tiles);
      if (!r.ok) throw new Error(`${r.status} ${cfg.basemap_tiles}`);
      const tj = await r.json();
      info.basemap = tj.format;
      const attribution = tj.attribution ? esc(tj.attribution) : 'Offline basemap';
      const bounds = tj.bounds && L.latLngBounds([tj.bounds[1], tj.bounds[0]],
        [tj.bounds[3], tj.bounds[2]]);
      const url = `${API}/basemap/{z}/{x}/{y}.${tj.format}`;
      if (tj.format === 'pbf' && cfg.basemap_script) {
        await loadScript(cfg.basemap_script);
        const layer = new dcm.vectorTiles.VectorBasemap(url, { attribution, maxZoom: 22,
          archiveMinZoom: tj.minzoom, archiveMaxZoom: tj.maxzoom, bounds });
        info.vector = layer.stats;
        dcm.basemapLayer = layer;
        layer.addTo(map);
      } else if (['png', 'jpg', 'webp', 'avif'].includes(tj.format)) {
        const opts = { minZoom: tj.minzoom, maxZoom: 22, maxNativeZoom: tj.maxzoom, attribution };
        if (bounds) opts.bounds = bounds;
        L.tileLayer(url, opts).addTo(map);
      } else {
        return;
      }
      ownBasemap = true;
      land.eachLayer((l) => l.setStyle && l.setStyle(landStyle()));
      placeLabels();
    } catch (err) {
      info.errors.push(String(err));
    }
  }

  // Start once map.js has framed the event: no world-view tiles or outlines fetched only
  // to be thrown away.
  let timer = null;
  function start() {
    if (!dcm.ready) { setTimeout(start, 200); return; }
    map.on('moveend', () => { clearTimeout(timer); timer = setTimeout(load, 150); });
    addBasemap().then(load);
  }
  start();
})();
