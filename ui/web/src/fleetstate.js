// The fleet's picture (the fleet page of `depot hq`, docs/fleet.md): every
// depot's state (depotstate.js) from GET /api/v1/fleet, which is consistent
// with a stream sequence, then every message of the stream after it, from
// SSE or polling. Each message is {"depot", "event": <depot envelope>} with
// its stream sequence as id.
//
// Two orders are kept. The stream's: lastId only grows, and a message at or
// before it was seen already (an SSE stream and a poll that overlapped, a
// stream resumed from Last-Event-ID). Each depot's: an event whose depot
// seq is not after the last one applied is a duplicate, ignored; one that
// skips past the next is applied and counted as a gap.
//
// No DOM and no network here: Node's own test runner drives this module
// (fleetstate.test.js).
import { isObj } from './eventlog.js';
import { newDepotState, loadSnapshot, applyInOrder, counts, openOffers } from './depotstate.js';

export const STALE_MS = 60000;   // a depot not heard from for this long: its uplink is down
export const BEHIND_MS = 30000;  // newest event this much older than when it was heard: a backlog draining
export const MAX_ID = 200;       // a depot id longer than this is no depot id

export function isDepotID(v) { return typeof v === 'string' && v !== '' && v.length <= MAX_ID; }

const time = (v) => { const t = typeof v === 'string' ? Date.parse(v) : NaN; return Number.isNaN(t) ? 0 : t; };

export class Fleet {
  constructor() {
    this.depots = new Map(); // depot id -> depot state (newDepotState, with lastHeard and lastEventAt in ms)
    this.lastId = 0;         // stream sequence of the last message taken (or of the snapshot)
    this.synced = false;     // a snapshot was loaded
    this.events = 0;         // events applied, every depot
    this.dupes = 0;          // events ignored: a depot seq already applied
    this.gaps = 0;           // events that skipped a depot seq
    this.replays = 0;        // messages ignored: a stream sequence already taken
    this.dropped = 0;        // messages that are not a depot's event
    this.lastDelay = null;   // ms from the newest event's timestamp to its arrival here
    this.instance = '';
    this.loads = 0;          // snapshots loaded
  }

  // load replaces the picture with a snapshot (GET /api/v1/fleet). It
  // throws on an answer that is not one.
  load(s) {
    if (!isObj(s) || !Number.isSafeInteger(s.seq) || s.seq < 0 || !Array.isArray(s.depots)) throw new Error('fleet: unexpected answer');
    const depots = new Map();
    for (const d of s.depots) {
      if (!isObj(d) || !isDepotID(d.depot) || depots.has(d.depot)) continue;
      const st = this.newDepot(d.depot);
      loadSnapshot(st, d);
      st.lastSeq = Number.isSafeInteger(d.lastSeq) && d.lastSeq > 0 ? d.lastSeq : 0;
      st.lastHeard = time(d.lastHeard);
      st.lastEventAt = time(d.lastEventAt);
      depots.set(d.depot, st);
    }
    this.depots = depots;
    this.lastId = s.seq;
    this.synced = true;
    this.instance = typeof s.instance === 'string' ? s.instance : '';
    this.loads++;
  }

  newDepot(id) {
    return Object.assign(newDepotState(id), { lastHeard: 0, lastEventAt: 0 });
  }

  // take applies one message of the stream with stream sequence id, heard
  // at now (ms, the server's clock). It returns null when the message was
  // seen already or is not a depot's event; else {depot, admit, change}:
  // the depot's state, 'next' or 'dupe' (depotstate.admitSeq), and what
  // changed (depotstate.applyEvent; null for nothing shown).
  take(id, msg, now) {
    if (!Number.isSafeInteger(id) || id <= 0) { this.dropped++; return null; }
    if (id <= this.lastId) { this.replays++; return null; }
    this.lastId = id;
    if (!isObj(msg) || !isDepotID(msg.depot) || !isObj(msg.event)) { this.dropped++; return null; }
    let d = this.depots.get(msg.depot);
    const fresh = !d;
    if (fresh) d = this.newDepot(msg.depot);
    const gaps = d.gaps;
    const { admit, change } = applyInOrder(d, msg.event);
    if (admit === 'bad') { this.dropped++; return null; }
    if (fresh) this.depots.set(msg.depot, d); // a depot that joined the fleet since the snapshot
    if (admit === 'dupe') { this.dupes++; return { depot: d, admit, change: null }; }
    this.events++;
    this.gaps += d.gaps - gaps;
    // When the stream took it (hq's "at"), not when this page read it: a
    // replay after a reconnect is not news of the depot.
    d.lastHeard = Math.max(d.lastHeard, Math.min(time(msg.at) || now, now));
    const at = time(msg.event.timestamp);
    if (at) {
      d.lastEventAt = Math.max(d.lastEventAt, at);
      this.lastDelay = Math.max(0, now - at);
    }
    return { depot: d, admit, change };
  }

  // skipTo moves lastId on to a sequence the server says it has covered
  // (a poll's "last": the stream also holds messages that are not events).
  skipTo(id) {
    if (Number.isSafeInteger(id) && id > this.lastId) this.lastId = id;
  }
}

// health is what the overview shows of depot d at now (ms, the server's
// clock): its routes by colour, open rescues and offers, how long since it
// was heard, whether it is stale (its uplink down) or catching up (the
// events arriving now are old: a backlog draining), and by how much.
export function health(d, now) {
  const heard = d.lastHeard > 0 ? Math.max(0, now - d.lastHeard) : null;
  const stale = heard === null || heard > STALE_MS;
  const lag = d.lastHeard > 0 && d.lastEventAt > 0 ? Math.max(0, d.lastHeard - d.lastEventAt) : 0;
  return {
    counts: counts(d),
    routes: d.routes.size,
    rescues: d.rescues.size,
    offers: openOffers(d, now),
    heard,
    stale,
    catchingUp: !stale && lag > BEHIND_MS,
    lag,
  };
}

// worstFirst orders depots for the overview: routes in rescue and open
// rescues first, then depots gone silent, then routes behind, then depots
// catching up, then by id. It returns [depot, health] pairs.
export function worstFirst(depots, now) {
  const rows = [...depots].map((d) => [d, health(d, now)]);
  const bad = (h) => h.counts.RED + h.rescues;
  return rows.sort(([a, x], [b, y]) =>
    bad(y) - bad(x) ||
    Number(y.stale) - Number(x.stale) ||
    y.counts.YELLOW - x.counts.YELLOW ||
    Number(y.catchingUp) - Number(x.catchingUp) ||
    (a.depot < b.depot ? -1 : a.depot > b.depot ? 1 : 0));
}

// totals adds up the depots' health for the page's header.
export function totals(rows) {
  const t = { GREEN: 0, YELLOW: 0, RED: 0, UNKNOWN: 0, routes: 0, rescues: 0, offers: 0, stale: 0, catchingUp: 0, depots: rows.length };
  for (const [, h] of rows) {
    for (const c of ['GREEN', 'YELLOW', 'RED', 'UNKNOWN']) t[c] += h.counts[c];
    t.routes += h.routes; t.rescues += h.rescues; t.offers += h.offers;
    if (h.stale) t.stale++;
    if (h.catchingUp) t.catchingUp++;
  }
  return t;
}
