/**
 * The shaping policy (src/engine/shaper.ts) without sockets: the ladders, how a gap is filled with
 * decoys, and the cover clock's distribution. Oracles: literal sizes worked out by hand from the
 * BIP324 packet format (3-byte length + 1-byte header + 1-byte short id + payload + 16-byte tag),
 * and the mean and spread an exponential distribution must have.
 */
import assert from 'node:assert/strict';
import { COVER_LADDER, CoverClock, MIN_DECOY, PAD_LADDER, cryptoUniform, decoyContents, ladderFor, ladderTarget } from '../../src/engine/shaper.js';

/** A seeded uniform source in [0, 1) (xorshift32), so the statistics below are the same on every run. */
function seededUniform(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** Wire bytes of a v2 packet carrying a message with a short id and this payload. */
const wire = (payload: number): number => 3 + 1 + 1 + payload + 16;

describe('shaper: ladders', () => {
  it('each mode pads to its own ladder, off to none', () => {
    assert.equal(ladderFor('pad'), PAD_LADDER);
    assert.equal(ladderFor('cover'), COVER_LADDER);
    assert.equal(ladderFor('off'), undefined);
  });

  it('an empty burst stays empty: a decoy never goes out on its own', () => {
    assert.equal(ladderTarget(0, PAD_LADDER), 0);
    assert.equal(ladderTarget(0, COVER_LADDER), 0);
  });

  it('pad: the common messages land on the literal sizes of the ladder (25 % steps from 64 bytes)', () => {
    const cases: [string, number, number][] = [
      ['ping', wire(8), 64],
      ['inv of 1 item', wire(37), 80],
      ['inv of 3 items', wire(1 + 3 * 36), 160],
      ['1-in 2-out P2WPKH tx (222 B)', wire(222), 320],
      ['2-in 2-out tx (372 B)', wire(372), 480],
      ['headers of 1', wire(82), 128],
      ['a 1 MB block (multiples of 16 KiB above 64 KiB)', wire(1_000_000), 62 * 16384],
    ];
    for (const [what, n, want] of cases) assert.equal(ladderTarget(n, PAD_LADDER), want, `${what}: ${n} wire bytes`);
  });

  it('cover: ping, invs of up to 9 items, headers and the usual payment all weigh 384 bytes', () => {
    for (const n of [wire(8), wire(1 + 36), wire(1 + 9 * 36), wire(82), wire(222), wire(226)])
      assert.equal(ladderTarget(n, COVER_LADDER), 384, `${n} wire bytes`);
    assert.equal(ladderTarget(wire(372), COVER_LADDER), 768);
    assert.equal(ladderTarget(wire(1500), COVER_LADDER), 1920);
  });

  for (const [name, ladder] of [
    ['pad', PAD_LADDER],
    ['cover', COVER_LADDER],
  ] as const) {
    it(`${name}: every size from 1 to 300,000 bytes is padded up by 0 or at least one decoy's ${MIN_DECOY} bytes, to a step, or above the top step a multiple of a quarter of it`, () => {
      const top = ladder[ladder.length - 1];
      const unit = top / 4;
      const steps = new Set(ladder);
      for (let n = 1; n <= 300_000; n++) {
        const t = ladderTarget(n, ladder);
        assert.ok(t === n || t - n >= MIN_DECOY, `${n} -> ${t}`);
        assert.ok(t > top ? t % unit === 0 : steps.has(t), `${n} -> ${t} is not a step`);
        // The smallest such step: one step lower would not do.
        const lower = t > top ? t - unit : ladder[ladder.indexOf(t) - 1];
        if (lower !== undefined && lower >= n) assert.ok(lower - n < MIN_DECOY && lower !== n, `${n}: ${lower} would have done`);
      }
    });
  }

  it('pad costs at most about a quarter of a burst (27 % next to the top step), plus one decoy and the rounding to 16 bytes', () => {
    for (let n = 1; n <= 300_000; n++) {
      const t = ladderTarget(n, PAD_LADDER);
      assert.ok(t <= Math.max(64, 1.27 * (n + MIN_DECOY) + 16), `${n} -> ${t}`);
    }
  });
});

describe('shaper: filling a gap with decoys', () => {
  it('the decoys of a gap add up to it on the wire, none over 64 KiB of contents, and one alone whenever it fits', () => {
    for (const gap of [0, 20, 21, 100, 384, 65536, 65556, 65557, 131072, 1_000_000]) {
      const lens = decoyContents(gap);
      assert.equal(
        lens.reduce((a, l) => a + l + MIN_DECOY, 0),
        gap,
        `gap ${gap}`,
      );
      for (const l of lens) assert.ok(l >= 0 && l <= 65536, `gap ${gap}: ${l}`);
    }
    assert.deepEqual(decoyContents(20), [0]);
    assert.deepEqual(decoyContents(0), []);
    // One decoy as long as its contents fit in 64 KiB; above, the second one takes at least its 20 bytes.
    assert.deepEqual(decoyContents(65537), [65517]);
    assert.deepEqual(decoyContents(65556), [65536]);
    assert.deepEqual(decoyContents(65557), [65517, 0]);
  });

  it('a gap of 1 to 19 bytes cannot be filled, and says so', () => {
    for (let gap = 1; gap < MIN_DECOY; gap++) assert.throws(() => decoyContents(gap), RangeError);
  });
});

describe('shaper: the cover clock', () => {
  it('intervals are exponential with mean = mean cover size / rate (637.5 ms at 1024 B/s), so cover averages the rate', () => {
    const rate = 1024;
    const clock = new CoverClock(rate, seededUniform(42));
    const n = 40_000;
    const delays = Array.from({ length: n }, () => clock.nextDelayMs());
    const mean = delays.reduce((a, b) => a + b, 0) / n;
    // COVER_SIZES: 11 x 384, 6 x 768, 2 x 1152, 1 x 1920 = 652.8 bytes on average; / 1024 B/s = 637.5 ms.
    assert.ok(Math.abs(mean - 637.5) < 15, `mean ${mean} ms`);
    assert.ok(delays.every((d) => d >= 0 && Number.isFinite(d)));
    // Exponential with mean 637.5 ms: P(d < x * 637.5) = 1 - e^(-x).
    const below = (x: number): number => delays.filter((d) => d < x * 637.5).length / n;
    assert.ok(Math.abs(below(0.1) - 0.0952) < 0.006, `below 64 ms: ${below(0.1)}`);
    assert.ok(Math.abs(below(1) - 0.6321) < 0.01, `below 637.5 ms: ${below(1)}`);
    assert.ok(Math.abs(1 - below(3) - 0.0498) < 0.005, `above 1.9 s: ${1 - below(3)}`);
    const sizes = Array.from({ length: n }, () => clock.burstSize());
    const bytes = sizes.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(bytes / ((mean * n) / 1000) - rate) < 40, `${bytes / ((mean * n) / 1000)} B/s`);
    assert.deepEqual(
      [...new Set(sizes)].sort((a, b) => a - b),
      [384, 768, 1152, 1920],
    );
    const share = (x: number): number => sizes.filter((s) => s === x).length / n;
    assert.ok(Math.abs(share(384) - 0.55) < 0.015, `384 bytes ${share(384)} of the time`);
    assert.ok(Math.abs(share(1920) - 0.05) < 0.01, `1920 bytes ${share(1920)} of the time`);
  });

  it('its default random source (cryptoUniform) is uniform in [0, 1)', () => {
    const u = Array.from({ length: 10_000 }, cryptoUniform);
    assert.ok(
      u.every((x) => x >= 0 && x < 1),
      'in [0, 1)',
    );
    assert.ok(Math.abs(u.reduce((a, b) => a + b, 0) / u.length - 0.5) < 0.02, 'mean 1/2');
    assert.ok(u.filter((x) => x < 0.1).length > 800 && u.filter((x) => x >= 0.9).length > 800, 'both ends of [0, 1)');
  });

  it('a rate of 0 is refused', () => {
    assert.throws(() => new CoverClock(0), RangeError);
  });
});
