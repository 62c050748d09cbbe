/**
 * Traffic shaping end to end (issue 13), on real loopback sockets: a v1 client through the proxy to
 * a v2 node played by our own V2Transport and by the independent peer of
 * test/helpers/independent-v2/ (which shares no code with src/ and counts the decoys it skips), and
 * inbound, a v2 peer through --inbound to a v1 node. Oracles: the messages the other end decodes,
 * the bytes its socket reads (sizes worked out by hand from the packet format), the independent
 * peer's counters, the proxy's own socket buffers, and the process's live timers.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Metrics, describeConnection } from '../../src/metrics.js';
import { networkByName } from '../../src/networks.js';
import { serializeV1 } from '../../src/v1/framing.js';
import type { ConnectionRecord } from '../../src/engine/record.js';
import type { ShapeMode } from '../../src/engine/shaper.js';
import { sleep } from '../helpers/fuzz/sockets.js';
import { expectNoLeaks, liveSockets, resourceCounts } from '../helpers/leaks.js';
import {
  IMPLS,
  type Impl,
  MessageChannel,
  type Msg,
  handshakeV1,
  implLabel,
  socks5Connect,
  startTestNode,
  type TestNode,
  versionPayload,
} from '../helpers/node.js';
import { type TestProxy, startProxy } from '../helpers/proxy.js';
import type { Config } from '../../src/config/index.js';

const MAIN = networkByName('main')!;
const MODES: readonly ShapeMode[] = ['off', 'pad', 'cover'];

/** Wire bytes of a v2 packet with a short-id command and this payload. */
const wire = (payload: number): number => 3 + 1 + 1 + payload + 16;

interface Session {
  proxy: TestProxy;
  node: TestNode;
  client: MessageChannel;
  /** The node's end of the v2 connection (the proxy's remote). */
  nodeCh: MessageChannel;
  /** The proxy's record of the connection. */
  record: ConnectionRecord;
  /** Bytes the node's socket read since the v1 handshake through the proxy was done. */
  tapped: () => number;
  close: () => Promise<void>;
}

/** A v1 client through a proxy shaping with `mode` to a v2 node (`impl`), version/verack done. */
async function open(
  mode: ShapeMode,
  impl: Impl,
  config: Partial<Config> = {},
  rate = 1024,
  metrics?: Metrics,
  onPacket?: (decoy: boolean) => void,
): Promise<Session> {
  // The independent node sends no decoys of its own here: its decoy counter then counts only ours.
  const node = await startTestNode(MAIN.magic, 'v2', {}, { impl, independentOptions: onPacket === undefined ? {} : { onPacket } });
  const proxy = await startProxy({ logLevel: 'info', shaping: { mode, rate }, ...config }, metrics === undefined ? {} : { observer: metrics });
  const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
  const client = new MessageChannel(socket, MAIN.magic);
  await handshakeV1(client);
  const nodeCh = node.channels[0];
  await nodeCh.until(() => nodeCh.received.some((m) => m.command === 'verack'), 10_000, 'verack at the node');
  let tapped = 0;
  nodeCh.socket.on('data', (c: Buffer) => (tapped += c.length));
  const record = proxy.server.connections[0];
  return {
    proxy,
    node,
    client,
    nodeCh,
    record,
    tapped: () => tapped,
    close: async () => {
      socket.destroy();
      await proxy.stop();
      await node.stop();
    },
  };
}

/** Messages the node received after the handshake (version and verack left out). */
function appMessages(ch: MessageChannel): Msg[] {
  return ch.received.filter((m) => m.command !== 'version' && m.command !== 'verack');
}

/** Wait until the count `f` stops changing for `quietMs`. */
async function settled(f: () => number, quietMs = 100): Promise<number> {
  let last = f();
  for (;;) {
    await sleep(quietMs);
    const now = f();
    if (now === last) return now;
    last = now;
  }
}

describe('shaping (issue 13)', function () {
  this.timeout(60_000);
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  describe('real messages arrive in order and unchanged, and decoys are skipped, under every mode', () => {
    for (const mode of MODES) {
      for (const impl of IMPLS) {
        it(`${mode}: 400 messages of 0 B to 1 MB, written in random pieces, reach the node as sent${implLabel(impl)}`, async () => {
          // Fast cover, so that cover bursts fall between the messages and the pieces of messages.
          const t = await open(mode, impl, {}, 200_000);
          cleanups.push(t.close);
          const commands = ['tx', 'inv', 'headers', 'getdata', 'zzzlongform'];
          const sent: Msg[] = [];
          for (let i = 0; i < 400; i++) {
            const size = i === 150 ? 1_000_000 : i % 40 === 7 ? 70_000 : [0, 1, 8, 37, 243][i % 5] + Math.floor(Math.random() * (i % 3 === 0 ? 3000 : 300));
            sent.push({ command: commands[i % commands.length], payload: randomBytes(size) });
          }
          const stream = Buffer.concat(sent.map((m) => serializeV1(MAIN.magic, m.command, m.payload)));
          // Pieces of 1 byte to 20 kB: a burst may hold several messages, or none (part of one).
          for (let at = 0; at < stream.length;) {
            const n = 1 + Math.floor(Math.random() * (Math.random() < 0.5 ? 200 : 20_000));
            t.client.socket.write(stream.subarray(at, at + n));
            at += n;
            if (Math.random() < 0.3) await sleep(1);
          }
          await t.nodeCh.until(() => appMessages(t.nodeCh).length >= sent.length, 30_000, 'every message at the node');
          const got = appMessages(t.nodeCh);
          assert.equal(got.length, sent.length);
          got.forEach((m, i) => {
            assert.equal(m.command, sent[i].command, `message ${i}`);
            assert.ok(m.payload.equals(sent[i].payload), `message ${i}: payload differs (${m.payload.length} vs ${sent[i].payload.length} bytes)`);
          });
          if (mode === 'off') assert.equal(t.record.decoysToPeer, 0);
          else assert.ok(t.record.decoysToPeer > 0, 'decoys were sent');
          const peer = t.nodeCh.independent;
          if (peer !== undefined) {
            // Close, then compare what the proxy counted with what the independent peer skipped.
            t.client.socket.destroy();
            await t.nodeCh.waitClosed();
            assert.equal(peer.decoysReceived, t.record.decoysToPeer, 'decoys sent = decoys the independent peer skipped');
            assert.equal(peer.decoyBytesReceived, t.record.decoyBytesToPeer);
            if (mode !== 'off') assert.ok(peer.decoysReceived > 0);
          }
        });
      }
    }
  });

  describe('pad', () => {
    for (const [mode, cases] of [
      [
        'off',
        [
          [8, wire(8)],
          [37, wire(37)],
          [222, wire(222)],
          [1000, wire(1000)],
          [100_000, wire(100_000)],
        ],
      ],
      [
        'pad',
        [
          [8, 64],
          [37, 80],
          [222, 320],
          [1000, 1168],
          [100_000, 7 * 16384],
        ],
      ],
      [
        'cover',
        [
          [8, 384],
          [37, 384],
          [222, 384],
          [1000, 1152],
          [100_000, 7 * 16384],
        ],
      ],
    ] as [ShapeMode, [number, number][]][]) {
      it(`${mode}: a message written alone reaches the node as ${cases.map(([p, w]) => `${p} B -> ${w}`).join(', ')} wire bytes`, async () => {
        // rate 1 B/s: a cover tick every 512 s on average, so none falls inside this test.
        const t = await open(mode, 'independent', {}, 1);
        cleanups.push(t.close);
        for (const [payload, want] of cases) {
          const before = await settled(t.tapped);
          const n = appMessages(t.nodeCh).length;
          t.client.send('tx', randomBytes(payload));
          await t.nodeCh.until(() => appMessages(t.nodeCh).length > n, 10_000, 'the message');
          assert.equal((await settled(t.tapped)) - before, want, `a ${payload}-byte tx`);
        }
      });
    }

    it('decoys follow the real packets of their burst, never ahead of them', async () => {
      const log: boolean[] = [];
      const t = await open('pad', 'independent', {}, 1, undefined, (decoy) => log.push(decoy));
      cleanups.push(t.close);
      for (const size of [8, 37, 222, 1000, 5000]) {
        await settled(t.tapped);
        log.length = 0;
        const n = appMessages(t.nodeCh).length;
        t.client.send('tx', randomBytes(size));
        await t.nodeCh.until(() => appMessages(t.nodeCh).length > n, 10_000, 'the message');
        await settled(t.tapped);
        // One real packet, then the decoy that pads its burst (5000 B is 5021 on the wire: 5552).
        assert.deepEqual(log, [false, true], `a ${size}-byte tx`);
      }
    });

    it("the burst that answers the node's key (our version packet and the client's VERSION held for it) is padded too", async () => {
      // The client writes VERSION as soon as SOCKS5 succeeds, before the node's key is back, so the
      // proxy holds it and sends it with its version packet in one burst: that burst gets its decoy
      // before the client's verack (the last real packet here) is even written.
      const log: boolean[] = [];
      const t = await open('pad', 'independent', {}, 1, undefined, (decoy) => log.push(decoy));
      cleanups.push(t.close);
      assert.ok(log.includes(true), `no decoy: ${log.join(',')}`);
      assert.ok(log.indexOf(true) < log.lastIndexOf(false), `the first decoy came only after the verack: ${log.join(',')}`);
    });

    it('that burst is padded too when the client has already half-closed (it goes out with our FIN)', async () => {
      // The node's key is held back by a gate until the proxy has seen the client's VERSION and FIN:
      // the proxy then answers the key, sends the held VERSION and ends, all in one burst.
      const log: boolean[] = [];
      const node = await startTestNode(MAIN.magic, 'v2', {}, { impl: 'independent', independentOptions: { onPacket: (decoy) => log.push(decoy) } });
      cleanups.push(() => node.stop());
      let open = (): void => {};
      const opened = new Promise<void>((r) => (open = r));
      const gate = net.createServer((fromProxy) => {
        const toNode = net.connect(node.port, '127.0.0.1');
        fromProxy.pipe(toNode);
        toNode.on('data', (c: Buffer) => void opened.then(() => fromProxy.write(c)));
        toNode.on('end', () => void opened.then(() => fromProxy.end()));
        fromProxy.on('close', () => toNode.destroy());
        toNode.on('close', () => fromProxy.destroy());
      });
      await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => gate.close(() => r())));
      const proxy = await startProxy({ logLevel: 'info', shaping: { mode: 'pad', rate: 1024 } });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', (gate.address() as net.AddressInfo).port);
      const client = new MessageChannel(socket, MAIN.magic);
      client.send('version', versionPayload());
      socket.end();
      // Not a timing assertion: time for the proxy to read the FIN before the gate opens.
      await sleep(300);
      open();
      const nodeCh = node.channels[0];
      assert.ok(nodeCh !== undefined, 'the node was reached');
      await nodeCh.until(() => nodeCh.received.some((m) => m.command === 'version'), 10_000, "the client's VERSION at the node");
      await new Promise((r) => (nodeCh.socket.readableEnded ? r(undefined) : nodeCh.socket.once('end', r)));
      assert.ok(log.includes(true), `no decoy in the burst sent with our FIN: ${log.join(',')}`);
    });

    it('sends nothing while the connection is idle', async () => {
      // A high rate: were a cover timer running under pad, it would tick a hundred times here.
      const t = await open('pad', 'independent', {}, 100_000);
      cleanups.push(t.close);
      const before = await settled(t.tapped);
      await sleep(1000);
      assert.equal(t.tapped() - before, 0);
      assert.equal(t.nodeCh.independent!.decoysReceived, t.record.decoysToPeer);
    });
  });

  describe('cover', () => {
    it('sends cover bursts at random intervals while the connection is idle, of the cover sizes only', async () => {
      const t = await open('cover', 'independent', {}, 50_000);
      cleanups.push(t.close);
      const bursts: { at: number; bytes: number }[] = [];
      t.nodeCh.socket.on('data', (c: Buffer) => bursts.push({ at: performance.now(), bytes: c.length }));
      await t.nodeCh.until(() => bursts.length >= 40, 10_000, '40 cover bursts');
      const peer = t.nodeCh.independent!;
      assert.equal(appMessages(t.nodeCh).length, 0, 'no real message was sent');
      assert.ok(peer.decoysReceived >= 40);
      for (const b of bursts)
        assert.ok(
          b.bytes === 384 || b.bytes === 768 || b.bytes % 384 === 0,
          `a burst of ${b.bytes} bytes: not cover sizes (multiples of 384, two when reads coalesce)`,
        );
      const gaps = bursts.slice(1).map((b, i) => b.at - bursts[i].at);
      const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
      const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
      assert.ok(sd / mean > 0.5, `intervals vary (sd/mean ${sd / mean}): not a fixed period`);
    });

    it('does not keep an idle connection open: the idle timeout closes it while cover flows', async () => {
      const t = await open('cover', 'independent', { timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 2000, idleMs: 1500 } }, 50_000);
      cleanups.push(t.close);
      await t.client.waitClosed(15_000);
      assert.match(await t.proxy.waitLog(/closed/), /code=ERR_IDLE_TIMEOUT/);
      assert.ok(t.nodeCh.independent!.decoysReceived > 10, `cover flowed meanwhile (${t.nodeCh.independent!.decoysReceived} decoys)`);
    });

    it('stops when the client half-closes: the node gets a clean end, and the proxy closes normally', async () => {
      const t = await open('cover', 'independent', {}, 200_000);
      cleanups.push(t.close);
      await t.nodeCh.until(() => t.nodeCh.independent!.decoysReceived > 10, 10_000, 'cover');
      t.client.socket.end();
      await new Promise((r) => t.nodeCh.socket.once('end', r));
      // Cover ticks every 2.5 ms on average; any after the end would be a write after end.
      await sleep(300);
      t.nodeCh.socket.end();
      const line = await t.proxy.waitLog(/closed/);
      assert.doesNotMatch(line, /code=/, line);
    });

    it('after the client half-closes, the node can still answer it: no cover is written after our FIN', async () => {
      const node = await startTestNode(MAIN.magic, 'v2', {}, { impl: 'independent', allowHalfOpen: true });
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info', shaping: { mode: 'cover', rate: 200_000 } });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const client = new MessageChannel(socket, MAIN.magic);
      await handshakeV1(client);
      const nodeCh = node.channels[0];
      await nodeCh.until(() => nodeCh.independent!.decoysReceived > 10, 10_000, 'cover');
      socket.end();
      await new Promise((r) => nodeCh.socket.once('end', r));
      // Cover ticks every 2.5 ms on average: one written after our FIN is a write after end, which
      // tears the half-open connection down before the node's answer.
      await sleep(300);
      const answer = randomBytes(50);
      nodeCh.send('tx', answer);
      await client.until(() => client.received.some((m) => m.command === 'tx' && m.payload.equals(answer)), 5000, 'the answer after the half-close');
      nodeCh.socket.end();
      const line = await proxy.waitLog(/closed/);
      assert.doesNotMatch(line, /code=/, line);
    });

    it('leaves no timer behind when the connection closes: client, node or proxy shutdown', async () => {
      // rate 1 B/s: the pending tick is hundreds of seconds away, so a timer that is not cleared shows.
      const node = await startTestNode(MAIN.magic, 'v2');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info', shaping: { mode: 'cover', rate: 1 } });
      cleanups.push(() => proxy.stop());
      const before = resourceCounts();
      for (const how of ['client', 'node'] as const) {
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        const client = new MessageChannel(socket, MAIN.magic);
        await handshakeV1(client);
        if (how === 'client') socket.destroy();
        else node.channels[node.channels.length - 1].socket.destroy();
        await client.waitClosed();
        await expectNoLeaks(before);
      }
      // The proxy shutting down tears down a live session (Bridge.destroy) without either side ending.
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const client = new MessageChannel(socket, MAIN.magic);
      await handshakeV1(client);
      await proxy.stop();
      await client.waitClosed();
      await expectNoLeaks(before);
    });

    it('adds nothing to a remote socket whose write buffer is full', async () => {
      const t = await open('cover', 'independent', {}, 200_000);
      cleanups.push(t.close);
      // The node stops reading; the client streams until the proxy's socket to the node backs up.
      t.nodeCh.socket.pause();
      const toNode = liveSockets().find((s) => s.remotePort === t.node.port && s.localPort !== t.node.port)!;
      const chunk = serializeV1(MAIN.magic, 'tx', randomBytes(256 * 1024));
      for (let i = 0; i < 200 && !toNode.writableNeedDrain; i++) {
        t.client.socket.write(chunk);
        await sleep(5);
      }
      assert.ok(toNode.writableNeedDrain, 'the proxy has more for the node than its buffer takes');
      const held = await settled(() => toNode.writableLength, 200);
      // 500 ms at 200 kB/s: some 200 cover ticks.
      await sleep(500);
      assert.equal(toNode.writableLength, held, 'no cover added to the full buffer');
      t.nodeCh.socket.resume();
    });

    for (const impl of IMPLS) {
      it(`rekeying stays right with thousands of decoys among real messages (over 10 x 224 packets)${implLabel(impl)}`, async () => {
        const t = await open('cover', impl, {}, 1024 * 1024);
        cleanups.push(t.close);
        const sent: Buffer[] = [];
        // Real messages keep flowing while the decoys pile up.
        while (t.record.decoysToPeer < 3000) {
          const p = randomBytes(Math.floor(Math.random() * 600));
          sent.push(p);
          t.client.send('tx', p);
          await sleep(10);
        }
        t.client.send('headers', Buffer.from('end'));
        await t.nodeCh.until(() => appMessages(t.nodeCh).some((m) => m.command === 'headers'), 20_000, 'the last message');
        const got = appMessages(t.nodeCh);
        assert.equal(got.length, sent.length + 1);
        sent.forEach((p, i) => assert.ok(got[i].payload.equals(p), `message ${i}`));
        const peer = t.nodeCh.independent;
        if (peer !== undefined) {
          assert.ok(peer.decoysReceived >= 3000, `${peer.decoysReceived} decoys skipped`);
          assert.ok(peer.packetsReceived >= 10 * 224 + sent.length);
        }
      });
    }
  });

  describe('only what the proxy encrypts is shaped', () => {
    it('passthrough: a client that speaks v2 itself is relayed byte for byte, with no decoy added', async () => {
      const node = await startTestNode(MAIN.magic, 'v2', {}, { impl: 'independent', independentOptions: {} });
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info', shaping: { mode: 'cover', rate: 200_000 } });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => void socket.destroy());
      let sentBytes = 0;
      const write = socket.write.bind(socket);
      socket.write = (chunk: Buffer, ...rest: never[]) => {
        sentBytes += chunk.length;
        return write(chunk, ...rest);
      };
      const client = new MessageChannel(socket, MAIN.magic, { v2: 'initiator', impl: 'independent', independentOptions: {} });
      await handshakeV1(client);
      const nodeCh = node.channels[0];
      await nodeCh.until(() => nodeCh.received.some((m) => m.command === 'verack'), 10_000, 'verack at the node');
      let nodeBytes = 0;
      nodeCh.socket.on('data', (c: Buffer) => (nodeBytes += c.length));
      const base = await settled(() => sentBytes);
      const nodeBase = await settled(() => nodeBytes);
      await sleep(500);
      client.send('tx', randomBytes(300));
      await nodeCh.until(() => appMessages(nodeCh).length === 1);
      await settled(() => nodeBytes);
      assert.equal(nodeBytes - nodeBase, sentBytes - base, 'the node read exactly what the client wrote');
      assert.equal(nodeCh.independent!.decoysReceived, 0);
      const r = proxy.server.connections[0];
      assert.equal(r.transport, 'passthrough');
      assert.equal(r.shaping, undefined);
      assert.equal(describeConnection(r).shaping, null);
      assert.equal(r.decoysToPeer, 0);
    });

    it('v1 fallback: the plaintext relay to a v1-only node gets no decoys (they would corrupt its stream)', async () => {
      const node = await startTestNode(MAIN.magic, 'v1-close');
      cleanups.push(() => node.stop());
      const proxy = await startProxy({ logLevel: 'info', downgradeGuard: 'off', shaping: { mode: 'cover', rate: 200_000 } });
      cleanups.push(() => proxy.stop());
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      cleanups.push(() => void socket.destroy());
      const client = new MessageChannel(socket, MAIN.magic);
      await handshakeV1(client);
      await sleep(500);
      const payload = randomBytes(1000);
      client.send('echo', payload);
      assert.ok((await client.next('echo')).payload.equals(payload));
      const nodeCh = node.channels[node.channels.length - 1];
      assert.ok(!nodeCh.isV2);
      assert.equal(nodeCh.error, undefined, 'the v1 node parsed every byte');
      const r = proxy.server.connections[0];
      assert.equal(r.transport, 'v1-fallback');
      assert.equal(r.shaping, undefined);
      assert.equal(r.decoysToPeer, 0);
    });
  });

  describe('inbound: what the proxy sends to a peer as the responder is shaped too', () => {
    for (const impl of IMPLS) {
      it(`a v2 peer through --inbound gets the node's messages in order, with decoys it skips${implLabel(impl)}`, async () => {
        const node = await startTestNode(MAIN.magic, 'v1-close');
        cleanups.push(() => node.stop());
        const proxy = await startProxy({
          network: MAIN,
          logLevel: 'info',
          shaping: { mode: 'cover', rate: 100_000 },
          inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }],
        });
        cleanups.push(() => proxy.stop());
        const socket = net.connect(proxy.server.inboundAddresses[0].port, '127.0.0.1');
        socket.on('error', () => {});
        cleanups.push(() => void socket.destroy());
        const peer = new MessageChannel(socket, MAIN.magic, { v2: 'initiator', impl, independentOptions: {} });
        peer.send('version', versionPayload());
        await peer.next('version');
        await peer.next('verack');
        peer.send('verack');
        const payloads = Array.from({ length: 50 }, (_, i) => randomBytes(i * 97));
        for (const p of payloads) peer.send('echo', p);
        for (const p of payloads) assert.ok((await peer.next('echo')).payload.equals(p));
        const r = proxy.server.connections[0];
        assert.equal(r.transport, 'inbound-v2');
        assert.equal(r.shaping, 'cover');
        if (peer.independent !== undefined) {
          await peer.until(() => peer.independent!.decoysReceived > 20, 10_000, 'cover from the proxy');
        } else {
          await sleep(300);
          assert.ok(r.decoysToPeer > 20, `${r.decoysToPeer} decoys`);
        }
        assert.equal(peer.error, undefined);
      });
    }
  });

  describe('metrics', () => {
    it('decoy packets and bytes per connection (/connections) and in total (Prometheus) are what the independent peer skipped', async () => {
      const metrics = new Metrics({ collectDefault: false, shaping: { mode: 'cover', rate: 50_000 } });
      const t = await open('cover', 'independent', {}, 50_000, metrics);
      cleanups.push(t.close);
      for (let i = 0; i < 20; i++) {
        t.client.send('tx', randomBytes(100 + i * 50));
        await sleep(20);
      }
      const info = describeConnection(t.record);
      assert.equal(info.shaping, 'cover');
      assert.ok(info.decoys_to_peer! > 0);
      t.client.socket.destroy();
      await t.nodeCh.waitClosed();
      await t.proxy.waitLog(/closed/);
      const peer = t.nodeCh.independent!;
      const text = await metrics.registry.metrics();
      const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      assert.equal(value('bip324_proxy_decoy_packets_total'), peer.decoysReceived);
      assert.equal(value('bip324_proxy_decoy_bytes_total'), peer.decoyBytesReceived);
      assert.match(text, /^bip324_proxy_shaping_mode\{mode="cover"\} 1$/m);
      assert.match(text, /^bip324_proxy_shaping_mode\{mode="off"\} 0$/m);
      assert.match(await t.proxy.waitLog(/closed/), new RegExp(`decoys_to_peer=${peer.decoysReceived} decoy_bytes_to_peer=${peer.decoyBytesReceived}`));
    });
  });
});
