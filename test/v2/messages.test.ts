/**
 * Tests for src/v2/messages.ts: BIP324 message type encoding in v2 contents (BIP324 "v2 Bitcoin P2P message structure").
 * The short id table is restated here from the BIP rather than read back from the module.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { isProxyError, type ErrorCode } from '../../src/errors.js';
import { SHORT_ID_COMMANDS, contentsPrefix, decodeContents, shortIdFor } from '../../src/v2/messages.js';

const BIP324_TABLE: Array<[number, string]> = [
  [1, 'addr'],
  [2, 'block'],
  [3, 'blocktxn'],
  [4, 'cmpctblock'],
  [5, 'feefilter'],
  [6, 'filteradd'],
  [7, 'filterclear'],
  [8, 'filterload'],
  [9, 'getblocks'],
  [10, 'getblocktxn'],
  [11, 'getdata'],
  [12, 'getheaders'],
  [13, 'headers'],
  [14, 'inv'],
  [15, 'mempool'],
  [16, 'merkleblock'],
  [17, 'notfound'],
  [18, 'ping'],
  [19, 'pong'],
  [20, 'sendcmpct'],
  [21, 'tx'],
  [22, 'getcfilters'],
  [23, 'cfilter'],
  [24, 'getcfheaders'],
  [25, 'cfheaders'],
  [26, 'getcfcheckpt'],
  [27, 'cfcheckpt'],
  [28, 'addrv2'],
];

function longForm(command: string): Buffer {
  const field = Buffer.alloc(12);
  field.write(command, 'latin1');
  return Buffer.concat([Buffer.from([0]), field]);
}

function droppedWith(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isProxyError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.fatal, false, 'the message is dropped, the connection kept');
    return true;
  });
}

describe('v2 message types', () => {
  it('maps all 28 BIP324 short ids both ways', () => {
    const payload = Buffer.from('cafe', 'hex');
    for (const [id, command] of BIP324_TABLE) {
      assert.equal(SHORT_ID_COMMANDS.get(id), command);
      assert.equal(shortIdFor(command), id);
      assert.deepEqual(contentsPrefix(command), Buffer.from([id]));
      assert.deepEqual(decodeContents(Buffer.from([id, 0xca, 0xfe])), { command, payload });
    }
  });

  it('knows exactly ids 1..28 and 37', () => {
    assert.deepEqual(
      [...SHORT_ID_COMMANDS.keys()].sort((a, b) => a - b),
      [...BIP324_TABLE.map(([id]) => id), 37],
    );
  });

  it('decodes id 37 as feature but sends feature in the long form', () => {
    assert.deepEqual(decodeContents(Buffer.from([37, 1, 2])), { command: 'feature', payload: Buffer.from([1, 2]) });
    assert.equal(shortIdFor('feature'), undefined);
    assert.deepEqual(contentsPrefix('feature'), longForm('feature'));
  });

  it('sends version, verack, sendaddrv2, wtxidrelay, sendheaders, getaddr and sendtxrcncl in the long form', () => {
    for (const command of ['version', 'verack', 'sendaddrv2', 'wtxidrelay', 'sendheaders', 'getaddr', 'sendtxrcncl']) {
      assert.equal(shortIdFor(command), undefined, command);
      const prefix = contentsPrefix(command);
      assert.equal(prefix.length, 13);
      assert.deepEqual(prefix, longForm(command));
      assert.deepEqual(decodeContents(Buffer.concat([prefix, Buffer.from('ab', 'hex')])), { command, payload: Buffer.from('ab', 'hex') });
    }
  });

  it('decodes the long form of a command that has a short id the same as the short id (0x0a vs 0x00 getblocktxn)', () => {
    const payload = randomBytes(40);
    const short = decodeContents(Buffer.concat([Buffer.from([0x0a]), payload]));
    const long = decodeContents(Buffer.concat([Buffer.from('00' + Buffer.from('getblocktxn').toString('hex') + '00', 'hex'), payload]));
    assert.deepEqual(short, { command: 'getblocktxn', payload });
    assert.deepEqual(long, short);
  });

  it('drops undefined short ids 0x1d..0x24 and 0x26..0xff (ERR_V2_UNKNOWN_SHORT_ID, not fatal)', () => {
    let checked = 0;
    for (let id = 0x1d; id <= 0xff; id++) {
      if (id === 0x25) continue;
      droppedWith(() => decodeContents(Buffer.from([id, 1, 2, 3])), 'ERR_V2_UNKNOWN_SHORT_ID');
      droppedWith(() => decodeContents(Buffer.from([id])), 'ERR_V2_UNKNOWN_SHORT_ID');
      checked++;
    }
    assert.equal(checked, 8 + 218);
  });

  it('drops empty contents (ERR_V2_EMPTY_CONTENTS, not fatal)', () => {
    droppedWith(() => decodeContents(Buffer.alloc(0)), 'ERR_V2_EMPTY_CONTENTS');
  });

  it('drops a long form with fewer than 12 command bytes (ERR_V2_BAD_LONG_COMMAND, not fatal)', () => {
    const full = longForm('ping');
    for (let len = 1; len < 13; len++) {
      droppedWith(() => decodeContents(full.subarray(0, len)), 'ERR_V2_BAD_LONG_COMMAND');
    }
    assert.deepEqual(decodeContents(full), { command: 'ping', payload: Buffer.alloc(0) });
  });

  it('drops a long form whose command has a non-printable byte (ERR_V2_BAD_LONG_COMMAND, not fatal)', () => {
    for (const bad of [0x01, 0x1f, 0x7f, 0x80, 0xff]) {
      const contents = longForm('pingx');
      contents[5] = bad;
      droppedWith(() => decodeContents(contents), 'ERR_V2_BAD_LONG_COMMAND');
    }
  });

  it('drops a long form with a non-NUL byte after the first NUL (ERR_V2_BAD_LONG_COMMAND, not fatal)', () => {
    const contents = Buffer.concat([Buffer.from('00', 'hex'), Buffer.from('ping\0\0\0\0\0\0\0x', 'latin1'), Buffer.from('0102', 'hex')]);
    droppedWith(() => decodeContents(contents), 'ERR_V2_BAD_LONG_COMMAND');
  });

  it('accepts a long form with an all-NUL command field (empty name), as Core does', () => {
    assert.deepEqual(decodeContents(Buffer.from('00' + '00'.repeat(12) + '07', 'hex')), { command: '', payload: Buffer.from([7]) });
    assert.deepEqual(contentsPrefix(''), Buffer.alloc(13));
  });

  it('accepts a 12-character long-form command with no NUL', () => {
    assert.deepEqual(decodeContents(longForm('abcdefghijkl')), { command: 'abcdefghijkl', payload: Buffer.alloc(0) });
  });

  it('returns the payload as a view of the contents', () => {
    const contents = Buffer.concat([longForm('version'), randomBytes(100)]);
    const { payload } = decodeContents(contents);
    assert.equal(payload.buffer, contents.buffer);
    assert.equal(payload.byteOffset, contents.byteOffset + 13);
    const short = Buffer.from([18, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(decodeContents(short).payload.byteOffset, short.byteOffset + 1);
  });

  it('caches the prefix per command', () => {
    assert.equal(contentsPrefix('ping'), contentsPrefix('ping'));
    assert.equal(contentsPrefix('version'), contentsPrefix('version'));
  });

  it('refuses to encode a command longer than 12 characters or not printable ASCII', () => {
    droppedWith(() => contentsPrefix('abcdefghijklm'), 'ERR_V2_BAD_LONG_COMMAND');
    droppedWith(() => contentsPrefix('ver\0'), 'ERR_V2_BAD_LONG_COMMAND');
    droppedWith(() => contentsPrefix('caf\u00e9'), 'ERR_V2_BAD_LONG_COMMAND');
  });

  it('round trips random commands and payloads', () => {
    const names = BIP324_TABLE.map(([, c]) => c);
    for (let i = 0; i < 2000; i++) {
      const command =
        i % 3 === 0 ? names[i % names.length] : Array.from({ length: i % 13 }, () => String.fromCharCode(0x20 + Math.floor(Math.random() * 95))).join('');
      const payload = randomBytes(Math.floor(Math.random() * 300));
      const prefix = contentsPrefix(command);
      assert.equal(prefix.length, shortIdFor(command) === undefined ? 13 : 1);
      assert.deepEqual(decodeContents(Buffer.concat([prefix, payload])), { command, payload });
    }
  });
});
