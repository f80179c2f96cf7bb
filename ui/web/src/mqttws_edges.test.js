// The dashboard MQTT client at its edges (a hidden tab's throttled timers, a frame that holds a closing packet and more): node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, varint } from './mqttws.js';

const bytes = (...a) => new Uint8Array(a.flat());
const str = (s) => { const b = [...new TextEncoder().encode(s)]; return [b.length >> 8, b.length & 0xff, ...b]; };
const pkt = (type, body) => bytes(type, varint(body.length), body);
const CONNACK_OK = pkt(0x20, [0, 0, 0]);
const PUB = pkt(0x30, [...str('depot/D/events'), 0, 0x7b, 0x7d]);

// A scripted WebSocket, clock and timers that the test fires (or, as a
// hidden Chrome tab does, does not).
function rig() {
  const sockets = [];
  class FakeWS {
    constructor(url, proto) { Object.assign(this, { url, proto, readyState: 0, sent: [] }); sockets.push(this); }
    send(b) { this.sent.push([...b]); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen(); }
    deliver(...packets) { this.onmessage({ data: bytes(...packets.map((p) => [...p])).buffer }); }
  }
  const clock = { t: 1_000_000 };
  const timers = [];
  const io = {
    WebSocket: FakeWS,
    now: () => clock.t,
    setTimeout: (fn, ms) => { timers.push({ fn, ms, live: true }); return timers.length; },
    clearTimeout: (id) => { if (timers[id - 1]) timers[id - 1].live = false; },
  };
  return { sockets, io, clock, timers };
}

function client(r, events) {
  const c = new Client('ws://h/mqtt', { clientId: 'dash-ana:1', username: 'ana', password: 'tok', keepalive: 20, connectTimeout: 10000 }, r.io);
  for (const ev of ['connect', 'close', 'error', 'message']) c.on(ev, (...a) => events.push([ev, ...a]));
  return c;
}

// Chrome throttles chained timers of a tab hidden for 5 minutes to one wake
// up a minute (MQTT.js used worker-timers for this; ui/headers.go still
// allows blob: workers for it). mochi cuts a client after 1.5 × keepalive =
// 30 s without a packet from it. WebSocket message events are not throttled
// and the server publishes system:status every 5 s: the client must ping
// from there when its timer is late.
test('keepalive survives throttled timers: a PINGREQ goes out within 1.5 × keepalive while frames arrive', () => {
  const r = rig(); const events = [];
  const realNow = Date.now; const realPerf = performance.now;
  Date.now = () => r.clock.t; performance.now = () => r.clock.t;
  try {
    client(r, events);
    const ws = r.sockets[0];
    ws.open(); ws.deliver(CONNACK_OK);
    let lastPing = r.clock.t;
    for (let s = 5; s <= 120; s += 5) { // no timer fires: the tab is hidden
      r.clock.t += 5000;
      ws.deliver(PUB);
      const n = ws.sent.filter((p) => p[0] === 0xc0).length;
      if (n && ws.sent.at(-1)[0] === 0xc0) { lastPing = r.clock.t; ws.deliver(bytes(0xd0, 0)); }
      assert.ok(r.clock.t - lastPing < 30000, `no PINGREQ for ${(r.clock.t - lastPing) / 1000} s: mochi has closed the session`);
    }
  } finally {
    Date.now = realNow; performance.now = realPerf;
  }
});

// onmessage keeps handling the packets of a frame after one of them closed
// the connection: 'connect' or 'message' after 'close', and a client that
// says it is connected with no socket (main.js's retry then never runs).
test('nothing is handled after a packet closed the connection, in the same frame', () => {
  const r = rig(); const events = [];
  const c = client(r, events);
  r.sockets[0].open();
  r.sockets[0].deliver(pkt(0x20, [0, 0x86, 0]), CONNACK_OK);
  assert.deepEqual(events.map(([ev]) => ev), ['error', 'close']);
  assert.equal(c.connected, false);

  const r2 = rig(); const ev2 = [];
  client(r2, ev2);
  r2.sockets[0].open(); r2.sockets[0].deliver(CONNACK_OK);
  r2.sockets[0].deliver(pkt(0xe0, [0x8e, 0]), PUB);
  assert.deepEqual(ev2.map(([ev]) => ev), ['connect', 'close'], 'no message after close');
});

// Keepalive 0 is MQTT's "no keepalive" (a server may set it in its
// CONNACK): frames arriving must not start pings that then count as
// unanswered and drop the connection.
test('keepalive 0: no pings, and frames never drop the connection', () => {
  const r = rig(); const events = [];
  const c = new Client('ws://h/mqtt', { clientId: 'x', keepalive: 0 }, r.io);
  c.on('close', () => events.push('close'));
  r.sockets[0].open(); r.sockets[0].deliver(CONNACK_OK);
  for (let i = 0; i < 5; i++) { r.clock.t += 60000; r.sockets[0].deliver(PUB); }
  assert.deepEqual(events, []);
  assert.equal(r.sockets[0].sent.filter((p) => p[0] === 0xc0).length, 0);
});
