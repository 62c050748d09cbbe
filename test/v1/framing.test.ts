/**
 * Tests for src/v1/framing.ts: v1 header rules as Bitcoin Core applies them (V1Transport and CMessageHeader).
 * Expected checksums come from @noble/hashes, not from the module under test.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { isProxyError, type ErrorCode } from '../../src/errors.js';
import { MAX_V1_PAYLOAD } from '../../src/limits.js';
import { V1Parser, commandName, isValidCommand, serializeV1, sha256d, v1Checksum, v1Header, type V1Event } from '../../src/v1/framing.js';

const MAIN = Buffer.from('f9beb4d9', 'hex');
const TESTNET3 = Buffer.from('0b110907', 'hex');

function nobleChecksum(payload: Uint8Array): Buffer {
  return Buffer.from(sha256(sha256(payload))).subarray(0, 4);
}

/** A v1 message framed by hand, independently of serializeV1. */
function frame(command: string | Buffer, payload: Buffer, opts: { magic?: Buffer; checksum?: Buffer; length?: number } = {}): Buffer {
  const field = Buffer.isBuffer(command) ? command : Buffer.concat([Buffer.from(command, 'latin1'), Buffer.alloc(12 - command.length)]);
  assert.equal(field.length, 12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(opts.length ?? payload.length);
  return Buffer.concat([opts.magic ?? MAIN, field, len, opts.checksum ?? nobleChecksum(payload), payload]);
}

/** A comparable summary of parser output. */
function summarize(events: V1Event[]): string[] {
  return events.map((e) =>
    e.type === 'message'
      ? `message ${e.command} ${e.header.toString('hex')} ${e.payload.toString('hex')}`
      : `dropped ${e.command} ${e.error.code} fatal=${e.error.fatal}`,
  );
}

function throwsCode(fn: () => unknown, code: ErrorCode, fatal = true): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isProxyError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.fatal, fatal);
    return true;
  });
}

// A VERSION message built field by field (protocol 70016, user agent /Satoshi:27.0.0/).
const VERSION_PAYLOAD = Buffer.from(
  [
    '80110100', // version 70016
    '0904000000000000', // services NODE_NETWORK | NODE_WITNESS
    '00f1536500000000', // timestamp 1700000000
    '0000000000000000' + '00000000000000000000ffffc0000201' + '208d', // addr_recv 192.0.2.1:8333
    '0904000000000000' + '00000000000000000000000000000000' + '0000', // addr_from
    '0102030405060708', // nonce
    '10' + Buffer.from('/Satoshi:27.0.0/').toString('hex'), // user agent
    '50f80c00', // start height 850000
    '01', // relay
  ].join(''),
  'hex',
);
const VERSION_HEADER = Buffer.concat([Buffer.from('f9beb4d9' + '76657273696f6e0000000000' + '66000000', 'hex'), nobleChecksum(VERSION_PAYLOAD)]);
const VERSION_MSG = Buffer.concat([VERSION_HEADER, VERSION_PAYLOAD]);

describe('v1 framing', () => {
  describe('sha256d and checksums', () => {
    it('computes the empty-payload checksum 5df6e0e2', () => {
      assert.equal(v1Checksum(Buffer.alloc(0)).toString('hex'), '5df6e0e2');
    });

    it('matches an independent SHA256(SHA256(x)) for random inputs and for subarray views', () => {
      for (const size of [1, 55, 56, 64, 250, 10_000]) {
        const backing = randomBytes(size + 7);
        const data = backing.subarray(3, 3 + size);
        assert.deepEqual(sha256d(data), Buffer.from(sha256(sha256(data))));
        assert.deepEqual(v1Checksum(data), nobleChecksum(data));
      }
    });
  });

  describe('isValidCommand and commandName', () => {
    const field = (hexOrText: string, hex = false): Buffer => {
      const b = hex ? Buffer.from(hexOrText, 'hex') : Buffer.from(hexOrText, 'latin1');
      return Buffer.concat([b, Buffer.alloc(12 - b.length)]);
    };

    it('accepts printable ASCII 0x20..0x7E padded with NULs, including a full 12 bytes', () => {
      assert.ok(isValidCommand(field('version')));
      assert.ok(isValidCommand(field('getblocktxn ')));
      assert.ok(isValidCommand(field(' ~')));
      assert.ok(isValidCommand(field('abcdefghijkl')));
    });

    it('accepts an all-NUL field (empty name), as Core does', () => {
      assert.ok(isValidCommand(Buffer.alloc(12)));
      assert.equal(commandName(Buffer.alloc(12)), '');
    });

    it('rejects a byte below 0x20 or above 0x7E before the first NUL', () => {
      assert.ok(!isValidCommand(field('7665721f', true)));
      assert.ok(!isValidCommand(field('7665727f', true)));
      assert.ok(!isValidCommand(field('766572e9', true)));
    });

    it('rejects a non-NUL byte after the first NUL', () => {
      assert.ok(!isValidCommand(field('ver\0sion')));
      assert.ok(!isValidCommand(Buffer.from('000000000000000000000001', 'hex')));
    });

    it('rejects a field that is not 12 bytes', () => {
      assert.ok(!isValidCommand(Buffer.from('version')));
      assert.ok(!isValidCommand(Buffer.alloc(13)));
    });

    it('strips the NUL padding from the name', () => {
      assert.equal(commandName(field('verack')), 'verack');
      assert.equal(commandName(field('abcdefghijkl')), 'abcdefghijkl');
      assert.equal(commandName(new Uint8Array(field('ping'))), 'ping');
    });
  });

  describe('v1Header and serializeV1', () => {
    it('frames VERACK as magic, NUL-padded name, zero length and checksum 5df6e0e2', () => {
      assert.equal(v1Header(MAIN, 'verack', Buffer.alloc(0)).toString('hex'), 'f9beb4d9' + '76657261636b000000000000' + '00000000' + '5df6e0e2');
    });

    it('serializes the hand-built VERSION message byte for byte', () => {
      assert.deepEqual(v1Header(MAIN, 'version', VERSION_PAYLOAD), VERSION_HEADER);
      assert.deepEqual(serializeV1(MAIN, 'version', VERSION_PAYLOAD), VERSION_MSG);
    });

    it('round trips random commands and payloads through the parser', () => {
      const parser = new V1Parser(TESTNET3);
      for (let i = 0; i < 200; i++) {
        const nameLen = i % 13;
        const command = Array.from({ length: nameLen }, () => String.fromCharCode(0x20 + Math.floor(Math.random() * 95))).join('');
        const payload = randomBytes(Math.floor(Math.random() * 600));
        const wire = serializeV1(TESTNET3, command, payload);
        assert.deepEqual(wire, frame(command, payload, { magic: TESTNET3 }));
        const events = parser.push(wire);
        assert.equal(events.length, 1);
        const ev = events[0];
        assert.equal(ev.type, 'message');
        if (ev.type !== 'message') continue;
        assert.equal(ev.command, command);
        assert.deepEqual(ev.payload, payload);
        assert.deepEqual(ev.header, wire.subarray(0, 24));
      }
    });

    it('frames an empty command name as twelve NULs', () => {
      assert.equal(v1Header(MAIN, '', Buffer.alloc(0)).toString('hex', 4, 16), '00'.repeat(12));
    });

    it('refuses a name longer than 12 bytes or with a non-printable character (ERR_V1_BAD_COMMAND)', () => {
      throwsCode(() => v1Header(MAIN, 'abcdefghijklm', Buffer.alloc(0)), 'ERR_V1_BAD_COMMAND');
      throwsCode(() => v1Header(MAIN, 'ver\0', Buffer.alloc(0)), 'ERR_V1_BAD_COMMAND');
      throwsCode(() => serializeV1(MAIN, 'tab\there', Buffer.alloc(0)), 'ERR_V1_BAD_COMMAND');
      throwsCode(() => serializeV1(MAIN, 'caf\u00e9', Buffer.alloc(0)), 'ERR_V1_BAD_COMMAND');
      throwsCode(() => serializeV1(MAIN, 'del\x7f', Buffer.alloc(0)), 'ERR_V1_BAD_COMMAND');
    });

    it('refuses a magic that is not 4 bytes', () => {
      assert.throws(() => v1Header(Buffer.alloc(3), 'ping', Buffer.alloc(0)), RangeError);
      assert.throws(() => new V1Parser(Buffer.alloc(5)), RangeError);
    });
  });

  describe('V1Parser', () => {
    it('parses a hand-built VERSION message', () => {
      const parser = new V1Parser(MAIN);
      const events = parser.push(VERSION_MSG);
      assert.equal(events.length, 1);
      const ev = events[0];
      assert.ok(ev.type === 'message');
      assert.equal(ev.command, 'version');
      assert.deepEqual(ev.header, VERSION_HEADER);
      assert.deepEqual(ev.payload, VERSION_PAYLOAD);
      assert.equal(ev.payload.readInt32LE(0), 70016);
      assert.equal(parser.buffered, 0);
      assert.equal(parser.pending, 0);
    });

    it('parses a message with an empty (all-NUL) command name', () => {
      const wire = frame(Buffer.alloc(12), Buffer.from('hi'));
      const events = new V1Parser(MAIN).push(wire);
      assert.deepEqual(summarize(events), [`message  ${wire.toString('hex', 0, 24)} 6869`]);
    });

    it('rejects a wrong network magic (ERR_V1_BAD_MAGIC, fatal)', () => {
      throwsCode(() => new V1Parser(MAIN).push(frame('ping', Buffer.alloc(8), { magic: TESTNET3 })), 'ERR_V1_BAD_MAGIC');
    });

    it('rejects a command field with a non-printable byte (ERR_V1_BAD_COMMAND, fatal)', () => {
      const field = Buffer.from('70696e0167000000000000', 'hex');
      throwsCode(() => new V1Parser(MAIN).push(frame(Buffer.concat([field, Buffer.alloc(1)]), Buffer.alloc(0))), 'ERR_V1_BAD_COMMAND');
    });

    it('rejects a command field with a non-NUL byte after a NUL (ERR_V1_BAD_COMMAND, fatal)', () => {
      throwsCode(() => new V1Parser(MAIN).push(frame(Buffer.from('ping\0\0\0\0\0\0\0x', 'latin1'), Buffer.alloc(0))), 'ERR_V1_BAD_COMMAND');
    });

    it('rejects a length of 4,000,001 as soon as the header is in, before any payload byte is pushed', () => {
      const header = frame('block', Buffer.alloc(0), { length: MAX_V1_PAYLOAD + 1, checksum: Buffer.from('01020304', 'hex') });
      assert.equal(header.length, 24);
      const parser = new V1Parser(MAIN);
      assert.deepEqual(parser.push(header.subarray(0, 23)), []);
      throwsCode(() => parser.push(header.subarray(23)), 'ERR_V1_TOO_LARGE');
    });

    it('accepts a payload of exactly 4,000,000 bytes', () => {
      const payload = Buffer.alloc(MAX_V1_PAYLOAD, 0xab);
      payload.writeUInt32LE(0xdeadbeef, 1000);
      const wire = frame('block', payload);
      const parser = new V1Parser(MAIN);
      assert.deepEqual(parser.push(wire.subarray(0, 24)), []);
      assert.equal(parser.pending, MAX_V1_PAYLOAD);
      assert.deepEqual(parser.push(wire.subarray(24, 2_000_024)), []);
      assert.equal(parser.pending, 2_000_000);
      const events = parser.push(wire.subarray(2_000_024));
      assert.equal(events.length, 1);
      const ev = events[0];
      assert.ok(ev.type === 'message');
      assert.equal(ev.command, 'block');
      assert.ok(ev.payload.equals(payload));
      assert.equal(parser.buffered, 0);
    });

    it('honours a smaller maxPayload option', () => {
      const parser = new V1Parser(MAIN, { maxPayload: 100 });
      assert.equal(parser.push(frame('tx', Buffer.alloc(100))).length, 1);
      throwsCode(() => parser.push(frame('tx', Buffer.alloc(101)).subarray(0, 24)), 'ERR_V1_TOO_LARGE');
    });

    it('drops a message with a bad checksum and keeps parsing', () => {
      const bad = frame('ping', Buffer.alloc(8, 1), { checksum: Buffer.from('00000000', 'hex') });
      const good = frame('pong', Buffer.alloc(8, 2));
      const parser = new V1Parser(MAIN);
      const events = parser.push(Buffer.concat([bad, good]));
      assert.equal(events.length, 2);
      const [dropped, message] = events;
      assert.ok(dropped.type === 'dropped');
      assert.equal(dropped.command, 'ping');
      assert.equal(dropped.error.code, 'ERR_V1_BAD_CHECKSUM');
      assert.equal(dropped.error.fatal, false);
      assert.ok(message.type === 'message');
      assert.equal(message.command, 'pong');
      assert.deepEqual(message.payload, Buffer.alloc(8, 2));
      assert.deepEqual(summarize(parser.push(good)), summarize([message]));
    });

    it('delivers a bad-checksum message unchanged when verifyChecksum is false', () => {
      const bad = frame('ping', Buffer.alloc(8, 1), { checksum: Buffer.from('00000000', 'hex') });
      const events = new V1Parser(MAIN, { verifyChecksum: false }).push(bad);
      assert.equal(events.length, 1);
      assert.ok(events[0].type === 'message');
      assert.deepEqual(events[0].header, bad.subarray(0, 24));
    });

    it('yields identical results for 3 messages split at every pair of byte boundaries', () => {
      const wire = Buffer.concat([
        frame('verack', Buffer.alloc(0)),
        frame('ping', Buffer.from('0807060504030201', 'hex')),
        frame('inv', Buffer.concat([Buffer.from([1, 1, 0, 0, 0]), randomBytes(32)])),
      ]);
      const expected = summarize(new V1Parser(MAIN).push(wire));
      assert.equal(expected.length, 3);
      for (let i = 0; i <= wire.length; i++) {
        for (let j = i; j <= wire.length; j++) {
          const parser = new V1Parser(MAIN);
          const events = [...parser.push(wire.subarray(0, i)), ...parser.push(wire.subarray(i, j)), ...parser.push(wire.subarray(j))];
          assert.deepEqual(summarize(events), expected, `split at ${i}, ${j}`);
          assert.equal(parser.buffered, 0);
          assert.equal(parser.pending, 0);
        }
      }
    });

    it('reports a dropped message in order wherever the input is split', () => {
      const wire = Buffer.concat([
        frame('getdata', randomBytes(37)),
        frame('tx', randomBytes(60), { checksum: Buffer.from('deadbeef', 'hex') }),
        frame('headers', Buffer.from([0])),
      ]);
      const expected = summarize(new V1Parser(MAIN).push(wire));
      assert.deepEqual(
        expected.map((s) => s.split(' ').slice(0, 2).join(' ')),
        ['message getdata', 'dropped tx', 'message headers'],
      );
      for (let i = 0; i <= wire.length; i++) {
        const parser = new V1Parser(MAIN);
        assert.deepEqual(summarize([...parser.push(wire.subarray(0, i)), ...parser.push(wire.subarray(i))]), expected);
      }
    });

    it('parses 10,000 small messages in one chunk as zero-copy views', function () {
      const count = 10_000;
      const wire = Buffer.concat(
        Array.from({ length: count }, (_, i) => {
          const nonce = Buffer.alloc(8);
          nonce.writeBigUInt64LE(BigInt(i));
          return frame('ping', nonce);
        }),
      );
      const parser = new V1Parser(MAIN);
      const events = parser.push(wire);
      assert.equal(events.length, count);
      events.forEach((ev, i) => {
        assert.ok(ev.type === 'message');
        assert.equal(ev.payload.readBigUInt64LE(0), BigInt(i));
        assert.equal(ev.payload.buffer, wire.buffer);
        assert.equal(ev.payload.byteOffset, wire.byteOffset + i * 32 + 24);
      });
    });

    it('parses a message pushed one byte at a time, tracking buffered and pending', () => {
      const parser = new V1Parser(MAIN);
      for (let i = 0; i < VERSION_MSG.length - 1; i++) {
        assert.deepEqual(parser.push(VERSION_MSG.subarray(i, i + 1)), []);
        assert.equal(parser.buffered, i + 1);
        assert.equal(parser.pending, i + 1 < 24 ? 0 : VERSION_PAYLOAD.length - (i + 1 - 24));
      }
      const events = parser.push(VERSION_MSG.subarray(VERSION_MSG.length - 1));
      assert.equal(events.length, 1);
      assert.ok(events[0].type === 'message');
      assert.deepEqual(events[0].header, VERSION_HEADER);
      assert.deepEqual(events[0].payload, VERSION_PAYLOAD);
      assert.equal(parser.buffered, 0);
      assert.equal(parser.pending, 0);
    });

    it('hands out header and payload views of the input chunk when they lie inside it', () => {
      const input = Buffer.from(VERSION_MSG);
      const [ev] = new V1Parser(MAIN).push(input);
      assert.ok(ev.type === 'message');
      assert.equal(ev.payload.buffer, input.buffer);
      assert.equal(ev.payload.byteOffset, input.byteOffset + 24);
      assert.equal(ev.header.buffer, input.buffer);
      assert.equal(ev.header.byteOffset, input.byteOffset);
      input[30] ^= 0xff;
      assert.equal(ev.payload[6], input[30], 'a view sees writes to the chunk');
    });

    it('assembles a payload that spans chunks into its own buffer', () => {
      const input = Buffer.from(VERSION_MSG);
      const a = input.subarray(0, 60);
      const b = input.subarray(60);
      const parser = new V1Parser(MAIN);
      assert.deepEqual(parser.push(a), []);
      const [ev] = parser.push(b);
      assert.ok(ev.type === 'message');
      assert.deepEqual(ev.payload, VERSION_PAYLOAD);
      assert.equal(ev.header.byteOffset, a.byteOffset, 'the header lay whole in the first chunk');
      input.fill(0);
      assert.deepEqual(ev.payload, VERSION_PAYLOAD, 'the assembled payload is a copy');
    });

    it('gives a payload view into the second chunk when only the header spans chunks', () => {
      const input = Buffer.from(VERSION_MSG);
      const parser = new V1Parser(MAIN);
      assert.deepEqual(parser.push(input.subarray(0, 10)), []);
      const second = input.subarray(10);
      const [ev] = parser.push(second);
      assert.ok(ev.type === 'message');
      assert.deepEqual(ev.header, VERSION_HEADER);
      assert.equal(ev.payload.buffer, second.buffer);
      assert.equal(ev.payload.byteOffset, second.byteOffset + 14);
    });

    it('stays dead after a fatal error, throwing the same error on every later push', () => {
      const parser = new V1Parser(MAIN);
      let first: unknown;
      try {
        parser.push(frame('ping', Buffer.alloc(8), { magic: TESTNET3 }));
      } catch (err) {
        first = err;
      }
      assert.ok(isProxyError(first, 'ERR_V1_BAD_MAGIC'));
      for (const more of [VERSION_MSG, Buffer.alloc(0), Buffer.from([1])]) {
        assert.throws(
          () => parser.push(more),
          (err: unknown) => err === first,
        );
      }
      assert.equal(parser.buffered, 0);
    });

    it('throws on a bad header that follows a valid message in the same chunk', () => {
      const parser = new V1Parser(MAIN);
      throwsCode(() => parser.push(Buffer.concat([VERSION_MSG, frame('ping', Buffer.alloc(8), { magic: TESTNET3 })])), 'ERR_V1_BAD_MAGIC');
    });

    it('ignores an empty push', () => {
      const parser = new V1Parser(MAIN);
      parser.push(VERSION_MSG.subarray(0, 30));
      assert.deepEqual(parser.push(Buffer.alloc(0)), []);
      assert.equal(parser.buffered, 30);
      assert.equal(parser.pending, VERSION_PAYLOAD.length - 6);
    });

    describe('keep: payloads of other commands skipped as they arrive', () => {
      const keep = (command: string) => command === 'version' || command === 'verack';
      const inv = randomBytes(1000);
      const msgs = [frame('ping', Buffer.alloc(8, 7)), frame('inv', inv), VERSION_MSG, frame('verack', Buffer.alloc(0))];
      const wire = Buffer.concat(msgs);
      // Skipped messages come out with their header and an empty payload; kept ones whole.
      const expected = [
        `message ping ${msgs[0].toString('hex', 0, 24)} `,
        `message inv ${msgs[1].toString('hex', 0, 24)} `,
        `message version ${VERSION_HEADER.toString('hex')} ${VERSION_PAYLOAD.toString('hex')}`,
        `message verack ${msgs[3].toString('hex')} `,
      ];

      it('refuses keep together with checksum verification (RangeError)', () => {
        assert.throws(() => new V1Parser(MAIN, { keep }), RangeError);
        assert.throws(() => new V1Parser(MAIN, { keep, verifyChecksum: true }), RangeError);
        assert.doesNotThrow(() => new V1Parser(MAIN, { keep, verifyChecksum: false }));
      });

      it('reports skipped messages with an empty payload, in order, in one chunk and cut at every byte', () => {
        assert.deepEqual(summarize(new V1Parser(MAIN, { keep, verifyChecksum: false }).push(wire)), expected);
        for (let cut = 1; cut < wire.length; cut++) {
          const parser = new V1Parser(MAIN, { keep, verifyChecksum: false });
          const events = [...parser.push(wire.subarray(0, cut)), ...parser.push(wire.subarray(cut))];
          assert.deepEqual(summarize(events), expected, `cut at ${cut}`);
          assert.equal(parser.buffered, 0);
        }
      });

      it('holds none of a skipped payload and counts down what is left of it in pending', () => {
        const parser = new V1Parser(MAIN, { keep, verifyChecksum: false });
        const invStart = msgs[0].length;
        assert.equal(parser.push(wire.subarray(0, invStart + 24 + 10)).length, 1);
        assert.equal(parser.pending, 990);
        assert.equal(parser.buffered, 24);
        assert.deepEqual(parser.push(wire.subarray(invStart + 34, invStart + 24 + 999)), []);
        assert.equal(parser.pending, 1);
        assert.equal(parser.buffered, 24);
        assert.deepEqual(summarize(parser.push(wire.subarray(invStart + 24 + 999))), expected.slice(1));
        assert.equal(parser.pending, 0);
      });
    });

    it('assembles a large payload arriving in many small chunks and parses what follows it', () => {
      const payload = randomBytes(300_000);
      const pings = Array.from({ length: 100 }, (_, i) => frame('ping', Buffer.alloc(8, i)));
      const wire = Buffer.concat([frame('block', payload), ...pings]);
      const parser = new V1Parser(MAIN);
      const events: V1Event[] = [];
      for (let i = 0; i < wire.length; i += 997) events.push(...parser.push(wire.subarray(i, i + 997)));
      assert.equal(events.length, 101);
      assert.ok(events[0].type === 'message');
      assert.ok(events[0].payload.equals(payload));
      assert.deepEqual(
        summarize(events.slice(1)),
        summarize(pings.map((p) => ({ type: 'message', command: 'ping', header: p.subarray(0, 24), payload: p.subarray(24) }))),
      );
      assert.equal(parser.buffered, 0);
    });
  });

  describe('V1Parser.push(chunk, transient = true): every chunk a view of one read buffer, overwritten after each call', () => {
    /** Feed `stream` cut at `cuts` through one reused buffer (0xEE after each call, as the next socket read does); what each message was when handed out. */
    function replay(stream: Buffer, cuts: readonly number[]): string[] {
      const parser = new V1Parser(MAIN);
      const read = Buffer.allocUnsafeSlow(stream.length);
      const out: string[] = [];
      let at = 0;
      for (const end of [...cuts, stream.length]) {
        if (end === at) continue;
        stream.copy(read, 0, at, end);
        out.push(...summarize(parser.push(read.subarray(0, end - at), true)));
        read.fill(0xee);
        at = end;
      }
      assert.equal(parser.buffered, 0);
      return out;
    }

    const messages: Array<[string, Buffer]> = [
      ['version', VERSION_PAYLOAD],
      ['ping', randomBytes(8)],
      ['block', randomBytes(300_000)],
      ['verack', Buffer.alloc(0)],
      ['tx', randomBytes(5000)],
      ['inv', randomBytes(37)],
    ];
    const stream = Buffer.concat(messages.map(([c, p]) => frame(c, p)));
    // The oracle: the same bytes pushed whole, as owned memory, into a parser that keeps views.
    const expected = summarize(new V1Parser(MAIN).push(Buffer.from(stream)));

    it('the oracle is what the messages are', () => {
      assert.deepEqual(
        expected,
        messages.map(([c, p]) => `message ${c} ${frame(c, p).subarray(0, 24).toString('hex')} ${p.toString('hex')}`),
      );
    });

    for (const size of [1, 7, 23, 24, 25, 1000, 4095, 4096, 65536, 262144]) {
      it(`reads of ${size} bytes`, () => {
        const cuts = Array.from({ length: Math.ceil(stream.length / size) - 1 }, (_, i) => (i + 1) * size);
        assert.deepEqual(replay(stream, cuts), expected);
      });
    }

    it('a header complete in one read, its payload in later ones (the header is kept)', () => {
      // Cut right after each header, and again inside each payload.
      const cuts: number[] = [];
      let at = 0;
      for (const [c, p] of messages) {
        cuts.push(at + 24);
        if (p.length > 1) cuts.push(at + 24 + Math.floor(p.length / 2));
        at += frame(c, p).length;
      }
      assert.deepEqual(replay(stream, cuts), expected);
    });

    it('random cuts', () => {
      for (let round = 0; round < 20; round++) {
        const cuts = [...new Set(Array.from({ length: 40 }, () => 1 + Math.floor(Math.random() * (stream.length - 1))))].sort((a, b) => a - b);
        assert.deepEqual(replay(stream, cuts), expected, `cuts ${cuts.join(',')}`);
      }
    });
  });
});
