/**
 * Addresses, in one module for every layer that handles them: the SOCKS5 parser and the legacy
 * front end, the dialer, the engine's loop checks and admission, the v2 peer table, gossip
 * (p2p/services.ts), configuration, metrics and status.
 *
 * - Destinations: classifyHost and makeDestination decide what a client may ask us to dial.
 * - host:port text: splitHostPort (the one splitter), parseHostPort (what an operator wrote),
 *   formatHostPort.
 * - IP text: canonicalIP and canonicalIPv6 (every spelling of an address compares equal);
 *   formatIP and formatIPv6 (from the bytes of a message, RFC 5952).
 * - Whose address: isLoopback, isOwnAddress, sourceKey (an IPv4 address or an IPv6 /64).
 *
 * Destinations (RFC 1928 §5 DST.ADDR). Bitcoin Core sends every destination as ATYP 0x03
 * DOMAINNAME, IP literals included (netbase.cpp Socks5(); the string is CNetAddr::ToStringAddr():
 * dotted IPv4, compressed unbracketed IPv6, `<56 base32>.onion`, or a host name for
 * -connect/-addnode/-seednode/DNS seeds). So an IP literal inside a DOMAINNAME is an IP, never
 * something to resolve, and `.onion` must never reach a resolver at all. Anything that could make a
 * resolver do something surprising (a `%scope`, control or non-ASCII bytes, an all-numeric last
 * label that getaddrinfo would read as a short-form IPv4 like "127.1") is refused here, before any
 * dialing.
 */

import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';

import { ProxyError } from './errors.js';

/** A host and a port, IPv6 without brackets. */
export interface HostPort {
  host: string;
  port: number;
}

export type HostKind = 'ipv4' | 'ipv6' | 'onion' | 'name';

export interface Destination {
  /** No brackets for IPv6. */
  host: string;
  port: number;
  kind: HostKind;
}

// ---------------------------------------------------------------------------------------------
// Destinations: what a client may ask us to dial.

/** RFC 1928 DOMAINNAME has a one-byte length; RFC 1035 caps a name at 255 octets anyway. */
const MAX_HOST_LEN = 255;
/** RFC 1035 §2.3.4 label limit; underscore allowed because real-world names (SRV-style seeds) use it. */
const LABEL = /^[A-Za-z0-9_-]{1,63}$/;
/** rend-spec-v3 §6: a v3 onion address is base32(pubkey || checksum || version), 35 bytes = 56 chars. */
const ONION_V3 = /^[a-z2-7]{56}$/i;
/** v2 onion names (16 base32 chars) stopped working in Tor 0.4.6; refuse them with a clear reason. */
const ONION_V2 = /^[a-z2-7]{16}$/i;
/** A last label that getaddrinfo/inet_aton would take as a number (WHATWG "ends in a number"). */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/i;
/** Printable ASCII without space: anything else never appears in a host Core would send. */
const NOT_PRINTABLE = /[^\x21-\x7e]/;

function bad(host: string, reason: string): ProxyError {
  return new ProxyError('ERR_SOCKS_BAD_ADDRESS', `bad destination host ${JSON.stringify(host)}: ${reason}`);
}

/**
 * Classify a destination host string as Bitcoin Core sends it in an ATYP 0x03 DOMAINNAME.
 * Throws ProxyError ERR_SOCKS_BAD_ADDRESS for anything that is not a usable IP literal, v3 onion or host name.
 */
export function classifyHost(host: string): HostKind {
  if (typeof host !== 'string' || host.length === 0) throw bad(String(host), 'empty');
  if (host.length > MAX_HOST_LEN) throw bad(host.slice(0, 32) + '...', `longer than ${MAX_HOST_LEN} bytes`);
  if (NOT_PRINTABLE.test(host)) throw bad(host, 'control, space or non-ASCII character');
  // node's isIPv6 accepts "fe80::1%eth0"; a scope names an interface of the client's machine, not a peer.
  if (host.includes('%')) throw bad(host, 'IPv6 %scope suffix');
  if (isIPv4(host)) return 'ipv4';
  if (host.includes(':')) {
    if (isIPv6(host)) return 'ipv6';
    throw bad(host, 'malformed IPv6 address');
  }
  const labels = host.split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) {
      throw bad(host, label.length === 0 ? 'empty label' : `label ${JSON.stringify(label)} is not letters, digits, '-' or '_' (max 63)`);
    }
  }
  const tld = labels[labels.length - 1].toLowerCase();
  if (tld === 'onion') {
    if (labels.length === 2 && ONION_V3.test(labels[0])) return 'onion';
    if (labels.length === 2 && ONION_V2.test(labels[0])) throw bad(host, 'v2 onion addresses no longer work; use the v3 (56 character) address');
    throw bad(host, 'not a v3 onion address (56 base32 characters before .onion)');
  }
  if (tld === 'i2p') throw bad(host, 'I2P is reached through the I2P SAM bridge, never through SOCKS');
  if (NUMERIC_LABEL.test(tld)) throw bad(host, 'numeric last label: not a dotted-quad IPv4 address and not a host name');
  return 'name';
}

/** Validate host and port into a Destination; `[...]` around an IPv6 literal is accepted and stripped. */
export function makeDestination(host: string, port: number): Destination {
  let bare = host;
  if (typeof host === 'string' && host.startsWith('[') && host.endsWith(']')) {
    bare = host.slice(1, -1);
    if (!isIPv6(bare) || bare.includes('%')) throw bad(host, 'brackets around something that is not an IPv6 address');
  }
  const kind = classifyHost(bare);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ProxyError('ERR_SOCKS_BAD_ADDRESS', `bad destination port ${String(port)} for ${JSON.stringify(bare)}: must be 1-65535`);
  }
  return { host: bare, port, kind };
}

// ---------------------------------------------------------------------------------------------
// host:port text.

/** How a host:port text splits, before either part is checked; `problem` says why it does not. */
export type HostPortSplit =
  | { problem?: undefined; host: string; port: string | undefined; bracketed: boolean }
  /** "[" without "]". */
  | { problem: 'unclosed' }
  /** Brackets around something that is not an IPv6 address (node's isIPv6: a %zone passes). */
  | { problem: 'not-ipv6'; host: string }
  /** Something other than ":PORT" after "]". */
  | { problem: 'after-bracket'; rest: string }
  /** More than one ":" without brackets: "::1:1324" is itself an address, so the port cannot be told apart. */
  | { problem: 'unbracketed-ipv6' };

/**
 * The one host:port splitter (RFC 3986 §3.2.2 authority: an IPv6 literal in brackets, then an
 * optional ":port"), for the operator's addresses, proxy URLs and HTTP Host headers. Each caller
 * checks the host and the port by its own rules and words its own errors. `port` is the text after
 * the colon (possibly empty), undefined without one.
 */
export function splitHostPort(text: string): HostPortSplit {
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return { problem: 'unclosed' };
    const host = text.slice(1, end);
    if (!isIPv6(host)) return { problem: 'not-ipv6', host };
    const rest = text.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return { problem: 'after-bracket', rest };
    return { host, port: rest === '' ? undefined : rest.slice(1), bracketed: true };
  }
  const colon = text.lastIndexOf(':');
  if (colon !== text.indexOf(':')) return { problem: 'unbracketed-ipv6' };
  return colon < 0 ? { host: text, port: undefined, bracketed: false } : { host: text.slice(0, colon), port: text.slice(colon + 1), bracketed: false };
}

function configError(message: string): ProxyError {
  return new ProxyError('ERR_CONFIG', message);
}

/** A host name as an operator may write one: RFC 1123 labels (and '_'), a trailing dot allowed. */
const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/**
 * An address the operator wrote (--listen, --inbound, --metrics): "127.0.0.1:1324", "[::1]:1324",
 * "localhost:1324", or a host alone when defaultPort is given. Throws ProxyError ERR_CONFIG.
 * Port 0 is accepted (a listener on any free port); callers that dial refuse it themselves.
 * A bare IPv6 address is refused even with a default port: "::1:1324" is itself a valid address,
 * so guessing would silently pick the wrong one.
 */
export function parseHostPort(text: string, defaultPort?: number): HostPort {
  const split = splitHostPort(text);
  switch (split.problem) {
    case 'unclosed':
      throw configError(`'${text}' is missing the ']' after the IPv6 address`);
    case 'not-ipv6':
      throw configError(`'${text}': '${split.host}' is not an IPv6 address`);
    case 'after-bracket':
      throw configError(`'${text}' is not [IPV6]:PORT`);
    case 'unbracketed-ipv6':
      throw configError(`'${text}': put an IPv6 address in brackets, e.g. [::1]:${defaultPort ?? 'PORT'}`);
  }
  const { host, port: portText } = split;
  if (!split.bracketed) {
    if (portText === undefined && /^[0-9]+$/.test(text)) throw configError(`'${text}' is a port without a host`);
    if (host === '') throw configError(`'${text}' has no host`);
    if (!isIPv4(host)) {
      if (/^[0-9.]+$/.test(host)) throw configError(`'${text}': '${host}' is not an IPv4 address`);
      if (host.length > 253 || !HOSTNAME.test(host)) throw configError(`'${text}': '${host}' is not a host name or IP address`);
    }
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw configError(`'${text}' has no port (HOST:PORT)`);
    port = defaultPort;
  } else {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw configError(`'${text}': port '${portText}' is not a number from 0 to 65535`);
    }
    port = Number(portText);
  }
  return { host, port };
}

/**
 * "1.2.3.4:8333", "[2001:db8::1]:8333", "example.com:8333": IPv6 in brackets (exactly once), so
 * the result parses back with parseHostPort. Takes any HostPort (a Destination, a proxy endpoint).
 */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---------------------------------------------------------------------------------------------
// IP text forms.

/**
 * The one text form of an IP address, so that every spelling compares equal: IPv4 dotted, an
 * IPv4-mapped IPv6 address as the IPv4 address it maps (::ffff:127.0.0.1 is 127.0.0.1, as a
 * dual-stack socket reports an IPv4 peer), any other IPv6 in canonicalIPv6 form. undefined for
 * anything else: names, brackets, a %zone.
 */
export function canonicalIP(text: string): string | undefined {
  if (isIPv4(text)) return text;
  const canonical = canonicalIPv6(text);
  const mapped = canonical === undefined ? null : /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped === null) return canonical;
  const hi = parseInt(mapped[1], 16);
  const lo = parseInt(mapped[2], 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/**
 * The one text form of an IPv6 address, so that every spelling of it compares equal: lower case,
 * no leading zeros, the longest run of zero groups as "::" (RFC 5952 §4), and an embedded IPv4
 * written in hex (::ffff:127.0.0.1 becomes ::ffff:7f00:1). The WHATWG URL parser does exactly
 * this to a bracketed host. undefined for anything that is not a plain IPv6 literal (a %zone too).
 */
export function canonicalIPv6(text: string): string | undefined {
  if (!isIPv6(text)) return undefined;
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/**
 * 16 address bytes (SOCKS5 ATYP 04, a VERSION's addr_recv) as RFC 5952 §4 text: lower case, no
 * leading zeros, the longest run of two or more zero groups (the first of equal runs) as "::".
 * An IPv4-mapped address stays in hex (::ffff:102:304), as canonicalIPv6 writes it.
 */
export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The first 12 bytes of an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2). */
const IPV4_MAPPED_PREFIX = Buffer.from('00000000000000000000ffff', 'hex');

/**
 * 16 address bytes as Bitcoin's messages carry every IP (a VERSION's addr_recv, addr; addrv2 for
 * IPv6 and CJDNS), Bitcoin Core's CNetAddr serialisation: an IPv4-mapped address as the dotted IPv4
 * address it maps, anything else as formatIPv6 writes it.
 */
export function formatIP(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return b.subarray(0, 12).equals(IPV4_MAPPED_PREFIX) ? Array.from(b.subarray(12, 16)).join('.') : formatIPv6(b);
}

// ---------------------------------------------------------------------------------------------
// Whose address it is.

/** 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and "localhost": addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const lower = h.toLowerCase();
  if (lower === 'localhost' || lower === 'localhost.') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  // Zone ids (fe80::1%eth0) have no canonical form: they are link-local, never loopback.
  const canonical = canonicalIPv6(h);
  if (canonical === undefined) return false;
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

/**
 * Whether an IP literal is an address of one of this machine's interfaces, in any spelling
 * (IPv4-mapped IPv6 and a link-local %zone included). Names are not resolved: false.
 */
export function isOwnAddress(host: string): boolean {
  // os.networkInterfaces() lists link-local addresses without their zone.
  const h = canonicalIP(isIPv6(host) ? host.split('%')[0] : host);
  if (h === undefined) return false;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address.toLowerCase() === h));
}

/**
 * The key a peer's connections are counted under (engine/admission.ts): the IPv4 address
 * (IPv4-mapped IPv6 included), or the first four groups (/64) of an IPv6 address, the smallest
 * block a single host is normally given. Anything else is its own key; undefined is "?".
 */
export function sourceKey(address: string | undefined): string {
  if (address === undefined) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1];
  if (isIPv4(address) || !isIPv6(address)) return address;
  // Expand "::" so the first four groups are the real /64, whatever the spelling.
  const [head = '', tail] = address.toLowerCase().split('%')[0].split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
