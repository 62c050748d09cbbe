/**
 * Protocol constants, each with where the number comes from: what BIP324, the v1 wire format and
 * Bitcoin Core fix, never an operator's choice (those defaults are in config/defaults.ts).
 */

/** Bitcoin Core MAX_PROTOCOL_MESSAGE_LENGTH (net.h): the largest v1 payload. */
export const MAX_V1_PAYLOAD = 4_000_000;
/** v1 header: magic(4) + command(12) + length(4) + checksum(4). */
export const V1_HEADER_LEN = 24;
/** BIP324 / Core MAX_CONTENTS_LEN: 1 + 12 + MAX_PROTOCOL_MESSAGE_LENGTH. */
export const MAX_V2_CONTENTS = 1 + 12 + MAX_V1_PAYLOAD;
/** BIP324: garbage is 0..4095 bytes, then a 16-byte terminator. */
export const MAX_GARBAGE_LEN = 4095;
export const GARBAGE_TERMINATOR_LEN = 16;
/** BIP324: both ciphers rekey every 224 packets. */
export const REKEY_INTERVAL = 224;
/** BIP324: 3-byte length + 1-byte header + 16-byte tag. */
export const V2_PACKET_OVERHEAD = 20;
export const V2_LENGTH_LEN = 3;
export const V2_TAG_LEN = 16;
export const ELLSWIFT_LEN = 64;
/** Core V1_PREFIX_LEN: magic + "version" + 5 NULs. */
export const V1_PREFIX_LEN = 16;
/** RFC 1929 §2: ULEN and PLEN are one byte, so a SOCKS5 username or password is at most 255 bytes. */
export const MAX_CREDENTIAL_BYTES = 255;
