/**
 * Pure decisions the front ends make from the first bytes of a connection.
 *
 * - classifyFirstBytes: which front end a new connection on the shared port is for (SOCKS5,
 *   SOCKS4, a legacy v1 client, or something to close). A custom signet magic may begin with 0x04
 *   or 0x05 (BIP325 derives it from a hash), so a configured magic is compared first.
 * - classifyClientStream: after the SOCKS5 reply, whether the client speaks v1 (its first 16 bytes
 *   are magic || "version" || 5 NULs, for any magic) or already speaks v2 itself. The decision is
 *   made at the first byte of 4..15 that differs from "version" || 5 NULs; a v2 client sends its
 *   64-byte key at once, so it is never kept waiting. Bytes 0..3 alone decide nothing: a custom
 *   signet's VERSION has a magic we do not know, and taking it for v2 would relay it in plaintext.
 * - checkLegacyHeader: the legacy front end's first message must be a small VERSION, which its
 *   24-byte header tells before a byte of payload is buffered.
 * - versionDestination: the destination of a legacy client, from addr_recv of its VERSION.
 */
import { ProxyError } from '../errors.js';
import { V1_HEADER_LEN, V1_PREFIX_LEN } from '../limits.js';
import { commandName, isValidCommand } from '../v1/framing.js';
import { NETWORKS, type Network, VERSION_COMMAND_FIELD, customNetwork } from '../networks.js';
import { type Destination, formatIP, makeDestination } from '../address.js';

export type FrontEnd = 'socks5' | 'socks4' | 'legacy' | 'unknown' | 'more';

/** Networks whose magic a client may use: the configured one first, then the known ones. */
function candidateNetworks(network: Network | undefined): Network[] {
  if (network === undefined) return [...NETWORKS];
  return [network, ...NETWORKS.filter((n) => !n.magic.equals(network.magic))];
}

function isPrefixOf(bytes: Uint8Array, full: Uint8Array): boolean {
  const n = Math.min(bytes.length, full.length);
  return Buffer.from(bytes.buffer, bytes.byteOffset, n).equals(Buffer.from(full.buffer, full.byteOffset, n));
}

/** Decide the front end from the bytes received so far ('more': not enough bytes yet). */
export function classifyFirstBytes(bytes: Buffer, network?: Network): FrontEnd {
  if (bytes.length === 0) return 'more';
  if (network !== undefined && isPrefixOf(bytes, network.magic)) return bytes.length >= 4 ? 'legacy' : 'more';
  if (bytes[0] === 0x05) return 'socks5';
  if (bytes[0] === 0x04) return 'socks4';
  // Any known magic is taken as a legacy client; the legacy front end then refuses another network's.
  if (candidateNetworks(network).some((n) => isPrefixOf(bytes, n.magic))) return bytes.length >= 4 ? 'legacy' : 'more';
  return 'unknown';
}

export type ClientStream =
  /** `unknownMagic`: the VERSION's magic is none of the known networks' (a custom signet, or a typo). */
  { kind: 'v1'; network: Network; unknownMagic?: boolean } | { kind: 'v2' } | { kind: 'more' };

const COMMAND_AT = 4;

/**
 * v1 or v2, from the client's first bytes after the SOCKS5 reply. A v1 VERSION for another network
 * than the configured one throws ERR_V1_WRONG_NETWORK; without a configured network, one whose
 * magic is unknown is v1 of a custom network with that magic.
 */
export function classifyClientStream(bytes: Buffer, network?: Network): ClientStream {
  const n = Math.min(bytes.length, V1_PREFIX_LEN);
  if (n <= COMMAND_AT) return { kind: 'more' };
  if (!bytes.subarray(COMMAND_AT, n).equals(VERSION_COMMAND_FIELD.subarray(0, n - COMMAND_AT))) return { kind: 'v2' };
  if (n < V1_PREFIX_LEN) return { kind: 'more' };
  const magic = bytes.subarray(0, COMMAND_AT);
  const known = candidateNetworks(network).find((c) => c.magic.equals(magic));
  if (network !== undefined && known !== network) {
    const what = known === undefined ? `magic ${magic.toString('hex')}` : `a ${known.name} VERSION`;
    throw new ProxyError('ERR_V1_WRONG_NETWORK', `client sent ${what} but the proxy serves ${network.name}`);
  }
  if (known !== undefined) return { kind: 'v1', network: known };
  return { kind: 'v1', network: customNetwork(magic.toString('hex')), unknownMagic: true };
}

/**
 * The largest first message the legacy front end buffers. A real VERSION is under 400 bytes (its user
 * agent is capped at 256, Core's MAX_SUBVERSION_LENGTH); this front end is unauthenticated, so a
 * connection must not make us hold the 4 MB a v1 header may announce.
 */
export const MAX_LEGACY_VERSION = 4096;

/** Refuse, from its 24-byte header alone, a legacy first message that is not a small VERSION. */
export function checkLegacyHeader(header: Buffer): void {
  const field = header.subarray(COMMAND_AT, COMMAND_AT + 12);
  if (!isValidCommand(field)) throw new ProxyError('ERR_V1_BAD_COMMAND', `v1 header with command field ${field.toString('hex')}`);
  if (!field.equals(VERSION_COMMAND_FIELD)) {
    throw new ProxyError('ERR_V1_NOT_VERSION', `first message is ${JSON.stringify(commandName(field))}, not VERSION`);
  }
  const length = header.readUInt32LE(V1_HEADER_LEN - 8);
  if (length > MAX_LEGACY_VERSION) {
    throw new ProxyError('ERR_V1_TOO_LARGE', `first message announces a ${length}-byte VERSION; a real one is under 400 bytes (limit ${MAX_LEGACY_VERSION})`);
  }
}

/** The network of a legacy client's first 4 bytes, or an error naming why it is refused. */
export function legacyNetwork(magic: Uint8Array, network?: Network): Network {
  const match = candidateNetworks(network).find((n) => n.magic.equals(magic));
  if (match === undefined) throw new ProxyError('ERR_UNKNOWN_PROTOCOL', 'unknown network magic');
  if (network !== undefined && match !== network) {
    throw new ProxyError('ERR_V1_WRONG_NETWORK', `client sent a ${match.name} VERSION but the proxy serves ${network.name}`);
  }
  return match;
}

/** Offsets in a VERSION payload: version(4) services(8) time(8), then addr_recv = services(8) ip(16) port(2, big-endian). */
const ADDR_RECV_IP = 28;
const ADDR_RECV_PORT = 44;

/** The destination of a legacy client, from its VERSION's addr_recv (IPv4-mapped or IPv6). */
export function versionDestination(payload: Buffer): Destination {
  if (payload.length < ADDR_RECV_PORT + 2) {
    throw new ProxyError('ERR_LEGACY_BAD_ADDR', `VERSION payload of ${payload.length} bytes is too short to hold addr_recv`);
  }
  const ip = payload.subarray(ADDR_RECV_IP, ADDR_RECV_IP + 16);
  const port = payload.readUInt16BE(ADDR_RECV_PORT);
  const host = formatIP(ip);
  if (host === '0.0.0.0') throw new ProxyError('ERR_LEGACY_BAD_ADDR', 'addr_recv is 0.0.0.0 (the client did not say where to connect)');
  if (host === '::') throw new ProxyError('ERR_LEGACY_BAD_ADDR', 'addr_recv is all zero (the client did not say where to connect)');
  if (port === 0) throw new ProxyError('ERR_LEGACY_BAD_ADDR', `addr_recv ${host} has port 0`);
  try {
    return makeDestination(host, port);
  } catch (err) {
    throw new ProxyError('ERR_LEGACY_BAD_ADDR', `addr_recv ${host}:${port} is not usable: ${(err as Error).message}`);
  }
}
