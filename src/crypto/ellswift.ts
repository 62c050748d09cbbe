/**
 * ElligatorSwift keys and x-only ECDH for the BIP324 handshake.
 *
 * Implements BIP324 "ElligatorSwift encoding of curve X coordinates" (XSwiftEC, XSwiftECInv,
 * ellswift_create) and "Shared secret computation" (x-only ECDH over the decoded encodings, hashed
 * with the tag "bip324_ellswift_xonly_ecdh"). Notes §3-§6. The field arithmetic is
 * @scure/btc-signer's `elligatorSwift` (itself on @noble/curves); this module fixes the byte
 * shapes, validates inputs and does the tagged hash with node:crypto.
 */
import { createHash } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { elligatorSwift } from '@scure/btc-signer/p2p.js';
import { ELLSWIFT_LEN } from '../limits.js';

export interface EllSwiftKey {
  privateKey: Uint8Array;
  /** u ‖ t, 64 bytes, exactly as sent on the wire. */
  ellswift: Buffer;
}

const Point = secp256k1.Point;

const ECDH_TAG_HASH = createHash('sha256').update('bip324_ellswift_xonly_ecdh', 'utf8').digest();

function checkPrivateKey(privateKey: Uint8Array): void {
  // 0 and >= n are not keys; accepting them would give a point at infinity or a reduced,
  // different key, and the peer could never derive the same secret.
  if (privateKey.length !== 32 || !secp256k1.utils.isValidSecretKey(privateKey)) {
    throw new RangeError('ellswift: private key must be 32 bytes encoding a scalar in 1..n-1');
  }
}

function checkEllSwift(ell: Uint8Array, what: string): void {
  if (ell.length !== ELLSWIFT_LEN) {
    throw new RangeError(`ellswift: ${what} must be ${ELLSWIFT_LEN} bytes, got ${ell.length}`);
  }
}

function encodeFor(privateKey: Uint8Array): EllSwiftKey {
  const x = Point.BASE.multiply(Point.Fn.fromBytes(privateKey)).toAffine().x;
  // encode() draws a fresh u and a fresh case on every try (BIP324 ellswift_create); taking the
  // first success for a fixed case would make the encoding distinguishable from random bytes.
  return { privateKey, ellswift: Buffer.from(elligatorSwift.encode(x)) };
}

/** A fresh ephemeral key (CSPRNG scalar) with a random ElligatorSwift encoding of its x. */
export function ellswiftCreate(): EllSwiftKey {
  return encodeFor(secp256k1.utils.randomSecretKey());
}

/** A random encoding of a given key; for tests and vectors (never reuse keys across connections). */
export function ellswiftFromPrivate(privateKey: Uint8Array): EllSwiftKey {
  checkPrivateKey(privateKey);
  return encodeFor(Uint8Array.from(privateKey));
}

/** XSwiftEC(u mod p, t mod p) as a 32-byte big-endian x. Total: every 64-byte string decodes. */
export function ellswiftDecode(ell64: Uint8Array): Buffer {
  checkEllSwift(ell64, 'encoding');
  return Buffer.from(elligatorSwift.decode(ell64));
}

/** XSwiftECInv(x, u, case): the t that decodes (with u) to x, or null where the case has no solution. */
export function xswiftecInv(x: bigint, u: bigint, ellCase: number): bigint | null {
  const t = elligatorSwift._inv(x, u, ellCase);
  return t === undefined ? null : t;
}

/** x(priv · lift_x(XSwiftEC(theirs))) as 32 big-endian bytes. */
export function xOnlyEcdh(privateKey: Uint8Array, ellTheirs: Uint8Array): Buffer {
  checkPrivateKey(privateKey);
  checkEllSwift(ellTheirs, 'peer encoding');
  const x = elligatorSwift.getSharedSecret(privateKey, ellTheirs);
  // A view, not a copy, so a caller's fill(0) wipes the only copy of the ECDH secret.
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
}

/**
 * BIP324 shared secret: TaggedHash("bip324_ellswift_xonly_ecdh", ell_initiator ‖ ell_responder ‖ x_shared).
 * The initiator's encoding always comes first, whichever side computes it, and the hashed encodings
 * are the wire bytes (halves >= p included), never a re-encoding.
 */
export function v2SharedSecret(
  privateKey: Uint8Array,
  ellTheirs: Uint8Array,
  ellOurs: Uint8Array,
  initiator: boolean,
): Buffer {
  checkEllSwift(ellOurs, 'our encoding');
  const xShared = xOnlyEcdh(privateKey, ellTheirs);
  const h = createHash('sha256').update(ECDH_TAG_HASH).update(ECDH_TAG_HASH);
  if (initiator) h.update(ellOurs).update(ellTheirs);
  else h.update(ellTheirs).update(ellOurs);
  const secret = h.update(xShared).digest();
  xShared.fill(0);
  return secret;
}
