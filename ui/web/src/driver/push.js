// Web Push for the driver app: the phone is woken for offers and rescues
// while the app is closed. No DOM here: node --test runs it (push.test.js);
// the browser's objects and the network are passed in. The service worker
// (sw.js) uses notification and clickUrl; the page (driver.js) the rest.
//
//   GET    /api/v1/push/vapid     (no auth) {"publicKey"}; 404: Web Push is off
//   POST   /api/v1/push/register  (Basic) {"kind":"webpush","subscription"} → 201
//   DELETE /api/v1/push/register  (Basic) {"kind":"webpush","subscription":{"endpoint"}} → 204
//
// A push's payload: {"id","title","body","data":{"type","ref","seq","driverId","url"},"expires"}.
// Nothing in it becomes markup, nor a URL: the notification shows title
// and body as text, and a click opens the app at a fragment made here
// from a ref of a known shape.
import { isObj } from '../eventlog.js';
import { validID, basicAuth } from './state.js';

export const VAPID_URL = '../api/v1/push/vapid';
export const REGISTER_URL = '../api/v1/push/register';

// The refs and the answers a notification, or a fragment, may carry.
export const validRef = (s) => typeof s === 'string' && /^[A-Za-z0-9._:-]{1,80}$/.test(s);
export const ACTIONS = ['accept', 'decline', 'ack'];
const TYPES = ['vto:offer', 'rescue:alert', 'route:reassigned'];

const line = (v, max) => (typeof v === 'string' ? v.replace(/\s+/g, ' ').trim().slice(0, max) : '');

// notification maps a push's payload (already parsed) to the arguments
// of showNotification: {title, options}, or null for a payload to drop
// (not one, or past its expires at now, ms). maxActions is how many
// action buttons the browser shows (Notification.maxActions; 0: none).
export function notification(p, now, maxActions = 0) {
  if (!isObj(p)) return null;
  const exp = typeof p.expires === 'string' ? Date.parse(p.expires) : NaN;
  if (!Number.isNaN(exp) && exp <= now) return null;
  const d = isObj(p.data) ? p.data : {};
  const type = TYPES.includes(d.type) ? d.type : '';
  const ref = validRef(d.ref) ? d.ref : '';
  const data = { type, ref, seq: line(d.seq, 20), driverId: validID(d.driverId) ? d.driverId : '' };
  const options = { body: line(p.body, 300), data, timestamp: now };
  if (ref) options.tag = ref; // a newer push of the same offer or rescue replaces the older one
  if (type === 'rescue:alert') options.requireInteraction = true;
  if (type === 'vto:offer' && ref && maxActions >= 2) {
    options.actions = [{ action: 'accept', title: 'Accept' }, { action: 'decline', title: 'Decline' }];
  }
  return { title: line(p.title, 120) || 'Depot', options };
}

// clickUrl is where a click on a notification (its data; action: the
// button's, '' for the notification itself) opens the app, relative to
// the worker's scope: '#answer=<action>:<ref>', '#msg=<ref>', or '' for
// the app as it is.
// ANSWER_CACHE is where the service worker leaves proof that an answer in
// #answer=… came from a notification's button: only script of this origin
// can write there, so a link someone sends the driver cannot answer for
// them (the page then only shows the card).
export const ANSWER_CACHE = 'depot-answers';
export function answerKey(scope, action, ref) { return `${scope}__answer/${action}/${ref}`; }

export function clickUrl(action, data) {
  const ref = isObj(data) && validRef(data.ref) ? data.ref : '';
  if (!ref) return '';
  return ACTIONS.includes(action) ? `#answer=${action}:${ref}` : `#msg=${ref}`;
}

// parseFragment reads a fragment clickUrl made: {answer: {action, ref}},
// {msg: ref}, {bad: true} for one of those keys with a value not of the
// shapes above, or null for a fragment that is neither (pairing links).
export function parseFragment(hash) {
  const q = new URLSearchParams(String(hash || '').replace(/^#/, ''));
  if (q.has('answer')) {
    const v = q.get('answer');
    const i = v.indexOf(':');
    const action = v.slice(0, i);
    const ref = v.slice(i + 1);
    return i > 0 && ACTIONS.includes(action) && validRef(ref) ? { answer: { action, ref } } : { bad: true };
  }
  if (q.has('msg')) return validRef(q.get('msg')) ? { msg: q.get('msg') } : { bad: true };
  return null;
}

// fromMessage reads what the service worker posts to an open app (the
// same, as an object): {answer}, {msg}, or null.
export function fromMessage(m) {
  if (!isObj(m) || m.type !== 'depot:push' || typeof m.url !== 'string') return null;
  const f = parseFragment(m.url);
  return f && !f.bad ? { ...f, driverId: validID(m.driverId) ? m.driverId : '' } : null;
}

// keyBytes is a VAPID public key (base64url, an uncompressed P-256 point)
// as the bytes subscribe wants, or null for anything else.
export function keyBytes(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]{86,88}={0,2}$/.test(s)) return null;
  let bin;
  try { bin = atob(s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/')); } catch { return null; }
  if (bin.length !== 65 || bin.charCodeAt(0) !== 4) return null;
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// What the driver reads under the switch, by state.
export const WORDS = {
  on: 'On: this phone is woken for offers and rescues',
  off: 'Off',
  working: 'Working…',
  blocked: 'Blocked in the browser\'s settings',
  unsupported: 'Not available in this browser',
  pending: 'On, not yet confirmed by the depot',
  disabled: 'Notifications when the app is closed are not set up on this depot',
  dismissed: 'Off: notifications were not allowed',
};

// statusText is the line shown for a result {state, why?}.
export function statusText(r) {
  const w = WORDS[r.state] || r.state;
  if (r.state === 'error') return `Not on: ${r.why || 'failed'}`;
  return r.why ? `${w} · ${r.why}` : w;
}

// serverWhy is what a refusal says: the depot's message, as text, short.
async function serverWhy(r) {
  let m = '';
  try {
    const a = await r.json();
    if (isObj(a)) m = line(a.message, 200) || line(a.error, 200);
  } catch { /* no JSON */ }
  return m ? `the depot says: ${m} (${r.status})` : `the depot answered ${r.status}`;
}

// vapid asks the depot for its key: {key}, {off: true} (404: Web Push
// is not set up), or {error}.
export async function vapid(get) {
  let r;
  try {
    r = await get(VAPID_URL, { cache: 'no-store', credentials: 'omit' });
  } catch {
    return { error: 'the depot could not be reached' };
  }
  if (r.status === 404) return { off: true };
  if (!r.ok) return { error: await serverWhy(r) };
  let a;
  try { a = await r.json(); } catch { return { error: 'the depot\'s key is not readable' }; }
  const key = isObj(a) ? keyBytes(a.publicKey) : null;
  return key ? { key } : { error: 'the depot\'s key is not readable' };
}

// register tells the depot of the subscription sub (method POST), or
// that it is gone (DELETE): {ok: true} or {error}.
export async function register(get, cred, sub, method = 'POST') {
  const s = typeof sub.toJSON === 'function' ? sub.toJSON() : sub;
  const subscription = method === 'POST' ? s : { endpoint: s.endpoint };
  let r;
  try {
    r = await get(REGISTER_URL, {
      method, cache: 'no-store', credentials: 'omit',
      headers: { Authorization: basicAuth(cred), 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'webpush', subscription }),
    });
  } catch {
    return { error: 'the depot could not be reached' };
  }
  return r.ok ? { ok: true } : { error: await serverWhy(r) };
}

// subscribed is the browser's subscription for key: the one it has when
// made for key (or when the browser does not say for which), else a new
// one (the depot's key changed: the old one is useless).
async function subscribed(pm, key) {
  let sub = await pm.getSubscription();
  const had = sub && sub.options && sub.options.applicationServerKey;
  if (sub && had && !sameBytes(new Uint8Array(had), key)) {
    await sub.unsubscribe().catch(() => {});
    sub = null;
  }
  return sub || pm.subscribe({ userVisibleOnly: true, applicationServerKey: key });
}

// turnOn is the switch turned on, env: {permission (a function: the
// browser's question, resolving to 'granted', 'denied' or 'default'), pm
// (the registration's pushManager), get (fetch), cred, key}. On start,
// permission is the answer the browser already has (no question asked
// without the driver's touch). It resolves to {state, why?}: 'on', or
// 'blocked', 'dismissed', 'error' (a subscription made stays with the
// browser, unused: the next try takes it again).
export async function turnOn({ permission, pm, get, cred, key }) {
  let p;
  try { p = await permission(); } catch { p = 'default'; }
  if (p === 'denied') return { state: 'blocked' };
  if (p !== 'granted') return { state: 'dismissed' };
  let sub;
  try {
    sub = await subscribed(pm, key);
  } catch (err) {
    return { state: 'error', why: `the browser's push service refused (${line(err && (err.message || err.name), 120) || 'no reason'})` };
  }
  const r = await register(get, cred, sub, 'POST');
  return r.ok ? { state: 'on' } : { state: 'error', why: r.error };
}

// turnOff drops the subscription: the depot is told first (it needs the
// endpoint), then the browser, whatever the depot said. {state: 'off',
// why?}: why says the depot was not told.
export async function turnOff({ pm, get, cred }) {
  let sub = null;
  try { sub = await pm.getSubscription(); } catch { /* none */ }
  if (!sub) return { state: 'off' };
  const r = cred ? await register(get, cred, sub, 'DELETE') : { ok: true };
  try { await sub.unsubscribe(); } catch { /* gone already */ }
  return r.ok ? { state: 'off' } : { state: 'off', why: `the depot was not told: ${r.error}` };
}

// The switch is remembered per driver.
export const pushKey = (driver) => `depot.driver.push.${driver}`;
export function wanted(storage, driver) { return storage.getItem(pushKey(driver)) === '1'; }
export function want(storage, driver, on) {
  try {
    if (on) storage.setItem(pushKey(driver), '1');
    else storage.removeItem(pushKey(driver));
  } catch { /* storage refused: on for this page only */ }
}
