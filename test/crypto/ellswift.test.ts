/**
 * ElligatorSwift keys and the BIP324 shared secret (ellswift_create, ellswift_ecdh_xonly).
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ellswiftCreate, ellswiftDecode, ellswiftFromPrivate, v2SharedSecret, xOnlyEcdh, xswiftecInv } from '../../src/crypto/ellswift.js';

const xOf = (priv: Uint8Array) => Buffer.from(secp256k1.getPublicKey(priv, true)).subarray(1);
const onCurve = (x: Buffer) => {
  try {
    secp256k1.Point.fromBytes(Buffer.concat([Buffer.of(2), x]));
    return true;
  } catch {
    return false;
  }
};

describe('ElligatorSwift and x-only ECDH', () => {
  it('20 random key pairs: both sides derive the same shared secret and the same x_shared', () => {
    for (let k = 0; k < 20; k++) {
      const init = ellswiftCreate();
      const resp = ellswiftCreate();
      assert.equal(init.ellswift.length, 64);
      const a = v2SharedSecret(init.privateKey, resp.ellswift, init.ellswift, true);
      const b = v2SharedSecret(resp.privateKey, init.ellswift, resp.ellswift, false);
      assert.equal(a.length, 32);
      assert.ok(a.equals(b), `pair ${k}`);
      assert.ok(xOnlyEcdh(init.privateKey, resp.ellswift).equals(xOnlyEcdh(resp.privateKey, init.ellswift)));
    }
  });

  it('puts the initiator encoding first: both sides claiming the same role get different secrets', () => {
    const a = ellswiftCreate();
    const b = ellswiftCreate();
    const asInit = v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true);
    const bAlsoInit = v2SharedSecret(b.privateKey, a.ellswift, b.ellswift, true);
    assert.ok(!asInit.equals(bAlsoInit));
    assert.ok(!asInit.equals(v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, false)));
  });

  it('creates encodings that decode to x(priv·G)', () => {
    for (let k = 0; k < 10; k++) {
      const key = ellswiftCreate();
      assert.ok(ellswiftDecode(key.ellswift).equals(xOf(key.privateKey)));
    }
  });

  it('encodes the same key differently every time (fresh random u), all decoding to the same x', () => {
    const priv = secp256k1.utils.randomSecretKey();
    const encodings = Array.from({ length: 8 }, () => ellswiftFromPrivate(priv).ellswift);
    assert.equal(new Set(encodings.map((e) => e.toString('hex'))).size, 8);
    for (const e of encodings) assert.ok(ellswiftDecode(e).equals(xOf(priv)));
  });

  it('hashes the exact wire bytes: two encodings of one key give one x_shared but different secrets', () => {
    const a = ellswiftCreate();
    const b = ellswiftCreate();
    const b2 = ellswiftFromPrivate(b.privateKey).ellswift;
    assert.ok(xOnlyEcdh(a.privateKey, b.ellswift).equals(xOnlyEcdh(a.privateKey, b2)));
    assert.ok(!v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true).equals(v2SharedSecret(a.privateKey, b2, a.ellswift, true)));
  });

  it('decodes any 64 bytes to a valid x (XSwiftEC is total), including all-zero and all-0xff', () => {
    for (const ell of [Buffer.alloc(64), Buffer.alloc(64, 0xff), ...Array.from({ length: 30 }, () => randomBytes(64))]) {
      const x = ellswiftDecode(ell);
      assert.equal(x.length, 32);
      assert.ok(onCurve(x), ell.toString('hex'));
    }
  });

  it('xswiftecInv returns a t that decodes back to x, or null', () => {
    const x = BigInt('0x' + xOf(secp256k1.utils.randomSecretKey()).toString('hex'));
    let found = 0;
    for (let k = 0; k < 64; k++) {
      const u = BigInt('0x' + randomBytes(31).toString('hex')) + 1n;
      const t = xswiftecInv(x, u, k % 8);
      if (t === null) continue;
      found++;
      const enc = Buffer.from(u.toString(16).padStart(64, '0') + t.toString(16).padStart(64, '0'), 'hex');
      assert.equal(ellswiftDecode(enc).toString('hex'), x.toString(16).padStart(64, '0'));
    }
    assert.ok(found > 0);
  });

  it('rejects private keys outside 1..n-1 or not 32 bytes, and encodings that are not 64 bytes', () => {
    const n = secp256k1.Point.Fn.ORDER;
    const nBytes = Buffer.from(n.toString(16), 'hex');
    const ell = ellswiftCreate().ellswift;
    for (const bad of [Buffer.alloc(32), nBytes, Buffer.alloc(31, 1), Buffer.alloc(33, 1)]) {
      assert.throws(() => ellswiftFromPrivate(bad), RangeError);
      assert.throws(() => xOnlyEcdh(bad, ell), RangeError);
    }
    const priv = secp256k1.utils.randomSecretKey();
    assert.throws(() => ellswiftDecode(Buffer.alloc(63)), RangeError);
    assert.throws(() => xOnlyEcdh(priv, Buffer.alloc(65)), RangeError);
    assert.throws(() => v2SharedSecret(priv, ell, Buffer.alloc(32), true), RangeError);
  });
});
