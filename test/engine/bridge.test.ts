/**
 * The session engine (src/engine/bridge.ts) driven directly, on real loopback sockets: no front
 * end, no server, so each rule of the Bridge is reached on purpose (sockets already closed when
 * handed over, resets, half-closes, the fallback's redial and its judged VERSION, what the closed
 * line says). Every peer here is a raw socket or a v2 endpoint the test drives itself.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Bridge, MAX_HELD, type InitiatorOptions, type ResponderOptions } from '../../src/engine/bridge.js';
import { newRecord, type ConnectionRecord, type FrontEndKind, type ProxyObserver } from '../../src/engine/record.js';
import { V2PeerTable } from '../../src/engine/v2-peers.js';
import { ProxyError, type ErrorCode } from '../../src/errors.js';
import type { LogFields, LogLevel, Logger } from '../../src/log.js';
import { networkByName } from '../../src/networks.js';
import { serializeV1 } from '../../src/v1/framing.js';
import { decodeContents } from '../../src/v2/messages.js';
import { V2Transport } from '../../src/v2/transport.js';
import { makeDestination } from '../../src/address.js';
import { isTransient, setSink } from '../../src/transient-reads.js';
import { dial } from '../../src/upstream/dialer.js';
import { MessageChannel, type Msg, serveLikeANode, versionPayload } from '../helpers/node.js';
import { sleep } from '../helpers/fuzz/sockets.js';
import { until, within } from '../helpers/wait.js';

const REGTEST = networkByName('regtest')!;
const MAGIC = REGTEST.magic;
const NODE_P2P_V2 = 1n << 11n;
const VERSION = serializeV1(MAGIC, 'version', versionPayload());

/** v1 header + MAX_JUDGED from bridge.ts, written out: what a fallback remote may send before its VERSION is judged. */
const MAX_JUDGED = 24 + 4096;

const open: net.Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
});

type PairOptions = { innerHalfOpen?: boolean; outerHalfOpen?: boolean };

/**
 * A connected loopback pair. `inner` is what a Bridge is handed (accepted paused, as the server
 * does; half-open unless told otherwise), `outer` is the test's end (the client, peer or node).
 */
async function pair(o: PairOptions = {}): Promise<{ outer: net.Socket; inner: net.Socket }> {
  const server = net.createServer({ allowHalfOpen: o.innerHalfOpen ?? true, pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const outer = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: o.outerHalfOpen ?? false });
  outer.on('error', () => {});
  await new Promise<void>((resolve) => outer.once('connect', resolve));
  const inner = await accepted;
  inner.on('error', () => {});
  server.close();
  open.push(outer, inner);
  return { outer, inner };
}

/**
 * A socket dialed as the server dials a client's remote: `inner` reads into the shared buffer of
 * transient-reads.ts (handed over paused, by dial()), `outer` is the accepted end the test drives.
 */
async function dialed(): Promise<{ outer: net.Socket; inner: net.Socket }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const inner = await dial({ destination: makeDestination('127.0.0.1', (server.address() as net.AddressInfo).port), timeoutMs: 2000, transientReads: true });
  inner.on('error', () => {});
  const outer = await accepted;
  outer.on('error', () => {});
  server.close();
  open.push(outer, inner);
  assert.equal(isTransient(inner), true);
  return { outer, inner };
}

/** Make another transient socket read `n` bytes of 0xEE: the shared read buffer is overwritten. */
async function overwriteSharedBuffer(n = 200_000): Promise<void> {
  const other = await dialed();
  let read = 0;
  setSink(other.inner, (view) => (read += view.length));
  other.inner.resume();
  other.outer.write(Buffer.alloc(n, 0xee));
  await until(() => read === n, 2000, 'the other socket read');
  other.inner.destroy();
}

interface Line {
  level: LogLevel;
  msg: string;
  fields: LogFields;
}

/** Logger, observer and record for one Bridge, recording everything (every log call, whatever the level). */
function harness(o: { level?: LogLevel; frontEnd?: FrontEndKind; observer?: Partial<ProxyObserver> } = {}) {
  const lines: Line[] = [];
  const level = o.level ?? 'info';
  const at =
    (l: LogLevel) =>
    (msg: string, fields?: LogFields): void => {
      lines.push({ level: l, msg, fields: fields ?? {} });
    };
  const log: Logger = { level, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: () => log, reopen() {} };
  const events: { kind: string; value: unknown }[] = [];
  let closedWith: (v: { reason: string; code: ErrorCode | undefined }) => void = () => {};
  const closed = new Promise<{ reason: string; code: ErrorCode | undefined }>((resolve) => (closedWith = resolve));
  const observer: ProxyObserver = {
    opened() {},
    established: (_r, ms) => events.push({ kind: 'established', value: ms }),
    fallback: (_r, allowed) => events.push({ kind: 'fallback', value: allowed }),
    downgrade: (_r, outcome) => events.push({ kind: 'downgrade', value: outcome }),
    dropped: (_r, code) => events.push({ kind: 'dropped', value: code }),
    closed: (_r, reason, code) => {
      events.push({ kind: 'closed', value: reason });
      closedWith({ reason, code });
    },
    ...o.observer,
  };
  const record: ConnectionRecord = newRecord(7, o.frontEnd ?? 'socks5', '127.0.0.1:50001');
  record.peer = '127.0.0.1:18444';
  const line = (msg: string): Line | undefined => lines.find((l) => l.msg === msg);
  return { lines, events, closed, record, line, common: { record, log, observer, idleTimeoutMs: 60_000 } };
}

/** Everything a socket receives, and whether its FIN came. */
function collect(socket: net.Socket): { bytes: () => Buffer; ended: Promise<void> } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve) => socket.once('end', resolve));
  return { bytes: () => Buffer.concat(chunks), ended };
}

/** Read a paused socket 16 KiB per millisecond until its FIN: all it received. */
function slowRead(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    const t = setInterval(() => {
      const c = socket.read(Math.min(16_384, socket.readableLength)) as Buffer | null;
      if (c !== null) chunks.push(c);
    }, 1);
    socket.once('end', () => {
      clearInterval(t);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** A passthrough Bridge between a new client pair and a new peer pair, not yet started. */
async function passthrough(o: { client?: PairOptions; peer?: PairOptions; localInitial?: Buffer[]; h?: ReturnType<typeof harness> } = {}) {
  const client = await pair(o.client);
  const peer = await pair(o.peer);
  const h = o.h ?? harness();
  const bridge = new Bridge({ ...h.common, role: 'passthrough', local: client.inner, remote: peer.inner, localInitial: o.localInitial ?? [] });
  return { client, peer, h, bridge };
}

/** The initiator's options for a client and a remote, v1 fallback off unless `redial` is given. */
function initiatorOptions(h: ReturnType<typeof harness>, local: net.Socket, remote: net.Socket, extra: Partial<InitiatorOptions> = {}): InitiatorOptions {
  return {
    ...h.common,
    role: 'initiator',
    local,
    remote,
    localInitial: [],
    network: REGTEST,
    handshakeTimeoutMs: 10_000,
    destination: { host: '127.0.0.1', port: 18444 },
    redial: () => Promise.reject(new Error('no redial in this test')),
    guard: 'off',
    ...extra,
  };
}

/**
 * An initiator Bridge with the client's VERSION held and a remote that has not answered; its
 * redial counts its calls and fails. `client`: a pair prepared by the test (default: a new one).
 */
async function handshaking(o: { client?: { outer: net.Socket; inner: net.Socket }; extra?: Partial<InitiatorOptions> } = {}) {
  const client = o.client ?? (await pair());
  const peer = await pair();
  const h = harness();
  const counts = { redials: 0 };
  const redial = (): Promise<net.Socket> => {
    counts.redials++;
    return Promise.reject(new Error('no redial expected'));
  };
  new Bridge(initiatorOptions(h, client.inner, peer.inner, { localInitial: [VERSION], redial, ...o.extra })).start();
  return { client, peer, h, counts };
}

describe('engine: Bridge driven directly', function () {
  this.timeout(20_000);

  describe('start and teardown', () => {
    const throwers: [string, unknown, (reason: string) => void][] = [
      [
        'an Error (its stack is logged)',
        new Error('boom'),
        (reason) => {
          assert.ok(reason.startsWith('internal error: Error: boom\n'), reason);
          assert.match(reason, /\n +at /);
        },
      ],
      ['a string', 'boom', (reason) => assert.equal(reason, 'internal error: boom')],
      ['undefined', undefined, (reason) => assert.equal(reason, 'internal error: undefined')],
    ];
    for (const [what, thrown, check] of throwers) {
      it(`an exception while starting (${what}) closes the connection with ERR_INTERNAL`, async () => {
        const h = harness({
          observer: {
            established: () => {
              throw thrown;
            },
          },
        });
        const { client, peer, bridge } = await passthrough({ h });
        assert.doesNotThrow(() => bridge.start());
        const { reason, code } = await within(h.closed, 2000, 'close');
        assert.equal(code, 'ERR_INTERNAL');
        check(reason);
        assert.ok(client.inner.destroyed && peer.inner.destroyed);
      });
    }

    it('destroy() is idempotent: one closed line and one report, with the first reason', async () => {
      const { h, bridge } = await passthrough();
      bridge.start();
      bridge.destroy('first', 'ERR_IDLE_TIMEOUT');
      bridge.destroy('second');
      await sleep(50);
      assert.deepEqual(
        h.events.filter((e) => e.kind === 'closed').map((e) => e.value),
        ['first'],
      );
      assert.equal(h.lines.filter((l) => l.msg === 'closed').length, 1);
    });

    it('the closed line: duration in seconds, no shaping or dropped fields when there were none; passthrough logs no network', async () => {
      const { h, bridge } = await passthrough();
      bridge.start();
      await sleep(300);
      bridge.destroy('test over');
      const established = h.line('established')!;
      assert.equal(established.fields.transport, 'passthrough');
      assert.equal(established.fields.network, undefined);
      const closed = h.line('closed')!;
      assert.equal(closed.level, 'info');
      const m = /^(\d+\.\d{3})s$/.exec(String(closed.fields.duration));
      assert.ok(m, String(closed.fields.duration));
      assert.ok(Number(m[1]) >= 0.25 && Number(m[1]) < 5, m[1]);
      assert.equal(closed.fields.client, '127.0.0.1:50001');
      assert.equal(closed.fields.peer, '127.0.0.1:18444');
      for (const f of ['decoys_to_peer', 'decoy_bytes_to_peer', 'dropped']) assert.equal(closed.fields[f], undefined, f);
    });
  });

  describe('a v2 session', () => {
    /** A client (v1) and a v2 responder that answers like a node; resolves once the session is up. */
    async function session(h: ReturnType<typeof harness>, extra: Partial<InitiatorOptions> = {}) {
      const client = await pair();
      const peer = await pair();
      const node = new MessageChannel(peer.outer, MAGIC, { v2: 'responder' });
      serveLikeANode(node);
      const ch = new MessageChannel(client.outer, MAGIC);
      const bridge = new Bridge(initiatorOptions(h, client.inner, peer.inner, { localInitial: [VERSION], ...extra }));
      bridge.start();
      await ch.next('version');
      return { client, peer, node, ch, bridge };
    }

    it('handshake_ms is the time the handshake took', async () => {
      const h = harness();
      await session(h);
      const ms = h.events.find((e) => e.kind === 'established')!.value as number;
      assert.ok(ms >= 0 && ms < 10_000, String(ms));
      assert.equal(h.line('established')!.fields.handshake_ms, ms);
      assert.equal(h.line('established')!.fields.network, 'regtest');
    });

    it('a large message the kernel takes at once does not pause the peer', async () => {
      const h = harness();
      const { peer, node, ch } = await session(h);
      let pauses = 0;
      const pause = peer.inner.pause.bind(peer.inner);
      peer.inner.pause = () => {
        pauses++;
        return pause();
      };
      const payload = Buffer.alloc(60_000, 1);
      for (let i = 1; i <= 20; i++) {
        node.send('blob', payload);
        await ch.until(() => ch.received.filter((m) => m.command === 'blob').length === i, 2000, `message ${i} at the client`);
      }
      // Each message goes to the client as a header and a payload, a corked batch past the 16 KiB
      // high-water mark; with an idle client the kernel takes it whole. At most a rare partial
      // write may pause the peer.
      assert.ok(pauses <= 2, `${pauses} pauses for 20 messages`);
    });

    it('a dropped message is counted and named in the closed line; logged at debug only when debug is on', async () => {
      for (const level of ['info', 'debug'] as const) {
        const h = harness({ level });
        const { ch, node, bridge } = await session(h);
        const bad = serializeV1(MAGIC, 'ping', Buffer.alloc(8, 1));
        bad[20] ^= 0xff; // checksum
        ch.socket.write(bad);
        ch.send('echo', Buffer.from('after'));
        await node.next('echo');
        bridge.destroy('test over');
        assert.deepEqual(
          h.events.filter((e) => e.kind === 'dropped').map((e) => e.value),
          ['ERR_V1_BAD_CHECKSUM'],
        );
        assert.equal(h.line('closed')!.fields.dropped, 'ERR_V1_BAD_CHECKSUM:1');
        const debug = h.lines.filter((l) => l.level === 'debug');
        if (level === 'info') assert.deepEqual(debug, [], 'no debug call at level info (its fields are not even built)');
        else
          assert.deepEqual(
            debug.map((l) => [l.msg, l.fields.code]),
            [['dropped a message from the client', 'ERR_V1_BAD_CHECKSUM']],
          );
      }
    });

    it('learns v2 peers from addr and addrv2 the peer relays, and only from those', async () => {
      const table = new V2PeerTable();
      const h = harness();
      const { node, ch } = await session(h, { v2Peers: table });
      const addrv2 = (entries: [number[], bigint][]): Buffer =>
        Buffer.concat([
          Buffer.from([entries.length]),
          ...entries.map(([ip, services]) =>
            Buffer.concat([Buffer.alloc(4), Buffer.from([0xfe]), u32(Number(services)), Buffer.from([1, 4, ...ip]), port(8333)]),
          ),
        ]);
      const addrV1 = (ip: number[], services: bigint): Buffer => {
        const services8 = Buffer.alloc(8);
        services8.writeBigUInt64LE(services);
        return Buffer.concat([Buffer.from([1]), Buffer.alloc(4), services8, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip]), port(8333)]);
      };
      node.send(
        'addrv2',
        addrv2([
          [[1, 2, 3, 4], NODE_P2P_V2 | 1n],
          [[5, 6, 7, 8], 1n],
        ]),
      );
      node.send('addr', addrV1([9, 9, 9, 9], NODE_P2P_V2));
      node.send('xaddr', addrv2([[[7, 7, 7, 7], NODE_P2P_V2]]));
      node.send('echo', Buffer.from('last'));
      await ch.next('echo');
      assert.ok(table.lookup('1.2.3.4', 8333), 'addrv2 with NODE_P2P_V2');
      assert.equal(table.lookup('5.6.7.8', 8333), undefined, 'addrv2 without the bit');
      assert.ok(table.lookup('9.9.9.9', 8333), 'addr (v1 format) with NODE_P2P_V2');
      assert.equal(table.lookup('7.7.7.7', 8333), undefined, 'another command with the same bytes');
    });
  });

  describe('the handshake', () => {
    it("the client's held VERSION leaves as soon as the peer's key is in, before the peer's version packet", async () => {
      const client = await pair();
      const peer = await pair();
      const responder = new V2Transport({ role: 'responder', magic: MAGIC });
      responder.start();
      let answer = Buffer.alloc(0);
      let keySent = false;
      const got: string[] = [];
      peer.outer.on('data', (chunk: Buffer) => {
        for (const ev of responder.receive(chunk)) {
          if (ev.type === 'send') answer = Buffer.concat([answer, ev.data]);
          if (ev.type === 'message') got.push(decodeContents(ev.contents).command);
        }
        // Only the 64-byte key: no garbage terminator, so the Bridge's handshake cannot complete.
        if (!keySent && answer.length >= 64) {
          keySent = true;
          peer.outer.write(answer.subarray(0, 64));
        }
      });
      const h = harness();
      const bridge = new Bridge(initiatorOptions(h, client.inner, peer.inner, { localInitial: [VERSION] }));
      bridge.start();
      await until(() => got.includes('version'), 3000, "the client's VERSION at the peer");
      assert.equal(h.record.transport, undefined, 'still in the handshake');
      // A client FIN now (we can encrypt) is passed on at once.
      const peerEnd = collect(peer.outer).ended;
      client.outer.end();
      await within(peerEnd, 2000, 'FIN at the peer');
    });

    it("MAX_HELD bytes are held while the peer's key is not in; one byte more and the client is not read", async () => {
      const client = await pair();
      const peer = await pair();
      const h = harness();
      new Bridge(initiatorOptions(h, client.inner, peer.inner)).start();
      client.outer.write(Buffer.alloc(MAX_HELD, 0x55));
      await until(() => client.inner.bytesRead === MAX_HELD, 3000, 'MAX_HELD bytes read');
      await sleep(50);
      assert.equal(client.inner.isPaused(), false);
      client.outer.write(Buffer.alloc(1));
      await until(() => client.inner.bytesRead === MAX_HELD + 1, 3000, 'one more byte read');
      assert.equal(client.inner.isPaused(), true);
      assert.equal(MAX_HELD, 64 * 1024);
    });

    it("a client's FIN before it sent anything is passed on to the remote during the handshake", async () => {
      const client = await pair();
      const peer = await pair();
      const h = harness();
      new Bridge(initiatorOptions(h, client.inner, peer.inner)).start();
      const atPeer = collect(peer.outer);
      client.outer.end();
      await within(atPeer.ended, 2000, 'FIN at the peer');
      assert.ok(atPeer.bytes().length >= 64, 'our key and garbage');
    });

    it('a remote that sends its key and closes is ERR_V2_PEER_CLOSED, not a v1 fallback', async () => {
      const { peer, h, counts } = await handshaking();
      peer.outer.end(randomBytes(64));
      const { code, reason } = await within(h.closed, 3000, 'close');
      assert.equal(code, 'ERR_V2_PEER_CLOSED');
      assert.equal(reason, 'remote closed during the v2 handshake');
      assert.equal(counts.redials, 0);
    });

    it('a client reset during the handshake is ERR_CLIENT_RESET, never a v1 fallback', async () => {
      const { client, h, counts } = await handshaking();
      client.outer.resetAndDestroy();
      const { code } = await within(h.closed, 3000, 'close');
      assert.equal(code, 'ERR_CLIENT_RESET');
      assert.equal(counts.redials, 0);
    });
  });

  describe('v1 fallback', () => {
    /**
     * A client whose VERSION is held, a remote that goes away as the test says, and a redial to a
     * raw v1 "node" the test answers for. Resolves once the node has the replayed VERSION.
     */
    async function fallback(
      o: {
        gone?: (peer: { outer: net.Socket; inner: net.Socket }) => Promise<void> | void;
        extra?: Partial<InitiatorOptions>;
        clientEnds?: boolean;
        beforeStart?: boolean;
        /** The node as the redial dials it, with transient reads; `early`: it has read these bytes before the redial returns it. */
        dialedNode?: { early?: Buffer };
      } = {},
    ) {
      const client = await pair();
      const peer = await pair({ innerHalfOpen: o.beforeStart === true ? false : true });
      const nodePair = o.dialedNode === undefined ? await pair() : await dialed();
      const early = o.dialedNode?.early;
      const h = harness();
      let redials = 0;
      const gone = o.gone ?? ((p) => void p.outer.once('data', () => p.outer.destroy()));
      if (o.beforeStart === true) await gone(peer);
      else void gone(peer);
      const atClient = collect(client.outer);
      const atNode = collect(nodePair.outer);
      const bridge = new Bridge(
        initiatorOptions(h, client.inner, peer.inner, {
          localInitial: [VERSION],
          redial: async () => {
            redials++;
            if (early !== undefined) {
              // Resumed with no sink: the socket reads the node's first bytes and keeps a copy.
              nodePair.outer.write(early);
              nodePair.inner.resume();
              await until(() => nodePair.inner.bytesRead === early.length, 2000, 'the early read');
              nodePair.inner.pause();
              await overwriteSharedBuffer();
            }
            return nodePair.inner;
          },
          ...o.extra,
        }),
      );
      bridge.start();
      if (o.clientEnds === true) client.outer.end();
      await until(() => atNode.bytes().length >= VERSION.length, 3000, 'the VERSION replayed at the node');
      assert.deepEqual(atNode.bytes(), VERSION);
      if (early !== undefined) await until(() => atClient.bytes().length >= early.length, 2000, 'the early bytes at the client');
      assert.equal(redials, 1);
      return { h, bridge, client, node: nodePair.outer, atClient, atNode };
    }

    /** The node's own VERSION, with these services. */
    const nodeVersion = (services: bigint): Buffer => {
      const p = versionPayload();
      p.writeBigUInt64LE(services, 4);
      return serializeV1(MAGIC, 'version', p);
    };

    it('is logged naming both ends and why', async () => {
      const { h } = await fallback();
      const line = h.line('remote looks like a v1-only peer; reconnecting with v1')!;
      assert.deepEqual(line.fields, { client: '127.0.0.1:50001', peer: '127.0.0.1:18444', why: 'closed the connection' });
    });

    it("a client's FIN while its VERSION was held reaches the node after the replay", async () => {
      const { atNode } = await fallback({ clientEnds: true });
      await within(atNode.ended, 2000, 'FIN at the node');
    });

    it('a remote reset before its first byte is a v1-only peer too', async () => {
      const { h } = await fallback({ gone: (p) => void p.outer.once('data', () => p.outer.resetAndDestroy()) });
      assert.equal(h.record.transport, 'v1-fallback');
    });

    it('a remote reset before the Bridge had it: reconnected with v1', async () => {
      const { h } = await fallback({
        beforeStart: true,
        gone: async (p) => {
          p.outer.resetAndDestroy();
          p.inner.resume();
          await new Promise((r) => p.inner.once('close', r));
        },
      });
      assert.equal(h.record.transport, 'v1-fallback');
    });

    it('a remote that closed before the Bridge had it: reconnected with v1, and the client is kept', async () => {
      const { h, node, atClient, client } = await fallback({
        beforeStart: true,
        gone: async (p) => {
          p.outer.end();
          p.inner.resume();
          await new Promise((r) => p.inner.once('close', r));
        },
      });
      node.write(nodeVersion(1n));
      await until(() => atClient.bytes().length > 0, 2000, "the node's VERSION at the client");
      await sleep(100);
      assert.equal(client.outer.readableEnded, false, 'no FIN to the client');
      assert.equal(
        h.events.some((e) => e.kind === 'closed'),
        false,
      );
    });

    for (const [what, error, code, reason] of [
      ['a ProxyError', new ProxyError('ERR_DIAL_REFUSED', 'connection refused'), 'ERR_DIAL_REFUSED', 'v1 fallback reconnect failed: connection refused'],
      ['another error', new Error('odd'), 'ERR_INTERNAL', 'v1 fallback reconnect failed: v1 fallback reconnect: Error: odd'],
    ] as const) {
      it(`a redial that fails (${what}) closes the connection with its code`, async () => {
        const client = await pair();
        const peer = await pair();
        const h = harness();
        peer.outer.once('data', () => peer.outer.destroy());
        new Bridge(initiatorOptions(h, client.inner, peer.inner, { localInitial: [VERSION], redial: () => Promise.reject(error) })).start();
        const closed = await within(h.closed, 3000, 'close');
        assert.deepEqual(closed, { reason, code });
      });
    }

    it("the node's VERSION with NODE_P2P_V2 is a downgrade, detected without a peer table too", async () => {
      const { h, node, atClient } = await fallback();
      const v = nodeVersion(NODE_P2P_V2 | 1n);
      node.write(v);
      await until(() => atClient.bytes().length >= v.length, 2000, "the node's VERSION at the client");
      assert.deepEqual(atClient.bytes(), v);
      assert.deepEqual(
        h.events.filter((e) => e.kind === 'downgrade').map((e) => e.value),
        ['detected'],
      );
      const warn = h.line('v1 fallback was a downgrade')!;
      assert.equal(warn.level, 'warn');
      assert.equal(warn.fields.client, '127.0.0.1:50001');
      assert.equal(warn.fields.peer, '127.0.0.1:18444');
      assert.equal(warn.fields.code, 'ERR_V2_DOWNGRADE');
    });

    it('under guard known, a downgraded VERSION in two pieces reaches the client not even in part', async () => {
      const { h, node, atClient } = await fallback({ extra: { guard: 'known', v2Peers: new V2PeerTable() } });
      const v = nodeVersion(NODE_P2P_V2 | 1n);
      node.write(v.subarray(0, 40));
      await sleep(150);
      assert.equal(atClient.bytes().length, 0, 'the first piece is held');
      node.write(v.subarray(40));
      const { code } = await within(h.closed, 2000, 'close');
      assert.equal(code, 'ERR_V2_DOWNGRADE');
      assert.equal(atClient.bytes().length, 0);
    });

    it('a first message other than VERSION is not judged, whatever its bytes', async () => {
      const { h, node, atClient } = await fallback({ extra: { guard: 'known', v2Peers: new V2PeerTable() } });
      // Where a VERSION has its services, the bit; as an addr, a count of zero.
      const looksLikeV2 = Buffer.alloc(86);
      looksLikeV2.writeBigUInt64LE(NODE_P2P_V2, 4);
      const m = serializeV1(MAGIC, 'addr', looksLikeV2);
      node.write(m);
      await until(() => atClient.bytes().length >= m.length, 2000, 'the message at the client');
      assert.deepEqual(atClient.bytes(), m);
      assert.equal(
        h.events.some((e) => e.kind === 'downgrade' || e.kind === 'closed'),
        false,
      );
    });

    it('a VERSION too short to say its services is relayed', async () => {
      const { h, node, atClient } = await fallback({ extra: { guard: 'known', v2Peers: new V2PeerTable() } });
      const m = serializeV1(MAGIC, 'version', Buffer.alloc(11, 0xff));
      node.write(m);
      await until(() => atClient.bytes().length >= m.length, 2000, 'the VERSION at the client');
      assert.deepEqual(atClient.bytes(), m);
      assert.equal(
        h.events.some((e) => e.kind === 'closed'),
        false,
      );
    });

    it(`at most ${MAX_JUDGED} bytes wait for the VERSION: one more and they go to the client`, async () => {
      const { node, atClient } = await fallback({ extra: { guard: 'known', v2Peers: new V2PeerTable() } });
      // A header announcing a large payload, then payload bytes: no whole message yet.
      const big = serializeV1(MAGIC, 'block', Buffer.alloc(100_000, 0xaa));
      node.write(big.subarray(0, MAX_JUDGED));
      await sleep(200);
      assert.equal(atClient.bytes().length, 0);
      node.write(big.subarray(MAX_JUDGED, MAX_JUDGED + 1));
      await until(() => atClient.bytes().length === MAX_JUDGED + 1, 2000, 'the held bytes at the client');
      assert.deepEqual(atClient.bytes(), big.subarray(0, MAX_JUDGED + 1));
    });

    it('a node dialed with transient reads: its VERSION in two reads, held while judged, then more, reach the client exact', async () => {
      const { node, atClient } = await fallback({ dialedNode: {} });
      const v = nodeVersion(1n);
      // The first piece is held (judging, and in the watch's parser) while the next read reuses the buffer.
      node.write(v.subarray(0, 40));
      await sleep(100);
      assert.equal(atClient.bytes().length, 0, 'the first piece is held');
      node.write(v.subarray(40));
      const more = [
        serializeV1(MAGIC, 'verack', Buffer.alloc(0)),
        serializeV1(MAGIC, 'block', randomBytes(600_000)),
        serializeV1(MAGIC, 'ping', randomBytes(8)),
      ];
      await until(() => atClient.bytes().length === v.length, 2000, 'the VERSION at the client');
      for (const m of more) node.write(m);
      const all = Buffer.concat([v, ...more]);
      await until(() => atClient.bytes().length >= all.length, 5000, 'everything at the client');
      assert.equal(Buffer.compare(atClient.bytes(), all), 0);
    });

    it('a node dialed with transient reads that read its VERSION before the redial returned: the client gets it first, exact', async () => {
      const v = nodeVersion(1n);
      const { node, atClient } = await fallback({ dialedNode: { early: v } });
      const ping = serializeV1(MAGIC, 'ping', randomBytes(8));
      node.write(ping);
      await until(() => atClient.bytes().length >= v.length + ping.length, 2000, 'the ping at the client');
      assert.deepEqual(atClient.bytes(), Buffer.concat([v, ping]));
    });

    it('bytes that are not a v1 stream are relayed at once, unjudged', async () => {
      const { h, node, atClient } = await fallback({ extra: { guard: 'known', v2Peers: new V2PeerTable() } });
      const junk = Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n');
      node.write(junk);
      await until(() => atClient.bytes().length >= junk.length, 2000, 'the bytes at the client');
      assert.deepEqual(atClient.bytes(), junk);
      assert.equal(
        h.events.some((e) => e.kind === 'closed'),
        false,
      );
    });
  });

  describe('sockets already gone when handed over', () => {
    it('a client that closed before the Bridge had it: the remote gets its FIN, no fallback, "client closed"', async () => {
      const client = await pair({ innerHalfOpen: false });
      client.outer.end();
      client.inner.resume();
      await new Promise((r) => client.inner.once('close', r));
      const { peer, h, counts } = await handshaking({ client, extra: { handshakeTimeoutMs: 500 } });
      const atPeer = collect(peer.outer);
      await within(atPeer.ended, 2000, 'FIN at the peer');
      const { reason, code } = await within(h.closed, 2000, 'close');
      assert.deepEqual({ reason, code }, { reason: 'client closed', code: undefined });
      await sleep(600);
      assert.equal(counts.redials, 0);
    });
  });

  describe('ends', () => {
    it('a client FIN in passthrough reaches the remote', async () => {
      const { client, peer, bridge } = await passthrough();
      bridge.start();
      const atPeer = collect(peer.outer);
      client.outer.end(Buffer.from('last words'));
      await within(atPeer.ended, 2000, 'FIN at the peer');
      assert.equal(atPeer.bytes().toString(), 'last words');
    });

    it('a large first write pauses the client until the remote drains it, even while starting', async () => {
      const { client, peer, bridge } = await passthrough({ localInitial: [Buffer.alloc(4 << 20)] });
      bridge.start();
      assert.equal(client.inner.isPaused(), true);
      const atPeer = collect(peer.outer);
      await until(() => atPeer.bytes().length === 4 << 20, 5000, 'all bytes at the peer');
      await until(() => !client.inner.isPaused(), 2000, 'the client read again');
    });

    for (const [first, innerOf] of [
      ['remote', 'peer'],
      ['client', 'client'],
    ] as const) {
      it(`the ${first} closes with 8 MiB still on the way to the other side: every byte arrives`, async () => {
        const { client, peer, h, bridge } = await passthrough({ client: { innerHalfOpen: first !== 'client' }, peer: { innerHalfOpen: first !== 'remote' } });
        bridge.start();
        const [sender, receiver] = innerOf === 'peer' ? [peer.outer, client.outer] : [client.outer, peer.outer];
        const data = randomBytes(8 << 20);
        receiver.pause();
        sender.end(data);
        // A slow reader: the Bridge still holds bytes for it when the sender's FIN comes through.
        const got = await within(slowRead(receiver), 10_000, 'FIN after the data');
        assert.equal(Buffer.compare(got, data), 0, `${got.length} of ${data.length} bytes`);
        await within(h.closed, 2000, 'close');
      });
    }

    // The other side's FIN follows at once here (the outer sockets are not half-open): the first names the reason.
    for (const [first, reason] of [
      ['client', 'client closed'],
      ['peer', 'peer closed'],
    ] as const) {
      it(`the ${first} closes first and the other side answers with its own FIN: "${reason}"`, async () => {
        const { client, peer, h, bridge } = await passthrough();
        bridge.start();
        (first === 'client' ? client : peer).outer.end();
        const closed = await within(h.closed, 2000, 'close');
        assert.deepEqual({ reason: closed.reason, code: closed.code }, { reason, code: undefined });
      });
    }

    it('the remote closes and the client keeps its side open: closed once the client has everything, "peer closed"', async () => {
      const { client, peer, h, bridge } = await passthrough({ client: { outerHalfOpen: true }, peer: { innerHalfOpen: false } });
      bridge.start();
      const atClient = collect(client.outer);
      peer.outer.end(Buffer.from('bye'));
      const { reason, code } = await within(h.closed, 2000, 'close');
      assert.deepEqual({ reason, code }, { reason: 'peer closed', code: undefined });
      await within(atClient.ended, 2000, 'FIN at the client');
      assert.equal(atClient.bytes().toString(), 'bye');
    });
  });

  describe('a socket dialed with transient reads (its reads are views of a shared buffer)', () => {
    it('a v2 session: messages of the independent peer, packets across reads, reach the client exact', async () => {
      const h = harness();
      const client = await pair();
      const remote = await dialed();
      const node = new MessageChannel(remote.outer, MAGIC, { v2: 'responder', impl: 'independent' });
      serveLikeANode(node);
      const ch = new MessageChannel(client.outer, MAGIC);
      new Bridge(initiatorOptions(h, client.inner, remote.inner, { localInitial: [VERSION] })).start();
      await ch.next('verack');
      const payloads = [randomBytes(300_000), randomBytes(10), randomBytes(70_000), randomBytes(5000), randomBytes(1_000_000), randomBytes(3)];
      for (const p of payloads) {
        node.send('blob', p);
        await sleep(5);
      }
      const blobs = (): Msg[] => ch.received.filter((m) => m.command === 'blob');
      await ch.until(() => blobs().length === payloads.length, 5000, 'every blob at the client');
      assert.deepEqual(
        blobs().map((m) => m.payload),
        payloads,
      );
    });

    for (const dialedSide of ['remote', 'client'] as const) {
      it(`passthrough from a dialed ${dialedSide}: bytes the other socket could not write at once stay exact after later reads`, async () => {
        const h = harness();
        const [client, remote] = dialedSide === 'remote' ? [await pair(), await dialed()] : [await dialed(), await pair()];
        const [from, to] = dialedSide === 'remote' ? [remote, client] : [client, remote];
        // Corked, the receiving socket keeps every write in its own buffer, as one whose kernel
        // buffer is full does (below the high-water mark, so the sender is not paused).
        to.inner.cork();
        new Bridge({ ...h.common, role: 'passthrough', local: client.inner, remote: remote.inner, localInitial: [] }).start();
        const at = collect(to.outer);
        const pieces = Array.from({ length: 5 }, (_, i) => Buffer.alloc(1000, 0x41 + i));
        for (const p of pieces) {
          from.outer.write(p);
          await until(() => from.inner.bytesRead >= (pieces.indexOf(p) + 1) * 1000, 2000, 'the read');
        }
        await overwriteSharedBuffer();
        assert.equal(to.inner.writableLength, 5000, 'all of it waits in the socket');
        to.inner.uncork();
        await until(() => at.bytes().length >= 5000, 2000, 'the bytes at the other end');
        assert.deepEqual(at.bytes(), Buffer.concat(pieces));
      });
    }

    it('passthrough: what the remote read before the Bridge had it reaches the client first, exact', async () => {
      const h = harness();
      const client = await pair();
      const remote = await dialed();
      const first = randomBytes(3000);
      remote.outer.write(first);
      remote.inner.resume();
      await until(() => remote.inner.bytesRead === first.length, 2000, 'the early read');
      await overwriteSharedBuffer();
      const at = collect(client.outer);
      new Bridge({ ...h.common, role: 'passthrough', local: client.inner, remote: remote.inner, localInitial: [] }).start();
      const later = randomBytes(5000);
      remote.outer.write(later);
      await until(() => at.bytes().length >= first.length + later.length, 2000, 'the bytes at the client');
      assert.deepEqual(at.bytes(), Buffer.concat([first, later]));
    });
  });

  describe('inbound', () => {
    /** A v1 peer connected to us, and the node behind us, reached after `delayMs`. */
    async function inbound(o: { delayMs?: number; v2Peers?: V2PeerTable; nodeHalfOpen?: boolean } = {}) {
      const peer = await pair();
      const nodePair = await pair({ innerHalfOpen: o.nodeHalfOpen ?? true });
      const h = harness({ frontEnd: 'inbound' });
      const options: ResponderOptions = {
        ...h.common,
        role: 'responder',
        remote: peer.inner,
        networks: [REGTEST],
        handshakeTimeoutMs: 10_000,
        connectLocal: async () => {
          await sleep(o.delayMs ?? 0);
          return nodePair.inner;
        },
        ...(o.v2Peers === undefined ? {} : { v2Peers: o.v2Peers }),
      };
      const atNode = collect(nodePair.outer);
      new Bridge(options).start();
      return { h, peer, node: nodePair.outer, atNode };
    }

    it("a v1 peer's first bytes reach the node before its first message is whole", async () => {
      const { peer, atNode } = await inbound();
      peer.outer.write(VERSION.subarray(0, 30));
      await until(() => atNode.bytes().length === 30, 2000, 'the first 30 bytes at the node');
      assert.deepEqual(atNode.bytes(), VERSION.subarray(0, 30));
    });

    it('a peer FIN before the node connection is up reaches the node after the bytes', async () => {
      const { peer, atNode } = await inbound({ delayMs: 300 });
      peer.outer.end(VERSION);
      await within(atNode.ended, 3000, 'FIN at the node');
      assert.deepEqual(atNode.bytes(), VERSION);
    });

    it('gossip from a v1 peer to the node is learnt too', async () => {
      const table = new V2PeerTable();
      const { peer, atNode } = await inbound({ v2Peers: table });
      const services8 = Buffer.alloc(8);
      services8.writeBigUInt64LE(NODE_P2P_V2);
      const addr = serializeV1(
        MAGIC,
        'addr',
        Buffer.concat([Buffer.from([1]), Buffer.alloc(4), services8, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 3, 3, 3, 3]), port(8333)]),
      );
      peer.outer.write(Buffer.concat([VERSION, addr]));
      await until(() => atNode.bytes().length === VERSION.length + addr.length, 2000, 'both messages at the node');
      assert.ok(table.lookup('3.3.3.3', 8333));
    });

    it('a node connection that completes after the Bridge ended is closed, not used', async () => {
      const peer = await pair();
      const nodePair = await pair();
      const h = harness({ frontEnd: 'inbound' });
      let connected: (s: net.Socket) => void = () => {};
      const bridge = new Bridge({
        ...h.common,
        role: 'responder',
        remote: peer.inner,
        networks: [REGTEST],
        handshakeTimeoutMs: 10_000,
        connectLocal: () => new Promise<net.Socket>((resolve) => (connected = resolve)),
      });
      bridge.start();
      peer.outer.write(VERSION);
      await until(() => h.record.transport === 'inbound-v1', 2000, 'the v1 peer settled');
      bridge.destroy('test over');
      const atNode = collect(nodePair.outer);
      connected(nodePair.inner);
      await within(atNode.ended, 2000, 'the node connection closed');
      assert.equal(atNode.bytes().length, 0);
    });

    it('the node closing first is "node closed"', async () => {
      const { h, peer, node, atNode } = await inbound({ nodeHalfOpen: false });
      peer.outer.write(VERSION);
      await until(() => atNode.bytes().length === VERSION.length, 2000, 'the VERSION at the node');
      node.end();
      const { reason } = await within(h.closed, 2000, 'close');
      assert.equal(reason, 'node closed');
    });
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function port(p: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(p);
  return b;
}
