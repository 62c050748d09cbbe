/**
 * A small pool of ephemeral ElligatorSwift keys made ahead of time, so that a new v2 connection
 * does not wait for its key (a scalar multiplication and the encoding, about half of one side's
 * handshake CPU; bench/README.md). V2Transport takes its key from here.
 *
 * Refilling happens off the hot path: one key per setImmediate() turn, so socket I/O that is
 * ready gets its turn between two keys. The immediate is not unref'd: an unref'd immediate does not
 * wake an idle event loop, so the pool would refill only when some I/O happened to arrive. (A
 * refill keeps the process alive for the few milliseconds it takes, at most `size` keys.) When the
 * pool is empty (a burst larger than the pool, or before the first refill) take() makes a key on
 * the spot, exactly as without a pool.
 *
 * Security: a pooled key is a fresh ephemeral key like any other, only made a little earlier.
 * - Each key is handed out once: take() removes it from the pool, which keeps no reference to it,
 *   so no two connections can ever share one. A key is never put back, not even when its
 *   connection fails before using it.
 * - The taker owns the private key and wipes it after the ECDH (V2Transport does, as before).
 *   clear() wipes the keys still waiting.
 * - Forward secrecy is unchanged: it rests on wiping a key once its session keys exist, and
 *   keys in the pool have not been used for any session yet. Someone able to read this process's
 *   memory sees at most the next `size` keys, which is no more than what they would see by
 *   reading the live connections' keys a moment later. So keys may wait in the pool for any time.
 * - Keys print as `EllSwiftKey { ellswift: ..., privateKey: [hidden] }` and serialise without the
 *   private key (ellswift.ts), so logging a key or the pool by mistake leaks nothing; the pool itself
 *   prints only its counts.
 */
import { inspect } from 'node:util';
import { type EllSwiftKey, ellswiftCreate } from './ellswift.js';

export const DEFAULT_KEY_POOL_SIZE = 16;

export class EphemeralKeyPool {
  private readonly keys: EllSwiftKey[] = [];
  private refill: NodeJS.Immediate | undefined;
  private madeOnDemand = 0;

  /**
   * @param size how many keys to hold at most (0 turns the pool off: every take() makes a key).
   * @param create makes one key; ellswiftCreate by default (tests pass their own).
   */
  constructor(
    readonly size: number = DEFAULT_KEY_POOL_SIZE,
    private readonly create: () => EllSwiftKey = ellswiftCreate,
  ) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`EphemeralKeyPool: size must be an integer >= 0, got ${size}`);
  }

  /** A key for one connection, never handed out before; the caller owns it and wipes its private key. */
  take(): EllSwiftKey {
    const pooled = this.keys.shift(); // oldest first, so no key waits longer than it must
    this.fill();
    if (pooled !== undefined) return pooled;
    this.madeOnDemand++;
    return this.create();
  }

  /** Starts refilling up to `size` in the background (a server calls this when it starts listening). */
  fill(): void {
    if (this.refill !== undefined || this.keys.length >= this.size) return;
    this.refill = setImmediate(() => {
      this.refill = undefined;
      if (this.keys.length < this.size) this.keys.push(this.create());
      this.fill();
    });
  }

  /** Keys ready now. */
  get available(): number {
    return this.keys.length;
  }

  /** How many take() calls found the pool empty and made their key on the spot. */
  get misses(): number {
    return this.madeOnDemand;
  }

  /** Stops refilling and wipes every key still in the pool. */
  clear(): void {
    if (this.refill !== undefined) clearImmediate(this.refill);
    this.refill = undefined;
    for (const k of this.keys.splice(0)) k.privateKey.fill(0);
  }

  [inspect.custom](): string {
    return `EphemeralKeyPool { size: ${this.size}, available: ${this.keys.length}, misses: ${this.madeOnDemand} }`;
  }

  toJSON(): { size: number; available: number; misses: number } {
    return { size: this.size, available: this.keys.length, misses: this.madeOnDemand };
  }
}

/** The process-wide pool V2Transport takes its keys from. */
export const ephemeralKeys = new EphemeralKeyPool();
