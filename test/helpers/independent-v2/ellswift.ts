/**
 * ElligatorSwift and x-only ECDH for the independent test peer, written from BIP324 ("ElligatorSwift
 * encoding of curve X coordinates", "Shared secret computation") and the structure of its
 * reference.py: xswiftec, xswiftec_inv, xelligatorswift, ellswift_create, ellswift_ecdh_xonly,
 * v2_ecdh. Only noble's field and point arithmetic is used; nothing comes from src/.
 *
 * Slow and simple on purpose: every value is a bigint mod p and every step is the BIP's formula.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';

const Fp = secp256k1.Point.Fp;
type FE = bigint;

/** secp256k1 field size and group order, as the BIP and SEC2 print them. */
export const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
export const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
/** The square root of -3 that is itself a square (the BIP's MINUS_3_SQRT). */
export const MINUS_3_SQRT = 0x0a2d2ba93507f1df233770c2a797962cc61f6d15da14ecd47d8d27ae1cd5f852n;

if (Fp.ORDER !== P || secp256k1.Point.Fn.ORDER !== N) throw new Error('independent-v2: unexpected secp256k1 parameters');

const fe = (v: bigint): FE => Fp.create(v);
const add = (...v: FE[]): FE => v.reduce((a, b) => Fp.add(a, b), 0n);
const mul = (...v: FE[]): FE => v.reduce((a, b) => Fp.mul(a, b), 1n);
const sub = (a: FE, b: FE): FE => Fp.sub(a, b);
const neg = (a: FE): FE => Fp.neg(a);
const div = (a: FE, b: FE): FE => Fp.div(a, b);
const cube = (a: FE): FE => mul(a, a, a);

/** The BIP's FE.sqrt(): a^((p+1)/4) if it squares back to a, else null. */
export function sqrt(a: FE): FE | null {
  const r = Fp.pow(a, (P + 1n) / 4n);
  return Fp.eql(Fp.sqr(r), a) ? r : null;
}

/** GE.is_valid_x: x^3 + 7 is a square. */
export function isValidX(x: FE): boolean {
  return sqrt(add(cube(x), 7n)) !== null;
}

/** GE.lift_x: the point with this x (either y; only x is used). */
function liftX(x: FE): InstanceType<typeof secp256k1.Point> {
  const y = sqrt(add(cube(x), 7n));
  if (y === null) throw new Error('lift_x: not on the curve');
  const pt = secp256k1.Point.fromAffine({ x, y });
  pt.assertValidity();
  return pt;
}

/** xswiftec(u, t): decode two field elements to a valid x. Total: every input has an answer. */
export function xswiftec(uIn: FE, tIn: FE): FE {
  let u = fe(uIn);
  let t = fe(tIn);
  if (u === 0n) u = 1n;
  if (t === 0n) t = 1n;
  if (add(cube(u), mul(t, t), 7n) === 0n) t = mul(2n, t);
  const X = div(sub(add(cube(u), 7n), mul(t, t)), mul(2n, t));
  const Y = div(add(X, t), mul(MINUS_3_SQRT, u));
  const candidates = [add(u, mul(4n, Y, Y)), div(sub(neg(div(X, Y)), u), 2n), div(sub(div(X, Y), u), 2n)];
  for (const x of candidates) if (isValidX(x)) return x;
  throw new Error('xswiftec: no valid candidate (impossible)');
}

/** xswiftec_inv(x, u, case): a t with xswiftec(u, t) = x, or null. `c` is the case, 0..7. */
export function xswiftecInv(x: FE, u: FE, c: number): FE | null {
  let v: FE;
  let s: FE;
  if ((c & 2) === 0) {
    if (isValidX(sub(neg(x), u))) return null;
    v = x;
    s = div(neg(add(cube(u), 7n)), add(mul(u, u), mul(u, v), mul(v, v)));
  } else {
    s = sub(x, u);
    if (s === 0n) return null;
    const r = sqrt(mul(neg(s), add(mul(4n, add(cube(u), 7n)), mul(3n, s, u, u))));
    if (r === null) return null;
    if ((c & 1) === 1 && r === 0n) return null;
    v = div(sub(div(r, s), u), 2n);
  }
  const w = sqrt(s);
  if (w === null) return null;
  const oneMinus = div(sub(1n, MINUS_3_SQRT), 2n);
  const onePlus = div(add(1n, MINUS_3_SQRT), 2n);
  switch (c & 5) {
    case 0:
      return neg(mul(w, add(mul(u, oneMinus), v)));
    case 1:
      return mul(w, add(mul(u, onePlus), v));
    case 4:
      return mul(w, add(mul(u, oneMinus), v));
    default:
      return neg(mul(w, add(mul(u, onePlus), v)));
  }
}

const be32 = (v: bigint): Uint8Array => {
  const out = new Uint8Array(32);
  for (let i = 31, x = v; i >= 0; i--, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
};
const fromBe = (b: Uint8Array): bigint => b.reduce((acc, byte) => (acc << 8n) | BigInt(byte), 0n);

/** A uniform integer in [lo, hi) from rejection sampling on 32 random bytes. */
function randomBelow(lo: bigint, hi: bigint): bigint {
  for (;;) {
    const v = fromBe(randomBytes(32));
    if (v >= lo && v < hi) return v;
  }
}

/** xelligatorswift(x): a fresh (u, case) on every try, never the other cases of the same u. */
export function xelligatorswift(x: FE): [FE, FE] {
  for (;;) {
    const u = randomBelow(1n, P);
    const c = randomBytes(1)[0] & 7;
    const t = xswiftecInv(x, u, c);
    if (t !== null) return [u, t];
  }
}

export interface EllswiftKeyPair {
  privateKey: Uint8Array;
  ellswift: Uint8Array;
}

/** x(d·G) for a 32-byte private key, as a bigint. */
export function pubX(privateKey: Uint8Array): FE {
  return secp256k1.Point.BASE.multiply(fromBe(privateKey)).toAffine().x;
}

/** ellswift_create(): a random private key and a 64-byte encoding u || t of its public x. */
export function ellswiftCreate(): EllswiftKeyPair {
  const privateKey = be32(randomBelow(1n, N));
  return { privateKey, ellswift: ellswiftEncode(pubX(privateKey)) };
}

/** A random 64-byte ElligatorSwift encoding of x. */
export function ellswiftEncode(x: FE): Uint8Array {
  const [u, t] = xelligatorswift(x);
  return concatBytes(be32(u), be32(t));
}

/** The x a 64-byte encoding stands for. u and t may be >= p: they are reduced, never rejected. */
export function ellswiftDecode(ellswift: Uint8Array): FE {
  if (ellswift.length !== 64) throw new Error('ellswift must be 64 bytes');
  return xswiftec(fromBe(ellswift.subarray(0, 32)), fromBe(ellswift.subarray(32, 64)));
}

/** ellswift_ecdh_xonly(theirs, priv): x(priv · lift_x(decode(theirs))) as 32 bytes. */
export function ellswiftEcdhXonly(ellswiftTheirs: Uint8Array, privateKey: Uint8Array): Uint8Array {
  const d = fromBe(privateKey);
  return be32(liftX(ellswiftDecode(ellswiftTheirs)).multiply(d).toAffine().x);
}

/** BIP340 tagged hash. */
export function taggedHash(tag: string, msg: Uint8Array): Uint8Array {
  const t = sha256(utf8ToBytes(tag));
  return sha256(concatBytes(t, t, msg));
}

/** v2_ecdh: the shared secret, always hashing the initiator's wire encoding first. */
export function v2Ecdh(privateKey: Uint8Array, ellswiftTheirs: Uint8Array, ellswiftOurs: Uint8Array, initiating: boolean): Uint8Array {
  const xShared = ellswiftEcdhXonly(ellswiftTheirs, privateKey);
  const [first, second] = initiating ? [ellswiftOurs, ellswiftTheirs] : [ellswiftTheirs, ellswiftOurs];
  return taggedHash('bip324_ellswift_xonly_ecdh', concatBytes(first, second, xShared));
}

export { be32, fromBe };
