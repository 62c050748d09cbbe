/**
 * Well-formed inputs the fuzz targets start from before mutating them: SOCKS5 negotiations
 * (RFC 1928/1929) and a legacy client's VERSION, plus the byte offsets the mutations aim at.
 */
import { networkByName, type Network } from '../../../src/networks.js';
import { serializeV1 } from '../../../src/v1/framing.js';
import { ipv6Bytes, versionPayload } from '../node.js';

/** The network every fuzz input and actor uses. */
export const MAIN: Network = networkByName('main')!;

/** Bitcoin Core's stream-isolation credentials look like this. */
export const SOCKS_USER = 'a1b2c3d4e5f6a7b8-0';
export const SOCKS_PASS = 'a1b2c3d4e5f6a7b8-0';

export function socks5Auth(user: string, pass: string): Buffer {
  const u = Buffer.from(user, 'latin1');
  const p = Buffer.from(pass, 'latin1');
  return Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]);
}

/** RFC 1928 §4 CONNECT with ATYP 01 (IPv4 literal), 03 (name, as Core sends everything) or 04 (IPv6 literal). */
export function socks5Request(host: string, port: number, atyp: 1 | 3 | 4 = 3): Buffer {
  let addr: Buffer;
  if (atyp === 1) addr = Buffer.from(host.split('.').map(Number));
  else if (atyp === 4) addr = ipv6Bytes(host);
  else addr = Buffer.concat([Buffer.from([Buffer.byteLength(host, 'latin1')]), Buffer.from(host, 'latin1')]);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, 1, 0, atyp]), addr, p]);
}

/** A legacy client's VERSION (24-byte header + 86-byte payload) asking for addrRecv. */
export function legacyVersion(magic: Buffer, addrRecv: { host: string; port: number }): Buffer {
  return serializeV1(magic, 'version', versionPayload(addrRecv));
}

/** VERSION payload offsets (detect.ts): addr_recv ip at 28..44, port (big-endian) at 44; v1 header: length at 16, checksum at 20. */
export const ADDR_IP = 28;
export const ADDR_PORT = 44;
export const V1_LENGTH = 16;
export const V1_CHECKSUM = 20;
