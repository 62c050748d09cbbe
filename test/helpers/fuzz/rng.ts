/**
 * Seeded randomness for the fuzz harness: every case gets its own seed (printed with any problem,
 * so a case replays alone), and the two byte-level mutators every target uses.
 */

/** xoshiro128** seeded through splitmix32: fast, reproducible, good enough to pick mutations. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  u32(): number {
    const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c = (this.c ^ this.a) >>> 0;
    this.d = (this.d ^ this.b) >>> 0;
    this.b = (this.b ^ this.c) >>> 0;
    this.a = (this.a ^ this.d) >>> 0;
    this.c = (this.c ^ t) >>> 0;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** 0..n-1 */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** lo..hi inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

/** A copy with `count` random bits flipped. */
export function flipBits(data: Buffer, rng: Rng, count = 1 + rng.int(3)): Buffer {
  const out = Buffer.from(data);
  if (out.length === 0) return out;
  for (let i = 0; i < count; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
  return out;
}

/** 1..maxPieces views of `data`, cut at random points (pieces are written separately). */
export function splitRandomly(data: Buffer, rng: Rng, maxPieces = 3): Buffer[] {
  const cuts = new Set<number>();
  const pieces = rng.range(1, maxPieces);
  for (let i = 1; i < pieces && data.length > 1; i++) cuts.add(rng.range(1, data.length - 1));
  const points = [0, ...[...cuts].sort((x, y) => x - y), data.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < points.length; i++) if (points[i + 1] > points[i]) out.push(data.subarray(points[i], points[i + 1]));
  return out.length > 0 ? out : [data];
}
