/**
 * Protocol limits and default timeouts, each with where the number comes from.
 * Timeouts here are defaults; the CLI/config can override the ones marked "setting".
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

/** setting: SOCKS5 negotiation deadline, accept to parsed request (slowloris guard; RFC 1928 servers close within 10 s). */
export const DEFAULT_SOCKS_TIMEOUT_MS = 10_000;
/** setting: remote connect deadline; below Bitcoin Core's 20 s SOCKS5 receive timeout (netbase.cpp g_socks5_recv_timeout). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/**
 * setting: v2 handshake deadline; also how long a silent remote is given before it is taken for a
 * v1 peer that hangs (cloudhead/nakamoto#161). 10 s leaves room for a Tor round trip or two, so a
 * slow v2 peer is not mistaken for a v1 one, and with a fallback reconnect still fits well inside
 * the 60 s Bitcoin Core gives a peer to complete VERSION/VERACK (-peertimeout).
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** setting: idle connection timeout; Core TIMEOUT_INTERVAL (net.h) is 20 minutes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 20 * 60_000;
/** setting: concurrent local client connections (SOCKS5, legacy) before new ones are refused. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** setting: concurrent inbound peers; Bitcoin Core's default -maxconnections, so the node behind us is the limit, not us. */
export const DEFAULT_MAX_INBOUND = 125;
/** setting: inbound peers from one IPv4 address or IPv6 /64 (Core connects to an address once; a few nodes may share a NAT). */
export const DEFAULT_MAX_INBOUND_PER_IP = 4;
/** setting: inbound v2 handshakes in progress at once (each costs an ElligatorSwift key and an ECDH). */
export const DEFAULT_MAX_INBOUND_HANDSHAKES = 32;
/** setting: new inbound handshakes per second on average (a node sees a few new inbound peers a minute). */
export const DEFAULT_INBOUND_HANDSHAKE_RATE = 20;
