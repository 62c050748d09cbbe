/**
 * An independent BIP324 v2 peer for the tests: ElligatorSwift (ellswift.ts), the two rekeying
 * ciphers (ciphers.ts), the handshake and packet layer (peer.ts) and the message type encoding
 * (messages.ts). Built only on @noble/curves, @noble/hashes and @noble/ciphers, from the BIP text
 * and the shape of its reference code; it imports nothing from src/.
 */
export * from './ciphers.js';
export * from './ellswift.js';
export * from './messages.js';
export * from './peer.js';
