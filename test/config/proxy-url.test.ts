import assert from 'node:assert/strict';

import { parseProxyUrl, redactProxySecret, redactProxyUrl } from '../../src/config/proxy-url.js';
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
      ['socks5://@127.0.0.1:9050', { host: '127.0.0.1', port: 9050, username: '', password: '' }],
      ['socks5://:pw@127.0.0.1:9050', { host: '127.0.0.1', port: 9050, username: '', password: 'pw' }],
      // "://" inside a password of a URL written without a scheme is not a scheme
      ['user:p://w@127.0.0.1:9050', { host: '127.0.0.1', port: 9050, username: 'user', password: 'p://w' }],
      ['socks5://127.0.0.1:1', { host: '127.0.0.1', port: 1 }],
      ['socks5://127.0.0.1:65535', { host: '127.0.0.1', port: 65535 }],
      [`socks5://${'u'.repeat(255)}:p@127.0.0.1:9050`, { host: '127.0.0.1', port: 9050, username: 'u'.repeat(255), password: 'p' }],
    ];
    for (const [url, endpoint] of good) {
      it(`parses ${url}`, () => {
        assert.deepEqual(parseProxyUrl(url), endpoint);
      });
    }

    // Each bad URL is refused with ERR_CONFIG and its own reason (the text after the quoted URL),
    // so a check that is skipped cannot hide behind a later check that also throws ERR_CONFIG.
    const bad: [string, string, string][] = [
      ['', 'an empty string', 'empty'],
      ['http://127.0.0.1:8080', 'an HTTP proxy', 'unsupported scheme "http://" (only socks5:// and socks5h://)'],
      ['socks4://127.0.0.1:1080', 'SOCKS4', 'unsupported scheme "socks4://" (only socks5:// and socks5h://)'],
      ['socks5://127.0.0.1', 'a missing port', 'missing port (Tor listens on 9050)'],
      ['socks5://127.0.0.1:', 'an empty port', 'missing port (Tor listens on 9050)'],
      ['socks5://127.0.0.1:0', 'port 0', 'port "0" is not 1-65535'],
      ['socks5://127.0.0.1:65536', 'a port above 65535', 'port "65536" is not 1-65535'],
      ['socks5://127.0.0.1:90x', 'a non-numeric port', 'port "***" is not 1-65535'],
      ['socks5://127.0.0.1:+9050', 'a port with a sign', 'port "***" is not 1-65535'],
      ['socks5://127.0.0.1:x1', 'a port with a leading letter', 'port "***" is not 1-65535'],
      ['socks5://:9050', 'a missing host', 'missing host'],
      ['socks5://::1:9050', 'an unbracketed IPv6', 'an IPv6 proxy address must be in brackets: socks5://[::1]:9050'],
      ['socks5://[::1:9050', 'an unclosed bracket', 'unclosed "[" around the IPv6 address'],
      ['socks5://[1.2.3.4]:9050', 'brackets around IPv4', 'brackets are only for an IPv6 address, not "1.2.3.4"'],
      ['socks5://[::1]x:9050', 'junk after the bracket', 'unexpected "x:9050" after the IPv6 address'],
      ['socks5://127.0.0.1:9050/tor', 'a path', 'a proxy URL has no path, query or fragment'],
      ['socks5://127.0.0.1:9050?x=1', 'a query', 'a proxy URL has no path, query or fragment'],
      ['socks5://bad_host!:9050', 'a malformed host', 'bad destination host "bad_host!"'],
      [`socks5://${ONION}:9050`, 'an onion proxy address', 'the proxy itself cannot be an onion address'],
      ['socks5://u:%zz@127.0.0.1:9050', 'a malformed %-escape', 'password has a malformed %-escape'],
      [`socks5://${'u'.repeat(256)}:p@127.0.0.1:9050`, 'a username over 255 bytes', 'username is longer than 255 bytes'],
    ];
    for (const [url, why, reason] of bad) {
      it(`rejects ${why} with ERR_CONFIG: ${reason}`, () => {
        assert.throws(
          () => parseProxyUrl(url),
          (err: unknown) => {
            assert.ok(isProxyError(err, 'ERR_CONFIG'), String(err));
            assert.ok(err.message.includes(`: ${reason}`), err.message);
            return true;
          },
        );
      });
    }

    it('refuses a value that is not a string as empty (ERR_CONFIG, not a TypeError)', () => {
      assert.throws(
        () => parseProxyUrl(undefined as unknown as string),
        (err: unknown) => isProxyError(err, 'ERR_CONFIG') && err.message.endsWith(': empty'),
      );
    });

    it('never repeats the password in the error message', () => {
      assert.throws(
        () => parseProxyUrl('socks5://alice:hunter2@127.0.0.1'),
        (err: unknown) => isProxyError(err, 'ERR_CONFIG') && !err.message.includes('hunter2') && err.message.includes('missing port'),
      );
    });
  });
  describe('redactProxyUrl', () => {
    const cases: [string, string, string][] = [
      ['socks5://alice:hunter2@127.0.0.1:9050', 'socks5://alice:***@127.0.0.1:9050', 'the password between "user:" and "@"'],
      ['socks5://alice:p@ss@[::1]:9050', 'socks5://alice:***@[::1]:9050', 'up to the last "@"'],
      ['alice:hunter2@127.0.0.1:9050', 'alice:***@127.0.0.1:9050', 'a URL without a scheme'],
      ['user:pa://ss@127.0.0.1:9050', 'user:***@127.0.0.1:9050', 'a "://" inside the password of a URL without a scheme'],
      [':hunter2@127.0.0.1:9050', ':***@127.0.0.1:9050', 'an empty user name without a scheme'],
      ['socks5://alice:hunter2', 'socks5://alice:***', 'a URL cut short before the "@"'],
      ['socks5://127.0.0.1:9050', 'socks5://127.0.0.1:9050', 'nothing in a URL without credentials'],
      ['socks5://127.0.0.1:9050/', 'socks5://127.0.0.1:9050/', 'nothing before a trailing "/"'],
      ['socks5://127.0.0.1:', 'socks5://127.0.0.1:', 'nothing after an empty port'],
      ['socks5://alice@127.0.0.1:9050', 'socks5://alice@127.0.0.1:9050', 'nothing when the only colon is after the "@"'],
      ['socks5://alice@127.0.0.1', 'socks5://alice@127.0.0.1', 'nothing when there is no colon after the scheme'],
      ['@127.0.0.1:x', '@127.0.0.1:x', 'nothing when an "@" comes before the only colon'],
    ];
    for (const [url, redacted, why] of cases) {
      it(`redacts ${why}`, () => {
        assert.equal(redactProxyUrl(url), redacted);
      });
    }
  });

  describe('redactProxySecret', () => {
    it('replaces every raw occurrence of the password', () => {
      assert.equal(redactProxySecret('hunter2 and hunter2', 'socks5://alice:hunter2@127.0.0.1:9050'), '*** and ***');
    });

    it('replaces the password both raw and %-decoded', () => {
      assert.equal(redactProxySecret('raw p%40ss, decoded p@ss', 'socks5://alice:p%40ss@127.0.0.1:9050'), 'raw ***, decoded ***');
    });

    it('keeps the raw form when the password is not valid %-encoding', () => {
      assert.equal(redactProxySecret('bad %zz here', 'socks5://alice:%zz@127.0.0.1:9050'), 'bad *** here');
    });

    it('leaves the message alone when the password is empty or absent', () => {
      assert.equal(redactProxySecret('alice said hi', 'socks5://alice:@127.0.0.1:9050'), 'alice said hi');
      assert.equal(redactProxySecret('alice said hi', 'socks5://alice@127.0.0.1:9050'), 'alice said hi');
    });
  });
});
