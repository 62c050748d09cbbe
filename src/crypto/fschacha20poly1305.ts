/**
 * FSChaCha20Poly1305: the forward-secure packet AEAD of BIP324.
 *
 * Packet i is sealed with RFC 8439 AEAD_CHACHA20_POLY1305 under nonce LE32(i mod 224) ‖
 * LE64(floor(i / 224)). After every 224th packet the key is replaced by the first 32 bytes of
 * ChaCha20 keystream block 1 under the old key and nonce 0xFFFFFFFF ‖ LE64(epoch) (block 0 is the
 * Poly1305 key block). Encryption and decryption advance the same counter; a packet that fails
 * authentication advances nothing, so a caller may retry with the right bytes.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ProxyError } from '../errors.js';
import { REKEY_INTERVAL, V2_TAG_LEN } from '../limits.js';

const ZERO32 = Buffer.alloc(32);
/** Up to this many plaintext bytes, pieces are gathered into one update() (see encryptInto). */
const COALESCE_MAX = 32 * 1024;

export class FSChaCha20Poly1305 {
  /** The live key: owned copy, overwritten in place on rekey. */
  private readonly key: Buffer;
  /** LE32(i mod 224) ‖ LE64(epoch); node copies the IV, so one buffer is reused for every packet. */
  private readonly nonce = Buffer.alloc(12);
  private packetInEpoch = 0;
  private epoch = 0n;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('FSChaCha20Poly1305: key must be 32 bytes');
    this.key = Buffer.from(key);
  }

  /** Returns ciphertext ‖ 16-byte tag. `parts` are the plaintext pieces, in order (no concat needed by the caller). */
  encrypt(aad: Uint8Array | undefined, parts: readonly Uint8Array[]): Buffer {
    let len = V2_TAG_LEN;
    for (const p of parts) len += p.length;
    const out = Buffer.allocUnsafe(len); // every byte is written below
    this.encryptInto(aad, parts, out, 0);
    return out;
  }

  /**
   * Writes ciphertext||tag of the plaintext parts into `out` at `offset` instead of allocating (hot path); returns bytes written.
   * The parts must not overlap the destination range of `out` (small packets are staged there).
   */
  encryptInto(aad: Uint8Array | undefined, parts: readonly Uint8Array[], out: Buffer, offset: number): number {
    let need = V2_TAG_LEN;
    for (const p of parts) need += p.length;
    if (offset < 0 || offset + need > out.length) {
      throw new RangeError(`FSChaCha20Poly1305: ${need} bytes do not fit at offset ${offset} of ${out.length}`);
    }
    const plainLen = need - V2_TAG_LEN;
    const cipher = createCipheriv('chacha20-poly1305', this.key, this.nonce, { authTagLength: V2_TAG_LEN });
    if (aad !== undefined && aad.length > 0) cipher.setAAD(aad, { plaintextLength: plainLen });
    let pos = offset;
    if (parts.length > 1 && plainLen <= COALESCE_MAX) {
      // Each update() is a native call plus an output allocation; for small packets, staging the
      // pieces in `out` and making one call is measurably faster than the extra copy it costs.
      for (const p of parts) {
        out.set(p, pos);
        pos += p.length;
      }
      cipher.update(out.subarray(offset, pos)).copy(out, offset);
    } else {
      for (const p of parts) {
        if (p.length === 0) continue;
        pos += cipher.update(p).copy(out, pos);
      }
    }
    cipher.final();
    pos += cipher.getAuthTag().copy(out, pos);
    this.advance();
    return pos - offset;
  }

  /**
   * Like encrypt(), but the ciphertext is returned as pieces (one per plaintext part, then the tag),
   * so a large packet is never copied into one buffer: the caller writes the pieces with writev.
   */
  encryptPieces(aad: Uint8Array | undefined, parts: readonly Uint8Array[]): Buffer[] {
    let plainLen = 0;
    for (const p of parts) plainLen += p.length;
    const cipher = createCipheriv('chacha20-poly1305', this.key, this.nonce, { authTagLength: V2_TAG_LEN });
    if (aad !== undefined && aad.length > 0) cipher.setAAD(aad, { plaintextLength: plainLen });
    const out: Buffer[] = [];
    for (const p of parts) if (p.length > 0) out.push(cipher.update(p));
    cipher.final();
    out.push(cipher.getAuthTag());
    this.advance();
    return out;
  }

  /**
   * Authenticates first; throws ProxyError ERR_V2_BAD_TAG and leaves the packet counter unchanged on failure.
   * (OpenSSL decrypts while it computes the tag; nothing it produced is returned unless the tag verified.)
   */
  decrypt(aad: Uint8Array | undefined, ciphertextAndTag: Uint8Array): Buffer {
    if (ciphertextAndTag.length < V2_TAG_LEN) {
      throw new ProxyError('ERR_V2_BAD_TAG', `v2 packet body of ${ciphertextAndTag.length} bytes is shorter than a tag`);
    }
    const ctLen = ciphertextAndTag.length - V2_TAG_LEN;
    const decipher = createDecipheriv('chacha20-poly1305', this.key, this.nonce, { authTagLength: V2_TAG_LEN });
    decipher.setAuthTag(ciphertextAndTag.subarray(ctLen));
    if (aad !== undefined && aad.length > 0) decipher.setAAD(aad, { plaintextLength: ctLen });
    const plaintext = decipher.update(ciphertextAndTag.subarray(0, ctLen));
    try {
      decipher.final();
    } catch (cause) {
      // OpenSSL has already produced unauthenticated plaintext; it must not escape or linger.
      plaintext.fill(0);
      throw new ProxyError('ERR_V2_BAD_TAG', 'v2 packet failed authentication', { cause });
    }
    this.advance();
    return plaintext;
  }

  private advance(): void {
    if (++this.packetInEpoch === REKEY_INTERVAL) {
      // Nonce for the rekey block: 0xFFFFFFFF ‖ LE64(epoch); the iv of 'chacha20' adds the LE32 block counter 1.
      const iv = Buffer.alloc(16);
      iv.writeUInt32LE(1, 0);
      iv.writeUInt32LE(0xffffffff, 4);
      iv.writeBigUInt64LE(this.epoch, 8);
      const newKey = createCipheriv('chacha20', this.key, iv).update(ZERO32);
      newKey.copy(this.key);
      newKey.fill(0);
      this.packetInEpoch = 0;
      this.epoch += 1n;
      this.nonce.writeBigUInt64LE(this.epoch, 4);
    }
    this.nonce.writeUInt32LE(this.packetInEpoch, 0);
  }
}
