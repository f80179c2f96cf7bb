// Alarms: the rescue banner, its sound every 10 s until acknowledged, and
// a desktop notification per new rescue.
//
// Acknowledging is per screen (kept in sessionStorage): it silences the
// banner here; resolving closes the rescue for everyone.
import { $, el, hhmm } from './dom.js';
import { isObj } from './eventlog.js';
import { num, showNum, text } from './checks.js';

const ACK_KEY = 'depot.acked';
const BEEP_EVERY = 10000;

// loadAcked reads the acknowledged rescue ids; anything but a list of
// strings counts as none.
export function loadAcked(storage) {
  try {
    const a = JSON.parse(storage.getItem(ACK_KEY));
    return new Set(Array.isArray(a) ? a.filter((x) => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

// newestFirst orders rescues by the seq of their alert, newest first.
export function newestFirst(rescues) {
  return [...rescues].sort((a, b) => (num(b.seq) ?? 0) - (num(a.seq) ?? 0));
}

// alertText is the one line a notification says.
export function alertText(p) {
  const sr = isObj(p.struggleRoute) ? p.struggleRoute : {};
  return `${text(sr.routeCode)} (${text(sr.driverName)}) is ${showNum(sr.behindSchedule)} stops behind`;
}

export class Alarms {
  // state: the page's state (rescues). storage: where acks are kept.
  // resolve(id): the dispatcher closes a rescue.
  constructor({ state, storage, resolve }) {
    Object.assign(this, { state, storage, resolve });
    this.acked = loadAcked(storage);
    this.beepTimer = 0;
  }

  // askPermission asks once, after a sign-in (a user gesture), whether
  // the page may show notifications.
  askPermission() {
    if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
  }

  // raised shows a desktop notification for a new rescue alert p.
  raised(p) {
    if ('Notification' in window && Notification.permission === 'granted') {
      try { new Notification('Rescue needed', { body: alertText(p), tag: p.rescueId, requireInteraction: true }); } catch { /* ignore */ }
    }
  }

  ack(id) {
    this.acked.add(id);
    this.storage.setItem(ACK_KEY, JSON.stringify([...this.acked]));
    this.render();
  }

  // render draws the banner, and beeps while a rescue is not acknowledged.
  render() {
    let loud = false;
    $('rescues').replaceChildren(...newestFirst(this.state.rescues.values()).map((r) => {
      const isAcked = this.acked.has(r.rescueId);
      loud = loud || !isAcked;
      return this.banner(r, isAcked);
    }));
    clearInterval(this.beepTimer);
    if (loud) { beep(); this.beepTimer = setInterval(beep, BEEP_EVERY); }
  }

  banner(r, isAcked) {
    const p = isObj(r.alert) ? r.alert : {};
    const sr = isObj(p.struggleRoute) ? p.struggleRoute : { routeCode: r.routeId };
    const rd = isObj(p.rescueDriver) ? p.rescueDriver : null;
    const at = Date.parse(p.estimatedArrival);
    const eta = Number.isNaN(at) ? '' : hhmm(at);
    const tl = isObj(p.transferLocation) ? text(p.transferLocation.address) : '';
    return el('div', { className: 'rescue' + (isAcked ? ' acked' : ''), dataset: { rescue: r.rescueId } },
      el('span', { className: 'big' }, `▲ RESCUE ${text(sr.routeCode)}`),
      el('span', { className: 'grow' },
        `${text(sr.driverName)} is `, el('b', null, showNum(sr.behindSchedule)), ' stops behind. ',
        rd ? ['Send ', el('b', null, text(rd.driverName)),
          ` (${text(rd.performanceTier)}, ${showNum(rd.distanceKm)} km${eta ? ', ETA ' + eta : ''})`] : el('b', null, 'No rescuer available.'),
        tl ? ` to ${tl}` : '', ` · ${text(r.state)}`),
      isAcked ? null : el('button', { className: 'primary', dataset: { act: 'ack' }, onclick: () => this.ack(r.rescueId) }, 'Acknowledge'),
      el('button', { dataset: { act: 'resolve' }, onclick: () => this.resolve(r.rescueId) }, 'Resolve'));
  }
}

function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const o = ctx.createOscillator(); const g = ctx.createGain();
    o.type = 'square'; o.frequency.value = 880; g.gain.value = 0.08;
    o.connect(g).connect(ctx.destination); o.start();
    o.stop(ctx.currentTime + 0.35);
    setTimeout(() => ctx.close(), 600);
  } catch { /* no audio on this screen */ }
}
