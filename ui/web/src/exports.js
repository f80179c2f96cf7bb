// Downloads: the drawer's trail as GPX, CSV or GeoJSON (the range the
// trail shows), and the day's events as CSV (docs/workspace.md, Exports).
//
// The API wants the login token in a header (the page keeps no cookie),
// so a plain link cannot download: the page fetches the file, makes it an
// object URL and clicks a temporary <a download> for it. The page's
// Content-Security-Policy needs nothing more for that (a download is no
// fetch, script or image the policy governs).
import { $, hhmm } from './dom.js';
import { SESSION_ENDED } from './login.js';
import { TRAIL_FORMATS, trailFile, trailURL, dayWindow, eventsURL, localDate, cutNote } from './exportfile.js';


// download fetches path with the session's token and saves it as name.
// It returns the answer's headers; a refusal throws with the API's error.
export async function download(session, path, name) {
  if (!session.auth) throw new Error('signed out');
  const r = await fetch(path, { cache: 'no-store', headers: { Authorization: 'Bearer ' + session.auth.token } });
  if (r.status === 401) {
    session.end(SESSION_ENDED);
    throw new Error('unauthorized');
  }
  if (!r.ok) {
    const d = await r.json().catch(() => ({}));
    throw new Error((d && typeof d.error === 'string' && d.error) || 'HTTP ' + r.status);
  }
  const blob = await r.blob();
  const url = URL.createObjectURL(blob); // ours: no address from the network
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started from the object URL by now; it goes later.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return r.headers;
}

// initExports wires the drawer's trail buttons and the header's day's
// events button. state.exports counts the downloads (for tests).
export function initExports({ state, session, drawer, serverNow }) {
  const info = state.exports = { started: 0, done: 0, failed: 0, last: '' };
  const run = async (btn, msg, path, name, after) => {
    btn.disabled = true;
    info.started++;
    msg.textContent = `Downloading ${name}…`;
    try {
      const headers = await download(session, path, name);
      info.done++;
      info.last = name;
      msg.textContent = after ? after(headers) || `Downloaded ${name}.` : `Downloaded ${name}.`;
    } catch (e) {
      info.failed++;
      msg.textContent = `Could not download ${name}: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  };
  for (const format of Object.keys(TRAIL_FORMATS)) {
    const btn = $(`export-${format}`);
    btn.addEventListener('click', () => {
      const range = drawer.range || drawer.pickedRange();
      if (!drawer.id || !range) { $('export-msg').textContent = 'Pick a range first.'; return; }
      const r = drawer.route();
      const code = (r && typeof r.routeCode === 'string' && r.routeCode) || drawer.id;
      run(btn, $('export-msg'), trailURL(drawer.id, range.from, range.to, format), trailFile(code, range.from, range.to, serverNow(), format));
    });
  }
  const btn = $('export-events');
  btn.addEventListener('click', () => {
    const w = dayWindow(serverNow());
    run(btn, $('export-events-msg'), eventsURL(w), `events-${localDate(w.from)}.csv`, (h) => cutNote((k) => h.get(k), hhmm));
  });
}
