import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatBytes, formatDuration, formatAge, checkPassword, checkNewUser, checkNewDevice, cleanUsers,
  userActions, battery, joinDevices, cleanBackups, feedSummary,
} from './adminlogic.js';

test('formatBytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(12.3 * 1024 * 1024), '12 MiB');
  assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
  assert.equal(formatBytes('12'), '—');
  assert.equal(formatBytes(-1), '—');
});

test('formatDuration and formatAge', () => {
  assert.equal(formatDuration(45), '45 s');
  assert.equal(formatDuration(120), '2 min');
  assert.equal(formatDuration(3600 + 300), '1 h 5 min');
  assert.equal(formatDuration(86400 * 30), '30 d');
  assert.equal(formatDuration(86400 + 7200), '1 d 2 h');
  assert.equal(formatDuration(null), '—');
  const now = Date.parse('2026-12-03T08:00:00Z');
  assert.equal(formatAge('2026-12-03T07:59:55Z', now), 'just now');
  assert.equal(formatAge('2026-12-03T07:55:00Z', now), '5 min ago');
  assert.equal(formatAge('0001-01-01T00:00:00Z', now), 'never');
  assert.equal(formatAge('', now), 'never');
  assert.equal(formatAge(42, now), 'never');
});

test('the forms are checked as the API checks them', () => {
  assert.equal(checkPassword('12345678'), null);
  assert.match(checkPassword('short'), /8 to 72/);
  assert.match(checkPassword('x'.repeat(73)), /8 to 72/);
  assert.equal(checkNewUser({ username: 'ann.b-1', role: 'dispatcher', password: 'secret-12' }), null);
  assert.match(checkNewUser({ username: '', role: 'dispatcher', password: 'secret-12' }), /username/);
  assert.match(checkNewUser({ username: 'a b', role: 'dispatcher', password: 'secret-12' }), /username/);
  assert.match(checkNewUser({ username: '<img>', role: 'admin', password: 'secret-12' }), /username/);
  assert.match(checkNewUser({ username: 'ann', role: 'driver', password: 'secret-12' }), /role/);
  assert.match(checkNewUser({ username: 'ann', role: 'admin', password: '1234' }), /password/);
  assert.equal(checkNewDevice({ driverId: 'D-17', name: 'Galaxy' }), null);
  assert.match(checkNewDevice({ driverId: 'D 17' }), /driver id/);
  assert.match(checkNewDevice({ driverId: 'D17', name: 'x'.repeat(129) }), /128/);
});

test('cleanUsers drops what is not a user', () => {
  const u = cleanUsers([{ username: 'ann', role: 'dispatcher', created: '2026-01-01T00:00:00Z' },
    { username: '<b>x</b>', role: 'admin' }, { username: 'bo', role: 'root' }, null, 'x',
    { username: 'cy', role: 'admin', disabled: 'yes' }]);
  assert.deepEqual(u.map((x) => [x.username, x.disabled]), [['ann', false], ['cy', false]]);
  assert.deepEqual(cleanUsers({}), []);
});

test('userActions: no lock-out of yourself, the last admin stays', () => {
  const users = [{ username: 'root', role: 'admin', disabled: false }, { username: 'ann', role: 'dispatcher', disabled: false },
    { username: 'old', role: 'admin', disabled: true }];
  const a = (name, me = 'root') => userActions(users.find((u) => u.username === name), me, users);
  assert.match(a('root').role, /yourself/);
  assert.match(a('root').disable, /yourself/);
  assert.match(a('root').remove, /yourself/);
  assert.equal(a('root').password, true);
  assert.deepEqual(a('ann'), { role: true, disable: true, remove: true, password: true });
  assert.deepEqual(a('old'), { role: true, disable: true, remove: true, password: true }); // enabling is always allowed
  // Another admin looking at root, the one enabled admin.
  assert.match(a('root', 'someone').role, /last admin cannot be demoted/);
  assert.match(a('root', 'someone').disable, /last admin cannot be disabled/);
  assert.match(a('root', 'someone').remove, /last admin cannot be deleted/);
  users[2].disabled = false;
  assert.equal(a('root', 'someone').remove, true);
});

test('battery and joinDevices', () => {
  assert.deepEqual(battery({ batt: 15 }), { text: '15 %', low: true });
  assert.deepEqual(battery({ batt: 15.4, battState: 'charging' }), { text: '15 % charging', low: false });
  assert.deepEqual(battery({ batt: 80, battState: '<script>' }), { text: '80 %', low: false });
  assert.deepEqual(battery(null), { text: '—', low: false });
  const rows = joinDevices([{ driverId: 'D2', name: 'b', created: 'x' }, { driverId: 'D1', name: 7 }, { driverId: 'bad id' }], {
    devices: { D1: { app: 'owntracks', batt: 50, lastFix: '2026-12-03T07:00:00Z' }, D2: { app: 'evil' } },
    presence: { D1: { state: 'online' } },
  });
  assert.deepEqual(rows.map((r) => [r.driverId, r.name, r.app, r.battery.text, r.lastSeen, r.presence]), [
    ['D1', '', 'OwnTracks', '50 %', '2026-12-03T07:00:00Z', 'online'],
    ['D2', 'b', '—', '—', '', 'unknown'],
  ]);
  assert.deepEqual(joinDevices([{ driverId: 'D1' }], null).map((r) => r.app), ['—']);
  assert.deepEqual(joinDevices(null, null), []);
});

test('cleanBackups and feedSummary', () => {
  const b = cleanBackups({ backups: { list: [{ file: 'a', at: '2026-12-01T00:00:00Z', bytes: 10 },
    { file: 'b', at: '2026-12-02T00:00:00Z', bytes: 20 }, { file: 'c', at: 'never' }, { at: '2026-12-02T00:00:00Z' }] } });
  assert.deepEqual(b.map((x) => x.file), ['b', 'a']);
  assert.deepEqual(cleanBackups({}), []);
  assert.deepEqual(feedSummary({ ok: true, routes: 3, source: 'demo' }), { text: 'ok (3 routes, demo)', bad: false });
  assert.deepEqual(feedSummary({ ok: false, error: 'timeout' }), { text: 'DOWN: timeout', bad: true });
  assert.equal(feedSummary(undefined).bad, true);
});
