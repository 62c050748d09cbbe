/**
 * ElligatorSwift keys and x-only ECDH for the BIP324 handshake.
 *
 * Implements BIP324 "ElligatorSwift encoding of curve X coordinates" (XSwiftEC, XSwiftECInv,
 * ellswift_create) and "Shared secret computation" (x-only ECDH over the decoded encodings, hashed
 * with the tag "bip324_ellswift_xonly_ecdh"). Notes §2-§6.
 *
 * Who does what, chosen by measurement (bench/README.md, "Handshake CPU"):
 * - The two scalar multiplications, priv·G for a new key and priv·Q for the ECDH, are
 *   libsecp256k1's, Bitcoin Core's own curve library, compiled to WebAssembly (tiny-secp256k1:
 *   `pointFromScalar`, `pointMultiply`, both constant-time in the scalar): about four times faster
 *   than OpenSSL's, which has no secp256k1-specific code, and whose `computeSecret()` re-checks our
 *   own key pair (another priv·G and an n·Q) on every call. tiny-secp256k1 zeroes its buffers in
 *   WebAssembly memory after each call, and libsecp.ts the stack libsecp256k1 ran on and the copy
 *   V8 would keep of the product; its context is blinded with 32 bytes from node:crypto on first
 *   use. Its keys are drawn here (randomScalar), in buffers outside V8's heap.
 * - Where WebAssembly is not available (`node --jitless`) the multiplications are OpenSSL's
 *   (node:crypto `createECDH('secp256k1')`: `generateKeys()`, then `computeSecret()`). A key made
 *   there keeps the ECDH object it was generated in, so its ECDH does not pay for loading the
 *   private key again (`setPrivateKey()` is another priv·G).
 *   Not `generateKeyPairSync()` + `diffieHellman()` on KeyObjects, although that costs ~16 % fewer
 *   instructions: on Node 20.20 it deadlocks now and then (bench/README.md): exporting a key made by
 *   generateKeyPairSync holds the key's mutex while allocating, a garbage collection then destroys
 *   the finished key-generation job, whose destructor takes the same mutex.
 * - The ElligatorSwift maps are ours, in bigint arithmetic mod p (field.ts), written for speed:
 *   decoding takes at most two Legendre symbols and one inversion (XSwiftEC in fraction form, see
 *   xswiftec below); encoding screens each try with Legendre symbols and takes square roots (one or
 *   two powers, no inversion) only for the try that succeeds.
 * - Lifting x to a point: the multiplication gets 02 ‖ x. Either point with that x gives the same
 *   result, because d·(-Q) = -(d·Q) and negation keeps x; so the parity of y never needs deciding.
 *   x comes from XSwiftEC, which always yields a valid x, and d is in 1..n-1 on a curve of prime
 *   order n, so neither a failed lift nor the point at infinity can occur (each backend would throw
 *   if they did).
 * - The tagged hash stays node:crypto SHA-256.
 *
 * Last fallback: where neither is there (no WebAssembly, and a node:crypto without secp256k1: a
 * Node linked to a system OpenSSL built without it, or run in FIPS mode) the scalar multiplications
 * use @noble/curves; everything else is the same. The tests run the official vectors on all three.
 */
import { createECDH, createHash, getCurves, randomBytes, randomFillSync, timingSafeEqual, type ECDH } from 'node:crypto';
import { inspect } from 'node:util';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ELLSWIFT_LEN } from '../limits.js';
import { libsecp } from './libsecp.js';
import { P, curveRhs, fromBytes32, inv, isSquare, legendre, mod, powP34, sqrt, sqrtRatioUnchecked, sqrtUnchecked, toBytes32 } from './field.js';

export interface EllSwiftKey {
  privateKey: Uint8Array;
  /** u ‖ t, 64 bytes, exactly as sent on the wire. */
  ellswift: Buffer;
}

export type EcdhBackend = 'libsecp256k1' | 'openssl' | 'noble';

const Point = secp256k1.Point;

const ECDH_TAG_HASH = createHash('sha256').update('bip324_ellswift_xonly_ecdh', 'utf8').digest();

/** c = sqrt(-3), the root that is itself a square (it is (-3)^((p+1)/4), as the BIP's reference code computes it). */
const C = sqrt(P - 3n)!;
/** (1-c)/2 and (1+c)/2 for XSwiftECInv, (c-1)/2 and (-c-1)/2 for the fraction form of XSwiftEC. */
const HALF = inv(2n);
const ONE_MINUS_C_HALF = mod((1n - C) * HALF);
const ONE_PLUS_C_HALF = mod((1n + C) * HALF);
const C_MINUS_ONE_HALF = mod((C - 1n) * HALF);
const MINUS_C_MINUS_ONE_HALF = mod((-C - 1n) * HALF);

let backend: EcdhBackend = libsecp !== null ? 'libsecp256k1' : getCurves().includes('secp256k1') ? 'openssl' : 'noble';

/** Which code does the scalar multiplications: libsecp256k1, else OpenSSL when node:crypto has secp256k1, else @noble/curves. */
export function ecdhBackend(): EcdhBackend {
  return backend;
}

/** For the tests and the benchmark: run the same code with another scalar multiplication. */
export function setEcdhBackend(which: EcdhBackend): void {
  if (which === 'libsecp256k1' && libsecp === null) throw new Error('ellswift: libsecp256k1 (tiny-secp256k1) did not load');
  if (which === 'openssl' && !getCurves().includes('secp256k1')) {
    throw new Error('ellswift: this node:crypto has no secp256k1');
  }
  backend = which;
}

/**
 * The OpenSSL ECDH object that a key made here was generated in (its private key loaded, its public
 * key computed), used once by the ECDH with that key and then dropped. Keyed by the private key's
 * own array, so an EllSwiftKey stays a plain { privateKey, ellswift } pair and nothing but the
 * array's lifetime keeps the object alive (OpenSSL clears the key when it is collected).
 */
const contexts = new WeakMap<Uint8Array, ECDH>();

/** A key made by this module: prints and serialises without its private key. */
class OwnKey implements EllSwiftKey {
  constructor(
    public privateKey: Uint8Array,
    public ellswift: Buffer,
  ) {}

  toJSON(): { ellswift: string } {
    return { ellswift: this.ellswift.toString('hex') };
  }

  [inspect.custom](): string {
    return `EllSwiftKey { ellswift: ${this.ellswift.toString('hex')}, privateKey: [hidden] }`;
  }
}

/** n, the order of secp256k1, big-endian. */
const ORDER = Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex');

/**
 * Whether 32 bytes encode a scalar in 1..n-1: a byte-wise comparison with n that looks at every
 * byte whatever their values, and makes no bigint (which nothing could wipe) of a secret.
 */
function isScalar(k: Uint8Array): boolean {
  let below = 0;
  let above = 0;
  let nonZero = 0;
  for (let i = 0; i < 32; i++) {
    const open = 1 & ~(below | above); // no byte has differed yet
    below |= open & ((k[i] - ORDER[i]) >>> 31);
    above |= open & ((ORDER[i] - k[i]) >>> 31);
    nonZero |= k[i];
  }
  return below === 1 && nonZero !== 0;
}

/**
 * A uniform scalar in 1..n-1 from node:crypto's CSPRNG, in a buffer of its own outside V8's heap
 * (a 32-byte Buffer of the usual kind lives inside it, and V8 may leave copies behind when it moves
 * one out). Rejection sampling: a draw is out of range with odds of about 2^-128.
 */
function randomScalar(): Buffer {
  const k = Buffer.from(new ArrayBuffer(32));
  do randomFillSync(k);
  while (!isScalar(k));
  return k;
}

function checkPrivateKey(privateKey: Uint8Array): void {
  // 0 and >= n are not keys; accepting them would give a point at infinity or a reduced,
  // different key, and the peer could never derive the same secret.
  if (privateKey.length !== 32 || !isScalar(privateKey)) {
    throw new RangeError('ellswift: private key must be 32 bytes encoding a scalar in 1..n-1');
  }
}

function checkEllSwift(ell: Uint8Array, what: string): void {
  if (ell.length !== ELLSWIFT_LEN) {
    throw new RangeError(`ellswift: ${what} must be ${ELLSWIFT_LEN} bytes, got ${ell.length}`);
  }
}

/** The private key of an ECDH object as 32 bytes (OpenSSL drops leading zero bytes). */
function privateKeyOf(ctx: ECDH): Uint8Array {
  const b = ctx.getPrivateKey();
  const out = new Uint8Array(32);
  out.set(b, 32 - b.length);
  b.fill(0);
  return out;
}

/** XSwiftECInv(x, u, case): the t that decodes (with u) to x, or null where the case has no solution. */
export function xswiftecInv(x: bigint, u: bigint, ellCase: number): bigint | null {
  if (!Number.isInteger(ellCase) || ellCase < 0 || ellCase > 7) throw new RangeError(`xswiftecInv: case ${ellCase}`);
  // Each "return null" below is one of the BIP's "return None"; the Legendre symbols only move
  // those rejections ahead of the square roots and the inversion, which cost several times more.
  const u2 = (u * u) % P;
  const g = (u2 * u + 7n) % P; // u^3 + 7
  let w: bigint; // sqrt(s)
  let v: bigint;
  if ((ellCase & 2) === 0) {
    if (isSquare(curveRhs(mod(-x - u)))) return null; // it would decode through x3 instead
    // s = -(u^3 + 7) / (u^2 + u·x + x^2), whose square root w is taken without forming s.
    const num = mod(-g);
    const den = (u2 + u * x + x * x) % P; // non-zero here (XSwiftECInv's case analysis); guard anyway
    if (den === 0n) return null;
    if (legendre((num * den) % P) === -1) return null; // s is no square: w fails
    w = sqrtRatioUnchecked(num, den);
    v = x;
  } else {
    const s = mod(x - u);
    if (s === 0n) return null;
    const q = mod(-s * ((4n * g + 3n * s * u2) % P));
    if (legendre(q) === -1) return null; // r = sqrt(q) fails
    if (legendre(s) === -1) return null; // w fails
    if ((ellCase & 1) === 1 && q === 0n) return null; // r = 0
    // One power z = s^((p-3)/4) gives both w = s·z = s^((p+1)/4) and, s being a non-zero square,
    // 1/s = z^2 = s^((p-1)/2 - 1).
    const z = powP34(s);
    w = (s * z) % P;
    const invS = (z * z) % P;
    v = mod((sqrtUnchecked(q) * invS - u) * HALF);
  }
  switch (ellCase & 5) {
    case 0:
      return mod(-w * (u * ONE_MINUS_C_HALF + v));
    case 1:
      return mod(w * (u * ONE_PLUS_C_HALF + v));
    case 4:
      return mod(w * (u * ONE_MINUS_C_HALF + v));
    default:
      return mod(-w * (u * ONE_PLUS_C_HALF + v));
  }
}

/** Whether n/d (d non-zero) is a valid x: (n/d)^3 + 7 = (n^3 + 7d^3)/d^3 is a square, i.e. (n^3 + 7d^3)·d is. */
function isValidXFraction(n: bigint, d: bigint): boolean {
  const d2 = (d * d) % P;
  const n3 = (((n * n) % P) * n) % P;
  return isSquare((((n3 + ((7n * d2) % P) * d) % P) * d) % P);
}

/** XSwiftEC(u, t) for u, t already reduced mod p, as a bigint x. */
function xswiftec(u: bigint, t: bigint): bigint {
  if (u === 0n) u = 1n;
  if (t === 0n) t = 1n;
  const u2 = (u * u) % P;
  const g = (u2 * u + 7n) % P; // u^3 + 7
  let s = (t * t) % P;
  if ((g + s) % P === 0n) s = (4n * s) % P; // u^3 + t^2 + 7 = 0: t = 2t
  // XSwiftEC in fraction form: x3 = u + 4Y^2 = (3su^3 - (g+s)^2) / (3su^2),
  // x2 = (-X/Y - u)/2 = u((c-1)/2·s + (-c-1)/2·g) / (g+s), x1 = (X/Y - u)/2 = -(x2 + u).
  // Denominators: s, u != 0 after the remaps, and g+s != 0 after the t = 2t remap.
  const gs = (g + s) % P;
  const n3 = mod(3n * s * ((u2 * u) % P) - gs * gs);
  const d3 = (3n * s * u2) % P;
  if (isValidXFraction(n3, d3)) return (n3 * inv(d3)) % P;
  const n2 = (u * ((C_MINUS_ONE_HALF * s + MINUS_C_MINUS_ONE_HALF * g) % P)) % P;
  if (isValidXFraction(n2, gs)) return (n2 * inv(gs)) % P;
  // One of the three is always valid (the BIP asserts it); the lift in the ECDH would throw if not.
  return mod(-(n2 + u * gs) * inv(gs));
}

/** XSwiftEC(u mod p, t mod p) as a 32-byte big-endian x. Total: every 64-byte string decodes. */
export function ellswiftDecode(ell64: Uint8Array): Buffer {
  checkEllSwift(ell64, 'encoding');
  return toBytes32(decodeX(ell64));
}

function decodeX(ell64: Uint8Array): bigint {
  return xswiftec(fromBytes32(ell64, 0) % P, fromBytes32(ell64, 32) % P);
}

/** Random bytes per try: 32 for u, 1 for the case; fetched eight tries at a time (about two encodings). */
const TRY_BYTES = 33;
const TRIES_PER_FETCH = 8;

/**
 * A random encoding u ‖ t of x (BIP324 ellswift_create's loop): a fresh uniform u in 1..p-1 and a
 * fresh case on every try, until XSwiftECInv has a solution (about 4 tries). Taking the first
 * success for a fixed case, or trying other cases with the same u, would make the encoding
 * distinguishable from random bytes.
 */
function encodeX(x: bigint): Buffer {
  for (;;) {
    const r = randomBytes(TRY_BYTES * TRIES_PER_FETCH);
    for (let off = 0; off < r.length; off += TRY_BYTES) {
      const u = fromBytes32(r, off);
      if (u === 0n || u >= P) continue;
      const t = xswiftecInv(x, u, r[off + 32] & 7);
      // t = 0 needs u^3 = -7 (odds 2^-254) and would not decode back to x (t = 0 reads as 1).
      if (t === null || t === 0n) continue;
      return Buffer.concat([toBytes32(u), toBytes32(t)]);
    }
  }
}

/**
 * A fresh random ElligatorSwift encoding (64 bytes) of a given x: 32 big-endian bytes, the x of a
 * point on the curve. Throws RangeError for x >= p or an x with no point.
 */
export function ellswiftEncode(x32: Uint8Array): Buffer {
  if (x32.length !== 32) throw new RangeError(`ellswift: x must be 32 bytes, got ${x32.length}`);
  const x = fromBytes32(x32);
  if (x >= P || !isSquare(curveRhs(x))) throw new RangeError('ellswift: x is not the x of a curve point');
  return encodeX(x);
}

/** A fresh key from OpenSSL's CSPRNG: the private key bytes and x; remembers the ECDH object. */
function generateOpenSsl(): { privateKey: Uint8Array; x: bigint } {
  const ctx = createECDH('secp256k1');
  ctx.generateKeys();
  const privateKey = privateKeyOf(ctx);
  contexts.set(privateKey, ctx);
  return { privateKey, x: fromBytes32(ctx.getPublicKey(null, 'compressed'), 1) };
}

/** An ECDH object for given private key bytes (OpenSSL computes the public key: one priv·G). */
function loadOpenSsl(privateKey: Uint8Array): ECDH {
  const ctx = createECDH('secp256k1');
  ctx.setPrivateKey(privateKey);
  return ctx;
}

/** x of priv·G on the backends other than OpenSSL (libsecp256k1 zeroes its copy of the key after the call). */
function baseMulX(privateKey: Uint8Array): bigint {
  if (backend === 'libsecp256k1') return fromBytes32(libsecp!.baseMulX(privateKey));
  return Point.BASE.multiply(Point.Fn.fromBytes(privateKey)).toAffine().x;
}

/** A fresh ephemeral key (CSPRNG scalar) with a random ElligatorSwift encoding of its x. */
export function ellswiftCreate(): EllSwiftKey {
  if (backend === 'openssl') {
    const { privateKey, x } = generateOpenSsl();
    return new OwnKey(privateKey, encodeX(x));
  }
  const privateKey = randomScalar();
  return new OwnKey(privateKey, encodeX(baseMulX(privateKey)));
}

/** A random encoding of a given key; for tests and vectors (never reuse keys across connections). */
export function ellswiftFromPrivate(privateKey: Uint8Array): EllSwiftKey {
  checkPrivateKey(privateKey);
  const own = Buffer.from(new ArrayBuffer(32));
  own.set(privateKey);
  if (backend === 'openssl') {
    const ctx = loadOpenSsl(own);
    contexts.set(own, ctx);
    return new OwnKey(own, encodeX(fromBytes32(ctx.getPublicKey(null, 'compressed'), 1)));
  }
  return new OwnKey(own, encodeX(baseMulX(own)));
}

/** The ECDH object for these private key bytes: the one they were made in (once), else a new one. */
function contextFor(privateKey: Uint8Array): ECDH {
  const made = contexts.get(privateKey);
  if (made !== undefined) {
    contexts.delete(privateKey);
    // The bytes are the caller's and could have been changed since; the result must always be
    // the ECDH with the bytes given, so the object is used only if it still holds them.
    const held = privateKeyOf(made);
    const same = timingSafeEqual(held, privateKey);
    held.fill(0);
    if (same) return made;
  }
  return loadOpenSsl(privateKey);
}

/** x(priv · lift_x(XSwiftEC(theirs))) as 32 big-endian bytes. */
export function xOnlyEcdh(privateKey: Uint8Array, ellTheirs: Uint8Array): Buffer {
  checkPrivateKey(privateKey);
  checkEllSwift(ellTheirs, 'peer encoding');
  const x = decodeX(ellTheirs);
  const compressed = Buffer.alloc(33);
  compressed[0] = 0x02;
  toBytes32(x).copy(compressed, 1);
  // x of the product, 32 bytes; the only copy left (libsecp.ts), so a caller's fill(0) wipes it.
  if (backend === 'libsecp256k1') return libsecp!.mulX(compressed, privateKey);
  if (backend === 'openssl') {
    // x of the product, 32 bytes (left-padded); the only copy, so a caller's fill(0) wipes it.
    return contextFor(privateKey).computeSecret(compressed);
  }
  const shared = Point.fromBytes(compressed).multiply(Point.Fn.fromBytes(privateKey)).toAffine().x;
  return toBytes32(shared);
}

/**
 * BIP324 shared secret: TaggedHash("bip324_ellswift_xonly_ecdh", ell_initiator ‖ ell_responder ‖ x_shared).
 * The initiator's encoding always comes first, whichever side computes it, and the hashed encodings
 * are the wire bytes (halves >= p included), never a re-encoding.
 */
export function v2SharedSecret(privateKey: Uint8Array, ellTheirs: Uint8Array, ellOurs: Uint8Array, initiator: boolean): Buffer {
  checkEllSwift(ellOurs, 'our encoding');
  const xShared = xOnlyEcdh(privateKey, ellTheirs);
  const h = createHash('sha256').update(ECDH_TAG_HASH).update(ECDH_TAG_HASH);
  if (initiator) h.update(ellOurs).update(ellTheirs);
  else h.update(ellTheirs).update(ellOurs);
  const secret = h.update(xShared).digest();
  xShared.fill(0);
  return secret;
}
