import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';

import fc from 'fast-check';

import { isProxyError } from '../src/errors.js';
import {
  canonicalIP,
  canonicalIPv6,
  classifyHost,
  formatHostPort,
  formatIP,
  formatIPv6,
  isLoopback,
  isOwnAddress,
  makeDestination,
  parseHostPort,
  sourceKey,
  splitHostPort,
  type HostKind,
  type HostPortSplit,
} from '../src/address.js';

/** torproject.org's v3 onion service: a real, checksummed v3 address. */
const ONION = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion';

/** "fe80::1" -> "fe80:0000:0000:0000:0000:0000:0000:0001" (no embedded IPv4). */
function expandIPv6(address: string): string {
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

function assertBadAddress(fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => isProxyError(err, 'ERR_SOCKS_BAD_ADDRESS'), what);
}

/** The message of the ProxyError with this code that fn throws (fails the test when it throws nothing or something else). */
function messageOf(fn: () => unknown, code: 'ERR_SOCKS_BAD_ADDRESS' | 'ERR_CONFIG'): string {
  try {
    fn();
  } catch (err) {
    if (isProxyError(err, code)) return err.message;
    throw err;
  }
  assert.fail(`no ${code}`);
}

describe('address', () => {
  describe('classifyHost: what Bitcoin Core puts in an ATYP 03 DOMAINNAME', () => {
    const table: [string, HostKind][] = [
      ['1.2.3.4', 'ipv4'],
      ['0.0.0.0', 'ipv4'],
      ['255.255.255.255', 'ipv4'],
      ['127.0.0.1', 'ipv4'],
      ['2001:db8::1', 'ipv6'],
      ['::1', 'ipv6'],
      ['::', 'ipv6'],
      ['fc00:1234::5', 'ipv6'], // CJDNS, sent by Core as IPv6 text
      ['2001:DB8::A', 'ipv6'],
      ['::ffff:1.2.3.4', 'ipv6'],
      [ONION, 'onion'],
      [ONION.toUpperCase().replace('.ONION', '.onion'), 'onion'],
      [ONION.toUpperCase(), 'onion'], // an upper-case TLD must not slip through as a name to resolve
      ['seed.bitcoin.sipa.be', 'name'],
      ['localhost', 'name'],
      ['dnsseed.bluematt.me', 'name'],
      ['_srv.example-host.org', 'name'],
      ['x1.example.com', 'name'],
      ['a'.repeat(63) + '.com', 'name'],
    ];
    for (const [host, kind] of table) {
      it(`classifies ${host.length > 40 ? host.slice(0, 37) + '...' : host} as ${kind}`, () => {
        assert.equal(classifyHost(host), kind);
      });
    }

    const rejects: [string, string][] = [
      ['', 'empty host'],
      ['fe80::1%eth0', 'an IPv6 %scope suffix (Core appends it when scope_id != 0)'],
      ['1.2.3.4%1', 'a % anywhere'],
      ['exa mple.com', 'a space'],
      ['example.com\0', 'a NUL'],
      ['example\n.com', 'a control character'],
      ['bücher.de', 'non-ASCII'],
      ['[2001:db8::1]', 'brackets (Core never sends them; makeDestination strips them)'],
      ['2001:db8:::1', 'a malformed IPv6'],
      ['1.2.3.4:8333', 'a port inside the host'],
      ['example..com', 'an empty label'],
      ['.example.com', 'a leading dot'],
      ['example.com.', 'a trailing dot (would hide a .onion. suffix)'],
      ['exa$mple.com', 'a character outside letters, digits, - and _'],
      ['a'.repeat(64) + '.com', 'a label over 63 characters'],
      [('a'.repeat(63) + '.').repeat(4) + 'com', 'a name over 255 characters'],
      ['1.2.3', 'a short-form IPv4 that getaddrinfo would expand'],
      ['127.1', 'another short-form IPv4'],
      ['0x7f.0.0.1', 'a hex IPv4'],
      ['01.2.3.4', 'a leading-zero IPv4 (octal to inet_aton)'],
      ['256.1.1.1', 'an out-of-range dotted quad'],
      ['expyuzz4wqqyqhjn.onion', 'a v2 onion (16 chars, dead since Tor 0.4.6)'],
      ['abc.onion', 'a short onion label'],
      ['www.' + ONION, 'a subdomain of an onion'],
      [ONION.slice(0, 10) + '1' + ONION.slice(11), 'an onion with a non-base32 digit'],
      ['onion', 'a bare "onion"'],
      ['something.i2p', 'an I2P name (SAM only, never SOCKS)'],
    ];
    for (const [host, why] of rejects) {
      it(`rejects ${why} with ERR_SOCKS_BAD_ADDRESS`, () => {
        assertBadAddress(() => classifyHost(host), JSON.stringify(host));
      });
    }

    it('says why it refuses a host, so the log names the rule that was broken', () => {
      const reasons: [string, string][] = [
        ['', 'bad destination host "": empty'],
        ['exa mple.com', 'bad destination host "exa mple.com": control, space or non-ASCII character'],
        ['bücher.de', 'bad destination host "bücher.de": control, space or non-ASCII character'],
        ['example..com', 'bad destination host "example..com": empty label'],
        ['exa$mple.com', `bad destination host "exa$mple.com": label "exa$mple" is not letters, digits, '-' or '_' (max 63)`],
        ['expyuzz4wqqyqhjn.onion', 'bad destination host "expyuzz4wqqyqhjn.onion": v2 onion addresses no longer work; use the v3 (56 character) address'],
        ['abc.onion', 'bad destination host "abc.onion": not a v3 onion address (56 base32 characters before .onion)'],
        ['expyuzz4wqqyqhjn.x.onion', 'bad destination host "expyuzz4wqqyqhjn.x.onion": not a v3 onion address (56 base32 characters before .onion)'],
      ];
      for (const [host, message] of reasons)
        assert.equal(
          messageOf(() => classifyHost(host), 'ERR_SOCKS_BAD_ADDRESS'),
          message,
          JSON.stringify(host),
        );
    });

    it('quotes only the first 32 characters of an over-long host', () => {
      const host = 'a'.repeat(300);
      assert.equal(
        messageOf(() => classifyHost(host), 'ERR_SOCKS_BAD_ADDRESS'),
        `bad destination host "${'a'.repeat(32)}...": longer than 255 bytes`,
      );
    });

    it('refuses a v3 onion label followed by another label before .onion', () => {
      assertBadAddress(() => classifyHost(ONION.replace('.onion', '.x.onion')), 'v3 label, then x.onion');
    });

    it('refuses a host that is not a string with ERR_SOCKS_BAD_ADDRESS, not a TypeError', () => {
      for (const host of [undefined, null, 1234]) {
        assertBadAddress(() => classifyHost(host as unknown as string), String(host));
        assertBadAddress(() => makeDestination(host as unknown as string, 8333), String(host));
      }
    });
  });

  describe('makeDestination', () => {
    it('returns host, port and kind for each kind', () => {
      assert.deepEqual(makeDestination('1.2.3.4', 8333), { host: '1.2.3.4', port: 8333, kind: 'ipv4' });
      assert.deepEqual(makeDestination('2001:db8::1', 8333), { host: '2001:db8::1', port: 8333, kind: 'ipv6' });
      assert.deepEqual(makeDestination(ONION, 8333), { host: ONION, port: 8333, kind: 'onion' });
      assert.deepEqual(makeDestination('seed.bitcoin.sipa.be', 8333), { host: 'seed.bitcoin.sipa.be', port: 8333, kind: 'name' });
    });

    it('strips brackets around an IPv6 literal', () => {
      assert.deepEqual(makeDestination('[2001:db8::1]', 18444), { host: '2001:db8::1', port: 18444, kind: 'ipv6' });
    });

    it('rejects brackets around anything but an IPv6 literal', () => {
      assertBadAddress(() => makeDestination('[1.2.3.4]', 8333), 'bracketed IPv4');
      assertBadAddress(() => makeDestination('[example.com]', 8333), 'bracketed name');
      assertBadAddress(() => makeDestination('[fe80::1%eth0]', 8333), 'bracketed scoped IPv6');
    });

    it('strips only a pair of brackets: one bracket alone leaves the host as it is (and refused)', () => {
      for (const host of ['a::1]', 'x2001:db8::1]', '[::12', '[2001:db8::1x']) assertBadAddress(() => makeDestination(host, 8333), host);
    });

    it('rejects port 0 and ports outside 1-65535', () => {
      for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
        assertBadAddress(() => makeDestination('1.2.3.4', port), `port ${port}`);
      }
    });

    it('accepts ports 1 and 65535', () => {
      assert.equal(makeDestination('1.2.3.4', 1).port, 1);
      assert.equal(makeDestination('1.2.3.4', 65535).port, 65535);
    });

    it('rejects a bad host the same way classifyHost does', () => {
      assertBadAddress(() => makeDestination('fe80::1%eth0', 8333), 'scope');
    });
  });

  describe('formatHostPort', () => {
    it('writes IPv4 and names as host:port', () => {
      assert.equal(formatHostPort({ host: '1.2.3.4', port: 8333 }), '1.2.3.4:8333');
      assert.equal(formatHostPort({ host: 'example.com', port: 8333 }), 'example.com:8333');
      assert.equal(formatHostPort({ host: ONION, port: 8333 }), `${ONION}:8333`);
    });

    it('brackets IPv6 exactly once', () => {
      assert.equal(formatHostPort({ host: '2001:db8::1', port: 8333 }), '[2001:db8::1]:8333');
      assert.equal(formatHostPort({ host: '[2001:db8::1]', port: 8333 }), '[2001:db8::1]:8333');
    });
  });

  describe('splitHostPort: the one splitter behind parseHostPort, parseProxyUrl and the metrics Host check', () => {
    const table: [string, HostPortSplit][] = [
      ['127.0.0.1:1324', { host: '127.0.0.1', port: '1324', bracketed: false }],
      ['example.com', { host: 'example.com', port: undefined, bracketed: false }],
      ['example.com:', { host: 'example.com', port: '', bracketed: false }],
      [':1324', { host: '', port: '1324', bracketed: false }],
      ['[::1]:1324', { host: '::1', port: '1324', bracketed: true }],
      ['[2001:db8::1]', { host: '2001:db8::1', port: undefined, bracketed: true }],
      ['[::1]:', { host: '::1', port: '', bracketed: true }],
      ['[::1:1324', { problem: 'unclosed' }],
      ['[1.2.3.4]:1324', { problem: 'not-ipv6', host: '1.2.3.4' }],
      ['[::1]x:1324', { problem: 'after-bracket', rest: 'x:1324' }],
      ['::1:1324', { problem: 'unbracketed-ipv6' }],
      ['::1', { problem: 'unbracketed-ipv6' }],
    ];
    for (const [text, split] of table) it(`splits ${JSON.stringify(text)}`, () => assert.deepEqual(splitHostPort(text), split));
  });

  describe('parseHostPort', () => {
    it('splits IPv4, [IPv6] and names, without the brackets', () => {
      assert.deepEqual(parseHostPort('127.0.0.1:1324'), { host: '127.0.0.1', port: 1324 });
      assert.deepEqual(parseHostPort('[::1]:1324'), { host: '::1', port: 1324 });
      assert.deepEqual(parseHostPort('[2001:db8::1]:8333'), { host: '2001:db8::1', port: 8333 });
      assert.deepEqual(parseHostPort('localhost:1324'), { host: 'localhost', port: 1324 });
      assert.deepEqual(parseHostPort('seed.bitcoin.sipa.be:8333'), { host: 'seed.bitcoin.sipa.be', port: 8333 });
      assert.deepEqual(parseHostPort('1.2.3.4:65535'), { host: '1.2.3.4', port: 65535 });
    });

    it('uses the default port only when there is none', () => {
      assert.deepEqual(parseHostPort('1.2.3.4', 8333), { host: '1.2.3.4', port: 8333 });
      assert.deepEqual(parseHostPort('1.2.3.4:18444', 8333), { host: '1.2.3.4', port: 18444 });
      assert.throws(
        () => parseHostPort('1.2.3.4'),
        (e: unknown) => isProxyError(e, 'ERR_CONFIG') && /no port/.test(e.message),
      );
    });

    it('refuses a bare IPv6 address even with a default port, as "::1:1324" is ambiguous', () => {
      assert.throws(
        () => parseHostPort('::1', 1324),
        (e: unknown) => isProxyError(e, 'ERR_CONFIG') && /brackets/.test(e.message),
      );
      assert.throws(
        () => parseHostPort('2001:db8::1:8333'),
        (e: unknown) => isProxyError(e, 'ERR_CONFIG'),
      );
    });

    it("shows the bracketed form with the default port, or PORT when there is none (not the proxy's own 1324)", () => {
      const message = (text: string, defaultPort?: number): string => {
        try {
          parseHostPort(text, defaultPort);
        } catch (e) {
          if (isProxyError(e, 'ERR_CONFIG')) return e.message;
        }
        return 'no ERR_CONFIG';
      };
      assert.match(message('::1:9324'), /e\.g\. \[::1\]:PORT$/);
      assert.match(message('::1:8333', 8333), /e\.g\. \[::1\]:8333$/);
    });

    it('names what is wrong after the brackets', () => {
      assert.equal(
        messageOf(() => parseHostPort('[::1]x:1324'), 'ERR_CONFIG'),
        "'[::1]x:1324' is not [IPV6]:PORT",
      );
      assert.equal(
        messageOf(() => parseHostPort('[1.2.3.4]:1324'), 'ERR_CONFIG'),
        "'[1.2.3.4]:1324': '1.2.3.4' is not an IPv6 address",
      );
    });

    it('accepts names that begin or end with a digit, and a name alone with the default port', () => {
      assert.deepEqual(parseHostPort('node1:8333'), { host: 'node1', port: 8333 });
      assert.deepEqual(parseHostPort('1e100.net:443'), { host: '1e100.net', port: 443 });
      assert.deepEqual(parseHostPort('localhost', 1324), { host: 'localhost', port: 1324 });
    });

    it('accepts a 253-character host name and refuses a 254-character one (RFC 1035 §2.3.4 limit)', () => {
      const name = (last: number): string => ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(last)].join('.');
      assert.equal(name(61).length, 253);
      assert.deepEqual(parseHostPort(`${name(61)}:8333`), { host: name(61), port: 8333 });
      assert.equal(name(62).length, 254);
      assert.equal(
        messageOf(() => parseHostPort(`${name(62)}:8333`), 'ERR_CONFIG'),
        `'${name(62)}:8333': '${name(62)}' is not a host name or IP address`,
      );
    });

    it('round-trips through formatHostPort', () => {
      for (const text of ['127.0.0.1:1324', '[::1]:1324', '[2001:db8::1]:0', 'localhost:9']) {
        assert.equal(formatHostPort(parseHostPort(text)), text);
      }
    });
  });

  describe('isLoopback', () => {
    const yes = [
      '127.0.0.1',
      '127.1.2.3',
      '127.255.255.255',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
      '::FFFF:7f00:1',
      '::ffff:127.9.8.7',
      'localhost',
      'LocalHost',
      'localhost.',
    ];
    const no = [
      '0.0.0.0',
      '128.0.0.1',
      '126.255.255.255',
      '10.0.0.1',
      '::',
      '::2',
      '::ffff:128.0.0.1',
      '::ffff:10.0.0.1',
      'fe80::1%lo',
      '1.127.0.0',
      'localhost.example.org',
      'mylocalhost',
      '',
      '127.0.0.1.nip.io',
      'x127.0.0.1]', // one bracket is not a pair
      '[127.0.0.1x',
      '1::ffff:7f00:1', // not IPv4-mapped: 1:0:0:0:0:ffff:7f00:1
      '::ffff:7f00:1:2', // 0:0:0:0:ffff:7f00:1:2, not IPv4-mapped either
    ];
    for (const host of yes) it(`takes ${host} for loopback`, () => assert.equal(isLoopback(host), true));
    for (const host of no) it(`does not take '${host}' for loopback`, () => assert.equal(isLoopback(host), false));
  });
  describe('canonicalIPv6', () => {
    const table: [string, string][] = [
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['2001:0db8::0001', '2001:db8::1'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first one
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longer run
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
      ['::ffff:127.0.0.1', '::ffff:7f00:1'], // embedded IPv4 in hex
    ];
    for (const [text, canonical] of table) it(`writes ${text} as ${canonical}`, () => assert.equal(canonicalIPv6(text), canonical));

    it('has no form for a %zone, an IPv4 address, a name or brackets', () => {
      for (const text of ['fe80::1%eth0', '1.2.3.4', 'example.com', '[::1]', '']) assert.equal(canonicalIPv6(text), undefined, text);
    });

    it('has no form for text the URL parser would clean up or cut short (a tab, a newline, "]" and a path)', () => {
      for (const text of ['::\t1', '::1\n', '::1]:80/[']) assert.equal(canonicalIPv6(text), undefined, JSON.stringify(text));
    });
  });

  describe('formatIPv6: 16 bytes as RFC 5952 text (SOCKS5 ATYP 04, a legacy addr_recv)', () => {
    const table: [string, string][] = [
      ['00000000000000000000000000000001', '::1'],
      ['00000000000000000000000000000000', '::'],
      ['00010000000000000000000000000000', '1::'],
      ['20010db8000000000000000000000001', '2001:db8::1'],
      ['20010db8000000010000000000000001', '2001:db8:0:1::1'], // the longer zero run
      ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'], // equal runs: the first one
      ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
      ['00000000000000000000ffff01020304', '::ffff:102:304'], // IPv4-mapped stays hex
      ['fe800000000000000000000000000001', 'fe80::1'],
      ['ABCD00000000000000000000000000EF', 'abcd::ef'], // lower case
    ];
    for (const [hex, text] of table) it(`writes ${hex} as ${text}`, () => assert.equal(formatIPv6(Buffer.from(hex, 'hex')), text));

    it('agrees with the WHATWG URL parser on any address, zero runs of every length included', () => {
      const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
      fc.assert(
        fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
          const bytes = Buffer.alloc(16);
          groups.forEach((g, i) => bytes.writeUInt16BE(g, 2 * i));
          const full = groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
          assert.equal(formatIPv6(bytes), new URL(`http://[${full}]/`).hostname.slice(1, -1));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('formatIP: 16 bytes as Bitcoin messages carry an IP (addr_recv, addr, addrv2)', () => {
    const table: [string, string][] = [
      ['00000000000000000000ffff01020304', '1.2.3.4'], // IPv4-mapped: dotted
      ['00000000000000000000ffff00000000', '0.0.0.0'],
      ['00000000000000000000000000000000', '::'],
      ['20010db8000000000000000000000001', '2001:db8::1'],
      ['00000000000000000000fffe01020304', '::fffe:102:304'], // one bit off the mapped prefix
      ['00000000000000000000000001020304', '::102:304'], // IPv4-compatible (deprecated): not mapped
      ['fc001234abcdef000000000000000005', 'fc00:1234:abcd:ef00::5'], // CJDNS
    ];
    for (const [hex, text] of table) it(`writes ${hex} as ${text}`, () => assert.equal(formatIP(Buffer.from(hex, 'hex')), text));

    it('reads a view into a larger buffer from its own offset', () => {
      const payload = Buffer.from('aabbcc' + '00000000000000000000ffff0a000001' + 'ddee', 'hex');
      assert.equal(formatIP(payload.subarray(3, 19)), '10.0.0.1');
    });
  });

  describe('canonicalIP', () => {
    const table: [string, string][] = [
      ['1.2.3.4', '1.2.3.4'],
      ['::ffff:127.0.0.1', '127.0.0.1'], // IPv4-mapped: the IPv4 address it maps
      ['::FFFF:7F00:1', '127.0.0.1'],
      ['0:0:0:0:0:ffff:0102:0304', '1.2.3.4'],
      ['2001:DB8::0:1', '2001:db8::1'],
      ['::1', '::1'],
      ['::ffff:1:2:3', '::ffff:1:2:3'], // not IPv4-mapped (0:0:0:0:ffff:1:2:3)
      ['1::ffff:7f00:1', '1::ffff:7f00:1'], // not IPv4-mapped (1:0:0:0:0:ffff:7f00:1)
    ];
    for (const [text, canonical] of table) it(`writes ${text} as ${canonical}`, () => assert.equal(canonicalIP(text), canonical));

    it('has no form for a name, brackets, a %zone or a short IPv4', () => {
      for (const text of ['example.com', '[::1]', 'fe80::1%eth0', '', '1.2.3']) assert.equal(canonicalIP(text), undefined, text);
    });
  });

  describe('isOwnAddress', () => {
    // The operating system's list of this machine's addresses is the oracle.
    const listed = Object.entries(networkInterfaces()).flatMap(([name, list]) => (list ?? []).map((i) => ({ name, address: i.address, family: i.family })));

    it('takes 127.0.0.1 in its IPv4-mapped IPv6 spellings for its own', () => {
      for (const host of ['127.0.0.1', '::ffff:127.0.0.1', '::FFFF:7f00:1', '0:0:0:0:0:ffff:7f00:0001']) assert.equal(isOwnAddress(host), true, host);
    });

    it('takes every interface address for its own, IPv6 also written out in full and in upper case', () => {
      for (const i of listed) {
        assert.equal(isOwnAddress(i.address), true, i.address);
        if (i.family === 'IPv6') assert.equal(isOwnAddress(expandIPv6(i.address).toUpperCase()), true, expandIPv6(i.address));
      }
    });

    it('takes a link-local address with its %zone for its own', function () {
      const linkLocal = listed.filter((i) => i.family === 'IPv6' && i.address.startsWith('fe80:'));
      if (linkLocal.length === 0) this.skip(); // no IPv6 link-local address on this machine
      for (const i of linkLocal) assert.equal(isOwnAddress(`${i.address}%${i.name}`), true, `${i.address}%${i.name}`);
    });

    it('does not take names or other addresses for its own, with or without a %zone, and never throws', () => {
      for (const host of ['localhost', 'example.com', '', '203.0.113.9', '::ffff:203.0.113.9', '2001:db8::9', '2001:db8::9%lo', 'fe80::9:9%nosuch']) {
        if (listed.some((i) => i.address === host.split('%')[0])) continue;
        assert.equal(isOwnAddress(host), false, host);
      }
    });
  });
  describe('sourceKey: what one inbound source is (--max-inbound-per-ip)', () => {
    const table: [string | undefined, string][] = [
      ['1.2.3.4', '1.2.3.4'],
      ['::ffff:1.2.3.4', '1.2.3.4'], // how Node reports an IPv4 peer on a dual-stack listener
      ['::FFFF:1.2.3.4', '1.2.3.4'],
      ['::ffff:10.20.30.40', '10.20.30.40'], // octets of more than one digit
      ['1::ffff:1.2.3.4', '1:0:0:0::/64'], // not IPv4-mapped: the prefix is not all zeros
      ['::ffff:1.2.3.4junk', '::ffff:1.2.3.4junk'], // not an address at all: its own key
      ['2001:db8::1:2:3:4:5', '2001:db8:0:1::/64'], // groups after "::" reach into the /64
      ['::1:2:3:4:5:6', '0:0:1:2::/64'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
      ['2001:db8:1:2::1', '2001:db8:1:2::/64'], // the same /64, other spellings
      ['2001:0DB8:0001:0002:ffff::', '2001:db8:1:2::/64'],
      ['2001:db8::1', '2001:db8:0:0::/64'], // "::" inside the first four groups
      ['::1', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'], // the zone is not part of the block
      ['not an address', 'not an address'],
      [undefined, '?'],
    ];
    for (const [address, key] of table) it(`counts ${String(address)} as ${key}`, () => assert.equal(sourceKey(address), key));
  });
});
