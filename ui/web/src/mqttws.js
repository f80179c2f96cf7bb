// A small MQTT 5 client over WebSocket for the dashboard (which only
// subscribes) and the driver app (which also publishes). MQTT.js did the
// job at about a millisecond of the page's main thread per message (its
// stream machinery schedules a timer per packet through a process.nextTick
// shim); this reads each WebSocket frame straight into packets. What the
// pages need, and no more: CONNECT with a user name, a token as password
// and a clean start; SUBSCRIBE and UNSUBSCRIBE; PUBLISH received at QoS 0 or 1
// (acknowledged); PUBLISH sent at QoS 0 or 1 (publish()); keepalive pings;
// the server's DISCONNECT. Its interface is the part of MQTT.js's the
// dashboard used: connect(), on('connect' | 'close' | 'error' | 'message' |
// 'disconnect'), subscribe(), unsubscribe(), reconnect(), end(),
// removeAllListeners(), options, connected, stream.destroy(); and publish().
//
// The broker is the depot's own (mochi-mqtt); whatever it sends that this
// does not understand closes the connection, and the page reconnects.

const enc = new TextEncoder();
const dec = new TextDecoder();

// CONNACK and DISCONNECT reason codes the page acts on.
export const BAD_CREDENTIALS = 0x86;
export const NOT_AUTHORIZED = 0x87;

export class MQTTError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

// varint is MQTT's variable byte integer.
export function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s) {
  const b = enc.encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

function packet(type, body) {
  return new Uint8Array([type, ...varint(body.length), ...body]);
}

// connectPacket is an MQTT 5 CONNECT with a clean start, no will, user
// name and password.
export function connectPacket({ clientId, username, password, keepalive }) {
  let flags = 0x02;
  const payload = [...str(clientId)];
  if (username != null) { flags |= 0x80; payload.push(...str(username)); }
  if (password != null) { flags |= 0x40; payload.push(...str(password)); }
  return packet(0x10, [...str('MQTT'), 5, flags, keepalive >> 8, keepalive & 0xff, 0, ...payload]);
}

// publishPacket is a PUBLISH without properties; id is 0 at QoS 0.
export function publishPacket(id, topic, payload, qos) {
  const body = [...str(topic)];
  if (qos > 0) body.push(id >> 8, id & 0xff);
  body.push(0);
  const head = [...varint(body.length + payload.length)];
  const out = new Uint8Array(1 + head.length + body.length + payload.length);
  out[0] = 0x30 | (qos << 1);
  out.set(head, 1);
  out.set(body, 1 + head.length);
  out.set(payload, 1 + head.length + body.length);
  return out;
}

export function subscribePacket(id, filters, qos) {
  const body = [id >> 8, id & 0xff, 0];
  for (const f of filters) body.push(...str(f), qos & 3);
  return packet(0x82, body);
}

export function unsubscribePacket(id, filters) {
  const body = [id >> 8, id & 0xff, 0];
  for (const f of filters) body.push(...str(f));
  return packet(0xa2, body);
}

// Parser turns a byte stream into packets: {type, flags, body}. A packet
// may span frames and a frame may hold several.
export class Parser {
  constructor(max = 1 << 20) {
    this.buf = new Uint8Array(0);
    this.max = max;
  }

  // push adds bytes and returns the whole packets they complete; it throws
  // on a packet that is larger than max or a malformed length.
  push(bytes) {
    if (this.buf.length) {
      const b = new Uint8Array(this.buf.length + bytes.length);
      b.set(this.buf); b.set(bytes, this.buf.length);
      bytes = b;
    }
    const out = [];
    let i = 0;
    for (;;) {
      if (bytes.length - i < 2) break;
      let len = 0; let mul = 1; let j = i + 1;
      for (;;) {
        if (j >= bytes.length) { len = -1; break; }
        const b = bytes[j++];
        len += (b & 0x7f) * mul;
        if (!(b & 0x80)) break;
        mul *= 128;
        if (mul > 128 ** 3) throw new MQTTError('malformed remaining length');
      }
      if (len < 0) break; // the length itself is not all here
      if (len > this.max) throw new MQTTError(`packet of ${len} bytes`);
      if (bytes.length - j < len) break;
      out.push({ type: bytes[i] >> 4, flags: bytes[i] & 0x0f, body: bytes.subarray(j, j + len) });
      i = j + len;
    }
    this.buf = bytes.slice(i);
    return out;
  }
}

// reader reads MQTT fields from a packet's body.
function reader(body) {
  let i = 0;
  const need = (n) => { if (i + n > body.length) throw new MQTTError('truncated packet'); };
  return {
    byte() { need(1); return body[i++]; },
    u16() { need(2); const v = (body[i] << 8) | body[i + 1]; i += 2; return v; },
    varint() {
      let v = 0; let mul = 1;
      for (let k = 0; k < 4; k++) {
        const b = this.byte();
        v += (b & 0x7f) * mul;
        if (!(b & 0x80)) return v;
        mul *= 128;
      }
      throw new MQTTError('malformed varint');
    },
    string() { const n = this.u16(); need(n); const s = dec.decode(body.subarray(i, i + n)); i += n; return s; },
    skip(n) { need(n); i += n; },
    rest() { return body.subarray(i); },
    left() { return body.length - i; },
  };
}

// parsePublish reads a PUBLISH: its topic, QoS, packet id and payload.
export function parsePublish(p) {
  const r = reader(p.body);
  const qos = (p.flags >> 1) & 3;
  if (qos === 3) throw new MQTTError('publish with QoS 3');
  const topic = r.string();
  const id = qos > 0 ? r.u16() : 0;
  r.skip(r.varint()); // properties: the page reads none
  return { topic, qos, id, payload: r.rest() };
}

// Lengths of MQTT 5 property values by identifier: a number of bytes, or
// 'v' (varint), 's' (string or binary), 'p' (string pair).
const PROP = { 0x01: 1, 0x02: 4, 0x03: 's', 0x08: 's', 0x09: 's', 0x0b: 'v', 0x11: 4, 0x12: 's', 0x13: 2, 0x15: 's',
  0x16: 's', 0x17: 1, 0x18: 4, 0x19: 1, 0x1a: 's', 0x1c: 's', 0x1f: 's', 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1,
  0x25: 1, 0x26: 'p', 0x27: 4, 0x28: 1, 0x29: 1, 0x2a: 1 };

// readProps reads a properties block at r and returns the values of the
// two-byte integer and string properties (by identifier); the others are
// skipped. It throws on an identifier MQTT 5 does not define.
function readProps(r) {
  const out = {};
  if (!r.left()) return out;
  const end = r.varint();
  if (end > r.left()) throw new MQTTError('truncated properties');
  const props = reader(r.rest().subarray(0, end));
  r.skip(end);
  while (props.left()) {
    const id = props.varint();
    const t = PROP[id];
    if (t === undefined) throw new MQTTError(`unknown property 0x${id.toString(16)}`);
    if (t === 2) out[id] = props.u16();
    else if (t === 's') out[id] = props.string();
    else if (t === 'v') props.varint();
    else if (t === 'p') { props.skip(props.u16()); props.skip(props.u16()); } else props.skip(t);
  }
  return out;
}

// connackProps reads a CONNACK's Server Keep Alive (0x13), which the
// client must then use instead of its own, and Receive Maximum (0x21), the
// QoS 1 publishes the server takes unacknowledged at a time; null when not
// given.
export function connackProps(p) {
  const r = reader(p.body);
  r.skip(2);
  const props = readProps(r);
  return { keepalive: props[0x13] ?? null, receiveMax: props[0x21] ?? null };
}

export function serverKeepalive(p) { return connackProps(p).keepalive; }

// parsePuback reads a PUBACK: its packet id, reason code (0 when left
// out) and reason string (0x1F; '' when none).
export function parsePuback(p) {
  const r = reader(p.body);
  const id = r.u16();
  const code = r.left() ? r.byte() : 0;
  const reason = readProps(r)[0x1f];
  return { id, code, reason: typeof reason === 'string' ? reason : '' };
}

// reasonOf is the reason code of a CONNACK, SUBACK's or UNSUBACK's first
// filter or DISCONNECT (0 when the packet has none).
function reasonOf(p) {
  const r = reader(p.body);
  switch (p.type) {
    case 2: r.byte(); return r.byte();
    case 9: case 11: r.u16(); r.skip(r.varint()); return r.left() ? r.byte() : 0x80;
    case 14: return r.left() ? r.byte() : 0;
    default: return 0;
  }
}

export class Client {
  // url is ws(s)://host/mqtt; options: clientId, username, password,
  // keepalive (s), connectTimeout (ms), maxQueue (QoS 1 publishes kept
  // unacknowledged; 256). WebSocket is injected for tests.
  constructor(url, options, { WebSocket: WS = globalThis.WebSocket, setTimeout: st, clearTimeout: ct, now } = {}) {
    this.url = url;
    this.options = { keepalive: 60, connectTimeout: 30000, maxQueue: 256, ...options };
    this.WS = WS;
    this.later = st || ((f, ms) => setTimeout(f, ms));
    this.cancel = ct || ((t) => clearTimeout(t));
    this.now = now || (() => Date.now());
    this.handlers = { connect: [], close: [], error: [], message: [], disconnect: [] };
    this.connected = false;
    this.nextId = 1;
    this.acks = new Map(); // packet id -> subscribe callback
    // QoS 1 publishes not yet acknowledged, oldest first: {topic, payload,
    // id (0: not sent on this connection), resolve, reject}. They outlive
    // a connection: each is sent again, in order, after the next CONNACK.
    this.queue = [];
    this.receiveMax = 65535;
    this.stream = { destroy: () => this.drop() };
    this.open();
  }

  on(ev, fn) { this.handlers[ev].push(fn); return this; }
  removeAllListeners(ev) { this.handlers[ev] = []; return this; }
  emit(ev, ...a) { for (const fn of [...this.handlers[ev]]) fn(...a); }

  open() {
    this.closed = false;
    this.parser = new Parser();
    const ws = new this.WS(this.url, 'mqtt');
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.send(connectPacket(this.options));
      this.armPing();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws || !(e.data instanceof ArrayBuffer)) return;
      try {
        for (const p of this.parser.push(new Uint8Array(e.data))) {
          if (this.ws !== ws) break; // a packet before this one closed the connection
          this.handle(p);
        }
        // Chrome wakes a hidden tab's chained timers once a minute, and the
        // broker cuts a client that is silent for 1.5 × keepalive; frames
        // are not throttled (a heartbeat comes every 5 s), so ping from here.
        if (this.ws === ws && this.connected) this.pingIfDue(false);
      } catch (err) {
        this.emit('error', err);
        this.drop();
      }
    };
    ws.onclose = () => { if (this.ws === ws) this.finish(); };
    ws.onerror = () => {}; // a close follows
    this.connackTimer = this.later(() => { if (!this.connected) this.drop(); }, this.options.connectTimeout);
  }

  handle(p) {
    switch (p.type) {
      case 2: { // CONNACK
        const code = reasonOf(p);
        this.cancel(this.connackTimer);
        if (code >= 0x80) {
          this.emit('error', new MQTTError(`connection refused: 0x${code.toString(16)}`, code));
          this.drop();
          return;
        }
        const { keepalive: ka, receiveMax } = connackProps(p);
        if (ka !== null) { this.options.keepalive = ka; this.armPing(); }
        this.receiveMax = receiveMax || 65535;
        this.connected = true;
        this.pingAt = this.now();
        this.pump(); // what the last connection left unacknowledged goes first
        this.emit('connect');
        return;
      }
      case 3: { // PUBLISH
        const m = parsePublish(p);
        if (m.qos === 1) this.send(new Uint8Array([0x40, 2, m.id >> 8, m.id & 0xff]));
        else if (m.qos === 2) throw new MQTTError('QoS 2 delivery to a QoS 0 subscriber');
        this.emit('message', m.topic, m.payload);
        return;
      }
      case 4: { // PUBACK
        const a = parsePuback(p);
        const i = this.queue.findIndex((m) => m.id === a.id);
        if (i < 0) return; // none of ours is out with that id: nothing to settle
        const [m] = this.queue.splice(i, 1);
        if (a.code < 0x80) {
          m.resolve(a.code);
        } else {
          const err = new MQTTError(`publish refused: 0x${a.code.toString(16)}${a.reason ? ' ' + a.reason : ''}`, a.code);
          err.reason = a.reason;
          m.reject(err);
        }
        this.pump();
        return;
      }
      case 9: // SUBACK
      case 11: { // UNSUBACK
        const id = (p.body[0] << 8) | p.body[1];
        const cb = this.acks.get(id);
        this.acks.delete(id);
        const code = reasonOf(p);
        const what = p.type === 9 ? 'subscription' : 'unsubscription';
        if (cb) cb(code >= 0x80 ? new MQTTError(`${what} refused: 0x${code.toString(16)}`, code) : null);
        return;
      }
      case 13: // PINGRESP
        this.pingOut = false;
        return;
      case 14: // DISCONNECT from the server: the socket closes next
        // Not an 'error': what the reason says about the credential is
        // for the next CONNACK to tell (so a session cut with 0x87 by an
        // admin, or ended with 0xA0 when its token ran out, reconnects and
        // hears then whether it may).
        this.emit('disconnect', reasonOf(p));
        this.drop();
        return;
      default:
        throw new MQTTError(`unexpected packet type ${p.type}`);
    }
  }

  // armPing is the keepalive's timer: every period it pings, or drops a
  // connection whose last ping went unanswered for a whole period.
  armPing() {
    this.cancel(this.pingTimer);
    const ka = this.options.keepalive;
    if (!ka) return;
    this.pingTimer = this.later(() => {
      if (this.closed) return;
      if (!this.pingIfDue(true)) return;
      this.armPing();
    }, ka * 1000);
  }

  // pingIfDue sends a PINGREQ when none is out and half a keepalive (from
  // a frame) or a whole one (from the timer) has passed since the last
  // ping or the CONNACK. It drops the connection, and says false, when a
  // ping has been out for a whole keepalive.
  pingIfDue(fromTimer) {
    const ka = this.options.keepalive * 1000;
    if (!ka) return true; // keepalive 0: no pings (MQTT 3.1.2.10)
    const since = this.now() - this.pingAt;
    if (this.pingOut) {
      if (since < ka) return true;
      this.drop();
      return false;
    }
    if (since < (fromTimer ? 0 : ka / 2)) return true;
    this.pingOut = true;
    this.pingAt = this.now();
    this.send(new Uint8Array([0xc0, 0]));
    return true;
  }

  send(bytes) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(bytes);
  }

  // newId is a packet id that no SUBSCRIBE or PUBLISH still waits on.
  newId() {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId % 65535 + 1;
      if (!this.acks.has(id) && !this.queue.some((m) => m.id === id)) return id;
    }
  }

  subscribe(filters, { qos = 0 } = {}, cb = () => {}) {
    const id = this.newId();
    this.acks.set(id, cb);
    this.send(subscribePacket(id, filters, qos));
  }

  // unsubscribe ends subscriptions; cb(err) hears the UNSUBACK (a filter
  // the session did not have is no error to the page: 0x11 is a success).
  unsubscribe(filters, cb = () => {}) {
    const id = this.newId();
    this.acks.set(id, cb);
    this.send(unsubscribePacket(id, filters));
  }

  // publish sends payload (a string) to topic. At QoS 1 the promise
  // resolves with the PUBACK's reason code, or rejects with an MQTTError
  // whose code and reason (the server's reason string) say why it was
  // refused; a publish made while disconnected waits for the next
  // connection. At QoS 0 it resolves once written, and rejects when there is
  // no connection to write it to. Beyond maxQueue unacknowledged publishes,
  // it rejects at once: a phone that stays offline must not fill memory.
  publish(topic, payload, { qos = 0 } = {}) {
    const body = typeof payload === 'string' ? enc.encode(payload) : payload;
    if (this.ended) return Promise.reject(new MQTTError('client ended'));
    if (qos === 0) {
      if (!this.connected) return Promise.reject(new MQTTError('not connected'));
      this.send(publishPacket(0, topic, body, 0));
      return Promise.resolve(0);
    }
    if (qos !== 1) return Promise.reject(new MQTTError(`QoS ${qos} is not supported`));
    if (this.queue.length >= this.options.maxQueue) return Promise.reject(new MQTTError('publish queue full'));
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, payload: body, id: 0, resolve, reject });
      this.pump();
    });
  }

  // queued is the number of QoS 1 publishes not yet acknowledged.
  get queued() { return this.queue.length; }

  // pump sends the queued publishes not yet sent on this connection, in
  // order, keeping no more out than the server's Receive Maximum.
  pump() {
    if (!this.connected) return;
    let out = this.queue.filter((m) => m.id).length;
    for (const m of this.queue) {
      if (out >= this.receiveMax) return;
      if (m.id) continue;
      m.id = this.newId();
      out++;
      this.send(publishPacket(m.id, m.topic, m.payload, 1));
    }
  }

  // drop ends the connection now; 'close' follows once.
  drop() {
    if (!this.ws) return;
    try { this.ws.close(); } catch { /* already closing */ }
    this.finish();
  }

  finish() {
    if (this.closed) return;
    this.closed = true;
    this.connected = false;
    this.pingOut = false;
    this.pingAt = 0;
    this.cancel(this.pingTimer);
    this.cancel(this.connackTimer);
    this.ws = null;
    for (const cb of this.acks.values()) cb(new MQTTError('connection closed'));
    this.acks.clear();
    // A clean start forgets the packet ids: the next connection sends
    // these again under new ones (a new session, so no DUP flag).
    for (const m of this.queue) m.id = 0;
    this.emit('close');
  }

  reconnect() {
    if (this.ws || this.ended) return;
    this.open();
  }

  // end says DISCONNECT and closes for good (MQTT.js's force flag is
  // accepted and means nothing here).
  end() {
    this.ended = true;
    if (this.ws) {
      this.send(new Uint8Array([0xe0, 0]));
      this.drop();
    }
    const q = this.queue;
    this.queue = [];
    for (const m of q) m.reject(new MQTTError('client ended'));
  }
}

export function connect(url, options, io) { return new Client(url, options, io); }
