// The driver's position as the depot takes it (bridge.ParseFix), and how
// often it goes. No DOM here: node --test runs it (gps.test.js).

const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const finite = (x) => typeof x === 'number' && Number.isFinite(x);

// gpsPayload turns a GeolocationPosition into the depot's fix:
// {lat, lng, ts (ms, whole), acc (m), spd (m/s), hdg (°)}. Coordinates keep
// six decimals (about 10 cm), more than any phone is sure of. A speed or
// heading the phone does not know (null, or NaN when standing still) is
// left out rather than sent as 0, and so is one the depot would refuse
// (a negative speed, a heading past 360). null when there is no position.
export function gpsPayload(pos) {
  const c = pos && pos.coords;
  if (!c || !finite(c.latitude) || !finite(c.longitude) || !finite(pos.timestamp)) return null;
  const out = { lat: round(c.latitude, 6), lng: round(c.longitude, 6), ts: Math.round(pos.timestamp) };
  if (finite(c.accuracy) && c.accuracy >= 0) out.acc = round(c.accuracy, 1);
  if (finite(c.speed) && c.speed >= 0) out.spd = round(c.speed, 2);
  if (finite(c.heading) && c.heading >= 0 && c.heading <= 360) out.hdg = round(c.heading, 1);
  return out;
}

// Throttle lets a value through at most once every gap ms. What comes
// during the gap is held, newest only, and goes when the gap is over: the
// depot hears where the driver is, not where they were when the gap began.
export class Throttle {
  constructor(gap, send, { now = () => Date.now(), setTimeout: st, clearTimeout: ct } = {}) {
    this.gap = gap;
    this.send = send;
    this.clock = now;
    this.later = st || ((f, ms) => setTimeout(f, ms));
    this.cancel = ct || ((t) => clearTimeout(t));
    this.last = -Infinity;
    this.held = null;
    this.timer = 0;
  }

  push(x) {
    this.held = x;
    const wait = this.last + this.gap - this.clock();
    if (wait <= 0) this.flush();
    else if (!this.timer) this.timer = this.later(() => { this.timer = 0; this.flush(); }, wait);
  }

  // now sends x at once, gap or not (the dispatcher asked where the driver
  // is), and starts a new gap.
  now(x) {
    this.held = x;
    this.flush();
  }

  flush() {
    this.cancel(this.timer);
    this.timer = 0;
    if (this.held == null) return;
    const x = this.held;
    this.held = null;
    this.last = this.clock();
    this.send(x);
  }

  stop() {
    this.cancel(this.timer);
    this.timer = 0;
    this.held = null;
  }
}
