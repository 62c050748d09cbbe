/**
 * Load: 1,000 concurrent v1 clients through the proxy (SOCKS5) to v2 peers, each doing
 * version/verack and exchanging random messages both ways, all byte-exact.
 *
 * The peers (four test nodes) run in a child process, so the proxy's process (this one) does only
 * the proxy's half of the 1,000 BIP324 handshakes, and its RSS is the proxy's plus the test clients'.
 * The time taken and the RSS per connection are printed for the record (not asserted beyond loose
 * bounds: the machine decides the numbers).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { MAIN } from '../helpers/fuzz/inputs.js';
import { sleep } from '../helpers/fuzz/sockets.js';
import { MessageChannel, handshakeV1, socks5Connect } from '../helpers/node.js';
import { type TestProxy, startProxy } from '../helpers/proxy.js';

const CONNECTIONS = 1000;
const NODES = 4;
/** Connections being set up at once (the listen backlog is 511; more would only queue SYNs). */
const SETUP_CONCURRENCY = 100;

const HOST_SCRIPT = `
const { startTestNode } = await import(process.env.NODE_HELPER_URL);
const magic = Buffer.from(process.env.MAGIC_HEX, 'hex');
const nodes = [];
for (let i = 0; i < Number(process.env.NODES); i++) nodes.push(await startTestNode(magic));
process.send({ ports: nodes.map((n) => n.port) });
process.on('message', async () => {
  for (const n of nodes) await n.stop();
  process.exit(0);
});
process.on('disconnect', () => process.exit(0));
`;

async function startNodeHost(): Promise<{ ports: number[]; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', HOST_SCRIPT], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_HELPER_URL: new URL('../helpers/node.js', import.meta.url).href, MAGIC_HEX: MAIN.magic.toString('hex'), NODES: String(NODES) },
  });
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { ports: number[] }).ports));
    child.once('exit', (code) => reject(new Error(`node host exited with ${code}`)));
  });
  return {
    ports,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.send('stop');
      await exited;
    },
  };
}

/** Run fn over 0..n-1 with at most `limit` in flight. */
async function pool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

describe('hardening: load', function () {
  this.timeout(180_000);
  let host: Awaited<ReturnType<typeof startNodeHost>> | undefined;
  let proxy: TestProxy | undefined;
  const clients: MessageChannel[] = [];
  after(async () => {
    for (const c of clients) c.socket.destroy();
    await proxy?.stop();
    await host?.stop();
  });

  it(`${CONNECTIONS} concurrent v1 clients to v2 peers: every handshake and every message both ways byte-exact`, async () => {
    host = await startNodeHost();
    proxy = await startProxy({
      maxConnections: CONNECTIONS + 100,
      logLevel: 'warn',
      timeouts: { socksMs: 60_000, connectMs: 30_000, handshakeMs: 60_000, idleMs: 300_000 },
    });
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();

    await pool(CONNECTIONS, SETUP_CONCURRENCY, async (i) => {
      const { socket, rep } = await socks5Connect(proxy!.port, '127.0.0.1', host!.ports[i % NODES]);
      assert.equal(rep, 0, `connection ${i}: SOCKS5 reply`);
      const ch = new MessageChannel(socket, MAIN.magic);
      clients[i] = ch;
      await handshakeV1(ch, undefined, 120_000);
    });
    const tHandshakes = Date.now();
    const established = proxy.server.connections.filter((r) => r.transport === 'v2').length;
    assert.equal(established, CONNECTIONS, 'every connection open at once, over v2');
    const rssPeak = process.memoryUsage().rss;

    // Every client at once: a ping and three random echoes each, compared byte for byte.
    let bytes = 0;
    await Promise.all(
      clients.map(async (ch, i) => {
        const nonce = randomBytes(8);
        ch.send('ping', nonce);
        const payloads = [randomBytes(1 + (i % 50_000)), randomBytes(1000), randomBytes(20_000 + (i % 7) * 1000)];
        for (const p of payloads) ch.send('echo', p);
        assert.deepEqual((await ch.next('pong', 120_000)).payload, nonce, `connection ${i}: pong`);
        for (const p of payloads) {
          const back = await ch.next('echo', 120_000);
          assert.ok(back.payload.equals(p), `connection ${i}: echo of ${p.length} bytes differs`);
          bytes += 2 * p.length;
        }
      }),
    );
    const tExchange = Date.now();
    const rssEnd = process.memoryUsage().rss;
    assert.equal(proxy.server.connections.length, CONNECTIONS);

    for (const c of clients) c.socket.destroy();
    const deadline = Date.now() + 30_000;
    while (proxy.server.connections.length > 0 && Date.now() < deadline) await sleep(50);
    assert.equal(proxy.server.connections.length, 0, 'every session closed after its client left');
    const tClosed = Date.now();

    const perConn = (Math.max(rssPeak, rssEnd) - rss0) / CONNECTIONS;
    console.log(
      `      (${CONNECTIONS} connections to ${NODES} v2 nodes: set up with handshakes in ${((tHandshakes - t0) / 1000).toFixed(1)} s, ` +
        `${(bytes / 1e6).toFixed(1)} MB of messages both ways in ${((tExchange - tHandshakes) / 1000).toFixed(1)} s, ` +
        `all closed in ${((tClosed - tExchange) / 1000).toFixed(1)} s; RSS ${(rss0 / 1e6).toFixed(0)} -> ${(Math.max(rssPeak, rssEnd) / 1e6).toFixed(0)} MB, ` +
        `${(perConn / 1024).toFixed(0)} KiB per connection (proxy and test clients together))`,
    );
    // Loose bounds: a regression by an order of magnitude shows, machine noise does not.
    assert.ok(perConn < 1024 * 1024, `RSS per connection ${(perConn / 1024).toFixed(0)} KiB`);
  });
});
