/**
 * Pure decisions the front ends make from the first bytes of a connection.
 *
 * - classifyFirstBytes: which front end a new connection on the shared port is for (SOCKS5,
 *   SOCKS4, a legacy v1 client, or something to close). A custom signet magic may begin with 0x04
 *   or 0x05, so a configured magic is compared first (socks5-and-clients.md, section 0.8).
 * - classifyClientStream: after the SOCKS5 reply, whether the client speaks v1 (its first 16 bytes
 *   are magic || "version" || 5 NULs) or already speaks v2 itself. Like Bitcoin Core's responder
 *   (net.cpp ProcessReceivedMaybeV1Bytes), the decision is made at the first byte that cannot be
 *   the start of a v1 VERSION, so a v2 client is never kept waiting.
 * - versionDestination: the destination of a legacy client, from addr_recv of its VERSION.
 */
import { ProxyError } from '../errors.js';
import { NETWORKS, type Network, v1VersionPrefix } from '../networks.js';
import { type Destination, makeDestination } from '../socks5/address.js';

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

export type ClientStream = { kind: 'v1'; network: Network } | { kind: 'v2' } | { kind: 'more' };

/**
 * v1 or v2, from the client's first bytes after the SOCKS5 reply. A v1 VERSION of a network other
 * than the configured one throws ERR_V1_WRONG_NETWORK.
 */
export function classifyClientStream(bytes: Buffer, network?: Network): ClientStream {
  let undecided = false;
  for (const candidate of candidateNetworks(network)) {
    const prefix = v1VersionPrefix(candidate.magic);
    if (!isPrefixOf(bytes, prefix)) continue;
    if (bytes.length < prefix.length) {
      undecided = true;
      continue;
    }
    if (network !== undefined && candidate !== network) {
      throw new ProxyError('ERR_V1_WRONG_NETWORK', `client sent a ${candidate.name} VERSION but the proxy serves ${network.name}`);
    }
    return { kind: 'v1', network: candidate };
  }
  return undecided ? { kind: 'more' } : { kind: 'v2' };
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
const IPV4_MAPPED = Buffer.from('00000000000000000000ffff', 'hex');

/** The destination of a legacy client, from its VERSION's addr_recv (IPv4-mapped or IPv6). */
export function versionDestination(payload: Buffer): Destination {
  if (payload.length < ADDR_RECV_PORT + 2) {
    throw new ProxyError('ERR_LEGACY_BAD_ADDR', `VERSION payload of ${payload.length} bytes is too short to hold addr_recv`);
  }
  const ip = payload.subarray(ADDR_RECV_IP, ADDR_RECV_IP + 16);
  const port = payload.readUInt16BE(ADDR_RECV_PORT);
  let host: string;
  if (ip.subarray(0, 12).equals(IPV4_MAPPED)) {
    host = Array.from(ip.subarray(12)).join('.');
    if (host === '0.0.0.0') throw new ProxyError('ERR_LEGACY_BAD_ADDR', 'addr_recv is 0.0.0.0 (the client did not say where to connect)');
  } else {
    if (ip.every((b) => b === 0)) throw new ProxyError('ERR_LEGACY_BAD_ADDR', 'addr_recv is all zero (the client did not say where to connect)');
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(ip.readUInt16BE(i).toString(16));
    host = compressIPv6(groups);
  }
  if (port === 0) throw new ProxyError('ERR_LEGACY_BAD_ADDR', `addr_recv ${host} has port 0`);
  try {
    return makeDestination(host, port);
  } catch (err) {
    throw new ProxyError('ERR_LEGACY_BAD_ADDR', `addr_recv ${host}:${port} is not usable: ${(err as Error).message}`);
  }
}

/** RFC 5952 text form: the longest run (>= 2) of zero groups becomes "::". */
function compressIPv6(groups: string[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLen).join(':')}`;
}
