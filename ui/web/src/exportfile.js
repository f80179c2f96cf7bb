// What the export buttons download, without the DOM: file names, the
// day's window, and what to say of an export cut short. Node's own test
// runner drives it (exportfile.test.js).

// TRAIL_FORMATS are the route history API's download formats, with the
// file extension and the button's name.
export const TRAIL_FORMATS = { gpx: { ext: 'gpx', label: 'GPX' }, csv: { ext: 'csv', label: 'CSV' }, geojson: { ext: 'geojson', label: 'GeoJSON' } };

// localDate is the browser's calendar date of ms: 2026-12-03.
export function localDate(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// safeName keeps a file name part to letters, digits, dot, dash and
// underscore (a route code comes from the network), at most 60 of them.
export function safeName(s) {
  const t = String(s ?? '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 60);
  return t || 'route';
}

// trailFile names a trail's download: CX07-2026-12-03.gpx, or with the
// last day too when the range spans days (its end as far as now).
export function trailFile(code, from, to, now, format) {
  const a = localDate(from);
  const b = localDate(Math.max(from, Math.min(to, now)));
  return `${safeName(code)}-${a}${b !== a ? '_' + b : ''}.${TRAIL_FORMATS[format].ext}`;
}

// trailURL is the history API's address of a route's trail in format.
export function trailURL(routeId, from, to, format) {
  return `api/v1/routes/${encodeURIComponent(routeId)}/history?from=${Math.floor(from)}&to=${Math.ceil(to)}&format=${encodeURIComponent(format)}`;
}

// dayWindow is the local day of ms: [its midnight, the next) in ms.
export function dayWindow(ms) {
  const a = new Date(ms); a.setHours(0, 0, 0, 0);
  const b = new Date(a); b.setDate(b.getDate() + 1);
  return { from: a.getTime(), to: b.getTime() };
}

// eventsURL is the events export's address of a window.
export function eventsURL({ from, to }) { return `api/v1/events/export?from=${from}&to=${to}&format=csv`; }

// cutNote says what an events export left out, from its headers
// (get(name)); '' when it is whole.
export function cutNote(get, fmtTime) {
  if (get('X-Export-Complete') !== 'false') return '';
  const through = Date.parse(get('X-Export-Through') || '');
  switch (get('X-Export-Cut')) {
    case 'pruned': return 'The start of the day is no longer kept: the file begins with the oldest events kept.';
    case 'rows': return 'The day has more rows than one file holds: the file ends early.';
    default: return 'The day has more events than one export reads' + (Number.isNaN(through) ? '' : `: the file ends at ${fmtTime(through)}`) + '.';
  }
}
