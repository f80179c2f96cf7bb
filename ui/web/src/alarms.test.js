// The rescue banner's order, text and per-screen acks: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAcked, newestFirst, alertText } from './alarms.js';

const store = (v) => ({ getItem: () => v });

test('acks read from storage: a list of ids, anything else is none', () => {
  assert.deepEqual([...loadAcked(store('["rsc_1","rsc_2"]'))], ['rsc_1', 'rsc_2']);
  assert.deepEqual([...loadAcked(store('["rsc_1",{"x":1},7]'))], ['rsc_1']);
  assert.equal(loadAcked(store('{"a":1}')).size, 0);
  assert.equal(loadAcked(store('not json')).size, 0);
  assert.equal(loadAcked(store(null)).size, 0);
});

test('rescues newest first, by the seq of their alert', () => {
  const list = [{ rescueId: 'a', seq: 3 }, { rescueId: 'b', seq: 10 }, { rescueId: 'c', seq: 'x' }, { rescueId: 'd', seq: 7 }];
  assert.deepEqual(newestFirst(list).map((x) => x.rescueId), ['b', 'd', 'a', 'c']);
});

test('a notification says which route, whose, and how far behind, as text', () => {
  assert.equal(alertText({ struggleRoute: { routeCode: 'CX07', driverName: 'Ana', behindSchedule: 7 } }), 'CX07 (Ana) is 7 stops behind');
  assert.equal(alertText({ struggleRoute: { routeCode: { x: 1 }, driverName: '<b>', behindSchedule: 'lots' } }), ' (<b>) is — stops behind');
  assert.equal(alertText({}), ' () is — stops behind');
});
