// The map: one icon per route (its colour, shape and code), a faint grid
// when there are no tiles, fitted once to the depot's routes.
import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import { el, SHAPES, RANK } from './dom.js';
import { num, statusOf, text } from './checks.js';

let map, layer;
let fitted = false;
const markers = new Map();
let onPick = null; // a click on a route's marker (setOnPick)
let selectedId = ''; // the route the drawer shows: its marker is ringed and on top (selectMarker)
// initMap draws the map in #map, centred on cfg.center, with a DEPOT marker
// there unless depotMarker is false (the fleet's centre is no depot).
export function initMap(cfg, { depotMarker = true } = {}) {
  map = L.map('map', { zoomControl: true, zoomSnap: 0.25, attributionControl: !!cfg.mapTiles, preferCanvas: true })
    .setView([cfg.center.lat, cfg.center.lng], 11);
  if (cfg.mapTiles) {
    L.tileLayer(cfg.mapTiles, { maxZoom: 19 }).addTo(map);
  } else {
    gridLayer().addTo(map);
  }
  if (depotMarker) {
    L.marker([cfg.center.lat, cfg.center.lng], {
      icon: L.divIcon({ className: 'depot-icon', iconSize: [18, 18] }), title: 'Depot', keyboard: false,
    }).addTo(map).bindTooltip('DEPOT', { permanent: true, direction: 'right', className: 'lbl' });
  }
  layer = L.layerGroup().addTo(map);
  map.on('zoomend', settle);
}

// A faint graticule stands in for tiles, so positions read as places even
// with no internet access.
function gridLayer() {
  const G = L.GridLayer.extend({
    createTile() {
      const c = document.createElement('canvas');
      const size = this.getTileSize();
      c.width = size.x; c.height = size.y;
      const g = c.getContext('2d');
      g.strokeStyle = '#1a2640'; g.lineWidth = 1;
      g.strokeRect(0.5, 0.5, size.x, size.y);
      return c;
    },
  });
  return new G();
}

// moved says whether a marker drawn at a would show anywhere else at b: a
// driver's one-second move is a fraction of a pixel at a depot's zoom, and
// moving an element by none still costs the page a frame. Where it is for
// real is kept (depotAt), for a zoom to put it right.
function moved(a, b) {
  const p = map.latLngToLayerPoint(a); const q = map.latLngToLayerPoint(b);
  return Math.abs(p.x - q.x) >= 1 || Math.abs(p.y - q.y) >= 1;
}

function settle() {
  for (const m of markers.values()) if (m.depotAt) m.setLatLng(m.depotAt);
}

// fitOnce fits the map to the routes the first time there are some (a
// moment later, so that every route has arrived).
export function fitOnce(center) {
  if (fitted || markers.size === 0) return;
  fitted = true;
  fitTimer = setTimeout(() => fitAll(center), 800);
}
let fitTimer = 0;

// clearMarkers takes every route off the map (the fleet page switching
// depots); the next routes placed are fitted again (fitOnce, fitNow).
export function clearMarkers() {
  if (layer) layer.clearLayers();
  markers.clear();
  fitted = false;
}

// fitNow fits the map to the routes placed (and center, if given) at once:
// after a switch the new depot's routes are all there already.
export function fitNow(center) {
  if (!map || markers.size === 0) return;
  fitted = true;
  fitAll(center);
}

// markerCount is how many routes are on the map.
export function markerCount() { return markers.size; }

// resize tells the map its box changed.
export function resize() { if (map) map.invalidateSize(); }

export function hasMap() { return !!map; }

// fitAll fits the map to every route's marker (and center), with room on
// the right for the codes beside them.
function fitAll(center, animate = true) {
  const pts = [...markers.values()].map((m) => m.depotAt || m.getLatLng());
  if (center) pts.push(L.latLng(center.lat, center.lng));
  if (pts.length > 1) map.fitBounds(L.latLngBounds(pts), { paddingTopLeft: [40, 40], paddingBottomRight: [90, 40], maxZoom: 15, animate });
  else if (pts.length === 1) map.setView(pts[0], 14, { animate }); // one route and no centre (the fleet page)
}

// fitRoutes fits the map to every route and center at once, without an
// animation (replay of all routes: the map may be zoomed on a drawer's
// trail).
export function fitRoutes(center) {
  if (!map || markers.size === 0) return;
  fitAll(center, false);
}

// allInView says whether every route's marker is on the map's view (for tests).
export function allInView() {
  if (!map) return false;
  const b = map.getBounds();
  for (const m of markers.values()) if (!b.contains(m.depotAt || m.getLatLng())) return false;
  return true;
}

// A route on the map is one marker whose icon holds its dot and its label.
// (A circle marker with a permanent tooltip made Leaflet read the tooltip's
// size, a forced layout, on every move.) A move sets a transform; only a
// new colour or label rebuilds the icon.
export function placeMarker(r) {
  const lat = num(r.currentLat); const lng = num(r.currentLng);
  if (!map || lat == null || lng == null || (lat === 0 && lng === 0)) return;
  const c = statusOf(r.statusColor);
  const label = text(r.routeCode) || text(r.routeId);
  let m = markers.get(r.routeId);
  if (!m) {
    m = L.marker([lat, lng], { keyboard: false, title: label, opacity: dimmed.has(r.routeId) ? DIM : 1 });
    const id = r.routeId;
    m.on('click', () => { if (onPick) onPick(id); });
    m.addTo(layer);
    markers.set(r.routeId, m);
  }
  m.depotAt = [lat, lng];
  const at = m.getLatLng();
  if ((at.lat !== lat || at.lng !== lng) && moved(at, m.depotAt)) m.setLatLng(m.depotAt);
  if (m.depotKey === c + label) return; // colour and label as they were
  m.depotKey = c + label;
  const shape = el('span', { className: 'shape' }, c === 'GREEN' ? '' : SHAPES[c]);
  // An element, not a string: Leaflet would parse a string as markup.
  const html = el('span', { dataset: { route: r.routeId } }, el('span', { className: 'dot' }), el('span', { className: 'tag' }, shape, label));
  m.setIcon(L.divIcon({ className: `route-icon ${c}`, html, iconSize: [16, 16], iconAnchor: [8, 8] }));
  m.depotRank = RANK[c];
  m.setZIndexOffset(r.routeId === selectedId ? 2000 : RANK[c] === 0 ? 1000 : 0);
  if (r.routeId === selectedId) ring(m, true);
}

function ring(m, on) {
  const e = m.getElement();
  if (e) e.classList.toggle('sel', on);
}

// selectMarker rings route id's marker and puts it on top ('' none).
export function selectMarker(id) {
  const old = markers.get(selectedId);
  if (old) { ring(old, false); old.setZIndexOffset(old.depotRank === 0 ? 1000 : 0); }
  selectedId = id;
  const m = markers.get(id);
  if (m) { ring(m, true); m.setZIndexOffset(2000); }
}

// dimMarker dims route id's marker (the table's filter hides its row),
// or shows it again. Leaflet keeps a marker's opacity across new icons.
const DIM = 0.2;
const dimmed = new Set();
export function dimMarker(id, dim) {
  if (dim) dimmed.add(id); else dimmed.delete(id);
  const m = markers.get(id);
  if (m && m.options.opacity !== (dim ? DIM : 1)) m.setOpacity(dim ? DIM : 1);
}

// setOnPick sets what a click on a route's marker does: fn(routeId).
export function setOnPick(fn) { onPick = fn; }

// ---- the selected route's trail (drawer.js) ----
// One line on the canvas (preferCanvas), stops as small markers with a
// tooltip of text (an element, never markup).
let trailLine = null;
let stopLayer = null;

// setTrail draws the trail anew through pts ({lat, lng}); extendTrail
// adds pts at its end (a live fix: no redraw of the day).
export function setTrail(pts) {
  if (!map) return;
  const ll = pts.map((p) => [p.lat, p.lng]);
  if (!trailLine) trailLine = L.polyline(ll, { color: '#38bdf8', weight: 3, opacity: 0.85, interactive: false }).addTo(map);
  else trailLine.setLatLngs(ll);
}

export function extendTrail(pts) {
  if (!map) return;
  if (!trailLine) { setTrail(pts); return; }
  for (const p of pts) trailLine.addLatLng([p.lat, p.lng]);
}

// setStops marks stops: [{lat, lng, title}].
export function setStops(stops) {
  if (!map) return;
  if (!stopLayer) stopLayer = L.layerGroup().addTo(map);
  stopLayer.clearLayers();
  for (const s of stops) {
    L.marker([s.lat, s.lng], { keyboard: false, title: s.title, zIndexOffset: -500,
      icon: L.divIcon({ className: 'stop-icon', html: el('span', { className: 'stop-dot', 'aria-label': s.title }), iconSize: [12, 12], iconAnchor: [6, 6] }) })
      .addTo(stopLayer);
  }
}

// clearTrail takes the trail and its stops off the map.
export function clearTrail() {
  if (trailLine) { trailLine.remove(); trailLine = null; }
  if (stopLayer) stopLayer.clearLayers();
}

// fitTrail shows the whole trail (or the one point there is). A first
// fit still waiting (fitOnce) is dropped: it would zoom out of the trail
// of a drawer opened by the address as the page loads.
export function fitTrail(pts) {
  if (!map || pts.length === 0) return;
  clearTimeout(fitTimer);
  fitted = true;
  if (pts.length === 1) map.setView([pts[0].lat, pts[0].lng], Math.max(map.getZoom(), 14), { animate: false });
  else map.fitBounds(L.latLngBounds(pts.map((p) => [p.lat, p.lng])), { padding: [40, 40], maxZoom: 16, animate: false });
}

// keepInView pans the map to p when p is outside its inner part (follow
// mode): a driver moving within the view moves no map. Says whether it
// panned.
export function keepInView(p) {
  if (!map) return false;
  const ll = L.latLng(p.lat, p.lng);
  if (map.getBounds().pad(-0.2).contains(ll)) return false;
  map.panTo(ll, { animate: false });
  return true;
}

// apart says whether a and b ({lat, lng}) are a pixel or more apart on
// the map as it is zoomed: a line extended by less shows nothing new.
export function apart(a, b) { return !map || moved([a.lat, a.lng], [b.lat, b.lng]); }

// trailLength is how many points the trail's line has (for tests).
export function trailLength() { return trailLine ? trailLine.getLatLngs().length : 0; }

// inView says whether p is on the map's view.
export function inView(p) { return !!map && map.getBounds().contains(L.latLng(p.lat, p.lng)); }

// onUserPan calls fn when the dispatcher drags the map (our own pans are
// no drags).
export function onUserPan(fn) { if (map) map.on('dragstart', fn); }

// onZoomEnd calls fn after every zoom.
export function onZoomEnd(fn) { if (map) map.on('zoomend', fn); }

// ---- replay (replayview.js) ----
// Replay's markers are a layer of their own over the live ones, which are
// only dimmed meanwhile (their layer and markers are untouched: closing
// the replay shows them as the live view left them).
let replayLayer = null;
let replayStep = 0; // half a pixel in degrees at the map's zoom: a smaller move is not drawn

function replayScale() {
  replayStep = map ? 0.5 * 360 / (256 * 2 ** map.getZoom()) * Math.cos(map.getCenter().lat * Math.PI / 180) : 0;
}

// replayMarker makes route id's replay marker (not on the map until it is
// moved): a ring with its label, text.
export function replayMarker(id, label) {
  if (!map) return null;
  if (!replayLayer) { replayLayer = L.layerGroup().addTo(map); map.on('zoomend', replayScale); replayScale(); }
  const html = el('span', { dataset: { replay: id } }, el('span', { className: 'dot' }), el('span', { className: 'tag' }, label));
  const m = L.marker([0, 0], { keyboard: false, interactive: false, title: label, zIndexOffset: 3000,
    icon: L.divIcon({ className: 'replay-icon', html, iconSize: [16, 16], iconAnchor: [8, 8] }) });
  return { m, on: false, lat: 0, lng: 0 };
}

// moveReplayMarker shows h at lat, lng (a move of under half a pixel is
// not drawn).
export function moveReplayMarker(h, lat, lng) {
  if (!h) return;
  if (!h.on) {
    h.lat = lat; h.lng = lng; h.on = true;
    h.m.setLatLng([lat, lng]).addTo(replayLayer);
    return;
  }
  if (Math.abs(lat - h.lat) < replayStep && Math.abs(lng - h.lng) < replayStep) return;
  h.lat = lat; h.lng = lng;
  h.m.setLatLng([lat, lng]);
}

// hideReplayMarker takes h off the map.
export function hideReplayMarker(h) {
  if (h && h.on) { h.on = false; h.m.remove(); }
}

// clearReplay takes every replay marker off the map.
export function clearReplay() { if (replayLayer) replayLayer.clearLayers(); }

// dimLive dims the live markers (and trail) while a replay shows.
export function dimLive(on) { if (map) map.getContainer().classList.toggle('replaying', on); }

