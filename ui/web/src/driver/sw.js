// The driver app's service worker: it keeps the app shell (shell.js) so
// that the app opens where the phone has no signal; it never touches the
// API or /mqtt, which go to the network as if it were not there.
//
// Network first: a depot that was updated serves its new app at once;
// the cache answers only when the network does not, within a few seconds.
import { SHELL, isShell } from './shell.js';

const CACHE = 'depot-driver-shell-v1';
const WAIT = 4000;

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE)
    .then((c) => c.addAll(SHELL.map((p) => new URL(p, self.registration.scope).href)))
    .then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('depot-driver-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET' || !isShell(req.url, self.registration.scope)) return; // the network's, untouched
  e.respondWith(shell(req));
});

async function shell(req) {
  const key = req.url.split('#')[0];
  const cache = await caches.open(CACHE);
  const net = fetch(req).then(async (res) => {
    if (res.ok && !res.redirected) await cache.put(key, res.clone());
    return res;
  });
  net.catch(() => {}); // when the cache answered, a failure later is no one's
  try {
    const res = await Promise.race([net, new Promise((r) => { setTimeout(r, WAIT, null); })]);
    if (res) return res;
  } catch { /* no network: the cache */ }
  return (await cache.match(key)) || net; // nothing kept: wait for the network after all
}
