/**
 * NODE_P2P_V2 read out of version, addr and addrv2 payloads, against payloads built byte by byte
 * here from the message formats (BIP 111-era addr, BIP155 addrv2) and a real v3 onion address.
 */
import assert from 'node:assert/strict';
import { NODE_P2P_V2, onionV3, parseAddr, parseAddrV2, speaksV2, versionServices } from '../../src/p2p/services.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
function base32Decode(s: string): Buffer {
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of s) {
    value = (value << 5) | BASE32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

describe('p2p services', () => {
  it('NODE_P2P_V2 is service bit 11 (BIP324 "Signaling")', () => {
    assert.equal(NODE_P2P_V2, 2048n);
    assert.equal(speaksV2(0x409n | 2048n), true);
    assert.equal(speaksV2(0x409n), false);
  });

  it("reads the sender's services at bytes 4..11 of a VERSION", () => {
    const p = Buffer.alloc(86);
    p.writeInt32LE(70016, 0);
    p.writeBigUInt64LE(0xc09n, 4);
    assert.equal(versionServices(p), 0xc09n);
    assert.equal(versionServices(Buffer.alloc(11)), undefined);
  });

  it('parses addr: count, then time, services, 16-byte address (IPv4-mapped or IPv6), big-endian port', () => {
    const entry = (ip: string, port: number, services: bigint): Buffer =>
      Buffer.concat([Buffer.alloc(4), u64(services), Buffer.from(ip, 'hex'), Buffer.from([port >> 8, port & 0xff])]);
    const payload = Buffer.concat([
      Buffer.from([2]),
      entry('00000000000000000000ffff01020304', 8333, 0xc09n),
      entry('20010db8000000000000000000000001', 18444, 0x409n),
    ]);
    assert.deepEqual(parseAddr(payload), [
      { host: '1.2.3.4', port: 8333, services: 0xc09n },
      { host: '2001:db8::1', port: 18444, services: 0x409n },
    ]);
  });

  it('parses addrv2: CompactSize services, network id, address length; IPv4, IPv6, TORv3 and CJDNS; skips I2P and TORv2', () => {
    const pubkeyOnion = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid';
    const pubkey = base32Decode(pubkeyOnion).subarray(0, 32);
    const entry = (services: number[], net: number, addr: Buffer, port: number): Buffer =>
      Buffer.concat([Buffer.alloc(4), Buffer.from(services), Buffer.from([net, addr.length]), addr, Buffer.from([port >> 8, port & 0xff])]);
    const payload = Buffer.concat([
      Buffer.from([6]),
      entry([0xfd, 0x09, 0x0c], 1, Buffer.from([5, 6, 7, 8]), 8333), // services 0x0c09 as a 3-byte CompactSize
      entry([0x09], 2, Buffer.from('fe800000000000000000000000000001', 'hex'), 8333),
      entry([0xfd, 0x09, 0x08], 4, pubkey, 8333),
      entry([0x09], 5, Buffer.alloc(32, 1), 0), // I2P
      entry([0x09], 3, Buffer.alloc(10, 1), 8333), // TORv2
      entry([0xfd, 0x09, 0x08], 6, Buffer.from('fc000000000000000000000000000002', 'hex'), 8333),
    ]);
    assert.deepEqual(parseAddrV2(payload), [
      { host: '5.6.7.8', port: 8333, services: 0xc09n },
      { host: 'fe80::1', port: 8333, services: 9n },
      { host: `${pubkeyOnion}.onion`, port: 8333, services: 0x809n },
      { host: 'fc00::2', port: 8333, services: 0x809n },
    ]);
  });

  it('reads the services of a VERSION of exactly 12 bytes', () => {
    assert.equal(versionServices(Buffer.concat([Buffer.alloc(4), u64(0x80cn)])), 0x80cn);
  });

  it('reads CompactSize services of every width (1, 3, 5 and 9 bytes) in addrv2', () => {
    const entry = (services: number[], last: number): Buffer =>
      Buffer.concat([Buffer.alloc(4), Buffer.from(services), Buffer.from([1, 4, 10, 0, 0, last, 0x20, 0x8d])]);
    const payload = Buffer.concat([
      Buffer.from([4]),
      entry([0x09], 1),
      entry([0xfd, 0x09, 0x0c], 2),
      entry([0xfe, 0x09, 0x08, 0x00, 0x01], 3),
      entry([0xff, 0x09, 0x08, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], 4),
    ]);
    assert.deepEqual(parseAddrV2(payload), [
      { host: '10.0.0.1', port: 8333, services: 0x9n },
      { host: '10.0.0.2', port: 8333, services: 0xc09n },
      { host: '10.0.0.3', port: 8333, services: 0x1000809n },
      { host: '10.0.0.4', port: 8333, services: 0x200000809n },
    ]);
  });

  it('reads no more entries than the count says, in addr and addrv2, and at most 1000 addrv2 entries', () => {
    const v1 = Buffer.concat([Buffer.alloc(4), u64(9n), Buffer.from('00000000000000000000ffff01020304', 'hex'), Buffer.from([0x20, 0x8d])]);
    assert.deepEqual(parseAddr(Buffer.concat([Buffer.from([1]), v1, v1])), [{ host: '1.2.3.4', port: 8333, services: 9n }]);
    const v2 = Buffer.from([0, 0, 0, 0, 9, 1, 4, 1, 2, 3, 4, 0x20, 0x8d]);
    assert.deepEqual(parseAddrV2(Buffer.concat([Buffer.from([1]), v2, v2])), [{ host: '1.2.3.4', port: 8333, services: 9n }]);
    const many = Buffer.concat([Buffer.from([0xfd, 0xd0, 0x07]), ...Array.from({ length: 2000 }, () => v2)]);
    assert.equal(parseAddrV2(many).length, 1000);
  });

  it('skips an addrv2 address of up to 512 bytes on an unknown network and stops at a longer one or a cut entry', () => {
    const v2 = Buffer.from([0, 0, 0, 0, 9, 1, 4, 1, 2, 3, 4, 0x20, 0x8d]);
    const unknown = (len: number): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 0, 9, 7, 0xfd, len & 0xff, len >> 8]), Buffer.alloc(len + 2, 0xaa)]);
    const one = [{ host: '1.2.3.4', port: 8333, services: 9n }];
    assert.deepEqual(parseAddrV2(Buffer.concat([Buffer.from([2]), unknown(512), v2])), one);
    assert.deepEqual(parseAddrV2(Buffer.concat([Buffer.from([2]), unknown(513), v2])), []);
    // An entry whose port is missing, or whose address is cut, ends the list without a throw.
    assert.deepEqual(parseAddrV2(Buffer.concat([Buffer.from([2]), v2, v2.subarray(0, 11)])), one);
    assert.deepEqual(parseAddrV2(Buffer.concat([Buffer.from([2]), v2, v2.subarray(0, 9)])), one);
  });

  it('skips addrv2 addresses whose length does not fit their network (BIP155 sizes: IPv4 4, IPv6 16, TORv3 32, CJDNS 16)', () => {
    const entry = (net: number, addr: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 0, 9, net, addr.length]), addr, Buffer.from([0x20, 0x8d])]);
    const payload = Buffer.concat([
      Buffer.from([7]),
      entry(1, Buffer.alloc(16, 1)),
      entry(2, Buffer.alloc(4, 1)),
      entry(6, Buffer.alloc(4, 1)),
      entry(4, Buffer.alloc(16, 1)),
      entry(5, Buffer.alloc(4, 1)),
      entry(3, Buffer.alloc(16, 1)),
      entry(1, Buffer.from([9, 9, 9, 9])),
    ]);
    assert.deepEqual(parseAddrV2(payload), [{ host: '9.9.9.9', port: 8333, services: 9n }]);
  });

  it('encodes a v3 onion address from its key exactly as Tor does (the checksum and version match a real address)', () => {
    for (const onion of ['2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid', 'duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad']) {
      assert.equal(onionV3(base32Decode(onion).subarray(0, 32)), `${onion}.onion`);
    }
  });

  it('returns what it could read from a truncated or hostile payload, never throws', () => {
    const good = Buffer.concat([Buffer.alloc(4), u64(2048n), Buffer.from('00000000000000000000ffff01020304', 'hex'), Buffer.from([0x20, 0x8d])]);
    assert.deepEqual(parseAddr(Buffer.concat([Buffer.from([3]), good, good.subarray(0, 10)])).length, 1);
    assert.deepEqual(parseAddr(Buffer.from([0xff, 1, 2])), []);
    assert.deepEqual(parseAddrV2(Buffer.from([1, 0, 0, 0, 0, 0xff])), []);
    assert.deepEqual(parseAddrV2(Buffer.from([1, 0, 0, 0, 0, 9, 1, 0xfe, 0xff, 0xff, 0xff, 0xff])), []);
    // 1000 addresses at most, whatever the count says.
    const many = Buffer.concat([Buffer.from([0xfd, 0xd0, 0x07]), ...Array.from({ length: 2000 }, () => good)]);
    assert.equal(parseAddr(many).length, 1000);
  });
});
