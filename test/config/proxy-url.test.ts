import assert from 'node:assert/strict';

import { parseProxyUrl } from '../../src/config/proxy-url.js';
import { isProxyError } from '../../src/errors.js';
import type { ProxyEndpoint } from '../../src/upstream/dialer.js';

const ONION = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion';

describe('config/proxy-url', () => {
  describe('parseProxyUrl', () => {
    const good: [string, ProxyEndpoint][] = [
      ['socks5://127.0.0.1:9050', { host: '127.0.0.1', port: 9050 }],
      ['socks5h://127.0.0.1:9050', { host: '127.0.0.1', port: 9050 }],
      ['SOCKS5://127.0.0.1:9050/', { host: '127.0.0.1', port: 9050 }],
      ['socks5://[::1]:9050', { host: '::1', port: 9050 }],
      ['socks5://localhost:1080', { host: 'localhost', port: 1080 }],
      ['127.0.0.1:9150', { host: '127.0.0.1', port: 9150 }],
      ['socks5://alice:s3cret@127.0.0.1:9050', { host: '127.0.0.1', port: 9050, username: 'alice', password: 's3cret' }],
      ['socks5://al%40ice:p%3Aw@d@[::1]:9050', { host: '::1', port: 9050, username: 'al@ice', password: 'p:w@d' }],
      ['socks5://alice@127.0.0.1:9050', { host: '127.0.0.1', port: 9050, username: 'alice', password: '' }],
      ['socks5://:@127.0.0.1:9050', { host: '127.0.0.1', port: 9050, username: '', password: '' }],
    ];
    for (const [url, endpoint] of good) {
      it(`parses ${url}`, () => {
        assert.deepEqual(parseProxyUrl(url), endpoint);
      });
    }

    const bad: [string, string][] = [
      ['', 'an empty string'],
      ['http://127.0.0.1:8080', 'an HTTP proxy'],
      ['socks4://127.0.0.1:1080', 'SOCKS4'],
      ['socks5://127.0.0.1', 'a missing port'],
      ['socks5://127.0.0.1:', 'an empty port'],
      ['socks5://127.0.0.1:0', 'port 0'],
      ['socks5://127.0.0.1:65536', 'a port above 65535'],
      ['socks5://127.0.0.1:90x', 'a non-numeric port'],
      ['socks5://:9050', 'a missing host'],
      ['socks5://::1:9050', 'an unbracketed IPv6'],
      ['socks5://[::1:9050', 'an unclosed bracket'],
      ['socks5://[1.2.3.4]:9050', 'brackets around IPv4'],
      ['socks5://[::1]x:9050', 'junk after the bracket'],
      ['socks5://127.0.0.1:9050/tor', 'a path'],
      ['socks5://127.0.0.1:9050?x=1', 'a query'],
      ['socks5://bad_host!:9050', 'a malformed host'],
      [`socks5://${ONION}:9050`, 'an onion proxy address'],
      ['socks5://u:%zz@127.0.0.1:9050', 'a malformed %-escape'],
      [`socks5://${'u'.repeat(256)}:p@127.0.0.1:9050`, 'a username over 255 bytes'],
    ];
    for (const [url, why] of bad) {
      it(`rejects ${why} with ERR_CONFIG`, () => {
        assert.throws(
          () => parseProxyUrl(url),
          (err: unknown) => isProxyError(err, 'ERR_CONFIG'),
        );
      });
    }

    it('never repeats the password in the error message', () => {
      assert.throws(
        () => parseProxyUrl('socks5://alice:hunter2@127.0.0.1'),
        (err: unknown) => isProxyError(err, 'ERR_CONFIG') && !err.message.includes('hunter2') && err.message.includes('missing port'),
      );
    });
  });
});
