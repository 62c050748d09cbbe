/**
 * SOCKS5 destinations: classify and validate the host a client asks for (RFC 1928 §5 DST.ADDR).
 *
 * Bitcoin Core sends every destination as ATYP 0x03 DOMAINNAME, IP literals included
 * (netbase.cpp Socks5(); the string is CNetAddr::ToStringAddr(): dotted IPv4, compressed unbracketed
 * IPv6, `<56 base32>.onion`, or a host name for -connect/-addnode/-seednode/DNS seeds). So an IP
 * literal inside a DOMAINNAME is an IP, never something to resolve, and `.onion` must never reach a
 * resolver at all. Anything that could make a resolver do something surprising (a `%scope`, control
 * or non-ASCII bytes, an all-numeric last label that getaddrinfo would read as a short-form IPv4
 * like "127.1") is refused here, before any dialing.
 */

import { isIPv4, isIPv6 } from 'node:net';

import { ProxyError } from './errors.js';

export type HostKind = 'ipv4' | 'ipv6' | 'onion' | 'name';

export interface Destination {
  /** No brackets for IPv6. */
  host: string;
  port: number;
  kind: HostKind;
}

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
  const tld = labels[labels.length - 1]!.toLowerCase();
  if (tld === 'onion') {
    if (labels.length === 2 && ONION_V3.test(labels[0]!)) return 'onion';
    if (labels.length === 2 && ONION_V2.test(labels[0]!)) throw bad(host, 'v2 onion addresses no longer work; use the v3 (56 character) address');
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

/** "1.2.3.4:8333", "[2001:db8::1]:8333", "example.com:8333". */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
