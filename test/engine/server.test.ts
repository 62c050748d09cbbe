/**
 * ProxyServer start-up and shutdown, beyond the connections themselves.
 */
import assert from 'node:assert/strict';
import { DEFAULT_KEY_POOL_SIZE, ephemeralKeys } from '../../src/crypto/keypool.js';
import { startProxy } from '../helpers/proxy.js';

describe('ProxyServer', () => {
  it('makes the ephemeral key pool ready when it starts listening, before any connection, and wipes it on close', async () => {
    ephemeralKeys.clear();
    assert.equal(ephemeralKeys.available, 0);
    const proxy = await startProxy();
    try {
      const deadline = Date.now() + 10_000;
      while (ephemeralKeys.available < DEFAULT_KEY_POOL_SIZE && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(ephemeralKeys.available, DEFAULT_KEY_POOL_SIZE, 'every key made without a connection asking for one');
    } finally {
      await proxy.stop();
    }
    assert.equal(ephemeralKeys.available, 0, 'no key outlives the server');
  });
});
