/**
 * The x-only ECDH on every scalar-multiplication backend (libsecp256k1 as WebAssembly, OpenSSL
 * through node:crypto, and the @noble/curves fallback): the official vectors through every way a key can reach the ECDH, any
 * 64 bytes from a peer, and the bookkeeping around OpenSSL key objects. References: the vectors,
 * literals, and an independent implementation (@scure/btc-signer's XSwiftEC with @noble/curves'
 * point multiplication).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { getCurves, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { elligatorSwift } from '@scure/btc-signer/p2p.js';
import {
  type EcdhBackend,
  ecdhBackend,
  ellswiftCreate,
  ellswiftDecode,
  ellswiftEncode,
  ellswiftFromPrivate,
  setEcdhBackend,
  v2SharedSecret,
  xOnlyEcdh,
  xswiftecInv,
} from '../../src/crypto/ellswift.js';
import { P } from '../../src/crypto/field.js';
import { col, hexCol, loadCsv } from '../helpers/vectors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const be32 = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');

/** x(priv · lift_x(XSwiftEC(ell))) by @scure/btc-signer and @noble/curves: none of our code. */
function referenceXShared(priv: Uint8Array, ell: Uint8Array): string {
  return hex(elligatorSwift.getSharedSecret(priv, ell));
}

const xOf = (priv: Uint8Array): string => hex(secp256k1.getPublicKey(priv, true).subarray(1));

const opensslAvailable = getCurves().includes('secp256k1');

describe('x-only ECDH backends', () => {
  const initial = ecdhBackend();
  after(() => setEcdhBackend(initial));

  it('uses libsecp256k1 (tiny-secp256k1, a dependency) by default', () => {
    assert.equal(initial, 'libsecp256k1');
  });

  for (const backend of ['libsecp256k1', 'openssl', 'noble'] as EcdhBackend[]) {
    describe(`backend ${backend}`, () => {
      before(function () {
        if (backend === 'openssl' && !opensslAvailable) this.skip();
        setEcdhBackend(backend);
      });
      after(() => setEcdhBackend(initial));

      const rows = loadCsv('packet_encoding_test_vectors.csv');
      rows.forEach((row, i) => {
        const initiator = col(row, 'in_initiating') === '1';
        it(`vector row ${i}: raw key bytes and a key made from them both give mid_x_shared and mid_shared_secret`, () => {
          const priv = hexCol(row, 'in_priv_ours');
          const theirs = hexCol(row, 'in_ellswift_theirs');
          const ours = hexCol(row, 'in_ellswift_ours');
          assert.equal(hex(xOnlyEcdh(priv, theirs)), col(row, 'mid_x_shared'));
          assert.equal(hex(v2SharedSecret(priv, theirs, ours, initiator)), col(row, 'mid_shared_secret'));
          // A key made here goes through the key object it was made as (OpenSSL) on its first ECDH.
          const made = ellswiftFromPrivate(priv);
          assert.equal(hex(ellswiftDecode(made.ellswift)), col(row, 'mid_x_ours'));
          assert.equal(hex(v2SharedSecret(made.privateKey, theirs, ours, initiator)), col(row, 'mid_shared_secret'));
          assert.equal(hex(xOnlyEcdh(made.privateKey, theirs)), col(row, 'mid_x_shared'));
        });
      });

      it('fresh keys: both sides agree, and equal the independent reference', () => {
        for (let k = 0; k < 6; k++) {
          const a = ellswiftCreate();
          const b = ellswiftCreate();
          assert.equal(hex(ellswiftDecode(a.ellswift)), xOf(a.privateKey));
          const expected = referenceXShared(a.privateKey, b.ellswift);
          assert.equal(referenceXShared(b.privateKey, a.ellswift), expected);
          assert.equal(hex(xOnlyEcdh(a.privateKey, b.ellswift)), expected);
          assert.equal(hex(xOnlyEcdh(b.privateKey, a.ellswift)), expected);
        }
      });

      it('any 64 bytes from a peer decode to a point the ECDH accepts, with the reference result', () => {
        const pMinus1 = be32(P - 1n);
        const encodings = [
          Buffer.alloc(64),
          Buffer.alloc(64, 0xff),
          Buffer.concat([be32(P), be32(P)]), // both halves = 0 mod p
          Buffer.concat([pMinus1, Buffer.alloc(32)]),
          Buffer.concat([randomBytes(32), be32(P + 5n)]),
          ...Array.from({ length: 10 }, () => randomBytes(64)),
        ];
        const priv = secp256k1.utils.randomSecretKey();
        for (const ell of encodings) assert.equal(hex(xOnlyEcdh(priv, ell)), referenceXShared(priv, ell), hex(ell));
      });

      it('keeps an x_shared that starts with a zero byte at 32 bytes', () => {
        // Found with the reference implementation; x_shared is 00d172cc...
        const priv = Buffer.from('5c2b1d8e3f6a7b9c0d1e2f3a4b5c6d7e8f9012a3b4c5d6e7f8091a2b3c4d5e6f', 'hex');
        const ell = Buffer.from(
          'aa8322e6f1545174ed19b43699faa8eb9b1f0a5c14115720432cc8087ebcbcdf' + 'a77f873523ce6e5b383441adab2ab49ea2b3f5a4bb9cc2859f705619b552ea2a',
          'hex',
        );
        const x = xOnlyEcdh(priv, ell);
        assert.equal(x.length, 32);
        assert.equal(hex(x), '00d172ccf89044c1a85b79e7e5d5b9549c0d44f09ca097f32bb99d976bd1e5b3');
        assert.equal(hex(xOnlyEcdh(ellswiftFromPrivate(priv).privateKey, ell)), hex(x));
      });

      it('always computes with the private key bytes as they are, even if changed after the key was made', () => {
        const a = ellswiftCreate();
        const other = ellswiftCreate();
        const peer = ellswiftCreate().ellswift;
        a.privateKey.set(other.privateKey);
        assert.equal(hex(xOnlyEcdh(a.privateKey, peer)), referenceXShared(other.privateKey, peer));
      });

      it('gives the same result for a key used twice (the second time without its key object)', () => {
        const a = ellswiftCreate();
        const peer = ellswiftCreate().ellswift;
        const first = hex(xOnlyEcdh(a.privateKey, peer));
        assert.equal(hex(xOnlyEcdh(a.privateKey, peer)), first);
        assert.equal(first, referenceXShared(a.privateKey, peer));
      });

      it('refuses every private key outside 1..n-1 or not 32 bytes with a RangeError, before any curve code sees it', () => {
        // OpenSSL refuses these itself (with a RangeError) and noble with a plain Error for n and
        // above, so this backend loop is what shows our own check in front of both.
        const n = secp256k1.Point.Fn.ORDER;
        const peer = ellswiftCreate().ellswift;
        // Above n from its 17th byte on (n's bytes 16-31 are baedce6a...), and n's own bytes with a
        // bit of the last one set: the comparison decides at the first differing byte.
        const aboveMid = Buffer.from('fffffffffffffffffffffffffffffffebbaedce6af48a03bbfd25e8cd0364100', 'hex');
        const aboveLast = Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364143', 'hex');
        for (const bad of [Buffer.alloc(32), be32(n), be32(n + 1n), aboveMid, aboveLast, Buffer.alloc(32, 0xff), Buffer.alloc(31, 1), Buffer.alloc(33, 1)]) {
          assert.throws(() => ellswiftFromPrivate(bad), RangeError, hex(bad));
          assert.throws(() => xOnlyEcdh(bad, peer), RangeError, hex(bad));
        }
        assert.equal(xOnlyEcdh(be32(n - 1n), peer).length, 32);
        // Below n at its 17th byte and above it after; 1; keys with a single byte set (0x01, 0x80).
        for (const good of [
          'fffffffffffffffffffffffffffffffeb9ffffffffffffffffffffffffffffff',
          '00'.repeat(31) + '01',
          '01' + '00'.repeat(31),
          '00'.repeat(16) + '80' + '00'.repeat(15),
        ]) {
          assert.equal(hex(xOnlyEcdh(Buffer.from(good, 'hex'), peer)), referenceXShared(Buffer.from(good, 'hex'), peer), good);
        }
      });

      it('refuses a wiped (all-zero) key', () => {
        const a = ellswiftCreate();
        a.privateKey.fill(0);
        assert.throws(() => xOnlyEcdh(a.privateKey, ellswiftCreate().ellswift), RangeError);
      });
    });
  }

  it('falls back to OpenSSL where WebAssembly is missing (node --jitless), with the same results, and will not select libsecp256k1 there', function () {
    this.timeout(20_000);
    const row = loadCsv('packet_encoding_test_vectors.csv')[0];
    const script = [
      `const m = await import(${JSON.stringify(new URL('../../src/crypto/ellswift.js', import.meta.url).href)});`,
      `const priv = Buffer.from('${col(row, 'in_priv_ours')}', 'hex');`,
      `const theirs = Buffer.from('${col(row, 'in_ellswift_theirs')}', 'hex');`,
      `const line = [m.ecdhBackend(), typeof WebAssembly, m.xOnlyEcdh(priv, theirs).toString('hex')];`,
      `try { m.setEcdhBackend('libsecp256k1'); line.push('selected'); } catch { line.push('refused'); }`,
      `console.log(line.join(' '), m.ecdhBackend());`,
    ].join('\n');
    const out = execFileSync(process.execPath, ['--jitless', '--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8' });
    const fallback = opensslAvailable ? 'openssl' : 'noble';
    assert.equal(out.trim(), `${fallback} undefined ${col(row, 'mid_x_shared')} refused ${fallback}`);
  });

  it('cannot select OpenSSL where node:crypto lacks secp256k1, and names the backends', function () {
    setEcdhBackend('noble');
    setEcdhBackend('libsecp256k1');
    assert.equal(ecdhBackend(), 'libsecp256k1');
    if (opensslAvailable) {
      setEcdhBackend('noble');
      assert.equal(ecdhBackend(), 'noble');
      setEcdhBackend('openssl');
      assert.equal(ecdhBackend(), 'openssl');
    } else {
      assert.throws(() => setEcdhBackend('openssl'));
    }
    setEcdhBackend(initial);
  });
});

describe('ellswiftEncode and key printing', () => {
  it('encodes a given x so that the independent decoder gives it back, differently each time', () => {
    const x = Buffer.from(xOf(secp256k1.utils.randomSecretKey()), 'hex');
    const seen = new Set<string>();
    for (let k = 0; k < 8; k++) {
      const ell = ellswiftEncode(x);
      assert.equal(ell.length, 64);
      assert.equal(hex(elligatorSwift.decode(ell)), hex(x));
      seen.add(hex(ell));
    }
    assert.equal(seen.size, 8);
  });

  it('refuses an x >= p, an x with no curve point, and a wrong length', () => {
    assert.throws(() => ellswiftEncode(be32(P)), RangeError);
    // x = 1 is on the curve (1 + 7 = 8 is a square), so P + 1 (< 2^256) would pass the curve check
    // as 1 mod p: only the range check refuses it.
    assert.doesNotThrow(() => secp256k1.Point.fromBytes(Buffer.concat([Buffer.of(2), be32(1n)])));
    assert.equal(hex(elligatorSwift.decode(ellswiftEncode(be32(1n)))), hex(be32(1n)));
    assert.throws(() => ellswiftEncode(be32(P + 1n)), RangeError);
    // x = 5: 5^3 + 7 = 132 is not a square mod p (checked against noble below).
    assert.throws(() => secp256k1.Point.fromBytes(Buffer.concat([Buffer.of(2), be32(5n)])));
    assert.throws(() => ellswiftEncode(be32(5n)), RangeError);
    assert.throws(() => ellswiftEncode(Buffer.alloc(31, 1)), RangeError);
  });

  it('prints and serialises a key made here without its private key', () => {
    for (const key of [ellswiftCreate(), ellswiftFromPrivate(secp256k1.utils.randomSecretKey())]) {
      const secret = hex(key.privateKey);
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- String(key) is under test: no way of showing a key may print its private half
      for (const shown of [inspect(key), inspect({ nested: { key } }, { depth: 5 }), JSON.stringify(key), String(key)]) {
        assert.ok(!shown.includes(secret), shown);
        assert.ok(!shown.includes(Buffer.from(key.privateKey).toString('base64')), shown);
      }
      assert.ok(inspect(key).includes(key.ellswift.toString('hex')));
    }
  });
});

/**
 * How often each case made the encodings of `n` fresh keys. The case is not on the wire, but with x
 * known it can be recovered: the case(s) whose XSwiftECInv(x, u) gives the sent t (shared equally
 * when several do).
 */
function caseCounts(n: number): number[] {
  const counts = new Array<number>(8).fill(0);
  for (let k = 0; k < n; k++) {
    const key = ellswiftCreate();
    const u = BigInt('0x' + key.ellswift.subarray(0, 32).toString('hex'));
    const t = BigInt('0x' + key.ellswift.subarray(32).toString('hex'));
    const x = BigInt('0x' + ellswiftDecode(key.ellswift).toString('hex'));
    const cases = [0, 1, 2, 3, 4, 5, 6, 7].filter((c) => xswiftecInv(x, u, c) === t);
    assert.ok(cases.length >= 1, 'no case explains the encoding');
    for (const c of cases) counts[c] += 1 / cases.length;
  }
  return counts;
}

describe('ellswift_create draws a fresh case on every try', () => {
  it('over 200 encodings every one of the 8 cases is used (a fixed or biased case would show)', () => {
    // Each case's expected count is 25; a missing case has odds below 1e-10.
    const counts = caseCounts(200);
    for (let c = 0; c < 8; c++) assert.ok(counts[c] >= 5, `case ${c} used ${counts[c]} times in 200: ${counts.join(', ')}`);
  });

  it('over 600 encodings no case is favoured (each try takes its case from its own random byte)', () => {
    // Each case's expected share is 1/8 (75 of 600, standard deviation about 8); 130 is more than
    // 6 deviations away (odds below 1e-9 per case). Taking the first try's case from anywhere
    // but its own fresh byte (a fixed 0, say) gives that case about a third of all encodings.
    const counts = caseCounts(600);
    for (let c = 0; c < 8; c++) assert.ok(counts[c] <= 130, `case ${c} used ${counts[c]} times in 600: ${counts.join(', ')}`);
  });
});

describe('xswiftecInv', () => {
  it('takes only the eight cases 0..7', () => {
    const x = 1n;
    const u = 12345n;
    for (const c of [-1, 8, 1.5, Number.NaN]) assert.throws(() => xswiftecInv(x, u, c), RangeError, String(c));
    for (let c = 0; c < 8; c++) assert.doesNotThrow(() => xswiftecInv(x, u, c));
  });
});
