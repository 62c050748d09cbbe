/**
 * FSChaCha20Poly1305, the BIP324 packet AEAD, checked against @noble/ciphers.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { isProxyError } from '../../src/errors.js';
import { FSChaCha20Poly1305 } from '../../src/crypto/fschacha20poly1305.js';

function nonce(first: number, epoch: number): Uint8Array {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(first, 0);
  n.writeBigUInt64LE(BigInt(epoch), 4);
  return n;
}
const badTag = (e: unknown) => isProxyError(e, 'ERR_V2_BAD_TAG');
const none: readonly Uint8Array[] = [];

describe('FSChaCha20Poly1305 (packet AEAD)', () => {
  const key = randomBytes(32);

  it('seals packet i under nonce LE32(i mod 224) ‖ LE64(floor(i / 224)) with the AAD', () => {
    const aead = new FSChaCha20Poly1305(key);
    for (let i = 0; i < 5; i++) {
      const pt = randomBytes(i * 13);
      const aad = randomBytes(i);
      const expected = chacha20poly1305(key, nonce(i, 0), aad).encrypt(pt);
      assert.ok(aead.encrypt(aad, [pt]).equals(expected), `packet ${i}`);
    }
  });

  it('rekeys after packet 223 with the first 32 bytes of keystream block 1 under nonce 0xffffffff ‖ LE64(0)', () => {
    const aead = new FSChaCha20Poly1305(key);
    for (let i = 0; i < 224; i++) aead.encrypt(undefined, none);
    const newKey = chacha20(key, nonce(0xffffffff, 0), new Uint8Array(32), undefined, 1);
    // The BIP's reference.py phrases the same key as AEAD-encrypting 32 zero bytes.
    const viaAead = chacha20poly1305(key, nonce(0xffffffff, 0)).encrypt(new Uint8Array(32)).subarray(0, 32);
    assert.deepEqual(newKey, viaAead);
    const pt = randomBytes(40);
    assert.ok(aead.encrypt(undefined, [pt]).equals(chacha20poly1305(newKey, nonce(0, 1)).encrypt(pt)));
  });

  it('decrypts what it encrypts across three rekeys, empty plaintexts included', () => {
    const tx = new FSChaCha20Poly1305(key);
    const rx = new FSChaCha20Poly1305(key);
    for (let i = 0; i < 700; i++) {
      const pt = randomBytes(i % 5 === 0 ? 0 : i % 97);
      assert.ok(rx.decrypt(undefined, tx.encrypt(undefined, [pt])).equals(pt), `packet ${i}`);
    }
  });

  it('gives the same bytes for plaintext split into parts at every byte boundary', () => {
    const pt = randomBytes(70);
    const aad = randomBytes(9);
    const expected = new FSChaCha20Poly1305(key).encrypt(aad, [pt]);
    for (let a = 0; a <= pt.length; a++) {
      for (const b of [a, Math.min(pt.length, a + 1), Math.min(pt.length, a + 17), pt.length]) {
        const parts = [pt.subarray(0, a), pt.subarray(a, b), pt.subarray(b)];
        assert.ok(new FSChaCha20Poly1305(key).encrypt(aad, parts).equals(expected), `cuts at ${a}, ${b}`);
      }
    }
  });

  it('gives the same bytes for a 40,000-byte plaintext (above the coalescing size) split around block boundaries', () => {
    const pt = randomBytes(40_000);
    const expected = new FSChaCha20Poly1305(key).encrypt(undefined, [pt]);
    for (const a of [0, 1, 15, 16, 17, 63, 64, 65, 20_000, 32_768, 39_999, 40_000]) {
      for (const b of [a, a + 1, 40_000]) {
        const parts = [pt.subarray(0, a), pt.subarray(a, Math.min(b, 40_000)), pt.subarray(Math.min(b, 40_000))];
        assert.ok(new FSChaCha20Poly1305(key).encrypt(undefined, parts).equals(expected), `cuts at ${a}, ${b}`);
      }
    }
  });

  it('encryptPieces seals with the AAD under the packet counter, below and above the coalescing size', () => {
    const aead = new FSChaCha20Poly1305(key);
    for (const [i, size] of [10, 40_000, 0, 70_000].entries()) {
      const pt = randomBytes(size);
      const aad = randomBytes(i === 2 ? 0 : 20 + i);
      const pieces = aead.encryptPieces(aad, [pt.subarray(0, 5), pt.subarray(5, 5), pt.subarray(5)]);
      const expected = chacha20poly1305(key, nonce(i, 0), aad).encrypt(pt);
      assert.ok(Buffer.concat(pieces).equals(expected), `packet ${i} of ${size} bytes`);
    }
  });

  it('treats an undefined AAD and an empty AAD the same', () => {
    const pt = randomBytes(10);
    assert.ok(new FSChaCha20Poly1305(key).encrypt(undefined, [pt]).equals(new FSChaCha20Poly1305(key).encrypt(Buffer.alloc(0), [pt])));
  });

  it('encryptInto writes ciphertext ‖ tag at the offset, returns its length and leaves the other bytes alone', () => {
    const pt = randomBytes(33);
    const expected = new FSChaCha20Poly1305(key).encrypt(undefined, [pt]);
    const out = Buffer.alloc(100, 0xee);
    assert.equal(new FSChaCha20Poly1305(key).encryptInto(undefined, [pt.subarray(0, 5), pt.subarray(5)], out, 7), 49);
    assert.ok(out.subarray(7, 56).equals(expected));
    assert.ok(out.subarray(0, 7).equals(Buffer.alloc(7, 0xee)));
    assert.ok(out.subarray(56).equals(Buffer.alloc(44, 0xee)));
  });

  it('encryptInto refuses an output that is too small and does not advance the counter', () => {
    const aead = new FSChaCha20Poly1305(key);
    assert.throws(() => aead.encryptInto(undefined, [Buffer.alloc(10)], Buffer.alloc(30), 5), RangeError);
    const pt = randomBytes(3);
    assert.ok(aead.encrypt(undefined, [pt]).equals(chacha20poly1305(key, nonce(0, 0)).encrypt(pt)));
  });

  it('rejects a flipped bit in any byte of ciphertext or tag with ERR_V2_BAD_TAG', () => {
    const pt = randomBytes(24);
    const sealed = new FSChaCha20Poly1305(key).encrypt(undefined, [pt]);
    for (let pos = 0; pos < sealed.length; pos++) {
      const bad = Buffer.from(sealed);
      bad[pos] ^= 1 << (pos % 8);
      assert.throws(() => new FSChaCha20Poly1305(key).decrypt(undefined, bad), badTag, `byte ${pos}`);
    }
  });

  it('rejects a packet decrypted with the wrong AAD, or with none when one was used', () => {
    const aad = randomBytes(16);
    const sealed = new FSChaCha20Poly1305(key).encrypt(aad, [randomBytes(8)]);
    assert.throws(() => new FSChaCha20Poly1305(key).decrypt(undefined, sealed), badTag);
    assert.throws(() => new FSChaCha20Poly1305(key).decrypt(randomBytes(16), sealed), badTag);
  });

  it('rejects a body shorter than the 16-byte tag with ERR_V2_BAD_TAG', () => {
    assert.throws(() => new FSChaCha20Poly1305(key).decrypt(undefined, Buffer.alloc(15)), badTag);
  });

  it('leaves the counter unchanged on a failed packet, even at the rekey boundary (packet 223)', () => {
    const tx = new FSChaCha20Poly1305(key);
    const rx = new FSChaCha20Poly1305(key);
    for (let i = 0; i < 223; i++) rx.decrypt(undefined, tx.encrypt(undefined, none));
    const good223 = tx.encrypt(undefined, [Buffer.from('223')]);
    const bad = Buffer.from(good223);
    bad[0] ^= 0x80;
    assert.throws(() => rx.decrypt(undefined, bad), badTag);
    assert.equal(rx.decrypt(undefined, good223).toString(), '223');
    assert.equal(rx.decrypt(undefined, tx.encrypt(undefined, [Buffer.from('224')])).toString(), '224');
  });

  it('rejects a key that is not 32 bytes', () => {
    assert.throws(() => new FSChaCha20Poly1305(Buffer.alloc(16)), RangeError);
  });
});
