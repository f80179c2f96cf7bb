export const $ = (id) => document.getElementById(id);

// Building the page.
// The page never turns data into markup: every value from the network
// becomes a text node or passes a check first (a colour is one of three, a
// count a finite number). el is the one way elements are made.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'className') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'onclick') e.onclick = v;
    else if (/^(on|style$|src$|href$)/i.test(k)) throw new Error('el: attribute ' + k + ' is not set this way');
    else e.setAttribute(k, v);
  }
  e.append(...children.flat().filter((c) => c != null && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return e;
}

// How a route's state looks: a shape and a word besides the colour, for
// those who cannot tell the colours apart.
export const SHAPES = { RED: '▲', YELLOW: '◆', GREEN: '●', UNKNOWN: '?' };
export const WORDS = { RED: 'RESCUE', YELLOW: 'BEHIND', GREEN: 'ON TIME', UNKNOWN: 'UNKNOWN' };
export const RANK = { RED: 0, YELLOW: 1, GREEN: 2, UNKNOWN: 3 };
export const PRESENCE = { online: '●', offline: '○', silent: '◌' };

// Times of day as the page shows them, in the browser's locale.
export const hhmm = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
export const hhmmss = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
