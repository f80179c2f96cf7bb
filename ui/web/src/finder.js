// The find box and the status filter above the route table, and the
// keyboard that reaches them: / focuses the find box (not while typing
// elsewhere), Enter opens the first route that shows, Esc clears it
// (docs/workspace.md, Keyboard and filters). Which routes match is
// filter.js's; the table applies it on its own redraw (the clock's tick),
// so live updates move routes in and out of it at no extra cost; only the
// dispatcher's own change redraws at once.
import { $ } from './dom.js';
import { newFilter, active, matches, filterFromHash, hashWithFilter, STATUS_WORDS } from './filter.js';

// typing says whether a key pressed at target is someone typing.
export function typing(target) {
  return !!target && (target.isContentEditable || (typeof target.closest === 'function' && !!target.closest('input, textarea, select')));
}

export class Finder {
  // state: the page's (state.filter shows the filter, for tests). table:
  // the RouteTable. open(routeId): opens the drawer. onShow(routeId, on):
  // a route's row went in or out (the map dims its marker).
  constructor({ state, table, open, onShow }) {
    Object.assign(this, { state, table, open, onShow });
    this.filter = newFilter();
    this.info = state.filter = { q: '', statuses: '' };
    Object.defineProperty(this.info, 'shown', { get: () => this.table.shown, enumerable: true });
    const input = $('find');
    input.addEventListener('input', () => this.set(newFilter(input.value, this.filter.colours)));
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        const first = [...document.querySelectorAll('#routes tbody tr')].find((tr) => !tr.hidden);
        if (first) this.open(first.dataset.route);
      } else if (e.key === 'Escape' && input.value !== '') {
        // Esc clears the box first; with nothing in it, Esc leaves it (and
        // closes the drawer, whose own Esc this lets through).
        e.preventDefault();
        e.stopPropagation();
        input.value = '';
        this.set(newFilter('', this.filter.colours));
      } else if (e.key === 'Escape') {
        input.blur();
      }
    });
    for (const b of document.querySelectorAll('#status-filter button[data-status]')) {
      b.addEventListener('click', () => {
        const c = STATUS_WORDS[b.dataset.status];
        const colours = new Set(this.filter.colours);
        if (colours.has(c)) colours.delete(c); else colours.add(c);
        this.set(newFilter(this.filter.q, colours));
      });
    }
    $('filter-clear').addEventListener('click', () => { input.value = ''; this.set(newFilter()); input.focus(); });
    document.addEventListener('keydown', (e) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || $('dlg').open || !$('login').hidden) return;
      e.preventDefault();
      input.focus();
      input.select();
    });
    window.addEventListener('hashchange', () => this.fromHash());
  }

  // fromHash takes the filter the address names (a reload keeps it).
  fromHash() {
    const f = filterFromHash(location.hash);
    if ($('find') !== document.activeElement) $('find').value = f.q;
    this.set(f, { write: false });
  }

  // set applies filter f: the table's rows and the map's markers, the
  // buttons, the address (unless write is false).
  set(f, { write = true } = {}) {
    this.filter = f;
    this.info.q = f.q;
    this.info.statuses = [...f.colours].sort().join(',');
    this.table.setFilter(active(f) ? (r) => matches(r, f) : null, this.onShow);
    for (const b of document.querySelectorAll('#status-filter button[data-status]')) {
      const on = String(f.colours.has(STATUS_WORDS[b.dataset.status]));
      if (b.getAttribute('aria-pressed') !== on) b.setAttribute('aria-pressed', on);
    }
    $('filter-clear').hidden = !active(f);
    if (write) {
      const h = hashWithFilter(location.hash, f);
      if (h !== location.hash) history.replaceState(null, '', h || location.pathname + location.search);
    }
    if (this.state.synced) this.table.render(); // the dispatcher's own change shows at once
  }
}
