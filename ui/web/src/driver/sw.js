// The driver app's service worker: it keeps the app shell (shell.js) so
// that the app opens where the phone has no signal; it never touches the
// API or /mqtt, which go to the network as if it were not there.
//
// One build, one cache: __SHELL_VERSION__ is a hash of the build's shell
// files (build.mjs), so a depot serving a new build serves a new sw.js,
// whose install fetches every shell file afresh and keeps them only if all
// came and are what they should be (a captive portal's page is not
// driver.js); its activation then deletes the older builds' caches. A
// phone never mixes the files of two builds from its cache.
//
// Network first: a depot that was updated serves its new app at once;
// the cache answers only when the network does not within a few seconds,
// or answers with something the shell file is not. Only the install
// writes to the cache.
//
// Web Push (push.js): a push shows a notification, a click on it opens
// the app (or brings the open one forward) at the message, or with the
// answer of the button the driver pressed, which the app then sends.
import { SHELL, shellPath, fits, cacheName, stale } from './shell.js';
import { notification, clickUrl, parseFragment, ANSWER_CACHE, answerKey } from './push.js';

/* global __SHELL_VERSION__ */
const CACHE = cacheName(typeof __SHELL_VERSION__ === 'string' ? __SHELL_VERSION__ : 'dev');
const WAIT = 4000;

self.addEventListener('install', (e) => {
  e.waitUntil(install().then(() => self.skipWaiting()));
});

async function install() {
  const scope = self.registration.scope;
  const got = await Promise.all(SHELL.map(async (p) => {
    const url = new URL(p, scope).href;
    // cache: 'reload': past the browser's HTTP cache, which may hold the
    // files of the build before.
    const res = await fetch(url, { credentials: 'omit', cache: 'reload' });
    if (!(await fits(p, res))) throw new Error(`driver app shell: ${p || 'the page'} came as ${res.status} ${res.headers.get('content-type')}`);
    return [url, res];
  }));
  const cache = await caches.open(CACHE);
  try {
    await Promise.all(got.map(([url, res]) => cache.put(url, res)));
  } catch (err) {
    await caches.delete(CACHE); // half a shell is none
    throw err;
  }
}

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(stale(keys, CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  const path = req.method === 'GET' ? shellPath(req.url, self.registration.scope) : null;
  if (path === null) return; // the network's, untouched
  e.respondWith(shell(req, path));
});

async function shell(req, path) {
  // The browser's credentials are not the app's business (a navigation's
  // request cannot be remade, and is sent as it is).
  const net = fetch(req.mode === 'navigate' ? req : new Request(req, { credentials: 'omit' }));
  net.catch(() => {}); // when the cache answered, a failure later is no one's
  let res = null;
  try {
    res = await Promise.race([net, new Promise((r) => { setTimeout(r, WAIT, null); })]);
  } catch { /* no network: the cache */ }
  if (res && await fits(path, res)) return res;
  const kept = await (await caches.open(CACHE)).match(new URL(path, self.registration.scope).href);
  return kept || res || net; // nothing kept: what the network says, when it says it
}

self.addEventListener('push', (e) => {
  let p = null;
  try { p = e.data ? e.data.json() : null; } catch { /* not JSON: dropped */ }
  const max = self.Notification && Number.isFinite(self.Notification.maxActions) ? self.Notification.maxActions : 0;
  const n = notification(p, Date.now(), max);
  if (n) e.waitUntil(self.registration.showNotification(n.title, n.options));
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  e.waitUntil(openApp(clickUrl(e.action, e.notification.data), e.notification.data));
});

// openApp brings an open tab of the app forward and tells it what was
// clicked (it is not loaded again: what it shows and sends stays), or
// opens the app at the fragment.
async function openApp(frag, data) {
  const scope = self.registration.scope;
  const all = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const c = all.find((w) => w.url.startsWith(scope));
  if (!c) {
    const f = parseFragment(frag);
    if (f && f.answer) {
      await (await caches.open(ANSWER_CACHE)).put(answerKey(scope, f.answer.action, f.answer.ref), new Response(String(Date.now())));
    }
    return self.clients.openWindow(scope + frag);
  }
  if (frag) c.postMessage({ type: 'depot:push', url: frag, driverId: data && data.driverId });
  return c.focus();
}
