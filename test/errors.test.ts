/**
 * ProxyError: the defaults a thrower relies on (fatal unless told otherwise, a cause only when
 * given), withReply(), and isProxyError() matching the code asked for.
 */
import assert from 'node:assert/strict';

import { ProxyError, isProxyError } from '../src/errors.js';

describe('ProxyError', () => {
  it('is fatal unless told otherwise, and carries a cause only when given one', () => {
    const plain = new ProxyError('ERR_V1_BAD_CHECKSUM', 'bad checksum');
    assert.equal(plain.fatal, true);
    assert.equal(Object.hasOwn(plain, 'cause'), false);
    assert.equal(new ProxyError('ERR_V1_BAD_CHECKSUM', 'bad checksum', { fatal: false }).fatal, false);
    const cause = new Error('ECONNRESET');
    const wrapped = new ProxyError('ERR_PEER_RESET', 'peer reset', { cause });
    assert.equal(wrapped.cause, cause);
  });

  it('withReply() keeps the same error without a reply, and copies code, message, fatal and cause with one', () => {
    const cause = new Error('refused');
    const err = new ProxyError('ERR_DIAL_REFUSED', 'connection refused', { fatal: false, cause });
    assert.equal(err.withReply(undefined), err);
    const reply = Buffer.from([0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    const withReply = err.withReply(reply);
    assert.notEqual(withReply, err);
    assert.ok(withReply instanceof ProxyError);
    assert.deepEqual(
      [withReply.code, withReply.message, withReply.fatal, withReply.cause, withReply.reply],
      ['ERR_DIAL_REFUSED', 'connection refused', false, cause, reply],
    );
    assert.equal(err.reply, undefined);
  });

  it('isProxyError() matches any ProxyError without a code, and only that code with one', () => {
    const err = new ProxyError('ERR_CONFIG', 'bad option');
    assert.equal(isProxyError(err), true);
    assert.equal(isProxyError(err, 'ERR_CONFIG'), true);
    assert.equal(isProxyError(err, 'ERR_INTERNAL'), false);
    assert.equal(isProxyError(Object.assign(new Error('bad option'), { code: 'ERR_CONFIG' }), 'ERR_CONFIG'), false);
  });
});
