/**
 * Traffic shaping (issue 13): decoy packets that hide from an observer on the path the size and the
 * moment of what we send on a v2 session. BIP324 ("Packet encryption") gives every packet a header
 * bit that tells the receiver to authenticate the packet and drop it; a conforming receiver (Bitcoin
 * Core's V2Transport, ours) does exactly that. The packet's length field is encrypted too, so the
 * observer sees neither which packets are decoys nor where one packet ends: only the size and time
 * of the TCP segments.
 *
 * Sans-I/O: this file decides how many decoy bytes to send and when; the session engine
 * (bridge.ts) encrypts them with the session's own cipher (same keys, same rekeying every 224
 * packets as real packets), writes them and owns the timer.
 *
 * - pad: a write burst (the packets that one read of the local side, or one reply of the handshake,
 *   produced, written at once) gets decoys after its real packets, in the same write, so that its
 *   wire size is a step of PAD_LADDER. Nothing is ever sent on its own.
 * - cover: the same with the coarser COVER_LADDER, plus cover bursts: a clock ticks at
 *   exponentially distributed intervals (a Poisson process) and each tick sends one decoy of a
 *   size drawn from COVER_SIZES, the classes a transaction broadcast falls in once padded. The
 *   mean interval is the mean cover size divided by the rate, so cover averages `rate` bytes per
 *   second. A tick that finds data of ours still waiting in the socket's buffer is skipped: cover
 *   only fills idle time, and never queues ahead of a real message.
 *
 * Bounded: per connection a few numbers and one timer; the decoy contents are one shared buffer
 * of zeros (they are encrypted, so their value does not matter).
 */
import { randomInt } from 'node:crypto';
import { V2_PACKET_OVERHEAD } from '../limits.js';

export const SHAPE_MODES = ['off', 'pad', 'cover'] as const;
export type ShapeMode = (typeof SHAPE_MODES)[number];

export interface ShapingOptions {
  mode: ShapeMode;
  /** cover: average bytes per second of cover on each connection. */
  rate: number;
}

/** The smallest decoy packet on the wire: 3-byte length, header byte, 16-byte tag, empty contents. */
export const MIN_DECOY = V2_PACKET_OVERHEAD;

/**
 * The ladders, as the wire sizes a burst may have (above the last step, multiples of a quarter of
 * it), chosen on the scripted mix of bench/shaping-model.ts (bench/README.md, "Traffic shaping"):
 * - pad: steps 25 % apart from 64 bytes (rounded up to 16), so that padding costs at most a
 *   quarter of a burst plus one decoy's 20 bytes: +26 % on that mix on paper, +25.3 % measured
 *   through the proxy, where 256-byte steps cost +102 % (most of what a node sends is invs and
 *   getdatas under 300 bytes).
 *   It hides exact sizes (a transaction's exact size picks it out of the public mempool), not
 *   which kind of message was sent.
 * - cover: 384-byte steps to 4 KiB, then powers of two. Coarse, so that the common small messages
 *   (ping, pong, inv and getdata of up to 9 items, headers announcements, and the usual 1-input
 *   2-output payment) all weigh 384 bytes on the wire and cover bursts can be mistaken for any of
 *   them. +166 % on that mix on paper: costly for a quiet connection, but under cover the rate
 *   dominates the bytes anyway.
 */
export const PAD_LADDER: readonly number[] = geometricLadder(64, 1.25, 64 * 1024);
export const COVER_LADDER: readonly number[] = makeLadder(384, 4096, 64 * 1024);

/** Steps from `first`, each `ratio` times the one before, rounded up to a multiple of 16, up to `top`. */
export function geometricLadder(first: number, ratio: number, top: number): number[] {
  const out: number[] = [];
  for (let s = first; ; s *= ratio) {
    const step = Math.ceil(s / 16) * 16;
    // The last step before `top` is dropped when it would sit closer to `top` than the ratio.
    if (step >= top / Math.sqrt(ratio)) break;
    if (out[out.length - 1] !== step) out.push(step);
  }
  out.push(top);
  return out;
}

/** Multiples of `step` up to `linearTop`, then powers of two up to `top`. */
export function makeLadder(step: number, linearTop: number, top: number): number[] {
  const out: number[] = [];
  for (let s = step; s <= linearTop; s += step) out.push(s);
  for (let s = 2 ** Math.ceil(Math.log2(out[out.length - 1] + 1)); s <= top; s *= 2) out.push(s);
  return out;
}

/** The ladder each mode pads to. */
export function ladderFor(mode: ShapeMode): readonly number[] | undefined {
  return mode === 'pad' ? PAD_LADDER : mode === 'cover' ? COVER_LADDER : undefined;
}

/**
 * The first step of `ladder` (sorted ascending) at or above `n` that leaves no gap, or a gap a
 * decoy can fill: a gap of 1..19 bytes moves to the next step, since a decoy is never smaller than
 * its own 20 bytes of overhead. Above the last step, the next multiple of a quarter of it that does.
 */
export function ladderTarget(n: number, ladder: readonly number[]): number {
  if (n <= 0) return 0;
  const fits = (t: number): boolean => t === n || t - n >= MIN_DECOY;
  let lo = 0;
  let hi = ladder.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ladder[mid] < n) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < ladder.length; i++) if (fits(ladder[i])) return ladder[i];
  // Above the last step, multiples of a quarter of it: at most +25 % there too, and a few % on a block.
  const unit = ladder[ladder.length - 1] / 4;
  let t = Math.ceil(n / unit) * unit;
  if (!fits(t)) t += unit;
  return t;
}

/** Decoys bigger than this are split (a gap is below the top step, 64 KiB, so one decoy nearly always does). */
const MAX_DECOY_CONTENTS = 64 * 1024;

/** Contents lengths of decoy packets whose wire sizes add up to `gap` (0, or at least MIN_DECOY). */
export function decoyContents(gap: number): number[] {
  if (gap === 0) return [];
  if (gap < MIN_DECOY) throw new RangeError(`a gap of ${gap} bytes cannot be filled with decoys (at least ${MIN_DECOY})`);
  const out: number[] = [];
  let rest = gap;
  while (rest > MAX_DECOY_CONTENTS + MIN_DECOY) {
    // Leave at least MIN_DECOY for the last one.
    const take = Math.min(MAX_DECOY_CONTENTS, rest - 2 * MIN_DECOY);
    out.push(take);
    rest -= take + MIN_DECOY;
  }
  out.push(rest - MIN_DECOY);
  return out;
}

/** Shared decoy contents: zeros, encrypted like any contents, never written to. */
export const DECOY_ZEROS = Buffer.alloc(MAX_DECOY_CONTENTS);

/**
 * The wire sizes of cover bursts, drawn uniformly from this list: the sizes a transaction
 * broadcast takes under COVER_LADDER, in about the shares it takes them (bench/README.md,
 * "Traffic shaping": 384 bytes 55 %, 768 30 %, 1152 10 %, 1920 5 %), so that the size of a burst
 * says little about whether it carried a transaction. (Only 384 and 768, for more bursts per byte,
 * measured worse through the proxy: the larger broadcasts then stood out by size.) The largest
 * also bounds what a real message can find ahead of it on the wire: one cover burst.
 */
export const COVER_SIZES: readonly number[] = [...Array<number>(11).fill(384), ...Array<number>(6).fill(768), 1152, 1152, 1920];

/** A uniform random number in [0, 1), from the CSPRNG: the observer must not predict the next tick. */
export function cryptoUniform(): number {
  return randomInt(2 ** 47) / 2 ** 47;
}

/**
 * The cover clock of one connection: when the next tick is due, and what it carries. `random`
 * returns uniform numbers in [0, 1) (the bench passes a seeded one).
 */
export class CoverClock {
  /** Mean interval between ticks: mean cover size / rate. */
  readonly meanDelayMs: number;

  constructor(
    rate: number,
    private readonly random: () => number = cryptoUniform,
    private readonly sizes: readonly number[] = COVER_SIZES,
  ) {
    if (!(rate > 0)) throw new RangeError('cover rate must be above 0');
    const meanSize = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    this.meanDelayMs = (1000 * meanSize) / rate;
  }

  /**
   * Milliseconds until the next tick, exponentially distributed: memoryless, so that the time
   * from any moment (a real burst's, say) back to the last tick is distributed like the gap
   * between two ticks, and a real burst does not stand out by falling closer to its neighbours.
   */
  nextDelayMs(): number {
    // 1 - u is in (0, 1], so the logarithm is finite.
    return -Math.log(1 - this.random()) * this.meanDelayMs;
  }

  /** The wire size of the cover burst a tick sends. */
  burstSize(): number {
    return this.sizes[Math.min(this.sizes.length - 1, Math.floor(this.random() * this.sizes.length))];
  }
}
