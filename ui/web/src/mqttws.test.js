// The dashboard's MQTT client against a scripted WebSocket: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Parser, connectPacket, subscribePacket, unsubscribePacket, parsePublish, varint, serverKeepalive, MQTTError } from './mqttws.js';

const bytes = (...a) => new Uint8Array(a.flat());
const str = (s) => { const b = [...new TextEncoder().encode(s)]; return [b.length >> 8, b.length & 0xff, ...b]; };
const pkt = (type, body) => bytes(type, varint(body.length), body);

test('remaining lengths are MQTT variable byte integers', () => {
  assert.deepEqual(varint(0), [0]);
  assert.deepEqual(varint(127), [127]);
  assert.deepEqual(varint(128), [0x80, 1]);
  assert.deepEqual(varint(16383), [0xff, 0x7f]);
  assert.deepEqual(varint(2097152), [0x80, 0x80, 0x80, 1]);
});

test('CONNECT: MQTT 5, clean start, user name and password, keepalive', () => {
  const p = connectPacket({ clientId: 'dash-ana:1', username: 'ana', password: 'tok', keepalive: 20 });
  const body = [...str('MQTT'), 5, 0xc2, 0, 20, 0, ...str('dash-ana:1'), ...str('ana'), ...str('tok')];
  assert.deepEqual([...p], [0x10, body.length, ...body]);
  assert.deepEqual([...subscribePacket(7, ['depot/D/events'], 0)], [0x82, 2 + 1 + 2 + 14 + 1, 0, 7, 0, ...str('depot/D/events'), 0]);
});

test('the parser joins packets split across frames and splits frames holding several', () => {
  const pub = pkt(0x30, [...str('t/x'), 0, ...new TextEncoder().encode('{"a":1}')]);
  const two = bytes([...pub], [0xd0, 0]);
  const p = new Parser();
  assert.deepEqual(p.push(two.subarray(0, 3)), []);
  assert.deepEqual(p.push(two.subarray(3, 4)), []);
  const got = p.push(two.subarray(4));
  assert.equal(got.length, 2);
  assert.equal(got[0].type, 3);
  assert.equal(got[1].type, 13);
  const m = parsePublish(got[0]);
  assert.equal(m.topic, 't/x');
  assert.equal(new TextDecoder().decode(m.payload), '{"a":1}');
  // A length split across frames.
  const big = pkt(0x30, [...str('t'), 0, ...new Uint8Array(300)]);
  assert.deepEqual(p.push(big.subarray(0, 2)), []);
  assert.equal(p.push(big.subarray(2))[0].body.length, 300 + 3 + 1);
});

test('the parser refuses what is too big or malformed', () => {
  assert.throws(() => new Parser(100).push(bytes(0x30, varint(101))), MQTTError);
  assert.throws(() => new Parser().push(bytes(0x30, 0xff, 0xff, 0xff, 0xff, 0x01)), MQTTError);
  assert.throws(() => parsePublish({ type: 3, flags: 0, body: bytes(0, 9, 1) }), /truncated/);
  assert.throws(() => parsePublish({ type: 3, flags: 6, body: bytes(...str('t')) }), /QoS 3/);
});

test('a CONNACK\'s Server Keep Alive is read past other properties', () => {
  const props = [0x21, 0, 10, 0x12, ...str('assigned'), 0x26, ...str('k'), ...str('v'), 0x13, 0, 45];
  assert.equal(serverKeepalive({ type: 2, body: bytes(0, 0, varint(props.length), props) }), 45);
  assert.equal(serverKeepalive({ type: 2, body: bytes(0, 0, 0) }), null);
  assert.throws(() => serverKeepalive({ type: 2, body: bytes(0, 0, 2, 0x7f, 0) }), /unknown property/);
});

// A scripted WebSocket and clock.
function rig() {
  const sockets = [];
  class FakeWS {
    constructor(url, proto) {
      Object.assign(this, { url, proto, readyState: 0, sent: [] });
      sockets.push(this);
    }
    send(b) { this.sent.push([...b]); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen(); }
    deliver(...packets) { this.onmessage({ data: bytes(...packets.map((p) => [...p])).buffer }); }
    closeFromServer() { this.readyState = 3; this.onclose(); }
  }
  const timers = [];
  const clock = { t: 1_000_000 };
  const io = {
    WebSocket: FakeWS,
    now: () => clock.t,
    setTimeout: (fn, ms) => { timers.push({ fn, ms, live: true }); return timers.length; },
    clearTimeout: (id) => { if (timers[id - 1]) timers[id - 1].live = false; },
  };
  // fire lets ms pass and runs the timers set for that long.
  const fire = (ms) => { clock.t += ms; for (const t of timers.filter((x) => x.live && x.ms === ms)) { t.live = false; t.fn(); } };
  return { sockets, io, fire, clock };
}

function client(r, events) {
  const c = new Client('ws://h/mqtt', { clientId: 'dash-ana:1', username: 'ana', password: 'tok', keepalive: 20, connectTimeout: 10000 }, r.io);
  for (const ev of ['connect', 'close', 'error', 'message']) c.on(ev, (...a) => events.push([ev, ...a]));
  return c;
}

const CONNACK_OK = pkt(0x20, [0, 0, 0]);

test('connect, subscribe, receive at QoS 0 and 1 (acknowledged)', () => {
  const r = rig(); const events = [];
  const c = client(r, events);
  const ws = r.sockets[0];
  assert.equal(ws.proto, 'mqtt');
  ws.open();
  assert.equal(ws.sent[0][0], 0x10);
  ws.deliver(CONNACK_OK);
  assert.deepEqual(events, [['connect']]);
  assert.ok(c.connected);
  let acked = 'no';
  c.subscribe(['depot/D/events'], { qos: 0 }, (err) => { acked = err; });
  assert.equal(ws.sent[1][0], 0x82);
  ws.deliver(pkt(0x90, [0, 1, 0, 0]));
  assert.equal(acked, null);
  ws.deliver(pkt(0x30, [...str('depot/D/events'), 0, 0x5b, 0x5d]),
    pkt(0x32, [...str('depot/D/events'), 0x12, 0x34, 0, 0x7b, 0x7d]));
  assert.deepEqual(events.slice(1).map(([ev, topic, p]) => [ev, topic, new TextDecoder().decode(p)]),
    [['message', 'depot/D/events', '[]'], ['message', 'depot/D/events', '{}']]);
  assert.deepEqual(ws.sent[2], [0x40, 2, 0x12, 0x34], 'PUBACK for the QoS 1 delivery');
});

test('unsubscribe: an UNSUBSCRIBE of the filters, its UNSUBACK answered', () => {
  assert.deepEqual([...unsubscribePacket(9, ['depot/D/routes/R1/late'])], [0xa2, 2 + 1 + 2 + 22, 0, 9, 0, ...str('depot/D/routes/R1/late')]);
  const r = rig(); const events = [];
  const c = client(r, events);
  const ws = r.sockets[0];
  ws.open(); ws.deliver(CONNACK_OK);
  const got = [];
  c.subscribe(['depot/D/routes/R1/late'], { qos: 0 }, (err) => got.push(['sub', err]));
  c.unsubscribe(['depot/D/routes/R1/late'], (err) => got.push(['unsub', err]));
  assert.deepEqual(ws.sent[2], [...unsubscribePacket(2, ['depot/D/routes/R1/late'])]);
  ws.deliver(pkt(0x90, [0, 1, 0, 0]), pkt(0xb0, [0, 2, 0, 0x11]));
  assert.deepEqual(got, [['sub', null], ['unsub', null]], '0x11 (no such subscription) is a success');
  c.unsubscribe(['x'], (err) => got.push(['refused', err && err.code]));
  ws.deliver(pkt(0xb0, [0, 3, 0, 0x87]));
  assert.deepEqual(got[2], ['refused', 0x87]);
  c.unsubscribe(['y'], (err) => got.push(['closed', err && err.message]));
  ws.closeFromServer();
  assert.deepEqual(got[3], ['closed', 'connection closed']);
});

test('a refused CONNACK says why, then closes; reconnect opens a new socket', () => {
  const r = rig(); const events = [];
  const c = client(r, events);
  r.sockets[0].open();
  r.sockets[0].deliver(pkt(0x20, [0, 0x86, 0]));
  assert.equal(events[0][0], 'error');
  assert.equal(events[0][1].code, 0x86);
  assert.deepEqual(events.slice(1), [['close']]);
  assert.equal(c.connected, false);
  c.options.password = 'renewed';
  c.reconnect();
  assert.equal(r.sockets.length, 2);
  r.sockets[1].open();
  assert.ok(new TextDecoder().decode(new Uint8Array(r.sockets[1].sent[0])).endsWith('renewed'));
});

test('the server\'s DISCONNECT, a dropped socket and garbage each close once', () => {
  const r0 = rig(); const ev0 = [];
  const c0 = client(r0, ev0);
  c0.on('disconnect', (code) => ev0.push(['disconnect', code]));
  r0.sockets[0].open(); r0.sockets[0].deliver(CONNACK_OK);
  r0.sockets[0].deliver(pkt(0xe0, [0x87, 0]));
  assert.deepEqual(ev0, [['connect'], ['disconnect', 0x87], ['close']], 'a DISCONNECT is not an error: the next CONNACK says');
  for (const end of [
    (ws) => ws.deliver(pkt(0xe0, [0xa0, 0])),
    (ws) => ws.closeFromServer(),
    (ws) => ws.deliver(bytes(0xf0, 0)),
  ]) {
    const r = rig(); const events = [];
    client(r, events);
    const ws = r.sockets[0];
    ws.open(); ws.deliver(CONNACK_OK);
    end(ws);
    ws.onclose && ws.readyState === 3 && ws.onclose(); // the browser's close event comes too
    assert.equal(events.filter(([ev]) => ev === 'close').length, 1, JSON.stringify(events));
  }
});

test('keepalive: a ping each period; an unanswered one drops the connection', () => {
  const r = rig(); const events = [];
  client(r, events);
  const ws = r.sockets[0];
  ws.open(); ws.deliver(CONNACK_OK);
  r.fire(20000);
  assert.deepEqual(ws.sent.at(-1), [0xc0, 0]);
  ws.deliver(bytes(0xd0, 0));
  r.fire(20000);
  assert.deepEqual(ws.sent.at(-1), [0xc0, 0]);
  r.fire(20000); // no PINGRESP
  assert.deepEqual(events.at(-1), ['close']);
});

test('no CONNACK within the connect timeout: closed', () => {
  const r = rig(); const events = [];
  client(r, events);
  r.sockets[0].open();
  r.fire(10000);
  assert.deepEqual(events, [['close']]);
});

test('end after removing the close listeners closes quietly and for good', () => {
  const r = rig(); const events = [];
  const c = client(r, events);
  r.sockets[0].open(); r.sockets[0].deliver(CONNACK_OK);
  c.removeAllListeners('close');
  c.end(true);
  assert.deepEqual(r.sockets[0].sent.at(-1), [0xe0, 0]);
  assert.deepEqual(events, [['connect']]);
  c.reconnect();
  assert.equal(r.sockets.length, 1);
});

test('random bytes from the socket never escape as anything but a closed connection', () => {
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  for (let i = 0; i < 3000; i++) {
    const r = rig(); const events = [];
    client(r, events);
    const ws = r.sockets[0];
    ws.open();
    if (i % 2) ws.deliver(CONNACK_OK);
    const n = Math.floor(rnd() * 64);
    const junk = Array.from({ length: n }, () => Math.floor(rnd() * 256));
    if (i % 3 === 0 && n > 0) junk[0] = 0x30 | (junk[0] & 0x0f); // mostly PUBLISH-shaped
    assert.doesNotThrow(() => ws.deliver(junk));
    for (const [ev, arg] of events) {
      if (ev === 'error') assert.ok(arg instanceof MQTTError, String(arg));
      if (ev === 'message') assert.ok(typeof arg === 'string');
    }
  }
});
