// Login: the token, its renewal, and the sign-in page.
//
// The token lives in sessionStorage: it survives a reload of the wall
// screen but not closing the tab, and never goes to a cookie.
//
// A login token lasts a shift, and the broker ends an MQTT session whose
// token expires. So the page trades its token for a fresh one well before
// that (renewDelay), then the transports pick the new one up. Only the
// depot saying 401 (revoked, expired, user gone) signs the screen out; an
// unreachable depot is asked again, with backoff.
import { $ } from './dom.js';
import { isObj } from './eventlog.js';

export const AUTH_KEY = 'depot.auth';

// loadAuth reads a stored token that has not expired by now (ms).
export function loadAuth(storage, now) {
  try {
    const a = JSON.parse(storage.getItem(AUTH_KEY));
    if (isObj(a) && typeof a.token === 'string' && a.token && Date.parse(a.expiresAt) > now) return a;
  } catch { /* fall through */ }
  return null;
}

// renewDelay is how long to wait before renewing a token that expires at
// expiresAt (ms) when the depot's clock says now: at 80 % of what is left,
// or 10 minutes before expiry if that is sooner, never sooner than
// half-way, never under a second (and within what setTimeout can hold).
export function renewDelay(expiresAt, now) {
  const left = expiresAt - now;
  const wait = Math.max(left / 2, Math.min(left * 0.8, left - 10 * 60000));
  return Math.max(1000, Math.min(wait, 2 ** 31 - 1));
}

// Capped exponential backoff with full jitter: a depot's dashboards that all
// lost the box at once do not come back in lockstep.
export function backoff(attempt) {
  return 250 + Math.random() * Math.min(30000, 500 * 2 ** attempt);
}

export const SESSION_ENDED = 'Your session has ended. Please sign in again.';

export class Session {
  // storage: sessionStorage. fetch, setTimeout, clearTimeout: the
  // browser's (tests pass their own). serverNow(): the depot's clock.
  // onEnd(msg): the token is gone. onRenewed(): a new token is in auth.
  constructor({ storage, fetch: f, setTimeout: st, clearTimeout: ct, serverNow, onEnd, onRenewed }) {
    // Wrapped, so the browser's functions are never called as methods of
    // this object (which Chromium refuses with "Illegal invocation").
    this.fetch = (...a) => f(...a);
    this.later = (fn, ms) => st(fn, ms);
    this.cancel = (t) => ct(t);
    Object.assign(this, { storage, serverNow, onEnd, onRenewed });
    this.auth = loadAuth(storage, Date.now());
    this.timer = 0;
    this.renewals = 0;
  }

  // login signs in; it returns null, or what to tell the user.
  async login(username, password) {
    let r;
    try {
      r = await this.fetch('api/v1/auth/login', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
    } catch {
      return 'The depot cannot be reached. Check the network and try again.';
    }
    const body = await r.json().catch(() => ({}));
    if (r.status === 429) return `Too many attempts. Try again in ${r.headers.get('Retry-After') || 'a few'} seconds.`;
    if (!r.ok || !isObj(body) || typeof body.token !== 'string') return (isObj(body) && body.error) || `Sign-in failed (HTTP ${r.status}).`;
    this.set(body);
    return null;
  }

  set(a) {
    this.auth = a;
    this.storage.setItem(AUTH_KEY, JSON.stringify(a));
  }

  // end forgets the token and tells the page, with what to show.
  end(msg) {
    this.auth = null;
    this.storage.removeItem(AUTH_KEY);
    this.cancel(this.timer);
    this.onEnd(msg);
  }

  // schedule sets the renewal timer for the current token.
  schedule() {
    this.cancel(this.timer);
    if (!this.auth) return;
    this.timer = this.later(() => this.renew(0), renewDelay(Date.parse(this.auth.expiresAt), this.serverNow()));
  }

  async renew(attempt) {
    if (!this.auth) return;
    let r = null;
    try {
      r = await this.fetch('api/v1/auth/renew', { method: 'POST', cache: 'no-store', headers: { Authorization: 'Bearer ' + this.auth.token } });
    } catch { /* the depot cannot be reached */ }
    if (!this.auth) return;
    if (r && r.status === 401) {
      this.end(SESSION_ENDED);
      return;
    }
    const body = r && r.ok ? await r.json().catch(() => null) : null;
    if (!isObj(body) || typeof body.token !== 'string' || Number.isNaN(Date.parse(body.expiresAt))) {
      this.timer = this.later(() => this.renew(attempt + 1), backoff(attempt));
      return;
    }
    this.set({ token: body.token, expiresAt: body.expiresAt, role: body.role, username: this.auth.username });
    this.renewals++;
    this.schedule();
    this.onRenewed();
  }

  // api calls the REST API with the token; a 401 means it expired or was
  // revoked, and ends the session.
  async api(path, method = 'GET', body) {
    const r = await this.fetch(path, {
      method, cache: 'no-store',
      headers: { Authorization: 'Bearer ' + this.auth.token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (r.status === 401) {
      this.end(SESSION_ENDED);
      throw new Error('unauthorized');
    }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(data.error || 'HTTP ' + r.status), { status: r.status });
    return data;
  }
}

// showLogin shows the sign-in page with msg.
export function showLogin(msg) {
  $('login').hidden = false;
  $('logout').hidden = true;
  $('login-msg').textContent = msg || '';
  $('login-pass').value = '';
  $('login-user').focus();
}

// bindLogin wires the sign-in form and the sign-out button to session;
// onSignedIn runs after a sign-in.
export function bindLogin(session, onSignedIn) {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const btn = $('login-submit');
    btn.disabled = true;
    try {
      const msg = await session.login($('login-user').value.trim(), $('login-pass').value);
      if (msg) {
        $('login-msg').textContent = msg;
      } else {
        $('login').hidden = true;
        onSignedIn();
      }
    } finally {
      btn.disabled = false;
    }
  });
  $('logout').addEventListener('click', () => session.end('Signed out.'));
}
