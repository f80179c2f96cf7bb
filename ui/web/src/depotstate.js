// One depot's picture, and how an event changes it: what the depot's
// dashboard (main.js) and the fleet page (fleet.js, one per depot) share.
//
// No DOM and no network here, so Node's own test runner drives it
// (depotstate.test.js). Every value from the network goes through the
// checks of checks.js: a route delta never adds a key of its own choosing.
import { isObj, validEnvelope } from './eventlog.js';
import { STATUS, isID, text, cleanRoute, cleanOffer } from './checks.js';

// newDepotState is an empty picture. The dashboard's own state object has
// the same maps (routes, rescues, offers, presence, devices), so both pages
// pass theirs to the functions below.
export function newDepotState(depot = '') {
  return {
    depot,
    routes: new Map(),   // routeId -> route status (cleanRoute)
    rescues: new Map(),  // rescueId -> rescue (open or acknowledged)
    offers: new Map(),   // vtoId -> offer (cleanOffer)
    presence: new Map(), // driverId -> {state, since}
    devices: new Map(),  // driverId -> device health
    lastSeq: 0,          // the depot seq of the last event applied (0: none known)
    events: 0,           // events applied
    dupes: 0,            // events ignored: seq not after lastSeq
    gaps: 0,             // events whose seq skipped past lastSeq + 1
    heartbeat: null,     // the last system:status payload
  };
}

const list = (v) => (Array.isArray(v) ? v.filter(isObj) : []);
const byId = (v) => new Map(Object.entries(isObj(v) ? v : {}).filter(([, x]) => isObj(x)));

// loadSnapshot replaces the maps of st with those of a snapshot s (GET
// /api/v1/state of a depot, or one depot of GET /api/v1/fleet).
export function loadSnapshot(st, s) {
  st.routes = new Map(list(s.routes).filter((r) => isID(r.routeId)).map((r) => [r.routeId, cleanRoute(r)]));
  st.rescues = new Map(list(s.rescues).filter((r) => isID(r.rescueId)).map((r) => [r.rescueId, r]));
  st.offers = new Map(list(s.offers).filter((o) => isID(o.vtoId)).map((o) => [o.vtoId, cleanOffer(o)]));
  st.presence = byId(s.presence);
  st.devices = byId(s.devices);
}

// applyEvent applies one envelope (already checked by validEnvelope) to st
// and says what changed, for the page to redraw: null when nothing did, or
// {kind, id} with kind 'route' (id: routeId), 'rescue' (a new alert when
// raised is set; its payload is raised), 'offer', 'driver' (id: driverId)
// or 'status' (the depot's heartbeat, payload in status).
export function applyEvent(st, env) {
  const p = env.payload;
  switch (env.type) {
    case 'route:update': {
      if (!isID(p.routeId)) return null;
      st.routes.set(p.routeId, cleanRoute(p, st.routes.get(p.routeId) || { routeId: p.routeId }));
      return { kind: 'route', id: p.routeId };
    }
    case 'rescue:alert': {
      if (!isID(p.rescueId)) return null;
      const sr = isObj(p.struggleRoute) ? p.struggleRoute : {};
      st.rescues.set(p.rescueId, { rescueId: p.rescueId, routeId: text(sr.routeId), state: 'open',
        seq: env.seq, alert: p, createdAt: text(env.timestamp) });
      return { kind: 'rescue', id: p.rescueId, raised: p };
    }
    case 'rescue:updated': {
      // The dashboard redraws its banner either way (as it always has).
      const r = isID(p.rescueId) ? st.rescues.get(p.rescueId) : undefined;
      if (r && p.state === 'resolved') st.rescues.delete(p.rescueId);
      else if (r) r.state = text(p.state);
      return { kind: 'rescue', id: text(p.rescueId) };
    }
    case 'vto:offer':
      if (!isID(p.vtoId)) return null;
      st.offers.set(p.vtoId, cleanOffer(p));
      return { kind: 'offer', id: p.vtoId };
    case 'vto:accepted': case 'vto:declined': case 'vto:expired': case 'vto:confirmed': {
      const o = isID(p.vtoId) ? st.offers.get(p.vtoId) : undefined;
      if (!o) return null;
      o.state = text(p.state);
      return { kind: 'offer', id: p.vtoId };
    }
    case 'driver:presence':
      if (!isID(p.driverId)) return null;
      st.presence.set(p.driverId, { state: text(p.state), since: text(p.since) });
      return { kind: 'driver', id: p.driverId };
    case 'driver:device':
      if (!isID(p.driverId)) return null;
      st.devices.set(p.driverId, p);
      return { kind: 'driver', id: p.driverId };
    case 'system:status':
      st.heartbeat = p;
      return { kind: 'status', status: p };
    default:
      return null;
  }
}

// admitSeq decides whether an event with depot seq seq follows what st has
// applied: 'dupe' (seq not after lastSeq: counted, not applied), or 'next'
// (lastSeq moves on; a seq past lastSeq + 1 is counted as a gap, unless
// nothing was known of the depot yet). 'bad' for a seq that is no seq.
export function admitSeq(st, seq) {
  if (!Number.isSafeInteger(seq) || seq <= 0) return 'bad';
  if (seq <= st.lastSeq) { st.dupes++; return 'dupe'; }
  if (st.lastSeq > 0 && seq !== st.lastSeq + 1) st.gaps++;
  st.lastSeq = seq;
  st.events++;
  return 'next';
}

// applyInOrder is admitSeq then applyEvent, for a stream that may repeat
// or skip a depot's events (the fleet's). It returns {admit, change}:
// admit as admitSeq says, change as applyEvent does (null for an event
// not applied, or of a type this page does not know: its seq still counts).
export function applyInOrder(st, env) {
  if (!isObj(env)) return { admit: 'bad', change: null };
  const admit = admitSeq(st, env.seq);
  if (admit !== 'next' || !validEnvelope(env)) return { admit, change: null };
  return { admit, change: applyEvent(st, env) };
}

// counts are the depot's routes by colour (UNKNOWN for any other).
export function counts(st) {
  const n = { GREEN: 0, YELLOW: 0, RED: 0, UNKNOWN: 0 };
  for (const r of st.routes.values()) n[STATUS.has(r.statusColor) ? r.statusColor : 'UNKNOWN']++;
  return n;
}

// openOffers counts the offers still waiting for an answer at now (ms):
// open, and not past their expiry (a vto:expired may be on its way).
export function openOffers(st, now) {
  let n = 0;
  for (const o of st.offers.values()) {
    const exp = Date.parse(o.expiresAt);
    if (o.state === 'open' && (Number.isNaN(exp) || exp > now)) n++;
  }
  return n;
}
