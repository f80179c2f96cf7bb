// The choice of transport. MQTT over WebSocket first. When the WebSocket
// cannot be opened (a proxy strips the upgrade: two attempts in a row that
// never connected), the page falls back to Server-Sent Events, and when
// those are cut too (three errors in a row, or a closed stream), to polling
// the event log. From a fallback it probes the WebSocket every 30 s and
// returns to it as soon as one connects. Every transport feeds the same
// EventLog, so order and gap-filling do not depend on which is live.
//
// No DOM and no network here: the page passes in how to open and close
// each transport, so Node's own test runner drives this module
// (transport.test.js).

export const WS_FAILURES = 2;
export const SSE_ERRORS = 3;
export const PROBE_EVERY = 30000;

export class Transports {
  // io.openSSE() / io.closeSSE(), io.startPolling() / io.stopPolling(),
  // io.probe() (open a WebSocket session that replaces the live transport
  // once it connects) and io.active() (still signed in).
  constructor(io, timers = { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (id) => clearTimeout(id) }) {
    this.io = io;
    this.timers = timers;
    this.mode = 'ws';      // what is live, or being tried: 'ws', 'sse' or 'polling'
    this.wsFailures = 0;   // WebSocket attempts in a row that never connected
    this.sseErrors = 0;
    this.sse = false;      // an EventSource is open
    this.polling = false;
    this.probeTimer = 0;
  }

  // wsUp: a WebSocket session connected (the first, a probe or a
  // handover): it is the transport from now on.
  wsUp() {
    this.wsFailures = 0;
    this.stopFallback();
    this.mode = 'ws';
  }

  // wsClosed: the page's WebSocket session closed. It says what to do:
  // 'retry' (with backoff) or 'fallback' (done here).
  wsClosed(wasUp) {
    if (!wasUp) this.wsFailures++;
    if (this.wsFailures < WS_FAILURES) return 'retry';
    this.fallBack();
    return 'fallback';
  }

  // probeFailed: a probe did not connect; try again later.
  probeFailed() {
    if (this.mode !== 'ws') this.scheduleProbe();
  }

  fallBack() {
    if (this.sse || this.polling) return;
    this.startSSE();
    this.scheduleProbe();
  }

  startSSE() {
    this.stopPolling();
    this.sseErrors = 0;
    this.sse = true;
    this.io.openSSE();
  }

  // restartSSE reopens the stream (a renewed token, a silent stream).
  restartSSE() {
    if (!this.sse) return;
    this.io.closeSSE();
    this.sse = false;
    this.startSSE();
  }

  sseOpened() { this.sseErrors = 0; this.mode = 'sse'; }
  sseMessage() { this.sseErrors = 0; }

  // sseError: EventSource reconnects by itself (sending Last-Event-ID);
  // after a few failures in a row, or once it gave up, SSE counts as cut
  // too. It says 'reconnecting' or 'polling'.
  sseError(closed) {
    if (++this.sseErrors < SSE_ERRORS && !closed) return 'reconnecting';
    if (this.sse) { this.io.closeSSE(); this.sse = false; }
    this.mode = 'polling';
    this.polling = true;
    this.io.startPolling();
    return 'polling';
  }

  stopPolling() {
    if (this.polling) { this.io.stopPolling(); this.polling = false; }
  }

  // stopFallback ends SSE, polling and the probe timer (the WebSocket is
  // back, or the user signed out).
  stopFallback() {
    if (this.sse) { this.io.closeSSE(); this.sse = false; }
    this.stopPolling();
    this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = 0;
  }

  scheduleProbe() {
    this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = this.timers.setTimeout(() => {
      this.probeTimer = 0;
      if (this.mode !== 'ws' && this.io.active()) this.io.probe();
    }, PROBE_EVERY);
  }
}

// SSETransports is the choice for a page with no WebSocket (the fleet page
// of `depot hq`): Server-Sent Events first; after SSE_ERRORS errors in a
// row, or a stream closed for good, polling; while polling, every
// PROBE_EVERY a probe opens a second EventSource (io.probe()), which
// replaces polling once it opens (probeUp) and is dropped if it cannot
// (probeFailed).
export class SSETransports extends Transports {
  constructor(io, timers) {
    super(io, timers);
    this.mode = 'sse';
  }

  // start opens the stream (after a sign-in, a snapshot loaded).
  start() {
    this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = 0;
    this.mode = 'sse';
    if (this.sse) this.restartSSE(); else this.startSSE();
  }

  sseError(closed) {
    const r = super.sseError(closed);
    if (r === 'polling' && !this.probeTimer) this.scheduleProbe();
    return r;
  }

  // probeUp: the probe's stream opened; it is the transport from now on.
  probeUp() {
    this.stopPolling();
    this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = 0;
    this.sse = true;
    this.sseErrors = 0;
    this.mode = 'sse';
  }
}
