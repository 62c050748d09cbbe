/** Waiting in socket tests: for a condition, or for a promise, with a bound that names what was awaited. */

/** Resolve once `predicate` holds (polled every 5 ms); reject after `ms` naming `what`. */
export async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `p`, or a rejection naming `what` if it takes longer than `ms` (the timer is cleared either way). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(t),
  );
}
