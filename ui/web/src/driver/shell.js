// The app shell: the files the service worker keeps so that the app opens
// in a dead zone. Only these, and only under the worker's scope: never the
// API (/api: a state answer is for now, and carries a driver's data) nor
// /mqtt. Paths are relative to the scope (/driver/); '' is the page itself.
// No DOM here: node --test runs it (gps.test.js), and build.mjs reads
// SHELL to name the build.
export const SHELL = ['', 'index.html', 'driver.js', 'driver.css', 'icon.svg', 'manifest.webmanifest'];

// What each file must be sent as to be kept (ui/embed.go serves them so).
const TYPES = {
  '': ['text/html'],
  'index.html': ['text/html'],
  'driver.js': ['text/javascript', 'application/javascript'],
  'driver.css': ['text/css'],
  'icon.svg': ['image/svg+xml'],
  'manifest.webmanifest': ['application/manifest+json', 'application/json'],
};

// HTML_MARK is in the app's page (index.html) and in no other: a captive
// portal's or a proxy's HTML is text/html too.
export const HTML_MARK = '<meta name="application-name" content="Depot driver">';

// shellPath is the path (relative to scope, the worker's scope URL) of
// the shell file url (a string) asks for, or null for anything else.
export function shellPath(url, scope) {
  let u; let s;
  try { u = new URL(url); s = new URL(scope); } catch { return null; }
  if (u.origin !== s.origin || u.search || !u.pathname.startsWith(s.pathname)) return null;
  const p = u.pathname.slice(s.pathname.length);
  return SHELL.includes(p) ? p : null;
}

// isShell says whether a request for url is for the shell of the app at scope.
export function isShell(url, scope) { return shellPath(url, scope) !== null; }

// mediaType is a Content-Type without its parameters, in lower case.
export function mediaType(ct) { return String(ct || '').split(';')[0].trim().toLowerCase(); }

// cacheable says whether res (a Response) may be kept as the shell file
// path, by what its head says: a whole 200 of this origin, not redirected,
// of the file's type. A captive portal's page (200, text/html) is never
// kept as driver.js; a 404, a 500 or a proxy's error page never at all.
export function cacheable(path, res) {
  if (!res || res.status !== 200 || res.redirected) return false;
  if (res.type !== 'basic' && res.type !== 'default') return false; // opaque, or another origin's
  const want = TYPES[path];
  return !!want && want.includes(mediaType(res.headers.get('content-type')));
}

// fits is cacheable, and for the page, its body is the app's page.
export async function fits(path, res) {
  if (!cacheable(path, res)) return false;
  if (mediaType(res.headers.get('content-type')) !== 'text/html') return true;
  try {
    return (await res.clone().text()).includes(HTML_MARK);
  } catch {
    return false;
  }
}

// A build's shell is kept under a name of its own: the cache of one
// build never serves a file of another with the rest of its own.
export const CACHE_PREFIX = 'depot-driver-';
export function cacheName(version) { return `${CACHE_PREFIX}shell-${version}`; }

// stale is the caches (of keys, those of the origin) that an activated
// worker of the cache current deletes: those of the app's older builds.
export function stale(keys, current) { return keys.filter((k) => k.startsWith(CACHE_PREFIX) && k !== current); }
