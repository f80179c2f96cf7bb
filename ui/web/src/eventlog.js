// The event stream in seq order. The page starts from a snapshot that is
// consistent with a seq (GET /api/v1/state) and then applies the events of
// depot/{d}/events strictly in seq order, whichever transport brought them
// (MQTT over WebSocket, SSE or polling). Any gap (a reconnect, a dropped
// message) is filled from GET /api/v1/events?after= before newer events
// are applied, so nothing is shown twice or skipped.
//
// Envelopes reach the page from the network, and not every path to the
// events topic is the depot's own. So lastSeq only ever comes from the API
// or from an envelope applied in order; a live envelope whose seq jumps is
// a gap to fill from the log, never a new position. Whatever still does not
// follow after the log was read is dropped: a seq the log does not have is
// not the depot's.
//
// No DOM and no network here: they come in as functions, so Node's own
// test runner drives this module (eventlog.test.js).

export const TYPES = new Set(['route:update', 'rescue:alert', 'rescue:updated', 'vto:offer', 'vto:accepted', 'vto:declined',
  'vto:expired', 'vto:confirmed', 'route:reassigned', 'driver:presence', 'driver:device', 'system:status']);
export const MAX_JUMP = 10000;    // past the log's end: no depot publishes that many during one read of the log
export const MAX_PENDING = 5000;  // beyond this, live events wait for the log instead of memory
export const PENDING_ROUNDS = 3;  // catch-ups a queued event may wait for the events before it
export const PAGE = 1000;         // events read from the log at a time
export const MAX_PAGES = 20;      // a catch-up longer than this reloads the snapshot instead

export function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

export function validEnvelope(env) {
  return isObj(env) && Number.isSafeInteger(env.seq) && env.seq > 0 &&
    typeof env.type === 'string' && TYPES.has(env.type) && isObj(env.payload);
}

export class EventLog {
  // st is the page's state, which keeps the counters tests and operators
  // read: lastSeq, synced, events, gaps (must stay 0), dropped.
  // io.loadState() loads the snapshot and sets st.lastSeq and st.synced;
  // io.fetchEvents(after, limit) reads the log (an error with status 410
  // means the log no longer reaches back that far); io.apply(env) shows one
  // event; io.onApplied() is told of every event applied.
  // timers default to the global ones, called as functions (a browser
  // refuses setTimeout called as a method of another object).
  constructor(st, io, timers = { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (id) => clearTimeout(id) }) {
    this.st = st;
    this.io = io;
    this.timers = timers;
    this.pending = []; // {env, rounds}: live events waiting for a catch-up to finish
    this.catchingUp = null;
    this.pendingTimer = 0;
  }

  // catchUp reads what followed lastSeq until nothing is missing, then
  // applies the live events that queued meanwhile. A dashboard that was
  // away for very long reloads the snapshot instead of replaying.
  catchUp() {
    if (this.catchingUp) return this.catchingUp;
    this.timers.clearTimeout(this.pendingTimer); this.pendingTimer = 0;
    this.catchingUp = (async () => {
      try {
        if (!this.st.synced) {
          await this.io.loadState();
        } else {
          for (let pages = 0; ; pages++) {
            if (pages >= MAX_PAGES) { await this.io.loadState(); break; }
            let evs;
            try {
              evs = await this.io.fetchEvents(this.st.lastSeq, PAGE);
            } catch (e) {
              if (e.status !== 410) throw e;
              await this.io.loadState(); // away longer than the log keeps: start again
              break;
            }
            if (!Array.isArray(evs)) throw new Error('events: unexpected answer');
            evs.forEach((env) => this.applyInOrder(env));
            if (evs.length < PAGE) break;
          }
        }
        this.drainPending();
      } finally {
        this.catchingUp = null;
      }
    })();
    return this.catchingUp;
  }

  // reset forgets the position (the server said the stream restarts): the
  // next catch-up loads the snapshot.
  reset() {
    this.st.synced = false;
    return this.catchUp();
  }

  // drainPending applies the queued live events that now follow lastSeq.
  // One far past the log's end is dropped at once; one behind a hole the
  // log did not fill yet (the store writes a moment after publishing) waits
  // a few rounds, then is dropped too: the log delivers it when it is real.
  drainPending() {
    const q = this.pending.sort((a, b) => a.env.seq - b.env.seq);
    this.pending = [];
    for (const p of q) {
      const seq = p.env.seq;
      if (seq <= this.st.lastSeq) continue;
      if (seq === this.st.lastSeq + 1) { this.applyInOrder(p.env); continue; }
      if (seq > this.st.lastSeq + MAX_JUMP || ++p.rounds >= PENDING_ROUNDS) { this.st.dropped++; continue; }
      this.pending.push(p);
    }
    if (this.pending.length && !this.pendingTimer) {
      this.pendingTimer = this.timers.setTimeout(() => { this.pendingTimer = 0; this.catchUp().catch(() => {}); }, 1000);
    }
  }

  // onLive takes an envelope from any transport. It returns true when the
  // envelope was applied at once (it followed lastSeq), false when it was
  // dropped, already seen, or queued behind a catch-up.
  onLive(env) {
    if (!validEnvelope(env)) { this.st.dropped++; return false; }
    if (env.seq <= this.st.lastSeq) return false; // seen already
    if (this.catchingUp || !this.st.synced || env.seq !== this.st.lastSeq + 1) {
      if (this.pending.length < MAX_PENDING) this.pending.push({ env, rounds: 0 });
      else this.st.dropped++;
      this.catchUp().catch(() => {});
      return false;
    }
    this.applyInOrder(env);
    return true;
  }

  // applyInOrder takes the next envelope, live (checked by the caller to be
  // lastSeq + 1) or from the log (which may skip a seq; counted as a gap).
  // A log entry of a type this page does not know still moves lastSeq on.
  applyInOrder(env) {
    const st = this.st;
    if (!isObj(env) || !Number.isSafeInteger(env.seq) || env.seq <= st.lastSeq) return;
    if (env.seq !== st.lastSeq + 1) st.gaps++;
    st.lastSeq = env.seq;
    st.events++;
    if (this.io.onApplied) this.io.onApplied(env);
    if (!validEnvelope(env)) return;
    try {
      this.io.apply(env);
    } catch (e) {
      console.warn('event', env.seq, env.type, e); // one odd payload must not stop the stream
    }
  }
}
