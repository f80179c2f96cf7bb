// What the driver app's service worker may keep: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SHELL, shellPath, cacheable, fits, mediaType, cacheName, stale, HTML_MARK } from './shell.js';

const page = readFileSync(new URL('./index.html', import.meta.url), 'utf8');
const answer = (body, status = 200, type = 'text/html; charset=utf-8', extra = {}) => {
  const r = new Response(body, { status, headers: type ? { 'Content-Type': type } : {} });
  return Object.keys(extra).length ? Object.defineProperties(r, Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, { value: v }]))) : r;
};

test('a shell file is one of the shell\'s paths under the scope, nothing else', () => {
  const scope = 'https://depot.example:8080/driver/';
  assert.equal(shellPath(scope, scope), '');
  assert.equal(shellPath(scope + 'driver.js', scope), 'driver.js');
  assert.equal(shellPath(scope + 'driver.js#x', scope), 'driver.js');
  assert.equal(shellPath(scope + 'sw.js', scope), null, 'the worker itself: the browser fetches it past any cache');
  assert.equal(shellPath(scope + 'driver.js?v=2', scope), null);
  assert.equal(shellPath('https://depot.example:8080/api/v1/driver/state', scope), null);
});

test('only a 200 of the file\'s own type is kept: never a captive portal\'s page as driver.js', async () => {
  const portal = '<!doctype html><title>Hotel Wi-Fi</title><form>Log in</form>';
  assert.equal(await fits('driver.js', answer(portal)), false);
  assert.equal(await fits('driver.css', answer(portal)), false);
  assert.equal(await fits('manifest.webmanifest', answer(portal)), false);
  assert.equal(await fits('', answer(portal)), false, 'HTML, but not the app\'s page');
  assert.equal(await fits('index.html', answer(portal)), false);
  assert.equal(await fits('', answer(page)), true);
  assert.equal(await fits('index.html', answer(page, 200, 'text/html')), true);
  assert.ok(page.includes(HTML_MARK), 'index.html carries the mark the worker looks for');
  assert.equal(await fits('driver.js', answer('export{}', 200, 'text/javascript; charset=utf-8')), true);
  assert.equal(await fits('driver.js', answer('export{}', 200, 'application/javascript')), true);
  assert.equal(await fits('driver.css', answer('a{}', 200, 'text/css; charset=utf-8')), true);
  assert.equal(await fits('icon.svg', answer('<svg/>', 200, 'image/svg+xml')), true);
  assert.equal(await fits('manifest.webmanifest', answer('{}', 200, 'application/manifest+json')), true);
  // Not a whole 200: a redirect followed (a portal's login page), a partial
  // answer, an error, an answer without a type, an opaque one.
  assert.equal(cacheable('driver.js', answer('x', 200, 'text/javascript', { redirected: true })), false);
  assert.equal(cacheable('driver.js', answer('x', 206, 'text/javascript')), false);
  assert.equal(cacheable('driver.js', answer('x', 404, 'text/javascript')), false);
  assert.equal(cacheable('driver.js', answer('x', 503, 'text/javascript')), false);
  assert.equal(cacheable('driver.js', answer('x', 200, null)), false);
  assert.equal(cacheable('driver.js', answer('x', 200, 'text/javascript', { type: 'opaque' })), false);
  assert.equal(cacheable('driver.js', answer('x', 200, 'text/javascript', { type: 'cors' })), false);
  assert.equal(cacheable('app.js', answer('x', 200, 'text/javascript')), false, 'not a shell file');
  assert.equal(cacheable('driver.js', null), false);
  // Reading the page for its mark leaves its body to whoever it is for.
  const r = answer(page);
  assert.equal(await fits('', r), true);
  assert.equal(await r.text(), page);
  assert.equal(mediaType(' Text/HTML ; charset=utf-8'), 'text/html');
  assert.equal(mediaType(null), '');
});

test('each build its own cache; activation deletes the older builds\', and no one else\'s', () => {
  assert.equal(cacheName('702a48f2ef530903'), 'depot-driver-shell-702a48f2ef530903');
  assert.notEqual(cacheName('a'), cacheName('b'));
  const cur = cacheName('new');
  assert.deepEqual(stale(['depot-driver-shell-v1', cacheName('old'), cur, 'other-app', 'depot-dashboard'], cur),
    ['depot-driver-shell-v1', cacheName('old')]);
  assert.ok(SHELL.includes('') && SHELL.includes('driver.js'));
});
