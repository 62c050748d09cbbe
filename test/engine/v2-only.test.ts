/**
 * --v2-only on every outbound front end. The SOCKS5 cases live in outbound.test.ts; here the legacy
 * front end (the destination taken from addr_recv of the client's VERSION) must refuse a v1-only
 * peer the same way instead of silently downgrading the client to plaintext v1.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { networkByName } from '../../src/networks.js';
import { MessageChannel, handshakeV1, startTestNode, versionPayload } from '../helpers/node.js';
import { startProxy } from '../helpers/proxy.js';

const main = networkByName('main')!;
const timeouts = { socksMs: 5000, connectMs: 3000, handshakeMs: 400, idleMs: 60_000 };

async function legacyClient(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  return socket;
}

describe('--v2-only: legacy front end', function () {
  this.timeout(20_000);

  for (const mode of ['v1-close', 'v1-hang'] as const) {
    it(`refuses a v1-only peer that ${mode === 'v1-close' ? 'closes' : 'hangs'}: ERR_V2_ONLY, no v1 reconnect, the client gets no byte`, async () => {
      const node = await startTestNode(main.magic, mode);
      const proxy = await startProxy({ downgradeGuard: 'all', timeouts });
      try {
        const socket = await legacyClient(proxy.port);
        const received: Buffer[] = [];
        socket.on('data', (d) => received.push(d));
        const closed = new Promise((r) => socket.once('close', r));
        new MessageChannel(socket, main.magic).send('version', versionPayload({ host: '127.0.0.1', port: node.port }));
        await closed;
        assert.equal(Buffer.concat(received).length, 0, 'the client got bytes');
        assert.equal(node.accepted, 1, 'no v1 reconnect');
        assert.ok(!node.firstBytes[0].subarray(0, 4).equals(main.magic), 'the only attempt was v2');
        const line = await proxy.waitLog(/ closed /);
        assert.match(line, /code=ERR_V2_ONLY/);
        assert.ok(!proxy.logs.some((l) => /transport=v1-fallback/.test(l)), 'a v1 fallback was established');
      } finally {
        await proxy.stop();
        await node.stop();
      }
    });
  }

  it('without --v2-only the same legacy client falls back to v1 (the contrast that makes the refusal meaningful)', async () => {
    const node = await startTestNode(main.magic, 'v1-close');
    const proxy = await startProxy({ downgradeGuard: 'known', timeouts });
    try {
      const socket = await legacyClient(proxy.port);
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client, { host: '127.0.0.1', port: node.port });
      await proxy.waitLog(/established .*frontend=legacy .*transport=v1-fallback/);
      assert.equal(node.accepted, 2);
      socket.destroy();
    } finally {
      await proxy.stop();
      await node.stop();
    }
  });

  it('still speaks v2 to a v2 peer under --v2-only', async () => {
    const node = await startTestNode(main.magic, 'v2');
    const proxy = await startProxy({ downgradeGuard: 'all', timeouts });
    try {
      const socket = await legacyClient(proxy.port);
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client, { host: '127.0.0.1', port: node.port });
      await proxy.waitLog(/established .*frontend=legacy .*transport=v2/);
      assert.ok(node.channels[0].isV2);
      socket.destroy();
    } finally {
      await proxy.stop();
      await node.stop();
    }
  });
});
