/**
 * Safe to expose (issue 8): what a hostile peer, a local client or a configuration typo must not be
 * able to do to the proxy, each on real loopback sockets against a proxy running in this process.
 * Every test is named after the rule it holds and fails when that rule is broken.
 *
 * Memory is measured as the growth of this process's heap plus ArrayBuffer memory across a forced
 * garbage collection (mocha runs with --expose-gc): an oracle outside the code under test. The
 * limits used are 10x or more away from what the broken behaviour costs.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, loadConfig } from '../../src/config/index.js';
import { isProxyError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { Metrics, startMetricsServer } from '../../src/metrics.js';
import { ProxyServer } from '../../src/engine/server.js';
import { NO_OBSERVER } from '../../src/engine/record.js';
import { customNetwork, networkByName } from '../../src/networks.js';
import { serializeV1 } from '../../src/v1/framing.js';
import { contentsPrefix } from '../../src/v2/messages.js';
import { V2Transport } from '../../src/v2/transport.js';
import { sleep } from '../helpers/fuzz/sockets.js';
import { MessageChannel, closedPort, handshakeV1, socks5Connect, startTestNode, versionPayload } from '../helpers/node.js';
import { type TestProxy, startProxy, testConfig } from '../helpers/proxy.js';
import { tempDir } from '../helpers/tmp.js';

const MAIN = networkByName('main')!;

/** Bytes of heap + ArrayBuffer memory this process holds after a full GC. */
async function heldMemory(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run mocha with --expose-gc (see .mocharc.json)');
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Write `data` one byte per TCP segment, letting the event loop (and the in-process proxy) read each one. */
async function trickle(socket: net.Socket, data: Buffer): Promise<void> {
  socket.setNoDelay(true);
  for (let i = 0; i < data.length; i++) {
    socket.write(data.subarray(i, i + 1));
    if (i % 4 === 3) await new Promise((r) => setImmediate(r));
  }
  await sleep(100);
}

/** A listening v2 responder whose behaviour after the handshake is scripted by the test. */
async function startRawV2Node(script: (t: V2Transport, socket: net.Socket) => void | Promise<void>): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const t = new V2Transport({ role: 'responder', magic: MAIN.magic });
    t.start();
    let ready = false;
    socket.on('data', (chunk: Buffer) => {
      if (ready) return; // the script owns the session from here; what the client sends is ignored
      for (const ev of t.receive(chunk)) {
        if (ev.type === 'send') socket.write(ev.data);
        if (ev.type === 'ready') ready = true;
      }
      if (ready) void script(t, socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function connect(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, ...(localAddress === undefined ? {} : { localAddress }) });
    s.on('error', () => {});
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves true if the socket is closed by the other end within ms. */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.readableEnded) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clearTimeout(t);
      resolve(true);
    };
    socket.once('end', done);
    socket.once('close', done);
    socket.resume();
  });
}

function logLines(proxy: TestProxy, re: RegExp): string[] {
  return proxy.logs.filter((l) => re.test(l));
}

describe('hardening: safe to expose (issue 8)', function () {
  this.timeout(60_000);
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  describe('1. memory a peer makes us hold stays within a small factor of the bytes buffered, whatever the read pattern', () => {
    it('a v2 peer announcing a 4,000,013-byte packet and trickling its body one byte per segment costs about a byte per byte', async () => {
      let sender: V2Transport | undefined;
      let peerSocket: net.Socket | undefined;
      const node = await startRawV2Node((t, socket) => {
        sender = t;
        peerSocket = socket;
      });
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info' });
      cleanups.push(() => proxy.stop());
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      assert.equal(rep, 0);
      const ch = new MessageChannel(socket, MAIN.magic);
      ch.send('version', versionPayload());
      await proxy.waitLog(/established .*transport=v2/);
      while (sender === undefined) await sleep(10);
      const packet = sender.encrypt([Buffer.alloc(4_000_013)]);
      const before = await heldMemory();
      const body = packet.subarray(0, 3 + 200_000);
      await trickle(peerSocket!, body);
      const grown = (await heldMemory()) - before;
      // Reads kept one Buffer each cost tens to hundreds of bytes per byte (over 10 MB here, even
      // when some reads coalesce); merged, about one byte per byte.
      assert.ok(grown < 3_000_000, `proxy memory grew by ${grown} bytes for 200,000 trickled bytes`);
      assert.ok(!ch.closed, 'the session is still up: trickling is slow, not wrong');
    });

    it('a v1 client announcing a 4,000,000-byte message and trickling its payload one byte per segment costs about a byte per byte', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info' });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      const ch = new MessageChannel(socket, MAIN.magic);
      await handshakeV1(ch);
      const message = serializeV1(MAIN.magic, 'echo', Buffer.alloc(4_000_000));
      const before = await heldMemory();
      await trickle(socket, message.subarray(0, 24 + 200_000));
      const grown = (await heldMemory()) - before;
      assert.ok(grown < 3_000_000, `proxy memory grew by ${grown} bytes for 200,000 trickled bytes`);
    });

    it('a client trickling bytes before the remote answered costs about a byte per byte, and at most 64 KiB is read ahead', async () => {
      const node = await startTestNode(MAIN.magic, 'v1-hang');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info', timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 30_000, idleMs: 60_000 } });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      const before = await heldMemory();
      // A VERSION, then a stream of empty messages: all held until the remote's key arrives (never).
      const stream = Buffer.concat([
        serializeV1(MAIN.magic, 'version', versionPayload()),
        ...Array.from({ length: 8000 }, () => serializeV1(MAIN.magic, 'verack', Buffer.alloc(0))),
      ]);
      await trickle(socket, stream);
      const grown = (await heldMemory()) - before;
      assert.ok(grown < 3_000_000, `proxy memory grew by ${grown} bytes for ${stream.length} trickled bytes`);
    });
  });

  describe('2. the legacy front end refuses, from the 24-byte header alone, a first message that is not a small VERSION', () => {
    for (const [what, command, length, code] of [
      ['a 4,000,000-byte "version"', 'version', 4_000_000, 'ERR_V1_TOO_LARGE'],
      ['a 5,000-byte "version"', 'version', 5_000, 'ERR_V1_TOO_LARGE'],
      ['a "ping" first', 'ping', 8, 'ERR_V1_NOT_VERSION'],
    ] as const) {
      it(`${what}: closed with ${code} before any payload arrives`, async () => {
        const proxy = await startProxy();
        cleanups.push(() => proxy.stop());
        const s = await connect(proxy.port);
        cleanups.push(() => s.destroy());
        const header = serializeV1(MAIN.magic, command, Buffer.alloc(0));
        header.writeUInt32LE(length, 16);
        s.write(header);
        assert.ok(await closedWithin(s, 3000), 'closed without waiting for the payload');
        assert.match(await proxy.waitLog(/refused/), new RegExp(`code=${code}`));
      });
    }

    it('200 connections announcing 4 MB VERSIONs and sending 64 KiB of it cost under 3 MB in all', async () => {
      const proxy = await startProxy({ logLevel: 'warn', maxConnections: 300 });
      cleanups.push(() => proxy.stop());
      const header = serializeV1(MAIN.magic, 'version', Buffer.alloc(0));
      header.writeUInt32LE(4_000_000, 16);
      const before = await heldMemory();
      const sockets = await Promise.all(Array.from({ length: 200 }, () => connect(proxy.port)));
      cleanups.push(() => sockets.forEach((s) => s.destroy()));
      for (const s of sockets) s.write(Buffer.concat([header, randomBytes(64 * 1024)]));
      await sleep(500);
      const grown = (await heldMemory()) - before;
      // Buffering them would hold up to 200 x 64 KiB = 12.5 MiB and climb to 800 MB with the rest.
      assert.ok(grown < 3_000_000, `grew by ${grown} bytes`);
    });
  });

  describe('3. what a client sends before the session is established is bounded', () => {
    it('--v2-only with a silent remote: a client streaming empty messages is paused after 64 KiB instead of queued without end', async () => {
      const node = await startTestNode(MAIN.magic, 'v1-hang');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({
        logLevel: 'info',
        downgradeGuard: 'all',
        timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 30_000, idleMs: 60_000 },
      });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      const before = await heldMemory();
      const verack = serializeV1(MAIN.magic, 'verack', Buffer.alloc(0));
      const burst = Buffer.concat([serializeV1(MAIN.magic, 'version', versionPayload()), ...Array.from({ length: 20_000 }, () => verack)]);
      // 24-byte messages with no payload: a budget counting payload bytes never stops them.
      for (let i = 0; i < 20; i++) {
        socket.write(burst);
        await sleep(20);
      }
      await sleep(300);
      const grown = (await heldMemory()) - before;
      assert.ok(grown < 4_000_000, `proxy memory grew by ${grown} bytes while the client sent ${20 * burst.length}`);
    });
  });

  describe('4. no configuration or connection can throw out of a connection handler', () => {
    it('an inbound target that cannot be dialed (localhost.) is refused when the configuration is read', () => {
      assert.throws(
        () => loadConfig(['--inbound', '127.0.0.1:8333=localhost.:8334'], {}),
        (e: unknown) => isProxyError(e, 'ERR_CONFIG') && /--inbound/.test(e.message) && /cannot be dialed/.test(e.message),
      );
    });

    it('the server itself refuses such a target at start-up, before listening', async () => {
      const config: Partial<Config> = { inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: 'localhost.', port: 8334 } }] };
      await assert.rejects(startProxy(config), (e: unknown) => isProxyError(e, 'ERR_CONFIG') && /localhost\./.test(e.message));
    });

    it('an exception while accepting a connection closes that connection with ERR_INTERNAL; the daemon and the next connection go on', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      let throwOnce = true;
      const observer = {
        ...NO_OBSERVER,
        opened: () => {
          if (throwOnce) {
            throwOnce = false;
            throw new Error('observer bug');
          }
        },
      };
      const proxy = await startProxy({ inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] }, { observer });
      cleanups.push(() => proxy.stop());
      const inboundPort = proxy.server.inboundAddresses[0].port;
      const first = await connect(inboundPort);
      assert.ok(await closedWithin(first, 3000));
      assert.match(await proxy.waitLog(/refused .*code=ERR_INTERNAL/), /observer bug/);
      const second = await connect(inboundPort);
      cleanups.push(() => second.destroy());
      const ch = new MessageChannel(second, MAIN.magic, { v2: 'initiator' });
      ch.send('version', versionPayload());
      await ch.next('version');
    });
  });

  describe("5. an inbound target that is the proxy's own listener is refused at start-up", () => {
    it('--inbound 127.0.0.1:P=127.0.0.1:P does not start (instead of fanning out to the connection limit)', async () => {
      const port = await closedPort();
      const server = new ProxyServer(
        { ...testConfig(), inbound: [{ listen: { host: '127.0.0.1', port }, target: { host: '127.0.0.1', port } }] },
        createLogger({ level: 'error', stream: process.stderr }),
      );
      await assert.rejects(server.listen(), (e: unknown) => isProxyError(e, 'ERR_CONFIG') && /own listen address/.test(e.message));
      // Nothing was left listening.
      await assert.rejects(connect(port));
    });

    it('a target naming a --listen port of the proxy through another loopback spelling is refused too', async () => {
      const port = await closedPort();
      const server = new ProxyServer(
        { ...testConfig(), listen: [{ host: '127.0.0.1', port }], inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: 'localhost', port } }] },
        createLogger({ level: 'error', stream: process.stderr }),
      );
      await assert.rejects(server.listen(), (e: unknown) => isProxyError(e, 'ERR_CONFIG'));
    });
  });

  describe('6. inbound peers have their own pool, and a per-source cap', () => {
    it('inbound peers holding every inbound slot do not lock a local SOCKS5 client out', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({
        maxConnections: 5,
        inboundLimits: { max: 5, perIp: 0, handshakes: 100, handshakeRate: 10_000 },
        inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }],
      });
      cleanups.push(() => proxy.stop());
      const inboundPort = proxy.server.inboundAddresses[0].port;
      const held: net.Socket[] = [];
      cleanups.push(() => held.forEach((s) => s.destroy()));
      // Each sends a v1 prefix's worth and holds on, as in the attack.
      for (let i = 0; i < 8; i++) {
        const s = await connect(inboundPort);
        s.write(serializeV1(MAIN.magic, 'version', versionPayload()).subarray(0, 16));
        held.push(s);
      }
      await proxy.waitLog(/refused .*code=ERR_MAX_INBOUND/);
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      assert.equal(rep, 0, 'the local client got its connection');
      const ch = new MessageChannel(socket, MAIN.magic);
      await handshakeV1(ch);
      assert.equal(logLines(proxy, /code=ERR_MAX_CONNECTIONS/).length, 0);
    });

    it('one source address gets at most --max-inbound-per-ip connections; another address still gets in', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({
        inboundLimits: { max: 100, perIp: 2, handshakes: 100, handshakeRate: 10_000 },
        inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }],
      });
      cleanups.push(() => proxy.stop());
      const port = proxy.server.inboundAddresses[0].port;
      const a = [await connect(port, '127.0.0.1'), await connect(port, '127.0.0.1')];
      cleanups.push(() => a.forEach((s) => s.destroy()));
      await sleep(100);
      const third = await connect(port, '127.0.0.1');
      cleanups.push(() => third.destroy());
      assert.ok(await closedWithin(third, 3000), 'the third connection from 127.0.0.1 is closed');
      assert.match(await proxy.waitLog(/refused .*code=ERR_INBOUND_PER_IP/), /peer=127\.0\.0\.1:/);
      const other = await connect(port, '127.0.0.2');
      cleanups.push(() => other.destroy());
      const ch = new MessageChannel(other, MAIN.magic, { v2: 'initiator' });
      ch.send('version', versionPayload());
      await ch.next('version');
    });
  });

  describe('7. inbound handshakes in progress and their start rate are bounded', () => {
    it('at most --max-inbound-handshakes silent peers hold a handshake; the next is refused with ERR_HANDSHAKE_BUSY until one completes', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({
        inboundLimits: { max: 100, perIp: 0, handshakes: 3, handshakeRate: 10_000 },
        inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }],
      });
      cleanups.push(() => proxy.stop());
      const port = proxy.server.inboundAddresses[0].port;
      const silent = [await connect(port), await connect(port), await connect(port)];
      cleanups.push(() => silent.forEach((s) => s.destroy()));
      await sleep(100);
      const fourth = await connect(port);
      assert.ok(await closedWithin(fourth, 3000));
      assert.match(await proxy.waitLog(/refused .*code=ERR_HANDSHAKE_BUSY/), /handshakes in progress/);
      // Finish one of the three handshakes: a slot frees up.
      const ch = new MessageChannel(silent[0], MAIN.magic, { v2: 'initiator' });
      ch.send('version', versionPayload());
      await ch.next('version');
      const fifth = await connect(port);
      cleanups.push(() => fifth.destroy());
      const ch5 = new MessageChannel(fifth, MAIN.magic, { v2: 'initiator' });
      ch5.send('version', versionPayload());
      await ch5.next('version');
    });

    it('new inbound handshakes above --inbound-handshake-rate are refused (a burst of twice the rate passes)', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      let now = 1_000_000;
      const proxy = await startProxy(
        {
          inboundLimits: { max: 100, perIp: 0, handshakes: 100, handshakeRate: 2 },
          inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }],
        },
        { now: () => now },
      );
      cleanups.push(() => proxy.stop());
      const port = proxy.server.inboundAddresses[0].port;
      const sockets: net.Socket[] = [];
      cleanups.push(() => sockets.forEach((s) => s.destroy()));
      for (let i = 0; i < 6; i++) sockets.push(await connect(port));
      await sleep(200);
      assert.equal(logLines(proxy, /accepted .*frontend=inbound/).length, 4, 'a burst of 2 x 2/s');
      assert.equal(logLines(proxy, /refused .*code=ERR_HANDSHAKE_BUSY/).length, 2);
      now += 1000; // one second later: two more tokens
      for (let i = 0; i < 3; i++) sockets.push(await connect(port));
      await sleep(200);
      assert.equal(logLines(proxy, /accepted .*frontend=inbound/).length, 6);
      assert.equal(logLines(proxy, /refused .*code=ERR_HANDSHAKE_BUSY/).length, 3);
    });
  });

  describe('8. a v1 VERSION of an unknown network is never relayed in plaintext', () => {
    for (const v2Only of [true, false]) {
      it(`${v2Only ? 'with' : 'without'} --v2-only: a custom signet client without --magic gets a v2 session with its own magic, and a warning names --magic`, async () => {
        const custom = customNetwork('0a03cf41');
        const node = await startTestNode(custom.magic, 'v2');
        cleanups.push(() => node.stop());
        const proxy = await startProxy({ downgradeGuard: v2Only ? 'all' : 'known' });
        cleanups.push(() => proxy.stop());
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        cleanups.push(() => socket.destroy());
        const ch = new MessageChannel(socket, custom.magic);
        await handshakeV1(ch);
        // The remote saw a v2 key, not the client's VERSION in clear.
        assert.ok(!node.firstBytes[0].subarray(4, 16).equals(Buffer.from('76657273696f6e0000000000', 'hex')), 'plaintext VERSION reached the remote');
        assert.ok(node.channels[0].isV2, 'the remote speaks v2 with the client');
        assert.match(await proxy.waitLog(/unknown network magic/), /--magic 0a03cf41/);
        assert.match(await proxy.waitLog(/established/), /transport=v2/);
      });
    }

    it('a client of a known network (mainnet) gets its v2 session without that warning', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy();
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      await handshakeV1(new MessageChannel(socket, MAIN.magic));
      assert.match(await proxy.waitLog(/established/), /transport=v2/);
      assert.doesNotMatch(proxy.logs.join('\n'), /unknown network magic|--magic/);
    });

    it('with --network set, a VERSION with an unknown magic is refused with ERR_V1_WRONG_NETWORK, not relayed', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ network: MAIN });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      socket.write(serializeV1(Buffer.from('0a03cf41', 'hex'), 'version', versionPayload()));
      assert.ok(await closedWithin(socket, 3000));
      assert.match(await proxy.waitLog(/refused/), /code=ERR_V1_WRONG_NETWORK/);
      await sleep(100);
      assert.ok(
        node.firstBytes.every((b) => !b.includes(Buffer.from('version'))),
        'nothing in clear reached the remote',
      );
    });
  });

  describe('9. /metrics and /connections answer only requests addressed to the proxy (no DNS rebinding)', () => {
    async function get(port: number, host: string | undefined): Promise<number> {
      return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write(`GET /connections HTTP/1.${host === undefined ? '0' : '1'}\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`);
        });
        let text = '';
        s.on('data', (c) => (text += String(c)));
        s.on('end', () => resolve(Number(/^HTTP\/1\.\d (\d{3})/.exec(text)?.[1])));
        s.on('error', reject);
      });
    }

    it('refuses Host: evil.example (403) and answers 127.0.0.1, localhost, [::1] and no Host at all', async () => {
      const metrics = new Metrics({ collectDefault: false });
      const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => [], createLogger({ level: 'error', stream: process.stderr }));
      cleanups.push(() => server.close());
      const port = server.address.port;
      assert.equal(await get(port, `evil.example:${port}`), 403);
      assert.equal(await get(port, 'evil.example'), 403);
      assert.equal(await get(port, `127.0.0.1.evil.example:${port}`), 403);
      assert.equal(await get(port, `127.0.0.1:${port}`), 200);
      assert.equal(await get(port, `localhost:${port}`), 200);
      assert.equal(await get(port, `[::1]:${port}`), 200);
      assert.equal(await get(port, undefined), 200);
      // And through node's own client, which always sends Host.
      const status = await new Promise<number>((resolve) =>
        http.get({ port, host: '127.0.0.1', path: '/metrics', headers: { host: 'rebind.example' } }, (res) => resolve(res.statusCode ?? 0)),
      );
      assert.equal(status, 403);
    });
  });

  describe('10. a # or ; inside a config value is part of the value, and a proxy password never reaches a message', () => {
    const dir = tempDir('bip324-exposure-');
    const file = (text: string): string => {
      const path = join(dir, `c${Math.random().toString(16).slice(2)}.conf`);
      writeFileSync(path, text);
      return path;
    };

    it('upstream-proxy=socks5://alice:s3cr#tpass@127.0.0.1:9050 keeps the whole password', () => {
      const c = loadConfig(['--config', file('upstream-proxy=socks5://alice:s3cr#tpass@127.0.0.1:9050\n')], {});
      assert.equal(c.config.upstreamProxy?.password, 's3cr#tpass');
    });

    // The first is cut by the comment rule (" #") in the file only; on the command line it is a valid URL.
    for (const [value, badOnCommandLine] of [
      ['socks5://alice:s3cr #tpass@127.0.0.1:9050', false],
      ['socks5://alice:s3cr#tpass', true],
      ['socks5://alice:s3cr', true],
    ] as const) {
      it(`a bad proxy URL ${JSON.stringify(value)} is refused without any part of the password in the message`, () => {
        assert.throws(
          () => loadConfig(['--config', file(`upstream-proxy=${value}\n`)], {}),
          (e: unknown) => isProxyError(e, 'ERR_CONFIG') && !/s3cr|tpass/.test(e.message) && /upstream-proxy/.test(e.message),
        );
        if (badOnCommandLine) {
          assert.throws(
            () => loadConfig(['--upstream-proxy', value], {}),
            (e: unknown) => isProxyError(e, 'ERR_CONFIG') && !/s3cr|tpass/.test(e.message),
          );
        }
      });
    }
  });

  describe('11. every phase of a connection is under a timer', () => {
    it('a SOCKS5 client that goes silent after the success reply is closed after --socks-timeout with ERR_CLIENT_TIMEOUT, and its remote with it', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ timeouts: { socksMs: 400, connectMs: 3000, handshakeMs: 5000, idleMs: 60_000 } });
      cleanups.push(() => proxy.stop());
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => socket.destroy());
      assert.equal(rep, 0);
      assert.ok(await closedWithin(socket, 3000), 'closed');
      assert.match(await proxy.waitLog(/refused/), /code=ERR_CLIENT_TIMEOUT/);
      assert.equal(proxy.server.connections.length, 0, 'its slot is free');
    });
  });

  describe('12. a client that leaves while the remote is dialed is noticed at once', () => {
    it('the dial is cancelled and logged as ERR_CLIENT_CLOSED, not ERR_DIAL_TIMEOUT', async () => {
      // An upstream proxy that accepts and never answers: the dial hangs until --connect-timeout.
      const upstreamConns: net.Socket[] = [];
      const hung = net.createServer((s) => {
        upstreamConns.push(s);
        s.on('error', () => {});
        s.resume(); // read, so its FIN is seen
      });
      await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => hung.close(() => r())));
      cleanups.push(() => upstreamConns.forEach((s) => s.destroy()));
      const upstream = { host: '127.0.0.1', port: (hung.address() as net.AddressInfo).port };
      const proxy = await startProxy({ upstreamProxy: upstream, timeouts: { socksMs: 5000, connectMs: 8000, handshakeMs: 5000, idleMs: 60_000 } });
      cleanups.push(() => proxy.stop());
      const s = await connect(proxy.port);
      s.write(Buffer.from([5, 1, 0]));
      await sleep(50);
      s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, 9]), Buffer.from('seed.test'), Buffer.from([0x20, 0x8d])]));
      await sleep(300);
      const started = Date.now();
      s.destroy();
      const line = await proxy.waitLog(/refused/, 5000);
      assert.match(line, /code=ERR_CLIENT_CLOSED/);
      assert.ok(Date.now() - started < 3000, 'noticed long before the 8 s connect timeout');
      // And the connection to the upstream was dropped with it.
      const deadline = Date.now() + 3000;
      while (!upstreamConns.every((c) => c.readableEnded || c.destroyed) && Date.now() < deadline) await sleep(20);
      assert.ok(upstreamConns.length === 1 && (upstreamConns[0].readableEnded || upstreamConns[0].destroyed), 'the dial to the upstream was cancelled');
    });
  });

  describe('13. failures on the plain side carry their own codes', () => {
    it('the node behind an inbound listener resetting is ERR_NODE_RESET (a warning), not a normal close', async () => {
      let nodeSocket: net.Socket | undefined;
      const nodeServer = net.createServer((s) => {
        nodeSocket = s;
        s.on('error', () => {});
      });
      await new Promise<void>((r) => nodeServer.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => nodeServer.close(() => r())));
      const metrics = new Metrics({ collectDefault: false });
      const proxy = await startProxy(
        { inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: (nodeServer.address() as net.AddressInfo).port } }] },
        { observer: metrics },
      );
      cleanups.push(() => proxy.stop());
      const peer = await connect(proxy.server.inboundAddresses[0].port);
      cleanups.push(() => peer.destroy());
      const ch = new MessageChannel(peer, MAIN.magic, { v2: 'initiator' });
      await ch.until(() => ch.sessionId !== undefined);
      while (nodeSocket === undefined) await sleep(10);
      nodeSocket.resetAndDestroy();
      assert.match(await proxy.waitLog(/ closed /), /WARN .*code=ERR_NODE_RESET/);
      assert.match(await metrics.registry.metrics(), /connections_closed_total\{frontend="inbound",transport="inbound-v2",reason="ERR_NODE_RESET"\} 1/);
    });

    it('a local client resetting mid-session is ERR_CLIENT_RESET', async () => {
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy();
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const ch = new MessageChannel(socket, MAIN.magic);
      await handshakeV1(ch);
      // Everything sent has been read by the proxy (a reset with unsent bytes may go out as a FIN).
      ch.send('ping', Buffer.alloc(8));
      await ch.next('pong');
      socket.resetAndDestroy();
      assert.match(await proxy.waitLog(/ closed /), /code=ERR_CLIENT_RESET/);
    });
  });

  describe('14. a v2 message larger than v1 allows is dropped, never framed for the client', () => {
    it('a "block" of 4,000,012 payload bytes is dropped with a count; the messages around it arrive', async () => {
      const node = await startRawV2Node((t, socket) => {
        socket.write(t.encrypt([contentsPrefix('version'), versionPayload()]));
        socket.write(t.encrypt([contentsPrefix('verack')]));
        socket.write(t.encrypt([contentsPrefix('block'), Buffer.alloc(4_000_012)]));
        socket.write(t.encrypt([contentsPrefix('pong'), Buffer.from('after')]));
      });
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info' });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const ch = new MessageChannel(socket, MAIN.magic);
      ch.send('version', versionPayload());
      assert.deepEqual((await ch.next('pong')).payload, Buffer.from('after'));
      assert.equal(ch.error, undefined, 'the client never saw a v1 header above 4,000,000');
      assert.ok(!ch.received.some((m) => m.command === 'block'));
      socket.end();
      assert.match(await proxy.waitLog(/ closed /), /dropped=ERR_V1_TOO_LARGE:1/);
    });
  });

  describe('15. a peer cannot flood the log', () => {
    it('20,000 packets with an undefined short id write one closing line with their count, not 20,000 lines', async () => {
      const node = await startRawV2Node((t, socket) => {
        socket.write(t.encrypt([contentsPrefix('version'), versionPayload()]));
        socket.write(t.encrypt([contentsPrefix('verack')]));
        const junk: Buffer[] = [];
        for (let i = 0; i < 20_000; i++) junk.push(t.encrypt([Buffer.from([200])]));
        socket.write(Buffer.concat(junk));
        socket.write(t.encrypt([contentsPrefix('pong'), Buffer.from('end')]));
      });
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info' });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const ch = new MessageChannel(socket, MAIN.magic);
      ch.send('version', versionPayload());
      await ch.next('pong');
      socket.end();
      assert.match(await proxy.waitLog(/ closed /), /dropped=ERR_V2_UNKNOWN_SHORT_ID:20000/);
      assert.ok(proxy.logs.length < 10, `${proxy.logs.length} log lines`);
    });
  });
});

describe('hardening: a stream cut in the middle of a packet', function () {
  this.timeout(30_000);

  /** A client's session through the proxy to a v2 node that plays `script`; the proxy's closing line. */
  async function closingLine(script: Parameters<typeof startRawV2Node>[0], clientEnds: boolean): Promise<string> {
    const node = await startRawV2Node(script);
    const proxy = await startProxy({ logLevel: 'info' });
    try {
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const ch = new MessageChannel(socket, MAIN.magic);
      ch.send('version', versionPayload());
      await ch.next('verack');
      if (clientEnds) socket.end();
      return await proxy.waitLog(/ closed /);
    } finally {
      await proxy.stop();
      await node.stop();
    }
  }

  // Inside the length field, right after it (nothing of the body yet), and inside the body.
  for (const cut of [2, 3, 10]) {
    it(`a v2 peer that ends its stream ${cut} bytes into a packet is closed with ERR_PEER_RESET, not as a normal close`, async () => {
      const line = await closingLine((t, socket) => {
        socket.write(t.encrypt([contentsPrefix('version'), versionPayload()]));
        socket.write(t.encrypt([contentsPrefix('verack')]));
        const ping = t.encrypt([contentsPrefix('ping'), Buffer.alloc(8)]);
        socket.end(ping.subarray(0, cut));
      }, false);
      assert.match(line, /reason="peer closed the connection in the middle of a packet" code=ERR_PEER_RESET/);
    });
  }

  it('a v2 peer that ends its stream between packets is a normal close', async () => {
    const line = await closingLine((t, socket) => {
      socket.write(t.encrypt([contentsPrefix('version'), versionPayload()]));
      socket.end(t.encrypt([contentsPrefix('verack')]));
    }, true);
    assert.match(line, /INFO .*closed reason="peer closed"/);
  });
});
