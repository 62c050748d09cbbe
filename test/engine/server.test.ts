/**
 * ProxyServer start-up and shutdown, and its registry of connections: socket options at accept,
 * the observer's calls, refusals (their reply, their log lines), timers, the v2 peers file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import * as net from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_KEY_POOL_SIZE, ephemeralKeys } from '../../src/crypto/keypool.js';
import { NO_OBSERVER, type ProxyObserver } from '../../src/engine/record.js';
import { serializeV1 } from '../../src/v1/framing.js';
import { observeTransientReads } from '../../src/transient-reads.js';
import { MAIN } from '../helpers/fuzz/inputs.js';
import { connectTo, sleep } from '../helpers/fuzz/sockets.js';
import {
  MessageChannel,
  byteReader,
  closedPort,
  handshakeV1,
  serveLikeANode,
  socks5Connect,
  startTestNode,
  type TestNode,
  versionPayload,
} from '../helpers/node.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { skipBecause } from '../helpers/skip.js';
import { kernelSocketOptions, sockoptUnavailable } from '../helpers/sockopt.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

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

describe('ProxyServer: the registry of connections', function () {
  this.timeout(30_000);
  let proxy: TestProxy | undefined;
  let node: TestNode | undefined;
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
    await proxy?.stop();
    await node?.stop();
    proxy = undefined;
    node = undefined;
  });

  /** An observer that records how often each connection was opened and how each was closed. */
  function observer(): { hooks: ProxyObserver; opened: Map<number, number>; closed: Map<number, (string | undefined)[]> } {
    const opened = new Map<number, number>();
    const closed = new Map<number, (string | undefined)[]>();
    return {
      opened,
      closed,
      hooks: {
        ...NO_OBSERVER,
        opened: (r) => void opened.set(r.id, (opened.get(r.id) ?? 0) + 1),
        closed: (r, _reason, code) => void closed.set(r.id, [...(closed.get(r.id) ?? []), code]),
      },
    };
  }

  it('reports its --listen and its --inbound addresses apart, each with the port the system chose', async () => {
    const target = await closedPort();
    proxy = await startProxy({
      listen: [{ host: '127.0.0.1', port: 0 }],
      inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: target } }],
    });
    const [listen, ...moreListen] = proxy.server.addresses;
    const [inbound, ...moreInbound] = proxy.server.inboundAddresses;
    assert.deepEqual([moreListen, moreInbound], [[], []]);
    assert.equal(listen.host, '127.0.0.1');
    assert.equal(inbound.host, '127.0.0.1');
    assert.ok(listen.port > 0 && inbound.port > 0 && listen.port !== inbound.port);
  });

  it('turns Nagle off on every accepted socket (each message is sent at once)', async function () {
    const why = sockoptUnavailable();
    if (why !== undefined) skipBecause(this, why);
    proxy = await startProxy();
    const client = await connectTo(proxy.port);
    cleanups.push(() => client.destroy());
    const deadline = Date.now() + 5000;
    let accepted: Socket | undefined;
    while (accepted === undefined && Date.now() < deadline) {
      accepted = [...(proxy.server as unknown as { live: Map<number, { sockets: Set<Socket> }> }).live.values()][0]?.sockets.values().next().value;
      if (accepted === undefined) await sleep(10);
    }
    assert.ok(accepted !== undefined);
    assert.equal((await kernelSocketOptions(accepted)).noDelay, true);
  });

  it('a SOCKS5 connection refused after its front end was known is opened once and closed once in the observer', async () => {
    const o = observer();
    proxy = await startProxy({}, { observer: o.hooks });
    const port = await closedPort();
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', port);
    socket.destroy();
    assert.equal(rep, 0x05);
    await proxy.waitLog(/refused .*code=ERR_DIAL_REFUSED/);
    assert.deepEqual([...o.opened.values()], [1]);
    assert.deepEqual([...o.closed.values()], [['ERR_DIAL_REFUSED']]);
  });

  it('close() ends a client still negotiating, and counts it closed once', async () => {
    const o = observer();
    // A --socks-timeout far beyond the test's patience: only close() can end the negotiation.
    proxy = await startProxy({ timeouts: { socksMs: 120_000, connectMs: 3000, handshakeMs: 2000, idleMs: 60_000 } }, { observer: o.hooks });
    const client = await connectTo(proxy.port);
    const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // A SOCKS5 greeting and no request: the connection waits in negotiation.
    client.write(Buffer.from([5, 1, 0]));
    await byteReader(client)(2);
    // And one that has sent nothing yet, so no front end has been announced for it.
    const silent = await connectTo(proxy.port);
    cleanups.push(() => silent.destroy());
    await proxy.waitLog(/conn=2 accepted/);
    const stopping = proxy.stop();
    proxy = undefined;
    const outcome = await Promise.race([stopping.then(() => 'closed'), sleep(8000).then(() => 'still waiting after 8 s')]);
    client.destroy();
    await stopping;
    assert.equal(outcome, 'closed');
    await clientClosed;
    // The failed negotiation settles after close(): give it time to (wrongly) report the connection again.
    await sleep(200);
    // Each opened once (the silent one at its end) and closed once, without an error code.
    assert.deepEqual([...o.closed.entries()].sort(), [
      [1, [undefined]],
      [2, [undefined]],
    ]);
    assert.deepEqual([...o.opened.entries()].sort(), [
      [1, 1],
      [2, 1],
    ]);
  });

  it('a connection refused in negotiation leaves no timer behind (its --socks-timeout deadline is cleared)', async () => {
    proxy = await startProxy({ timeouts: { socksMs: 60_000, connectMs: 3000, handshakeMs: 2000, idleMs: 60_000 } });
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const client = await connectTo(proxy.port);
    cleanups.push(() => client.destroy());
    client.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await proxy.waitLog(/refused .*code=ERR_UNKNOWN_PROTOCOL/);
    await sleep(50);
    assert.ok(timers() <= before, `${timers() - before} more timers than before the connection`);
  });

  it('a refused client that never closes its side is cut 1 s after its SOCKS5 reply', async () => {
    proxy = await startProxy();
    const client = net.connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    cleanups.push(() => client.destroy());
    const errors: string[] = [];
    client.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
    await new Promise((r) => client.once('connect', r));
    const read = byteReader(client);
    client.write(Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0])]));
    await read(2);
    assert.equal((await read(10))[1], 0x01, 'port 0: a general failure');
    read.release();
    await new Promise((r) => (client.readableEnded ? r(undefined) : client.once('end', r)));
    // Our side stays open; once the proxy has destroyed its socket, what we send is answered by a reset.
    const deadline = Date.now() + 10_000;
    while (errors.length === 0 && Date.now() < deadline) {
      client.write('still here');
      await sleep(200);
    }
    assert.match(errors[0] ?? 'no error within 10 s', /^(ECONNRESET|EPIPE)$/);
  });

  it('logs at most 10 refusals of one kind per 10 s, and the next line after says how many were left out', async () => {
    let now = 0;
    proxy = await startProxy({ maxConnections: 1 }, { now: () => now });
    const held = await connectTo(proxy.port);
    cleanups.push(() => held.destroy());
    await proxy.waitLog(/accepted/);
    const refusedLines = (): string[] => proxy!.logs.filter((l) => / refused .*code=ERR_MAX_CONNECTIONS/.test(l));
    const refusedOnce = async (): Promise<void> => {
      const s = await connectTo(proxy!.port);
      await new Promise((r) => s.once('close', r));
    };
    for (let i = 0; i < 13; i++) await refusedOnce();
    assert.equal(refusedLines().length, 10);
    assert.ok(
      refusedLines().every((l) => !/suppressed=/.test(l)),
      refusedLines().join('\n'),
    );
    now = 9_999;
    await refusedOnce();
    assert.equal(refusedLines().length, 10);
    now = 10_000;
    await refusedOnce();
    assert.equal(refusedLines().length, 11);
    assert.match(refusedLines()[10], /suppressed=4/);
  });

  describe('--v2-peers-file', () => {
    let dir = '';
    before(() => {
      dir = tempDir('bip324-server-');
    });

    async function oneV2Session(): Promise<void> {
      node ??= await startTestNode(MAIN.magic);
      const { socket } = await socks5Connect(proxy!.port, '127.0.0.1', node.port);
      await handshakeV1(new MessageChannel(socket, MAIN.magic));
      await proxy!.waitLog(/established .*transport=v2/);
      socket.destroy();
    }

    it('is written while the proxy runs, each save interval, not only at shutdown (a crash loses one interval at most), and only when it changed', async () => {
      const file = join(dir, 'timed.json');
      proxy = await startProxy({ v2PeersFile: file }, { peersSaveMs: 50 });
      await oneV2Session();
      const deadline = Date.now() + 10_000;
      while (!existsSync(file) && Date.now() < deadline) await sleep(20);
      assert.ok(existsSync(file), 'not written within 10 s at a 50 ms interval');
      assert.match(readFileSync(file, 'utf8'), /"source":"session"/);
      // Nothing changes from here on: neither the later ticks nor the shutdown write it again.
      unlinkSync(file);
      await sleep(300);
      await proxy.stop();
      proxy = undefined;
      assert.equal(existsSync(file), false, 'an unchanged table was written again');
    });

    it('is neither read nor written with --v2-only, where no table of v2 peers is kept', async () => {
      const file = join(dir, 'v2only.json');
      proxy = await startProxy({ downgradeGuard: 'all', v2PeersFile: file });
      await oneV2Session();
      await proxy.stop();
      assert.equal(existsSync(file), false);
      assert.ok(
        proxy.logs.every((l) => !/v2 peers file/.test(l)),
        proxy.logs.join('\n'),
      );
      proxy = undefined;
    });

    it('a file that cannot be written is reported at shutdown, which still completes', async () => {
      const file = join(dir, 'no-such-dir', 'peers.json');
      proxy = await startProxy({ v2PeersFile: file });
      await oneV2Session();
      const logs = proxy.logs;
      await proxy.stop();
      proxy = undefined;
      assert.match(logs.find((l) => /cannot write the v2 peers file/.test(l)) ?? logs.join('\n'), /reason=.*ENOENT/);
    });
  });
});

describe('server: which sockets read into the shared buffer (transient-reads.ts)', function () {
  this.timeout(20_000);
  let proxy: TestProxy | undefined;
  let node: TestNode | undefined;
  afterEach(async () => {
    observeTransientReads(undefined);
    await proxy?.stop();
    await node?.stop();
    proxy = undefined;
    node = undefined;
  });

  /** Bytes the proxy read through the shared buffer from sockets connected to `port`. */
  function sharedReadsFrom(port: number): { bytes: number } {
    const seen = { bytes: 0 };
    observeTransientReads((socket, n) => {
      if (socket.remotePort === port) seen.bytes += n;
    });
    return seen;
  }

  it("a client's remote, dialed directly: yes", async () => {
    node = await startTestNode(MAIN.magic);
    proxy = await startProxy();
    const seen = sharedReadsFrom(node.port);
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    await handshakeV1(new MessageChannel(socket, MAIN.magic));
    socket.destroy();
    assert.ok(seen.bytes > 0, 'the v2 node was read through the shared buffer');
  });

  it("a client's socket, accepted: yes, once the Bridge has it (SOCKS5 is read as a stream)", async () => {
    node = await startTestNode(MAIN.magic);
    proxy = await startProxy();
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    const seen = sharedReadsFrom(socket.localPort!);
    const channel = new MessageChannel(socket, MAIN.magic);
    await handshakeV1(channel);
    channel.send('ping', Buffer.alloc(8, 1));
    await channel.next('pong');
    socket.destroy();
    assert.ok(seen.bytes > 0, "the client's messages were read through the shared buffer");
  });

  it('a peer accepted on an --inbound port: yes', async () => {
    node = await startTestNode(MAIN.magic);
    proxy = await startProxy({ network: MAIN, inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] });
    const peerSocket = await connectTo(proxy.server.inboundAddresses[0].port);
    const seen = sharedReadsFrom(peerSocket.localPort!);
    const peer = new MessageChannel(peerSocket, MAIN.magic);
    await handshakeV1(peer);
    peer.socket.destroy();
    assert.ok(seen.bytes > 0, "the peer's bytes were read through the shared buffer");
  });

  it("a client's bytes held before the peer's key stay exact while another connection's reads overwrite the shared buffer", async () => {
    const servers: net.Server[] = [];
    const listen = async (serve: (s: Socket) => void): Promise<number> => {
      const server = net.createServer((s) => {
        s.on('error', () => {});
        serve(s);
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as net.AddressInfo).port;
    };
    const sockets: Socket[] = [];
    try {
      // A v2 node that answers only when released: until then the proxy holds the client's bytes.
      let release: () => void = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      let channel: MessageChannel | undefined;
      const nodePort = await listen((s) => {
        s.pause();
        void released.then(() => {
          channel = new MessageChannel(s, MAIN.magic, { v2: 'responder' });
          serveLikeANode(channel);
          s.resume();
        });
      });
      const drainPort = await listen((s) => s.resume());
      proxy = await startProxy();
      const a = await socks5Connect(proxy.port, '127.0.0.1', nodePort);
      sockets.push(a.socket);
      const payloads = [randomBytes(3000), randomBytes(20_000), randomBytes(100)];
      // Several reads, each held: the VERSION, then messages, written apart.
      a.socket.write(serializeV1(MAIN.magic, 'version', versionPayload()));
      for (const p of payloads) {
        await sleep(30);
        a.socket.write(serializeV1(MAIN.magic, 'echo', p));
      }
      await sleep(50);
      // Another client's bytes (passthrough: its first byte is not a v1 magic) go through the same buffer.
      const b = await socks5Connect(proxy.port, '127.0.0.1', drainPort);
      sockets.push(b.socket);
      const other = Buffer.alloc(2_000_000, 0xee);
      other[0] = 0x01;
      b.socket.write(other);
      await sleep(200);
      release();
      await until(
        () => channel !== undefined && channel.received.filter((m) => m.command === 'echo').length === payloads.length,
        10_000,
        'the held messages at the node',
      );
      assert.deepEqual(
        channel!.received.filter((m) => m.command === 'echo').map((m) => m.payload),
        payloads,
      );
    } finally {
      for (const s of sockets) s.destroy();
      for (const s of servers) s.close();
    }
  });

  it('the node behind an --inbound port: no, it is read as a stream', async () => {
    node = await startTestNode(MAIN.magic);
    proxy = await startProxy({ network: MAIN, inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] });
    const seen = sharedReadsFrom(node.port);
    const peer = new MessageChannel(await connectTo(proxy.server.inboundAddresses[0].port), MAIN.magic);
    await handshakeV1(peer);
    peer.socket.destroy();
    assert.equal(seen.bytes, 0);
  });
});
