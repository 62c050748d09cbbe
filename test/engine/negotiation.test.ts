/**
 * The negotiation phase on real sockets (engine/negotiation.ts, engine/reader.ts): bytes a client
 * pipelines past its SOCKS5 request are not lost, and a client that leaves during negotiation is
 * refused as gone (ERR_CLIENT_CLOSED) at once, not after the negotiation deadline.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { networkByName } from '../../src/networks.js';
import { serializeV1 } from '../../src/v1/framing.js';
import { MessageChannel, startTestNode, versionPayload } from '../helpers/node.js';
import { startProxy } from '../helpers/proxy.js';

const MAIN = networkByName('main')!;

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => {});
    s.once('error', reject);
  });
}

describe('negotiation', function () {
  this.timeout(30_000);

  it('a client that sends greeting, request and its VERSION in one write gets its session (nothing past the request is lost)', async () => {
    const node = await startTestNode(MAIN.magic, 'v2');
    const proxy = await startProxy();
    try {
      const s = await connect(proxy.port);
      const host = Buffer.from('127.0.0.1');
      const port = Buffer.alloc(2);
      port.writeUInt16BE(node.port);
      s.write(
        Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 3, host.length]), host, port, serializeV1(MAIN.magic, 'version', versionPayload())]),
      );
      // Method reply (2 bytes) and CONNECT reply (10 bytes), then the node's VERSION over v1.
      const replies = await new Promise<Buffer>((resolve) => {
        let got = Buffer.alloc(0);
        const onData = (c: Buffer): void => {
          got = Buffer.concat([got, c]);
          if (got.length >= 12) {
            s.off('data', onData);
            s.pause();
            resolve(got);
          }
        };
        s.on('data', onData);
      });
      assert.deepEqual([...replies.subarray(0, 4)], [5, 0, 5, 0]);
      const ch = new MessageChannel(s, MAIN.magic, { initial: replies.subarray(12) });
      s.resume();
      await ch.next('version');
      await ch.next('verack');
      s.destroy();
    } finally {
      await proxy.stop();
      await node.stop();
    }
  });

  for (const how of ['FIN', 'reset'] as const) {
    it(`a client that leaves in the middle of its greeting (${how}) is refused with ERR_CLIENT_CLOSED at once, not at the negotiation deadline`, async () => {
      const proxy = await startProxy({ timeouts: { socksMs: 20_000, connectMs: 3000, handshakeMs: 5000, idleMs: 60_000 } });
      try {
        const s = await connect(proxy.port);
        s.write(Buffer.from([5, 2]));
        await proxy.waitLog(/accepted/);
        await new Promise((r) => setTimeout(r, 50));
        if (how === 'FIN') s.end();
        else s.resetAndDestroy();
        assert.match(await proxy.waitLog(/refused/, 5000), /code=ERR_CLIENT_CLOSED/);
        s.destroy();
      } finally {
        await proxy.stop();
      }
    });
  }
});
