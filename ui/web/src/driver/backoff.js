// Reconnecting: 1 s, doubling up to 30 s, each wait shortened by up to 30 %
// at random, so the phones of a depot that all lost it at once (the box
// restarted, the yard's Wi-Fi dropped) do not all come back in the same
// instant.
export function backoff(attempt, random = Math.random) {
  const base = Math.min(30000, 1000 * 2 ** Math.max(0, Math.min(attempt, 15)));
  return Math.round(base * (1 - 0.3 * random()));
}
