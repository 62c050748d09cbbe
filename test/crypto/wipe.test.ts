/**
 * FSChaCha20Poly1305.decrypt: OpenSSL produces the plaintext before the tag is checked, so after a
 * failed tag that unauthenticated plaintext must be wiped, not left in memory (and never returned).
 * Node's createDecipheriv is wrapped for the duration of each test (module.syncBuiltinESMExports
 * makes the ESM import in src/ see the wrapper) to keep a reference to every Buffer that
 * decipher.update() hands back, so the test can look at the very buffer the code held.
 */
import assert from 'node:assert/strict';
import crypto, { randomBytes } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { isProxyError } from '../../src/errors.js';
import { FSChaCha20Poly1305 } from '../../src/crypto/fschacha20poly1305.js';

describe('FSChaCha20Poly1305: unauthenticated plaintext is wiped', function () {
  const original = crypto.createDecipheriv;
  let outputs: Buffer[] = [];
  beforeEach(() => {
    outputs = [];
    crypto.createDecipheriv = ((...args: Parameters<typeof original>) => {
      const decipher = original(...args);
      const update = decipher.update.bind(decipher) as (data: NodeJS.ArrayBufferView) => Buffer;
      decipher.update = ((data: NodeJS.ArrayBufferView) => {
        const out = update(data);
        outputs.push(out);
        return out;
      }) as typeof decipher.update;
      return decipher;
    }) as typeof original;
    syncBuiltinESMExports();
  });
  afterEach(() => {
    crypto.createDecipheriv = original;
    syncBuiltinESMExports();
  });

  function sealed(plaintext: Buffer, aad?: Buffer): { key: Buffer; packet: Buffer } {
    const key = randomBytes(32);
    return { key, packet: new FSChaCha20Poly1305(key).encrypt(aad, [plaintext]) };
  }

  for (const [what, tamper] of [
    ['a flipped tag bit', (p: Buffer) => (p[p.length - 1] ^= 0x01)],
    ['a flipped ciphertext bit', (p: Buffer) => (p[0] ^= 0x80)],
  ] as const) {
    it(`after ${what}, the plaintext OpenSSL produced is all zeros and nothing is returned`, () => {
      const plaintext = Buffer.alloc(1000, 0xa5);
      const { key, packet } = sealed(plaintext);
      tamper(packet);
      const aead = new FSChaCha20Poly1305(key);
      assert.throws(
        () => aead.decrypt(undefined, packet),
        (e: unknown) => isProxyError(e, 'ERR_V2_BAD_TAG'),
      );
      const produced = outputs.filter((b) => b.length > 0);
      assert.equal(produced.length, 1, 'decipher.update() was called once (the wrapper saw the decryption)');
      assert.equal(produced[0].length, plaintext.length);
      assert.ok(
        produced[0].every((b) => b === 0),
        'unauthenticated plaintext left in memory',
      );
    });
  }

  it('with the wrong AAD, too', () => {
    const plaintext = Buffer.alloc(64, 0x5a);
    const { key, packet } = sealed(plaintext, Buffer.from('aad'));
    assert.throws(
      () => new FSChaCha20Poly1305(key).decrypt(Buffer.from('AAD'), packet),
      (e: unknown) => isProxyError(e, 'ERR_V2_BAD_TAG'),
    );
    assert.ok(outputs.length > 0 && outputs.every((b) => b.every((x) => x === 0)));
  });

  it('the wrapper sees real plaintext: an authentic packet decrypts to the very buffer it captured, unwiped', () => {
    const plaintext = Buffer.alloc(1000, 0xa5);
    const { key, packet } = sealed(plaintext);
    const out = new FSChaCha20Poly1305(key).decrypt(undefined, packet);
    assert.deepEqual(out, plaintext);
    assert.ok(outputs.includes(out), 'decrypt returned the buffer decipher.update() produced');
  });
});
