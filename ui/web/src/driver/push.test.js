// Web Push in the driver app: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { notification, clickUrl, parseFragment, fromMessage, keyBytes, vapid, register, turnOn, turnOff,
  statusText, wanted, want, pushKey, validRef, VAPID_URL, REGISTER_URL } from './push.js';

const NOW = Date.parse('2026-11-26T10:00:00Z');
const payload = (type, ref, over = {}) => ({
  id: 'evt_42', title: 'Time off offered', body: 'CX01 · light volume',
  data: { type, ref, seq: '42', driverId: 'D7', url: `/driver/#msg=${ref}` }, expires: '2026-11-26T10:30:00Z', ...over,
});

// A VAPID key as the depot gives it: base64url of an uncompressed P-256 point.
const jwk = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ format: 'jwk' });
const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
const PUBLIC = point.toString('base64url');

test('an offer\'s push: tagged with its ref, Accept and Decline where the browser shows buttons', () => {
  const n = notification(payload('vto:offer', 'vto_1'), NOW, 2);
  assert.equal(n.title, 'Time off offered');
  assert.equal(n.options.body, 'CX01 · light volume');
  assert.equal(n.options.tag, 'vto_1', 'a newer push of the same offer replaces the older');
  assert.equal(n.options.timestamp, NOW);
  assert.equal(n.options.requireInteraction, undefined);
  assert.deepEqual(n.options.actions, [{ action: 'accept', title: 'Accept' }, { action: 'decline', title: 'Decline' }]);
  assert.deepEqual(n.options.data, { type: 'vto:offer', ref: 'vto_1', seq: '42', driverId: 'D7' }, 'the payload\'s url is not kept: a click goes where clickUrl says');
  assert.equal(notification(payload('vto:offer', 'vto_1'), NOW, 0).options.actions, undefined, 'no buttons where none are shown');
});

test('a rescue stays until the driver touches it; a reassignment is plain', () => {
  const r = notification(payload('rescue:alert', 'rsc_R2_5', { title: 'Rescue: help CX02' }), NOW, 2);
  assert.equal(r.options.requireInteraction, true);
  assert.equal(r.options.actions, undefined);
  assert.equal(r.options.tag, 'rsc_R2_5');
  const m = notification(payload('route:reassigned', 'R3'), NOW, 2);
  assert.equal(m.options.requireInteraction, undefined);
  assert.equal(m.options.actions, undefined);
  assert.equal(m.options.tag, 'R3');
});

test('a push past its expires is dropped; one without expires is shown', () => {
  assert.equal(notification(payload('vto:offer', 'vto_1', { expires: '2026-11-26T09:59:59Z' }), NOW, 2), null);
  assert.equal(notification(payload('vto:offer', 'vto_1', { expires: '2026-11-26T10:00:00Z' }), NOW, 2), null);
  assert.ok(notification(payload('vto:offer', 'vto_1', { expires: undefined }), NOW, 2));
  assert.equal(notification(null, NOW), null);
  assert.equal(notification('text', NOW), null);
  assert.equal(notification([1], NOW), null);
});

test('what a push carries is checked: text only, a ref of a known shape, or none', () => {
  const n = notification({ title: { x: 1 }, body: 7, data: { type: 'vto:offer', ref: 'vto_1"><img src=x>', driverId: 'D7/#' } }, NOW, 2);
  assert.equal(n.title, 'Depot');
  assert.equal(n.options.body, '');
  assert.equal(n.options.tag, undefined);
  assert.equal(n.options.actions, undefined, 'no answer without a ref to answer');
  assert.deepEqual(n.options.data, { type: 'vto:offer', ref: '', seq: '', driverId: '' });
  assert.equal(notification(payload('vto:whatever', 'x'), NOW, 2).options.data.type, '');
  assert.equal(notification(payload('vto:offer', 'v', { title: 'x'.repeat(500) }), NOW).title.length, 120);
  assert.ok(validRef('rsc_R2_5') && validRef('a.b:c-d') && validRef('x'.repeat(80)));
  assert.ok(!validRef('') && !validRef('x'.repeat(81)) && !validRef('a/b') && !validRef('a b') && !validRef('a&b') && !validRef(5));
});

test('a click opens the app with the answer of the button, or at the message', () => {
  const data = { type: 'vto:offer', ref: 'vto_1' };
  assert.equal(clickUrl('accept', data), '#answer=accept:vto_1');
  assert.equal(clickUrl('decline', data), '#answer=decline:vto_1');
  assert.equal(clickUrl('', data), '#msg=vto_1');
  assert.equal(clickUrl('format', data), '#msg=vto_1', 'an action of no known kind is a plain click');
  assert.equal(clickUrl('accept', { ref: '../x' }), '');
  assert.equal(clickUrl('', null), '');
});

test('the fragment: answers and refs of known shapes only; pairing links are not this', () => {
  assert.deepEqual(parseFragment('#answer=accept:vto_1'), { answer: { action: 'accept', ref: 'vto_1' } });
  assert.deepEqual(parseFragment('#answer=ack:rsc_R2_5'), { answer: { action: 'ack', ref: 'rsc_R2_5' } });
  assert.deepEqual(parseFragment('#answer=decline:a:b'), { answer: { action: 'decline', ref: 'a:b' } }, 'the ref after the first colon');
  assert.deepEqual(parseFragment('#answer=accept%3Avto_1'), { answer: { action: 'accept', ref: 'vto_1' } });
  assert.deepEqual(parseFragment('#msg=vto_1'), { msg: 'vto_1' });
  for (const bad of ['#answer=confirm:vto_1', '#answer=accept:', '#answer=accept', '#answer=:vto_1', '#answer=accept:a/b',
    '#msg=', '#msg=a%20b', `#msg=${'x'.repeat(81)}`]) {
    assert.deepEqual(parseFragment(bad), { bad: true }, bad);
  }
  for (const none of ['', '#', '#pair=abc', '#driver=D7&token=t', '#x=1']) assert.equal(parseFragment(none), null, none);
});

test('what the service worker posts to an open app', () => {
  assert.deepEqual(fromMessage({ type: 'depot:push', url: '#answer=accept:vto_1', driverId: 'D7' }),
    { answer: { action: 'accept', ref: 'vto_1' }, driverId: 'D7' });
  assert.deepEqual(fromMessage({ type: 'depot:push', url: '#msg=R3' }), { msg: 'R3', driverId: '' });
  assert.equal(fromMessage({ type: 'depot:push', url: '#msg=a b' }), null);
  assert.equal(fromMessage({ type: 'other', url: '#msg=R3' }), null);
  assert.equal(fromMessage('#msg=R3'), null);
});

test('the depot\'s VAPID key: an uncompressed P-256 point, nothing else', () => {
  const k = keyBytes(PUBLIC);
  assert.ok(k instanceof Uint8Array);
  assert.deepEqual([...k], [...point]);
  assert.deepEqual([...keyBytes(PUBLIC + '=')], [...point]);
  assert.equal(keyBytes(Buffer.concat([Buffer.from([2]), point.subarray(1)]).toString('base64url')), null, 'not uncompressed');
  assert.equal(keyBytes(point.subarray(0, 33).toString('base64url')), null);
  assert.equal(keyBytes(PUBLIC.replace(/.$/, '+')), null, 'base64url only');
  assert.equal(keyBytes(null), null);
});

// fakeFetch answers by method and URL; it records what it was asked.
function fakeFetch(routes) {
  const calls = [];
  const f = async (url, init = {}) => {
    calls.push({ url, ...init, body: init.body && JSON.parse(init.body) });
    const r = routes[`${init.method || 'GET'} ${url}`];
    if (r instanceof Error) throw r;
    const [status, body] = r || [404, { message: 'Not Found' }];
    return new Response(status === 204 ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  };
  f.calls = calls;
  return f;
}

// fakePM is a pushManager: a subscription made for a key, or none.
function fakePM(existing = null) {
  const pm = {
    sub: existing, subscribed: 0, unsubscribed: 0,
    async getSubscription() { return pm.sub; },
    async subscribe(opts) {
      pm.subscribed++;
      pm.opts = opts;
      const s = {
        options: { applicationServerKey: opts.applicationServerKey.buffer },
        toJSON: () => ({ endpoint: 'https://push.example/send/abc', expirationTime: null, keys: { p256dh: 'BPk', auth: 'au' } }),
        async unsubscribe() { pm.unsubscribed++; pm.sub = null; return true; },
      };
      pm.sub = s;
      return s;
    },
  };
  return pm;
}

const cred = { driver: 'D7', token: 't0k' };

test('vapid: the key, off (404), or why not', async () => {
  const ok = await vapid(fakeFetch({ [`GET ${VAPID_URL}`]: [200, { publicKey: PUBLIC }] }));
  assert.deepEqual([...ok.key], [...point]);
  assert.deepEqual(await vapid(fakeFetch({})), { off: true });
  assert.match((await vapid(fakeFetch({ [`GET ${VAPID_URL}`]: [200, { publicKey: 'nope' }] }))).error, /not readable/);
  assert.match((await vapid(fakeFetch({ [`GET ${VAPID_URL}`]: [503, { message: 'starting' }] }))).error, /starting \(503\)/);
  assert.match((await vapid(fakeFetch({ [`GET ${VAPID_URL}`]: new TypeError('offline') }))).error, /could not be reached/);
  const f = fakeFetch({ [`GET ${VAPID_URL}`]: [200, { publicKey: PUBLIC }] });
  await vapid(f);
  assert.equal(f.calls[0].credentials, 'omit');
  assert.equal(f.calls[0].headers, undefined, 'asked without the credential');
});

test('turning on: asked, subscribed with the depot\'s key, registered with the driver\'s credential', async () => {
  const get = fakeFetch({ [`POST ${REGISTER_URL}`]: [201, { id: 'wp_1' }] });
  const pm = fakePM();
  const key = keyBytes(PUBLIC);
  assert.deepEqual(await turnOn({ permission: async () => 'granted', pm, get, cred, key }), { state: 'on' });
  assert.equal(pm.opts.userVisibleOnly, true);
  assert.equal(pm.opts.applicationServerKey, key);
  const c = get.calls[0];
  assert.equal(c.method, 'POST');
  assert.equal(c.credentials, 'omit');
  assert.equal(c.headers.Authorization, 'Basic ' + btoa('D7:t0k'));
  assert.deepEqual(c.body, { kind: 'webpush', subscription: { endpoint: 'https://push.example/send/abc', expirationTime: null, keys: { p256dh: 'BPk', auth: 'au' } } });

  // Again (the start of the app): the same subscription, registered again.
  assert.deepEqual(await turnOn({ permission: async () => 'granted', pm, get, cred, key }), { state: 'on' });
  assert.equal(pm.subscribed, 1);
  assert.equal(get.calls.length, 2);

  // The depot's key changed: the old subscription goes, a new one comes.
  const other = new Uint8Array(key); other[5] ^= 1;
  await turnOn({ permission: async () => 'granted', pm, get, cred, key: other });
  assert.equal(pm.unsubscribed, 1);
  assert.equal(pm.subscribed, 2);
});

test('turning on: blocked, dismissed, refused by the push service or by the depot', async () => {
  const key = keyBytes(PUBLIC);
  const get = fakeFetch({ [`POST ${REGISTER_URL}`]: [201, { id: 'wp_1' }] });
  assert.deepEqual(await turnOn({ permission: async () => 'denied', pm: fakePM(), get, cred, key }), { state: 'blocked' });
  assert.deepEqual(await turnOn({ permission: async () => 'default', pm: fakePM(), get, cred, key }), { state: 'dismissed' });
  assert.equal(get.calls.length, 0, 'nothing registered without the permission');
  const pm = fakePM();
  pm.subscribe = async () => { throw new DOMException('Registration failed - push service error', 'AbortError'); };
  const r = await turnOn({ permission: async () => 'granted', pm, get, cred, key });
  assert.equal(r.state, 'error');
  assert.match(statusText(r), /^Not on: the browser's push service refused \(Registration failed - push service error\)$/);
  const no = await turnOn({ permission: async () => 'granted', pm: fakePM(), cred, key,
    get: fakeFetch({ [`POST ${REGISTER_URL}`]: [400, { message: 'subscription: endpoint must be https' }] }) });
  assert.deepEqual(no, { state: 'error', why: 'the depot says: subscription: endpoint must be https (400)' });
  const gone = await turnOn({ permission: async () => 'granted', pm: fakePM(), cred, key,
    get: fakeFetch({ [`POST ${REGISTER_URL}`]: new TypeError('Failed to fetch') }) });
  assert.equal(statusText(gone), 'Not on: the depot could not be reached');
});

test('turning off: the depot told first (by endpoint), then the browser, whatever the depot said', async () => {
  const pm = fakePM();
  await pm.subscribe({ applicationServerKey: keyBytes(PUBLIC) });
  const get = fakeFetch({ [`DELETE ${REGISTER_URL}`]: [204] });
  assert.deepEqual(await turnOff({ pm, get, cred }), { state: 'off' });
  assert.deepEqual(get.calls[0].body, { kind: 'webpush', subscription: { endpoint: 'https://push.example/send/abc' } });
  assert.equal(get.calls[0].headers.Authorization, 'Basic ' + btoa('D7:t0k'));
  assert.equal(pm.sub, null);
  assert.deepEqual(await turnOff({ pm, get, cred }), { state: 'off' }, 'none: nothing to do');
  assert.equal(get.calls.length, 1);

  await pm.subscribe({ applicationServerKey: keyBytes(PUBLIC) });
  const r = await turnOff({ pm, cred, get: fakeFetch({ [`DELETE ${REGISTER_URL}`]: new TypeError('offline') }) });
  assert.equal(pm.sub, null, 'dropped by the browser all the same');
  assert.equal(statusText(r), 'Off · the depot was not told: the depot could not be reached');

  await pm.subscribe({ applicationServerKey: keyBytes(PUBLIC) });
  const quiet = fakeFetch({});
  await turnOff({ pm, get: quiet, cred: null });
  assert.equal(quiet.calls.length, 0, 'revoked: no credential to tell the depot with');
  assert.equal(pm.sub, null);
});

test('the words under the switch, and the switch remembered per driver', () => {
  assert.equal(statusText({ state: 'on' }), 'On: this phone is woken for offers and rescues');
  assert.equal(statusText({ state: 'blocked' }), 'Blocked in the browser\'s settings');
  assert.equal(statusText({ state: 'unsupported' }), 'Not available in this browser');
  assert.equal(statusText({ state: 'pending', why: 'the depot could not be reached' }), 'On, not yet confirmed by the depot · the depot could not be reached');
  const m = new Map();
  const storage = { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
  assert.equal(wanted(storage, 'D7'), false, 'off by default');
  want(storage, 'D7', true);
  assert.equal(wanted(storage, 'D7'), true);
  assert.equal(wanted(storage, 'D8'), false);
  assert.equal(m.get(pushKey('D7')), '1');
  want(storage, 'D7', false);
  assert.equal(m.size, 0);
});

test('register sends the subscription as the browser gives it (toJSON), DELETE only its endpoint', async () => {
  const get = fakeFetch({ [`POST ${REGISTER_URL}`]: [201, { id: 'x' }], [`DELETE ${REGISTER_URL}`]: [204] });
  const sub = { endpoint: 'https://push.example/e', keys: { p256dh: 'p', auth: 'a' } };
  assert.deepEqual(await register(get, cred, sub), { ok: true });
  assert.deepEqual(await register(get, cred, sub, 'DELETE'), { ok: true });
  assert.deepEqual(get.calls.map((c) => c.body.subscription), [sub, { endpoint: 'https://push.example/e' }]);
});
