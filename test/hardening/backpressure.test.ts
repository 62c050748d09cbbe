/**
 * Backpressure end to end (bridge.ts: "a socket whose write buffer is full pauses the socket feeding
 * it"): a client that stops reading while the remote pushes 200 MiB must not make the proxy buffer
 * them. The remote writes 1 MiB messages only as fast as its own socket drains, so once the proxy
 * stops reading from it, the remote stops too and the 200 MiB stay pending at the source. Then the
 * client reads again and every byte arrives, in order (hash compare).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { V1Parser, serializeV1 } from '../../src/v1/framing.js';
import { MAIN } from '../helpers/fuzz/inputs.js';
import { type ScriptedConn, type ScriptedNode, startScriptedNode } from '../helpers/fuzz/scripted-node.js';
import { sleep } from '../helpers/fuzz/sockets.js';
import { expectNoLeaks, proxyBuffered, settle } from '../helpers/leaks.js';
import { type Msg, socks5Connect, versionPayload } from '../helpers/node.js';
import { type TestProxy, startProxy } from '../helpers/proxy.js';

const MiB = 1 << 20;
const COUNT = 200;

/** A v1 client that hashes 'blast' payloads as they arrive instead of keeping 200 MiB around. */
class HashingClient {
  readonly hash = createHash('sha256');
  blasts = 0;
  readonly other: Msg[] = [];
  private readonly parser = new V1Parser(MAIN.magic);

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const ev of this.parser.push(chunk)) {
        if (ev.type !== 'message') throw new Error(`client dropped a message: ${ev.error.message}`);
        if (ev.command === 'blast') {
          this.hash.update(ev.payload);
          this.blasts++;
        } else this.other.push({ command: ev.command, payload: ev.payload });
      }
    });
  }

  send(command: string, payload: Buffer = Buffer.alloc(0)): void {
    this.socket.write(serializeV1(MAIN.magic, command, payload));
  }

  async waitFor(what: () => boolean, ms: number, label: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!what()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
      await sleep(10);
    }
  }
}

describe('hardening: backpressure', function () {
  this.timeout(120_000);
  let node: ScriptedNode;
  let proxy: TestProxy;
  afterEach(async () => {
    await proxy?.stop();
    await node?.stop();
  });

  it('a client that stops reading while the remote sends 200 MiB: the proxy buffers a bounded amount (RSS growth < 150 MB), then all 200 MiB arrive intact', async () => {
    const base = randomBytes(MiB);
    const nodeHash = createHash('sha256');
    let nodeSent = 0;
    let blasting: Promise<void> | undefined;
    const blast = async (conn: ScriptedConn): Promise<void> => {
      const { socket, channel } = conn;
      for (let i = 0; i < COUNT && !socket.destroyed; i++) {
        const p = Buffer.allocUnsafe(MiB);
        base.copy(p);
        p.writeUInt32LE(i, 0);
        nodeHash.update(p);
        channel.send('blast', p);
        nodeSent++;
        // The node's own backpressure: never more than one message queued in its socket.
        if (socket.writableNeedDrain) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              socket.off('drain', done);
              socket.off('close', done);
              resolve();
            };
            socket.on('drain', done);
            socket.on('close', done);
          });
        }
      }
    };
    node = await startScriptedNode({
      recordSent: false,
      onMessage: (conn, m) => {
        if (m.command === 'blast') blasting = blast(conn);
      },
    });
    proxy = await startProxy({ timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 3000, idleMs: 60_000 } });
    const before = await settle();

    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    assert.equal(rep, 0);
    const client = new HashingClient(socket);
    client.send('version', versionPayload());
    await client.waitFor(() => client.other.some((m) => m.command === 'verack'), 10_000, 'verack');
    client.send('verack');

    const proxyPort = proxy.port;
    const nodePort = node.port;

    const rss0 = process.memoryUsage().rss;
    let rssMax = rss0;
    let bufferedMax = 0;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
      bufferedMax = Math.max(bufferedMax, proxyBuffered(proxyPort, nodePort));
    }, 10);
    const started = Date.now();
    try {
      socket.pause();
      client.send('blast');
      // Wait until the remote is held back: no new message for 500 ms.
      let last = -1;
      let stillSince = Date.now();
      while (Date.now() - stillSince < 500) {
        if (nodeSent !== last) {
          last = nodeSent;
          stillSince = Date.now();
        }
        if (Date.now() - started > 30_000) break;
        await sleep(20);
      }
      const heldAt = nodeSent;
      const pendingMiB = COUNT - client.blasts;
      assert.ok(heldAt < COUNT / 2, `the remote could send ${heldAt} of ${COUNT} MiB to a client that was not reading`);
      assert.equal(pendingMiB, COUNT, 'the paused client read nothing');
      const growth = rssMax - rss0;
      assert.ok(growth < 150 * 1e6, `RSS grew by ${(growth / 1e6).toFixed(0)} MB while ${COUNT} MiB were pending`);
      assert.ok(bufferedMax < 8 * MiB, `the proxy's sockets held up to ${(bufferedMax / MiB).toFixed(1)} MiB`);
      console.log(
        `      (client paused: the remote was held back after ${heldAt} of ${COUNT} MiB; RSS +${(growth / 1e6).toFixed(0)} MB; ` +
          `proxy socket buffers peaked at ${(bufferedMax / MiB).toFixed(2)} MiB)`,
      );

      const resumed = Date.now();
      socket.resume();
      await client.waitFor(() => client.blasts === COUNT, 90_000, `${COUNT} blasts`);
      await blasting;
      assert.equal(client.hash.digest('hex'), nodeHash.digest('hex'), 'the 200 MiB arrived altered');
      console.log(`      (then ${COUNT} MiB arrived intact in ${((Date.now() - resumed) / 1000).toFixed(1)} s)`);
    } finally {
      clearInterval(sampler);
      socket.destroy();
    }
    await expectNoLeaks(before);
  });
});
