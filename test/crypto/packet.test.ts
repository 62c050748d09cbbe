/**
 * BIP324 packet encryption/decryption: framing, limits, decoys, failed-tag recovery.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chacha20 } from '@noble/ciphers/chacha.js';
import { isProxyError } from '../../src/errors.js';
import { MAX_V2_CONTENTS } from '../../src/limits.js';
import { FSChaCha20 } from '../../src/crypto/fschacha20.js';
import { FSChaCha20Poly1305 } from '../../src/crypto/fschacha20poly1305.js';
import { MAX_WIRE_CONTENTS, PacketDecryptor, PacketEncryptor } from '../../src/crypto/packet.js';

const code = (c: string) => (e: unknown) => isProxyError(e) && e.code === c;

/** Receives one whole wire packet the way a transport would: 3 bytes, then the announced body. */
function receive(rx: PacketDecryptor, wire: Buffer, aad?: Uint8Array) {
  const len = rx.decryptLength(wire.subarray(0, 3));
  assert.equal(wire.length, 3 + 1 + len + 16);
  return rx.decrypt(wire.subarray(3), aad);
}

/** A packet with an arbitrary header byte, built from the two ciphers directly. */
function rawPacket(l: FSChaCha20, p: FSChaCha20Poly1305, header: number, contents: Buffer): Buffer {
  const len = Buffer.alloc(3);
  len.writeUIntLE(contents.length, 0, 3);
  return Buffer.concat([l.crypt(len), p.encrypt(undefined, [Buffer.of(header), contents])]);
}

describe('BIP324 packets', () => {
  const keyL = randomBytes(32);
  const keyP = randomBytes(32);

  it('frames a packet as L(LE24 of the contents length) ‖ P(header ‖ contents) ‖ tag, 20 bytes of overhead', () => {
    const contents = randomBytes(300);
    const aad = randomBytes(50);
    const wire = new PacketEncryptor(keyL, keyP).encrypt([contents.subarray(0, 1), contents.subarray(1)], { aad });
    assert.equal(wire.length, 320);
    const len = Buffer.from([300 & 0xff, 300 >> 8, 0]);
    const expected = Buffer.concat([new FSChaCha20(keyL).crypt(len), new FSChaCha20Poly1305(keyP).encrypt(aad, [Buffer.of(0x00), contents])]);
    assert.ok(wire.equals(expected));
  });

  it('encryptPieces() gives the same wire bytes as encrypt(), below and above the piece threshold, across rekeys', () => {
    const a = new PacketEncryptor(keyL, keyP);
    const b = new PacketEncryptor(keyL, keyP);
    const sizes = [0, 1, 65_535, 65_536, 65_537, 1 << 20];
    for (let i = 0; i < 500; i++) {
      const payload = randomBytes(sizes[i % sizes.length]);
      const contents = [Buffer.of(i & 0xff), payload.subarray(0, 7), payload.subarray(7)];
      const options = { aad: i === 0 ? randomBytes(33) : undefined, ignore: i % 7 === 3 };
      const pieces = a.encryptPieces(contents, options);
      if (payload.length + 1 >= 65_536) assert.ok(pieces.length > 1, 'large packets stay in pieces');
      else assert.equal(pieces.length, 1, 'a small packet is one buffer');
      assert.deepEqual(Buffer.concat(pieces), b.encrypt(contents, options), `packet ${i}`);
    }
  });

  it('sets header 0x80 for a decoy and 0x00 otherwise', () => {
    const contents = randomBytes(5);
    const decoy = new PacketEncryptor(keyL, keyP).encrypt([contents], { ignore: true });
    const plainHeader = new FSChaCha20Poly1305(keyP).decrypt(undefined, decoy.subarray(3));
    assert.equal(plainHeader[0], 0x80);
    const normal = new PacketEncryptor(keyL, keyP).encrypt([contents], { ignore: false });
    assert.equal(new FSChaCha20Poly1305(keyP).decrypt(undefined, normal.subarray(3))[0], 0x00);
  });

  it('encrypts lengths with one continuous keystream across packets (3 bytes each, no per-packet restart)', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const stream = Buffer.from(chacha20(keyL, new Uint8Array(12), new Uint8Array(672)));
    for (let k = 0; k < 224; k++) {
      const size = (k * 37) % 300;
      const wire = enc.encrypt([Buffer.alloc(size)]);
      const len = Buffer.from(wire.subarray(0, 3).map((b, j) => b ^ stream[3 * k + j]));
      assert.equal(len.readUIntLE(0, 3), size, `packet ${k}`);
    }
  });

  it('gives the same packet for contents split into [type, payload] at every byte boundary', () => {
    const contents = randomBytes(40);
    const expected = new PacketEncryptor(keyL, keyP).encrypt([contents]);
    for (let cut = 0; cut <= contents.length; cut++) {
      const wire = new PacketEncryptor(keyL, keyP).encrypt([contents.subarray(0, cut), contents.subarray(cut)]);
      assert.ok(wire.equals(expected), `cut at ${cut}`);
    }
  });

  it('round-trips 1000 packets (four rekeys) with decoys mixed in, AAD on the first only', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const rx = new PacketDecryptor(keyL, keyP);
    const garbage = randomBytes(4095);
    for (let k = 0; k < 1000; k++) {
      const contents = randomBytes(k % 11 === 0 ? 0 : (k * 31) % 2000);
      const ignore = k % 3 === 0;
      const wire = enc.encrypt([contents], k === 0 ? { aad: garbage, ignore } : { ignore });
      const out = receive(rx, wire, k === 0 ? garbage : undefined);
      assert.equal(out.ignore, ignore, `packet ${k}`);
      assert.ok(out.contents.equals(contents), `packet ${k}`);
    }
  });

  it('reads the ignore bit only: header bits other than 0x80 are ignored', () => {
    const l = new FSChaCha20(keyL);
    const p = new FSChaCha20Poly1305(keyP);
    const rx = new PacketDecryptor(keyL, keyP);
    for (const header of [0x00, 0x01, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xff]) {
      const contents = randomBytes(9);
      const out = receive(rx, rawPacket(l, p, header, contents));
      assert.equal(out.ignore, header >= 0x80, `header 0x${header.toString(16)}`);
      assert.ok(out.contents.equals(contents));
    }
  });

  it('accepts a length of exactly MAX_V2_CONTENTS (4,000,013) and refuses 4,000,014 with ERR_V2_TOO_LARGE from the 3 length bytes alone', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const rx = new PacketDecryptor(keyL, keyP);
    const atMax = enc.encrypt([Buffer.alloc(MAX_V2_CONTENTS)]);
    assert.equal(rx.decryptLength(atMax.subarray(0, 3)), MAX_V2_CONTENTS);
    assert.equal(rx.decrypt(atMax.subarray(3)).contents.length, MAX_V2_CONTENTS);
    const over = enc.encrypt([Buffer.alloc(MAX_V2_CONTENTS + 1)]);
    assert.throws(() => rx.decryptLength(over.subarray(0, 3)), code('ERR_V2_TOO_LARGE'));
  });

  it('honours a smaller maxContents', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const rx = new PacketDecryptor(keyL, keyP, 100);
    assert.equal(receive(rx, enc.encrypt([Buffer.alloc(100)])).contents.length, 100);
    assert.throws(() => rx.decryptLength(enc.encrypt([Buffer.alloc(101)]).subarray(0, 3)), code('ERR_V2_TOO_LARGE'));
  });

  it('refuses to send more contents than 3 length bytes can carry (ERR_V2_TOO_LARGE)', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    assert.throws(() => enc.encrypt([Buffer.alloc(MAX_WIRE_CONTENTS), Buffer.alloc(1)]), code('ERR_V2_TOO_LARGE'));
  });

  it('sends exactly MAX_WIRE_CONTENTS (16,777,215) bytes of contents, and refuses one more in encryptPieces() too', () => {
    assert.equal(MAX_WIRE_CONTENTS, 16_777_215);
    const big = Buffer.alloc(MAX_WIRE_CONTENTS);
    const rx = new PacketDecryptor(keyL, keyP, MAX_WIRE_CONTENTS);
    const wire = new PacketEncryptor(keyL, keyP).encrypt([big]);
    assert.equal(wire.length, MAX_WIRE_CONTENTS + 20);
    assert.equal(rx.decryptLength(wire.subarray(0, 3)), MAX_WIRE_CONTENTS);
    const pieces = new PacketEncryptor(keyL, keyP).encryptPieces([big]);
    assert.ok(Buffer.concat(pieces).equals(wire));
    assert.throws(() => new PacketEncryptor(keyL, keyP).encryptPieces([big, Buffer.alloc(1)]), code('ERR_V2_TOO_LARGE'));
  });

  it('encryptPieces() above the piece threshold seals the first packet with the AAD (the garbage)', () => {
    const garbage = randomBytes(40);
    const contents = randomBytes(100_000);
    const wire = Buffer.concat(new PacketEncryptor(keyL, keyP).encryptPieces([contents.subarray(0, 1), contents.subarray(1)], { aad: garbage }));
    const rx = new PacketDecryptor(keyL, keyP);
    rx.decryptLength(wire.subarray(0, 3));
    assert.throws(() => rx.decrypt(wire.subarray(3)), code('ERR_V2_BAD_TAG'));
    assert.ok(rx.decrypt(wire.subarray(3), garbage).contents.equals(contents));
  });

  it('accepts a maxContents of 0..16,777,215 (integers only) and refuses anything else with RangeError', () => {
    for (const bad of [-1, 1.5, Number.NaN, MAX_WIRE_CONTENTS + 1]) {
      assert.throws(() => new PacketDecryptor(keyL, keyP, bad), RangeError, `maxContents ${bad}`);
    }
    const rx = new PacketDecryptor(keyL, keyP, 0);
    const enc = new PacketEncryptor(keyL, keyP);
    assert.equal(receive(rx, enc.encrypt([])).contents.length, 0);
    assert.throws(() => rx.decryptLength(enc.encrypt([Buffer.of(1)]).subarray(0, 3)), code('ERR_V2_TOO_LARGE'));
    assert.doesNotThrow(() => new PacketDecryptor(keyL, keyP, MAX_WIRE_CONTENTS));
  });

  it('refuses a length field that is not 3 bytes (RangeError), and the decryptor stays in step', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const rx = new PacketDecryptor(keyL, keyP);
    const wire = enc.encrypt([Buffer.from('abc')]);
    assert.throws(() => rx.decryptLength(wire.subarray(0, 2)), RangeError);
    assert.throws(() => rx.decryptLength(wire.subarray(0, 4)), RangeError);
    assert.equal(receive(rx, wire).contents.toString(), 'abc');
  });

  it('stays usable after a failed tag: the same decryptor then accepts the correct packet and the next ones', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const rx = new PacketDecryptor(keyL, keyP);
    for (let k = 0; k < 223; k++) receive(rx, enc.encrypt([Buffer.of(k & 0xff)]));
    const wire = enc.encrypt([Buffer.from('packet 223')]);
    assert.equal(rx.decryptLength(wire.subarray(0, 3)), 10);
    for (const pos of [3, 4, 10, wire.length - 1]) {
      const bad = Buffer.from(wire.subarray(3));
      bad[pos - 3] ^= 0x04;
      assert.throws(() => rx.decrypt(bad), code('ERR_V2_BAD_TAG'), `byte ${pos}`);
    }
    assert.equal(rx.decrypt(wire.subarray(3)).contents.toString(), 'packet 223');
    assert.equal(receive(rx, enc.encrypt([Buffer.from('packet 224')])).contents.toString(), 'packet 224');
  });

  it('rejects the first packet when the receiver uses different garbage as AAD', () => {
    const garbage = randomBytes(20);
    const wire = new PacketEncryptor(keyL, keyP).encrypt([Buffer.alloc(0)], { aad: garbage });
    const rx = new PacketDecryptor(keyL, keyP);
    rx.decryptLength(wire.subarray(0, 3));
    assert.throws(() => rx.decrypt(wire.subarray(3), garbage.subarray(1)), code('ERR_V2_BAD_TAG'));
    assert.throws(() => rx.decrypt(wire.subarray(3)), code('ERR_V2_BAD_TAG'));
    assert.equal(rx.decrypt(wire.subarray(3), garbage).contents.length, 0);
  });

  it('rejects packets sealed with other keys (ERR_V2_BAD_TAG)', () => {
    const wire = new PacketEncryptor(keyL, randomBytes(32)).encrypt([Buffer.from('x')]);
    const rx = new PacketDecryptor(keyL, keyP);
    rx.decryptLength(wire.subarray(0, 3));
    assert.throws(() => rx.decrypt(wire.subarray(3)), code('ERR_V2_BAD_TAG'));
  });

  it('refuses a body before its length, a body of the wrong size, and two lengths in a row (ERR_V2_BAD_STATE)', () => {
    const enc = new PacketEncryptor(keyL, keyP);
    const wire = enc.encrypt([Buffer.from('abc')]);
    const rx = new PacketDecryptor(keyL, keyP);
    assert.throws(() => rx.decrypt(wire.subarray(3)), code('ERR_V2_BAD_STATE'));
    rx.decryptLength(wire.subarray(0, 3));
    assert.throws(() => rx.decrypt(wire.subarray(3, wire.length - 1)), code('ERR_V2_BAD_STATE'));
    assert.throws(() => rx.decryptLength(wire.subarray(0, 3)), code('ERR_V2_BAD_STATE'));
    assert.equal(rx.decrypt(wire.subarray(3)).contents.toString(), 'abc');
  });

  it("refuses a body before any length even when it is the size of an empty packet's (ERR_V2_BAD_STATE, not a tag check)", () => {
    const rx = new PacketDecryptor(keyL, keyP);
    assert.throws(() => rx.decrypt(Buffer.alloc(16)), code('ERR_V2_BAD_STATE'));
    assert.throws(() => rx.decrypt(Buffer.alloc(17)), code('ERR_V2_BAD_STATE'));
    assert.equal(receive(rx, new PacketEncryptor(keyL, keyP).encrypt([])).contents.length, 0);
  });

  it('keeps working after the caller wipes the key buffers it was built from (the ciphers hold their own copies)', () => {
    const l = Buffer.from(keyL);
    const p = Buffer.from(keyP);
    const enc = new PacketEncryptor(l, p);
    const rx = new PacketDecryptor(l, p);
    l.fill(0);
    p.fill(0);
    const reference = new PacketEncryptor(keyL, keyP);
    for (let k = 0; k < 230; k++) {
      const contents = randomBytes(k % 50);
      const wire = enc.encrypt([contents]);
      assert.ok(wire.equals(reference.encrypt([contents])), `packet ${k}`);
      assert.ok(receive(rx, wire).contents.equals(contents));
    }
  });

  it('returns contents as a view of the decrypted body, not a copy', () => {
    const wire = new PacketEncryptor(keyL, keyP).encrypt([randomBytes(1000)]);
    const out = receive(new PacketDecryptor(keyL, keyP), wire);
    assert.equal(out.contents.length, 1000);
    assert.equal(new Uint8Array(out.contents.buffer, out.contents.byteOffset - 1, 1)[0], 0x00); // the decrypted header sits just before it
  });
});
