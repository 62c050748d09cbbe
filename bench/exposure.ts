/**
 * What a hostile peer or client can make the proxy hold, and what a handshake flood does to an
 * established session (issue 8: items 1-3 and 7). Memory and latency numbers only; the rules
 * themselves are pinned by test/hardening/exposure.test.ts.
 *
 * The proxy runs alone in a child process (bench/proxy-process.ts, --expose-gc; memory is read
 * after gc through the 'mem' request), a fresh one per measurement. Its counterparts:
 * - the bench process: v1 clients (SOCKS5 through the proxy), a scripted BIP324 responder whose
 *   bytes after the handshake the bench chooses, a silent server (accepts, never answers);
 * - the peers child (bench/peers-process.ts): the v2 echo peer and the v1 echo node;
 * - the flood child (bench/flood-process.ts): the inbound handshake flood.
 *
 * Sections (each repeated BENCH_RUNS times, default 3; median and range reported):
 * - trickle: N connections each send bytes one per TCP segment (Nagle off; a round of one byte
 *   per connection is written only once the proxy has read the previous one, so every byte is a
 *   socket read of its own) into something the proxy must buffer: the body of an announced
 *   4,000,013-byte v2 packet (from the peer), the payload of an announced 4,000,000-byte v1
 *   message (from the client), and the client's bytes before the remote answered (the pre-key
 *   hold). Proxy memory growth per byte trickled, and the bytes per socket read it saw (a check).
 * - limits: N connections each holding the largest thing it can make us hold, sent in one write:
 *   (a)-(f) in LIMIT_CASES. Proxy memory per connection, the connection itself included.
 * - flood: ping/pong round trips of an established session (v1 client -> SOCKS5 -> proxy -> v2
 *   echo peer) without and with a flood on the proxy's --inbound listener, default admission
 *   limits and limits off.
 *
 *   node dist/bench/exposure.js [trickle] [limits] [flood]      (default: all)
 *   BENCH_PROXY_DIST=/path/to/other/tree/dist node dist/bench/exposure.js    (that tree's proxy)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, setPriority } from 'node:os';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MAX_HELD } from '../src/engine/bridge.js';
import { MAX_LEGACY_VERSION } from '../src/engine/detect.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_INBOUND } from '../src/config/defaults.js';
import { networkByName } from '../src/networks.js';
import { serializeV1 } from '../src/v1/framing.js';
import { contentsPrefix } from '../src/v2/messages.js';
import { V2Transport } from '../src/v2/transport.js';
import { type Child, cpuSeconds, startChild } from './child.js';
import { connectTcp, socks5Connect, V1Client, versionPayload } from './peers.js';

export interface ExposureRow {
  name: string;
  /** Median of the runs. */
  value: number;
  unit: string;
  min: number;
  max: number;
  runs: number;
}

export interface ExposureResults {
  rows: ExposureRow[];
  /** Every run's value of every metric. */
  samples: Record<string, number[]>;
  /** The proxy tree measured (BENCH_PROXY_DIST), or 'this tree'. */
  proxy: string;
  settings: Record<string, number | string>;
  loadavg: number[][];
}

const MAGIC = networkByName('main')!.magic;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TRICKLE_CONNECTIONS = 20;
/** Connections that trickle first, before the baseline, to warm the proxy's code up; and how much. */
const TRICKLE_WARM = 4;
const TRICKLE_WARM_BYTES = 2000;
const TRICKLE_BYTES = Number(process.env.BENCH_TRICKLE_BYTES ?? 10_000);
const LIMIT_CONNECTIONS = 10;
/** The pre-key hold case: bytes the client writes before the remote answered (well above MAX_HELD). */
const PREKEY_BYTES = 2 << 20;
const FLOOD_PEERS = 500;
/**
 * The flood runs this long before the window: the rate limit's initial burst (twice the rate) and
 * the backlog it leaves on a busy machine are over by then, so the window sees the steady state.
 */
const FLOOD_WARMUP_MS = 2000;
const FLOOD_MS = 3000;
const QUIET_MS = 1000;
const SETTLE_MS = 300;
/** BIP324 MAX_CONTENTS_LEN (1 + 12 + 4,000,000) and the packet around it: 3 length + 1 header + contents + 16 tag. */
const V2_MAX_CONTENTS = 4_000_013;
const V1_MAX_PAYLOAD = 4_000_000;
/** "Effectively off": the admission limits a proxy without them (the previous main) had. */
const LIMITS_OFF = { max: 100_000, perIp: 0, handshakes: 100_000, handshakeRate: 100_000 };
const MB = 1e6;

const PROXY_SCRIPT = new URL('./proxy-process.js', import.meta.url);
const PEERS_SCRIPT = new URL('./peers-process.js', import.meta.url);
const FLOOD_SCRIPT = new URL('./flood-process.js', import.meta.url);

// --- helpers -----------------------------------------------------------------------------------

/**
 * For memory readings the young generation starts at its full size (16 MB semi-spaces): left to
 * grow, it doubles during a trickle run and adds 5-8 MB of RSS that has nothing to do with the
 * bytes held (27 B/B instead of 3-4 over 200 KB). The flood runs with V8's defaults.
 */
const MEMORY_FLAGS = ['--min-semi-space-size=16'];

function startProxy(config: Record<string, unknown> = {}, countReads = false, flags: string[] = MEMORY_FLAGS): Promise<Child> {
  return startChild(PROXY_SCRIPT, ['4096', JSON.stringify(config), countReads ? 'count-reads' : ''], ['--expose-gc', ...flags]);
}

/** Heap and ArrayBuffer memory: what JS code holds, without the allocator's free pages. */
function held(m: NodeJS.MemoryUsage): number {
  return m.heapUsed + m.arrayBuffers;
}

/**
 * The proxy's memory after gc, once two readings 200 ms apart agree on the heap within 16 KB: the
 * first reading after a busy spell can still drop by up to 200 KB (code and feedback let go over
 * the next collections), which is a whole B/B over the 200 KB a trickle run buffers.
 */
async function mem(proxy: Child): Promise<NodeJS.MemoryUsage> {
  let m = (await proxy.request('mem')).mem!;
  for (let i = 0; i < 10; i++) {
    await sleep(200);
    const next = (await proxy.request('mem')).mem!;
    const stable = Math.abs(next.heapUsed - m.heapUsed) < 16 * 1024;
    m = next;
    if (stable) break;
  }
  return m;
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Wait until the proxy has read what it will of our writes: every socket's write buffer is empty,
 * or stopped shrinking (the proxy paused it), then SETTLE_MS more.
 */
async function settle(sockets: net.Socket[]): Promise<void> {
  const pending = (): number => sockets.reduce((n, s) => n + (s.destroyed ? 0 : s.writableLength), 0);
  let last = -1;
  let same = 0;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const now = pending();
    if (now === 0) break;
    same = now === last ? same + 1 : 0;
    if (same >= 3) break;
    last = now;
    await sleep(100);
  }
  await sleep(SETTLE_MS);
}

/**
 * One byte per write per socket, in rounds: the next round is written only once the proxy has
 * read every byte of this one (its read count, over IPC), so that each byte is a read of its own
 * however busy the machine is.
 */
async function trickle(proxy: Child, sockets: net.Socket[], bodies: Buffer[]): Promise<void> {
  for (const s of sockets) s.setNoDelay(true);
  const n = Math.min(...bodies.map((b) => b.length));
  let read = (await proxy.request('stats')).stats!.bytes;
  for (let j = 0; j < n; j++) {
    for (let k = 0; k < sockets.length; k++) sockets[k].write(bodies[k].subarray(j, j + 1));
    const want = read + sockets.length;
    for (;;) {
      read = (await proxy.request('stats')).stats!.bytes!;
      if (read >= want) break;
    }
  }
  await settle(sockets);
}

interface ScriptedPeer {
  port: number;
  /** Sessions whose handshake is done, in order: the transport to encrypt with, and the socket. */
  readonly sessions: { t: V2Transport; socket: net.Socket }[];
  close(): Promise<void>;
}

/** A BIP324 responder that completes the handshake, then sends only what the bench tells it to (and ignores what it gets). */
async function startScriptedV2Peer(): Promise<ScriptedPeer> {
  const sessions: ScriptedPeer['sessions'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const t = new V2Transport({ role: 'responder', magic: MAGIC });
    t.start();
    let ready = false;
    socket.on('data', (chunk: Buffer) => {
      if (ready) return;
      for (const ev of t.receive(chunk)) {
        if (ev.type === 'send') socket.write(ev.data);
        else if (ev.type === 'ready') ready = true;
      }
      if (ready) sessions.push({ t, socket });
    });
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Accepts connections and never sends a byte (a remote that never answers the handshake). */
async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.resume();
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Peers {
  child: Child;
  v2: number;
  v1: number;
}

/** A few complete sessions opened and closed, so code paths and pools exist before the baseline. */
async function warmUp(proxy: Child, peers: Peers): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const c = new V1Client(await socks5Connect(proxy.port, peers.v2), MAGIC);
      await c.handshake();
      return c;
    }),
  );
  for (const c of clients) c.socket.destroy();
  await until(async () => (await proxy.request('conns')).conns === 0, 10_000, 'warm-up connections to close');
}

/** SOCKS5 through the proxy to the scripted peer, the client's VERSION sent, the peer's handshake done. */
async function scriptedSessions(proxy: Child, peer: ScriptedPeer, n: number): Promise<{ clients: net.Socket[]; peers: ScriptedPeer['sessions'] }> {
  const first = peer.sessions.length;
  const clients = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = await socks5Connect(proxy.port, peer.port);
      s.on('error', () => {});
      s.write(serializeV1(MAGIC, 'version', versionPayload()));
      return s;
    }),
  );
  await until(() => peer.sessions.length >= first + n, 20_000, 'the scripted peer handshakes');
  return { clients, peers: peer.sessions.slice(first, first + n) };
}

/** v1 clients through the proxy to the v2 echo peer, version/verack done. */
async function echoSessions(proxy: Child, peers: Peers, n: number): Promise<V1Client[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const c = new V1Client(await socks5Connect(proxy.port, peers.v2), MAGIC);
      await c.handshake();
      c.socket.on('error', () => {});
      return c;
    }),
  );
}

function v2Packet(t: V2Transport, contents: number): Buffer {
  return t.encrypt([Buffer.alloc(contents)]);
}

// --- trickle -----------------------------------------------------------------------------------

type Metrics = Record<string, number>;

/**
 * The first TRICKLE_WARM senders trickle TRICKLE_WARM_BYTES first, so that the proxy's code for
 * this path is compiled before the baseline (optimised code and type feedback are heap too: about
 * 150 KB, whatever the bytes); the others are measured.
 */
async function trickleMeasure(proxy: Child, all: net.Socket[], allBodies: Buffer[], key: string): Promise<Metrics> {
  await trickle(
    proxy,
    all.slice(0, TRICKLE_WARM),
    allBodies.slice(0, TRICKLE_WARM).map((b) => b.subarray(0, TRICKLE_WARM_BYTES)),
  );
  const senders = all.slice(TRICKLE_WARM);
  const bodies = allBodies.slice(TRICKLE_WARM);
  const m0 = await mem(proxy);
  const r0 = (await proxy.request('stats')).stats!;
  await trickle(proxy, senders, bodies);
  const m1 = await mem(proxy);
  const r1 = (await proxy.request('stats')).stats!;
  const live = (await proxy.request('conns')).conns!;
  const bytes = bodies.reduce((n, b) => n + b.length, 0);
  return {
    [`${key}.held`]: (held(m1) - held(m0)) / bytes,
    [`${key}.ab`]: (m1.arrayBuffers - m0.arrayBuffers) / bytes,
    [`${key}.rss`]: (m1.rss - m0.rss) / bytes,
    [`${key}.read`]: (r1.bytes - r0.bytes) / Math.max(1, r1.reads - r0.reads),
    [`${key}.live`]: live,
  };
}

async function trickleV2(peers: Peers): Promise<Metrics> {
  const proxy = await startProxy({}, true);
  const peer = await startScriptedV2Peer();
  try {
    await warmUp(proxy, peers);
    const { clients, peers: sessions } = await scriptedSessions(proxy, peer, TRICKLE_WARM + TRICKLE_CONNECTIONS);
    for (const c of clients) c.resume();
    const packets = sessions.map((s) => v2Packet(s.t, V2_MAX_CONTENTS));
    // The encrypted length first, in one segment: from here the proxy waits for the body.
    for (const [i, s] of sessions.entries()) s.socket.write(packets[i].subarray(0, 3));
    await settle(sessions.map((s) => s.socket));
    const r = await trickleMeasure(
      proxy,
      sessions.map((s) => s.socket),
      packets.map((p) => p.subarray(3, 3 + TRICKLE_BYTES)),
      'trickle.v2',
    );
    for (const c of clients) c.destroy();
    return r;
  } finally {
    await proxy.stop();
    await peer.close();
  }
}

async function trickleV1(peers: Peers): Promise<Metrics> {
  const proxy = await startProxy({}, true);
  try {
    await warmUp(proxy, peers);
    const clients = await echoSessions(proxy, peers, TRICKLE_WARM + TRICKLE_CONNECTIONS);
    const message = serializeV1(MAGIC, 'tx', Buffer.alloc(V1_MAX_PAYLOAD));
    for (const c of clients) c.socket.write(message.subarray(0, 24));
    await settle(clients.map((c) => c.socket));
    const body = message.subarray(24, 24 + TRICKLE_BYTES);
    const r = await trickleMeasure(
      proxy,
      clients.map((c) => c.socket),
      clients.map(() => body),
      'trickle.v1',
    );
    for (const c of clients) c.socket.destroy();
    return r;
  } finally {
    await proxy.stop();
  }
}

/** The client's bytes before the remote sent anything: held (up to MAX_HELD) until the peer's key comes. */
async function tricklePreKey(peers: Peers): Promise<Metrics> {
  // A remote that stays silent is taken for a v1 peer after --handshake-timeout (10 s); that must not happen mid-measurement.
  const proxy = await startProxy({ timeouts: { handshakeMs: 120_000 } }, true);
  const silent = await startSilentServer();
  try {
    await warmUp(proxy, peers);
    const clients = await Promise.all(Array.from({ length: TRICKLE_WARM + TRICKLE_CONNECTIONS }, () => socks5Connect(proxy.port, silent.port)));
    for (const c of clients) {
      c.on('error', () => {});
      c.resume();
      c.write(serializeV1(MAGIC, 'version', versionPayload()));
    }
    await settle(clients);
    const stream = Buffer.concat(Array.from({ length: Math.ceil(TRICKLE_BYTES / 24) }, () => serializeV1(MAGIC, 'verack', Buffer.alloc(0)))).subarray(
      0,
      TRICKLE_BYTES,
    );
    const r = await trickleMeasure(
      proxy,
      clients,
      clients.map(() => stream),
      'trickle.prekey',
    );
    for (const c of clients) c.destroy();
    return r;
  } finally {
    await proxy.stop();
    await silent.close();
  }
}

// --- the largest thing each connection can make us hold ----------------------------------------

interface LimitCase {
  key: string;
  /** Open LIMIT_CONNECTIONS connections, make each hold its thing; returns the sockets written to. */
  run(proxy: Child, peers: Peers): Promise<{ senders: net.Socket[]; cleanup: () => Promise<void> }>;
  config?: Record<string, unknown>;
}

const LIMIT_CASES: LimitCase[] = [
  {
    // (a) from the peer: a maximum v2 packet, complete but for its last byte.
    key: 'limit.v2',
    async run(proxy) {
      const peer = await startScriptedV2Peer();
      const { clients, peers: sessions } = await scriptedSessions(proxy, peer, LIMIT_CONNECTIONS);
      for (const c of clients) c.resume();
      for (const s of sessions) {
        const p = v2Packet(s.t, V2_MAX_CONTENTS);
        s.socket.write(p.subarray(0, p.length - 1));
      }
      return { senders: sessions.map((s) => s.socket), cleanup: () => peer.close().then(() => clients.forEach((c) => c.destroy())) };
    },
  },
  {
    // (b) from the client: a maximum v1 message, complete but for its last byte.
    key: 'limit.v1',
    async run(proxy, peers) {
      const clients = await echoSessions(proxy, peers, LIMIT_CONNECTIONS);
      const m = serializeV1(MAGIC, 'tx', Buffer.alloc(V1_MAX_PAYLOAD));
      for (const c of clients) c.socket.write(m.subarray(0, m.length - 1));
      return { senders: clients.map((c) => c.socket), cleanup: async () => clients.forEach((c) => c.socket.destroy()) };
    },
  },
  {
    // (c) before the remote answered: everything the client sends is held, up to MAX_HELD.
    key: 'limit.prekey',
    config: { timeouts: { handshakeMs: 120_000 } },
    async run(proxy) {
      const silent = await startSilentServer();
      const clients = await Promise.all(Array.from({ length: LIMIT_CONNECTIONS }, () => socks5Connect(proxy.port, silent.port)));
      const verack = serializeV1(MAGIC, 'verack', Buffer.alloc(0));
      const stream = Buffer.concat([serializeV1(MAGIC, 'version', versionPayload()), ...Array.from({ length: Math.ceil(PREKEY_BYTES / 24) }, () => verack)]);
      for (const c of clients) {
        c.on('error', () => {});
        c.resume();
        c.write(stream);
      }
      return { senders: clients, cleanup: () => silent.close().then(() => clients.forEach((c) => c.destroy())) };
    },
  },
  {
    // (d) the legacy front end: a VERSION at the size cap, complete but for its last byte (held for --socks-timeout).
    key: 'limit.legacy',
    async run(proxy) {
      return legacyVersions(proxy, MAX_LEGACY_VERSION);
    },
  },
  {
    // (d') a 4,000,000-byte legacy "VERSION": refused from its header now; the previous main held it.
    key: 'limit.legacy4m',
    async run(proxy) {
      return legacyVersions(proxy, V1_MAX_PAYLOAD);
    },
  },
  {
    // (e) both directions of one connection: (a) from the peer and (b) from the client, at once.
    key: 'limit.both',
    async run(proxy) {
      const peer = await startScriptedV2Peer();
      const { clients, peers: sessions } = await scriptedSessions(proxy, peer, LIMIT_CONNECTIONS);
      const m = serializeV1(MAGIC, 'tx', Buffer.alloc(V1_MAX_PAYLOAD));
      // The proxy must have the peer's key to parse the client's bytes as messages, which it has: the handshake is done.
      for (const c of clients) {
        c.resume();
        c.write(m.subarray(0, m.length - 1));
      }
      for (const s of sessions) {
        const p = v2Packet(s.t, V2_MAX_CONTENTS);
        s.socket.write(p.subarray(0, p.length - 1));
      }
      return { senders: [...clients, ...sessions.map((s) => s.socket)], cleanup: () => peer.close().then(() => clients.forEach((c) => c.destroy())) };
    },
  },
  {
    // (f) the write side: the peer sends three complete maximum messages to a client that does not read.
    key: 'limit.unread',
    async run(proxy) {
      const peer = await startScriptedV2Peer();
      const { clients, peers: sessions } = await scriptedSessions(proxy, peer, LIMIT_CONNECTIONS);
      for (const c of clients) c.pause();
      const payload = Buffer.alloc(V1_MAX_PAYLOAD);
      for (const s of sessions) for (let i = 0; i < 3; i++) s.socket.write(s.t.encrypt([contentsPrefix('block'), payload]));
      return { senders: sessions.map((s) => s.socket), cleanup: () => peer.close().then(() => clients.forEach((c) => c.destroy())) };
    },
  },
];

async function legacyVersions(proxy: Child, length: number): Promise<{ senders: net.Socket[]; cleanup: () => Promise<void> }> {
  const header = serializeV1(MAGIC, 'version', Buffer.alloc(0));
  header.writeUInt32LE(length, 16);
  const body = Buffer.concat([header, Buffer.alloc(length - 1)]);
  const clients = await Promise.all(Array.from({ length: LIMIT_CONNECTIONS }, () => connectTcp(proxy.port)));
  for (const c of clients) {
    c.on('error', () => {});
    c.resume();
    c.write(body);
  }
  return { senders: clients, cleanup: async () => clients.forEach((c) => c.destroy()) };
}

async function limitCase(c: LimitCase, peers: Peers): Promise<Metrics> {
  const proxy = await startProxy(c.config ?? {});
  try {
    await warmUp(proxy, peers);
    await sleep(100);
    const m0 = await mem(proxy);
    const { senders, cleanup } = await c.run(proxy, peers);
    await settle(senders);
    const m1 = await mem(proxy);
    const live = (await proxy.request('conns')).conns!;
    await cleanup();
    return {
      [`${c.key}.held`]: (held(m1) - held(m0)) / LIMIT_CONNECTIONS / MB,
      [`${c.key}.rss`]: (m1.rss - m0.rss) / LIMIT_CONNECTIONS / MB,
      [`${c.key}.live`]: live,
    };
  } finally {
    await proxy.stop();
  }
}

// --- handshake flood ---------------------------------------------------------------------------

/** Sequential ping/pong round trips for about `ms`, in milliseconds. */
function pingFor(client: V1Client, ms: number): Promise<number[]> {
  const out: number[] = [];
  const end = performance.now() + ms;
  return new Promise((resolve, reject) => {
    let t0 = 0;
    let nonce = Buffer.alloc(0);
    let stuck: NodeJS.Timeout | undefined;
    const send = (): void => {
      nonce = randomBytes(8);
      t0 = performance.now();
      client.socket.write(serializeV1(MAGIC, 'ping', nonce));
      stuck = setTimeout(() => {
        client.onMessage = undefined;
        reject(new Error('bench: no pong within 10 s'));
      }, 10_000);
    };
    client.onMessage = (command, payload) => {
      const t1 = performance.now();
      clearTimeout(stuck);
      if (command !== 'pong' || !payload.equals(nonce)) {
        client.onMessage = undefined;
        reject(new Error(`bench: expected pong with the ping's nonce, got ${command}`));
        return;
      }
      out.push(t1 - t0);
      if (t1 >= end) {
        client.onMessage = undefined;
        resolve(out);
      } else send();
    };
    send();
  });
}

function rttMetrics(key: string, samples: number[]): Metrics {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { [`${key}.median`]: at(0.5), [`${key}.p99`]: at(0.99), [`${key}.max`]: s[s.length - 1], [`${key}.pings`]: s.length };
}

async function floodRun(peers: Peers, limits: 'default' | 'off', quiet: boolean): Promise<Metrics> {
  const proxy = await startProxy(
    {
      inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: peers.v1 } }],
      ...(limits === 'off' ? { inboundLimits: LIMITS_OFF } : {}),
    },
    false,
    [],
  );
  const out: Metrics = {};
  let flood: Child | undefined;
  try {
    const [client] = await echoSessions(proxy, peers, 1);
    await pingFor(client, 300);
    if (quiet) Object.assign(out, rttMetrics('flood.none.rtt', await pingFor(client, QUIET_MS)));
    flood = await startChild(FLOOD_SCRIPT, [String(proxy.ports.inbound), String(FLOOD_PEERS)]);
    // An attacker brings its own CPU: on a shared 2-core machine the flooder must not take the
    // proxy's, so it only gets what the proxy, the peers and this client leave over.
    setPriority(flood.pid, 19);
    await sleep(FLOOD_WARMUP_MS);
    const snap = async (): Promise<{ t: number; proxy: NodeJS.CpuUsage; flood: NodeJS.CpuUsage; peers: NodeJS.CpuUsage; stats: Record<string, number> }> => {
      const [p, f, q, s] = await Promise.all([proxy.request('cpu'), flood!.request('cpu'), peers.child.request('cpu'), flood!.request('stats')]);
      return { t: performance.now(), proxy: p.cpu!, flood: f.cpu!, peers: q.cpu!, stats: s.stats! };
    };
    const a = await snap();
    const rtts = await pingFor(client, FLOOD_MS);
    const b = await snap();
    const seconds = (b.t - a.t) / 1000;
    const key = `flood.${limits}`;
    Object.assign(out, rttMetrics(`${key}.rtt`, rtts), {
      [`${key}.answered`]: (b.stats.answered - a.stats.answered) / seconds,
      [`${key}.refused`]: (b.stats.refused - a.stats.refused) / seconds,
      [`${key}.errors`]: (b.stats.errors - a.stats.errors) / seconds,
      [`${key}.cpu.proxy`]: (100 * cpuSeconds(a.proxy, b.proxy)) / seconds,
      [`${key}.cpu.flood`]: (100 * cpuSeconds(a.flood, b.flood)) / seconds,
      [`${key}.cpu.peers`]: (100 * cpuSeconds(a.peers, b.peers)) / seconds,
    });
    client.socket.destroy();
    return out;
  } finally {
    await flood?.stop();
    await proxy.stop();
  }
}

// --- rows ----------------------------------------------------------------------------------------

/** metric key -> row name and unit; rows appear in this order, for the metrics measured. */
const ROWS: [string, string, string][] = [
  ['trickle.v2.held', 'v2 trickle (peer): heap + ArrayBuffers per byte buffered', 'B/B'],
  ['trickle.v2.ab', 'v2 trickle (peer): of which ArrayBuffers, per byte buffered', 'B/B'],
  ['trickle.v2.rss', 'v2 trickle (peer): RSS per byte buffered', 'B/B'],
  ['trickle.v2.read', 'v2 trickle (peer): bytes per socket read in the proxy', 'B'],
  ['trickle.v1.held', 'v1 trickle (client): heap + ArrayBuffers per byte buffered', 'B/B'],
  ['trickle.v1.ab', 'v1 trickle (client): of which ArrayBuffers, per byte buffered', 'B/B'],
  ['trickle.v1.rss', 'v1 trickle (client): RSS per byte buffered', 'B/B'],
  ['trickle.v1.read', 'v1 trickle (client): bytes per socket read in the proxy', 'B'],
  ['trickle.prekey.held', 'pre-key trickle (client): heap + ArrayBuffers per byte held', 'B/B'],
  ['trickle.prekey.ab', 'pre-key trickle (client): of which ArrayBuffers, per byte held', 'B/B'],
  ['trickle.prekey.rss', 'pre-key trickle (client): RSS per byte held', 'B/B'],
  ['trickle.prekey.read', 'pre-key trickle (client): bytes per socket read in the proxy', 'B'],
  ['limit.v2.held', '(a) v2 packet 4,000,013 B but 1 byte: heap + AB per conn', 'MB'],
  ['limit.v2.rss', '(a) v2 packet 4,000,013 B but 1 byte: RSS per conn', 'MB'],
  ['limit.v1.held', '(b) v1 message 4,000,000 B but 1 byte: heap + AB per conn', 'MB'],
  ['limit.v1.rss', '(b) v1 message 4,000,000 B but 1 byte: RSS per conn', 'MB'],
  ['limit.prekey.held', `(c) pre-key hold, 2 MiB sent: heap + AB per conn`, 'MB'],
  ['limit.prekey.rss', `(c) pre-key hold, 2 MiB sent: RSS per conn`, 'MB'],
  ['limit.legacy.held', `(d) legacy VERSION ${MAX_LEGACY_VERSION} B but 1 byte: heap + AB per conn`, 'MB'],
  ['limit.legacy.rss', `(d) legacy VERSION ${MAX_LEGACY_VERSION} B but 1 byte: RSS per conn`, 'MB'],
  ['limit.legacy4m.held', "(d') legacy VERSION 4,000,000 B but 1 byte: heap + AB per conn", 'MB'],
  ['limit.legacy4m.rss', "(d') legacy VERSION 4,000,000 B but 1 byte: RSS per conn", 'MB'],
  ['limit.legacy4m.live', "(d') legacy VERSION 4,000,000 B: connections still open", `of ${LIMIT_CONNECTIONS}`],
  ['limit.both.held', '(e) (a) and (b) on one connection: heap + AB per conn', 'MB'],
  ['limit.both.rss', '(e) (a) and (b) on one connection: RSS per conn', 'MB'],
  ['limit.unread.held', '(f) 3 x 4 MB to a client that does not read: heap + AB per conn', 'MB'],
  ['limit.unread.rss', '(f) 3 x 4 MB to a client that does not read: RSS per conn', 'MB'],
  ['limit.defaults.local', `worst case, ${DEFAULT_MAX_CONNECTIONS} local clients (--max-connections) x (e)`, 'GB'],
  ['limit.defaults.inbound', `worst case, ${DEFAULT_MAX_INBOUND} inbound peers (--max-inbound) x (e)`, 'GB'],
  ['flood.none.rtt.median', 'ping RTT, no flood: median', 'ms'],
  ['flood.none.rtt.p99', 'ping RTT, no flood: p99', 'ms'],
  ['flood.none.rtt.max', 'ping RTT, no flood: max', 'ms'],
];
for (const [limits, label] of [
  ['default', 'default limits'],
  ['off', 'limits off'],
] as const) {
  const k = `flood.${limits}`;
  ROWS.push(
    [`${k}.rtt.median`, `ping RTT, flood, ${label}: median`, 'ms'],
    [`${k}.rtt.p99`, `ping RTT, flood, ${label}: p99`, 'ms'],
    [`${k}.rtt.max`, `ping RTT, flood, ${label}: max`, 'ms'],
    [`${k}.answered`, `flood, ${label}: handshakes the proxy answered`, '/s'],
    [`${k}.refused`, `flood, ${label}: connections refused`, '/s'],
    [`${k}.cpu.proxy`, `flood, ${label}: proxy CPU`, '% core'],
    [`${k}.cpu.flood`, `flood, ${label}: flooder CPU`, '% core'],
  );
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const EXPOSURE_PARTS = ['trickle', 'limits', 'flood'] as const;
export type ExposurePart = (typeof EXPOSURE_PARTS)[number];

export async function benchExposure(progress: (what: string) => void = () => {}, parts: readonly ExposurePart[] = EXPOSURE_PARTS): Promise<ExposureResults> {
  const samples: Record<string, number[]> = {};
  const record = (m: Metrics): void => {
    for (const [k, v] of Object.entries(m)) (samples[k] ??= []).push(v);
  };
  const loads: number[][] = [];
  const child = await startChild(PEERS_SCRIPT, ['main']);
  const peers: Peers = { child, v2: child.ports.v2, v1: child.ports.v1 };
  try {
    for (let run = 1; run <= RUNS; run++) {
      loads.push(loadavg().map((l) => Math.round(l * 100) / 100));
      const tag = `run ${run}/${RUNS}`;
      if (parts.includes('trickle')) {
        progress(`exposure ${tag}: trickle, v2 peer`);
        record(await trickleV2(peers));
        progress(`exposure ${tag}: trickle, v1 client`);
        record(await trickleV1(peers));
        progress(`exposure ${tag}: trickle, before the remote's key`);
        record(await tricklePreKey(peers));
      }
      if (parts.includes('limits')) {
        for (const c of LIMIT_CASES) {
          progress(`exposure ${tag}: ${c.key}`);
          record(await limitCase(c, peers));
        }
      }
      if (parts.includes('flood')) {
        progress(`exposure ${tag}: handshake flood, default limits`);
        record(await floodRun(peers, 'default', true));
        progress(`exposure ${tag}: handshake flood, limits off`);
        record(await floodRun(peers, 'off', false));
      }
    }
  } finally {
    await child.stop();
  }
  loads.push(loadavg().map((l) => Math.round(l * 100) / 100));
  // Every connection at its worst at once, with the default limits, from each run's (e).
  if (samples['limit.both.held'] !== undefined) {
    samples['limit.defaults.local'] = samples['limit.both.held'].map((mb) => (mb * DEFAULT_MAX_CONNECTIONS) / 1000);
    samples['limit.defaults.inbound'] = samples['limit.both.held'].map((mb) => (mb * DEFAULT_MAX_INBOUND) / 1000);
  }
  const rows: ExposureRow[] = [];
  for (const [key, name, unit] of ROWS) {
    const v = samples[key];
    if (v === undefined || v.length === 0) continue;
    rows.push({ name, value: median(v), unit, min: Math.min(...v), max: Math.max(...v), runs: v.length });
  }
  return {
    rows,
    samples,
    proxy: process.env.BENCH_PROXY_DIST ?? 'this tree',
    settings: {
      runs: RUNS,
      trickleConnections: TRICKLE_CONNECTIONS,
      trickleBytesPerConnection: TRICKLE_BYTES,
      limitConnections: LIMIT_CONNECTIONS,
      preKeyBytesSent: PREKEY_BYTES,
      maxHeld: MAX_HELD,
      maxLegacyVersion: MAX_LEGACY_VERSION,
      floodPeers: FLOOD_PEERS,
      floodMs: FLOOD_MS,
      quietMs: QUIET_MS,
      cores: cpus().length,
    },
    loadavg: loads,
  };
}

if (process.argv[1]?.endsWith('exposure.js')) {
  const wanted = process.argv.slice(2).filter((a): a is ExposurePart => (EXPOSURE_PARTS as readonly string[]).includes(a));
  const started = performance.now();
  const r = await benchExposure(
    (w) => console.error(`... ${((performance.now() - started) / 1000).toFixed(1)} s: ${w}`),
    wanted.length === 0 ? EXPOSURE_PARTS : wanted,
  );
  const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  const w = Math.max(...r.rows.map((row) => row.name.length));
  console.log(`proxy: ${r.proxy}; node ${process.version}, OpenSSL ${process.versions.openssl}; load average per run ${JSON.stringify(r.loadavg)}`);
  for (const row of r.rows) {
    console.log(`${row.name.padEnd(w)}  ${fmt(row.value).padStart(8)} ${row.unit.padEnd(7)} (${fmt(row.min)} .. ${fmt(row.max)}, ${row.runs} runs)`);
  }
  console.log(`${((performance.now() - started) / 1000).toFixed(1)} s`);
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}exposure${process.env.BENCH_PROXY_DIST === undefined ? '' : '-other'}.json`;
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, openssl: process.versions.openssl, ...r }, null, 2)}\n`);
  console.log(`wrote ${file}`);
}
