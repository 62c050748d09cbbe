/**
 * src/engine/detect.ts on its own: the decisions the front ends take from a connection's first
 * bytes, without a socket. Every oracle is a literal: bytes written out by hand below (magics from
 * Bitcoin Core's chainparams, the v1 header layout of BIP 324's "v1 prefix" and Core's
 * CMessageHeader, a VERSION payload's addr_recv at offset 28), never built with the code under test.
 */
import assert from 'node:assert/strict';

import { MAX_LEGACY_VERSION, checkLegacyHeader, classifyClientStream, classifyFirstBytes, legacyNetwork, versionDestination } from '../../src/engine/detect.js';
import { type ErrorCode, ProxyError } from '../../src/errors.js';
import { type Network } from '../../src/networks.js';

/** Hex with optional spaces to bytes. */
function h(hex: string): Buffer {
  return Buffer.from(hex.replace(/\s+/g, ''), 'hex');
}

// Magics in wire order (Core chainparams pchMessageStart).
const MAGIC_MAIN = 'f9 be b4 d9';
const MAGIC_TESTNET3 = '0b 11 09 07';
const MAGIC_TESTNET4 = '1c 16 3f 28';
const MAGIC_SIGNET = '0a 03 cf 40';
const MAGIC_REGTEST = 'fa bf b5 da';

/** The 12-byte command field "version" || 5 NULs. */
const VERSION_FIELD = '76 65 72 73 69 6f 6e 00 00 00 00 00';

/** Networks the way the configuration hands them to the front ends (literal values, not the table). */
const MAIN: Network = { name: 'main', magic: h(MAGIC_MAIN), port: 8333 };
const REGTEST: Network = { name: 'regtest', magic: h(MAGIC_REGTEST), port: 18444 };
/** A custom signet whose magic starts with the SOCKS5 version byte (BIP325 magics are hash output). */
const SIGNET_05: Network = { name: 'custom-05aabbcc', magic: h('05 aa bb cc'), port: 38333 };
/** ... and one that starts with the SOCKS4 version byte. */
const SIGNET_04: Network = { name: 'custom-04ddeeff', magic: h('04 dd ee ff'), port: 38333 };

function codeOf(fn: () => unknown): ErrorCode | 'no error' {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProxyError, `expected a ProxyError, got ${String(err)}`);
    return err.code;
  }
  return 'no error';
}

describe('engine/detect: front end from the first bytes (classifyFirstBytes)', () => {
  it('nothing yet is "more"', () => {
    assert.equal(classifyFirstBytes(h('')), 'more');
    assert.equal(classifyFirstBytes(h(''), MAIN), 'more');
  });

  it('0x05 is SOCKS5 and 0x04 is SOCKS4, from the first byte alone', () => {
    assert.equal(classifyFirstBytes(h('05')), 'socks5');
    assert.equal(classifyFirstBytes(h('05 01 00')), 'socks5');
    assert.equal(classifyFirstBytes(h('04')), 'socks4');
    assert.equal(classifyFirstBytes(h('04 01 20 8d 01 02 03 04 00')), 'socks4');
    assert.equal(classifyFirstBytes(h('05 02 00 02'), MAIN), 'socks5');
    assert.equal(classifyFirstBytes(h('04 01'), MAIN), 'socks4');
  });

  it('every known magic is a legacy client once its 4 bytes are in, whatever network is configured', () => {
    for (const magic of [MAGIC_MAIN, MAGIC_TESTNET3, MAGIC_TESTNET4, MAGIC_SIGNET, MAGIC_REGTEST]) {
      assert.equal(classifyFirstBytes(h(magic)), 'legacy', magic);
      assert.equal(classifyFirstBytes(h(magic + VERSION_FIELD)), 'legacy', magic);
      // Another network's magic is still the legacy front end's to refuse (with a clear code).
      assert.equal(classifyFirstBytes(h(magic), REGTEST), 'legacy', `${magic} with regtest configured`);
    }
  });

  it('1 to 3 bytes of a known magic are "more"; a byte off the magic is unknown', () => {
    assert.equal(classifyFirstBytes(h('f9')), 'more');
    assert.equal(classifyFirstBytes(h('f9 be')), 'more');
    assert.equal(classifyFirstBytes(h('f9 be b4')), 'more');
    assert.equal(classifyFirstBytes(h('0b 11 09')), 'more');
    assert.equal(classifyFirstBytes(h('f9 be b4 d8')), 'unknown');
    assert.equal(classifyFirstBytes(h('f9 00')), 'unknown');
    assert.equal(classifyFirstBytes(h('fa bf b5 d9 76')), 'unknown');
  });

  it('anything else is unknown: HTTP, TLS, a NUL, a v2 key', () => {
    assert.equal(classifyFirstBytes(h('47 45 54 20 2f')), 'unknown'); // "GET /"
    assert.equal(classifyFirstBytes(h('16 03 01 02 00')), 'unknown'); // TLS ClientHello
    assert.equal(classifyFirstBytes(h('00')), 'unknown');
    assert.equal(classifyFirstBytes(h('06')), 'unknown');
    assert.equal(classifyFirstBytes(h('03')), 'unknown');
    assert.equal(classifyFirstBytes(h('ff ff ff ff')), 'unknown');
  });

  it('a configured custom magic is compared before the SOCKS version bytes', () => {
    assert.equal(classifyFirstBytes(h('05'), SIGNET_05), 'more');
    assert.equal(classifyFirstBytes(h('05 aa bb'), SIGNET_05), 'more');
    assert.equal(classifyFirstBytes(h('05 aa bb cc'), SIGNET_05), 'legacy');
    assert.equal(classifyFirstBytes(h('05 aa bb cc' + VERSION_FIELD), SIGNET_05), 'legacy');
    assert.equal(classifyFirstBytes(h('04 dd ee ff'), SIGNET_04), 'legacy');
    // Once a byte leaves the magic, the first byte decides again.
    assert.equal(classifyFirstBytes(h('05 01 00'), SIGNET_05), 'socks5');
    assert.equal(classifyFirstBytes(h('05 aa bb cd'), SIGNET_05), 'socks5');
    assert.equal(classifyFirstBytes(h('04 01'), SIGNET_04), 'socks4');
    // Without that network configured, the same bytes are SOCKS.
    assert.equal(classifyFirstBytes(h('05 aa bb cc')), 'socks5');
    assert.equal(classifyFirstBytes(h('04 dd ee ff')), 'socks4');
  });

  it('an unknown magic is a legacy client only when it is the configured one', () => {
    const custom: Network = { name: 'custom-12345678', magic: h('12 34 56 78'), port: 38333 };
    assert.equal(classifyFirstBytes(h('12 34 56 78')), 'unknown');
    assert.equal(classifyFirstBytes(h('12 34 56 78'), custom), 'legacy');
    assert.equal(classifyFirstBytes(h('12 34'), custom), 'more');
    // The configured network does not hide the known ones.
    assert.equal(classifyFirstBytes(h(MAGIC_MAIN), custom), 'legacy');
  });
});

describe('engine/detect: v1 or v2 after the SOCKS5 reply (classifyClientStream)', () => {
  it('up to 4 bytes decide nothing, whatever they are', () => {
    for (const hex of ['', 'f9', 'f9 be b4 d9', '00 00 00 00', 'de ad be ef']) {
      assert.deepEqual(classifyClientStream(h(hex)), { kind: 'more' }, hex);
      assert.deepEqual(classifyClientStream(h(hex), MAIN), { kind: 'more' }, hex);
    }
  });

  it('a mainnet VERSION prefix is v1 at byte 16, "more" before', () => {
    const prefix = h(MAGIC_MAIN + VERSION_FIELD);
    for (let n = 5; n < 16; n++) assert.deepEqual(classifyClientStream(prefix.subarray(0, n)), { kind: 'more' }, `${n} bytes`);
    const v1 = classifyClientStream(prefix);
    assert.equal(v1.kind, 'v1');
    assert.equal(v1.kind === 'v1' && v1.network.name, 'main');
    assert.equal(v1.kind === 'v1' && v1.unknownMagic, undefined);
    // The rest of the header and the payload change nothing.
    assert.equal(classifyClientStream(Buffer.concat([prefix, h('56 00 00 00 aa bb cc dd')])).kind, 'v1');
  });

  it('each known magic is its network, with or without that network configured', () => {
    const names: [string, string][] = [
      [MAGIC_TESTNET3, 'testnet3'],
      [MAGIC_TESTNET4, 'testnet4'],
      [MAGIC_SIGNET, 'signet'],
      [MAGIC_REGTEST, 'regtest'],
    ];
    for (const [magic, name] of names) {
      const r = classifyClientStream(h(magic + VERSION_FIELD));
      assert.equal(r.kind === 'v1' && r.network.name, name, magic);
    }
    const r = classifyClientStream(h(MAGIC_REGTEST + VERSION_FIELD), REGTEST);
    assert.equal(r.kind === 'v1' && r.network, REGTEST);
  });

  it('v2 at the first byte of 4..15 that is not "version" || NULs, however few bytes are in', () => {
    // A v2 initiator's first bytes are its ElligatorSwift key: random.
    assert.deepEqual(classifyClientStream(h('f9 be b4 d9 77')), { kind: 'v2' });
    assert.deepEqual(classifyClientStream(h('f9 be b4 d9 76 65 72 73 69 6f 6f')), { kind: 'v2' });
    assert.deepEqual(classifyClientStream(h('12 34 56 78 9a bc de f0 11 22 33 44 55 66 77 88')), { kind: 'v2' });
    // The last NUL differs: byte 15.
    assert.deepEqual(classifyClientStream(h(MAGIC_MAIN + '76 65 72 73 69 6f 6e 00 00 00 00 01')), { kind: 'v2' });
    // "version1" is not "version".
    assert.deepEqual(classifyClientStream(h(MAGIC_MAIN + '76 65 72 73 69 6f 6e 31 00 00 00 00')), { kind: 'v2' });
    // A configured network does not change this (a v2 key is never compared with the magic).
    assert.deepEqual(classifyClientStream(h('00 11 22 33 44'), MAIN), { kind: 'v2' });
  });

  it('an unknown magic with "version" is v1 of a custom network named after it, never v2', () => {
    const r = classifyClientStream(h('05 aa bb cc' + VERSION_FIELD));
    assert.equal(r.kind, 'v1');
    if (r.kind !== 'v1') return;
    assert.equal(r.unknownMagic, true);
    assert.equal(r.network.name, 'custom-05aabbcc');
    assert.deepEqual(r.network.magic, h('05 aa bb cc'));
    assert.equal(r.network.port, 38333);
  });

  it('with a network configured, a VERSION for any other magic is ERR_V1_WRONG_NETWORK', () => {
    assert.equal(
      codeOf(() => classifyClientStream(h(MAGIC_TESTNET3 + VERSION_FIELD), MAIN)),
      'ERR_V1_WRONG_NETWORK',
    );
    assert.equal(
      codeOf(() => classifyClientStream(h('05 aa bb cc' + VERSION_FIELD), MAIN)),
      'ERR_V1_WRONG_NETWORK',
    );
    assert.equal(
      codeOf(() => classifyClientStream(h(MAGIC_MAIN + VERSION_FIELD), SIGNET_05)),
      'ERR_V1_WRONG_NETWORK',
    );
    // Its own magic is fine, a custom one included.
    const r = classifyClientStream(h('05 aa bb cc' + VERSION_FIELD), SIGNET_05);
    assert.equal(r.kind === 'v1' && r.network, SIGNET_05);
    assert.equal(r.kind === 'v1' && r.unknownMagic, undefined);
  });
});

/** A 24-byte v1 header: magic, 12-byte command field, length (little-endian hex), checksum. */
function header(magic: string, command: string, lengthLE: string): Buffer {
  return h(magic + command + lengthLE + '5d f6 e0 e2');
}

describe("engine/detect: the legacy front end's first header (checkLegacyHeader)", () => {
  it('MAX_LEGACY_VERSION is 4096 bytes', () => {
    assert.equal(MAX_LEGACY_VERSION, 4096);
  });

  it('a VERSION of 0 to 4096 bytes passes', () => {
    for (const len of ['00 00 00 00', '66 00 00 00', 'ff 0f 00 00', '00 10 00 00']) {
      assert.equal(
        codeOf(() => checkLegacyHeader(header(MAGIC_MAIN, VERSION_FIELD, len))),
        'no error',
        len,
      );
    }
  });

  it('a VERSION announcing 4097 bytes or more is ERR_V1_TOO_LARGE (the length is little-endian)', () => {
    for (const len of ['01 10 00 00', '00 09 3d 00', '01 09 3d 00', 'ff ff ff ff']) {
      assert.equal(
        codeOf(() => checkLegacyHeader(header(MAGIC_MAIN, VERSION_FIELD, len))),
        'ERR_V1_TOO_LARGE',
        len,
      );
    }
  });

  it('a printable command other than "version" is ERR_V1_NOT_VERSION', () => {
    const commands = [
      '76 65 72 61 63 6b 00 00 00 00 00 00', // verack
      '70 69 6e 67 00 00 00 00 00 00 00 00', // ping
      '76 65 72 73 69 6f 00 00 00 00 00 00', // versio
      '76 65 72 73 69 6f 6e 31 00 00 00 00', // version1
      '56 45 52 53 49 4f 4e 00 00 00 00 00', // VERSION
      '00 00 00 00 00 00 00 00 00 00 00 00', // empty
    ];
    for (const c of commands)
      assert.equal(
        codeOf(() => checkLegacyHeader(header(MAGIC_MAIN, c, '66 00 00 00'))),
        'ERR_V1_NOT_VERSION',
        c,
      );
  });

  it('a command field that is not printable ASCII padded with NULs is ERR_V1_BAD_COMMAND, even with a huge length', () => {
    const fields = [
      '76 65 72 73 69 6f 6e 00 00 00 00 01', // a byte after the NULs
      '76 65 72 73 69 6f 6e 00 76 00 00 00',
      '76 65 72 73 69 6f 6e 0a 00 00 00 00', // a control character
      '76 65 72 73 69 6f 6e 7f 00 00 00 00', // DEL
      '76 65 72 73 69 6f 6e 80 00 00 00 00', // not ASCII
      '20 20 20 20 20 20 20 20 20 20 20 1f',
    ];
    for (const f of fields) {
      assert.equal(
        codeOf(() => checkLegacyHeader(header(MAGIC_MAIN, f, '66 00 00 00'))),
        'ERR_V1_BAD_COMMAND',
        f,
      );
      assert.equal(
        codeOf(() => checkLegacyHeader(header(MAGIC_MAIN, f, 'ff ff ff ff'))),
        'ERR_V1_BAD_COMMAND',
        f,
      );
    }
  });

  it('a non-VERSION that also announces too much is ERR_V1_NOT_VERSION: the command is judged first', () => {
    assert.equal(
      codeOf(() => checkLegacyHeader(header(MAGIC_MAIN, '70 69 6e 67 00 00 00 00 00 00 00 00', 'ff ff ff ff'))),
      'ERR_V1_NOT_VERSION',
    );
  });

  it('the magic is not its business (legacyNetwork judges it)', () => {
    assert.equal(
      codeOf(() => checkLegacyHeader(header('de ad be ef', VERSION_FIELD, '66 00 00 00'))),
      'no error',
    );
  });
});

describe("engine/detect: the legacy client's network (legacyNetwork)", () => {
  it('without a configured network, each known magic is its network and an unknown one is ERR_UNKNOWN_PROTOCOL', () => {
    assert.equal(legacyNetwork(h(MAGIC_MAIN)).name, 'main');
    assert.equal(legacyNetwork(h(MAGIC_TESTNET3)).name, 'testnet3');
    assert.equal(legacyNetwork(h(MAGIC_TESTNET4)).name, 'testnet4');
    assert.equal(legacyNetwork(h(MAGIC_SIGNET)).name, 'signet');
    assert.equal(legacyNetwork(h(MAGIC_REGTEST)).name, 'regtest');
    assert.equal(
      codeOf(() => legacyNetwork(h('05 aa bb cc'))),
      'ERR_UNKNOWN_PROTOCOL',
    );
    assert.equal(
      codeOf(() => legacyNetwork(h('f9 be b4 d8'))),
      'ERR_UNKNOWN_PROTOCOL',
    );
  });

  it('with one configured: its magic (a custom one too) is it, another known one is ERR_V1_WRONG_NETWORK', () => {
    assert.equal(legacyNetwork(h(MAGIC_REGTEST), REGTEST), REGTEST);
    assert.equal(legacyNetwork(h('05 aa bb cc'), SIGNET_05), SIGNET_05);
    assert.equal(
      codeOf(() => legacyNetwork(h(MAGIC_MAIN), REGTEST)),
      'ERR_V1_WRONG_NETWORK',
    );
    assert.equal(
      codeOf(() => legacyNetwork(h(MAGIC_MAIN), SIGNET_05)),
      'ERR_V1_WRONG_NETWORK',
    );
    assert.equal(
      codeOf(() => legacyNetwork(h('12 34 56 78'), REGTEST)),
      'ERR_UNKNOWN_PROTOCOL',
    );
  });
});

/**
 * A VERSION payload, by hand: version 70016, services, time, then addr_recv (services, 16-byte IP,
 * big-endian port), then `tail` (the rest of a real VERSION; the parser reads no further than the port).
 */
function versionWith(ip16: string, portBE: string, tail = 'ff'.repeat(40)): Buffer {
  return h('80 11 01 00' + '09 04 00 00 00 00 00 00' + '00 e1 f5 05 00 00 00 00' + '01 00 00 00 00 00 00 00' + ip16 + portBE + tail);
}
const MAPPED = '00 00 00 00 00 00 00 00 00 00 ff ff';

describe("engine/detect: the legacy client's destination (versionDestination)", () => {
  it('addr_recv IPv4-mapped is the dotted IPv4 address, port big-endian', () => {
    assert.deepEqual(versionDestination(versionWith(MAPPED + '01 02 03 04', '20 8d')), { host: '1.2.3.4', port: 8333, kind: 'ipv4' });
    assert.deepEqual(versionDestination(versionWith(MAPPED + '7f 00 00 01', '48 2c')), { host: '127.0.0.1', port: 18476, kind: 'ipv4' });
    assert.deepEqual(versionDestination(versionWith(MAPPED + 'c0 a8 01 fe', 'ff ff')), { host: '192.168.1.254', port: 65535, kind: 'ipv4' });
  });

  it('addr_recv IPv6 is the compressed RFC 5952 text', () => {
    assert.deepEqual(versionDestination(versionWith('20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01', '20 8d')), {
      host: '2001:db8::1',
      port: 8333,
      kind: 'ipv6',
    });
    assert.deepEqual(versionDestination(versionWith('00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01', '00 01')), { host: '::1', port: 1, kind: 'ipv6' });
    // An OnionCat (Tor v2 era) address is only an IPv6 address: addr_recv cannot name an onion.
    assert.deepEqual(versionDestination(versionWith('fd 87 d8 7e eb 43 01 02 03 04 05 06 07 08 09 0a', '20 8d')), {
      host: 'fd87:d87e:eb43:102:304:506:708:90a',
      port: 8333,
      kind: 'ipv6',
    });
  });

  it('46 bytes (through the port) are enough; 45 or fewer are ERR_LEGACY_BAD_ADDR', () => {
    const full = versionWith(MAPPED + '01 02 03 04', '20 8d', '');
    assert.equal(full.length, 46);
    assert.deepEqual(versionDestination(full), { host: '1.2.3.4', port: 8333, kind: 'ipv4' });
    for (const n of [45, 44, 28, 0])
      assert.equal(
        codeOf(() => versionDestination(full.subarray(0, n))),
        'ERR_LEGACY_BAD_ADDR',
        `${n} bytes`,
      );
  });

  it('an unset address (0.0.0.0 mapped, or all zero) or port 0 is ERR_LEGACY_BAD_ADDR', () => {
    assert.equal(
      codeOf(() => versionDestination(versionWith(MAPPED + '00 00 00 00', '20 8d'))),
      'ERR_LEGACY_BAD_ADDR',
    );
    assert.equal(
      codeOf(() => versionDestination(versionWith('00'.repeat(16), '20 8d'))),
      'ERR_LEGACY_BAD_ADDR',
    );
    assert.equal(
      codeOf(() => versionDestination(versionWith(MAPPED + '01 02 03 04', '00 00'))),
      'ERR_LEGACY_BAD_ADDR',
    );
    assert.equal(
      codeOf(() => versionDestination(versionWith('20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01', '00 00'))),
      'ERR_LEGACY_BAD_ADDR',
    );
    // Only the port's high byte set, or only its low byte: both are real ports.
    assert.equal(versionDestination(versionWith(MAPPED + '01 02 03 04', '01 00')).port, 256);
    assert.equal(versionDestination(versionWith(MAPPED + '01 02 03 04', '00 01')).port, 1);
  });

  it('reads addr_recv from offset 28, not the services before it or the bytes after it', () => {
    // addr_recv's services (offset 20..27) full of ones, addr_from-like bytes after the port.
    const p = h(
      '80 11 01 00' +
        '09 04 00 00 00 00 00 00' +
        '00 e1 f5 05 00 00 00 00' +
        'ff ff ff ff ff ff ff ff' +
        MAPPED +
        '0a 0b 0c 0d' +
        '20 8d' +
        '00 00 00 00 00 00 00 00' +
        MAPPED +
        '05 06 07 08' +
        '47 9d',
    );
    assert.deepEqual(versionDestination(p), { host: '10.11.12.13', port: 8333, kind: 'ipv4' });
  });
});
