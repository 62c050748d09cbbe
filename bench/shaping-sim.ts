/**
 * Offline comparison of shaping candidates on the scripted mix (bench/shaping-model.ts): pad
 * ladders and cover settings, each applied to the same scripts exactly as the proxy would apply
 * it (ladderTarget from src/engine/shaper.ts, the CoverClock with a seeded random source), then
 * the same classifier as the live run. No sockets: it answers "which ladder, which cover sizes"
 * before the live run (bench/shaping.ts) measures the one chosen.
 *
 *   node dist/bench/shaping-sim.js [traces] [seconds] [rates, e.g. 1024,4096] [clocks]
 *
 * With `clocks`, only the cover clock is compared: the shipped Poisson clock against the one it
 * replaced, under the cover ladder.
 */
import { COVER_SIZES, CoverClock, ladderTarget, makeLadder } from '../src/engine/shaper.js';
import { type Burst, type Trace, evaluate, median, mixScript, seeded, v2WireSize } from './shaping-model.js';

export interface Ladder {
  name: string;
  target: (n: number) => number;
}

/** Geometric steps from `first` by `ratio`, rounded up to multiples of 16, up to 64 KiB. */
function geometric(first: number, ratio: number): number[] {
  const out: number[] = [];
  for (let s = first; s <= 65536; s *= ratio) {
    const r = Math.ceil(s / 16) * 16;
    if (out[out.length - 1] !== r) out.push(r);
  }
  return out;
}

export const LADDERS: Ladder[] = [
  { name: 'none (off)', target: (n) => n },
  ...(
    [
      ['32 B steps to 512 B, then 2^k', makeLadder(32, 512, 65536)],
      ['64 B steps to 1 KiB, then 2^k', makeLadder(64, 1024, 65536)],
      ['128 B steps to 2 KiB, then 2^k', makeLadder(128, 2048, 65536)],
      ['256 B steps to 4 KiB, then 2^k', makeLadder(256, 4096, 65536)],
      ['384 B steps to 4 KiB, then 2^k', makeLadder(384, 4096, 65536)],
      ['512 B steps to 4 KiB, then 2^k', makeLadder(512, 4096, 65536)],
      ['x1.25 from 64 B', geometric(64, 1.25)],
      ['x1.5 from 64 B', geometric(64, 1.5)],
      ['x2 from 64 B', geometric(64, 2)],
      ['x1.5 from 128 B', geometric(128, 1.5)],
    ] as [string, number[]][]
  ).map(([name, steps]) => ({ name, target: (n: number) => ladderTarget(n, steps) })),
];

export interface CoverCandidate {
  name: string;
  sizes: readonly number[];
  /** The shipped CoverClock (Poisson), or the clock it replaced (half the ticks short follow-ups). */
  clock?: 'poisson' | 'follow-ups';
}

/**
 * The cover clock shipped until 2026-12-02, for comparison: half the ticks a "follow-up" 3-40 % of
 * the mean interval after the previous one (meant to look like a round trip), half exponential
 * with the mean that keeps the average interval at mean size / rate.
 */
class FollowUpClock {
  private readonly mean: number;
  private readonly exponentialMean: number;
  constructor(
    rate: number,
    private readonly random: () => number,
    private readonly sizes: readonly number[],
  ) {
    this.mean = (1000 * (sizes.reduce((a, b) => a + b, 0) / sizes.length)) / rate;
    this.exponentialMean = (this.mean - 0.5 * ((0.03 + 0.4) / 2) * this.mean) / 0.5;
  }
  nextDelayMs(): number {
    if (this.random() < 0.5) return (0.03 + 0.37 * this.random()) * this.mean;
    return -Math.log(1 - this.random()) * this.exponentialMean;
  }
  burstSize(): number {
    return this.sizes[Math.floor(this.random() * this.sizes.length)];
  }
}

/** The real bursts of one script: one per event (the client writes each event at once), padded. */
function realBursts(seed: number, seconds: number, target: (n: number) => number): Burst[] {
  return mixScript(seed, seconds).map((e) => ({ at: e.at, bytes: target(e.messages.reduce((n, m) => n + v2WireSize(m), 0)), tx: e.tx }));
}

/** Cover laid over real bursts as the proxy does it: a Poisson clock, each tick one cover burst. */
function withCover(real: Burst[], seconds: number, rate: number, c: CoverCandidate, seed: number): Burst[] {
  const random = seeded(seed ^ 0x5eed);
  const clock = c.clock === 'follow-ups' ? new FollowUpClock(rate, random, c.sizes) : new CoverClock(rate, random, c.sizes);
  const out: Burst[] = [...real];
  for (let t = clock.nextDelayMs(); t < seconds * 1000; t += clock.nextDelayMs()) out.push({ at: t, bytes: clock.burstSize(), tx: false });
  return out.sort((a, b) => a.at - b.at);
}

export interface SimRow {
  ladder: string;
  cover: string;
  overheadPct: number;
  sizeBA: number;
  burstBA: number;
  windowBA: number;
}

export function simulate(traces: number, seconds: number, rate: number, covers: CoverCandidate[], repeats = 3, ladders: readonly Ladder[] = LADDERS): SimRow[] {
  const rows: SimRow[] = [];
  const base = (seed: number): number => realBursts(seed, seconds, (n) => n).reduce((a, b) => a + b.bytes, 0);
  for (const ladder of ladders) {
    for (const cover of [undefined, ...covers]) {
      if (cover !== undefined && ladder.name.startsWith('none')) continue;
      const ba: { size: number[]; burst: number[]; window: number[] } = { size: [], burst: [], window: [] };
      const over: number[] = [];
      for (let rep = 0; rep < repeats; rep++) {
        const ts: Trace[] = [];
        let bytes = 0;
        let baseBytes = 0;
        for (let i = 0; i < traces; i++) {
          const seed = 1000 * rep + i + 1;
          let bursts = realBursts(seed, seconds, ladder.target);
          if (cover !== undefined) bursts = withCover(bursts, seconds, rate, cover, seed);
          bytes += bursts.reduce((a, b) => a + b.bytes, 0);
          baseBytes += base(seed);
          ts.push({ bursts, length: seconds * 1000 });
        }
        const e = evaluate(ts);
        ba.size.push(e.size);
        ba.burst.push(e.burst);
        ba.window.push(e.window);
        over.push((100 * (bytes - baseBytes)) / baseBytes);
      }
      rows.push({
        ladder: ladder.name,
        cover: cover?.name ?? '-',
        overheadPct: median(over),
        sizeBA: median(ba.size),
        burstBA: median(ba.burst),
        windowBA: median(ba.window),
      });
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const traces = Number(process.argv[2] ?? 16);
  const seconds = Number(process.argv[3] ?? 60);
  const rates = (process.argv[4] ?? '1024').split(',').map(Number);
  const print = (rate: number, r: SimRow): void =>
    console.log(
      `${String(rate).padStart(5)} B/s  ${r.ladder.padEnd(34)} ${r.cover.padEnd(36)} bytes ${r.overheadPct.toFixed(0).padStart(5)} %  size BA ${r.sizeBA.toFixed(1)}  burst BA ${r.burstBA.toFixed(1)}  window BA ${r.windowBA.toFixed(1)}`,
    );
  if (process.argv[5] === 'clocks') {
    // The cover clock alone: the shipped Poisson clock against the follow-up clock it replaced,
    // both with COVER_SIZES, under COVER_LADDER, at each rate.
    const cover = LADDERS.filter((l) => l.name.startsWith('384 B steps'));
    const clocks: CoverCandidate[] = [
      { name: 'Poisson (as shipped)', sizes: COVER_SIZES },
      { name: 'follow-ups (before 2026-12-02)', sizes: COVER_SIZES, clock: 'follow-ups' },
    ];
    for (const rate of rates) for (const r of simulate(traces, seconds, rate, clocks, 3, cover)) if (r.cover !== '-') print(rate, r);
  } else {
    const covers: CoverCandidate[] = [
      { name: 'COVER_SIZES (as shipped)', sizes: COVER_SIZES },
      { name: '384/768 (first version)', sizes: [384, 384, 768] },
      { name: 'uniform 256..1024', sizes: [256, 512, 768, 1024] },
      { name: 'uniform 256..2048', sizes: [256, 512, 768, 1024, 1280, 1536, 1792, 2048] },
    ];
    for (const rate of rates) for (const r of simulate(traces, seconds, rate, covers)) print(rate, r);
  }
}
