// The MQTT client's publishing (the driver app's answers and positions)
// against a scripted WebSocket: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, MQTTError, publishPacket, parsePuback, connackProps, varint } from './mqttws.js';

const bytes = (...a) => new Uint8Array(a.flat());
const str = (s) => { const b = [...new TextEncoder().encode(s)]; return [b.length >> 8, b.length & 0xff, ...b]; };
const pkt = (type, body) => bytes(type, varint(body.length), body);
const CONNACK_OK = pkt(0x20, [0, 0, 0]);
const puback = (id, code, reason) => (reason === undefined
  ? pkt(0x40, [id >> 8, id & 0xff, ...(code === undefined ? [] : [code])])
  : pkt(0x40, [id >> 8, id & 0xff, code, ...varint(3 + str(reason).length - 2), 0x1f, ...str(reason)]));

function rig() {
  const sockets = [];
  class FakeWS {
    constructor(url, proto) { Object.assign(this, { url, proto, readyState: 0, sent: [] }); sockets.push(this); }
    send(b) { this.sent.push([...b]); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen(); }
    deliver(...packets) { this.onmessage({ data: bytes(...packets.map((p) => [...p])).buffer }); }
    closeFromServer() { this.readyState = 3; this.onclose(); }
    // published is what this socket carried as PUBLISH: [id, topic, payload, qos].
    published() {
      return this.sent.filter((p) => p[0] >> 4 === 3).map((p) => {
        let j = 1; while (p[j] & 0x80) j++; j++;
        const tl = (p[j] << 8) | p[j + 1];
        const topic = new TextDecoder().decode(new Uint8Array(p.slice(j + 2, j + 2 + tl)));
        const qos = (p[0] >> 1) & 3;
        let k = j + 2 + tl; let id = 0;
        if (qos) { id = (p[k] << 8) | p[k + 1]; k += 2; }
        assert.equal(p[k], 0, 'no properties');
        return [id, topic, new TextDecoder().decode(new Uint8Array(p.slice(k + 1))), qos];
      });
    }
  }
  const io = { WebSocket: FakeWS, now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
  return { sockets, io };
}

function up(r, opts = {}) {
  const c = new Client('ws://h/mqtt', { clientId: 'drv-D7:appabc', username: 'D7', password: 'tok', keepalive: 0, ...opts }, r.io);
  const ws = r.sockets.at(-1);
  ws.open(); ws.deliver(CONNACK_OK);
  return c;
}

// settled says how a promise ended so far: ['pending'], ['ok', v] or ['err', e].
function watch(p) {
  const s = ['pending'];
  p.then((v) => { s.splice(0, 2, 'ok', v); }, (e) => { s.splice(0, 2, 'err', e); });
  return s;
}
const tick = () => new Promise((r) => setImmediate(r));

test('PUBLISH packets: QoS 0 has no packet id, QoS 1 has one; lengths past 127 take two bytes', () => {
  const p0 = publishPacket(0, 'a/b', new TextEncoder().encode('hi'), 0);
  assert.deepEqual([...p0], [0x30, 2 + 3 + 1 + 2, ...str('a/b'), 0, 0x68, 0x69]);
  const p1 = publishPacket(0x1234, 'a', new Uint8Array(200), 1);
  assert.deepEqual([...p1.subarray(0, 9)], [0x32, ...varint(3 + 2 + 1 + 200), ...str('a'), 0x12, 0x34, 0]);
  assert.equal(p1.length, 3 + 206);
});

test('PUBACK: reason code and reason string, both optional', () => {
  assert.deepEqual(parsePuback({ type: 4, body: bytes(0, 5) }), { id: 5, code: 0, reason: '' });
  assert.deepEqual(parsePuback({ type: 4, body: bytes(0, 5, 0x10) }), { id: 5, code: 0x10, reason: '' });
  const props = [0x26, ...str('k'), ...str('v'), 0x1f, ...str('offer vto_1 is already expired')];
  assert.deepEqual(parsePuback({ type: 4, body: bytes(1, 0, 0x83, varint(props.length), props) }),
    { id: 256, code: 0x83, reason: 'offer vto_1 is already expired' });
  assert.throws(() => parsePuback({ type: 4, body: bytes(0, 5, 0x83, 9, 0x1f) }), MQTTError);
  assert.deepEqual(connackProps({ type: 2, body: bytes(0, 0, 3, 0x21, 0, 2) }), { keepalive: null, receiveMax: 2 });
});

test('a QoS 1 publish resolves on its PUBACK; QoS 0 resolves once written', async () => {
  const r = rig(); const c = up(r); const ws = r.sockets[0];
  const a = watch(c.publish('depot/D/drivers/D7/reply', '{"ref":"vto_1","action":"accept"}', { qos: 1 }));
  const b = watch(c.publish('depot/D/drivers/D7/gps', '{"lat":1}', { qos: 0 }));
  assert.deepEqual(ws.published(), [[1, 'depot/D/drivers/D7/reply', '{"ref":"vto_1","action":"accept"}', 1],
    [0, 'depot/D/drivers/D7/gps', '{"lat":1}', 0]]);
  await tick();
  assert.deepEqual(a, ['pending']);
  assert.deepEqual(b, ['ok', 0]);
  ws.deliver(puback(1));
  await tick();
  assert.deepEqual(a, ['ok', 0]);
  assert.equal(c.queued, 0);
});

test('a refusal rejects with the reason code and the server\'s reason string', async () => {
  const r = rig(); const c = up(r); const ws = r.sockets[0];
  const a = watch(c.publish('t/reply', '{}', { qos: 1 }));
  const b = watch(c.publish('t/reply', '{}', { qos: 1 }));
  ws.deliver(puback(1, 0x83, 'offer vto_1 is already expired'), puback(2, 0x10));
  await tick();
  assert.equal(a[0], 'err');
  assert.ok(a[1] instanceof MQTTError);
  assert.equal(a[1].code, 0x83);
  assert.equal(a[1].reason, 'offer vto_1 is already expired');
  assert.match(a[1].message, /already expired/);
  assert.deepEqual(b, ['ok', 0x10], 'a code under 0x80 (no matching subscribers) is a success');
  ws.deliver(puback(1)); // a PUBACK for nothing outstanding changes nothing
  assert.ok(c.connected);
});

test('unacknowledged publishes are sent again after the next CONNACK, in order, with new ids', async () => {
  const r = rig(); const c = up(r); const ws = r.sockets[0];
  const a = watch(c.publish('t/1', 'one', { qos: 1 }));
  const b = watch(c.publish('t/2', 'two', { qos: 1 }));
  ws.deliver(puback(1));
  ws.closeFromServer();
  const d = watch(c.publish('t/3', 'three', { qos: 1 })); // while disconnected: waits
  const q0 = watch(c.publish('t/0', 'zero', { qos: 0 }));
  await tick();
  assert.deepEqual(a, ['ok', 0]);
  assert.deepEqual(b, ['pending']);
  assert.equal(q0[0], 'err', 'QoS 0 has nothing to wait for');
  assert.equal(c.queued, 2);
  c.reconnect();
  const ws2 = r.sockets[1];
  ws2.open();
  assert.deepEqual(ws2.published(), [], 'nothing before the CONNACK');
  const events = [];
  c.on('connect', () => events.push(ws2.published().length));
  ws2.deliver(CONNACK_OK);
  assert.deepEqual(ws2.published(), [[3, 't/2', 'two', 1], [4, 't/3', 'three', 1]]);
  assert.deepEqual(events, [2], 'resent before the page hears of the connection');
  ws2.deliver(puback(4), puback(3));
  await tick();
  assert.deepEqual(b, ['ok', 0]);
  assert.deepEqual(d, ['ok', 0]);
});

test('packet ids of publishes and subscribes never collide, across the wrap at 65535', () => {
  const r = rig(); const c = up(r); const ws = r.sockets[0];
  c.nextId = 65534;
  c.publish('t', 'a', { qos: 1 }).catch(() => {});     // 65534
  c.subscribe(['depot/D/drivers/D7/inbox'], { qos: 1 }); // 65535
  c.publish('t', 'b', { qos: 1 }).catch(() => {});     // 1
  c.nextId = 65534; // wrapped all the way round: the ids still out are skipped
  c.subscribe(['x'], { qos: 1 });
  c.publish('t', 'c', { qos: 1 }).catch(() => {});
  const subIds = ws.sent.filter((p) => p[0] === 0x82).map((p) => (p[2] << 8) | p[3]);
  const pubIds = ws.published().map(([id]) => id);
  assert.deepEqual(pubIds.slice(0, 2), [65534, 1]);
  assert.deepEqual(subIds, [65535, 2]);
  assert.equal(pubIds[2], 3);
  const all = [...subIds, ...pubIds];
  assert.equal(new Set(all).size, all.length);
});

test('the queue is bounded: beyond maxQueue a publish rejects at once; end rejects what waits', async () => {
  const r = rig(); const c = up(r, { maxQueue: 3 });
  r.sockets[0].closeFromServer();
  const p = [1, 2, 3, 4].map((i) => watch(c.publish('t', String(i), { qos: 1 })));
  await tick();
  assert.deepEqual(p.map((s) => s[0]), ['pending', 'pending', 'pending', 'err']);
  assert.match(p[3][1].message, /queue full/);
  c.end();
  await tick();
  assert.deepEqual(p.map((s) => s[0]), ['err', 'err', 'err', 'err']);
  assert.equal(c.queued, 0);
});

test('no more publishes out than the server\'s Receive Maximum', async () => {
  const r = rig();
  const c = new Client('ws://h/mqtt', { clientId: 'x', keepalive: 0 }, r.io);
  const ws = r.sockets[0];
  ws.open(); ws.deliver(pkt(0x20, [0, 0, 3, 0x21, 0, 2]));
  for (const s of ['a', 'b', 'c', 'd']) c.publish('t', s, { qos: 1 }).catch(() => {});
  assert.deepEqual(ws.published().map(([, , s]) => s), ['a', 'b']);
  ws.deliver(puback(2));
  assert.deepEqual(ws.published().map(([, , s]) => s), ['a', 'b', 'c']);
  ws.deliver(puback(1), puback(3));
  assert.deepEqual(ws.published().map(([, , s]) => s), ['a', 'b', 'c', 'd']);
});
