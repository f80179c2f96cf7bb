// The VTO offers panel: newest first, an open offer's countdown on the
// server's clock (corrected by the offset measured at start, not the
// browser's), an answered one's state. The dashboard and the fleet page
// show it alike; neither has buttons in it.
import { el } from './dom.js';
import { OFFER_STATES } from './checks.js';

// renderOffers fills ul with offers (a Map of cleanOffer values).
export function renderOffers(ul, offers, serverNow) {
  const list = [...offers.values()].sort((a, b) => (Date.parse(b.offeredAt) || 0) - (Date.parse(a.offeredAt) || 0));
  if (!list.length) { ul.replaceChildren(el('li', { className: 'muted' }, 'No offers.')); return; }
  ul.replaceChildren(...list.map((o) => el('li', { dataset: { vto: o.vtoId } },
    el('span', null, el('b', null, o.routeCode), ' ', o.driverName, o.reason ? [' ', el('span', { className: 'muted' }, `· ${o.reason}`)] : null),
    o.state === 'open'
      ? el('span', { className: 'countdown', dataset: { expires: String(Date.parse(o.expiresAt)) } })
      : el('span', { className: 'st' + (OFFER_STATES.has(o.state) ? ' st-' + o.state : '') }, o.state))));
  updateCountdowns(serverNow);
}

// updateCountdowns brings every countdown on the page up to the clock.
export function updateCountdowns(serverNow) {
  document.querySelectorAll('.countdown').forEach((c) => {
    const exp = Number(c.dataset.expires);
    if (!Number.isFinite(exp)) { c.textContent = '—'; return; }
    const left = Math.max(0, Math.round((exp - serverNow()) / 1000));
    c.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  });
}
