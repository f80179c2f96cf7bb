// Pairing the phone from a link (docs/handhelds.md). No DOM here: node
// --test runs it (pairing.test.js); the network is passed in.
//
// Two forms of link:
//   /driver/#pair=<code>               a one-time code, exchanged once at
//                                      POST /api/v1/driver/pair for the credential
//   /driver/#driver=<id>&token=<token> the credential itself (made by hand)
//
// A link never destroys a working pairing: the code is exchanged, or the
// credential tried with a state request, first; only a credential the depot
// took replaces the one kept, and one for another driver only once the
// driver said so.
import { isObj } from '../eventlog.js';
import { validID, parsePairing, basicAuth } from './state.js';

export const PAIR_URL = '../api/v1/driver/pair';
export const STATE_URL = '../api/v1/driver/state';

// parseLink reads a pairing link's fragment: {code}, {cred: {driver, token}},
// {bad: true} for a pairing fragment that holds neither in a usable form,
// or null for a fragment that is no pairing at all (which the app leaves
// where it is).
export function parseLink(hash) {
  const q = new URLSearchParams(String(hash || '').replace(/^#/, ''));
  if (q.has('pair')) {
    const code = q.get('pair');
    return /^[A-Za-z0-9_-]{16,128}$/.test(code) ? { code } : { bad: true };
  }
  const cred = parsePairing(hash);
  if (cred) return { cred };
  return q.has('driver') || q.has('token') ? { bad: true } : null;
}

// withTimeout runs f(signal), aborting the request after ms: a phone at
// the edge of coverage can wait minutes for an answer that never comes.
async function withTimeout(ms, f) {
  const ctl = typeof AbortController === 'function' ? new AbortController() : null;
  const timer = ctl ? setTimeout(() => ctl.abort(), ms) : 0;
  try {
    return await f(ctl ? ctl.signal : undefined);
  } finally {
    clearTimeout(timer);
  }
}

// failure sorts an answer that is not a success.
function failure(status) {
  if (status === 429) return 'throttled';
  if (status >= 500) return 'depot';
  return 'bad';
}

// redeem turns a link into a credential the depot took:
//   {ok: true, cred, answer?, sentAt?, receivedAt?}
// (answer: the state answer of the check, for a link with the credential),
// or {ok: false, why} with why one of 'used' (the code was used, has
// expired or never existed), 'refused' (the link's credential is not
// valid), 'throttled', 'unreachable', 'depot' (a server error), 'bad'.
// It never touches what the phone keeps.
export async function redeem(link, { fetch: get = globalThis.fetch, now = Date.now, timeout = 20000 } = {}) {
  if (!link || link.bad) return { ok: false, why: 'bad' };
  if (link.code) {
    let r;
    try {
      r = await withTimeout(timeout, (signal) => get(PAIR_URL, {
        method: 'POST', cache: 'no-store', credentials: 'omit', signal,
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code: link.code }),
      }));
    } catch {
      return { ok: false, why: 'unreachable' };
    }
    if (r.status === 410) return { ok: false, why: 'used' };
    if (!r.ok) return { ok: false, why: failure(r.status) };
    let a;
    try { a = await r.json(); } catch { return { ok: false, why: 'bad' }; }
    if (!isObj(a) || !validID(a.driverId) || typeof a.token !== 'string' || !a.token || a.token.length > 1024) {
      return { ok: false, why: 'bad' };
    }
    return { ok: true, cred: { driver: a.driverId, token: a.token } };
  }
  const { cred } = link;
  const sentAt = now();
  let r;
  try {
    r = await withTimeout(timeout, (signal) => get(STATE_URL, {
      cache: 'no-store', credentials: 'omit', signal, headers: { Authorization: basicAuth(cred) },
    }));
  } catch {
    return { ok: false, why: 'unreachable' };
  }
  if (r.status === 401) return { ok: false, why: 'refused' };
  if (!r.ok) return { ok: false, why: failure(r.status) };
  let a;
  try { a = await r.json(); } catch { return { ok: false, why: 'bad' }; }
  if (!isObj(a) || a.driverId !== cred.driver || !validID(a.depot)) return { ok: false, why: 'bad' };
  return { ok: true, cred, answer: a, sentAt, receivedAt: now() };
}

// decide is what becomes of the pairing kept (current, or null) after a
// link gave result (redeem's):
//   {do: 'save', cred}        keep the new credential (no pairing, or the same driver's)
//   {do: 'ask', cred, from}   another driver is paired: ask before switching
//   {do: 'keep', why}         the link failed: the phone stays as it was
export function decide(current, result) {
  if (!result || !result.ok) return { do: 'keep', why: (result && result.why) || 'bad' };
  if (current && current.driver !== result.cred.driver) return { do: 'ask', cred: result.cred, from: current.driver };
  return { do: 'save', cred: result.cred };
}

const WHY = {
  used: 'This pairing code was already used or has expired: ask your dispatcher for a new QR code.',
  refused: 'This pairing link is no longer valid: ask your dispatcher for a new QR code.',
  throttled: 'Too many wrong pairing codes came from this network: wait a few minutes, then open the link again.',
  unreachable: 'The depot could not be reached to pair this phone: open the link again where you have signal.',
  depot: 'The depot could not pair this phone just now: open the link again in a minute.',
  bad: 'This pairing link is not valid: ask your dispatcher for a new QR code.',
};

// failureText is what the driver reads when a link failed; pairedAs names
// the driver the phone stays paired as ('' for none).
export function failureText(why, pairedAs) {
  const t = WHY[why] || WHY.bad;
  return pairedAs ? `${t} This phone stays paired as ${pairedAs}.` : t;
}
