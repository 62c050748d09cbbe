/**
 * Who says they speak BIP324: the NODE_P2P_V2 service bit (1 << 11, BIP324 "Signaling") in the
 * payloads of the messages that carry services, as a v1 client would receive them.
 *
 * - version: the sender's own services (bytes 4..11), the one first-hand claim;
 * - addr (BIP 111 era format): up to 1000 x [time u32, services u64, IPv6-or-mapped-IPv4 16 bytes,
 *   port u16 big-endian];
 * - addrv2 (BIP155): up to 1000 x [time u32, services CompactSize, network id u8, address length
 *   CompactSize, address, port u16 big-endian]; networks IPv4 (1), IPv6 (2), TORv3 (4) and CJDNS (6)
 *   are understood; TORv2 (3) no longer exists and I2P (5) is never reached through SOCKS.
 *
 * Sans-I/O and total: a malformed payload yields what could be read before the fault, never an
 * exception (the message is relayed to the client either way; this only reads along).
 */
import { createHash } from 'node:crypto';
import { formatIP } from '../address.js';

export const NODE_P2P_V2 = 1n << 11n;
/** Both formats cap a message at 1000 addresses (Core's MAX_ADDR_TO_SEND). */
const MAX_ADDRESSES = 1000;

export interface Announced {
  /** An IP literal (IPv6 in RFC 5952 form, IPv4 dotted) or a v3 .onion name, as a SOCKS client would ask for it. */
  host: string;
  port: number;
  services: bigint;
}

/** The services a VERSION payload announces for its sender, or undefined when it is too short. */
export function versionServices(payload: Buffer): bigint | undefined {
  return payload.length >= 12 ? payload.readBigUInt64LE(4) : undefined;
}

export function speaksV2(services: bigint): boolean {
  return (services & NODE_P2P_V2) !== 0n;
}

class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  has(n: number): boolean {
    return this.pos + n <= this.b.length;
  }
  u8(): number {
    return this.b[this.pos++];
  }
  bytes(n: number): Buffer {
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /** Bitcoin's CompactSize; undefined when truncated. */
  compactSize(): bigint | undefined {
    if (!this.has(1)) return undefined;
    const first = this.u8();
    if (first < 0xfd) return BigInt(first);
    const width = first === 0xfd ? 2 : first === 0xfe ? 4 : 8;
    if (!this.has(width)) return undefined;
    const b = this.bytes(width);
    return width === 2 ? BigInt(b.readUInt16LE(0)) : width === 4 ? BigInt(b.readUInt32LE(0)) : b.readBigUInt64LE(0);
  }
}

/** Addresses of an addr payload (v1 format), with their services. */
export function parseAddr(payload: Buffer): Announced[] {
  const r = new Reader(payload);
  const count = r.compactSize();
  const out: Announced[] = [];
  if (count === undefined) return out;
  for (let i = 0n; i < count && out.length < MAX_ADDRESSES && r.has(30); i++) {
    r.bytes(4); // time
    const services = r.bytes(8).readBigUInt64LE(0);
    const ip = r.bytes(16);
    const port = r.bytes(2).readUInt16BE(0);
    out.push({ host: formatIP(ip), port, services });
  }
  return out;
}

/** Addresses of an addrv2 payload (BIP155) on the networks a SOCKS client can ask for. */
export function parseAddrV2(payload: Buffer): Announced[] {
  const r = new Reader(payload);
  const count = r.compactSize();
  const out: Announced[] = [];
  if (count === undefined) return out;
  for (let i = 0n; i < count && i < MAX_ADDRESSES; i++) {
    if (!r.has(4)) break;
    r.bytes(4); // time
    const services = r.compactSize();
    if (services === undefined || !r.has(1)) break;
    const network = r.u8();
    const len = r.compactSize();
    if (len === undefined || len > 512n || !r.has(Number(len) + 2)) break;
    const addr = r.bytes(Number(len));
    const port = r.bytes(2).readUInt16BE(0);
    const host = addrV2Host(network, addr);
    if (host !== undefined) out.push({ host, port, services });
  }
  return out;
}

function addrV2Host(network: number, addr: Buffer): string | undefined {
  if (network === 1 && addr.length === 4) return Array.from(addr).join('.');
  if ((network === 2 || network === 6) && addr.length === 16) return formatIP(addr);
  if (network === 4 && addr.length === 32) return onionV3(addr);
  return undefined;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** rend-spec-v3 "Encoding onion addresses": base32(pubkey || SHA3-256(".onion checksum" || pubkey || 03)[:2] || 03) + ".onion". */
export function onionV3(pubkey: Buffer): string {
  const version = Buffer.of(3);
  const checksum = createHash('sha3-256').update('.onion checksum').update(pubkey).update(version).digest().subarray(0, 2);
  const data = Buffer.concat([pubkey, checksum, version]);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `${out}.onion`;
}
