/**
 * The field helpers behind the ElligatorSwift maps (src/crypto/field.ts), each against
 * @noble/curves' generic field arithmetic as the independent reference.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { FpLegendre } from '@noble/curves/abstract/modular.js';
import { P, fromBytes32, inv, isSquare, legendre, powP34, sqrt, sqrtRatioUnchecked, toBytes32 } from '../../src/crypto/field.js';

const Fp = secp256k1.Point.Fp;

function randomElement(): bigint {
  return BigInt('0x' + randomBytes(32).toString('hex')) % P;
}

/** Edge values and 400 random ones: small, near p, near powers of two (the 32-bit shifts in legendre). */
function samples(): bigint[] {
  const edges = [0n, 1n, 2n, 3n, 4n, 7n, P - 1n, P - 2n, P - 3n, P - 7n, 1n << 32n, (1n << 32n) - 1n, 1n << 64n, 1n << 255n, (1n << 255n) + 1n];
  return [...edges, ...Array.from({ length: 400 }, randomElement)];
}

describe('secp256k1 field helpers', () => {
  it('has the secp256k1 prime', () => {
    assert.equal(P, Fp.ORDER);
    assert.equal(P.toString(16), 'fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f');
  });

  it('legendre equals the Euler criterion (noble FpLegendre) on edge and random values', () => {
    let squares = 0;
    for (const a of samples()) {
      assert.equal(legendre(a), FpLegendre(Fp, a), a.toString(16));
      assert.equal(isSquare(a), FpLegendre(Fp, a) !== -1);
      if (legendre(a) === 1) squares++;
    }
    assert.ok(squares > 150 && squares < 265, `${squares} squares out of 415`);
  });

  it('legendre of a square times a non-square power of two is -1 (the (2/n) rule)', () => {
    // 2 is a square mod p (p = 7 mod 8); 3 is not. Multiplying by 2^k keeps the symbol, so every
    // shift count in the loop is exercised against a known answer.
    assert.equal(legendre(2n), 1);
    assert.equal(legendre(3n), -1);
    for (let k = 0; k < 300; k += 7) {
      const a = (3n * ((1n << BigInt(k)) % P)) % P;
      assert.equal(legendre(a), -1, `k=${k}`);
      assert.equal(legendre((a * a) % P), 1, `k=${k}`);
    }
  });

  it('powP34 equals a^((p-3)/4) computed by noble', () => {
    for (const a of samples().slice(0, 60)) assert.equal(powP34(a), Fp.pow(a, (P - 3n) / 4n));
  });

  it('sqrt returns exactly a^((p+1)/4) for squares (noble Fp.sqrt) and null for non-squares', () => {
    for (const a of samples().slice(0, 120)) {
      const expected = FpLegendre(Fp, a) === -1 ? null : Fp.sqrt(a);
      assert.equal(sqrt(a), expected, a.toString(16));
    }
  });

  it('sqrtRatioUnchecked(n, d) equals sqrt(n/d) exactly whenever n/d is a square', () => {
    let checked = 0;
    for (let k = 0; k < 80; k++) {
      const n = randomElement();
      const d = randomElement() || 1n;
      const ratio = Fp.div(n, d);
      if (FpLegendre(Fp, ratio) === -1) continue;
      assert.equal(sqrtRatioUnchecked(n, d), Fp.sqrt(ratio));
      checked++;
    }
    assert.equal(sqrtRatioUnchecked(0n, 5n), 0n);
    assert.ok(checked > 20);
  });

  it('inv is the inverse mod p', () => {
    for (const a of samples()
      .filter((x) => x !== 0n)
      .slice(0, 50))
      assert.equal((a * inv(a)) % P, 1n);
  });

  it('toBytes32 and fromBytes32 are big-endian 32 bytes, leading zeros kept', () => {
    assert.equal(toBytes32(1n).toString('hex'), '00'.repeat(31) + '01');
    assert.equal(toBytes32(P - 1n).toString('hex'), 'fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2e');
    const b = randomBytes(40);
    assert.equal(fromBytes32(b, 5), BigInt('0x' + b.subarray(5, 37).toString('hex')));
    assert.equal(fromBytes32(Buffer.alloc(32, 0xff)), (1n << 256n) - 1n);
  });
});
