/**
 * Leak checks for tests that run the proxy in the test process: how many sockets and timers are
 * alive, from process.getActiveResourcesInfo() (ref'd handles only: TCPSocketWrap is one socket,
 * either end of a loopback connection; Timeout is one ref'd timer).
 *
 * A test takes resourceCounts() once its listeners are up, does its work, closes what it opened, then
 * calls expectNoLeaks(before): sockets and timers still closing are given up to ~2 s to go, and
 * anything left over fails the test with the list of what is still there.
 */

import { Socket } from 'node:net';

export interface ResourceCounts {
  sockets: number;
  timers: number;
  /** Every resource type with its count, for failure messages. */
  all: Record<string, number>;
}

export function resourceCounts(): ResourceCounts {
  const all: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) all[name] = (all[name] ?? 0) + 1;
  return { sockets: all.TCPSocketWrap ?? 0, timers: all.Timeout ?? 0, all };
}

function same(a: ResourceCounts, b: ResourceCounts): boolean {
  const keys = new Set([...Object.keys(a.all), ...Object.keys(b.all)]);
  for (const k of keys) if ((a.all[k] ?? 0) !== (b.all[k] ?? 0)) return false;
  return true;
}

export interface SettleOptions {
  /** Give up after this long and return the last counts (default 2000 ms). */
  maxMs?: number;
  /** Counts unchanged for this long count as settled (default 250 ms). */
  quietMs?: number;
  /** Return as soon as this holds, instead of waiting for quiet. */
  until?: (counts: ResourceCounts) => boolean;
}

/** Wait until the counts stop changing (or `until` holds), at most maxMs. The poll does not count itself. */
export async function settle(options: SettleOptions = {}): Promise<ResourceCounts> {
  const maxMs = options.maxMs ?? 2000;
  const quietMs = options.quietMs ?? 250;
  const deadline = Date.now() + maxMs;
  let last = resourceCounts();
  let stableSince = Date.now();
  for (;;) {
    if (options.until?.(last)) return last;
    if (Date.now() >= deadline) return last;
    await new Promise((resolve) => setTimeout(resolve, 25));
    // A timer still counts inside its own callback: measure from the next turn of the loop.
    const now = await new Promise<ResourceCounts>((resolve) => setImmediate(() => resolve(resourceCounts())));
    if (!same(now, last)) {
      last = now;
      stableSince = Date.now();
    } else if (options.until === undefined && Date.now() - stableSince >= quietMs) {
      return now;
    }
  }
}

export interface LeakAllowance {
  /** Sockets the test knowingly keeps open beyond `before` (default 0). */
  sockets?: number;
  /** Timers the test knowingly keeps beyond `before` (default 0). */
  timers?: number;
  maxMs?: number;
}

/** Resolves when sockets and timers are back to `before` (plus allowance); throws with the leftovers otherwise. */
export async function expectNoLeaks(before: ResourceCounts, allowance: LeakAllowance = {}): Promise<ResourceCounts> {
  const maxSockets = before.sockets + (allowance.sockets ?? 0);
  const maxTimers = before.timers + (allowance.timers ?? 0);
  const after = await settle({ maxMs: allowance.maxMs ?? 2000, until: (c) => c.sockets <= maxSockets && c.timers <= maxTimers });
  if (after.sockets > maxSockets || after.timers > maxTimers) {
    throw new Error(
      `leaked resources: sockets ${before.sockets} -> ${after.sockets} (allowed ${maxSockets}), ` +
        `timers ${before.timers} -> ${after.timers} (allowed ${maxTimers}); before ${JSON.stringify(before.all)}, after ${JSON.stringify(after.all)}`,
    );
  }
  return after;
}

/**
 * Every live net.Socket in this process (the proxy's included, since tests run it in-process), for
 * tests that watch how much the proxy buffers. process._getActiveHandles() is undocumented but
 * present in every Node release this project supports.
 */
export function liveSockets(): Socket[] {
  const p = process as unknown as { _getActiveHandles?: () => unknown[] };
  return (p._getActiveHandles?.() ?? []).filter((h): h is Socket => h instanceof Socket);
}

/**
 * Bytes the in-process proxy holds unsent on one client -> proxy -> node path: the write buffers of
 * its sockets toward the client (local port = the proxy's) and toward the node (remote port = the
 * node's, seen from outside the node).
 */
export function proxyBuffered(proxyPort: number, nodePort: number): number {
  return liveSockets()
    .filter((s) => s.localPort === proxyPort || (s.remotePort === nodePort && s.localPort !== nodePort))
    .reduce((n, s) => n + s.writableLength, 0);
}
