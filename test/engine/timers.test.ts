/**
 * The session engine's two timers on real loopback sockets, with short timeouts (bridge.ts):
 * - the handshake timer must be cleared once the v2 session is established, on every front end
 *   (SOCKS5, legacy, inbound): a session must outlive its handshake timeout many times over;
 * - the idle timer must be refreshed by traffic in either direction: a busy session outlives the
 *   idle timeout, and a silent one is closed with ERR_IDLE_TIMEOUT.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Config } from '../../src/config/index.js';
import { networkByName } from '../../src/networks.js';
import { MessageChannel, handshakeV1, socks5Connect, startTestNode, type TestNode } from '../helpers/node.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

const main = networkByName('main')!;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  return socket;
}

/** Ping/pong every `everyMs` for `forMs`: each pong must come back, and the connection must stay up. */
async function pingFor(ch: MessageChannel, forMs: number, everyMs: number): Promise<number> {
  const end = Date.now() + forMs;
  let rounds = 0;
  while (Date.now() < end) {
    const nonce = randomBytes(8);
    ch.send('ping', nonce);
    assert.deepEqual((await ch.next('pong', 5000)).payload, nonce, `pong ${rounds}`);
    rounds++;
    await sleep(everyMs);
  }
  return rounds;
}

function assertNoClose(proxy: TestProxy, ch: MessageChannel, what: string): void {
  assert.equal(ch.closed, false, `${what}: the client connection was closed`);
  const closed = proxy.logs.filter((l) => / (closed|refused) /.test(l));
  assert.deepEqual(closed, [], `${what}: the proxy ended a connection`);
  assert.equal(proxy.server.connections.length, 1, `${what}: the session is no longer live`);
}

describe('engine timers: the handshake timer stops at establishment', function () {
  this.timeout(20_000);
  const HANDSHAKE_MS = 300;
  const timeouts: Config['timeouts'] = { socksMs: 5000, connectMs: 3000, handshakeMs: HANDSHAKE_MS, idleMs: 60_000 };
  let node: TestNode | undefined;
  let proxy: TestProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    await node?.stop();
    proxy = undefined;
    node = undefined;
  });

  it(`SOCKS5: a v2 session exchanging pings for 3x the ${HANDSHAKE_MS} ms handshake timeout stays open`, async () => {
    node = await startTestNode(main.magic);
    proxy = await startProxy({ timeouts });
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    assert.equal(rep, 0);
    const client = new MessageChannel(socket, main.magic);
    await handshakeV1(client);
    await proxy.waitLog(/established .*frontend=socks5 .*transport=v2/);
    assert.ok((await pingFor(client, 3 * HANDSHAKE_MS, 100)) >= 5);
    assertNoClose(proxy, client, 'socks5');
    socket.destroy();
  });

  it(`SOCKS5: a v2 session silent for 3x the handshake timeout (idle timeout far off) stays open`, async () => {
    node = await startTestNode(main.magic);
    proxy = await startProxy({ timeouts });
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    const client = new MessageChannel(socket, main.magic);
    await handshakeV1(client);
    await proxy.waitLog(/established .*transport=v2/);
    await sleep(3 * HANDSHAKE_MS);
    assertNoClose(proxy, client, 'silent socks5');
    const nonce = randomBytes(8);
    client.send('ping', nonce);
    assert.deepEqual((await client.next('pong')).payload, nonce);
    socket.destroy();
  });

  it(`legacy: a v2 session exchanging pings for 3x the handshake timeout stays open`, async () => {
    node = await startTestNode(main.magic);
    proxy = await startProxy({ timeouts });
    const socket = await connect(proxy.port);
    const client = new MessageChannel(socket, main.magic);
    await handshakeV1(client, { host: '127.0.0.1', port: node.port });
    await proxy.waitLog(/established .*frontend=legacy .*transport=v2/);
    assert.ok(node.channels[0].isV2);
    assert.ok((await pingFor(client, 3 * HANDSHAKE_MS, 100)) >= 5);
    assertNoClose(proxy, client, 'legacy');
    socket.destroy();
  });

  // The negotiation's own deadline (--socks-timeout), re-armed per phase, must be cleared too.
  for (const frontEnd of ['SOCKS5', 'legacy'] as const) {
    it(`${frontEnd}: a v2 session exchanging pings for 3x a ${HANDSHAKE_MS} ms --socks-timeout stays open`, async () => {
      node = await startTestNode(main.magic);
      proxy = await startProxy({ timeouts: { ...timeouts, socksMs: HANDSHAKE_MS, handshakeMs: 5000 } });
      const socket = frontEnd === 'SOCKS5' ? (await socks5Connect(proxy.port, '127.0.0.1', node.port)).socket : await connect(proxy.port);
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client, frontEnd === 'SOCKS5' ? undefined : { host: '127.0.0.1', port: node.port });
      await proxy.waitLog(/established .*transport=v2/);
      assert.ok((await pingFor(client, 3 * HANDSHAKE_MS, 100)) >= 5);
      assertNoClose(proxy, client, frontEnd);
      socket.destroy();
    });
  }

  it(`inbound: a v2 peer exchanging pings for 3x the handshake timeout stays open`, async () => {
    node = await startTestNode(main.magic, 'v1-close');
    proxy = await startProxy({
      network: main,
      timeouts,
      inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }],
    });
    const peer = new MessageChannel(await connect(proxy.server.inboundAddresses[0].port), main.magic, { v2: 'initiator' });
    await handshakeV1(peer);
    await proxy.waitLog(/established .*frontend=inbound .*transport=inbound-v2/);
    assert.ok((await pingFor(peer, 3 * HANDSHAKE_MS, 100)) >= 5);
    assertNoClose(proxy, peer, 'inbound');
    peer.socket.destroy();
  });

  it('the handshake timer itself still works: a v2 remote that never finishes its handshake is cut with ERR_V2_HANDSHAKE_TIMEOUT', async () => {
    // A remote that sends a few bytes (so it is not taken for a silent v1 peer) and then nothing.
    const stalled = net.createServer((s) => {
      s.on('error', () => {});
      s.write(randomBytes(10));
    });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
    try {
      proxy = await startProxy({ timeouts });
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', (stalled.address() as net.AddressInfo).port);
      const client = new MessageChannel(socket, main.magic);
      const started = Date.now();
      client.send('version', Buffer.alloc(86));
      await client.waitClosed(5000);
      assert.match(await proxy.waitLog(/ closed /), /code=ERR_V2_HANDSHAKE_TIMEOUT/);
      assert.ok(Date.now() - started >= HANDSHAKE_MS - 20, `closed after ${Date.now() - started} ms, before the handshake timeout`);
    } finally {
      stalled.close();
    }
  });
});

describe('engine timers: traffic refreshes the idle timer', function () {
  this.timeout(20_000);
  const IDLE_MS = 400;
  const timeouts: Config['timeouts'] = { socksMs: 5000, connectMs: 3000, handshakeMs: 5000, idleMs: IDLE_MS };
  let node: TestNode;
  let proxy: TestProxy;
  beforeEach(async () => {
    node = await startTestNode(main.magic);
    proxy = await startProxy({ timeouts });
  });
  afterEach(async () => {
    await proxy.stop();
    await node.stop();
  });

  async function session(): Promise<MessageChannel> {
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    assert.equal(rep, 0);
    const client = new MessageChannel(socket, main.magic);
    await handshakeV1(client);
    await proxy.waitLog(/established .*transport=v2/);
    return client;
  }

  it(`pings every 100 ms for 1.5 s keep a session with a ${IDLE_MS} ms idle timeout open`, async () => {
    const client = await session();
    await pingFor(client, 1500, 100);
    assertNoClose(proxy, client, 'both directions');
    client.socket.destroy();
  });

  it('traffic from the client alone (unanswered messages every 100 ms for 1.5 s) keeps it open', async () => {
    const client = await session();
    const end = Date.now() + 1500;
    let sent = 0;
    while (Date.now() < end) {
      client.send('sink', Buffer.from([sent++]));
      await sleep(100);
    }
    assertNoClose(proxy, client, 'client to peer only');
    await node.channels[0].until(() => node.channels[0].received.filter((m) => m.command === 'sink').length === sent, 5000, 'every sink message');
    assert.equal(client.received.length, 0, 'the node answered nothing');
    client.socket.destroy();
  });

  it('traffic from the remote alone (a message every 100 ms for 1.5 s, the client silent) keeps it open', async () => {
    const client = await session();
    const end = Date.now() + 1500;
    let sent = 0;
    while (Date.now() < end) {
      node.channels[0].send('tick', Buffer.from([sent++]));
      await sleep(100);
    }
    assertNoClose(proxy, client, 'peer to client only');
    await client.until(() => client.received.filter((m) => m.command === 'tick').length === sent, 5000, 'every tick');
    client.socket.destroy();
  });

  it('a silent session is closed with ERR_IDLE_TIMEOUT, not before the idle timeout', async () => {
    const client = await session();
    const quietSince = Date.now();
    await client.waitClosed(5000);
    const after = Date.now() - quietSince;
    assert.match(await proxy.waitLog(/ closed /), /code=ERR_IDLE_TIMEOUT/);
    assert.ok(after >= IDLE_MS - 20, `closed ${after} ms after the last byte`);
    assert.ok(node.channels[0].closed || (await node.channels[0].waitClosed(2000).then(() => true)), 'the remote side is closed too');
  });

  it('traffic that stops is closed at the idle timeout after the last byte', async () => {
    const client = await session();
    await pingFor(client, 600, 100);
    const nonce = randomBytes(8);
    client.send('ping', nonce);
    await client.next('pong');
    const lastByte = Date.now();
    await client.waitClosed(5000);
    assert.ok(Date.now() - lastByte >= IDLE_MS - 20);
    assert.match(await proxy.waitLog(/ closed /), /code=ERR_IDLE_TIMEOUT/);
  });
});
