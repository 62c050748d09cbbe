import assert from 'node:assert/strict';

import { ProxyError, type ErrorCode } from '../../src/errors.js';
import { MAX_AUTH_LEN, MAX_GREETING_LEN, MAX_REQUEST_LEN, Socks5Negotiation, type Socks5Step } from '../../src/socks5/negotiation.js';
import { REP, SOCKS4_REJECT, repForError, socks5Reply } from '../../src/socks5/reply.js';

const ONION = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion';
/** Credentials the way Core's -proxyrandomize makes them: hex(8 random bytes) + "-" + counter. */
const CORE_CRED = 'a1b2c3d4e5f6a7b8-0';

/** Hex with optional spaces to bytes. */
function h(hex: string): Buffer {
  return Buffer.from(hex.replace(/\s+/g, ''), 'hex');
}
function cat(...parts: (Buffer | string)[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
}
function domainRequest(host: string | Buffer, port: number, cmd = 0x01): Buffer {
  const name = typeof host === 'string' ? Buffer.from(host, 'latin1') : host;
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  return cat(Buffer.from([0x05, cmd, 0x00, 0x03, name.length]), name, portBytes);
}
function auth(user: string | Buffer, pass: string | Buffer): Buffer {
  const u = typeof user === 'string' ? Buffer.from(user, 'latin1') : user;
  const p = typeof pass === 'string' ? Buffer.from(pass, 'latin1') : pass;
  return cat(Buffer.from([0x01, u.length]), u, Buffer.from([p.length]), p);
}

const GREET_CORE_CREDS = h('05 02 00 02');
const GREET_NO_AUTH = h('05 01 00');
const GREET_NBITCOIN = h('05 01 02');
/** Core's CONNECT for 1.2.3.4:8333, byte for byte as netbase.cpp Socks5() sends it (ATYP 03, the IP as text). */
const CORE_CONNECT_1234 = h('05 01 00 03 07 31 2e 32 2e 33 2e 34 20 8d');

/** Steps in a comparable form: buffers as hex, errors as their code. */
type Plain =
  | { type: 'reply'; data: string }
  | { type: 'request'; host: string; port: number; kind: string; username?: string; password?: string; rest: string }
  | { type: 'fail'; data?: string; code: ErrorCode };

function plain(step: Socks5Step, unfed: Buffer): Plain {
  if (step.type === 'reply') return { type: 'reply', data: step.data.toString('hex') };
  if (step.type === 'fail') {
    assert.ok(step.error instanceof ProxyError);
    return step.data === undefined ? { type: 'fail', code: step.error.code } : { type: 'fail', data: step.data.toString('hex'), code: step.error.code };
  }
  const out: Plain = { type: 'request', ...step.destination, rest: Buffer.concat([step.rest, unfed]).toString('hex') };
  if (step.username !== undefined) out.username = step.username;
  if (step.password !== undefined) out.password = step.password;
  return out;
}

/** Feed chunks until a terminal step; bytes never fed count as part of `rest`. */
function feed(chunks: Buffer[]): Plain[] {
  const negotiation = new Socks5Negotiation();
  const out: Plain[] = [];
  for (let i = 0; i < chunks.length; i++) {
    const steps = negotiation.push(chunks[i]);
    const unfed = Buffer.concat(chunks.slice(i + 1));
    for (const step of steps) out.push(plain(step, unfed));
    if (steps.some((s) => s.type !== 'reply')) break;
  }
  return out;
}

/** Every way to cut `bytes` in two, in three, and byte by byte: each must give the one-chunk result. */
function assertSplitInvariant(bytes: Buffer, expected: Plain[]): void {
  assert.deepEqual(feed([bytes]), expected, 'one chunk');
  const single: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  assert.deepEqual(feed(single), expected, 'byte by byte');
  for (let i = 0; i <= bytes.length; i++) {
    assert.deepEqual(feed([bytes.subarray(0, i), bytes.subarray(i)]), expected, `split at ${i}`);
  }
  if (bytes.length <= 120) {
    for (let i = 1; i < bytes.length; i++) {
      for (let j = i + 1; j < bytes.length; j++) {
        assert.deepEqual(feed([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]), expected, `split at ${i} and ${j}`);
      }
    }
  }
}

const reply = (rep: number): string => socks5Reply(rep).toString('hex');

describe('socks5/server', () => {
  describe('reply bytes', () => {
    it('socks5Reply is always the 10-byte form 05 REP 00 01 0.0.0.0:0 that NBitcoin requires', () => {
      assert.deepEqual(socks5Reply(REP.SUCCEEDED), h('05 00 00 01 00 00 00 00 00 00'));
      assert.deepEqual(socks5Reply(REP.CONNECTION_REFUSED), h('05 05 00 01 00 00 00 00 00 00'));
      assert.deepEqual(socks5Reply(REP.ATYP_NOT_SUPPORTED), h('05 08 00 01 00 00 00 00 00 00'));
    });

    it('REP has the RFC 1928 §6 values', () => {
      assert.deepEqual(Object.values(REP), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    });

    it('SOCKS4_REJECT is 00 5B and six zero bytes', () => {
      assert.deepEqual(SOCKS4_REJECT, h('00 5b 00 00 00 00 00 00'));
    });
  });

  describe('greetings from real clients', () => {
    it('Bitcoin Core with -proxyrandomize (05 02 00 02 + RFC 1929 creds): chooses 02, accepts, returns the creds', () => {
      const bytes = cat(GREET_CORE_CREDS, auth(CORE_CRED, CORE_CRED), CORE_CONNECT_1234);
      assertSplitInvariant(bytes, [
        { type: 'reply', data: '0502' },
        { type: 'reply', data: '0100' },
        { type: 'request', host: '1.2.3.4', port: 8333, kind: 'ipv4', username: CORE_CRED, password: CORE_CRED, rest: '' },
      ]);
    });

    it('Core -proxyrandomize=0, Floresta, Kyoto (05 01 00): chooses 00 and gives no creds', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, CORE_CONNECT_1234), [
        { type: 'reply', data: '0500' },
        { type: 'request', host: '1.2.3.4', port: 8333, kind: 'ipv4', rest: '' },
      ]);
    });

    it('NBitcoin with stream isolation (05 01 02, one method only): chooses 02', () => {
      assertSplitInvariant(cat(GREET_NBITCOIN, auth('wasabi', 'pw'), domainRequest(ONION, 8333)), [
        { type: 'reply', data: '0502' },
        { type: 'reply', data: '0100' },
        { type: 'request', host: ONION, port: 8333, kind: 'onion', username: 'wasabi', password: 'pw', rest: '' },
      ]);
    });

    it('prefers 02 whatever the order it is offered in (05 02 02 00)', () => {
      assert.deepEqual(feed([h('05 02 02 00')]), [{ type: 'reply', data: '0502' }]);
    });

    it('no acceptable method (GSSAPI only): replies 05 FF and fails with ERR_SOCKS_NO_METHOD', () => {
      assertSplitInvariant(h('05 01 01'), [{ type: 'fail', data: '05ff', code: 'ERR_SOCKS_NO_METHOD' }]);
      assertSplitInvariant(h('05 03 01 03 80'), [{ type: 'fail', data: '05ff', code: 'ERR_SOCKS_NO_METHOD' }]);
    });

    it('NMETHODS 0 offers nothing: replies 05 FF', () => {
      assert.deepEqual(feed([h('05 00')]), [{ type: 'fail', data: '05ff', code: 'ERR_SOCKS_NO_METHOD' }]);
    });

    it('NMETHODS 0 is logged as a greeting that offers no methods', () => {
      const [step] = new Socks5Negotiation().push(h('05 00'));
      assert.equal(step.type, 'fail');
      if (step.type === 'fail') assert.equal(step.error.message, 'SOCKS5 greeting offers no methods');
    });

    it('never chooses a method that was not offered', () => {
      for (let m = 0; m < 256; m++) {
        const steps = feed([Buffer.from([0x05, 0x01, m])]);
        const chosen = steps[0].type === 'reply' ? steps[0].data : (steps[0] as { data: string }).data;
        if (m === 0x00) assert.equal(chosen, '0500');
        else if (m === 0x02) assert.equal(chosen, '0502');
        else assert.equal(chosen, '05ff', `method ${m}`);
      }
    });

    it('accepts a greeting with all 255 methods, the largest there is', () => {
      const methods = Buffer.alloc(255);
      for (let i = 0; i < 255; i++) methods[i] = 0xff - i; // 0x00 comes last, 0x02 just before it
      const greeting = cat(Buffer.from([0x05, 0xff]), methods);
      assert.equal(greeting.length, MAX_GREETING_LEN);
      assertSplitInvariant(greeting, [{ type: 'reply', data: '0502' }]);
    });
  });

  describe('RFC 1929 username/password', () => {
    it('accepts empty ULEN and PLEN (01 00 00) like Tor and returns empty strings', () => {
      assertSplitInvariant(cat(GREET_CORE_CREDS, h('01 00 00'), CORE_CONNECT_1234), [
        { type: 'reply', data: '0502' },
        { type: 'reply', data: '0100' },
        { type: 'request', host: '1.2.3.4', port: 8333, kind: 'ipv4', username: '', password: '', rest: '' },
      ]);
    });

    it('accepts 255-byte username and password, the largest auth message', () => {
      const user = 'u'.repeat(255);
      const pass = 'p'.repeat(255);
      const message = auth(user, pass);
      assert.equal(message.length, MAX_AUTH_LEN);
      assertSplitInvariant(cat(GREET_NBITCOIN, message, CORE_CONNECT_1234), [
        { type: 'reply', data: '0502' },
        { type: 'reply', data: '0100' },
        { type: 'request', host: '1.2.3.4', port: 8333, kind: 'ipv4', username: user, password: pass, rest: '' },
      ]);
    });

    it('keeps every credential byte, non-ASCII included (latin1, one code point per byte)', () => {
      const steps = feed([cat(GREET_NBITCOIN, auth(h('ff 00 80'), h('c3 a9')), CORE_CONNECT_1234)]);
      const request = steps[2] as { username: string; password: string };
      assert.deepEqual(Buffer.from(request.username, 'latin1'), h('ff 00 80'));
      assert.deepEqual(Buffer.from(request.password, 'latin1'), h('c3 a9'));
    });

    it('answers each message in the push that brings its last byte, wherever the bytes are cut', () => {
      // A client waits for each answer before it sends the next message, so an answer held back for a
      // byte that never comes stalls it. An empty password ends the auth message on its PLEN byte.
      const messages = [GREET_NBITCOIN, auth('u', ''), CORE_CONNECT_1234];
      const answers = ['reply 0502', 'reply 0100', 'request 1.2.3.4:8333'];
      const bytes = cat(...messages);
      let sum = 0;
      const ends = messages.map((m) => (sum += m.length)); // where each message ends
      for (let i = 1; i < bytes.length; i++) {
        const negotiation = new Socks5Negotiation();
        const seen = (chunk: Buffer): string[] =>
          negotiation
            .push(chunk)
            .map((s) =>
              s.type === 'reply' ? `reply ${s.data.toString('hex')}` : s.type === 'request' ? `request ${s.destination.host}:${s.destination.port}` : 'fail',
            );
        const before = seen(bytes.subarray(0, i));
        const after = seen(bytes.subarray(i));
        const done = ends.filter((e) => e <= i).length;
        assert.deepEqual(before, answers.slice(0, done), `cut at ${i}`);
        assert.deepEqual(after, answers.slice(done), `cut at ${i}`);
      }
    });

    it('an auth message with version other than 01 gets 01 01 and ERR_SOCKS_BAD_AUTH', () => {
      assert.deepEqual(feed([cat(GREET_NBITCOIN, h('05 01 00'))]), [
        { type: 'reply', data: '0502' },
        { type: 'fail', data: '0101', code: 'ERR_SOCKS_BAD_AUTH' },
      ]);
    });
  });

  describe('CONNECT requests', () => {
    const connect = (request: Buffer): Plain[] => feed([cat(GREET_NO_AUTH, request)]).slice(1);

    it("Core's ATYP 03 example for 1.2.3.4:8333 is an IPv4 destination, not a name", () => {
      assert.deepEqual(connect(CORE_CONNECT_1234), [{ type: 'request', host: '1.2.3.4', port: 8333, kind: 'ipv4', rest: '' }]);
    });

    it('ATYP 01 IPv4', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, h('05 01 00 01 c0 a8 01 02 47 9d')), [
        { type: 'reply', data: '0500' },
        { type: 'request', host: '192.168.1.2', port: 18333, kind: 'ipv4', rest: '' },
      ]);
    });

    it('ATYP 04 IPv6, written in RFC 5952 form', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, h('05 01 00 04 20010db8000000000000000000000001 20 8d')), [
        { type: 'reply', data: '0500' },
        { type: 'request', host: '2001:db8::1', port: 8333, kind: 'ipv6', rest: '' },
      ]);
      const cases: [string, string][] = [
        ['00000000000000000000000000000001', '::1'],
        ['00000000000000000000000000000000', '::'],
        ['00010000000000000000000000000000', '1::'],
        ['20010db8000000010000000000000001', '2001:db8:0:1::1'], // the longer zero run is the one compressed
        ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'], // equal runs: the first one
        ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
        ['fc001234abcdef000000000000000005', 'fc00:1234:abcd:ef00::5'],
      ];
      for (const [raw, text] of cases) {
        assert.deepEqual(connect(h(`05 01 00 04 ${raw} 20 8d`)), [{ type: 'request', host: text, port: 8333, kind: 'ipv6', rest: '' }], raw);
      }
    });

    it('ATYP 03 carrying an unbracketed IPv6 literal (how Core sends IPv6 and CJDNS) is IPv6', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, domainRequest('2001:db8::1', 8333)), [
        { type: 'reply', data: '0500' },
        { type: 'request', host: '2001:db8::1', port: 8333, kind: 'ipv6', rest: '' },
      ]);
    });

    it('ATYP 03 carrying a bracketed IPv6 literal (accepted by Tor) is IPv6 without the brackets', () => {
      assert.deepEqual(connect(domainRequest('[fc00::1]', 8333)), [{ type: 'request', host: 'fc00::1', port: 8333, kind: 'ipv6', rest: '' }]);
    });

    it('ATYP 03 v3 onion', () => {
      assertSplitInvariant(cat(GREET_CORE_CREDS, auth(CORE_CRED, CORE_CRED), domainRequest(ONION, 8333)), [
        { type: 'reply', data: '0502' },
        { type: 'reply', data: '0100' },
        { type: 'request', host: ONION, port: 8333, kind: 'onion', username: CORE_CRED, password: CORE_CRED, rest: '' },
      ]);
    });

    it('ATYP 03 host name (DNS seeds, -connect=name)', () => {
      assert.deepEqual(connect(domainRequest('seed.bitcoin.sipa.be', 8333)), [
        { type: 'request', host: 'seed.bitcoin.sipa.be', port: 8333, kind: 'name', rest: '' },
      ]);
    });

    it('ATYP 03 with a 255-byte name, the largest request', () => {
      const name = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(59), 'com'].join('.');
      assert.equal(name.length, 255);
      const request = domainRequest(name, 8333);
      assert.equal(request.length, MAX_REQUEST_LEN);
      assertSplitInvariant(cat(GREET_NO_AUTH, request), [
        { type: 'reply', data: '0500' },
        { type: 'request', host: name, port: 8333, kind: 'name', rest: '' },
      ]);
    });

    it('a request step has username and password only after RFC 1929 auth; a fail step has data only when there is a reply', () => {
      const [, noAuth] = new Socks5Negotiation().push(cat(GREET_NO_AUTH, CORE_CONNECT_1234));
      assert.deepEqual(Object.keys(noAuth).sort(), ['destination', 'rest', 'type']);
      const [, , withAuth] = new Socks5Negotiation().push(cat(GREET_NBITCOIN, auth('u', 'p'), CORE_CONNECT_1234));
      assert.deepEqual(Object.keys(withAuth).sort(), ['destination', 'password', 'rest', 'type', 'username']);
      const [http] = new Socks5Negotiation().push(Buffer.from('GET / HTTP/1.1\r\n'));
      assert.deepEqual(Object.keys(http).sort(), ['error', 'type']);
    });

    it('hands back bytes pipelined after the request as `rest`', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, CORE_CONNECT_1234, h('f9beb4d9 76657273696f6e')), [
        { type: 'reply', data: '0500' },
        { type: 'request', host: '1.2.3.4', port: 8333, kind: 'ipv4', rest: 'f9beb4d976657273696f6e' },
      ]);
    });

    it('`rest` is a view of the bytes, not a copy', () => {
      const chunk = cat(GREET_NO_AUTH, CORE_CONNECT_1234, 'xyz');
      const steps = new Socks5Negotiation().push(chunk);
      const request = steps[1];
      assert.equal(request.type, 'request');
      if (request.type !== 'request') return;
      assert.equal(request.rest.buffer, chunk.buffer);
      assert.equal(request.rest.toString(), 'xyz');
      // Small buffers share Node's allocation pool, so the same .buffer alone would not show a view.
      assert.equal(request.rest.byteOffset, chunk.byteOffset + chunk.length - 3);
      chunk[chunk.length - 1] = 0x21;
      assert.equal(request.rest.toString(), 'xy!');
    });
  });

  describe('refused requests', () => {
    const connect = (request: Buffer): Plain[] => feed([cat(GREET_NO_AUTH, request)]).slice(1);

    it('BIND (02) gets REP 07, exactly 05 07 00 01 00000000 0000, and ERR_SOCKS_BAD_COMMAND', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, h('05 02 00 01 01 02 03 04 20 8d')), [
        { type: 'reply', data: '0500' },
        { type: 'fail', data: '05070001000000000000', code: 'ERR_SOCKS_BAD_COMMAND' },
      ]);
    });

    it('UDP ASSOCIATE (03) gets REP 07', () => {
      assert.deepEqual(connect(h('05 03 00 01 00 00 00 00 00 00')), [{ type: 'fail', data: '05070001000000000000', code: 'ERR_SOCKS_BAD_COMMAND' }]);
    });

    it("btcd's Tor RESOLVE (F0) gets REP 07", () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, domainRequest('seed.bitcoin.sipa.be', 0, 0xf0)), [
        { type: 'reply', data: '0500' },
        { type: 'fail', data: '05070001000000000000', code: 'ERR_SOCKS_BAD_COMMAND' },
      ]);
    });

    it('Tor RESOLVE_PTR (F1) gets REP 07', () => {
      assert.deepEqual(connect(h('05 f1 00 01 01 02 03 04 00 00')), [{ type: 'fail', data: '05070001000000000000', code: 'ERR_SOCKS_BAD_COMMAND' }]);
    });

    it('names a known command and writes an unknown one as 0x..', () => {
      const message = (cmd: number): string => {
        const step = new Socks5Negotiation().push(cat(GREET_NO_AUTH, h(`05 ${cmd.toString(16).padStart(2, '0')} 00 01 01 02 03 04 20 8d`)))[1];
        return step.type === 'fail' ? step.error.message : `no failure: ${step.type}`;
      };
      assert.equal(message(0x02), 'SOCKS5 command BIND is not supported (only CONNECT)');
      assert.equal(message(0xf0), 'SOCKS5 command Tor RESOLVE is not supported (only CONNECT)');
      assert.equal(message(0x09), 'SOCKS5 command 0x09 is not supported (only CONNECT)');
      assert.equal(message(0xab), 'SOCKS5 command 0xab is not supported (only CONNECT)');
    });

    it('an unsupported command is answered only after the whole request arrived (no unread bytes at close)', () => {
      const negotiation = new Socks5Negotiation();
      negotiation.push(GREET_NO_AUTH);
      const request = domainRequest('example.com', 8333, 0xf0);
      assert.deepEqual(negotiation.push(request.subarray(0, request.length - 1)), []);
      const steps = negotiation.push(request.subarray(request.length - 1));
      assert.equal(steps.length, 1);
      assert.equal(steps[0].type, 'fail');
    });

    it('ATYP 05 gets REP 08 and ERR_SOCKS_BAD_ATYP as soon as the 4-byte header is in', () => {
      const negotiation = new Socks5Negotiation();
      negotiation.push(GREET_NO_AUTH);
      const steps = negotiation.push(h('05 01 00 05'));
      assert.deepEqual(
        steps.map((s) => plain(s, Buffer.alloc(0))),
        [{ type: 'fail', data: '05080001000000000000', code: 'ERR_SOCKS_BAD_ATYP' }],
      );
    });

    it('an unknown ATYP with an unsupported command reports the command (07)', () => {
      assert.deepEqual(connect(h('05 02 00 05')), [{ type: 'fail', data: '05070001000000000000', code: 'ERR_SOCKS_BAD_COMMAND' }]);
    });

    it('port 0 gets REP 01 and ERR_SOCKS_BAD_ADDRESS', () => {
      assert.deepEqual(connect(h('05 01 00 01 01 02 03 04 00 00')), [{ type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_ADDRESS' }]);
      assert.deepEqual(connect(domainRequest('example.com', 0)), [{ type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_ADDRESS' }]);
    });

    it('a malformed host name gets REP 01, as Tor answers `"""""".com`', () => {
      assert.deepEqual(connect(domainRequest('"""""".com', 80)), [{ type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_ADDRESS' }]);
    });

    it('an empty DOMAINNAME (LEN 0) gets REP 01', () => {
      assertSplitInvariant(cat(GREET_NO_AUTH, h('05 01 00 03 00 20 8d')), [
        { type: 'reply', data: '0500' },
        { type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_ADDRESS' },
      ]);
    });

    it('a %scope, a NUL, non-ASCII, a v2 onion in the DOMAINNAME get REP 01', () => {
      for (const host of ['fe80::1%eth0', 'exa\0mple.com', Buffer.from('bücher.de'), 'expyuzz4wqqyqhjn.onion']) {
        assert.deepEqual(connect(domainRequest(host, 8333)), [{ type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_ADDRESS' }], String(host));
      }
    });

    it('a request with VER other than 05 gets REP 01 and ERR_SOCKS_BAD_VERSION at its first byte', () => {
      assert.deepEqual(connect(h('04')), [{ type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_VERSION' }]);
    });

    it('a request with RSV other than 00 gets REP 01 and fails', () => {
      assert.deepEqual(connect(h('05 01 01 01 01 02 03 04 20 8d')), [{ type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_VERSION' }]);
    });
  });

  describe('garbage and oversize input', () => {
    it('an HTTP request fails at its first byte with ERR_SOCKS_BAD_VERSION and no reply', () => {
      assert.deepEqual(feed([Buffer.from('POST / HTTP/1.1\r\nHost: 127.0.0.1:1324\r\n\r\n')]), [{ type: 'fail', code: 'ERR_SOCKS_BAD_VERSION' }]);
      assert.deepEqual(feed([Buffer.from('G')]), [{ type: 'fail', code: 'ERR_SOCKS_BAD_VERSION' }]);
    });

    it('a SOCKS4 request gets SOCKS4_REJECT and ERR_SOCKS4', () => {
      assert.deepEqual(feed([h('04 01 20 8d 01 02 03 04 00')]), [{ type: 'fail', data: '005b000000000000', code: 'ERR_SOCKS4' }]);
    });

    it('64 KiB of junk after the greeting fails at once without buffering it', () => {
      const negotiation = new Socks5Negotiation();
      const steps = negotiation.push(cat(GREET_NO_AUTH, Buffer.alloc(65536, 0x41)));
      assert.deepEqual(
        steps.map((s) => plain(s, Buffer.alloc(0))),
        [
          { type: 'reply', data: '0500' },
          { type: 'fail', data: reply(REP.GENERAL_FAILURE), code: 'ERR_SOCKS_BAD_VERSION' },
        ],
      );
      assert.equal(negotiation.bufferedBytes, 0);
    });

    it('never holds more than one partial message while bytes trickle in', () => {
      const name = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(59), 'com'].join('.');
      const methods = Buffer.alloc(255, 0x02);
      const bytes = cat(Buffer.from([0x05, 0xff]), methods, auth('u'.repeat(255), 'p'.repeat(255)), domainRequest(name, 8333));
      const negotiation = new Socks5Negotiation();
      const limits = [MAX_GREETING_LEN, MAX_AUTH_LEN, MAX_REQUEST_LEN];
      let phase = 0;
      let max = 0;
      for (let i = 0; i < bytes.length; i++) {
        const steps = negotiation.push(bytes.subarray(i, i + 1));
        max = Math.max(max, negotiation.bufferedBytes);
        assert.ok(negotiation.bufferedBytes < limits[phase], `byte ${i}: ${negotiation.bufferedBytes} buffered`);
        phase += steps.length;
      }
      assert.equal(phase, 3);
      assert.equal(max, MAX_AUTH_LEN - 1);
      assert.equal(negotiation.bufferedBytes, 0);
    });

    it('refuses to be fed after the request (a caller bug, not a protocol event)', () => {
      const negotiation = new Socks5Negotiation();
      negotiation.push(cat(GREET_NO_AUTH, CORE_CONNECT_1234));
      assert.throws(() => negotiation.push(h('00')));
    });

    it('refuses to be fed after a failure', () => {
      const negotiation = new Socks5Negotiation();
      negotiation.push(h('05 01 01'));
      assert.throws(() => negotiation.push(GREET_NO_AUTH));
    });

    it('an empty push changes nothing', () => {
      const negotiation = new Socks5Negotiation();
      assert.deepEqual(negotiation.push(Buffer.alloc(0)), []);
      assert.deepEqual(
        negotiation.push(GREET_NO_AUTH).map((s) => s.type),
        ['reply'],
      );
    });
  });

  describe('repForError', () => {
    const table: [ProxyError | Error | string, number][] = [
      [new ProxyError('ERR_DIAL_REFUSED', 'x'), REP.CONNECTION_REFUSED],
      [new ProxyError('ERR_DIAL_UNREACHABLE', 'x'), REP.HOST_UNREACHABLE],
      [
        new ProxyError('ERR_DIAL_UNREACHABLE', 'x', { cause: Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' }) }),
        REP.NETWORK_UNREACHABLE,
      ],
      [new ProxyError('ERR_DIAL_UNREACHABLE', 'x', { cause: Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }) }), REP.HOST_UNREACHABLE],
      [new ProxyError('ERR_DIAL_TIMEOUT', 'x'), REP.TTL_EXPIRED],
      [new ProxyError('ERR_ONION_NO_PROXY', 'x'), REP.NOT_ALLOWED],
      [new ProxyError('ERR_DIAL_NOT_ALLOWED', 'x'), REP.NOT_ALLOWED],
      [new ProxyError('ERR_SOCKS_BAD_COMMAND', 'x'), REP.COMMAND_NOT_SUPPORTED],
      [new ProxyError('ERR_SOCKS_BAD_ATYP', 'x'), REP.ATYP_NOT_SUPPORTED],
      [new ProxyError('ERR_UPSTREAM_PROXY', 'x'), REP.GENERAL_FAILURE],
      [new ProxyError('ERR_DIAL_FAILED', 'x'), REP.GENERAL_FAILURE],
      [new Error('not ours'), REP.GENERAL_FAILURE],
      ['a string', REP.GENERAL_FAILURE],
    ];
    for (const [err, rep] of table) {
      const name = err instanceof ProxyError ? `${err.code}${err.cause ? ` (cause ${(err.cause as { code: string }).code})` : ''}` : String(err);
      it(`maps ${name} to REP 0${rep}`, () => {
        assert.equal(repForError(err), rep);
      });
    }

    /** ERR_DIAL_UNREACHABLE whose cause chain has ENETUNREACH `depth` causes below the top one. */
    function unreachableAt(depth: number): ProxyError {
      let cause: Error = Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' });
      for (let i = 0; i < depth; i++) cause = new Error(`wrapper ${i}`, { cause });
      return new ProxyError('ERR_DIAL_UNREACHABLE', 'x', { cause });
    }

    it('finds ENETUNREACH up to five causes deep and stops looking there', () => {
      assert.equal(repForError(unreachableAt(0)), REP.NETWORK_UNREACHABLE);
      assert.equal(repForError(unreachableAt(4)), REP.NETWORK_UNREACHABLE);
      assert.equal(repForError(unreachableAt(5)), REP.HOST_UNREACHABLE);
    });

    it('a cause chain that ends in null or a string is searched without throwing', () => {
      assert.equal(repForError(new ProxyError('ERR_DIAL_UNREACHABLE', 'x', { cause: null })), REP.HOST_UNREACHABLE);
      assert.equal(repForError(new ProxyError('ERR_DIAL_UNREACHABLE', 'x', { cause: new Error('y', { cause: null }) })), REP.HOST_UNREACHABLE);
      assert.equal(repForError(new ProxyError('ERR_DIAL_UNREACHABLE', 'x', { cause: 'ENETUNREACH' })), REP.HOST_UNREACHABLE);
    });
  });
});
