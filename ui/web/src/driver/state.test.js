// The driver app's model: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store, fromAnswer, mergeEnvelope, countdown, serverOffset, parsePairing, loadCred, saveCred, forgetCred,
  basicAuth, clientId, answeredEnvelope, reached, final, isConflict, Pending, forgetPending, pendingKey, PENDING_MAX_AGE,
  saveState, loadState, forgetState, stateKey } from './state.js';

const T = (s) => `2025-11-26T10:${s}Z`;
const answer = (over = {}) => ({
  depot: 'DEMO1', driverId: 'D7', driverName: 'Ana Silva', serverTime: Date.parse(T('00:00.000')),
  route: { routeId: 'R1', routeCode: 'R-101', completedStops: 12, totalStops: 40, behindSchedule: 3, statusColor: 'YELLOW', driverId: 'D7' },
  offers: [{ vtoId: 'vto_1', routeId: 'R1', routeCode: 'R-101', driverId: 'D7', driverName: 'Ana Silva', reason: 'Low volume',
    offeredAt: T('00:00.000'), expiresAt: T('30:00.000'), remainingSeconds: 1800, state: 'open' }],
  rescues: [{ rescueId: 'rsc_R2_5', routeId: 'R2', state: 'open', createdAt: T('01:00.000'), updatedAt: T('01:00.000'),
    alert: { rescueId: 'rsc_R2_5', struggleRoute: { routeId: 'R2', routeCode: 'R-102', driverId: 'D2', driverName: 'Bo', behindSchedule: 9 },
      estimatedArrival: T('20:00.000'), transferLocation: { lat: 52.1, lng: 4.3, address: 'Dock 4' } } }],
  reassignments: [{ routeId: 'R3', routeCode: 'R-103', fromDriverId: 'D9', toDriverId: 'D7', by: 'ana', at: T('02:00.123456789') }],
  ...over,
});
const env = (type, payload, ts = T('05:00.000'), seq = 1) => ({ seq, id: `evt_${seq}`, type, priority: 'high', timestamp: ts, payload });

test('the state answer becomes the model; what is not of its type is dropped', () => {
  const m = fromAnswer(answer({ driverName: 7, route: { routeCode: { x: 1 }, statusColor: 'PURPLE', totalStops: '40' } }));
  assert.equal(m.driverName, '');
  assert.equal(m.route.routeCode, null);
  assert.equal(m.route.statusColor, null);
  assert.equal(m.route.totalStops, null);
  assert.equal(m.offers.get('vto_1').reason, 'Low volume');
  assert.equal(m.rescues.get('rsc_R2_5').alert.transfer.address, 'Dock 4');
  assert.equal(m.rescues.get('rsc_R2_5').alert.behind, 9);
  assert.throws(() => fromAnswer({ depot: 'a/#', driverId: 'D7' }), /unexpected/);
  assert.throws(() => fromAnswer(null), /unexpected/);
  assert.equal(fromAnswer(answer({ route: null, offers: 'x', rescues: [null, 1] })).route, null);
});

test('inbox messages merge by id: one the answer holds, or one delivered twice, shows once', () => {
  const s = new Store();
  s.answer(answer(), 1000, 1100);
  assert.equal(s.items().length, 3);
  // Already in the answer: vto_1, rsc_R2_5, and the reassignment (its envelope timestamp is cut to the ms).
  assert.equal(s.inbox(env('vto:offer', { vtoId: 'vto_1', routeCode: 'R-101', expiresAt: T('30:00.000') }), 1200), null);
  assert.equal(s.inbox(env('rescue:alert', { rescueId: 'rsc_R2_5', struggleRoute: { routeId: 'R2' } }), 1200), null);
  assert.equal(s.inbox(env('route:reassigned', { routeId: 'R3', routeCode: 'R-103', fromDriverId: 'D9', toDriverId: 'D7' }, T('02:00.123')), 1200), null);
  assert.equal(s.items().length, 3);
  // New ones, twice each.
  const offer = env('vto:offer', { vtoId: 'vto_2', routeCode: 'R-101', reason: 'r', offeredAt: T('06:00.000'), expiresAt: T('36:00.000') }, T('06:00.000'), 2);
  assert.equal(s.inbox(offer, 1300), 'offer');
  assert.equal(s.inbox(offer, 1301), null);
  const moved = env('route:reassigned', { routeId: 'R1', routeCode: 'R-101', fromDriverId: 'D7', toDriverId: 'D8' }, T('07:00.000'), 3);
  assert.equal(s.inbox(moved, 1400), 'reassign');
  assert.equal(s.inbox(moved, 1401), null);
  assert.deepEqual(s.items().map((i) => [i.kind, i.id]),
    [['reassign', `R1@${T('07:00.000')}`], ['offer', 'vto_2'], ['reassign', `R3@${T('02:00.123456789')}`], ['rescue', 'rsc_R2_5'], ['offer', 'vto_1']],
    'newest first');
});

test('after a reload or reconnect, the answer is the truth and what came during its request is kept', () => {
  const s = new Store();
  s.answer(answer(), 1000, 1100);
  // A message during the next request (sent at 2000): the answer was made before it.
  const offer = env('vto:offer', { vtoId: 'vto_3', offeredAt: T('08:00.000'), expiresAt: T('38:00.000') }, T('08:00.000'), 4);
  s.inbox(env('vto:offer', { vtoId: 'vto_old' }), 1500); // before the request: the answer has it (or it is gone)
  s.inbox(offer, 2050);
  assert.ok(s.answer(answer({ offers: [{ ...answer().offers[0], state: 'expired' }] }), 2000, 2100));
  assert.ok(s.m.offers.has('vto_3'), 'kept: it came after the request left');
  assert.ok(!s.m.offers.has('vto_old'), 'the answer is the truth for what came before');
  assert.equal(s.m.offers.get('vto_1').state, 'expired');
  // A later answer that has it too: still once.
  s.answer(answer({ offers: [...answer().offers, { vtoId: 'vto_3', offeredAt: T('08:00.000'), expiresAt: T('38:00.000'), state: 'open' }] }), 3000, 3100);
  assert.equal(s.items().filter((i) => i.id === 'vto_3').length, 1);
  // Two requests that cross: the older answer is not shown over the newer.
  assert.equal(s.answer(answer({ driverName: 'stale' }), 2500, 3200), false);
  assert.equal(s.m.driverName, 'Ana Silva');
});

test('states only move forward; an acknowledged answer shows before the next state answer', () => {
  const m = fromAnswer(answer());
  assert.equal(mergeEnvelope(m, env('vto:accepted', { vtoId: 'vto_1', state: 'accepted' })), 'offer');
  assert.equal(mergeEnvelope(m, env('vto:offer', { vtoId: 'vto_1' })), null);
  assert.equal(m.offers.get('vto_1').state, 'accepted', 'a repeated offer does not reopen it');
  assert.equal(mergeEnvelope(m, env('vto:expired', { vtoId: 'vto_1' })), null);
  assert.equal(mergeEnvelope(m, env('vto:confirmed', { vtoId: 'vto_1' })), 'offer');
  assert.equal(mergeEnvelope(m, env('rescue:updated', { rescueId: 'rsc_R2_5', state: 'bogus' })), null);
  const s = new Store();
  s.answer(answer(), 1000, 1100);
  s.inbox(answeredEnvelope('rsc_R2_5', 'ack'), 1500);
  assert.equal(s.m.rescues.get('rsc_R2_5').state, 'acknowledged');
  s.answer(answer(), 1400, 1600); // its request left before the PUBACK: the ack stays
  assert.equal(s.m.rescues.get('rsc_R2_5').state, 'acknowledged');
  assert.equal(mergeEnvelope(s.m, null), null);
  assert.equal(mergeEnvelope(s.m, env('vto:offer', 'x')), null);
  assert.equal(mergeEnvelope(s.m, env('system:status', {})), null);
});

test('an inbox message before the first answer is merged into it', () => {
  const s = new Store();
  assert.equal(s.inbox(env('vto:offer', { vtoId: 'vto_9', offeredAt: T('09:00.000') }), 1500), null);
  s.answer(answer(), 1000, 1700);
  assert.ok(s.m.offers.has('vto_9'));
});

test('countdown runs on the depot\'s clock, from the offset its answer gave', () => {
  // The phone's clock is 90 s behind the depot's.
  const off = serverOffset(Date.parse(T('00:00.000')), Date.parse(T('00:00.000')) - 90000 - 100, Date.parse(T('00:00.000')) - 90000 + 100);
  assert.equal(off, 90000);
  const s = new Store();
  s.answer(answer(), Date.parse(T('00:00.000')) - 90100, Date.parse(T('00:00.000')) - 89900);
  const phone = Date.parse(T('00:00.000')) - 90000 + 5000; // 5 s later by the depot's clock
  assert.equal(s.serverNow(phone), Date.parse(T('00:05.000')));
  assert.deepEqual(countdown(T('30:00.000'), s.serverNow(phone)), { left: 1795, text: '29:55' });
  assert.deepEqual(countdown(T('30:00.000'), Date.parse(T('29:59.001'))), { left: 1, text: '00:01' });
  assert.deepEqual(countdown(T('30:00.000'), Date.parse(T('30:00.000'))), { left: 0, text: '00:00' });
  assert.deepEqual(countdown(T('30:00.000'), Date.parse(T('45:00.000'))), { left: 0, text: '00:00' });
  assert.deepEqual(countdown('soon', 0), { left: null, text: '--:--' });
  assert.equal(serverOffset(undefined, 0, 10), 0);
});

test('pairing: the fragment\'s credential, kept and forgotten', () => {
  assert.deepEqual(parsePairing('#driver=D7&token=abc%2B%2F%3D'), { driver: 'D7', token: 'abc+/=' });
  assert.equal(parsePairing(''), null);
  assert.equal(parsePairing('#driver=D7'), null);
  assert.equal(parsePairing('#driver=D%2B7&token=x'), null, 'an id that would change a topic');
  const mem = new Map();
  const storage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v), removeItem: (k) => mem.delete(k) };
  assert.equal(loadCred(storage), null);
  saveCred(storage, { driver: 'D7', token: 't' });
  assert.deepEqual(loadCred(storage), { driver: 'D7', token: 't' });
  forgetCred(storage);
  assert.equal(loadCred(storage), null);
  storage.setItem('depot.driver', '{bad');
  assert.equal(loadCred(storage), null);
  assert.equal(basicAuth({ driver: 'D7', token: 'tök' }), 'Basic ' + Buffer.from('D7:tök').toString('base64'));
  const id = clientId('D7');
  assert.match(id, /^drv-D7:app[a-z0-9]{12}$/);
  assert.notEqual(clientId('D7'), id);
});

const memory = () => {
  const mem = new Map();
  return { mem, getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, String(v)), removeItem: (k) => mem.delete(k) };
};

test('answers not yet acknowledged outlive the page, per driver, and go when settled', () => {
  const st = memory();
  const now = 1764150000000;
  const p = new Pending(st, 'D7', now);
  assert.deepEqual(p.all(), []);
  p.add({ ref: 'vto_1', action: 'accept', at: now });
  p.add({ ref: 'rsc_R2_5', action: 'ack', at: now + 1 });
  // A reload: another page reads them back, in order.
  assert.deepEqual(new Pending(st, 'D7', now + 1000).all(),
    [{ ref: 'vto_1', action: 'accept', at: now }, { ref: 'rsc_R2_5', action: 'ack', at: now + 1 }]);
  assert.deepEqual(new Pending(st, 'D8', now).all(), [], 'another driver\'s are not this one\'s');
  // A second answer to one ref takes the first's place.
  p.add({ ref: 'vto_1', action: 'decline', at: now + 2 });
  assert.deepEqual(new Pending(st, 'D7', now).all().map((x) => [x.ref, x.action]), [['rsc_R2_5', 'ack'], ['vto_1', 'decline']]);
  // Acknowledged or refused: gone; the last one takes the key with it.
  p.remove('rsc_R2_5');
  p.remove('nothing');
  assert.deepEqual(new Pending(st, 'D7', now).all().map((x) => x.ref), ['vto_1']);
  p.remove('vto_1');
  assert.equal(st.getItem(pendingKey('D7')), null);
  // Signing out forgets them.
  p.add({ ref: 'vto_2', action: 'accept', at: now });
  forgetPending(st, 'D7');
  assert.deepEqual(new Pending(st, 'D7', now).all(), []);
});

test('what storage holds is checked, and answers older than the state\'s 12 hours are dropped', () => {
  const st = memory();
  const now = 1764150000000;
  st.setItem(pendingKey('D7'), JSON.stringify([
    { ref: 'vto_old', action: 'accept', at: now - PENDING_MAX_AGE - 1 },
    { ref: 'vto_1', action: 'accept', at: now - 1000 },
    { ref: 'vto_2', action: 'explode', at: now },
    { ref: '', action: 'ack', at: now },
    { ref: 7, action: 'ack', at: now },
    { ref: 'rsc_1', action: 'ack', at: 'yesterday' },
    null,
    { ref: 'vto_1', action: 'decline', at: now },
  ]));
  assert.deepEqual(new Pending(st, 'D7', now).all(), [{ ref: 'vto_1', action: 'decline', at: now }]);
  st.setItem(pendingKey('D7'), '{not json');
  assert.deepEqual(new Pending(st, 'D7', now).all(), []);
  st.setItem(pendingKey('D7'), '{"ref":"x"}');
  assert.deepEqual(new Pending(st, 'D7', now).all(), []);
  // Storage that refuses (full, or private mode): the page goes on.
  const full = { getItem: () => null, setItem: () => { throw new Error('QuotaExceededError'); }, removeItem: () => {} };
  const p = new Pending(full, 'D7', now);
  p.add({ ref: 'vto_1', action: 'accept', at: now });
  assert.deepEqual(p.all().map((x) => x.ref), ['vto_1']);
});

test('a conflict over an item at or beyond where the answer leads is an answer the depot had taken', () => {
  assert.ok(reached('accept', 'accepted'));
  assert.ok(reached('accept', 'confirmed'), 'an accepted offer moved on to confirmed');
  assert.ok(!reached('accept', 'declined'));
  assert.ok(!reached('accept', 'expired'));
  assert.ok(!reached('accept', 'open'));
  assert.ok(reached('decline', 'declined'));
  assert.ok(!reached('decline', 'accepted'));
  assert.ok(!reached('decline', 'confirmed'));
  assert.ok(!reached('decline', 'expired'));
  assert.ok(reached('ack', 'acknowledged'));
  assert.ok(reached('ack', 'resolved'));
  assert.ok(!reached('ack', 'open'));
  assert.ok(!reached('toString', 'accepted'));
  assert.ok(!reached('accept', undefined));
  // What the PUBACK said.
  const refusal = (code, reason) => Object.assign(new Error('publish refused'), { code, reason });
  assert.ok(isConflict(refusal(0x83, 'conflict: offer vto_1 is already confirmed')));
  assert.ok(isConflict(refusal(0x83, 'conflict: offer vto_1 has expired')));
  assert.ok(isConflict(refusal(0x83, undefined)), 'no reason string: the state decides');
  assert.ok(!isConflict(refusal(0x83, 'not found: no offer vto_1')));
  assert.ok(!isConflict(refusal(0x83, 'forbidden: offer vto_1 is for D8')));
  assert.ok(!isConflict(refusal(0x87, 'conflict: odd')));
  assert.ok(!isConflict(new Error('client ended')));
  assert.ok(!isConflict(null));
  // Which refusals end an answer, and which leave it kept to be sent again.
  assert.ok(final(refusal(0x83, 'conflict: offer vto_1 is already accepted')));
  assert.ok(final(refusal(0x83, 'not found: no offer vto_1')));
  assert.ok(final(refusal(0x99, 'invalid: …')));
  assert.ok(final(refusal(0x87, 'not authorized')));
  assert.ok(!final(refusal(0x80, undefined)), 'the depot could not store it: not the answer\'s fault');
  assert.ok(!final(refusal(0x96, 'message rate too high')));
  assert.ok(!final(refusal(0x97, 'quota exceeded')));
  assert.ok(!final(refusal(0x10, undefined)), 'not a refusal (no matching subscribers)');
  assert.ok(!final(new Error('publish queue full')), 'the phone\'s own failure: kept, sent again later');
  assert.ok(!final(null));
});

test('the last state answer is kept per driver and shown, as of when it came, until a fresh one', () => {
  const st = memory();
  assert.equal(loadState(st, 'D7'), null);
  saveState(st, 'D7', { answer: answer(), sentAt: 1000, receivedAt: 1100 });
  const saved = loadState(st, 'D7');
  assert.deepEqual(saved, { answer: answer(), sentAt: 1000, receivedAt: 1100 });
  assert.equal(loadState(st, 'D8'), null, 'another driver\'s is not this one\'s');

  // A reload: shown at once, marked as of when it came.
  const s = new Store();
  assert.ok(s.restore(saved));
  assert.equal(s.asOf, 1100);
  assert.equal(s.m.route.routeCode, 'R-101');
  assert.equal(s.items().length, 3);
  assert.equal(s.restore(saved), false, 'never over a model already shown');
  // A fresh answer replaces it, even from a phone whose clock went back.
  assert.ok(s.answer(answer({ offers: [] }), 500, 600));
  assert.equal(s.asOf, null);
  assert.equal(s.m.offers.size, 0);

  assert.equal(new Store().restore(null), false);
  forgetState(st, 'D7');
  assert.equal(loadState(st, 'D7'), null);
});

test('a kept state answer is checked like a fresh one', () => {
  const st = memory();
  const put = (v) => st.setItem(stateKey('D7'), typeof v === 'string' ? v : JSON.stringify(v));
  put('{bad');
  assert.equal(loadState(st, 'D7'), null);
  put({ answer: answer({ driverId: 'D8' }), sentAt: 1, receivedAt: 2 });
  assert.equal(loadState(st, 'D7'), null, 'an answer for another driver');
  put({ answer: answer({ driverId: 'D7', depot: 'x/#' }), sentAt: 1, receivedAt: 2 });
  assert.equal(loadState(st, 'D7'), null, 'an answer fromAnswer refuses');
  put({ answer: answer({ driverId: 'D7' }), sentAt: 1 });
  assert.equal(loadState(st, 'D7'), null);
  put([answer()]);
  assert.equal(loadState(st, 'D7'), null);
  // Kept text is text, as fresh: a name that is not a string shows as none.
  put({ answer: answer({ driverId: 'D7', driverName: { html: '<b>' } }), sentAt: 1, receivedAt: 2 });
  const s = new Store();
  assert.ok(s.restore(loadState(st, 'D7')));
  assert.equal(s.m.driverName, '');
  // Storage that refuses: nothing kept, nothing thrown.
  saveState({ setItem: () => { throw new Error('QuotaExceededError'); } }, 'D7', { answer: answer(), sentAt: 1, receivedAt: 2 });
});
