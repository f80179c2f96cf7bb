// Unit tests of the event log's ordering, run by `make test` with Node's own
// test runner: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventLog, MAX_JUMP } from './eventlog.js';

const env = (seq, type = 'route:update') => ({ seq, type, payload: { routeId: 'R1' }, timestamp: new Date(0).toISOString() });

// depot is a fake of the REST API: a log of events and a snapshot at a seq.
function setup({ logSeqs = [], snapshotSeq = 0, retained = 1 } = {}) {
  const st = { lastSeq: 0, synced: false, events: 0, gaps: 0, dropped: 0 };
  const applied = [];
  const calls = { loadState: 0, fetch: [] };
  const depot = {
    log: logSeqs.map((s) => env(s)),
    snapshotSeq,
    retained, // the oldest seq the log still has
    gate: null, // a promise fetchEvents waits for, to hold a catch-up open
  };
  const timers = { pending: [], setTimeout(f) { this.pending.push(f); return this.pending.length; }, clearTimeout() {} };
  const log = new EventLog(st, {
    async loadState() {
      calls.loadState++;
      st.lastSeq = depot.snapshotSeq;
      st.synced = true;
    },
    async fetchEvents(after, limit) {
      calls.fetch.push(after);
      if (depot.gate) await depot.gate;
      if (after + 1 < depot.retained) throw Object.assign(new Error('gone'), { status: 410 });
      return depot.log.filter((e) => e.seq > after).slice(0, limit);
    },
    apply(e) { applied.push(e.seq); },
  }, timers);
  return { st, log, applied, calls, depot, timers };
}

test('live events in order are applied once each; repeats are ignored', async () => {
  const { st, log, applied } = setup({ snapshotSeq: 10 });
  await log.catchUp();
  for (const s of [11, 12, 12, 11, 13]) log.onLive(env(s));
  assert.deepEqual(applied, [11, 12, 13]);
  assert.equal(st.lastSeq, 13);
  assert.equal(st.gaps, 0);
});

test('a gap is filled from the log before newer live events', async () => {
  const { st, log, applied, depot } = setup({ snapshotSeq: 10 });
  await log.catchUp();
  depot.log = [11, 12, 13, 14].map((s) => env(s));
  assert.equal(log.onLive(env(14)), false); // 11–13 were missed: queued behind a catch-up
  await log.catchingUp;
  assert.deepEqual(applied, [11, 12, 13, 14]);
  assert.equal(st.gaps, 0);
  assert.equal(st.lastSeq, 14);
});

test('an out-of-order batch is applied in seq order', async () => {
  const { st, log, applied, depot } = setup({ snapshotSeq: 2 });
  await log.catchUp();
  depot.log = [3, 4, 5].map((s) => env(s));
  for (const s of [5, 4, 3]) log.onLive(env(s));
  await log.catchingUp;
  assert.deepEqual(applied, [3, 4, 5]);
  assert.equal(st.gaps, 0);
});

test('a reset after retention reloads the snapshot', async () => {
  const { st, log, applied, calls, depot } = setup({ snapshotSeq: 5 });
  await log.catchUp();
  assert.equal(calls.loadState, 1);
  // Away longer than the log keeps: it now starts at 500, the snapshot is at 900.
  depot.retained = 500;
  depot.snapshotSeq = 900;
  depot.log = [901].map((s) => env(s));
  log.onLive(env(901));
  await log.catchingUp;
  assert.equal(calls.loadState, 2);
  assert.deepEqual(applied, [901]);
  assert.equal(st.lastSeq, 901);
  // The server may also say the stream restarts (SSE "reset").
  await log.reset();
  assert.equal(calls.loadState, 3);
});

test('a switch of transport in the middle of a catch-up loses and repeats nothing', async () => {
  const { st, log, applied, depot } = setup({ snapshotSeq: 20 });
  await log.catchUp();
  depot.log = [21, 22, 23, 24, 25, 26].map((s) => env(s));
  let open;
  depot.gate = new Promise((r) => { open = r; });
  // The WebSocket delivered 23 (21 and 22 were lost) and died mid catch-up…
  log.onLive(env(23));
  // …then SSE starts from where the page was and sends everything again,
  // and the newest events, while the log is still being read.
  for (const s of [21, 22, 23, 24, 25, 26]) log.onLive(env(s));
  open();
  await log.catchingUp;
  assert.deepEqual(applied, [21, 22, 23, 24, 25, 26]);
  assert.equal(st.gaps, 0);
  assert.equal(st.lastSeq, 26);
});

test('a forged far-future seq does not stop live updates', async () => {
  const { st, log, applied, depot } = setup({ snapshotSeq: 7 });
  await log.catchUp();
  log.onLive(env(7 + MAX_JUMP + 1e12)); // the log has no such event
  await log.catchingUp;
  assert.equal(st.lastSeq, 7);
  assert.equal(st.dropped, 1);
  depot.log = [8].map((s) => env(s));
  assert.equal(log.onLive(env(8)), true);
  assert.deepEqual(applied, [8]);
});

test('an event the log has not written yet waits a few rounds, then is dropped', async () => {
  const { st, log, applied, timers } = setup({ snapshotSeq: 1 });
  await log.catchUp();
  log.onLive(env(3)); // 2 is not in the log (yet)
  await log.catchingUp;
  assert.deepEqual(applied, []);
  for (let i = 0; i < 5 && timers.pending.length; i++) {
    timers.pending.shift()();
    await log.catchingUp;
  }
  assert.equal(st.dropped, 1);
  assert.equal(st.lastSeq, 1);
});

test('malformed envelopes are dropped and counted', async () => {
  const { st, log, applied } = setup({ snapshotSeq: 1 });
  await log.catchUp();
  for (const bad of [null, [], { seq: 2 }, { seq: 2, type: 'x:y', payload: {} }, { seq: '2', type: 'route:update', payload: {} },
    { seq: 2, type: 'route:update', payload: 'x' }, { seq: -1, type: 'route:update', payload: {} }]) {
    log.onLive(bad);
  }
  assert.equal(st.dropped, 7);
  assert.deepEqual(applied, []);
  assert.equal(st.lastSeq, 1);
});
