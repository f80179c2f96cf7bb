// A route's day in events, for the route drawer: rescues, VTO offers and
// their answers, reassignments and its driver's presence.
//
// No DOM and no network here (the page passes its fetch in), so Node's
// own test runner drives it (timeline.test.js). Every value read from an
// event is text or checked; the drawer shows it as text only.
import { isObj } from './eventlog.js';
import { text } from './checks.js';

// TYPES are the events a timeline keeps; route:update and the rest are
// most of the log and say nothing a timeline shows.
export const TYPES = new Set(['rescue:alert', 'rescue:updated', 'vto:offer', 'vto:accepted', 'vto:declined',
  'vto:expired', 'vto:confirmed', 'route:reassigned', 'driver:presence']);

// entry is what the timeline of route routeId (driven by driverId) shows
// of envelope env: {seq, ts, kind, text}, or null when env is not about
// that route or driver.
export function entry(env, routeId, driverId) {
  if (!isObj(env) || !TYPES.has(env.type) || !isObj(env.payload)) return null;
  const p = env.payload;
  const ts = Date.parse(env.timestamp);
  const mine = (r, d) => (r !== '' && r === routeId) || (d !== '' && !!driverId && d === driverId);
  const out = (kind, t) => ({ seq: env.seq, ts: Number.isNaN(ts) ? 0 : ts, kind, text: t });
  switch (env.type) {
    case 'rescue:alert': {
      const sr = isObj(p.struggleRoute) ? p.struggleRoute : {};
      const rd = isObj(p.rescueDriver) ? p.rescueDriver : null;
      if (text(sr.routeId) === routeId) {
        const behind = typeof sr.behindSchedule === 'number' ? `${sr.behindSchedule} stops behind` : 'behind';
        return out('rescue', `Rescue raised: ${behind}; ` + (rd ? `${text(rd.driverName) || text(rd.driverId)} asked to help` : 'nobody free to help'));
      }
      if (rd && driverId && text(rd.driverId) === driverId) {
        return out('rescue', `Asked to rescue ${text(sr.routeCode) || text(sr.routeId)}`);
      }
      return null;
    }
    case 'rescue:updated':
      if (text(p.routeId) !== routeId) return null;
      return out('rescue', `Rescue ${text(p.state)}` + (text(p.by) ? ` by ${text(p.by)}` : ''));
    case 'vto:offer':
      if (!mine(text(p.routeId), text(p.driverId))) return null;
      return out('vto', 'VTO offered' + (text(p.reason) ? `: ${text(p.reason)}` : ''));
    case 'vto:accepted': case 'vto:declined': case 'vto:expired': case 'vto:confirmed':
      if (!mine(text(p.routeId), text(p.driverId))) return null;
      return out('vto', `VTO ${env.type.slice(4)}` + (text(p.by) ? ` by ${text(p.by)}` : ''));
    case 'route:reassigned': {
      const from = text(p.fromDriverId); const to = text(p.toDriverId);
      if (text(p.routeId) === routeId) return out('reassign', `Reassigned from ${from} to ${to}` + (text(p.by) ? ` by ${text(p.by)}` : ''));
      if (driverId && to === driverId) return out('reassign', `Given ${text(p.routeCode) || text(p.routeId)} (from ${from})`);
      if (driverId && from === driverId) return out('reassign', `${text(p.routeCode) || text(p.routeId)} moved to ${to}`);
      return null;
    }
    case 'driver:presence':
      if (!driverId || text(p.driverId) !== driverId) return null;
      return out('presence', `Driver ${text(p.state)}`);
    default:
      return null;
  }
}

// Journal keeps the events of TYPES the page has seen (live, or read back
// for today), by seq: an event read twice is kept once.
export class Journal {
  constructor(max = 5000) { this.max = max; this.bySeq = new Map(); this.from = null; }

  // add keeps env if a timeline could show it; says whether it was new.
  add(env) {
    if (!isObj(env) || !TYPES.has(env.type) || !Number.isSafeInteger(env.seq) || this.bySeq.has(env.seq)) return false;
    this.bySeq.set(env.seq, env);
    if (this.bySeq.size > this.max) this.bySeq.delete(Math.min(...this.bySeq.keys()));
    return true;
  }

  // entries is the timeline of a route and its driver since ms, oldest first.
  entries(routeId, driverId, since = 0) {
    const out = [];
    for (const env of this.bySeq.values()) {
      const e = entry(env, routeId, driverId);
      if (e && e.ts >= since) out.push(e);
    }
    return out.sort((a, b) => a.seq - b.seq);
  }
}

// firstSeqSince finds the seq of the first event at or after ms: a binary
// search over seqs by their events' times, with getEvents(after, limit)
// answering GET /api/v1/events. lastSeq is the newest seq known. Returns
// the `after` to read from (the seq just before it).
export async function firstSeqSince(getEvents, ms, lastSeq) {
  const at = async (after) => {
    const page = await getEvents(after, 1);
    const env = Array.isArray(page) ? page[0] : null;
    return isObj(env) && Number.isSafeInteger(env.seq) ? { seq: env.seq, ts: Date.parse(env.timestamp) } : null;
  };
  const first = await at(0);
  if (!first) return 0;
  // The whole log is of the day: from its oldest event (after 0 would do,
  // but a read that starts later, readSince's, must not start before the
  // oldest, which the retention may have pruned up to: a 410).
  if (!(first.ts < ms)) return first.seq - 1;
  // Invariant: the event at seq lo is before ms; hi is an `after` whose
  // next event is at or after ms (or none).
  let lo = first.seq; let hi = lastSeq;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const e = await at(mid - 1);
    if (!e) { hi = mid; continue; }
    if (e.ts < ms) lo = e.seq; else hi = mid;
  }
  return lo;
}

// readSince reads the events of TYPES after seq after (firstSeqSince's
// answer) up to lastSeq into journal. getTyped(after) answers GET
// /api/v1/events?after=…&types=…: {events, scannedTo}, the server reading
// through a bounded stretch of the log per request (a day's log is nearly
// all route updates, which a timeline does not show). It returns the seq
// read to: less than lastSeq when maxRequests ran out first, for the drawer
// to say so.
export async function readSince(getTyped, journal, after, lastSeq, { maxRequests = 100 } = {}) {
  let from = after;
  for (let i = 0; i < maxRequests && from < lastSeq; i++) {
    const res = await getTyped(from);
    if (!isObj(res) || !Array.isArray(res.events) || !Number.isSafeInteger(res.scannedTo)) break;
    for (const env of res.events) journal.add(env);
    if (res.scannedTo <= from) break; // the end of the log
    from = res.scannedTo;
  }
  return from;
}
