// The app shell: the files the service worker keeps so that the app opens
// in a dead zone. Only these, and only under the worker's scope: never the
// API (/api: a state answer is for now, and carries a driver's data) nor
// /mqtt. Paths are relative to the scope (/driver/); '' is the page itself.
export const SHELL = ['', 'index.html', 'driver.js', 'driver.css', 'icon.svg', 'manifest.webmanifest'];

// isShell says whether a request for url (a string) is for the shell of
// the app at scope (the worker's scope URL).
export function isShell(url, scope) {
  let u; let s;
  try { u = new URL(url); s = new URL(scope); } catch { return false; }
  if (u.origin !== s.origin || u.search || !u.pathname.startsWith(s.pathname)) return false;
  return SHELL.includes(u.pathname.slice(s.pathname.length));
}
