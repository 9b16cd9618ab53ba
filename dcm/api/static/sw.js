/* dcm map service worker: when the server cannot be reached, answer the map's own
   requests (page, scripts, event, layers) from the copy the page kept in Cache Storage,
   marked with X-DCM-Offline so the page can say "offline — data as of …". Online, every
   request goes to the network as if this worker were not there. */
'use strict';

const CACHE = 'dcm-map-v1';
// The page, its static files, the event and its collections; nothing else is touched.
const OURS = /\/(events\/[^/]+(\/map)?|collections\/[^/]+(\/items)?|static\/(map|leaflet)\/[^/]+)$/;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !OURS.test(url.pathname)) return;
  event.respondWith(fetch(request).then((response) => {
    // The page itself is kept fresh here; the page keeps its data and files.
    if (request.mode === 'navigate' && response.ok) event.waitUntil(keepPage(request.url, response.clone()));
    return response;
  }, () => fromCache(request)));
});

async function keepPage(url, response) {
  const cache = await caches.open(CACHE);
  await cache.put(url.split('#')[0], new Response(await response.text(), { headers: {
    'Content-Type': 'text/html; charset=utf-8', 'X-DCM-Saved': new Date().toISOString() } }));
}

// The kept answer to this URL; for a layer, the same window at another zoom will do.
async function fromCache(request) {
  const cache = await caches.open(CACHE);
  let hit = await cache.match(request, { ignoreVary: true });
  if (!hit) {
    const want = withoutZoom(request.url);
    for (const key of await cache.keys()) {
      if (withoutZoom(key.url) === want) { hit = await cache.match(key); break; }
    }
  }
  if (!hit) return Response.error();
  const headers = new Headers(hit.headers);
  headers.set('X-DCM-Offline', '1');
  return new Response(await hit.blob(), { status: 200, headers });
}

function withoutZoom(href) {
  const url = new URL(href);
  url.searchParams.delete('zoom');
  url.searchParams.sort();
  return url.href;
}
