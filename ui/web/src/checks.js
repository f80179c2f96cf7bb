// What the network may say, checked: every value from the network is
// read through these before the page shows it (a colour is one of three
// words, a count a finite number, a name a string), and a delta never adds
// a key of its own choosing.
export const STATUS = new Set(['RED', 'YELLOW', 'GREEN']);
export const OFFER_STATES = new Set(['open', 'accepted', 'declined', 'expired', 'confirmed']);
const ROUTE_TEXT = ['routeId', 'routeCode', 'driverId', 'driverName', 'performanceTier', 'lastUpdated'];
const ROUTE_NUM = ['completedStops', 'totalStops', 'completedPackages', 'totalPackages', 'currentLat', 'currentLng', 'behindSchedule'];
export const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

export function isID(v) { return typeof v === 'string' && v !== ''; }
// num is a finite number or null (shown as —).
export function num(v) { return typeof v === 'number' && Number.isFinite(v) ? v : null; }
export function showNum(v) { const n = num(v); return n == null ? '—' : String(n); }
// text is what a name or id shows: a string, else nothing.
export function text(v) { return typeof v === 'string' ? v : ''; }
// statusOf is a route's colour, or UNKNOWN (neutral) for anything else.
export function statusOf(c) { return STATUS.has(c) ? c : 'UNKNOWN'; }

// cleanRoute copies only the route fields the page knows, each of its type
// (a wrong type becomes null), into into: a delta never adds a key of its
// own choosing, such as __proto__.
export function cleanRoute(p, into = {}) {
  for (const k of ROUTE_TEXT) if (has(p, k)) into[k] = typeof p[k] === 'string' ? p[k] : null;
  for (const k of ROUTE_NUM) if (has(p, k)) into[k] = num(p[k]);
  if (has(p, 'statusColor')) into.statusColor = STATUS.has(p.statusColor) ? p.statusColor : null;
  return into;
}

export function cleanOffer(o) {
  return { vtoId: o.vtoId, routeCode: text(o.routeCode), driverName: text(o.driverName), reason: text(o.reason),
    state: text(o.state), offeredAt: text(o.offeredAt), expiresAt: text(o.expiresAt) };
}

// pushSummary is the status bar's word on push (the heartbeat's push
// health): null when push is off; bad when messages wait or targets fail.
export function pushSummary(p) {
  if (p === null || typeof p !== 'object' || !Array.isArray(p.enabled) || p.enabled.length === 0) return null;
  const queued = num(p.queued) ?? 0;
  const failing = num(p.failingTargets) ?? 0;
  const parts = [];
  if (queued) parts.push(`${queued} queued`);
  if (failing) parts.push(`${failing} failing`);
  const last = text(p.lastSuccess);
  return {
    text: parts.length ? parts.join(' · ') : 'ok',
    title: `push (${p.enabled.filter((k) => typeof k === 'string').join(', ')}): last delivered ${last || 'never'}; ` +
      `${showNum(p.targets)} targets; sent ${showNum(p.sent)}, taken live ${showNum(p.live)}, expired ${showNum(p.expired)}`,
    bad: parts.length > 0,
  };
}

// upstreamSummary is the status bar's word on the fleet link: null when
// there is none; bad when down or behind.
export function upstreamSummary(u) {
  if (u === null || typeof u !== 'object') return null;
  const behind = num(u.behind) ?? 0;
  const up = u.connected === true;
  const text = !up ? 'DOWN' : behind > 0 ? `${behind} behind` : 'ok';
  return { text, bad: !up || behind > 100, title: `fleet stream: last acknowledged ${typeof u.lastAck === 'string' ? u.lastAck : 'never'}` +
    (typeof u.error === 'string' && u.error ? `; ${u.error}` : '') };
}
