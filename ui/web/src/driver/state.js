// The driver app's model: what the phone shows. The depot's answer to
// GET /api/v1/driver/state is the truth; inbox messages merge into it by
// vtoId, rescueId, or routeId and time, so a message the answer already
// holds, or one delivered twice, shows once. No DOM and no network here:
// node --test runs it (state.test.js).
//
// Every value comes from the network: it is read through the checks below
// (a string is a string, a count a finite number, a state one of a few
// words) before anything shows it.
import { isObj } from '../eventlog.js';
import { text, num, cleanRoute } from '../checks.js';

export const CRED_KEY = 'depot.driver';

// validID is what the depot accepts as a driver or depot id (bridge.ValidID):
// ids go into MQTT topics, where '+', '#' and '/' would change their sense.
export function validID(s) { return typeof s === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(s); }

// parsePairing reads the credential from the link's fragment,
// "#driver=<id>&token=<token>"; null when it holds none.
export function parsePairing(hash) {
  const q = new URLSearchParams(String(hash || '').replace(/^#/, ''));
  const driver = q.get('driver');
  const token = q.get('token');
  return validID(driver) && token && token.length <= 1024 ? { driver, token } : null;
}

export function loadCred(storage) {
  try {
    const c = JSON.parse(storage.getItem(CRED_KEY));
    if (isObj(c) && validID(c.driver) && typeof c.token === 'string' && c.token) return { driver: c.driver, token: c.token };
  } catch { /* none */ }
  return null;
}
export function saveCred(storage, c) { storage.setItem(CRED_KEY, JSON.stringify({ driver: c.driver, token: c.token })); }
export function forgetCred(storage) { storage.removeItem(CRED_KEY); }

// basicAuth is the Authorization header for the credential (UTF-8, as
// the depot reads it).
export function basicAuth({ driver, token }) {
  let s = '';
  for (const b of new TextEncoder().encode(`${driver}:${token}`)) s += String.fromCharCode(b);
  return 'Basic ' + btoa(s);
}

// clientId is "drv-<driverId>:app<12 random letters and digits>": the
// broker binds what precedes the ':' to the driver, and the random part
// keeps two phones of one driver from taking each other's session.
export function clientId(driver, randomBytes = (n) => crypto.getRandomValues(new Uint8Array(n))) {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return `drv-${driver}:app${[...randomBytes(12)].map((b) => abc[b % 36]).join('')}`;
}

export function topic(depot, driver, kind) { return `depot/${depot}/drivers/${driver}/${kind}`; }

// serverOffset is the depot's clock minus this phone's (ms), from the
// serverTime of an answer to a request sent at sentAt and answered at
// receivedAt (local ms): the answer was made half-way, give or take.
export function serverOffset(serverTime, sentAt, receivedAt) {
  return Number.isFinite(serverTime) ? serverTime - (sentAt + receivedAt) / 2 : 0;
}

// countdown is the time left until expiresAt (ISO, or ms) at serverNow
// (ms): whole seconds, rounded up so "00:00" means over, and as mm:ss.
export function countdown(expiresAt, serverNow) {
  const exp = typeof expiresAt === 'number' ? expiresAt : Date.parse(expiresAt);
  if (Number.isNaN(exp)) return { left: null, text: '--:--' };
  const left = Math.max(0, Math.ceil((exp - serverNow) / 1000));
  const two = (n) => String(n).padStart(2, '0');
  return { left, text: `${two(Math.floor(left / 60))}:${two(left % 60)}` };
}

// A state only moves forward: a late or repeated message never takes an
// offer back from accepted to open, nor a rescue from acknowledged to open.
const OFFER_RANK = { open: 0, accepted: 1, declined: 1, expired: 1, confirmed: 2 };
const RESCUE_RANK = { open: 0, acknowledged: 1, resolved: 2 };
function forward(rank, from, to) { return (rank[to] ?? -1) > (rank[from] ?? -1); }

function cleanOffer(o) {
  return { vtoId: o.vtoId, routeId: text(o.routeId), routeCode: text(o.routeCode), reason: text(o.reason),
    offeredAt: text(o.offeredAt), expiresAt: text(o.expiresAt), state: text(o.state) || 'open' };
}

// cleanAlert keeps what the rescue card shows of a rescue:alert payload.
function cleanAlert(a) {
  const sr = isObj(a.struggleRoute) ? a.struggleRoute : {};
  const tl = isObj(a.transferLocation) ? a.transferLocation : {};
  return {
    routeCode: text(sr.routeCode), driverName: text(sr.driverName), driverId: text(sr.driverId),
    behind: num(sr.behindSchedule),
    transfer: { lat: num(tl.lat), lng: num(tl.lng), address: text(tl.address) },
    eta: text(a.estimatedArrival),
  };
}

function cleanRescue(r) {
  return { rescueId: r.rescueId, routeId: text(r.routeId), state: text(r.state) || 'open',
    alert: cleanAlert(isObj(r.alert) ? r.alert : {}), createdAt: text(r.createdAt) };
}

function cleanReassignment(r) {
  return { routeId: r.routeId, routeCode: text(r.routeCode), fromDriverId: text(r.fromDriverId),
    toDriverId: text(r.toDriverId), at: text(r.at) };
}

// sameReassignment: the state answer's "at" and an inbox envelope's
// timestamp are the same moment, but may differ by their rounding (the
// envelope's is cut to the millisecond); one route is not moved between the
// same two drivers twice within seconds.
function sameReassignment(a, b) {
  if (a.routeId !== b.routeId || a.fromDriverId !== b.fromDriverId || a.toDriverId !== b.toDriverId) return false;
  const ta = Date.parse(a.at); const tb = Date.parse(b.at);
  return a.at === b.at || (Math.abs(ta - tb) < 5000);
}

const list = (v) => (Array.isArray(v) ? v.filter(isObj) : []);

// fromAnswer builds the model from the state answer; offset is the
// depot's clock minus the phone's. It throws on an answer that is not one.
export function fromAnswer(a, offset = 0) {
  if (!isObj(a) || !validID(a.depot) || !validID(a.driverId)) throw new Error('state: unexpected answer');
  const m = {
    depot: a.depot, driverId: a.driverId, driverName: text(a.driverName), offset,
    route: isObj(a.route) ? cleanRoute(a.route) : null,
    offers: new Map(), rescues: new Map(), reassignments: [],
  };
  for (const o of list(a.offers)) if (typeof o.vtoId === 'string' && o.vtoId) m.offers.set(o.vtoId, cleanOffer(o));
  for (const r of list(a.rescues)) if (typeof r.rescueId === 'string' && r.rescueId) m.rescues.set(r.rescueId, cleanRescue(r));
  for (const r of list(a.reassignments)) {
    if (typeof r.routeId !== 'string' || !r.routeId) continue;
    const c = cleanReassignment(r);
    if (!m.reassignments.some((x) => sameReassignment(x, c))) m.reassignments.push(c);
  }
  return m;
}

// mergeEnvelope applies one inbox envelope to the model. It says what
// changed ('offer', 'rescue', 'reassign'), or null for nothing.
export function mergeEnvelope(m, env) {
  if (!isObj(env) || !isObj(env.payload)) return null;
  const p = env.payload;
  const id = (v) => typeof v === 'string' && v !== '';
  switch (env.type) {
    case 'vto:offer':
      if (!id(p.vtoId) || m.offers.has(p.vtoId)) return null;
      m.offers.set(p.vtoId, cleanOffer({ ...p, state: 'open' }));
      return 'offer';
    case 'vto:accepted': case 'vto:declined': case 'vto:expired': case 'vto:confirmed': {
      const o = id(p.vtoId) && m.offers.get(p.vtoId);
      const to = env.type.slice(4);
      if (!o || !forward(OFFER_RANK, o.state, to)) return null;
      o.state = to;
      return 'offer';
    }
    case 'rescue:alert': {
      if (!id(p.rescueId) || m.rescues.has(p.rescueId)) return null;
      const sr = isObj(p.struggleRoute) ? p.struggleRoute : {};
      m.rescues.set(p.rescueId, cleanRescue({ rescueId: p.rescueId, routeId: sr.routeId, state: 'open', alert: p,
        createdAt: env.timestamp }));
      return 'rescue';
    }
    case 'rescue:updated': {
      const r = id(p.rescueId) && m.rescues.get(p.rescueId);
      if (!r || !forward(RESCUE_RANK, r.state, p.state)) return null;
      r.state = p.state;
      return 'rescue';
    }
    case 'route:reassigned': {
      if (!id(p.routeId)) return null;
      const c = cleanReassignment({ ...p, at: env.timestamp });
      if (m.reassignments.some((x) => sameReassignment(x, c))) return null;
      m.reassignments.push(c);
      return 'reassign';
    }
    default:
      return null;
  }
}

// answeredEnvelope is what a reply the depot acknowledged (its PUBACK)
// did: the depot takes a reply before it acknowledges it, so the phone may
// show the outcome before the next state answer says so.
export function answeredEnvelope(ref, action) {
  switch (action) {
    case 'accept': return { type: 'vto:accepted', payload: { vtoId: ref } };
    case 'decline': return { type: 'vto:declined', payload: { vtoId: ref } };
    case 'ack': return { type: 'rescue:updated', payload: { rescueId: ref, state: 'acknowledged' } };
    default: return null;
  }
}

// outcome is the state an answer leads to.
export const OUTCOME = { accept: 'accepted', decline: 'declined', ack: 'acknowledged' };

// reached says whether an item in state is at or beyond where the answer
// action leads: an accepted offer may since have been confirmed, an
// acknowledged rescue resolved. A declined, expired or open offer is not
// where an accept leads, whatever its rank.
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const REACHED = { accept: ['accepted', 'confirmed'], decline: ['declined'], ack: ['acknowledged', 'resolved'] };
export function reached(action, state) { return has(REACHED, action) && REACHED[action].includes(state); }

// The depot's refusals of a reply (broker.CodeRefused with the reason;
// cmd/depot/ingest.go): one it turned down because the item was no longer
// open is a conflict, "conflict: offer … is already accepted".
export const CODE_REFUSED = 0x83;

// final says whether err is the depot's refusal of the answer itself,
// which sending it again cannot change; not the phone's own failure (no
// code: the client ended, its queue is full) nor the depot's of the
// moment: 0x80 (it could not store it), 0x89 (busy), 0x96 and 0x97 (this
// handheld's budget).
const TRANSIENT = [0x80, 0x89, 0x96, 0x97];
export function final(err) {
  return !!err && typeof err.code === 'number' && err.code >= 0x80 && !TRANSIENT.includes(err.code);
}
export function isConflict(err) {
  if (!err || err.code !== CODE_REFUSED) return false;
  return !err.reason || /^conflict\b/i.test(String(err.reason));
}

// Pending keeps the driver's answers the depot has not acknowledged yet,
// {ref, action, at (local ms)}, in storage under the driver's own key, so
// that a reload or a killed tab loses none: the app publishes them again
// after its first connection. The depot refuses a second one with a
// conflict, so sending one again is safe. Entries older than the state
// answer's 12 hours are dropped: nothing they answered is shown any more.
export const pendingKey = (driver) => `depot.driver.pending.${driver}`;
export const PENDING_MAX_AGE = 12 * 3600 * 1000;
const PENDING_MAX = 50;

export class Pending {
  constructor(storage, driver, now = Date.now()) {
    this.storage = storage;
    this.key = pendingKey(driver);
    this.list = [];
    let raw = null;
    try { raw = JSON.parse(storage.getItem(this.key)); } catch { /* none */ }
    for (const p of Array.isArray(raw) ? raw : []) {
      if (!isObj(p) || typeof p.ref !== 'string' || !p.ref || p.ref.length > 200 || !has(OUTCOME, p.action)) continue;
      if (!Number.isFinite(p.at) || now - p.at > PENDING_MAX_AGE) continue;
      this.list = this.list.filter((q) => q.ref !== p.ref);
      this.list.push({ ref: p.ref, action: p.action, at: p.at });
    }
    this.list = this.list.slice(-PENDING_MAX);
  }

  all() { return this.list.map((p) => ({ ...p })); }

  // add keeps p, in place of an earlier answer to the same ref.
  add(p) {
    this.list = this.list.filter((q) => q.ref !== p.ref);
    this.list.push({ ref: p.ref, action: p.action, at: p.at });
    this.list = this.list.slice(-PENDING_MAX);
    this.save();
  }

  remove(ref) {
    const n = this.list.length;
    this.list = this.list.filter((q) => q.ref !== ref);
    if (this.list.length !== n) this.save();
  }

  save() {
    try {
      if (this.list.length) this.storage.setItem(this.key, JSON.stringify(this.list));
      else this.storage.removeItem(this.key);
    } catch { /* storage full or refused: the answers still go from memory */ }
  }
}
export function forgetPending(storage, driver) { storage.removeItem(pendingKey(driver)); }

// The last state answer is kept per driver (answer, as the depot sent it,
// and the local times its request left and it came), for restore: a
// reload without signal does not claim there is nothing.
export const stateKey = (driver) => `depot.driver.state.${driver}`;

export function saveState(storage, driver, { answer, sentAt, receivedAt }) {
  try {
    storage.setItem(stateKey(driver), JSON.stringify({ answer, sentAt, receivedAt }));
  } catch { /* storage full or refused: the next reload waits for the depot */ }
}

// loadState is the kept answer of driver, or null; one that is not an
// answer for driver (fromAnswer would refuse it) is none.
export function loadState(storage, driver) {
  let s;
  try { s = JSON.parse(storage.getItem(stateKey(driver))); } catch { return null; }
  if (!isObj(s) || !isObj(s.answer) || s.answer.driverId !== driver) return null;
  if (!Number.isFinite(s.sentAt) || !Number.isFinite(s.receivedAt)) return null;
  try { fromAnswer(s.answer); } catch { return null; }
  return { answer: s.answer, sentAt: s.sentAt, receivedAt: s.receivedAt };
}
export function forgetState(storage, driver) { storage.removeItem(stateKey(driver)); }

// Store holds the model and the inbox messages that came after the last
// state request left, so that an answer made before them does not drop
// them: each new answer is the truth, with those merged on top again.
export class Store {
  constructor(max = 200) {
    this.m = null;
    this.recent = []; // {env, at}: at is when it came (local ms)
    this.appliedAt = -Infinity; // when the request of the answer in m left
    this.asOf = null; // when the answer in m came (local ms), while it is one kept from before this page
    this.max = max;
  }

  // restore shows a state answer kept from an earlier page (loadState)
  // until the depot answers this one: a phone reloaded without signal
  // still shows the route and the messages, as of when they came. Any
  // fresh answer replaces it, whatever the clocks say. False when there is
  // a model already, or saved is not an answer.
  restore(saved) {
    if (this.m || !saved) return false;
    try {
      this.answer(saved.answer, saved.sentAt, saved.receivedAt);
    } catch {
      return false;
    }
    this.asOf = saved.receivedAt;
    this.appliedAt = -Infinity;
    return true;
  }

  // answer takes the state answer to a request sent at sentAt and answered
  // at receivedAt (local ms). An answer to a request older than the one
  // shown is ignored (false): two requests may cross. Throws on a bad answer.
  answer(a, sentAt, receivedAt) {
    if (sentAt < this.appliedAt) return false;
    const m = fromAnswer(a, serverOffset(isObj(a) ? a.serverTime : NaN, sentAt, receivedAt));
    this.recent = this.recent.filter((r) => r.at >= sentAt);
    for (const r of this.recent) mergeEnvelope(m, r.env);
    this.m = m;
    this.appliedAt = sentAt;
    this.asOf = null;
    return true;
  }

  // inbox takes one inbox envelope that came at now (local ms); it says
  // what changed, as mergeEnvelope does.
  inbox(env, now) {
    this.recent.push({ env, at: now });
    if (this.recent.length > this.max) this.recent.shift();
    return this.m ? mergeEnvelope(this.m, env) : null;
  }

  serverNow(now) { return now + (this.m ? this.m.offset : 0); }

  // items is the inbox as shown, newest first.
  items() {
    const m = this.m;
    if (!m) return [];
    const t = (s) => Date.parse(s) || 0;
    const out = [
      ...[...m.offers.values()].map((o) => ({ kind: 'offer', id: o.vtoId, at: t(o.offeredAt), item: o })),
      ...[...m.rescues.values()].map((r) => ({ kind: 'rescue', id: r.rescueId, at: t(r.createdAt), item: r })),
      ...m.reassignments.map((r) => ({ kind: 'reassign', id: `${r.routeId}@${r.at}`, at: t(r.at), item: r })),
    ];
    return out.sort((a, b) => b.at - a.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
