/**
 * BIP324 packet encryption and decryption (BIP324 "Packet encryption").
 *
 * wire packet = FSChaCha20_L.crypt(LE24(len(contents))) ‖ FSChaCha20Poly1305_P.encrypt(aad, header ‖ contents)
 *
 * header 0x80 marks a decoy to authenticate and discard; the other seven header bits are reserved
 * (sent as 0, ignored on receipt). The length counts contents only. A receiver runs L first and
 * checks the length against its limit before it buffers anything, then authenticates the body.
 * Sans-I/O: these classes take bytes and return bytes; framing and AAD choice belong to the caller.
 */
import { ProxyError } from '../errors.js';
import { MAX_V2_CONTENTS, V2_LENGTH_LEN, V2_PACKET_OVERHEAD, V2_TAG_LEN } from '../limits.js';
import { FSChaCha20 } from './fschacha20.js';
import { FSChaCha20Poly1305 } from './fschacha20poly1305.js';

/** The 3-byte length field can encode no more. */
export const MAX_WIRE_CONTENTS = 0xffffff;
const IGNORE_BIT = 0x80;
const HEADER_PLAIN = Buffer.of(0x00);
const HEADER_IGNORE = Buffer.of(IGNORE_BIT);

export class PacketEncryptor {
  private readonly lengthCipher: FSChaCha20;
  private readonly packetCipher: FSChaCha20Poly1305;

  constructor(keyL: Uint8Array, keyP: Uint8Array) {
    this.lengthCipher = new FSChaCha20(keyL);
    this.packetCipher = new FSChaCha20Poly1305(keyP);
  }

  /** One wire packet (3 + 1 + len + 16 bytes) in one allocation. contents given as pieces (e.g. [typeByte, payload]). */
  encrypt(contents: readonly Uint8Array[], options: { aad?: Uint8Array; ignore?: boolean } = {}): Buffer {
    let len = 0;
    for (const c of contents) len += c.length;
    if (len > MAX_WIRE_CONTENTS) {
      throw new ProxyError('ERR_V2_TOO_LARGE', `cannot send ${len} bytes of contents in one v2 packet (max ${MAX_WIRE_CONTENTS})`);
    }
    const out = Buffer.allocUnsafe(len + V2_PACKET_OVERHEAD); // every byte is written below
    out.writeUIntLE(len, 0, V2_LENGTH_LEN);
    this.lengthCipher.cryptInPlace(out, 0, V2_LENGTH_LEN);
    const parts: Uint8Array[] = [options.ignore === true ? HEADER_IGNORE : HEADER_PLAIN];
    for (const c of contents) parts.push(c);
    this.packetCipher.encryptInto(options.aad, parts, out, V2_LENGTH_LEN);
    return out;
  }

  /**
   * The same wire packet as encrypt(), as pieces to write in order. Up to PIECES_MIN bytes it is one
   * buffer; above, the ciphertext of each contents piece stays in the buffer the cipher produced, which
   * saves copying (and allocating) a second megabyte-sized buffer per large message.
   */
  encryptPieces(contents: readonly Uint8Array[], options: { aad?: Uint8Array; ignore?: boolean } = {}): Buffer[] {
    let len = 0;
    for (const c of contents) len += c.length;
    if (len < PIECES_MIN) return [this.encrypt(contents, options)];
    if (len > MAX_WIRE_CONTENTS) {
      throw new ProxyError('ERR_V2_TOO_LARGE', `cannot send ${len} bytes of contents in one v2 packet (max ${MAX_WIRE_CONTENTS})`);
    }
    const head = Buffer.allocUnsafe(V2_LENGTH_LEN);
    head.writeUIntLE(len, 0, V2_LENGTH_LEN);
    const pieces = this.packetCipher.encryptPieces(options.aad, [options.ignore === true ? HEADER_IGNORE : HEADER_PLAIN, ...contents]);
    // The 3 length bytes and the 1-byte encrypted header go out as one small buffer.
    pieces[0] = Buffer.concat([this.lengthCipher.crypt(head), pieces[0]]);
    return pieces;
  }
}

/** From this many bytes of contents, encryptPieces() avoids the copy into one buffer. */
const PIECES_MIN = 64 * 1024;

export class PacketDecryptor {
  private readonly lengthCipher: FSChaCha20;
  private readonly packetCipher: FSChaCha20Poly1305;
  private readonly maxContents: number;
  /** Contents length announced by the last decryptLength(), or -1 when a length is due next. */
  private pendingLength = -1;

  constructor(keyL: Uint8Array, keyP: Uint8Array, maxContents: number = MAX_V2_CONTENTS) {
    if (!Number.isInteger(maxContents) || maxContents < 0 || maxContents > MAX_WIRE_CONTENTS) {
      throw new RangeError(`PacketDecryptor: maxContents must be an integer in 0..${MAX_WIRE_CONTENTS}`);
    }
    this.lengthCipher = new FSChaCha20(keyL);
    this.packetCipher = new FSChaCha20Poly1305(keyP);
    this.maxContents = maxContents;
  }

  /** Decrypt the 3 length bytes. Advances L exactly once: call it once per packet. Throws ERR_V2_TOO_LARGE above maxContents (before anything is allocated). Returns len(contents). */
  decryptLength(length3: Uint8Array): number {
    if (length3.length !== V2_LENGTH_LEN) throw new RangeError('PacketDecryptor: the length field is 3 bytes');
    if (this.pendingLength !== -1) {
      // A second length before the body would desynchronise L from P for the rest of the session.
      throw new ProxyError('ERR_V2_BAD_STATE', 'decryptLength called twice without decrypting the packet body');
    }
    // Decrypted in a copy: the caller's bytes are left as they were.
    const plain = Uint8Array.of(length3[0], length3[1], length3[2]);
    this.lengthCipher.cryptInPlace(plain, 0, V2_LENGTH_LEN);
    const len = plain[0] | (plain[1] << 8) | (plain[2] << 16);
    if (len > this.maxContents) {
      throw new ProxyError('ERR_V2_TOO_LARGE', `v2 packet announces ${len} bytes of contents (max ${this.maxContents})`);
    }
    this.pendingLength = len;
    return len;
  }

  /** body = the 1 + len + 16 bytes after the length. Throws ERR_V2_BAD_TAG (no state advanced). `ignore` = header bit 0x80; other header bits are ignored. */
  decrypt(body: Uint8Array, aad?: Uint8Array): { ignore: boolean; contents: Buffer } {
    if (this.pendingLength === -1) {
      throw new ProxyError('ERR_V2_BAD_STATE', 'decrypt called before decryptLength');
    }
    if (body.length !== 1 + this.pendingLength + V2_TAG_LEN) {
      throw new ProxyError('ERR_V2_BAD_STATE', `packet body is ${body.length} bytes but the length announced ${1 + this.pendingLength + V2_TAG_LEN}`);
    }
    const plaintext = this.packetCipher.decrypt(aad, body); // throws before any state changes
    this.pendingLength = -1;
    return { ignore: (plaintext[0] & IGNORE_BIT) !== 0, contents: plaintext.subarray(1) };
  }
}
