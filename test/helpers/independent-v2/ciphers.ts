/**
 * The two forward-secure ciphers of BIP324 ("Rekeying wrappers: FSChaCha20Poly1305 and FSChaCha20"),
 * shaped like the BIP's reference.py classes, on @noble/ciphers' RFC 8439 ChaCha20 and
 * ChaCha20-Poly1305. Nothing comes from src/.
 */
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { concatBytes } from '@noble/hashes/utils.js';

/** Packets (or length chunks) per key, for both ciphers. */
export const REKEY_INTERVAL = 224;

/** LE32(a) || LE64(b): a 12-byte RFC 8439 nonce. */
function nonce(low: number, high: number): Uint8Array {
  const n = new Uint8Array(12);
  const dv = new DataView(n.buffer);
  dv.setUint32(0, low >>> 0, true);
  dv.setBigUint64(4, BigInt(high), true);
  return n;
}

/** One 64-byte ChaCha20 keystream block. */
function chacha20Block(key: Uint8Array, nonce12: Uint8Array, counter: number): Uint8Array {
  return chacha20(key, nonce12, new Uint8Array(64), undefined, counter);
}

/** FSChaCha20Poly1305: the packet AEAD, with a nonce from the packet counter and a rekey every 224 packets. */
export class FSChaCha20Poly1305 {
  private key: Uint8Array;
  private packetCounter = 0;

  constructor(initialKey: Uint8Array) {
    this.key = Uint8Array.from(initialKey);
  }

  encrypt(aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return this.crypt(aad, plaintext, false);
  }

  /** Throws on a wrong tag (the caller disconnects); the counter does not move then. */
  decrypt(aad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    return this.crypt(aad, ciphertext, true);
  }

  private crypt(aad: Uint8Array, text: Uint8Array, isDecrypt: boolean): Uint8Array {
    const n = nonce(this.packetCounter % REKEY_INTERVAL, Math.floor(this.packetCounter / REKEY_INTERVAL));
    const aead = chacha20poly1305(this.key, n, aad);
    const ret = isDecrypt ? aead.decrypt(text) : aead.encrypt(text);
    if ((this.packetCounter + 1) % REKEY_INTERVAL === 0) {
      const rekeyNonce = Uint8Array.from(n);
      rekeyNonce.fill(0xff, 0, 4);
      this.key = chacha20poly1305(this.key, rekeyNonce, new Uint8Array(0)).encrypt(new Uint8Array(32)).subarray(0, 32);
    }
    this.packetCounter++;
    return ret;
  }
}

/** FSChaCha20: the length cipher, one continuous keystream per key, rekeyed every 224 chunks. */
export class FSChaCha20 {
  private key: Uint8Array;
  private blockCounter = 0;
  private chunkCounter = 0;
  private keystream = new Uint8Array(0);

  constructor(initialKey: Uint8Array) {
    this.key = Uint8Array.from(initialKey);
  }

  private getKeystreamBytes(nbytes: number): Uint8Array {
    while (this.keystream.length < nbytes) {
      const n = nonce(0, Math.floor(this.chunkCounter / REKEY_INTERVAL));
      this.keystream = concatBytes(this.keystream, chacha20Block(this.key, n, this.blockCounter));
      this.blockCounter++;
    }
    const ret = this.keystream.subarray(0, nbytes);
    this.keystream = this.keystream.subarray(nbytes);
    return ret;
  }

  /** Encryption and decryption are the same XOR. */
  crypt(chunk: Uint8Array): Uint8Array {
    const ks = this.getKeystreamBytes(chunk.length);
    const ret = chunk.map((b, i) => b ^ ks[i]);
    if ((this.chunkCounter + 1) % REKEY_INTERVAL === 0) {
      this.key = Uint8Array.from(this.getKeystreamBytes(32));
      this.blockCounter = 0;
      this.keystream = new Uint8Array(0);
    }
    this.chunkCounter++;
    return ret;
  }
}
