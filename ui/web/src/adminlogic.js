// The admin page's logic without the DOM (admin.js draws): formatting
// sizes, ages and durations, checking the forms before they go, deciding
// which actions a user's row offers, and joining the device credentials
// with what the dashboard knows of each handheld. Every value from the
// network is read through checks.js: a name is a string, a count a number.
import { has, num, text } from './checks.js';

export const MIN_PASSWORD = 8;   // ui/auth MinPasswordLen
export const MAX_PASSWORD = 72;  // bcrypt's limit
export const ROLES = ['dispatcher', 'admin'];
const ID = /^[A-Za-z0-9._-]{1,64}$/; // bridge.ValidID

// formatBytes is a size in IEC units: "512 B", "1.5 KiB", "12.3 MiB".
export function formatBytes(n) {
  n = num(n);
  if (n === null || n < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

// formatDuration is a span in seconds, to its two largest units.
export function formatDuration(s) {
  s = num(s);
  if (s === null || s < 0) return '—';
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return h ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m ? `${h} h ${m} min` : `${h} h`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

// formatAge is how long ago an ISO time was at now (ms): "just now",
// "5 min ago"; "never" for a time that is missing or zero.
export function formatAge(iso, now) {
  const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
  if (Number.isNaN(t) || t <= 0) return 'never';
  const s = (now - t) / 1000;
  if (s < 10) return 'just now';
  return `${formatDuration(s)} ago`;
}

// formatTime is an ISO time as the browser's local date and time, or —.
export function formatTime(iso) {
  const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
  if (Number.isNaN(t) || t <= 0) return '—';
  return new Date(t).toLocaleString();
}

export function checkPassword(p) {
  if (typeof p !== 'string' || p.length < MIN_PASSWORD || p.length > MAX_PASSWORD) {
    return `The password must be ${MIN_PASSWORD} to ${MAX_PASSWORD} characters.`;
  }
  return null;
}

// checkNewUser is what is wrong with the add-a-user form, or null.
export function checkNewUser({ username, role, password }) {
  if (!ID.test(username || '')) return 'The username must be 1 to 64 letters, digits, “-”, “_” or “.”.';
  if (!ROLES.includes(role)) return 'The role must be dispatcher or admin.';
  return checkPassword(password);
}

// checkNewDevice is what is wrong with the provision form, or null.
export function checkNewDevice({ driverId, name }) {
  if (!ID.test(driverId || '')) return 'The driver id must be 1 to 64 letters, digits, “-”, “_” or “.”.';
  if (typeof name === 'string' && name.length > 128) return 'The name must be at most 128 characters.';
  return null;
}

// cleanUsers keeps the well-formed entries of GET /users.
export function cleanUsers(list) {
  if (!Array.isArray(list)) return [];
  return list.filter((u) => u && typeof u === 'object' && ID.test(text(u.username)) && ROLES.includes(u.role))
    .map((u) => ({ username: u.username, role: u.role, disabled: u.disabled === true, created: text(u.created) }));
}

// enabledAdmins counts the admins who can sign in.
export function enabledAdmins(users) {
  return users.filter((u) => u.role === 'admin' && !u.disabled).length;
}

// userActions is what a user's row offers the signed-in admin me: each
// action allowed (true) or why not (a string), as the API rules say (an
// admin cannot delete, demote or disable herself; the last enabled admin
// stays one).
export function userActions(u, me, users) {
  const self = u.username === me;
  const last = u.role === 'admin' && !u.disabled && enabledAdmins(users) <= 1;
  const why = (verb) => (self ? `You cannot ${verb} yourself.` : last ? `The last admin cannot be ${verb === 'delete' ? 'deleted' : verb + 'd'}.` : true);
  return {
    role: u.role === 'admin' ? why('demote') : true,
    disable: u.disabled ? true : why('disable'),
    remove: why('delete'),
    password: true,
  };
}

const APPS = { owntracks: 'OwnTracks', traccar: 'Traccar Client', driverapp: 'driver app', other: 'other app' };

// battery is a device health's battery as text ("85 % charging") and
// whether it is low (under 20 % and not charging); '—' when unknown.
export function battery(dev) {
  const b = dev ? num(dev.batt) : null;
  if (b === null || b <= 0) return { text: '—', low: false };
  const st = dev.battState === 'charging' || dev.battState === 'full' ? dev.battState : '';
  return { text: `${Math.round(b)} %` + (st ? ` ${st}` : ''), low: b < 20 && !st };
}

// appName is the handheld app's name, or —.
export function appName(dev) {
  return dev && typeof dev.app === 'string' && has(APPS, dev.app) ? APPS[dev.app] : '—';
}

// joinDevices puts each credential (GET /devices) beside the device
// health and presence of GET /state (either may be missing), sorted by
// driver id.
export function joinDevices(creds, state) {
  const devs = state && typeof state.devices === 'object' && state.devices ? state.devices : {};
  const pres = state && typeof state.presence === 'object' && state.presence ? state.presence : {};
  if (!Array.isArray(creds)) return [];
  return creds.filter((d) => d && typeof d === 'object' && ID.test(text(d.driverId))).map((d) => {
    const h = has(devs, d.driverId) && devs[d.driverId] && typeof devs[d.driverId] === 'object' ? devs[d.driverId] : null;
    const p = has(pres, d.driverId) && pres[d.driverId] && typeof pres[d.driverId] === 'object' ? pres[d.driverId] : null;
    return {
      driverId: d.driverId, name: text(d.name), created: text(d.created),
      lastSeen: h ? text(h.lastFix) : '', app: appName(h), battery: battery(h),
      presence: p && typeof p.state === 'string' ? p.state : 'unknown',
    };
  }).sort((a, b) => (a.driverId < b.driverId ? -1 : a.driverId > b.driverId ? 1 : 0));
}

// cleanBackups keeps the well-formed backups of the box summary, newest first.
export function cleanBackups(box) {
  const l = box && box.backups && Array.isArray(box.backups.list) ? box.backups.list : [];
  return l.filter((b) => b && typeof b.file === 'string' && !Number.isNaN(Date.parse(b.at)))
    .map((b) => ({ file: b.file, at: b.at, bytes: num(b.bytes) }))
    .sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}

// feedSummary is the route feed's state in words, and whether it is bad.
export function feedSummary(f) {
  if (!f || typeof f !== 'object') return { text: 'unknown', bad: true };
  if (f.ok === true) return { text: `ok (${num(f.routes) ?? 0} routes${f.source ? ', ' + text(f.source) : ''})`, bad: false };
  return { text: `DOWN${f.error ? ': ' + text(f.error) : ''}`, bad: true };
}
