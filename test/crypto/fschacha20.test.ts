/**
 * FSChaCha20, the BIP324 length cipher, checked against raw @noble/ciphers ChaCha20 keystream.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chacha20 } from '@noble/ciphers/chacha.js';
import { FSChaCha20 } from '../../src/crypto/fschacha20.js';

function nonce(epoch: number): Uint8Array {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(BigInt(epoch), 4);
  return n;
}
const keystream = (key: Uint8Array, epoch: number, len: number) => Buffer.from(chacha20(key, nonce(epoch), new Uint8Array(len)));

describe('FSChaCha20 (length cipher)', () => {
  const key = randomBytes(32);

  it('gives 224 lengths keystream bytes 0..671 of one continuous stream, never restarting per chunk', () => {
    const fs = new FSChaCha20(key);
    const out = Buffer.concat(Array.from({ length: 224 }, () => fs.crypt(Buffer.alloc(3))));
    assert.ok(out.equals(keystream(key, 0, 672)));
  });

  it('after 224 chunks takes the new key from keystream bytes 672..703 and restarts under nonce LE64(1)', () => {
    const fs = new FSChaCha20(key);
    for (let k = 0; k < 224; k++) fs.crypt(Buffer.alloc(3));
    const key1 = keystream(key, 0, 704).subarray(672);
    const next = Buffer.concat([fs.crypt(Buffer.alloc(3)), fs.crypt(Buffer.alloc(3))]);
    assert.ok(next.equals(keystream(key1, 1, 6)));
  });

  it('chains four epochs: each key comes from the previous epoch keystream', () => {
    const fs = new FSChaCha20(key);
    let k = Buffer.from(key);
    for (let epoch = 0; epoch < 4; epoch++) {
      const stream = keystream(k, epoch, 704);
      const got = Buffer.concat(Array.from({ length: 224 }, () => fs.crypt(Buffer.alloc(3))));
      assert.ok(got.equals(stream.subarray(0, 672)), `epoch ${epoch}`);
      k = stream.subarray(672, 704);
    }
  });

  it('counts chunks, not bytes: 224 one-byte chunks rekey with keystream bytes 224..255 and drop the rest', () => {
    const fs = new FSChaCha20(key);
    const got = Buffer.concat(Array.from({ length: 224 }, () => fs.crypt(Buffer.alloc(1))));
    const stream = keystream(key, 0, 256);
    assert.ok(got.equals(stream.subarray(0, 224)));
    assert.ok(fs.crypt(Buffer.alloc(5)).equals(keystream(stream.subarray(224, 256), 1, 5)));
  });

  it('continues the keystream whatever the chunk sizes, split at every byte boundary of 130 bytes', () => {
    const data = randomBytes(130);
    const ks = keystream(key, 0, 130);
    const expected = Buffer.from(data.map((b, i) => b ^ ks[i]));
    for (let cut = 0; cut <= data.length; cut++) {
      const fs = new FSChaCha20(key);
      const got = Buffer.concat([fs.crypt(data.subarray(0, cut)), fs.crypt(data.subarray(cut))]);
      assert.ok(got.equals(expected), `cut at ${cut}`);
    }
  });

  it('decrypts with a second instance on the same key (the XOR is its own inverse)', () => {
    const tx = new FSChaCha20(key);
    const rx = new FSChaCha20(key);
    for (let k = 0; k < 500; k++) {
      const len = Buffer.alloc(3);
      len.writeUIntLE(k * 7919, 0, 3);
      assert.ok(rx.crypt(tx.crypt(len)).equals(len), `chunk ${k}`);
    }
  });

  it('does not modify the input chunk', () => {
    const chunk = Buffer.from([1, 2, 3]);
    new FSChaCha20(key).crypt(chunk);
    assert.deepEqual([...chunk], [1, 2, 3]);
  });

  it('rejects a key that is not 32 bytes', () => {
    assert.throws(() => new FSChaCha20(Buffer.alloc(31)), RangeError);
  });
});
