/**
 * BIP324 key derivation: HKDF-SHA256 (RFC 5869) from the ECDH shared secret.
 *
 * Implements BIP324 "Keys and session ID derivation": salt = "bitcoin_v2_shared_secret" ‖
 * network magic, six 32-byte outputs labelled by role (initiator_L/P, responder_L/P,
 * garbage_terminators, session_id). The magic in the salt is what makes peers on different
 * networks fail at the first packet instead of talking past each other.
 */
import { createHmac } from 'node:crypto';
import { GARBAGE_TERMINATOR_LEN } from '../limits.js';

export interface SessionKeys {
  initiatorL: Buffer;
  initiatorP: Buffer;
  responderL: Buffer;
  responderP: Buffer;
  /** Views of the role-labelled keys above, chosen by our role (same memory, so wiping one wipes both). */
  sendL: Buffer;
  sendP: Buffer;
  recvL: Buffer;
  recvP: Buffer;
  /** 16 bytes each: the initiator's terminator is the first half of `garbage_terminators`. */
  sendTerminator: Buffer;
  recvTerminator: Buffer;
  /** 32 bytes; shown as hex for out-of-band comparison once the peer's version packet authenticated. */
  sessionId: Buffer;
}

const SALT_PREFIX = Buffer.from('bitcoin_v2_shared_secret', 'ascii');

const ONE = Buffer.of(1);

/**
 * HKDF-Expand for one 32-byte output: T(1) = HMAC(PRK, info ‖ 0x01) (RFC 5869 §2.3 with L = HashLen).
 * The extract step is done once for all six outputs; hkdfSync would redo it, and its per-call
 * setup costs more than the two HMACs: 6 x hkdfSync took ~70 us, this ~25 us (bench/README.md).
 */
function expand(prk: Buffer, info: string): Buffer {
  return createHmac('sha256', prk).update(info, 'ascii').update(ONE).digest();
}

/**
 * Derives every session key. The caller should wipe `sharedSecret` and, once its ciphers exist,
 * the L/P keys (`fill(0)`), as BIP324 recommends.
 */
export function deriveSessionKeys(sharedSecret: Uint8Array, magic: Uint8Array, initiator: boolean): SessionKeys {
  if (sharedSecret.length !== 32) throw new RangeError('deriveSessionKeys: shared secret must be 32 bytes');
  if (magic.length !== 4) throw new RangeError('deriveSessionKeys: network magic must be 4 bytes');
  // HKDF-Extract (RFC 5869 §2.2): PRK = HMAC(salt, IKM).
  const prk = createHmac('sha256', Buffer.concat([SALT_PREFIX, magic]))
    .update(sharedSecret)
    .digest();
  const initiatorL = expand(prk, 'initiator_L');
  const initiatorP = expand(prk, 'initiator_P');
  const responderL = expand(prk, 'responder_L');
  const responderP = expand(prk, 'responder_P');
  const terminators = expand(prk, 'garbage_terminators');
  const sessionId = expand(prk, 'session_id');
  prk.fill(0);
  const initiatorTerminator = terminators.subarray(0, GARBAGE_TERMINATOR_LEN);
  const responderTerminator = terminators.subarray(GARBAGE_TERMINATOR_LEN, 2 * GARBAGE_TERMINATOR_LEN);
  return {
    initiatorL,
    initiatorP,
    responderL,
    responderP,
    sendL: initiator ? initiatorL : responderL,
    sendP: initiator ? initiatorP : responderP,
    recvL: initiator ? responderL : initiatorL,
    recvP: initiator ? responderP : initiatorP,
    sendTerminator: initiator ? initiatorTerminator : responderTerminator,
    recvTerminator: initiator ? responderTerminator : initiatorTerminator,
    sessionId,
  };
}
