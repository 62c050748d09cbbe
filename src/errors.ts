/**
 * One error type for the whole proxy, with stable string codes.
 *
 * Every refusal the proxy makes (a bad packet, a bad SOCKS request, a dial failure) is a
 * ProxyError whose `code` is listed in ERROR_CODES below, with the one-line meaning that the
 * README and man page repeat. Tests assert on `code`, never on message text. `fatal` says whether
 * the connection must close (true) or only the one message is dropped (false), mirroring what
 * Bitcoin Core does for the same input.
 */

export const ERROR_CODES = {
  // v1 framing (src/v1/framing.ts)
  ERR_V1_BAD_MAGIC: 'v1 header with the wrong network magic',
  ERR_V1_BAD_COMMAND: 'v1 header whose 12-byte command field is not printable ASCII padded with NULs',
  ERR_V1_TOO_LARGE:
    "v1 header announcing a payload above 4,000,000 bytes, or above 4,096 for a legacy client's VERSION; a v2 message whose payload is above 4,000,000 bytes is dropped",
  ERR_V1_BAD_CHECKSUM: 'v1 message whose checksum does not match its payload (the message is dropped)',
  ERR_V1_NOT_VERSION: 'the first v1 message of a connection is not a VERSION',
  ERR_V1_WRONG_NETWORK: 'a v1 VERSION for another network than the one configured',

  // v2 packets and handshake (src/crypto/*, src/v2/*)
  ERR_V2_BAD_TAG: 'v2 packet failed authentication (wrong keys, garbage or tampering)',
  ERR_V2_TOO_LARGE: 'v2 packet length above 4,000,013 bytes of contents (on sending: above 16,777,215, what the 3-byte length can carry)',
  ERR_V2_NO_TERMINATOR: 'no garbage terminator within 4095 bytes of garbage',
  ERR_V2_EMPTY_CONTENTS: 'v2 application packet with empty contents (the message is dropped)',
  ERR_V2_UNKNOWN_SHORT_ID: 'v2 message with an unknown short message type id (the message is dropped)',
  ERR_V2_BAD_LONG_COMMAND: 'v2 message with a malformed 12-byte command (the message is dropped)',
  ERR_V2_BAD_STATE: 'v2 transport used out of order (a bug in the caller)',
  ERR_V2_HANDSHAKE_TIMEOUT: 'the v2 handshake did not finish in time',
  ERR_V2_PEER_CLOSED: 'the peer closed the connection in the middle of the v2 handshake',

  // SOCKS5 front end (src/socks5/*)
  ERR_SOCKS_BAD_VERSION: 'SOCKS request with a version other than 5',
  ERR_SOCKS4: 'SOCKS4 request (rejected; only SOCKS5 is served)',
  ERR_SOCKS_NO_METHOD: 'SOCKS5 greeting offers neither no-auth (0x00) nor username/password (0x02)',
  ERR_SOCKS_BAD_AUTH: 'malformed RFC 1929 username/password message',
  ERR_SOCKS_BAD_COMMAND: 'SOCKS5 command other than CONNECT (BIND, UDP ASSOCIATE, RESOLVE)',
  ERR_SOCKS_BAD_ATYP: 'SOCKS5 request with an unknown address type',
  ERR_SOCKS_BAD_ADDRESS: 'SOCKS5 destination that is not a usable host name, IP address or port',
  ERR_SOCKS_TIMEOUT: 'SOCKS5 negotiation did not finish in time',

  // Front-end dispatch and legacy mode (src/engine/*)
  ERR_UNKNOWN_PROTOCOL: 'first byte is neither SOCKS5, SOCKS4 nor a known network magic',
  ERR_LEGACY_BAD_ADDR: 'legacy VERSION whose addr_recv is zero or not usable as a destination',
  ERR_CLIENT_CLOSED: 'the client closed or reset the connection before its session started',
  ERR_CLIENT_TIMEOUT: 'the client sent nothing within --socks-timeout after the SOCKS5 reply, or no complete VERSION in legacy mode',

  // Dialing the remote peer (src/upstream/*)
  ERR_DIAL_REFUSED: 'the remote peer refused the connection',
  ERR_DIAL_UNREACHABLE: 'the remote host or network is unreachable, or its name did not resolve',
  ERR_DIAL_TIMEOUT: 'the remote connection did not complete in time',
  ERR_DIAL_FAILED: 'the remote connection failed for another reason',
  ERR_DIAL_NOT_ALLOWED: 'the destination is refused by policy (a loop back to this proxy)',
  ERR_ONION_NO_PROXY: 'a .onion destination with no --onion-proxy or --upstream-proxy to reach it',
  ERR_UPSTREAM_PROXY: 'the upstream SOCKS5 proxy failed or refused the request',

  // Session engine (src/engine/*)
  ERR_V2_ONLY: 'the remote peer speaks only v1 and --v2-only forbids falling back',
  ERR_V2_DOWNGRADE:
    "the remote peer is known to speak v2 but its v2 attempt failed as a v1 peer's would, or it answered the v1 fallback as a v2 peer: a downgrade, refused",
  ERR_PEER_RESET: 'the peer reset the connection, or its socket failed, in the middle of a session',
  ERR_CLIENT_RESET: 'the local client reset the connection, or its socket failed, in the middle of a session',
  ERR_NODE_RESET: 'inbound mode: the node behind the proxy reset the connection, or its socket failed',
  ERR_IDLE_TIMEOUT: 'no bytes in either direction for the idle timeout',
  ERR_MAX_CONNECTIONS: 'refused: --max-connections local clients reached',
  ERR_MAX_INBOUND: 'inbound peer refused: --max-inbound reached',
  ERR_INBOUND_PER_IP: 'inbound peer refused: its address (IPv4, or IPv6 /64) already has --max-inbound-per-ip connections',
  ERR_HANDSHAKE_BUSY: 'inbound peer refused: --max-inbound-handshakes in progress, or new ones above --inbound-handshake-rate',

  // Configuration (src/config/)
  ERR_CONFIG: 'invalid command-line option or configuration file value',

  // Bugs
  ERR_INTERNAL: 'an internal error (a bug in the proxy): the connection is closed, the daemon keeps running',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ProxyError extends Error {
  readonly code: ErrorCode;
  /** true: the connection must be closed; false: only the offending message is dropped. */
  readonly fatal: boolean;
  /** Bytes to send the client before closing: the SOCKS reply that tells it why (socks5/reply.ts). */
  readonly reply: Buffer | undefined;

  constructor(code: ErrorCode, message: string, options: { fatal?: boolean; cause?: unknown; reply?: Buffer } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.fatal = options.fatal ?? true;
    this.reply = options.reply;
  }

  /** The same error, with the reply the client gets before the connection closes. */
  withReply(reply: Buffer | undefined): ProxyError {
    if (reply === undefined) return this;
    return new ProxyError(this.code, this.message, { fatal: this.fatal, cause: this.cause, reply });
  }
}

export function isProxyError(err: unknown, code?: ErrorCode): err is ProxyError {
  return err instanceof ProxyError && (code === undefined || err.code === code);
}
