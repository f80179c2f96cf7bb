// Which routes the table and the map show: a find box (route code or
// driver name, any case, any part) and a filter by status, kept in the
// address beside the selected route (#route=R12&status=behind&q=ana), so a
// wall screen's reload keeps them (docs/workspace.md).
//
// No DOM here: Node's own test runner drives it (filter.test.js).
import { text, statusOf } from './checks.js';

// STATUS_WORDS name the table's statuses in the address and on the
// filter's buttons, in the table's order.
export const STATUS_WORDS = { rescue: 'RED', behind: 'YELLOW', 'on-time': 'GREEN' };
const WORD_OF = Object.fromEntries(Object.entries(STATUS_WORDS).map(([w, c]) => [c, w]));

// MAX_QUERY bounds what the find box matches (and the address keeps).
export const MAX_QUERY = 100;

// normQuery is what a find box's text matches with: trimmed, lower case,
// bounded.
export function normQuery(q) {
  return typeof q === 'string' ? q.trim().toLowerCase().slice(0, MAX_QUERY) : '';
}

// newFilter is a filter: q (normQuery's) and colours (a Set of RED,
// YELLOW, GREEN; empty: every status).
export function newFilter(q = '', colours = []) {
  return { q: normQuery(q), colours: new Set([...colours].filter((c) => c in WORD_OF)) };
}

// active says whether the filter hides anything at all.
export function active(f) { return f.q !== '' || f.colours.size > 0; }

// matches says whether route r shows under filter f: its status is one
// of f's (any, when none is chosen), and q is part of its code or its
// driver's name as the table shows them (the id when there is none).
export function matches(r, f) {
  if (f.colours.size > 0 && !f.colours.has(statusOf(r.statusColor))) return false;
  if (f.q === '') return true;
  const code = text(r.routeCode) || text(r.routeId);
  const name = text(r.driverName) || text(r.driverId);
  return code.toLowerCase().includes(f.q) || name.toLowerCase().includes(f.q);
}

// countText says how many routes show: "30 routes", or "12 of 30 routes"
// under a filter.
export function countText(shown, total, isActive) {
  const n = (k) => `${k} route${k === 1 ? '' : 's'}`;
  return isActive ? `${shown} of ${n(total)}` : n(total);
}

// ---- the address ----
// readHash reads #k=v&k=v into a Map (values decoded; a part that does not
// decode is dropped). Keys it does not know are kept for whoever does.
export function readHash(hash) {
  const out = new Map();
  const s = typeof hash === 'string' ? hash.replace(/^#/, '') : '';
  for (const part of s.split('&')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    try {
      const v = decodeURIComponent(part.slice(i + 1));
      if (v !== '') out.set(decodeURIComponent(part.slice(0, i)), v);
    } catch { /* a broken encoding is no value */ }
  }
  return out;
}

// writeHash is the address fragment of params ('' for none): route first,
// then the others in their order; empty values are left out.
export function writeHash(params) {
  const enc = (v) => encodeURIComponent(v).replace(/%2C/g, ',');
  const keys = [...params.keys()].sort((a, b) => (b === 'route') - (a === 'route'));
  const parts = keys.filter((k) => params.get(k)).map((k) => `${enc(k)}=${enc(params.get(k))}`);
  return parts.length ? '#' + parts.join('&') : '';
}

// withParams is hash with the given params set ('' or null: removed).
export function withParams(hash, set) {
  const p = readHash(hash);
  for (const [k, v] of Object.entries(set)) {
    if (v) p.set(k, v); else p.delete(k);
  }
  return writeHash(p);
}

// filterFromHash reads the filter of an address: status=behind,rescue and
// q=ana. Unknown statuses are ignored.
export function filterFromHash(hash) {
  const p = readHash(hash);
  const colours = (p.get('status') || '').split(',').map((w) => STATUS_WORDS[w]).filter(Boolean);
  return newFilter(p.get('q') || '', colours);
}

// statusParam is the address's word list of a filter's statuses, in the
// table's order ('' for none).
export function statusParam(f) {
  return Object.keys(STATUS_WORDS).filter((w) => f.colours.has(STATUS_WORDS[w])).join(',');
}

// hashWithFilter is hash with filter f's status and q (the route and any
// other part kept).
export function hashWithFilter(hash, f) {
  return withParams(hash, { status: statusParam(f), q: f.q });
}
