/* dcm offline vector basemap: Mapbox Vector Tiles (MVT 2.1, protobuf) from this server's
   /basemap/ decoded here and drawn on canvas by a Leaflet GridLayer, in a plain style that
   leaves the outage colours readable: land, water, waterways, roads and rail, boundaries,
   place names. Layers of the OpenMapTiles, Shortbread and Protomaps schemas are known by
   name; any other layer is ignored. Loaded by orientation.js only when the installation's
   basemap holds vector tiles, so the map's first load does not carry it. */
(function () {
  'use strict';

  const dcm = window.dcm = window.dcm || {};

  // -- protobuf and MVT -----------------------------------------------------------------
  const utf8 = new TextDecoder('utf-8');

  function Pbf(bytes, start, end) {
    this.b = bytes; this.p = start || 0; this.end = end === undefined ? bytes.length : end;
  }
  Pbf.prototype.varint = function () {
    // Up to 10 bytes, 7 bits each; arithmetic, not bit operations, past 32 bits.
    let value = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.p >= this.end) throw new Error('truncated varint');
      const byte = this.b[this.p++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  };
  Pbf.prototype.int64 = function () {
    // Two's complement over 64 bits: negative values take all 10 bytes.
    let lo = 0, hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.p >= this.end) throw new Error('truncated varint');
      const byte = this.b[this.p++] & 0xff, bits = byte & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) { lo |= bits << 28; hi |= bits >> 4; } else hi |= bits << (7 * i - 32);
      if (byte < 0x80) return hi * 4294967296 + (lo >>> 0);
    }
    throw new Error('varint longer than 10 bytes');
  };
  Pbf.prototype.sub = function () {     // a length-delimited field's range
    const len = this.varint(), start = this.p;
    if (start + len > this.end) throw new Error('field runs past its message');
    this.p += len;
    return [start, start + len];
  };
  Pbf.prototype.skip = function (wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.p += 8;
    else if (wire === 2) this.sub();
    else if (wire === 5) this.p += 4;
    else throw new Error(`unsupported wire type ${wire}`);
    if (this.p > this.end) throw new Error('field runs past its message');
  };
  // Calls fn(field, wire, pbf) for each field of the message in [start, end).
  function fields(bytes, start, end, fn) {
    const pbf = new Pbf(bytes, start, end);
    while (pbf.p < pbf.end) {
      const key = pbf.varint(), field = Math.floor(key / 8), wire = key & 7;
      if (fn(field, wire, pbf) === false) pbf.skip(wire);
    }
  }
  const zigzag = (n) => (n % 2 ? -(n + 1) / 2 : n / 2);
  const text = (bytes, [s, e]) => utf8.decode(bytes.subarray(s, e));

  function packed(bytes, wire, pbf) {
    if (wire !== 2) return [pbf.varint()];
    const [s, e] = pbf.sub(), inner = new Pbf(bytes, s, e), out = [];
    while (inner.p < e) out.push(inner.varint());
    return out;
  }

  function value(bytes, [s, e]) {
    let v = null;
    fields(bytes, s, e, (field, wire, pbf) => {
      const size = wire === 5 ? 4 : wire === 1 ? 8 : 0;
      if (pbf.p + size > pbf.end) throw new Error('value runs past its message');
      const view = new DataView(bytes.buffer, bytes.byteOffset + pbf.p, size);
      if (field === 1 && wire === 2) v = text(bytes, pbf.sub());
      else if (field === 2 && wire === 5) { v = view.getFloat32(0, true); pbf.p += 4; }
      else if (field === 3 && wire === 1) { v = view.getFloat64(0, true); pbf.p += 8; }
      else if (field === 4 && wire === 0) v = pbf.int64();
      else if (field === 5 && wire === 0) v = pbf.varint();
      else if (field === 6 && wire === 0) v = zigzag(pbf.varint());
      else if (field === 7 && wire === 0) v = pbf.varint() !== 0;
      else return false;
      return true;
    });
    return v;
  }

  /* Geometry commands: MoveTo (1) and LineTo (2) with zigzag-encoded deltas from the
     cursor, ClosePath (7). Returns the parts (rings or lines) as flat [x0, y0, x1, y1, …]
     arrays in tile units (0…extent). */
  function geometry(cmds) {
    const parts = [];
    let x = 0, y = 0, part = null, i = 0;
    while (i < cmds.length) {
      const cmd = cmds[i] & 7, count = Math.floor(cmds[i] / 8);
      i++;
      if (cmd === 7) {
        if (part && part.length >= 2) part.push(part[0], part[1]);
        continue;
      }
      if (cmd !== 1 && cmd !== 2) throw new Error(`unknown geometry command ${cmd}`);
      if (i + 2 * count > cmds.length) throw new Error('geometry ends inside a command');
      for (let k = 0; k < count; k++) {
        x += zigzag(cmds[i++]); y += zigzag(cmds[i++]);
        if (cmd === 1) { part = [x, y]; parts.push(part); } else if (part) part.push(x, y);
        else throw new Error('LineTo before MoveTo');
      }
    }
    return parts;
  }

  /* A decoded tile: { layerName: { extent, features: [{ type, properties, parts }] } },
     for the layers ``wanted(name)`` accepts; the others are skipped undecoded. */
  function decode(bytes, wanted) {
    const layers = {};
    fields(bytes, 0, bytes.length, (field, wire, pbf) => {
      if (field !== 3 || wire !== 2) return false;
      const [s, e] = pbf.sub();
      let name = '', extent = 4096;
      const feats = [], keys = [], vals = [];
      fields(bytes, s, e, (f, w, p) => {
        if (w !== 2 && f !== 5 && f !== 15) return false;
        if (f === 1) name = text(bytes, p.sub());
        else if (f === 2) feats.push(p.sub());
        else if (f === 3) keys.push(text(bytes, p.sub()));
        else if (f === 4) vals.push(p.sub());
        else if (f === 5 && w === 0) extent = p.varint() || 4096;
        else return false;
        return true;
      });
      if (wanted && !wanted(name)) return true;
      const values = vals.map((r) => value(bytes, r));
      const features = feats.map(([fs, fe]) => {
        let type = 0, tags = [], cmds = [];
        fields(bytes, fs, fe, (f, w, p) => {
          if (f === 2) tags = packed(bytes, w, p);
          else if (f === 3 && w === 0) type = p.varint();
          else if (f === 4) cmds = packed(bytes, w, p);
          else return false;
          return true;
        });
        const properties = {};
        for (let t = 0; t + 1 < tags.length; t += 2) {
          if (tags[t] < keys.length && tags[t + 1] < values.length) {
            properties[keys[tags[t]]] = values[tags[t + 1]];
          }
        }
        return { type, properties, extent, parts: geometry(cmds) };
      });
      layers[name] = { extent, features };
      return true;
    });
    return layers;
  }

  // Gzip-compressed tiles are normally sent with Content-Encoding (the browser inflates
  // them); one stored compressed but sent as is is inflated here.
  async function inflate(buffer) {
    const bytes = new Uint8Array(buffer);
    if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // -- style ------------------------------------------------------------------------------
  // Muted colours: the outage reds/oranges, the network outlines and the cell dots stay
  // the strongest things on the map.
  const STYLE = {
    land: '#f4f1ea', water: '#c9dbe5', waterline: '#9fbccc', casing: '#cbc3b5',
    road: '#ffffff', rail: '#8f8f8f', boundary: '#8c7fa0', label: '#3b3b3b', halo: '#ffffff',
  };
  // Layer name -> what it holds, for the OpenMapTiles, Shortbread and Protomaps schemas.
  const ROLES = {
    earth: 'land', water: 'water', ocean: 'water', water_polygons: 'water',
    waterway: 'waterline', water_lines: 'waterline',
    transportation: 'road', roads: 'road', streets: 'road',
    boundary: 'boundary', boundaries: 'boundary',
    place: 'place', places: 'place', place_labels: 'place',
  };
  const RAIL = new Set(['rail', 'railway', 'light_rail', 'narrow_gauge', 'tram', 'subway',
    'transit']);
  const MAJOR = new Set(['motorway', 'trunk', 'highway', 'primary', 'major_road']);
  const MINOR = new Set(['secondary', 'tertiary', 'medium_road']);
  const kindOf = (p) => String(p.kind || p.class || p.railway || p.highway || '');
  const nameOf = (p) => p['name:en'] || p.name_en || p.name || p['name:latin'] || '';

  function roadWidth(p, z) {
    const kind = kindOf(p);
    const base = MAJOR.has(kind) ? 2.6 : MINOR.has(kind) ? 1.8 : 1.1;
    return base * Math.max(0.6, Math.min(2.2, (z - 8) / 4));
  }

  // Adds a feature's parts to the path; ``at`` = { scale, ox, oy } places the tile.
  function trace(ctx, f, at, close) {
    const k = (256 * at.scale) / f.extent;
    for (const part of f.parts) {
      ctx.moveTo(part[0] * k - at.ox, part[1] * k - at.oy);
      for (let i = 2; i < part.length; i += 2) ctx.lineTo(part[i] * k - at.ox, part[i + 1] * k - at.oy);
      if (close) ctx.closePath();
    }
  }

  function fillPolygons(ctx, feats, colour, at) {
    ctx.beginPath();
    for (const f of feats) if (f.type === 3) trace(ctx, f, at, true);
    ctx.fillStyle = colour;
    ctx.fill('evenodd');
  }

  function strokeLines(ctx, feats, colour, width, at, dash) {
    ctx.beginPath();
    for (const f of feats) if (f.type === 2) trace(ctx, f, at, false);
    ctx.setLineDash(dash || []);
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.stroke();
    ctx.setLineDash([]);
  }

  function placeSize(p) {
    const kind = kindOf(p);
    if (kind === 'city' || kind === 'capital' || p.capital) return 13;
    if (kind === 'town') return 12;
    return 11;
  }

  /* Draws one decoded tile onto a 256-px canvas context; ``scale`` and (ox, oy) place a
     parent tile's area when the map zooms past the archive's deepest level. Returns what
     was drawn ({ roles: [...], labels: [...] }). */
  function draw(ctx, layers, z, scale, ox, oy) {
    const drawn = new Set(), labels = [];
    const by = { land: [], water: [], waterline: [], road: [], boundary: [], place: [] };
    for (const [name, layer] of Object.entries(layers)) {
      const role = ROLES[name];
      if (role) by[role].push(...layer.features);
    }
    const at = { scale, ox, oy };
    const feats = (role) => by[role];
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    if (by.land.length) {
      // Protomaps draws the earth on the sea: the tile starts as water.
      ctx.fillStyle = STYLE.water;
      ctx.fillRect(0, 0, 256, 256);
      fillPolygons(ctx, feats('land'), STYLE.land, at);
      drawn.add('land');
    } else if (by.water.length || by.road.length || by.place.length) {
      ctx.fillStyle = STYLE.land;
      ctx.fillRect(0, 0, 256, 256);
    }
    if (by.water.length) {
      fillPolygons(ctx, feats('water'), STYLE.water, at);
      strokeLines(ctx, feats('water'), STYLE.waterline, 1, at);
      drawn.add('water');
    }
    if (by.waterline.length) {
      strokeLines(ctx, feats('waterline'), STYLE.waterline, 1, at);
      drawn.add('waterline');
    }
    const roads = feats('road').filter((f) => f.type === 2);
    const rail = roads.filter((f) => RAIL.has(kindOf(f.properties)));
    const street = roads.filter((f) => !RAIL.has(kindOf(f.properties)));
    const widths = [...new Set(street.map((f) => roadWidth(f.properties, z)))].sort();
    for (const casing of [true, false]) {
      for (const w of widths) {
        const group = street.filter((f) => roadWidth(f.properties, z) === w);
        strokeLines(ctx, group, casing ? STYLE.casing : STYLE.road, casing ? w + 1.6 : w, at);
      }
    }
    if (street.length) drawn.add('road');
    if (rail.length) {
      strokeLines(ctx, rail, STYLE.rail, 1.2, at, [5, 3]);
      drawn.add('rail');
    }
    const borders = feats('boundary').filter((f) => {
      const level = Number(f.properties.admin_level ?? f.properties.kind_detail ?? 2);
      return !(level > 6) && !f.properties.maritime;
    });
    if (borders.length) {
      strokeLines(ctx, borders, STYLE.boundary, 1.2, at, [6, 3, 2, 3]);
      drawn.add('boundary');
    }
    // Place names: each drawn by the tile holding its point, larger places first, none
    // over another.
    const places = feats('place').filter((f) => f.type === 1 && nameOf(f.properties))
      .sort((a, b) => placeSize(b.properties) - placeSize(a.properties)
        || (b.properties.population || 0) - (a.properties.population || 0));
    const taken = [];
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    for (const f of places) {
      for (const pt of f.parts) {
        const k = (256 * scale) / f.extent, x = pt[0] * k - ox, y = pt[1] * k - oy;
        if (x < 0 || x >= 256 || y < 0 || y >= 256) continue;
        const name = String(nameOf(f.properties)), size = placeSize(f.properties);
        ctx.font = `${size >= 13 ? 'bold ' : ''}${size}px sans-serif`;
        const w = ctx.measureText(name).width / 2 + 2, h = size / 2 + 2;
        if (taken.some((t) => Math.abs(t.x - x) < t.w + w && Math.abs(t.y - y) < t.h + h)) continue;
        taken.push({ x, y, w, h });
        ctx.lineWidth = 3;
        ctx.strokeStyle = STYLE.halo;
        ctx.strokeText(name, x, y);
        ctx.fillStyle = STYLE.label;
        ctx.fillText(name, x, y);
        labels.push(name);
      }
    }
    if (labels.length) drawn.add('place');
    return { roles: [...drawn], labels };
  }

  // -- the Leaflet layer -----------------------------------------------------------------
  const CACHE_TILES = 48;

  /* VectorBasemap(url, { archiveMinZoom, archiveMaxZoom, bounds, attribution }): draws
     the tiles of ``url`` ({z}/{x}/{y}); past archiveMaxZoom it draws the parent tile's
     part, sharp (not an enlarged picture), and below archiveMinZoom nothing. ``stats`` counts tiles drawn, empty (none in
     the archive) and failed (unreadable), and what was drawn. */
  const VectorBasemap = L.GridLayer.extend({
    initialize(url, options) {
      L.GridLayer.prototype.initialize.call(this, options);
      this._url = url;
      this._decoded = new Map();
      this.stats = { drawn: 0, empty: 0, failed: 0, roles: [], labels: [], errors: [] };
    },

    _load(z, x, y) {
      const key = `${z}/${x}/${y}`;
      let pending = this._decoded.get(key);
      if (!pending) {
        const url = L.Util.template(this._url, { z, x, y });
        pending = fetch(url).then(async (r) => {
          if (r.status === 404) return null;
          if (!r.ok) throw new Error(`${r.status} ${url}`);
          return decode(await inflate(await r.arrayBuffer()), (name) => name in ROLES);
        });
        this._decoded.set(key, pending);
        if (this._decoded.size > CACHE_TILES) {
          this._decoded.delete(this._decoded.keys().next().value);
        }
      }
      return pending;
    },

    createTile(coords, done) {
      const tile = document.createElement('canvas');
      const ratio = window.devicePixelRatio || 1;
      tile.width = tile.height = 256 * ratio;
      tile.dataset.z = coords.z;
      tile.dataset.tile = `${coords.z}/${coords.x}/${coords.y}`;
      const o = this.options, stats = this.stats;
      if (coords.z < o.archiveMinZoom) { setTimeout(() => done(null, tile)); return tile; }
      const dz = Math.max(0, coords.z - o.archiveMaxZoom), scale = 2 ** dz;
      const px = Math.floor(coords.x / scale), py = Math.floor(coords.y / scale);
      this._load(coords.z - dz, px, py).then((layers) => {
        if (!layers) { stats.empty++; return; }
        const ctx = tile.getContext('2d');
        ctx.scale(ratio, ratio);
        const got = draw(ctx, layers, coords.z, scale,
          (coords.x - px * scale) * 256, (coords.y - py * scale) * 256);
        stats.drawn++;
        stats.roles = [...new Set([...stats.roles, ...got.roles])];
        stats.labels.push(...got.labels);
      }).catch((err) => {
        // A tile that cannot be read stays blank; the rest of the map goes on.
        stats.failed++;
        if (stats.errors.length < 20) stats.errors.push(String(err));
      }).then(() => done(null, tile));
      return tile;
    },
  });

  dcm.vectorTiles = { decode, inflate, draw, VectorBasemap, STYLE, ROLES };
})();
