// The token's life: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AUTH_KEY, loadAuth, renewDelay, Session, SESSION_ENDED } from './login.js';

const MIN = 60_000;

function memStorage(init = {}) {
  const m = new Map(Object.entries(init));
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, v), removeItem: (k) => m.delete(k), m };
}

test('renewal comes well before expiry, never before half-way, never in under a second', () => {
  assert.equal(renewDelay(8 * 60 * MIN, 0), 8 * 60 * MIN * 0.8, 'a shift-long token: at 80 %');
  assert.equal(renewDelay(30 * MIN, 0), 20 * MIN, '10 minutes before expiry when that is sooner');
  assert.equal(renewDelay(12 * MIN, 0), 6 * MIN, 'but not before half-way');
  assert.equal(renewDelay(500, 0), 1000);
  assert.equal(renewDelay(-5 * MIN, 0), 1000, 'already expired: at once (the depot says 401)');
  assert.equal(renewDelay(365 * 24 * 60 * MIN, 0), 2 ** 31 - 1, 'within what a timer holds');
});

test('a stored token is used only while it is valid', () => {
  const now = Date.parse('2026-12-01T08:00:00Z');
  const tok = (exp) => memStorage({ [AUTH_KEY]: JSON.stringify({ token: 't', username: 'u', expiresAt: exp }) });
  assert.equal(loadAuth(tok('2026-12-01T09:00:00Z'), now).token, 't');
  assert.equal(loadAuth(tok('2026-12-01T07:59:59Z'), now), null);
  assert.equal(loadAuth(tok('soon'), now), null);
  assert.equal(loadAuth(memStorage({ [AUTH_KEY]: '{"token":7,"expiresAt":"2030-01-01T00:00:00Z"}' }), now), null);
  assert.equal(loadAuth(memStorage({ [AUTH_KEY]: 'garbage' }), now), null);
  assert.equal(loadAuth(memStorage(), now), null);
});

// session builds a Session over fakes: answers are what fetch returns in
// turn (a Response-like object, or 'down' for a network error).
function session(answers) {
  const exp = new Date(Date.now() + 8 * 60 * MIN).toISOString();
  const storage = memStorage({ [AUTH_KEY]: JSON.stringify({ token: 'old', username: 'disp', expiresAt: exp }) });
  const timers = [];
  const ended = [];
  let renewed = 0;
  const calls = [];
  const s = new Session({
    storage,
    fetch: async (url, opts) => {
      calls.push({ url, auth: opts.headers && opts.headers.Authorization });
      const a = answers.shift();
      if (a === 'down') throw new TypeError('Failed to fetch');
      return { ok: a.status < 300, status: a.status, headers: new Map(Object.entries(a.headers || {})), json: async () => a.body };
    },
    setTimeout: (fn, ms) => { timers.push({ fn, ms }); return timers.length; },
    clearTimeout: () => {},
    serverNow: () => Date.now(),
    onEnd: (msg) => ended.push(msg),
    onRenewed: () => { renewed++; },
  });
  return { s, storage, timers, ended, calls, renewed: () => renewed };
}

test('renewal: an unreachable depot is asked again; a new token replaces the old', async () => {
  const exp = new Date(Date.now() + 8 * 60 * MIN).toISOString();
  const t = session(['down', { status: 503, body: {} }, { status: 200, body: { token: 'new', expiresAt: exp, role: 'dispatcher' } }]);
  await t.s.renew(0);
  assert.equal(t.timers.length, 1, 'a retry is scheduled');
  assert.ok(t.timers[0].ms >= 250 && t.timers[0].ms <= 750);
  await t.s.renew(1);
  assert.equal(t.timers.length, 2);
  assert.ok(t.timers[1].ms <= 250 + 1000, 'backoff grows from attempt 1');
  await t.s.renew(2);
  assert.equal(t.s.auth.token, 'new');
  assert.equal(t.s.auth.username, 'disp', 'the user name is kept');
  assert.equal(JSON.parse(t.storage.getItem(AUTH_KEY)).token, 'new');
  assert.equal(t.renewed(), 1);
  assert.equal(t.s.renewals, 1);
  assert.equal(t.calls[2].auth, 'Bearer old');
  assert.deepEqual(t.ended, []);
});

test('renewal: 401 ends the session and forgets the token', async () => {
  const t = session([{ status: 401, body: { error: 'revoked' } }]);
  await t.s.renew(0);
  assert.deepEqual(t.ended, [SESSION_ENDED]);
  assert.equal(t.s.auth, null);
  assert.equal(t.storage.getItem(AUTH_KEY), null);
  await t.s.renew(0); // nothing left to renew: no request
  assert.equal(t.calls.length, 1);
});

test('renewal: an answer that is not a token is retried, not trusted', async () => {
  const t = session([{ status: 200, body: { token: 5, expiresAt: 'x' } }]);
  await t.s.renew(0);
  assert.equal(t.s.auth.token, 'old');
  assert.equal(t.timers.length, 1);
});

test('sign-in: the depot\'s reasons reach the user', async () => {
  const t = session([{ status: 429, headers: { 'Retry-After': '30' }, body: {} }, { status: 401, body: { error: 'wrong username or password' } },
    'down', { status: 200, body: { token: 'tok', expiresAt: '2030-01-01T00:00:00Z', username: 'disp' } }]);
  assert.equal(await t.s.login('disp', 'x'), 'Too many attempts. Try again in 30 seconds.');
  assert.equal(await t.s.login('disp', 'x'), 'wrong username or password');
  assert.match(await t.s.login('disp', 'x'), /cannot be reached/);
  assert.equal(await t.s.login('disp', 'right'), null);
  assert.equal(t.s.auth.token, 'tok');
});

test('an API call answered 401 ends the session', async () => {
  const t = session([{ status: 401, body: {} }, { status: 409, body: { error: 'already resolved' } }]);
  await assert.rejects(t.s.api('api/v1/state'), /unauthorized/);
  assert.deepEqual(t.ended, [SESSION_ENDED]);
});
