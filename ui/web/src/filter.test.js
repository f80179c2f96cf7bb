// The route filter and the address: node --test ui/web/src/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matches, newFilter, active, countText, normQuery, readHash, writeHash, withParams, filterFromHash,
  statusParam, hashWithFilter, MAX_QUERY } from './filter.js';
import { routeFromHash } from './drawerview.js';

const r = (code, name, colour, extra = {}) => ({ routeId: 'R-' + code, routeCode: code, driverName: name, driverId: 'D-' + code, statusColor: colour, ...extra });

test('the find box matches code or driver name, any case, any part', () => {
  const cx07 = r('CX07', 'Ana Silva', 'YELLOW');
  assert.ok(matches(cx07, newFilter('')));
  assert.ok(matches(cx07, newFilter('cx07')));
  assert.ok(matches(cx07, newFilter('X0')));
  assert.ok(matches(cx07, newFilter('  ana ')));
  assert.ok(matches(cx07, newFilter('SILVA')));
  assert.ok(!matches(cx07, newFilter('ben')));
  assert.ok(!matches(cx07, newFilter('R-CX07')), 'the id is not what the table shows');
  // No code or name: the ids the table shows instead.
  assert.ok(matches({ routeId: 'R9', driverId: 'D77' }, newFilter('d77')));
  assert.ok(matches({ routeId: 'R9', driverId: 'D77' }, newFilter('r9')));
  // Nonsense from the network matches nothing but an empty query.
  assert.ok(!matches({ routeCode: 42, driverName: { toLowerCase: 1 } }, newFilter('4')));
  assert.ok(matches({ routeCode: 42 }, newFilter('')));
});

test('the status filter keeps the chosen statuses; none chosen keeps all', () => {
  const list = [r('A', 'a', 'RED'), r('B', 'b', 'YELLOW'), r('C', 'c', 'GREEN'), r('D', 'd', null), r('E', 'e', 'PURPLE')];
  const shown = (f) => list.filter((x) => matches(x, f)).map((x) => x.routeCode).join('');
  assert.equal(shown(newFilter()), 'ABCDE');
  assert.equal(shown(newFilter('', ['YELLOW'])), 'B');
  assert.equal(shown(newFilter('', ['RED', 'YELLOW'])), 'AB');
  assert.equal(shown(newFilter('', ['GREEN', 'UNKNOWN', 'toString'])), 'C', 'only the three statuses');
  assert.equal(shown(newFilter('b', ['RED', 'YELLOW'])), 'B');
  assert.equal(active(newFilter()), false);
  assert.equal(active(newFilter('x')), true);
  assert.equal(active(newFilter('', ['RED'])), true);
});

test('a route that changes status moves in and out of the filter', () => {
  const f = newFilter('', ['RED']);
  const x = r('CX01', 'Ana', 'YELLOW');
  assert.ok(!matches(x, f));
  x.statusColor = 'RED';
  assert.ok(matches(x, f));
});

test('queries are trimmed, lower case and bounded', () => {
  assert.equal(normQuery('  AnA '), 'ana');
  assert.equal(normQuery(undefined), '');
  assert.equal(normQuery(7), '');
  assert.equal(normQuery('x'.repeat(500)).length, MAX_QUERY);
});

test('the count says how many of how many', () => {
  assert.equal(countText(30, 30, false), '30 routes');
  assert.equal(countText(12, 30, true), '12 of 30 routes');
  assert.equal(countText(1, 1, false), '1 route');
  assert.equal(countText(0, 1, true), '0 of 1 route');
});

test('the address keeps the route, the statuses and the query', () => {
  const f = newFilter('Ana', ['RED', 'YELLOW']);
  assert.equal(statusParam(f), 'rescue,behind');
  assert.equal(hashWithFilter('#route=CX07', f), '#route=CX07&status=rescue,behind&q=ana');
  assert.equal(hashWithFilter('', newFilter('a&b=c#d')), '#q=a%26b%3Dc%23d');
  assert.equal(hashWithFilter('#route=R1&status=behind&q=x', newFilter()), '#route=R1');
  assert.equal(hashWithFilter('', newFilter()), '');
  const back = filterFromHash('#route=CX07&status=rescue,behind&q=ana');
  assert.deepEqual([...back.colours], ['RED', 'YELLOW']);
  assert.equal(back.q, 'ana');
  assert.equal(filterFromHash('#q=a%26b%3Dc%23d').q, 'a&b=c#d');
  assert.deepEqual([...filterFromHash('#status=purple,,behind,__proto__').colours], ['YELLOW']);
  assert.equal(filterFromHash('#q=%E0%A4%A').q, '', 'a broken encoding is no query');
  assert.equal(active(filterFromHash('')), false);
  // The route goes first; other parts are kept, whoever wrote them.
  assert.equal(withParams('#q=ana&replay=5', { route: 'R 1&2' }), '#route=R%201%262&q=ana&replay=5');
  assert.equal(withParams('#route=R1&q=ana', { route: '' }), '#q=ana');
  assert.deepEqual([...readHash('#a=1&&=2&b&c=')], [['a', '1']]);
  assert.equal(writeHash(new Map([['q', 'x'], ['route', 'R1']])), '#route=R1&q=x');
});

test('the drawer reads its route among the filter', () => {
  assert.equal(routeFromHash('#route=CX07&status=behind&q=ana'), 'CX07');
  assert.equal(routeFromHash('#status=behind&route=R%2012'), 'R 12');
  assert.equal(routeFromHash('#status=behind&q=ana'), '');
});
