// The driver's position as the depot takes it, and its pace: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gpsPayload, Throttle } from './gps.js';
import { backoff } from './backoff.js';
import { isShell, SHELL } from './shell.js';

const pos = (coords, timestamp = 1764150000123.4) => ({ coords: { accuracy: 8.04, speed: null, heading: null, ...coords }, timestamp });

test('a fix: six decimals, whole ms, speed and heading only when known and in range', () => {
  assert.deepEqual(gpsPayload(pos({ latitude: 52.123456789, longitude: -4.987654321, accuracy: 12.345, speed: 13.456, heading: 270.04 })),
    { lat: 52.123457, lng: -4.987654, ts: 1764150000123, acc: 12.3, spd: 13.46, hdg: 270 });
  const still = gpsPayload(pos({ latitude: 1, longitude: 2, speed: null, heading: null }));
  assert.deepEqual(still, { lat: 1, lng: 2, ts: 1764150000123, acc: 8 });
  assert.ok(!('spd' in still) && !('hdg' in still), 'nulls are left out, not sent as 0');
  assert.deepEqual(gpsPayload(pos({ latitude: 1, longitude: 2, speed: 0, heading: NaN })), { lat: 1, lng: 2, ts: 1764150000123, acc: 8, spd: 0 });
  assert.deepEqual(gpsPayload(pos({ latitude: 1, longitude: 2, speed: -1, heading: 361, accuracy: null })), { lat: 1, lng: 2, ts: 1764150000123 });
  assert.equal(gpsPayload(pos({ latitude: null, longitude: 2 })), null);
  assert.equal(gpsPayload(null), null);
  assert.equal(Number.isInteger(JSON.parse(JSON.stringify(gpsPayload(pos({ latitude: 1, longitude: 2 })))).ts), true);
});

test('positions go at most once every 5 s, the newest held back going when the gap is over', () => {
  const clock = { t: 0 }; const timers = []; const sent = [];
  const th = new Throttle(5000, (x) => sent.push([clock.t, x]), {
    now: () => clock.t,
    setTimeout: (f, ms) => { timers.push({ f, at: clock.t + ms, live: true }); return timers.length; },
    clearTimeout: (id) => { if (timers[id - 1]) timers[id - 1].live = false; },
  });
  const run = (t) => { clock.t = t; for (const x of timers) if (x.live && x.at <= t) { x.live = false; x.f(); } };
  th.push('a');                 // t=0: at once
  run(1000); th.push('b');      // held
  run(2000); th.push('c');      // replaces b
  run(5000);                    // c goes
  run(6000); th.push('d');      // held until 10000
  run(7000); th.now('e');       // the dispatcher asked: at once, d is dropped
  run(10000); th.push('f');     // held until 12000
  run(12000);
  th.push('g'); th.stop(); run(20000);
  assert.deepEqual(sent, [[0, 'a'], [5000, 'c'], [7000, 'e'], [12000, 'f']]);
});

test('reconnect backoff: 1 s doubling to 30 s, with jitter below', () => {
  assert.equal(backoff(0, () => 0), 1000);
  assert.equal(backoff(0, () => 1), 700);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 40].map((a) => backoff(a, () => 0)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  for (let a = 0; a < 50; a++) {
    const d = backoff(a);
    assert.ok(d >= 700 && d <= 30000, String(d));
  }
});

test('the service worker keeps the app shell only: never the API nor /mqtt', () => {
  const scope = 'https://depot.example:8080/driver/';
  for (const p of SHELL) assert.ok(isShell(scope + p, scope), p);
  for (const u of ['https://depot.example:8080/api/v1/driver/state', 'https://depot.example:8080/mqtt',
    'https://depot.example:8080/driver/../api/v1/driver/state', 'https://depot.example:8080/app.js',
    'https://depot.example:8080/driver/driver.js?x=1', 'https://other.example/driver/driver.js',
    'https://depot.example:8080/driver/api/v1/state', 'wss://depot.example:8080/mqtt', 'not a url']) {
    assert.equal(isShell(u, scope), false, u);
  }
});
