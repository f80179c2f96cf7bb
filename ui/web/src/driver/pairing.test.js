// Pairing from a link: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLink, redeem, decide, failureText, PAIR_URL, STATE_URL } from './pairing.js';

const CODE = 'Qm9ndXMtY29kZS1mb3ItdGVzdHMtb25seS0xMjM0NTY'; // 43 chars of base64url

test('a link\'s fragment: a one-time code, a credential, a broken pairing link, or none', () => {
  assert.deepEqual(parseLink(`#pair=${CODE}`), { code: CODE });
  assert.deepEqual(parseLink('#driver=D7&token=abc%2B'), { cred: { driver: 'D7', token: 'abc+' } });
  assert.deepEqual(parseLink('#pair='), { bad: true });
  assert.deepEqual(parseLink('#pair=has/slash+plus-and-is-long-enough'), { bad: true });
  assert.deepEqual(parseLink(`#pair=${'a'.repeat(129)}`), { bad: true });
  assert.deepEqual(parseLink('#driver=D7'), { bad: true });
  assert.deepEqual(parseLink('#token=x'), { bad: true });
  assert.deepEqual(parseLink('#driver=D%2B7&token=x'), { bad: true }, 'an id that would change a topic');
  assert.equal(parseLink(''), null);
  assert.equal(parseLink('#'), null);
  assert.equal(parseLink('#section-2'), null);
});

// fake is a fetch that answers each request with the next of answers
// (status and body, or an Error to throw) and records what it was asked.
function fake(...answers) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init });
    const a = answers.shift();
    if (a instanceof Error) throw a;
    return {
      status: a.status, ok: a.status >= 200 && a.status < 300,
      json: async () => (typeof a.body === 'string' ? JSON.parse(a.body) : a.body),
    };
  };
  f.calls = calls;
  return f;
}

test('a code is exchanged once, without the browser\'s credentials, for the depot\'s credential', async () => {
  const f = fake({ status: 200, body: { driverId: 'D7', token: 'tok' } });
  assert.deepEqual(await redeem({ code: CODE }, { fetch: f }), { ok: true, cred: { driver: 'D7', token: 'tok' } });
  assert.equal(f.calls.length, 1);
  const { url, init } = f.calls[0];
  assert.equal(url, PAIR_URL);
  assert.equal(init.method, 'POST');
  assert.equal(init.credentials, 'omit');
  assert.deepEqual(JSON.parse(init.body), { code: CODE });
});

test('a code that fails says why', async () => {
  const why = async (...a) => (await redeem({ code: CODE }, { fetch: fake(...a) })).why;
  assert.equal(await why({ status: 410, body: { error: 'used' } }), 'used');
  assert.equal(await why({ status: 429, body: {} }), 'throttled');
  assert.equal(await why({ status: 503, body: {} }), 'depot');
  assert.equal(await why({ status: 404, body: {} }), 'bad');
  assert.equal(await why(new TypeError('Failed to fetch')), 'unreachable');
  assert.equal(await why({ status: 200, body: '<html>portal</html>' }), 'bad');
  assert.equal(await why({ status: 200, body: { driverId: 'D/7', token: 't' } }), 'bad');
  assert.equal(await why({ status: 200, body: { driverId: 'D7', token: '' } }), 'bad');
  assert.equal(await why({ status: 200, body: { driverId: 'D7', token: 5 } }), 'bad');
  assert.deepEqual(await redeem({ bad: true }, { fetch: fake() }), { ok: false, why: 'bad' });
});

test('a link with the credential is tried with a state request first', async () => {
  const cred = { driver: 'D7', token: 'tok' };
  const state = { depot: 'DEMO1', driverId: 'D7', driverName: 'Ana', offers: [] };
  let t = 1000;
  const f = fake({ status: 200, body: state });
  const r = await redeem({ cred }, { fetch: f, now: () => (t += 50) });
  assert.deepEqual(r, { ok: true, cred, answer: state, sentAt: 1050, receivedAt: 1100 });
  assert.equal(f.calls[0].url, STATE_URL);
  assert.equal(f.calls[0].init.credentials, 'omit');
  assert.equal(f.calls[0].init.headers.Authorization, 'Basic ' + Buffer.from('D7:tok').toString('base64'));
  const why = async (...a) => (await redeem({ cred }, { fetch: fake(...a) })).why;
  assert.equal(await why({ status: 401, body: {} }), 'refused');
  assert.equal(await why({ status: 200, body: { ...state, driverId: 'D8' } }), 'bad', 'an answer for another driver');
  assert.equal(await why(new TypeError('offline')), 'unreachable');
});

test('a request that hangs is given up', async () => {
  const hang = (url, init) => new Promise((resolve, reject) => { init.signal.addEventListener('abort', () => reject(new Error('aborted'))); });
  assert.deepEqual(await redeem({ code: CODE }, { fetch: hang, timeout: 10 }), { ok: false, why: 'unreachable' });
});

test('a link never destroys a working pairing; another driver\'s needs a yes', () => {
  const d7 = { driver: 'D7', token: 'old' };
  const ok = (driver, token = 'new') => ({ ok: true, cred: { driver, token } });
  assert.deepEqual(decide(null, ok('D7')), { do: 'save', cred: { driver: 'D7', token: 'new' } });
  assert.deepEqual(decide(d7, ok('D7')), { do: 'save', cred: { driver: 'D7', token: 'new' } }, 'the same driver, a new token');
  assert.deepEqual(decide(d7, ok('D8')), { do: 'ask', cred: { driver: 'D8', token: 'new' }, from: 'D7' });
  for (const why of ['used', 'refused', 'throttled', 'unreachable', 'depot', 'bad']) {
    assert.deepEqual(decide(d7, { ok: false, why }), { do: 'keep', why });
    assert.deepEqual(decide(null, { ok: false, why }), { do: 'keep', why });
  }
  assert.deepEqual(decide(d7, null), { do: 'keep', why: 'bad' });
});

test('what the driver reads when a link fails', () => {
  assert.equal(failureText('used', ''), 'This pairing code was already used or has expired: ask your dispatcher for a new QR code.');
  assert.equal(failureText('used', 'Ana Silva'),
    'This pairing code was already used or has expired: ask your dispatcher for a new QR code. This phone stays paired as Ana Silva.');
  assert.match(failureText('unreachable', ''), /could not be reached/);
  assert.match(failureText('nonsense', ''), /not valid/);
});
