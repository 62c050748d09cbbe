/**
 * Cross-check of the node:crypto (OpenSSL) packet path against an independent reference written
 * from BIP324's reference.py with @noble/ciphers, @noble/hashes and @noble/curves: random packets,
 * byte-equal wire output across several rekeys in both directions, and our decryptor reading the
 * reference's packets.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { FpLegendre } from '@noble/curves/abstract/modular.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { networkByName } from '../../src/networks.js';
import { ellswiftCreate, v2SharedSecret } from '../../src/crypto/ellswift.js';
import { deriveSessionKeys } from '../../src/crypto/keys.js';
import { MAX_WIRE_CONTENTS, PacketDecryptor, PacketEncryptor } from '../../src/crypto/packet.js';

const REKEY = 224;

function nonce12(first: number, epoch: number): Uint8Array {
  const n = new Uint8Array(12);
  const dv = new DataView(n.buffer);
  dv.setUint32(0, first, true);
  dv.setBigUint64(4, BigInt(epoch), true);
  return n;
}

/** reference.py FSChaCha20: one 704-byte keystream per epoch (224 lengths of 3 bytes, then the next key). */
class RefFSChaCha20 {
  private key: Uint8Array;
  private epoch = 0;
  private chunks = 0;
  private stream: Uint8Array;
  private pos = 0;
  constructor(key: Uint8Array) {
    this.key = Uint8Array.from(key);
    this.stream = chacha20(this.key, nonce12(0, 0), new Uint8Array(REKEY * 3 + 32));
  }
  crypt(chunk: Uint8Array): Uint8Array {
    const out = chunk.map((b, k) => b ^ this.stream[this.pos + k]);
    this.pos += chunk.length;
    if (++this.chunks === REKEY) {
      this.key = this.stream.slice(this.pos, this.pos + 32);
      this.epoch++;
      this.chunks = 0;
      this.pos = 0;
      this.stream = chacha20(this.key, nonce12(0, this.epoch), new Uint8Array(REKEY * 3 + 32));
    }
    return out;
  }
}

/** reference.py FSChaCha20Poly1305: rekey = AEAD-encrypt 32 zero bytes under nonce 0xffffffff ‖ LE64(epoch). */
class RefFSChaCha20Poly1305 {
  private key: Uint8Array;
  private i = 0;
  constructor(key: Uint8Array) {
    this.key = Uint8Array.from(key);
  }
  encrypt(aad: Uint8Array, pt: Uint8Array): Uint8Array {
    const epoch = Math.floor(this.i / REKEY);
    const ct = chacha20poly1305(this.key, nonce12(this.i % REKEY, epoch), aad).encrypt(pt);
    if ((this.i + 1) % REKEY === 0) {
      this.key = chacha20poly1305(this.key, nonce12(0xffffffff, epoch)).encrypt(new Uint8Array(32)).slice(0, 32);
    }
    this.i++;
    return ct;
  }
}

class RefPacketEncoder {
  private readonly l: RefFSChaCha20;
  private readonly p: RefFSChaCha20Poly1305;
  constructor(keyL: Uint8Array, keyP: Uint8Array) {
    this.l = new RefFSChaCha20(keyL);
    this.p = new RefFSChaCha20Poly1305(keyP);
  }
  encrypt(contents: Uint8Array, aad: Uint8Array, ignore: boolean): Buffer {
    const len = Uint8Array.of(contents.length & 0xff, (contents.length >> 8) & 0xff, contents.length >> 16);
    const plain = new Uint8Array(1 + contents.length);
    plain[0] = ignore ? 0x80 : 0x00;
    plain.set(contents, 1);
    return Buffer.concat([this.l.crypt(len), this.p.encrypt(aad, plain)]);
  }
}

/** Notes §3 XSwiftEC, written out plainly with noble's field (independent of @scure/btc-signer). */
function refDecode(ell: Uint8Array): bigint {
  const Fp = secp256k1.Point.Fp;
  const c = Fp.sqrt(Fp.neg(3n));
  const valid = (x: bigint) => FpLegendre(Fp, Fp.add(Fp.mul(Fp.sqr(x), x), 7n)) !== -1;
  let u = Fp.create(BigInt('0x' + Buffer.from(ell.subarray(0, 32)).toString('hex')));
  let t = Fp.create(BigInt('0x' + Buffer.from(ell.subarray(32, 64)).toString('hex')));
  if (u === 0n) u = 1n;
  if (t === 0n) t = 1n;
  const u3 = Fp.mul(Fp.sqr(u), u);
  if (Fp.add(Fp.add(u3, Fp.sqr(t)), 7n) === 0n) t = Fp.add(t, t);
  const X = Fp.div(Fp.sub(Fp.add(u3, 7n), Fp.sqr(t)), Fp.add(t, t));
  const Y = Fp.div(Fp.add(X, t), Fp.mul(c, u));
  const x3 = Fp.add(u, Fp.mul(4n, Fp.sqr(Y)));
  const x2 = Fp.div(Fp.sub(Fp.neg(Fp.div(X, Y)), u), 2n);
  const x1 = Fp.div(Fp.sub(Fp.div(X, Y), u), 2n);
  for (const x of [x3, x2, x1]) if (valid(x)) return x;
  throw new Error('unreachable: XSwiftEC is total');
}

function refSharedSecret(priv: Uint8Array, ellTheirs: Uint8Array, ellInit: Uint8Array, ellResp: Uint8Array): Uint8Array {
  const x = refDecode(ellTheirs).toString(16).padStart(64, '0');
  const xShared = secp256k1.getSharedSecret(priv, Buffer.from('02' + x, 'hex')).subarray(1);
  const tag = sha256(new TextEncoder().encode('bip324_ellswift_xonly_ecdh'));
  return sha256(Buffer.concat([tag, tag, ellInit, ellResp, xShared]));
}

/** mulberry32: reproducible sizes and flags (contents come from the CSPRNG). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSize(rand: () => number, k: number): number {
  if (k === 0) return 0;
  if (k === 5) return 4_000_013; // the largest contents Core accepts
  if (k === 400) return 1 << 20;
  const r = rand();
  if (r < 0.1) return 0;
  if (r < 0.7) return Math.floor(rand() * 64);
  if (r < 0.95) return Math.floor(rand() * 4096);
  return Math.floor(rand() * 70_000);
}

/** Splits `b` into 1-4 views at random points (empty pieces included). */
function randomPieces(rand: () => number, b: Buffer): Buffer[] {
  const n = 1 + Math.floor(rand() * 4);
  const cuts = Array.from({ length: n - 1 }, () => Math.floor(rand() * (b.length + 1))).sort((x, y) => x - y);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, b.length]) {
    pieces.push(b.subarray(prev, c));
    prev = c;
  }
  return pieces;
}

describe('crosscheck: node:crypto packets against a @noble reference', () => {
  const magic = networkByName('main')!.magic;
  const a = ellswiftCreate();
  const b = ellswiftCreate();
  const secretA = v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true);
  const secretB = v2SharedSecret(b.privateKey, a.ellswift, b.ellswift, false);
  const keysA = deriveSessionKeys(secretA, magic, true);
  const keysB = deriveSessionKeys(secretB, magic, false);

  it('our shared secret equals the reference (plain XSwiftEC, noble ECDH, noble SHA-256) on both sides', () => {
    const ref = refSharedSecret(a.privateKey, b.ellswift, a.ellswift, b.ellswift);
    assert.equal(secretA.toString('hex'), Buffer.from(ref).toString('hex'));
    assert.equal(secretB.toString('hex'), Buffer.from(refSharedSecret(b.privateKey, a.ellswift, a.ellswift, b.ellswift)).toString('hex'));
  });

  it('our HKDF outputs equal @noble/hashes hkdf for all six labels', () => {
    const salt = Buffer.concat([Buffer.from('bitcoin_v2_shared_secret'), magic]);
    const h = (info: string) => Buffer.from(hkdf(sha256, secretA, salt, Buffer.from(info), 32)).toString('hex');
    assert.equal(keysA.initiatorL.toString('hex'), h('initiator_L'));
    assert.equal(keysA.initiatorP.toString('hex'), h('initiator_P'));
    assert.equal(keysA.responderL.toString('hex'), h('responder_L'));
    assert.equal(keysA.responderP.toString('hex'), h('responder_P'));
    assert.equal(Buffer.concat([keysA.sendTerminator, keysA.recvTerminator]).toString('hex'), h('garbage_terminators'));
    assert.equal(keysA.sessionId.toString('hex'), h('session_id'));
  });

  const directions = [
    { name: 'initiator -> responder', send: keysA, recv: keysB, seed: 0x324a },
    { name: 'responder -> initiator', send: keysB, recv: keysA, seed: 0x324b },
  ];
  for (const dir of directions) {
    it(`${dir.name}: 800 random packets (4 rekeys) are byte-equal and our decryptor reads the reference's output (seed ${dir.seed})`, () => {
      const rand = prng(dir.seed);
      const ours = new PacketEncryptor(dir.send.sendL, dir.send.sendP);
      const ref = new RefPacketEncoder(dir.send.sendL, dir.send.sendP);
      const rx = new PacketDecryptor(dir.recv.recvL, dir.recv.recvP, MAX_WIRE_CONTENTS);
      const garbage = randomBytes(Math.floor(rand() * 4096));
      let ignored = 0;
      for (let k = 0; k < 800; k++) {
        const contents = randomBytes(randomSize(rand, k));
        const ignore = rand() < 0.3;
        if (ignore) ignored++;
        const aad = k === 0 ? garbage : Buffer.alloc(0);
        const mine = ours.encrypt(randomPieces(rand, contents), k === 0 ? { aad, ignore } : { ignore });
        const theirs = ref.encrypt(contents, aad, ignore);
        assert.ok(mine.equals(theirs), `packet ${k} (${contents.length} bytes) differs from the reference`);
        assert.equal(rx.decryptLength(theirs.subarray(0, 3)), contents.length, `packet ${k} length`);
        const out = rx.decrypt(theirs.subarray(3), k === 0 ? aad : undefined);
        assert.equal(out.ignore, ignore, `packet ${k} ignore bit`);
        assert.ok(out.contents.equals(contents), `packet ${k} contents`);
      }
      assert.ok(ignored > 100 && ignored < 700, 'both header values were exercised');
    });
  }
});
