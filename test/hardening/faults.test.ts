/**
 * Faults on real loopback sockets: each one must end only the connection it hits, with a logged
 * reason, while a second connection through the same proxy keeps working, and leave no socket or
 * timer behind. Half-close must pass through in both directions (a message sent before the FIN is
 * delivered and answered), and a peer that stops reading must make the proxy stop reading too
 * (bridge.ts: backpressure both ways) instead of buffering.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { serializeV1 } from '../../src/v1/framing.js';
import { startFakeUpstream } from '../helpers/fuzz/fake-upstream.js';
import { MAIN } from '../helpers/fuzz/inputs.js';
import { LogIndex } from '../helpers/fuzz/log-index.js';
import { type ScriptedNode, startScriptedNode } from '../helpers/fuzz/scripted-node.js';
import { connectTo, sleep } from '../helpers/fuzz/sockets.js';
import { expectNoLeaks, proxyBuffered, settle } from '../helpers/leaks.js';
import { startMicrosocks } from '../helpers/microsocks.js';
import { MessageChannel, type Msg, handshakeV1, socks5Connect, startTestNode, versionPayload } from '../helpers/node.js';
import { type TestProxy, startProxy } from '../helpers/proxy.js';
import { skipBecause } from '../helpers/skip.js';
import { tcpQueueUnavailable, untilAllRead } from '../helpers/tcpqueue.js';

/** A v1 client through the proxy's SOCKS5 port to host:port, past version/verack. */
async function client(proxy: TestProxy, port: number, host = '127.0.0.1'): Promise<MessageChannel> {
  const { socket, rep } = await socks5Connect(proxy.port, host, port);
  assert.equal(rep, 0, 'SOCKS5 reply');
  const ch = new MessageChannel(socket, MAIN.magic);
  await handshakeV1(ch);
  return ch;
}

async function stillWorks(ch: MessageChannel, size = 1_000_000): Promise<void> {
  const nonce = randomBytes(8);
  ch.send('ping', nonce);
  assert.deepEqual((await ch.next('pong')).payload, nonce);
  const payload = randomBytes(size);
  ch.send('echo', payload);
  assert.ok((await ch.next('echo')).payload.equals(payload), 'echo differs');
}

/** The log line that ended the proxy connection of the client on this local port. */
async function endLine(proxy: TestProxy, port: number): Promise<string> {
  const index = new LogIndex(proxy.logs);
  const deadline = Date.now() + 5000;
  for (;;) {
    const id = index.connOf(port, 0);
    const line = id === undefined ? undefined : index.endOf(id);
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`no end line for client port ${port}:\n${proxy.logs.join('\n')}`);
    await sleep(20);
  }
}

describe('hardening: faults end only the connection they hit', function () {
  this.timeout(60_000);
  let proxy: TestProxy | undefined;
  let node: ScriptedNode | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await proxy?.stop();
    await node?.stop();
    for (const c of cleanups.splice(0)) await c();
    proxy = undefined;
    node = undefined;
  });

  it('the remote resets in the middle of a 2 MB message: that client is closed with ERR_PEER_RESET and gets no partial message; another connection keeps working', async function () {
    const why = tcpQueueUnavailable();
    if (why !== undefined) skipBecause(this, why);
    // The RST goes out once the proxy has read the half message: an RST that arrives while bytes are
    // still unread is reported by libuv as a plain end of stream (see helpers/tcpqueue.ts).
    const beforeReset = (): Promise<void> => untilAllRead(node!.port, node!.conns[0].socket.remotePort ?? 0);
    node = await startScriptedNode({ plan: (i) => (i === 0 ? { kind: 'reset-inside', minWrite: 1_000_000, beforeReset } : undefined) });
    proxy = await startProxy();
    const before = await settle();
    const c1 = await client(proxy, node.port);
    const p1 = c1.socket.localPort ?? 0;
    const c2 = await client(proxy, node.port);
    c1.send('echo', randomBytes(2_000_000));
    await c1.waitClosed();
    assert.ok(node.conns[0].tap?.fired, 'the node reset mid-message');
    assert.equal(c1.received.filter((m) => m.command === 'echo').length, 0, 'no partial message delivered');
    assert.match(await endLine(proxy, p1), /closed reason="peer socket error: ECONNRESET" code=ERR_PEER_RESET /);
    await stillWorks(c2);
    c2.socket.destroy();
    await expectNoLeaks(before);
  });

  it('the client resets in the middle of a 2 MB message: the remote connection is closed and never sees the message; another connection keeps working', async function () {
    const why = tcpQueueUnavailable();
    if (why !== undefined) skipBecause(this, why);
    const seen: Msg[] = [];
    node = await startScriptedNode({ onMessage: (conn, m) => conn.index === 0 && seen.push(m) });
    proxy = await startProxy();
    const before = await settle();
    const c1 = await client(proxy, node.port);
    const p1 = c1.socket.localPort ?? 0;
    const c2 = await client(proxy, node.port);
    const frame = serializeV1(MAIN.magic, 'echo', randomBytes(2_000_000));
    // Reset once the proxy has read the half message (an RST that finds bytes unread reads as a FIN).
    c1.socket.write(frame.subarray(0, 1_000_000), () => {
      untilAllRead(p1, proxy!.port).then(
        () => c1.socket.resetAndDestroy(),
        () => c1.socket.resetAndDestroy(),
      );
    });
    await node.conns[0].channel.waitClosed();
    assert.equal(seen.filter((m) => m.command === 'echo').length, 0);
    assert.match(await endLine(proxy, p1), /closed reason="client socket error: ECONNRESET" code=ERR_CLIENT_RESET /);
    await stillWorks(c2);
    c2.socket.destroy();
    await expectNoLeaks(before);
  });

  it('the upstream SOCKS5 proxy (microsocks) dies mid-message: that connection ends with ERR_PEER_RESET, new ones get REP 01, an inbound session keeps working', async () => {
    const microsocks = await startMicrosocks();
    cleanups.push(() => microsocks.stop());
    const v1Node = await startTestNode(MAIN.magic, 'v1-close');
    cleanups.push(() => v1Node.stop());
    node = await startScriptedNode();
    proxy = await startProxy({
      upstreamProxy: { host: '127.0.0.1', port: microsocks.port },
      inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: v1Node.port } }],
    });
    const before = await settle();
    const c1 = await client(proxy, node.port);
    const p1 = c1.socket.localPort ?? 0;
    assert.ok(node.conns[0].channel.isV2, 'v2 through microsocks');
    const peer = new MessageChannel(await connectTo(proxy.server.inboundAddresses[0].port), MAIN.magic, { v2: 'initiator' });
    await handshakeV1(peer);
    c1.send('echo', randomBytes(3_000_000));
    await microsocks.stop();
    await c1.waitClosed();
    assert.equal(c1.received.filter((m) => m.command === 'echo').length, 0);
    // The proxy is writing into the dead relay: the write fails with EPIPE, or the read with ECONNRESET.
    assert.match(await endLine(proxy, p1), /closed reason="peer socket error: (EPIPE|ECONNRESET)" code=ERR_PEER_RESET /);
    // The inbound session does not go through the upstream proxy and is untouched.
    const nonce = randomBytes(8);
    peer.send('ping', nonce);
    assert.deepEqual((await peer.next('pong')).payload, nonce);
    // New outbound connections are refused cleanly while the upstream proxy is gone.
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    assert.equal(rep, 0x01);
    socket.destroy();
    await proxy.waitLog(/refused .*code=ERR_UPSTREAM_PROXY reason=/);
    peer.socket.destroy();
    await expectNoLeaks(before);
  });

  it('the upstream relay drops one connection mid-message: only that one ends (ERR_PEER_RESET), the other through the same upstream keeps working', async () => {
    node = await startScriptedNode();
    const relay = await startFakeUpstream(() => ({ connect: { host: '127.0.0.1', port: node!.port } }));
    cleanups.push(() => relay.stop());
    proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: relay.port } });
    const before = await settle();
    const c1 = await client(proxy, node.port);
    const p1 = c1.socket.localPort ?? 0;
    const c2 = await client(proxy, node.port);
    assert.equal(relay.relays.length, 2);
    c1.send('echo', randomBytes(3_000_000));
    await sleep(5);
    relay.relays[0].client.resetAndDestroy();
    relay.relays[0].target.resetAndDestroy();
    await c1.waitClosed();
    assert.match(await endLine(proxy, p1), /closed reason="peer socket error: (EPIPE|ECONNRESET)" code=ERR_PEER_RESET /);
    await stillWorks(c2);
    c2.socket.destroy();
    await expectNoLeaks(before);
  });

  it('client half-close after a message: the message reaches the node and its reply still reaches the client, then both sides close', async () => {
    node = await startScriptedNode();
    proxy = await startProxy();
    const before = await settle();
    const c = await client(proxy, node.port);
    const payload = randomBytes(1_000_000);
    c.send('echo', payload);
    c.socket.end();
    assert.ok((await c.next('echo')).payload.equals(payload));
    await c.waitClosed();
    assert.ok(node.conns[0].sent.some((m) => m.command === 'echo' && m.payload.equals(payload)));
    // A clean close: no error code after the reason.
    await proxy.waitLog(/closed reason="client closed" client=/);
    await expectNoLeaks(before);
  });

  it('client half-close right after its VERSION, before the v2 handshake is done: VERSION still reaches the node and the reply the client', async () => {
    node = await startScriptedNode();
    proxy = await startProxy();
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    assert.equal(rep, 0);
    const c = new MessageChannel(socket, MAIN.magic);
    c.send('version', versionPayload());
    socket.end();
    await c.next('version');
    await c.next('verack');
    await c.waitClosed();
    assert.ok(node.conns[0].channel.isV2);
  });

  it('legacy client half-close right after its VERSION (while the remote is dialed): the reply arrives and the session closes at once, not at the idle timeout', async () => {
    node = await startScriptedNode();
    proxy = await startProxy({ timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 2000, idleMs: 30_000 } });
    for (let i = 0; i < 5; i++) {
      const socket = await connectTo(proxy.port);
      const c = new MessageChannel(socket, MAIN.magic);
      c.send('version', versionPayload({ host: '127.0.0.1', port: node.port }));
      socket.end();
      const started = Date.now();
      await c.next('verack');
      await c.waitClosed(5000);
      assert.ok(Date.now() - started < 2000, `closed after ${Date.now() - started} ms`);
    }
  });

  it('SOCKS5 client that pipelines its whole request and VERSION, then half-closes at once: the VERSION is not lost to the FIN', async () => {
    node = await startScriptedNode();
    proxy = await startProxy({ timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 2000, idleMs: 30_000 } });
    const socket = await connectTo(proxy.port);
    const connect = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, node.port >> 8, node.port & 0xff]);
    // Greeting (no auth), CONNECT and the VERSION in one write, then the FIN, all before any reply.
    socket.end(Buffer.concat([Buffer.from([5, 1, 0]), connect, serializeV1(MAIN.magic, 'version', versionPayload())]));
    const replies = await new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (c: Buffer): void => {
        got = Buffer.concat([got, c]);
        if (got.length < 12) return;
        socket.off('data', onData);
        socket.pause();
        socket.unshift(got.subarray(12));
        resolve(got.subarray(0, 12));
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error(`closed after ${got.length} bytes`)));
    });
    assert.deepEqual([...replies.subarray(0, 4)], [5, 0, 5, 0], 'method choice, then CONNECT succeeded');
    const c = new MessageChannel(socket, MAIN.magic);
    socket.resume();
    await c.next('version');
    await c.next('verack');
    await c.waitClosed(5000);
    // The node answered the VERSION (its version and verack above), over v2.
    assert.equal(node.conns.length, 1);
    assert.ok(node.conns[0].channel.isV2);
  });

  it('remote half-close after a message: the client gets the message and the FIN, and what it sends afterwards still reaches the node', async () => {
    const seen: Msg[] = [];
    node = await startScriptedNode({
      onMessage: (conn, m) => {
        seen.push(m);
        if (m.command === 'bye') {
          conn.channel.send('bye', m.payload);
          conn.socket.end();
        }
      },
    });
    proxy = await startProxy();
    const before = await settle();
    const c = await client(proxy, node.port);
    c.socket.allowHalfOpen = true; // keep our write side open after the proxy passes the node's FIN on
    const gotEnd = new Promise<void>((resolve) => c.socket.once('end', () => resolve()));
    c.send('bye', Buffer.from('see you'));
    assert.deepEqual((await c.next('bye')).payload, Buffer.from('see you'));
    await gotEnd;
    const last = randomBytes(300_000);
    c.send('last', last);
    const deadline = Date.now() + 5000;
    while (!seen.some((m) => m.command === 'last') && Date.now() < deadline) await sleep(20);
    assert.ok(
      seen.some((m) => m.command === 'last' && m.payload.equals(last)),
      `the node got ${seen.map((m) => m.command).join(',')} after its half-close; proxy log:\n${proxy.logs.slice(-5).join('\n')}`,
    );
    c.socket.end();
    await c.waitClosed();
    await expectNoLeaks(before);
  });

  it('a node that stops reading: the proxy stops reading from the client instead of buffering, and all 64 MiB arrive intact once the node reads again', async () => {
    const SIZE = 1 << 20;
    const COUNT = 64;
    let got = 0;
    const nodeHash = createHash('sha256');
    node = await startScriptedNode({
      onMessage: (_conn, m) => {
        if (m.command !== 'sink') return;
        nodeHash.update(m.payload);
        got++;
      },
    });
    proxy = await startProxy();
    const before = await settle();
    const c = await client(proxy, node.port);
    const nodeSocket = node.conns[0].socket;
    nodeSocket.pause();
    const proxyPort = proxy.port;
    const nodePort = node.port;
    const clientHash = createHash('sha256');
    const base = randomBytes(SIZE);
    let sent = 0;
    let stalledAt: number;
    let maxBuffered = 0;
    const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, proxyBuffered(proxyPort, nodePort))), 10);
    try {
      // Write while the socket takes it; stop when backpressure has reached us and stayed for 500 ms.
      let stalledSince = Date.now();
      while (sent < COUNT && Date.now() - stalledSince < 500) {
        if (c.socket.writableNeedDrain) {
          await sleep(10);
          continue;
        }
        const p = Buffer.from(base);
        p.writeUInt32LE(sent, 0);
        clientHash.update(p);
        c.send('sink', p);
        sent++;
        stalledSince = Date.now();
      }
      stalledAt = sent;
      assert.ok(sent < COUNT, `all ${COUNT} MiB were accepted while the node was not reading: nothing pushed back`);
      assert.ok(maxBuffered < 8 * SIZE, `the proxy buffered up to ${(maxBuffered / SIZE).toFixed(1)} MiB in its sockets`);
      nodeSocket.resume();
      while (sent < COUNT) {
        if (c.socket.writableNeedDrain) await new Promise((r) => c.socket.once('drain', r));
        const p = Buffer.from(base);
        p.writeUInt32LE(sent, 0);
        clientHash.update(p);
        c.send('sink', p);
        sent++;
      }
      const deadline = Date.now() + 30_000;
      while (got < COUNT && Date.now() < deadline) await sleep(20);
    } finally {
      clearInterval(sampler);
    }
    assert.equal(got, COUNT);
    assert.equal(nodeHash.digest('hex'), clientHash.digest('hex'));
    console.log(
      `      (node not reading: the client was held back after ${stalledAt} of ${COUNT} MiB; the proxy's socket buffers peaked at ${(maxBuffered / SIZE).toFixed(2)} MiB)`,
    );
    c.socket.destroy();
    await expectNoLeaks(before);
  });
});
