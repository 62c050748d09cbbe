/**
 * Arithmetic modulo secp256k1's field prime p = 2^256 - 2^32 - 977, on bigints in 0..p-1, for the
 * ElligatorSwift maps (ellswift.ts). Only what XSwiftEC and XSwiftECInv need: square roots, the
 * Legendre symbol and inversion, each written for speed on this one prime.
 *
 * Everything here is variable-time. That is fine for its one use: the ElligatorSwift maps work on
 * public values (an encoding as sent on the wire, the x of a public key, and random u's that are
 * thrown away). The secret scalar never passes through this module; scalar multiplication is
 * libsecp256k1's (or OpenSSL's, or @noble/curves') constant-time code.
 */
import { invert } from '@noble/curves/abstract/modular.js';

export const P = (1n << 256n) - 0x1000003d1n;

/** a mod p, in 0..p-1, for any bigint (negative ones included). */
export function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

/** x^(2^k) mod p. */
function sqrN(x: bigint, k: number): bigint {
  for (let i = 0; i < k; i++) x = (x * x) % P;
  return x;
}

/**
 * a^((p-3)/4) mod p. (p-3)/4 in binary is 223 ones, a 0, 22 ones, then 00001011; the chain builds
 * a^(2^k - 1) for the runs of ones: 253 squarings and 13 multiplications, instead of a generic
 * square-and-multiply. From it: the square root a·a^((p-3)/4) = a^((p+1)/4), and for a non-zero
 * square a also 1/a = (a^((p-3)/4))^2 = a^((p-1)/2)·a^-1.
 */
export function powP34(a: bigint): bigint {
  const x2 = (sqrN(a, 1) * a) % P; // a^(2^2-1)
  const x3 = (sqrN(x2, 1) * a) % P;
  const x6 = (sqrN(x3, 3) * x3) % P;
  const x9 = (sqrN(x6, 3) * x3) % P;
  const x11 = (sqrN(x9, 2) * x2) % P;
  const x22 = (sqrN(x11, 11) * x11) % P;
  const x44 = (sqrN(x22, 22) * x22) % P;
  const x88 = (sqrN(x44, 44) * x44) % P;
  const x176 = (sqrN(x88, 88) * x88) % P;
  const x220 = (sqrN(x176, 44) * x44) % P;
  const x223 = (sqrN(x220, 3) * x3) % P;
  let r = (sqrN(x223, 23) * x22) % P; // 223 ones, 0, 22 ones
  r = (sqrN(r, 5) * a) % P; // 00001
  return (sqrN(r, 3) * x2) % P; // 011
}

/**
 * a^((p+1)/4) mod p for a in 0..p-1: the square root of a when a is a square (check with
 * isSquare first, or square the result). It is the exact root BIP324's reference code returns (its
 * FE.sqrt is this power), which XSwiftECInv's output depends on.
 */
export function sqrtUnchecked(a: bigint): bigint {
  return (a * powP34(a)) % P;
}

/** The square root a^((p+1)/4) of a in 0..p-1, or null when a is not a square mod p. */
export function sqrt(a: bigint): bigint | null {
  const r = sqrtUnchecked(a);
  return (r * r) % P === a ? r : null;
}

/**
 * (n/d)^((p+1)/4) for d non-zero, without an inversion: n·d·(n·d^3)^((p-3)/4). The powers of d add
 * up to 3(p-3)/4 + 1 = (p-1) - (p+1)/4, so this is n^((p+1)/4)·d^(-(p+1)/4) exactly: the same root
 * sqrt(n·inv(d)) gives. Meaningful (a root) only when n/d is a square, which the caller checks.
 */
export function sqrtRatioUnchecked(n: bigint, d: bigint): bigint {
  const nd = (n * d) % P;
  const d2 = (d * d) % P;
  return (nd * powP34((nd * d2) % P)) % P;
}

/**
 * Legendre symbol (a/p) for a in 0..p-1: 1 for a non-zero square, -1 for a non-square, 0 for 0.
 * Computed as the Jacobi symbol by the binary Euclid-like algorithm (quadratic reciprocity), about
 * three times faster here than the power a^((p-1)/2).
 */
export function legendre(a: bigint): -1 | 0 | 1 {
  let n = P;
  let sign = 1;
  while (a !== 0n) {
    // Take out the factors of 2: (2/n) = -1 exactly when n is 3 or 5 mod 8.
    let twos = 0;
    while ((a & 0xffffffffn) === 0n) {
      a >>= 32n;
      twos += 32;
    }
    const low = Number(a & 0xffffffffn);
    const tz = 31 - Math.clz32(low & -low);
    if (tz > 0) a >>= BigInt(tz);
    twos += tz;
    const n8 = Number(n & 7n);
    if ((twos & 1) === 1 && (n8 === 3 || n8 === 5)) sign = -sign;
    // Reciprocity for odd a and n: flip when both are 3 mod 4; then (a/n) = (n mod a / a).
    if (Number(a & 3n) === 3 && (n8 & 3) === 3) sign = -sign;
    const r = n % a;
    n = a;
    a = r;
  }
  return n === 1n ? (sign as -1 | 1) : 0;
}

/** Whether a (in 0..p-1) is a square mod p; 0 counts as one (0 = 0^2), as in BIP324's lift_x. */
export function isSquare(a: bigint): boolean {
  return legendre(a) !== -1;
}

/** 1/a mod p for a in 1..p-1 (extended Euclid). */
export function inv(a: bigint): bigint {
  return invert(a, P);
}

/** x^3 + 7 mod p: y^2 on secp256k1. */
export function curveRhs(x: bigint): bigint {
  return (((x * x) % P) * x + 7n) % P;
}

/** Big-endian 32 bytes of a in 0..2^256-1. */
export function toBytes32(a: bigint): Buffer {
  return Buffer.from(a.toString(16).padStart(64, '0'), 'hex');
}

/** A 32-byte big-endian integer (not reduced). */
export function fromBytes32(bytes: Uint8Array, offset = 0): bigint {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset + offset, 32).toString('hex');
  return BigInt('0x' + hex);
}
