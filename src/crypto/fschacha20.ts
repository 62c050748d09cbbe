/**
 * FSChaCha20: the forward-secure length cipher of BIP324.
 *
 * One continuous RFC 8439 ChaCha20 keystream per epoch under nonce LE32(0) ‖ LE64(epoch); each
 * chunk (a 3-byte packet length) takes the next unused keystream bytes, never restarting at a
 * block boundary. After every REKEY_INTERVAL chunks the next 32 keystream bytes become the new key
 * and the rest of the block is discarded. OpenSSL's 'chacha20' (iv = LE32 block counter ‖ nonce)
 * keeps partial blocks across update() calls, which is exactly this continuity.
 */
import { createCipheriv, type Cipher } from 'node:crypto';
import { REKEY_INTERVAL } from '../limits.js';

const ZERO32 = Buffer.alloc(32);

function epochIv(epoch: bigint): Buffer {
  const iv = Buffer.alloc(16); // block counter 0, nonce LE32(0) ‖ LE64(epoch)
  iv.writeBigUInt64LE(epoch, 8);
  return iv;
}

export class FSChaCha20 {
  private cipher: Cipher;
  private chunkCounter = 0;
  private epoch = 0n;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('FSChaCha20: key must be 32 bytes');
    // OpenSSL copies the key; no raw key is kept here (the next one comes from the keystream).
    this.cipher = createCipheriv('chacha20', key, epochIv(0n));
  }

  /** XORs `chunk` with the next keystream bytes (encrypt and decrypt are the same); counts one chunk. */
  crypt(chunk: Uint8Array): Buffer {
    const out = this.cipher.update(chunk);
    if (++this.chunkCounter === REKEY_INTERVAL) this.rekey();
    return out;
  }

  private rekey(): void {
    const newKey = this.cipher.update(ZERO32);
    this.epoch += 1n;
    this.chunkCounter = 0;
    this.cipher = createCipheriv('chacha20', newKey, epochIv(this.epoch));
    newKey.fill(0);
  }
}
