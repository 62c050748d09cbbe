/**
 * FSChaCha20: the forward-secure length cipher of BIP324.
 *
 * One continuous RFC 8439 ChaCha20 keystream per epoch under nonce LE32(0) ‖ LE64(epoch); each
 * chunk (a 3-byte packet length) takes the next unused keystream bytes, never restarting at a
 * block boundary. After every REKEY_INTERVAL chunks the next 32 keystream bytes become the new key
 * and the rest of the block is discarded. OpenSSL's 'chacha20' (iv = LE32 block counter ‖ nonce)
 * keeps partial blocks across update() calls, which is exactly this continuity.
 *
 * The keystream is made ahead, a whole epoch's worth for 3-byte chunks (224 x 3 + 32 = 704 bytes)
 * at a time, and XORed in JavaScript: one native call per 224 packets instead of one per packet
 * (an update() is a native call and a Buffer; for a small message the length cipher was a tenth of
 * the proxy's work per packet, bench/README.md). The bytes are the same: the buffered keystream is
 * the continuation of the same stream. Each keystream byte is wiped once used, and the buffer is
 * dropped at rekey, so what stays in memory is no more than the OpenSSL context holds (the current
 * key, from which the rest of the epoch follows).
 */
import { createCipheriv, type Cipher } from 'node:crypto';
import { REKEY_INTERVAL } from '../limits.js';

/** Keystream made per native call: one epoch of 3-byte lengths plus the next key. */
const BATCH = REKEY_INTERVAL * 3 + 32;

function epochIv(epoch: bigint): Buffer {
  const iv = Buffer.alloc(16); // block counter 0, nonce LE32(0) ‖ LE64(epoch)
  iv.writeBigUInt64LE(epoch, 8);
  return iv;
}

export class FSChaCha20 {
  private cipher: Cipher;
  private chunkCounter = 0;
  private epoch = 0n;
  /** Keystream made ahead and not used yet: ks[pos..]. */
  private ks: Buffer = Buffer.alloc(0);
  private pos = 0;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('FSChaCha20: key must be 32 bytes');
    // OpenSSL copies the key; no raw key is kept here (the next one comes from the keystream).
    this.cipher = createCipheriv('chacha20', key, epochIv(0n));
  }

  /** XORs `chunk` with the next keystream bytes (encrypt and decrypt are the same); counts one chunk. */
  crypt(chunk: Uint8Array): Buffer {
    const n = chunk.length;
    const ks = this.take(n);
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = chunk[i] ^ ks[i];
    ks.fill(0);
    if (++this.chunkCounter === REKEY_INTERVAL) this.rekey();
    return out;
  }

  /** crypt() in place: XORs buf[start..end) with the next keystream bytes; counts one chunk. No allocation (the packet length, per packet). */
  cryptInPlace(buf: Uint8Array, start: number, end: number): void {
    const n = end - start;
    const ks = this.take(n);
    for (let i = 0; i < n; i++) buf[start + i] ^= ks[i];
    ks.fill(0);
    if (++this.chunkCounter === REKEY_INTERVAL) this.rekey();
  }

  /** The next n keystream bytes, as a view of the buffer (the caller wipes them). */
  private take(n: number): Buffer {
    if (this.ks.length - this.pos < n) {
      // Continue the same stream: what is left, then more from the cipher.
      const rest = this.ks.subarray(this.pos);
      const more = this.cipher.update(Buffer.alloc(Math.max(BATCH, n - rest.length)));
      const next = Buffer.concat([rest, more]);
      rest.fill(0);
      more.fill(0);
      this.ks = next;
      this.pos = 0;
    }
    const view = this.ks.subarray(this.pos, this.pos + n);
    this.pos += n;
    return view;
  }

  private rekey(): void {
    const keyView = this.take(32);
    const newKey = Buffer.from(keyView);
    keyView.fill(0);
    // The rest of this epoch's keystream is discarded.
    this.ks.fill(0);
    this.ks = Buffer.alloc(0);
    this.pos = 0;
    this.epoch += 1n;
    this.chunkCounter = 0;
    this.cipher = createCipheriv('chacha20', newKey, epochIv(this.epoch));
    newKey.fill(0);
  }
}
