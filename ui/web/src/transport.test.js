// Unit tests of the choice of transport, run by `make test` with Node's own
// test runner: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transports, SSETransports, PROBE_EVERY } from './transport.js';

function setup() {
  const calls = [];
  const timers = {
    pending: new Map(), next: 1,
    setTimeout(f, ms) { const id = this.next++; this.pending.set(id, { f, ms }); return id; },
    clearTimeout(id) { this.pending.delete(id); },
    fire() { const all = [...this.pending.values()]; this.pending.clear(); all.forEach((t) => t.f()); },
  };
  let signedIn = true;
  const tp = new Transports({
    openSSE: () => calls.push('openSSE'), closeSSE: () => calls.push('closeSSE'),
    startPolling: () => calls.push('startPolling'), stopPolling: () => calls.push('stopPolling'),
    probe: () => calls.push('probe'), active: () => signedIn,
  }, timers);
  return { tp, calls, timers, signOut: () => { signedIn = false; } };
}

test('a WebSocket that worked once is retried, not given up', () => {
  const { tp, calls } = setup();
  tp.wsUp();
  assert.equal(tp.wsClosed(true), 'retry');
  assert.equal(tp.wsClosed(true), 'retry');
  assert.deepEqual(calls, []);
  assert.equal(tp.mode, 'ws');
});

test('two attempts that never connect fall back to SSE, and a probe is scheduled', () => {
  const { tp, calls, timers } = setup();
  assert.equal(tp.wsClosed(false), 'retry');
  assert.equal(tp.wsClosed(false), 'fallback');
  assert.deepEqual(calls, ['openSSE']);
  tp.sseOpened();
  assert.equal(tp.mode, 'sse');
  assert.equal([...timers.pending.values()][0].ms, PROBE_EVERY);
});

test('SSE errors: a few are waited out, then polling; a closed stream at once', () => {
  const { tp, calls } = setup();
  tp.fallBack();
  tp.sseOpened();
  assert.equal(tp.sseError(false), 'reconnecting');
  tp.sseMessage(); // a message in between: the count starts again
  assert.equal(tp.sseError(false), 'reconnecting');
  assert.equal(tp.sseError(false), 'reconnecting');
  assert.equal(tp.sseError(false), 'polling');
  assert.equal(tp.mode, 'polling');
  assert.deepEqual(calls, ['openSSE', 'closeSSE', 'startPolling']);

  const b = setup();
  b.tp.fallBack();
  assert.equal(b.tp.sseError(true), 'polling');
});

test('the probe returns to the WebSocket and ends every fallback', () => {
  const { tp, calls, timers } = setup();
  tp.wsClosed(false); tp.wsClosed(false);
  tp.sseError(true); // SSE cut too: polling
  timers.fire(); // 30 s later
  assert.deepEqual(calls, ['openSSE', 'closeSSE', 'startPolling', 'probe']);
  tp.probeFailed(); // not yet: another probe later
  assert.equal(timers.pending.size, 1);
  tp.wsUp(); // a probe connected
  assert.equal(tp.mode, 'ws');
  assert.deepEqual(calls.slice(-1), ['stopPolling']);
  assert.equal(timers.pending.size, 0);
  // A later failure starts over: two in a row before falling back again.
  assert.equal(tp.wsClosed(false), 'retry');
});

test('a fallback while one runs starts nothing more; signed out, no probe', () => {
  const { tp, calls, timers, signOut } = setup();
  tp.fallBack();
  tp.fallBack();
  assert.deepEqual(calls, ['openSSE']);
  signOut();
  timers.fire();
  assert.deepEqual(calls, ['openSSE']);
  tp.stopFallback();
  assert.deepEqual(calls, ['openSSE', 'closeSSE']);
});

test('a renewed token reopens SSE, and only SSE', () => {
  const { tp, calls } = setup();
  tp.restartSSE(); // on the WebSocket: nothing to reopen
  assert.deepEqual(calls, []);
  tp.fallBack();
  tp.restartSSE();
  assert.deepEqual(calls, ['openSSE', 'closeSSE', 'openSSE']);
});

function setupSSE() {
  const { calls, timers } = setup();
  let signedIn = true;
  const tp = new SSETransports({
    openSSE: () => calls.push('openSSE'), closeSSE: () => calls.push('closeSSE'),
    startPolling: () => calls.push('startPolling'), stopPolling: () => calls.push('stopPolling'),
    probe: () => calls.push('probe'), active: () => signedIn,
  }, timers);
  return { tp, calls, timers, signOut: () => { signedIn = false; } };
}

test('SSE first (no WebSocket): three errors in a row fall back to polling, and a probe returns to SSE', () => {
  const { tp, calls, timers } = setupSSE();
  tp.start();
  assert.deepEqual(calls, ['openSSE']);
  assert.equal(timers.pending.size, 0, 'no probe while SSE is live');
  tp.sseOpened();
  assert.equal(tp.mode, 'sse');
  assert.equal(tp.sseError(false), 'reconnecting');
  tp.sseMessage(); // a message in between: the errors were not in a row
  assert.equal(tp.sseError(false), 'reconnecting');
  assert.equal(tp.sseError(false), 'reconnecting');
  assert.equal(tp.sseError(false), 'polling');
  assert.deepEqual(calls, ['openSSE', 'closeSSE', 'startPolling']);
  assert.equal(tp.mode, 'polling');
  assert.equal([...timers.pending.values()][0].ms, PROBE_EVERY);
  timers.fire();
  assert.equal(calls.at(-1), 'probe');
  tp.probeFailed(); // the probe could not open: polling goes on, another later
  assert.equal(tp.mode, 'polling');
  assert.equal(timers.pending.size, 1);
  timers.fire();
  tp.probeUp();
  assert.deepEqual(calls.slice(-2), ['probe', 'stopPolling']);
  assert.equal(tp.mode, 'sse');
  assert.equal(tp.sse, true);
  assert.equal(timers.pending.size, 0);
  // The probe's stream is the stream: restarting it (a renewed token) reopens it.
  tp.restartSSE();
  assert.deepEqual(calls.slice(-2), ['closeSSE', 'openSSE']);
});

test('SSE first: a stream closed for good is polled at once; a sign-out stops everything', () => {
  const { tp, calls, timers, signOut } = setupSSE();
  tp.start();
  assert.equal(tp.sseError(true), 'polling');
  signOut();
  timers.fire();
  assert.equal(calls.includes('probe'), false, 'no probe once signed out');
  tp.stopFallback();
  assert.deepEqual(calls, ['openSSE', 'closeSSE', 'startPolling', 'stopPolling']);
  // Signed in again: SSE first again.
  tp.start();
  assert.equal(tp.mode, 'sse');
  assert.equal(calls.at(-1), 'openSSE');
});
