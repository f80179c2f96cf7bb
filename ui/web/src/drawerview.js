// What the route drawer shows, without the DOM: the route in the
// address, ages in words, and the keys that say when a part of the drawer
// must be drawn again. Node's own test runner drives it (drawerview.test.js).
import { ago } from './table.js';
import { showNum, text, statusOf } from './checks.js';
import { readHash } from './filter.js';

// words says how long ago ms was, in words: "just now", "7m ago"; — for
// no time.
export function words(ms, now) {
  if (!Number.isFinite(ms)) return '—';
  const a = ago(ms, now);
  return a === 'now' ? 'just now' : `${a} ago`;
}

// routeFromHash reads #route=ID (among the filter's parts, filter.js).
export function routeFromHash(hash) {
  return readHash(hash).get('route') || '';
}

// routeKey is everything the drawer shows of a route but its fix's age.
export function routeKey(r) {
  return [statusOf(r.statusColor), text(r.routeCode), text(r.routeId), text(r.driverName), text(r.driverId), text(r.performanceTier),
    showNum(r.completedStops), showNum(r.totalStops), showNum(r.completedPackages), showNum(r.totalPackages),
    showNum(r.behindSchedule), Number.isNaN(Date.parse(r.lastUpdated))].join('\u0001');
}

// deviceKey is everything the drawer shows of a driver's device and
// presence but the ages.
export function deviceKey(driverId, dev, pr) {
  const d = dev && typeof dev === 'object' ? dev : null;
  return [text(driverId), pr ? `${text(pr.state)} ${text(pr.since)}` : '-', d ? [showNum(d.batt), text(d.battState), showNum(d.acc),
    text(d.app), text(d.conn), Number.isNaN(Date.parse(d.lastFix))].join(' ') : '-'].join('\u0001');
}

// lastFix is when the driver's handheld last sent a fix: its device
// health's lastFix, or the route's position if newer (device health is
// sent when it changes, not with every fix).
export function lastFix(dev, r) {
  const a = Date.parse(dev.lastFix);
  const b = r ? Date.parse(r.lastUpdated) : NaN;
  return Number.isNaN(a) ? b : Number.isNaN(b) ? a : Math.max(a, b);
}

