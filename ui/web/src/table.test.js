// The route table's order and text: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sortRoutes, progress, ago, rowKey, flashKey } from './table.js';

const r = (code, color, behind, done, total) => ({ routeId: code, routeCode: code, statusColor: color, behindSchedule: behind, completedStops: done, totalStops: total });

test('routes sort as the depot sorts them: colour, stops behind, progress, code', () => {
  const list = [r('G1', 'GREEN', 0, 5, 10), r('Y1', 'YELLOW', 3, 5, 10), r('R2', 'RED', 6, 5, 10),
    r('R1', 'RED', 9, 5, 10), r('Y2', 'YELLOW', 3, 2, 10), r('X', 'PURPLE', 99, 0, 10), r('Y0', 'YELLOW', 3, 2, 10)];
  assert.deepEqual(sortRoutes(list).map((x) => x.routeCode), ['R1', 'R2', 'Y0', 'Y2', 'Y1', 'G1', 'X']);
  assert.equal(list[0].routeCode, 'G1', 'the input is not reordered');
});

test('progress is bounded and safe with nonsense', () => {
  assert.equal(progress(5, 10), 0.5);
  assert.equal(progress(15, 10), 1);
  assert.equal(progress(-3, 10), 0);
  assert.equal(progress(3, 0), 0);
  assert.equal(progress('3', 10), 0);
  assert.equal(progress(null, undefined), 0);
});

test('ages read as now, then seconds, minutes, hours and minutes', () => {
  const now = 10_000_000;
  assert.equal(ago(now, now), 'now');
  assert.equal(ago(now - 9_400, now), 'now');
  assert.equal(ago(now - 10_000, now), '10s');
  assert.equal(ago(now - 42_000, now), '42s');
  assert.equal(ago(now - 7 * 60_000, now), '7m');
  assert.equal(ago(now - (2 * 3600 + 5 * 60) * 1000, now), '2h05');
  assert.equal(ago(now + 50_000, now), 'now', 'a fix from the future is not negative');
});

test('a move changes neither the row key nor the flash key; a status does', () => {
  const a = { ...r('C1', 'YELLOW', 3, 5, 10), currentLat: 1, lastUpdated: '2026-12-01T10:00:00Z' };
  const moved = { ...a, currentLat: 2, lastUpdated: '2026-12-01T10:00:01Z' };
  assert.equal(rowKey(moved), rowKey(a));
  assert.equal(flashKey(moved), flashKey(a));
  const behind = { ...a, behindSchedule: 6, statusColor: 'RED' };
  assert.notEqual(rowKey(behind), rowKey(a));
  assert.notEqual(flashKey(behind), flashKey(a));
  assert.notEqual(rowKey(a, { state: 'silent', since: 'x' }), rowKey(a, { state: 'online', since: 'x' }), 'presence shows in the row');
});
