/* dcm map client: plain ES2017 over Leaflet 1.9. One script for both maps: the live map
   served by `dcm serve` reads every layer from the OGC API; the batch map.html written by
   `dcm compare` carries its layers in the page (#dcm-data) and opens from disk. */
(function () {
  'use strict';

  const cfg = JSON.parse(document.getElementById('dcm-config').textContent);
  const embedded = document.getElementById('dcm-data');
  const DATA = embedded ? JSON.parse(embedded.textContent) : null;
  const EV = encodeURIComponent(cfg.event);
  const API = cfg.api || '';
  const PAGE = 2000;            // features per request; next links fetch the rest
  const MAX_PAGES = 40;
  const PLAY_STEP_MS = 1200;

  // An API key may come in the fragment (#key=…), never sent to server logs; kept per tab.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('key')) {
    sessionStorage.setItem('dcm-key', hash.get('key'));
    hash.delete('key');
    history.replaceState(null, '', location.pathname + location.search +
      (hash.toString() ? '#' + hash : ''));
  }
  const KEY = sessionStorage.getItem('dcm-key');
  const HEADERS = KEY ? { 'X-API-Key': KEY } : {};
  // The rest of the fragment is the shareable view: window (w), map (m = zoom/lat/lon),
  // boxes ticked off (off) or on (on) against their defaults, as "name:value" lists.
  const shared = {
    w: hash.get('w'), m: (hash.get('m') || '').split('/').map(Number),
    off: new Set((hash.get('off') || '').split(',').filter(Boolean)),
    on: new Set((hash.get('on') || '').split(',').filter(Boolean)),
  };

  // Okabe–Ito colours; severity is also told apart by hatching and dash patterns.
  const C = { outage: '#D55E00', degraded: '#E69F00', up: '#009E73', uncertain: '#F0E442',
    nodata: '#8c8c8c', hazard: '#CC79A7', density: '#0072B2' };
  const GRID_RANK = { down: 3, uncertain: 2, no_data: 1, up: 0 };

  const $ = (id) => document.getElementById(id);
  const state = { windows: [], index: -1, follow: !shared.w, playing: false, token: 0,
    networks: new Map(), densityAllowed: false, fitted: false, version: null, zoom: null,
    offline: null, timeline: null, tz: null, peak: null };
  // Read by the browser tests and handy in the console; addOverlay is the hook for
  // other scripts (orientation layers, …).
  const status = window.dcm = { ready: false, index: -1, windows: 0, drawn: {}, errors: [],
    addOverlay: null, map: null, live: !DATA, embedded: DATA, peak: null };

  // ---- data ---------------------------------------------------------------------------

  // Answers are kept in the Cache Storage the service worker (sw.js) falls back on, so a
  // responder can reopen the map without a connection; it marks what it serves from
  // there with X-DCM-Offline. Measurements (restricted data) are never kept.
  const OFFLINE_CACHE = 'dcm-map-v1';
  const keep = (url, text, type) => window.caches && !url.includes('-measurements/') &&
    caches.open(OFFLINE_CACHE).then((c) => c.put(url, new Response(text, {
      headers: { 'Content-Type': type, 'X-DCM-Saved': new Date().toISOString() } })))
      .catch(() => null);

  async function getJSON(url) {
    const r = await fetch(url, { headers: HEADERS, cache: 'no-cache' });
    if (!r.ok) { const e = new Error(r.status + ' ' + url); e.status = r.status; throw e; }
    const text = await r.text();
    if (r.headers.get('X-DCM-Offline')) {
      state.offline = r.headers.get('X-DCM-Saved') || state.offline || 'unknown';
    } else {
      state.offline = null;
      keep(new URL(url, location.href).href, text, r.headers.get('Content-Type') || 'application/json');
    }
    return JSON.parse(text);
  }

  // Outlines come simplified by the server to half a pixel at the zoom they are drawn at
  // (?zoom=): whole levels, rounded up so they are never coarser than the screen shows.
  const OUTLINES = new Set(['outages', 'grid', 'areas', 'hazard']);
  const zoomBucket = () => Math.max(0, Math.min(22, Math.ceil(map.getZoom())));
  const zoomed = (kind) => OUTLINES.has(kind) ? { zoom: zoomBucket() } : {};

  async function apiItems(kind, params) {
    const q = new URLSearchParams(Object.assign({ limit: PAGE }, zoomed(kind), params || {}));
    let url = `${API}/collections/${EV}-${kind}/items?${q}`;
    const out = [];
    for (let n = 0; url && n < MAX_PAGES; n++) {
      const fc = await getJSON(url);
      out.push(...fc.features);
      const next = (fc.links || []).find((l) => l.rel === 'next');
      url = next ? next.href : null;
    }
    return out;
  }

  // ---- data sources: the API (live map) or the page itself (batch map) ------------------

  /* Both answer the same questions with the same GeoJSON: the event (name, description,
     windows), a layer's features (optionally of one window or one network), the extent of
     a layer and whether measurements may be read. */
  const apiSource = {
    live: true,
    event: () => getJSON(`${API}/events/${EV}`),
    items: apiItems,
    async extent(kind) {
      const meta = await getJSON(`${API}/collections/${EV}-${kind}`).catch(() => null);
      const box = meta && meta.extent && meta.extent.spatial && meta.extent.spatial.bbox[0];
      return box || null;
    },
    async measurements() {
      try {
        return (await getJSON(`${API}/collections/${EV}-measurements/items?limit=1`))
          .features.length > 0;
      } catch (e) {
        return false;
      }
    },
  };

  // Embedded layers come compact: a shared list of geometries named by index (g), or
  // columns of points ({x, y, p: {key: values | {cat: names, idx: codes}}}).
  function expand(raw) {
    if (!raw) return [];
    if (raw.x) {
      const out = [];
      for (let i = 0; i < raw.x.length; i++) {
        const properties = {};
        for (const [key, c] of Object.entries(raw.p)) {
          properties[key] = Array.isArray(c) ? c[i] : c.cat[c.idx[i]];
        }
        out.push({ type: 'Feature', properties,
          geometry: { type: 'Point', coordinates: [raw.x[i], raw.y[i]] } });
      }
      return out;
    }
    const shapes = raw.geometries || [];
    return raw.features.map((f) => f.g === undefined ? f
      : { type: 'Feature', geometry: shapes[f.g] || null, properties: f.properties });
  }

  // A feature's time span (window or status interval) meets [a, b].
  function meets(p, a, b) {
    const s = Date.parse(p.window_start || p.start);
    const end = p.window_end || p.end;
    return isNaN(s) || (s <= b && (!end || Date.parse(end) >= a));
  }

  function embeddedSource(data) {
    const layers = {};
    const layer = (kind) => layers[kind] || (layers[kind] = expand(data.layers[kind]));
    return {
      live: false,
      event: async () => data.event,
      async items(kind, params) {
        const p = params || {};
        let out = layer(kind);
        if (p.network) out = out.filter((f) => f.properties.network === p.network);
        if (p.datetime) {
          const [a, b] = p.datetime.split('/').map(Date.parse);
          out = out.filter((f) => meets(f.properties, a, b));
        }
        return out;
      },
      // Everything the page carries (all windows, every cell), for a map whose opening
      // window draws nothing to frame.
      async extent() {
        const box = [Infinity, Infinity, -Infinity, -Infinity];
        const grow = (x, y) => {
          box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y);
          box[2] = Math.max(box[2], x); box[3] = Math.max(box[3], y);
        };
        const walk = (c) => (typeof c[0] === 'number' ? grow(c[0], c[1]) : c.forEach(walk));
        for (const kind of ['outages', 'cells', 'areas', 'hazard']) {
          const raw = data.layers[kind];
          if (raw && raw.x) raw.x.forEach((x, i) => grow(x, raw.y[i]));
          else if (raw) (raw.geometries || raw.features.map((f) => f.geometry))
            .forEach((g) => g && g.coordinates && walk(g.coordinates));
        }
        return isFinite(box[0]) ? box : null;
      },
      measurements: async () => false,
    };
  }

  const source = DATA ? embeddedSource(DATA) : apiSource;
  const items = (kind, params) => source.items(kind, params);

  /* The selected window, shrunk by a second at each end so that features of the
     neighbouring windows, which touch its ends, are left out. */
  function windowParam(w) {
    const s = new Date(Date.parse(w.start) + 1000), e = new Date(Date.parse(w.end) - 1000);
    return { datetime: `${iso(s)}/${iso(e)}` };
  }

  function parseWindows(ev) {
    const list = ev.windows || [];
    return list.map((w) => typeof w === 'string' ? { start: w, end: null }
      : { start: w.window_start || w.start, end: w.window_end || w.end })
      .filter((w) => w.start).map((w, i, all) => ({
        start: w.start,
        end: w.end || (all[i + 1] ? all[i + 1].start : iso(new Date(Date.parse(w.start) + 3600e3))),
      }))
      .sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
  }

  // Without a windows list, the outage features themselves tell which windows exist.
  async function windowsFromOutages() {
    const seen = new Map();
    for (const f of await items('outages', { limit: 5000 })) {
      const p = f.properties;
      if (p.window_start) seen.set(p.window_start, { start: p.window_start, end: p.window_end });
    }
    return [...seen.values()].sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
  }

  // ---- formatting ---------------------------------------------------------------------

  const iso = (d) => d.toISOString().replace('.000Z', 'Z');
  const utc = (t) => t ? iso(new Date(t)).slice(0, 16).replace('T', ' ') : '–';
  const hm = (t) => iso(new Date(t)).slice(11, 16);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  // Local time: the event's time zone when the API names one, else the browser's.
  function localFormat(tz) {
    try {
      return new Intl.DateTimeFormat('en-GB', { timeZone: tz, hour: '2-digit', minute: '2-digit',
        day: '2-digit', month: 'short', hourCycle: 'h23' });
    } catch (e) {
      return null;
    }
  }
  let localFmt = localFormat(undefined);
  const zoneName = () => state.tz || Intl.DateTimeFormat().resolvedOptions().timeZone || 'browser';
  const local = (t) => t && localFmt ? localFmt.format(new Date(t)) : '–';
  const since = (t, now) => {
    const h = (Date.parse(now) - Date.parse(t)) / 3600e3;
    return isNaN(h) ? '' : h < 1 ? `${Math.max(0, Math.round(h * 60))} min` : h < 48
      ? `${Math.round(h)} h` : `${Math.round(h / 24)} d`;
  };
  const netName = (n) => n === 'all' ? 'all networks' : n;
  function people(n) {
    if (n == null || isNaN(n)) return 'unknown';
    const r = n >= 1000 ? Math.round(n / 100) * 100 : Math.round(n / 10) * 10;
    return '≈ ' + r.toLocaleString('en-GB');
  }
  function windowText(w) {
    if (!w) return 'no windows yet';
    const sameDay = w.end && w.start.slice(0, 10) === iso(new Date(w.end)).slice(0, 10);
    return `${utc(w.start)} – ${sameDay ? hm(w.end) : utc(w.end)}`;
  }

  // ---- map and layers -----------------------------------------------------------------

  const map = L.map('map', { zoomSnap: 0.25, keyboard: true, worldCopyJump: false })
    .setView([0, 0], 2);
  status.map = map;  // static/orientation.js draws land and place names on it
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution('dcm · <a href="https://leafletjs.com">Leaflet</a>');
  if (cfg.attribution) map.attributionControl.addAttribution(esc(cfg.attribution));
  L.control.scale({ imperial: false }).addTo(map);
  [['areas', 350], ['event', 355], ['hazard', 360], ['grid', 370], ['density', 380],
    ['restored', 390], ['outages', 400], ['cells', 450]].forEach(([name, z]) => {
    map.createPane(name).style.zIndex = z;
  });
  const canvas = L.canvas({ pane: 'density' });
  const L_ = {};
  ['areas', 'event', 'hazard', 'grid', 'density', 'restored', 'outages', 'cells']
    .forEach((name) => { L_[name] = L.layerGroup().addTo(map); });

  function draw(name, features, options) {
    L_[name].clearLayers();
    if (features.length) L_[name].addLayer(L.geoJSON({ type: 'FeatureCollection', features },
      Object.assign({ pane: name }, options)));
    status.drawn[name] = features.length;
  }

  // ---- filters from the controls ------------------------------------------------------

  function checked(name) {
    return new Set([...document.querySelectorAll(`input[name="${name}"]:checked`)]
      .map((i) => i.value));
  }

  // Per-network outages are outlines. Each network keeps one colour and dash wherever it
  // is drawn (live and batch map, any order of discovery): both come from a 32-bit
  // FNV-1a hash of its "MCC-MNC" key (dcm.publish.webmap.network_look does the same).
  const NET_COLOURS = ['#0072B2', '#56B4E9', '#000000', '#5E3C99', '#1B7837', '#8C510A',
    '#01665E', '#3F5765'];
  const NET_DASHES = ['10 5', '3 5', '12 4 3 4'];
  function fnv1a(text) {
    let h = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) {
      h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    }
    return h;
  }
  function netLook(n) {
    const h = fnv1a(String(n));
    return [NET_COLOURS[h % NET_COLOURS.length],
      NET_DASHES[Math.floor(h / NET_COLOURS.length) % NET_DASHES.length]];
  }
  status.netLook = netLook;

  // A box's state from the shared link, else its default.
  function fromLink(input) {
    const id = `${input.name}:${input.value}`;
    if (shared.off.has(id)) input.checked = false;
    else if (shared.on.has(id)) input.checked = true;
  }

  // Every network's outages are drawn from the start; a box per network hides them.
  function syncNetworks(features) {
    const names = features.map((f) => f.properties.network)
      .filter((n) => n && n !== 'all' && !state.networks.has(n));
    if (!names.length) return;
    names.forEach((n) => state.networks.set(n, !shared.off.has(`network:${n}`)));
    const box = $('networks');
    box.textContent = '';
    for (const n of [...state.networks.keys()].sort()) {
      const [color, dash] = netLook(n);
      const label = document.createElement('label');
      const input = document.createElement('input');
      Object.assign(input, { type: 'checkbox', name: 'network', value: n, defaultChecked: true });
      input.checked = state.networks.get(n);
      input.addEventListener('change', () => {
        state.networks.set(n, input.checked); redraw(); writeLink();
      });
      const sw = document.createElement('span');
      sw.className = 'sw sw-line';
      sw.innerHTML = `<svg viewBox="0 0 18 12" aria-hidden="true"><path d="M0 6H18" stroke="${color
      }" stroke-width="3" stroke-dasharray="${dash.split(' ').map((v) => v / 2).join(' ')}"/></svg>`;
      label.append(input, sw, `Network ${n} down`);
      box.append(label);
    }
    markOff();
  }

  // Unchecked entries are left out of the printed legend.
  function markOff() {
    document.querySelectorAll('#panel label').forEach((l) => {
      const i = l.querySelector('input');
      l.classList.toggle('off', !!i && !i.checked);
    });
  }

  // ---- drawing ------------------------------------------------------------------------

  let current = { outages: [], cells: [], grid: [], density: [] };

  // Networks with an outage of their own in the window that meets this area.
  function networksDown(f) {
    const box = L.geoJSON(f).getBounds();
    const nets = current.outages.filter((o) => o.properties.network !== 'all' &&
      L.geoJSON(o).getBounds().intersects(box)).map((o) => o.properties.network);
    return [...new Set(nets)].sort();
  }

  const suspected = (p) => p.tier === 'suspected';
  const prob = (v) => v == null || isNaN(v) ? null : (+v).toFixed(2);

  // "suspected (p = 0.63)" or "confirmed (observed)"; rows from before the tiers are
  // confirmed.
  function tierText(p) {
    if (suspected(p)) return prob(p.confidence) ? `suspected (p = ${prob(p.confidence)})` : 'suspected';
    return p.certainty ? `confirmed (${p.certainty})` : 'confirmed';
  }

  function outagePopup(f) {
    const p = f.properties, all = p.network === 'all';
    const down = Array.isArray(p.networks) ? p.networks : all ? networksDown(f) : [p.network];
    const title = (suspected(p) ? 'Suspected: ' : '') + (!all ? `Network ${p.network} down`
      : p.severity === 'outage' ? 'No service on any network' : 'Degraded: some networks down');
    const rows = [
      ['Status', tierText(p)],
      ['Since (onset)', utc(p.onset || p.window_start) + ' UTC'],
      ['People affected', people(p.population)],
      ['Networks down', down.length ? down.join(', ') : all && p.severity === 'outage'
        ? 'all' : '–'],
      ['Confidence', p.confidence == null ? '–' : Math.round(p.confidence * 100) + ' %'],
      ['Cells offline', p.cells_offline == null ? '–' : p.cells_offline],
      ['Area', p.area_km2 == null ? '–' : (+p.area_km2).toFixed(1) + ' km²'],
      ['Window', windowText({ start: p.window_start, end: p.window_end }) + ' UTC'],
    ];
    return `<div class="dcm-popup"><h3>${esc(title)}</h3><dl>${rows.map(([k, v]) =>
      `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl></div>`;
  }

  function outageStyle(p) {
    if (p.network !== 'all') {
      const [color, dash] = netLook(p.network);
      // Outlines only, so a click inside reaches the all-network area beneath (its popup
      // names every network down). Suspected: thinner, over a faint fill of its colour.
      return suspected(p)
        ? { color, weight: 2, dashArray: dash, fill: true, fillColor: color, fillOpacity: 0.15,
          className: 'dcm-net dcm-suspected-net' }
        : { color, weight: 3, dashArray: dash, fill: false, className: 'dcm-net' };
    }
    // Suspected: dashed outline over a light, sparse hatch (see map.css) instead of the fill.
    if (suspected(p)) {
      return p.severity === 'outage'
        ? { color: '#7a2e00', weight: 2, dashArray: '5 5', className: 'dcm-suspected' }
        : { color: '#8a5a00', weight: 2, dashArray: '2 5', className: 'dcm-suspected-degraded' };
    }
    return p.severity === 'outage'
      ? { color: '#7a2e00', weight: 2, fillColor: C.outage, fillOpacity: 0.5, className: 'dcm-outage' }
      : { color: '#8a5a00', weight: 2, dashArray: '6 4', fillColor: C.degraded, fillOpacity: 0.35,
        className: 'dcm-degraded' };
  }

  function drawOutages() {
    const sev = checked('severity'), tiers = checked('tier');
    const shown = (p) => (!suspected(p) || tiers.has('suspected')) &&
      (p.network === 'all' ? sev.has(p.severity) : state.networks.get(p.network));
    // Degraded, then no service, then per-network outlines on top.
    const rank = (p) => p.network !== 'all' ? 2 : p.severity === 'outage' ? 1 : 0;
    const list = current.outages.filter((f) => shown(f.properties))
      .sort((a, b) => rank(a.properties) - rank(b.properties));
    layerOf.clear();
    draw('outages', list, {
      style: (f) => outageStyle(f.properties),
      onEachFeature: (f, layer) => { layerOf.set(f, layer); layer.bindPopup(() => outagePopup(f)); },
    });
    listOutages(list);
    const w = state.windows[state.index];
    draw('restored', checked('severity').has('restored') ? current.restored || [] : [], {
      style: { color: C.up, weight: 3, dashArray: '4 4', fillColor: C.up, fillOpacity: 0.12,
        className: 'dcm-restored' },
      onEachFeature: (f, layer) => layer.bindPopup(() => restoredPopup(f.properties, w)),
    });
  }

  function restoredPopup(p, w) {
    const rows = [['Network', netName(p.network)],
      ['Service back', `by ${utc(w && w.start)} UTC`],
      ['Lost since', utc(p.onset || p.window_start) + ' UTC'],
      ['People', people(p.population)], ['Outage', p.outage_id]];
    return `<div class="dcm-popup"><h3>Service back since last window</h3><dl>${rows.map(
      ([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl></div>`;
  }

  // ---- the list of current outages, and totals ------------------------------------------

  const layerOf = new Map();
  let areaShapes = [];

  // Ray casting on the rings of a (Multi)Polygon: the admin area holding a point.
  function inRing(x, y, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }
  // The admin area holding the outage's centre; for a ring or crescent whose centre lies
  // outside, the area holding most of its outline's points.
  function district(f) {
    const areaAt = (x, y) => areaShapes.find((a) => {
      const g = a.geometry;
      const polys = !g ? [] : g.type === 'Polygon' ? [g.coordinates]
        : g.type === 'MultiPolygon' ? g.coordinates : [];
      return polys.some((p) => p.length && inRing(x, y, p[0]) &&
        !p.slice(1).some((hole) => inRing(x, y, hole)));
    });
    const nameOf = (a) => a.properties.name || a.properties.area_id;
    const c = L.geoJSON(f).getBounds().getCenter();
    const hit = areaAt(c.lng, c.lat);
    if (hit) return nameOf(hit);
    const g = f.geometry || {};
    const rings = g.type === 'Polygon' ? [g.coordinates[0]]
      : g.type === 'MultiPolygon' ? g.coordinates.map((p) => p[0]) : [];
    const votes = new Map();
    for (const ring of rings) {
      const step = Math.max(1, Math.floor(ring.length / 24));
      for (let i = 0; i < ring.length; i += step) {
        const a = areaAt(ring[i][0], ring[i][1]);
        if (a) votes.set(a, (votes.get(a) || 0) + 1);
      }
    }
    const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0];
    if (best) return nameOf(best[0]);
    // Outside every area (a coast the areas' outlines miss): the nearest one, said so.
    let near = null, nearest = Infinity;
    for (const a of areaShapes) {
      const b = L.geoJSON(a).getBounds();
      if (!b.isValid()) continue;
      const dx = Math.max(b.getWest() - c.lng, 0, c.lng - b.getEast());
      const dy = Math.max(b.getSouth() - c.lat, 0, c.lat - b.getNorth());
      if (dx * dx + dy * dy < nearest) { nearest = dx * dx + dy * dy; near = a; }
    }
    return near ? `near ${nameOf(near)}` : `${c.lat.toFixed(3)}, ${c.lng.toFixed(3)}`;
  }

  function outageTitle(p) {
    return p.network !== 'all' ? `Network ${p.network} down`
      : p.severity === 'outage' ? 'No service on any network' : 'Degraded: some networks down';
  }

  // The outages drawn in this window, worst first: a button each that frames it.
  function listOutages(list) {
    const rank = (p) => (p.network === 'all' && p.severity === 'outage' ? 0 : 1) +
      (suspected(p) ? 2 : 0);
    const sorted = [...list].sort((a, b) => rank(a.properties) - rank(b.properties) ||
      (b.properties.population || 0) - (a.properties.population || 0));
    const ol = $('outage-list');
    ol.textContent = '';
    const w = state.windows[state.index];
    const rows = [];
    for (const f of sorted) {
      const p = f.properties, where = district(f), start = p.onset || p.window_start;
      const li = document.createElement('li');
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'outage-item';
      const net = p.network === 'all' ? (p.severity === 'outage' ? 'all networks' : 'some networks')
        : p.network;
      const sw = p.network === 'all' ? `<span class="sw ${p.severity === 'outage' ? 'sw-outage'
        : 'sw-degraded'}"></span>` : `<span class="sw sw-line"><svg viewBox="0 0 18 12" aria-hidden="true"><path d="M0 6H18" stroke="${
        netLook(p.network)[0]}" stroke-width="4"/></svg></span>`;
      btn.innerHTML = `${sw}<span><strong>${esc(where)}</strong> · ${esc(net)} · ${
        esc(people(p.population))} people<br><span class="muted">since ${esc(utc(start))} UTC${
        w ? ` (${esc(since(start, w.end))})` : ''} · ${esc(tierText(p))}</span><span class="vh"> — ${
        esc(outageTitle(p))}: show on the map</span></span>`;
      btn.title = `${outageTitle(p)} in ${where}: show on the map`;
      btn.addEventListener('click', () => {
        const layer = layerOf.get(f);
        if (!layer) return;
        map.fitBounds(layer.getBounds(), { maxZoom: 13, padding: [20, 20] });
        layer.openPopup(layer.getBounds().getCenter());
      });
      li.append(btn);
      ol.append(li);
      rows.push([where, p.network, p.severity, p.tier || 'confirmed', p.certainty || '',
        p.confidence, p.population == null ? '' : Math.round(p.population), start,
        p.window_start, p.window_end, p.outage_id]);
    }
    $('outage-none').hidden = sorted.length > 0;
    status.listed = sorted.length;
    csvLink(rows);
  }

  // The listed outages as CSV, made here: no extra request.
  let csvUrl = null;
  function csvLink(rows) {
    const head = ['district', 'network', 'severity', 'tier', 'certainty', 'confidence',
      'population', 'onset', 'window_start', 'window_end', 'outage_id'];
    const cell = (v) => v == null ? '' : /[",\n]/.test(String(v))
      ? `"${String(v).replace(/"/g, '""')}"` : String(v);
    const text = [head, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
    if (csvUrl) URL.revokeObjectURL(csvUrl);
    csvUrl = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    const a = $('dl-outages-csv');
    a.href = csvUrl;
    const w = state.windows[state.index];
    a.download = `${cfg.event}-outages-${w ? w.start.slice(0, 13).replace(/[-:T]/g, '') : 'none'}.csv`;
  }

  // People with no service (nobody serves), people where some networks are down, and
  // sites offline, for the selected window. Suspected outages are counted apart.
  function totalsOf(outages) {
    const t = { none: 0, degraded: 0, suspected: 0 };
    for (const f of outages) {
      const p = f.properties, n = +p.population || 0;
      if (p.network !== 'all') continue;
      if (suspected(p)) t.suspected += n;
      else if (p.severity === 'outage') t.none += n;
      else t.degraded += n;
    }
    return t;
  }

  function showTotals() {
    const t = totalsOf(current.outages);
    const sites = new Set(current.cells.filter((f) => f.properties.status === 'offline')
      .map((f) => f.properties.site_id || f.id || cellKey(f.properties)));
    $('total-none').textContent = people(t.none).replace('≈ ', '');
    $('total-degraded').textContent = people(t.degraded).replace('≈ ', '');
    $('total-sites').textContent = checked('cells').has('offline') ? sites.size : '–';
    $('total-suspected').hidden = !t.suspected;
    $('total-suspected').textContent = `and ≈ ${people(t.suspected).replace('≈ ', '')} people in suspected outages`;
    status.totals = { none: t.none, degraded: t.degraded, sites: sites.size, suspected: t.suspected };
    drawChart();
  }

  // Totals of every window, from the event's all-network outages fetched once at zoom 0
  // (the outlines shrink to a few points there: it is their properties that count).
  async function loadTimeline() {
    const all = await items('outages', { zoom: 0, limit: 5000, network: 'all' });
    const by = new Map(state.windows.map((w) => [Date.parse(w.start), []]));
    for (const f of all) {
      const list = by.get(Date.parse(f.properties.window_start));
      if (list) list.push(f);
    }
    state.timeline = state.windows.map((w) => totalsOf(by.get(Date.parse(w.start))));
    // The peak: most people cut off (no service or degraded), confirmed outages first;
    // the batch map names its own (the window dcm compare opens at).
    const tl = state.timeline;
    const cut = (t) => t.none + t.degraded;
    const basis = tl.some((t) => cut(t) > 0) ? cut : (t) => t.suspected;
    state.peak = DATA && DATA.peak != null ? DATA.peak
      : tl.length && tl.some((t) => basis(t) > 0)
        ? tl.reduce((b, t, k) => (basis(t) > basis(tl[b]) ? k : b), 0) : null;
    status.peak = state.peak;
    $('peak').hidden = state.peak == null;
    updateTimeControls();
    drawChart();
  }

  // A small step chart: people with no service (filled) and degraded (line) per window;
  // the selected window is marked. Clicking it selects the window under the pointer.
  function drawChart() {
    const box = $('chart'), tl = state.timeline, n = tl ? tl.length : 0;
    if (!n) { box.textContent = ''; return; }
    const W = 260, H = 64, top = Math.max(1, ...tl.map((t) => Math.max(t.none, t.degraded)));
    const x = (i) => (i / n) * W, y = (v) => H - 2 - (v / top) * (H - 8);
    const steps = (key) => tl.map((t, i) => `L${x(i).toFixed(1)} ${y(t[key]).toFixed(1)}H${
      x(i + 1).toFixed(1)}`).join('');
    const i = state.index, peak = tl.reduce((b, t, k) => (t.none > tl[b].none ? k : b), 0);
    const label = `People with no service per window: now ${people(tl[i] ? tl[i].none : 0)
    }, peak ${people(tl[peak].none)} at ${utc(state.windows[peak].start)} UTC; degraded now ${
      people(tl[i] ? tl[i].degraded : 0)}.`;
    box.innerHTML = `<svg viewBox="0 0 ${W} ${H}" width="100%" height="${H}" preserveAspectRatio="none" role="img"
      aria-label="${esc(label)}"><title>${esc(label)}</title>
      <rect x="${x(Math.max(0, i)).toFixed(1)}" y="0" width="${(W / n).toFixed(1)}" height="${H}"
        fill="#cfe3f1"/>
      <path class="chart-none" d="M0 ${H - 2}${steps('none')}V${H - 2}Z" fill="${C.outage}"
        fill-opacity="0.6" stroke="#7a2e00" stroke-width="1"/>
      <path class="chart-degraded" d="M0 ${y(tl[0].degraded).toFixed(1)}${steps('degraded')}"
        fill="none" stroke="#8a5a00" stroke-width="1.5" stroke-dasharray="4 2"/>
      <line x1="0" y1="${H - 1}" x2="${W}" y2="${H - 1}" stroke="#767676"/></svg>`;
    status.chart = tl.map((t) => t.none);
  }
  $('chart').addEventListener('click', (e) => {
    const r = $('chart').getBoundingClientRect(), n = state.windows.length;
    if (n && r.width) show(Math.floor(((e.clientX - r.left) / r.width) * n));
  });

  function cellPopup(p) {
    // Offline since: the start of the current offline interval, which may lie before
    // the status interval shown (p.start) when the cell was offline windows earlier.
    const rows = [['Status', p.status], ['Network', p.network], ['Site', p.site_id],
      ['Radio', p.radio],
      p.status === 'offline' && p.offline_since
        ? ['Offline since', `${utc(p.offline_since)} UTC`] : ['From', utc(p.start) + ' UTC'],
      ['P(offline)', p.p_offline == null ? '–' : Math.round(p.p_offline * 100) + ' %']];
    // Where data are thin: how long a silence would take to call the site offline.
    const h = p.silence_h_needed;
    if (typeof h === 'number' && isFinite(h)) {
      rows.push(['To decide', `needs ${h < 10 ? +h.toFixed(1) : Math.round(h)} h of silence to decide`]);
    }
    return `<div class="dcm-popup"><h3>Cell ${esc(p.cell == null ? '' : p.cell)}</h3><dl>${rows
      .filter(([, v]) => v != null).map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('')}</dl></div>`;
  }

  const cellKey = (p) => [p.radio, p.network, p.area, p.cell].join(':');
  const CANVAS_CELLS = 3000;
  let cellCanvas = null;
  function drawCells() {
    const want = checked('cells');
    // One marker per cell: the latest status interval that reaches into the window.
    const latest = new Map();
    for (const f of current.cells) {
      const p = f.properties;
      const id = cellKey(p);
      const seen = latest.get(id);
      if (!seen || Date.parse(p.start) > Date.parse(seen.properties.start)) latest.set(id, f);
    }
    const list = [...latest.values()].filter((f) => want.has(f.properties.status));
    const look = {
      offline: { radius: 6, color: '#000', weight: 2, fillColor: C.outage, fillOpacity: 1 },
      online: { radius: 4, color: '#fff', weight: 1, fillColor: C.up, fillOpacity: 1 },
      unknown: { radius: 4, color: '#666', weight: 2, dashArray: '2 2', fillColor: '#fff',
        fillOpacity: 1 },
    };
    // Thousands of SVG nodes make a phone slow: many markers go on one canvas.
    const renderer = list.length >= CANVAS_CELLS
      ? (cellCanvas = cellCanvas || L.canvas({ pane: 'cells', padding: 0.5 })) : undefined;
    draw('cells', list, {
      pointToLayer: (f, ll) => L.circleMarker(ll, Object.assign({ pane: 'cells', renderer },
        look[f.properties.status] || look.unknown)),
      onEachFeature: (f, layer) => layer.bindPopup(() => cellPopup(f.properties)),
    });
  }

  function drawGrid() {
    const want = checked('grid');
    // The combined layer ("all") where the API has one, else per hexagon the worst
    // state among its networks.
    const combined = current.grid.some((f) => f.properties.network === 'all');
    const worst = new Map();
    for (const f of current.grid) {
      const p = f.properties;
      if (combined && p.network !== 'all') continue;
      const id = p.h3 || f.id;
      const seen = worst.get(id);
      if (!seen || GRID_RANK[p.state] > GRID_RANK[seen.properties.state]) worst.set(id, f);
    }
    const list = [...worst.values()].filter((f) => want.has(f.properties.state));
    const look = {
      down: { fillColor: C.outage, fillOpacity: 0.45, stroke: false },
      uncertain: { fillColor: C.uncertain, fillOpacity: 0.55, stroke: false },
      up: { fillColor: C.up, fillOpacity: 0.3, stroke: false },
      no_data: { fillColor: '#bbb', fillOpacity: 0.2, color: C.nodata, weight: 1, dashArray: '3 3' },
    };
    draw('grid', list, {
      style: (f) => look[f.properties.state] || look.no_data,
      onEachFeature: (f, layer) => layer.bindTooltip(
        `${f.properties.state.replace('_', ' ')} · ${netName(f.properties.network)}`),
    });
  }

  function drawDensity() {
    const on = state.densityAllowed && checked('layer').has('density');
    draw('density', on ? current.density : [], {
      pointToLayer: (f, ll) => L.circleMarker(ll, { renderer: canvas, radius: 3, stroke: false,
        fillColor: C.density, fillOpacity: 0.35, interactive: false }),
    });
  }

  function showContext() {
    const on = checked('layer');
    for (const name of ['areas', 'hazard', 'event']) {
      if (on.has(name)) map.addLayer(L_[name]); else map.removeLayer(L_[name]);
    }
  }

  function redraw() {
    drawOutages(); drawCells(); drawGrid(); drawDensity(); showContext(); markOff();
    showTotals();
  }

  // ---- loading ------------------------------------------------------------------------

  // Areas and hazard zones at the current zoom bucket; refetched when it changes.
  async function loadOutlines() {
    const z = state.zoom = status.zoom = zoomBucket();
    const [areas, hazard] = await Promise.all([cached('areas'), cached('hazard')]);
    if (z !== state.zoom) return;  // zoomed on meanwhile: a later call draws
    areaShapes = areas;
    draw('areas', areas, {
      style: { color: '#333', weight: 1, fill: false },
      interactive: false,
      onEachFeature: (f, layer) => {
        const name = f.properties.name || f.properties.area_id;
        if (name) layer.bindTooltip(esc(name), { permanent: true, direction: 'center',
          className: 'area-label', interactive: false });
      },
    });
    // Hazard zones by level: the worse the zone, the denser its fill.
    const HAZARD_FILL = { red: 0.22, high: 0.22, orange: 0.1, medium: 0.1, yellow: 0.06,
      green: 0.01, low: 0.01 };
    draw('hazard', hazard, {
      style: (f) => ({ color: C.hazard, weight: 2, dashArray: '8 6', fillColor: C.hazard,
        fillOpacity: HAZARD_FILL[String(f.properties.level).toLowerCase()] || 0.1 }),
      onEachFeature: (f, layer) => f.properties.level != null &&
        layer.bindTooltip(`Hazard zone: ${esc(f.properties.level)}`, { sticky: true }),
    });
  }

  async function loadContext(ev) {
    await loadOutlines();
    const outline = ev.area || ev.geometry;
    $('event-toggle').hidden = !outline;
    draw('event', outline ? [{ type: 'Feature', geometry: outline, properties: {} }] : [], {
      style: { color: '#000', weight: 2, dashArray: '1 5', fill: false }, interactive: false,
    });
    // Show the measurement toggle only for keys that may read measurements.
    state.densityAllowed = await source.measurements();
    $('density-toggle').hidden = !state.densityAllowed;
    // The batch map carries the grid of its opening window only.
    if (DATA && DATA.grid_window) {
      $('grid-note').hidden = false;
      $('grid-note').textContent = `Shown for the window ending ${utc(DATA.grid_window)
      } UTC only, without the hexes where service is up.`;
    }
  }

  // The first view frames everything drawn: areas, event, hazard, outages and cells.
  // An online basemap, when configured, joins once the view is set: no world tiles
  // fetched at zoom 2 only to be thrown away.
  function addBasemap() {
    if (!cfg.basemap_url || state.basemap) return;
    state.basemap = L.tileLayer(cfg.basemap_url, { maxZoom: 18,
      attribution: esc(cfg.basemap_attribution || 'Basemap: configured tile server') }).addTo(map);
  }

  // Outlines are asked for at the zoom they are drawn at, so frame the event first: by
  // its area, else by the extent of its areas layer (one small request, not a whole
  // set of outlines at world zoom thrown away once the view is set).
  async function preframe(ev) {
    let bounds = ev.area && L.geoJSON(ev.area).getBounds();
    if (!bounds || !bounds.isValid()) {
      const box = await source.extent('areas');
      if (box) bounds = L.latLngBounds([box[1], box[0]], [box[3], box[2]]);
    }
    if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [12, 12], animate: false });
  }

  function fitOnce() {
    if (state.fitted) return;
    const bounds = L.latLngBounds([]);
    for (const name of ['areas', 'event', 'hazard', 'outages', 'cells']) {
      L_[name].getLayers().forEach((layer) => bounds.extend(layer.getBounds()));
    }
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [12, 12] });
      state.fitted = true;
      state.bounds = bounds;
      addBasemap();
    }
  }

  // Only the layers someone looks at are fetched: each costs bytes on a poor link.
  function wanted() {
    return { cells: checked('cells').size > 0, grid: checked('grid').size > 0,
      density: state.densityAllowed && checked('layer').has('density') };
  }

  // Layer data per window and zoom bucket, kept until the next refresh: stepping back and
  // forth, zooming back or ticking a box again costs no bytes. Promises, so concurrent
  // asks share one request.
  const cache = new Map();
  function cached(kind, w) {
    const z = zoomed(kind).zoom;
    const key = `${kind}@${w ? w.start : ''}${z == null ? '' : '@z' + z}`;
    if (!cache.has(key)) {
      if (cache.size > 400) cache.clear();
      cache.set(key, items(kind, w ? windowParam(w) : {}).catch((e) => {
        cache.delete(key);
        if (kind === 'outages') throw e;
        return [];  // an optional layer the caller may not read stays empty
      }));
    }
    return cache.get(key);
  }
  const windowLayer = (kind, w, want) => want === false ? Promise.resolve([]) : cached(kind, w);

  async function show(index) {
    if (!state.windows.length) return;
    index = Math.max(0, Math.min(state.windows.length - 1, index));
    const token = ++state.token;
    const w = state.windows[index];
    state.index = index;
    state.follow = index === state.windows.length - 1;
    updateTimeControls();
    const want = wanted();
    const before = index > 0 && checked('severity').has('restored') ? state.windows[index - 1]
      : null;
    const [outages, cells, grid, density, earlier] = await Promise.all([
      windowLayer('outages', w), windowLayer('cells', w, want.cells),
      windowLayer('grid', w, want.grid), windowLayer('measurements', w, want.density),
      before ? windowLayer('outages', before) : Promise.resolve([])]);
    if (token !== state.token) return;   // a later step has started meanwhile
    const within = (v) => (f) => !f.properties.window_start ||
      (Date.parse(f.properties.window_start) < Date.parse(v.end) &&
       Date.parse(f.properties.window_end || v.end) > Date.parse(v.start));
    const inside = within(w);
    current = { outages: outages.filter(inside), cells, grid: grid.filter(inside), density };
    // Service back: outages of the window before whose id is gone in this one.
    const now = new Set(current.outages.map((f) => f.properties.outage_id));
    current.restored = before ? earlier.filter(within(before)).filter((f) =>
      f.properties.outage_id != null && !now.has(f.properties.outage_id)) : [];
    syncNetworks([...current.outages, ...current.cells, ...current.grid]);
    redraw();
    fitOnce();
    status.index = index;
    status.window = w;
    downloads(w);
    writeLink();
  }

  // Download links for the selected window (the CSV of the list is made in listOutages).
  function downloads(w) {
    if (!source.live) return;  // the batch map links the files written beside it
    const q = new URLSearchParams(Object.assign({ f: 'geojson', limit: 10000 }, windowParam(w)));
    $('dl-outages').href = `${API}/collections/${EV}-outages/items?${q}`;
    $('dl-cells').href = `${API}/collections/${EV}-cells/items?${q}`;
    $('dl-gaps').href = `${API}/events/${EV}/gaps?at=${encodeURIComponent(w.start)}`;
    $('dl-gaps-csv').href = `${API}/events/${EV}/gaps?f=csv&at=${encodeURIComponent(w.start)}`;
  }

  // The view in the fragment, so a copied address opens the same window, boxes and view.
  function writeLink() {
    if (!status.ready) return;
    const h = new URLSearchParams();
    const w = state.windows[state.index];
    if (w && !state.follow) h.set('w', w.start);
    const c = map.getCenter();
    h.set('m', `${map.getZoom()}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}`);
    const off = [], on = [];
    document.querySelectorAll('#panel input[type=checkbox]').forEach((i) => {
      if (i.checked !== i.defaultChecked) (i.checked ? on : off).push(`${i.name}:${i.value}`);
    });
    if (off.length) h.set('off', off.join(','));
    if (on.length) h.set('on', on.join(','));
    const text = '#' + h.toString().replace(/%2C/g, ',').replace(/%2F/g, '/').replace(/%3A/g, ':');
    if (text !== location.hash) history.replaceState(null, '', text);
    status.link = location.href;
  }

  // A toggle may need a layer not fetched yet; show() fetches only what is missing.
  const toggled = () => { (state.windows.length ? show(state.index) : redraw()); writeLink(); };
  map.on('moveend', () => writeLink());

  // Outlines follow the zoom bucket: fetched again (or taken from the cache) only when
  // zooming crosses a whole level, never for panning.
  map.on('zoomend', () => {
    if (state.zoom === null || zoomBucket() === state.zoom) return;
    Promise.all([loadOutlines(), state.index >= 0 && show(state.index)])
      .catch((e) => status.errors.push(String(e)));
  });

  async function loadEvent() {
    const ev = await source.event();
    let windows = parseWindows(ev);
    if (!windows.length) windows = await windowsFromOutages();
    state.asOf = ev.high_water || ev.updated || (windows.length ? windows[windows.length - 1].end : null);
    // Windows after the latest data hold nothing yet: the time control stops at the data.
    const upTo = Date.parse(state.asOf);
    if (!isNaN(upTo)) {
      const known = windows.filter((w) => Date.parse(w.start) <= upTo);
      if (known.length) windows = known;
    }
    state.windows = windows;
    // What the server computed: when this is unchanged, a refresh fetches no layer.
    state.version = [ev.updated, ev.high_water, windows.length].join('|');
    status.windows = windows.length;
    status.windowStarts = windows.map((w) => w.start);
    return ev;
  }

  function banner(ok) {
    const el = $('updated');
    const checkedAt = hm(new Date()) + ' UTC';
    el.classList.toggle('stale', !ok || !!state.offline);
    el.classList.toggle('offline', !!state.offline);
    if (state.offline) {
      const saved = Date.parse(state.offline);
      el.textContent = `Offline — data as of ${utc(state.asOf)} UTC${isNaN(saved) ? ''
        : ` (saved ${utc(saved)} UTC)`}`;
    } else if (!source.live) {
      el.textContent = (state.asOf ? `Data to ${utc(state.asOf)} UTC`
        : 'No outage windows in these data') + (DATA.event.made
        ? ` · map made ${utc(DATA.event.made)} UTC` : '');
    } else {
      el.textContent = ok
        ? `Data to ${utc(state.asOf)} UTC · last updated ${utc(new Date())} UTC`
        : `Server unreachable at ${checkedAt} — showing data to ${utc(state.asOf)} UTC`;
    }
    status.updated = el.textContent;
    status.offline = !!state.offline;
  }

  async function refresh() {
    try {
      const before = state.version;
      await loadEvent();
      if (state.version !== before) {
        cache.clear();  // recomputed windows may have changed
        state.timeline = null;
        loadTimeline().catch((e) => status.errors.push(String(e)));
        const target = state.follow || state.index < 0 ? state.windows.length - 1 : state.index;
        if (!state.playing) await show(target);
      }
      banner(true);
    } catch (e) {
      status.errors.push(String(e));
      banner(false);
    }
  }

  // ---- time control -------------------------------------------------------------------

  function updateTimeControls() {
    const n = state.windows.length, i = state.index, slider = $('slider');
    slider.max = Math.max(0, n - 1);
    slider.value = Math.max(0, i);
    slider.disabled = n < 2;
    const text = windowText(state.windows[i]);
    slider.setAttribute('aria-valuetext', text);
    const peak = i >= 0 && i === state.peak ? ' (peak)' : '';
    $('window-label').textContent = n ? `${text} (${i + 1} of ${n})${peak}` : text;
    const w = state.windows[i];
    $('window-local').textContent = w ? `${local(w.start)} – ${local(w.end)} local time (${
      zoneName()})` : '';
    $('prev').disabled = i <= 0;
    $('next').disabled = i >= n - 1;
    $('latest').disabled = i >= n - 1;
    $('peak').disabled = state.peak == null || i === state.peak;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function play() {
    state.playing = !state.playing;
    const btn = $('play');
    btn.setAttribute('aria-pressed', String(state.playing));
    btn.innerHTML = state.playing ? '&#10074;&#10074; Pause' : '&#9654; Play';
    btn.setAttribute('aria-label', state.playing ? 'Pause' : 'Play through windows');
    try {
      if (state.playing && state.index >= state.windows.length - 1) await show(0);
      while (state.playing && state.index < state.windows.length - 1) {
        await sleep(PLAY_STEP_MS);
        if (state.playing) await show(state.index + 1);
      }
    } catch (e) {
      status.errors.push(String(e));  // the server went away: stop where we are
    }
    if (state.playing) play();
  }

  $('prev').addEventListener('click', () => show(state.index - 1));
  $('next').addEventListener('click', () => show(state.index + 1));
  $('latest').addEventListener('click', () => show(state.windows.length - 1));
  $('peak').addEventListener('click', () => state.peak != null && show(state.peak));
  $('play').addEventListener('click', play);
  $('slider').addEventListener('input', (e) => show(+e.target.value));
  document.querySelectorAll('#panel input[type=checkbox]')
    .forEach((i) => i.addEventListener('change', toggled));
  // Printing: give the map its page size before layout so Leaflet can measure it, and
  // keep everything in view if the screen showed everything; restore afterwards.
  let screenView = null;
  window.addEventListener('beforeprint', () => {
    const whole = state.bounds && map.getBounds().contains(state.bounds);
    screenView = [map.getCenter(), map.getZoom()];
    document.body.classList.add('printing');
    map.invalidateSize({ animate: false });
    if (whole) map.fitBounds(state.bounds, { animate: false, padding: [6, 6] });
  });
  window.addEventListener('afterprint', () => {
    document.body.classList.remove('printing');
    map.invalidateSize({ animate: false });
    if (screenView) map.setView(screenView[0], screenView[1], { animate: false });
  });

  // ---- start --------------------------------------------------------------------------

  // ---- overlays from other scripts ------------------------------------------------------

  /* dcm.addOverlay(name, layer, {label, zIndex, checked}): draws a Leaflet layer in a pane
     of its own (zIndex below the outages' 400 keeps it under them) and, with a label, adds
     a box to the Context legend that shows or hides it (kept in the shared link). */
  status.addOverlay = function addOverlay(name, layer, options) {
    const o = Object.assign({ zIndex: 340, checked: true }, options || {});
    if (!map.getPane(name)) map.createPane(name).style.zIndex = o.zIndex;
    if (layer.options) layer.options.pane = name;
    if (!o.label) { map.addLayer(layer); return layer; }
    const label = document.createElement('label');
    const input = Object.assign(document.createElement('input'),
      { type: 'checkbox', name: 'layer', value: name, defaultChecked: o.checked });
    input.checked = o.checked;
    fromLink(input);
    const sync = () => { if (input.checked) map.addLayer(layer); else map.removeLayer(layer); };
    input.addEventListener('change', () => { sync(); markOff(); writeLink(); });
    label.append(input, o.swatch || '', o.label);
    document.querySelector('fieldset[data-layer=context]').append(label);
    sync();
    return layer;
  };

  // ---- offline --------------------------------------------------------------------------

  // The page and its scripts join the answers getJSON keeps; sw.js serves them when the
  // server cannot be reached.
  function saveForOffline() {
    if (!('serviceWorker' in navigator) || !window.caches || !cfg.service_worker) return;
    navigator.serviceWorker.register(cfg.service_worker, { scope: `${API}/` })
      .catch((e) => status.errors.push('service worker: ' + e));
    if (state.offline) return;
    const page = location.href.split('#')[0];
    const files = [...document.querySelectorAll('script[src], link[rel=stylesheet]')]
      .map((e) => new URL(e.src || e.href, location.href)).filter((u) => u.origin === location.origin)
      .map((u) => u.href);
    // The page once, on the first visit; sw.js keeps it fresh on later ones.
    caches.open(OFFLINE_CACHE).then((c) => Promise.all([
      c.match(page).then((hit) => hit || fetch(page, { cache: 'no-cache' })
        .then((r) => r.ok && r.text()).then((t) => t && c.put(page, new Response(t, { headers: {
          'Content-Type': 'text/html; charset=utf-8', 'X-DCM-Saved': new Date().toISOString() } })))),
      ...files.map((f) => c.match(f).then((hit) => hit || c.add(f))),
    ])).then(() => { status.saved = true; }).catch((e) => status.errors.push('offline copy: ' + e));
  }

  // ---- start --------------------------------------------------------------------------

  (async function start() {
    document.querySelectorAll('#panel input[type=checkbox]').forEach(fromLink);
    try {
      const ev = await loadEvent();
      const title = ev.description || ev.title || ev.name || cfg.event;
      document.title = `${title} — connectivity map (dcm)`;
      $('title').textContent = title;
      if (ev.timezone) {
        const fmt = localFormat(ev.timezone);
        if (fmt) { localFmt = fmt; state.tz = ev.timezone; }
      }
      const [z, lat, lon] = shared.m;
      if (shared.m.length === 3 && [z, lat, lon].every(isFinite)) {
        map.setView([lat, lon], z, { animate: false });
        state.fitted = true;
      } else {
        await preframe(ev);
      }
      await loadContext(ev);
      fitOnce();
      const linked = shared.w ? state.windows.findIndex((w) => w.start === shared.w) : -1;
      const opening = DATA && DATA.selected != null ? DATA.selected : state.windows.length - 1;
      await show(linked >= 0 ? linked : opening);
      if (!state.fitted && !source.live) {
        const box = await source.extent();
        if (box) {
          state.bounds = L.latLngBounds([box[1], box[0]], [box[3], box[2]]);
          map.fitBounds(state.bounds, { padding: [12, 12], animate: false });
          state.fitted = true;
        }
      }
      if (!state.windows.length) updateTimeControls();
      addBasemap();
      banner(true);
      loadTimeline().catch((e) => status.errors.push(String(e)));
    } catch (e) {
      status.errors.push(String(e));
      $('updated').textContent = `Could not load the event: ${e.message}`;
      $('updated').classList.add('stale');
    }
    status.ready = true;
    writeLink();
    if (!source.live) return;  // the batch map is a file: nothing to refresh or keep
    saveForOffline();
    setInterval(refresh, cfg.refresh_s * 1000);
  }());
}());
