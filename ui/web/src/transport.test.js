// Unit tests of the choice of transport, run by `make test` with Node's own
// test runner: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transports, PROBE_EVERY } from './transport.js';

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
