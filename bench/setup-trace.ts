/**
 * One connection's set-up, step by step (issue 12, goal 1): where the time goes between a client's
 * first byte and its VERACK, through the proxy and, for comparison, as a direct v2 connection.
 *
 *   node dist/bench/setup-trace.js [connections]      (default 200, after 30 warm-up ones)
 *
 * Three processes, as in bench/proxy.ts: the proxy child (bench/proxy-process.ts in `trace` mode:
 * it timestamps every socket read and write, and each V2Transport.receive() call), and in this
 * process a traced v1 client (SOCKS5 as Bitcoin Core does it) and a traced BIP324 responder (the
 * bench's v2 echo peer, answering version with version + verack). Every timestamp is
 * process.hrtime (CLOCK_MONOTONIC, the same clock in every process), so the three sides line up.
 * Connections run one at a time; for each step the table shows the median (and p90) over all of
 * them of the time since the client's connect() call, and of the step's own duration.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { loadavg } from 'node:os';
import { networkByName } from '../src/networks.js';
import { serializeV1, V1Parser } from '../src/v1/framing.js';
import { contentsPrefix, decodeContents } from '../src/v2/messages.js';
import { V2Transport } from '../src/v2/transport.js';
import { type TraceEvent, startChild } from './child.js';
import { ExactReader, versionPayload } from './peers.js';

const MAGIC = networkByName('main')!.magic;
const now = (): number => Number(process.hrtime.bigint());

/** The peer's events for the connection in progress (one at a time). */
let peerTrace: TraceEvent[] = [];

/** The v2 echo peer's handshake, with a timestamp at each socket event and each step. */
function startTracedPeer(): Promise<net.Server> {
  const server = net.createServer((socket) => {
    peerTrace.push([now(), 'peer accept', 0]);
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const t = new V2Transport({ role: 'responder', magic: MAGIC });
    t.start();
    socket.on('data', (chunk: Buffer) => {
      peerTrace.push([now(), 'peer read', chunk.length]);
      const out: Buffer[] = [];
      let answer = false;
      try {
        for (const ev of t.receive(chunk)) {
          if (ev.type === 'send') out.push(ev.data);
          else if (ev.type === 'ready') peerTrace.push([now(), 'peer ready', 0]);
          else if (ev.type === 'message') {
            const { command } = decodeContents(ev.contents);
            peerTrace.push([now(), `peer got ${command}`, 0]);
            if (command === 'version') {
              out.push(t.encrypt([contentsPrefix('version'), versionPayload()]), t.encrypt([contentsPrefix('verack')]));
              answer = true;
            }
          }
        }
      } catch (err) {
        console.error(`traced peer: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      if (out.length > 0) {
        peerTrace.push([now(), answer ? 'peer write VERSION + VERACK' : 'peer write handshake', out.reduce((n, b) => n + b.length, 0)]);
        socket.cork();
        for (const b of out) socket.write(b);
        socket.uncork();
      }
    });
  });
  return new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server)));
}

function connect(port: number, trace: TraceEvent[]): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    trace.push([now(), 'client connect()', 0]);
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    socket.once('connect', () => {
      trace.push([now(), 'client connected', 0]);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function send(socket: net.Socket, data: Buffer, trace: TraceEvent[], what: string): void {
  trace.push([now(), `client sends ${what}`, data.length]);
  socket.write(data);
}

/** A v1 client through the proxy: SOCKS5 (methods 00+02, user/password, ATYP 03), VERSION, until VERACK. */
async function viaProxy(proxyPort: number, peerPort: number): Promise<TraceEvent[]> {
  const trace: TraceEvent[] = [];
  const socket = await connect(proxyPort, trace);
  socket.on('data', (chunk: Buffer) => trace.push([now(), 'client read', chunk.length]));
  const reader = new ExactReader(socket);
  send(socket, Buffer.of(5, 2, 0, 2), trace, 'SOCKS5 greeting');
  await reader.read(2);
  const user = Buffer.from('trace-user');
  send(socket, Buffer.concat([Buffer.of(1, user.length), user, Buffer.of(user.length), user]), trace, 'SOCKS5 user/password');
  await reader.read(2);
  const host = Buffer.from('127.0.0.1');
  send(socket, Buffer.concat([Buffer.of(5, 1, 0, 3, host.length), host, Buffer.of(peerPort >> 8, peerPort & 0xff)]), trace, 'SOCKS5 CONNECT');
  const reply = await reader.read(10);
  trace.push([now(), 'client has the SOCKS5 reply', 0]);
  if (reply[1] !== 0) throw new Error(`SOCKS5 REP ${reply[1]}`);
  send(socket, serializeV1(MAGIC, 'version', versionPayload()), trace, 'VERSION');
  const parser = new V1Parser(MAGIC);
  for (;;) {
    const header = await reader.read(24);
    const len = header.readUInt32LE(16);
    const payload = await reader.read(len);
    const [ev] = parser.push(Buffer.concat([header, payload]));
    if (ev?.type === 'message') trace.push([now(), `client has ${ev.command}`, 0]);
    if (ev?.type === 'message' && ev.command === 'verack') break;
  }
  socket.destroy();
  return trace;
}

/** A v2 client straight to the peer, as Bitcoin Core's initiator: key + garbage, then terminator + version packet + VERSION, until VERACK. */
async function directV2(peerPort: number): Promise<TraceEvent[]> {
  const trace: TraceEvent[] = [];
  const socket = await connect(peerPort, trace);
  const t = new V2Transport({ role: 'initiator', magic: MAGIC });
  for (const ev of t.start()) if (ev.type === 'send') send(socket, ev.data, trace, 'key + garbage');
  await new Promise<void>((resolve, reject) => {
    let sentVersion = false;
    socket.on('data', (chunk: Buffer) => {
      trace.push([now(), 'client read', chunk.length]);
      const out: Buffer[] = [];
      try {
        for (const ev of t.receive(chunk)) {
          if (ev.type === 'send') out.push(ev.data);
          else if (ev.type === 'message') {
            const { command } = decodeContents(ev.contents);
            trace.push([now(), `client has ${command}`, 0]);
            if (command === 'verack') resolve();
          }
        }
        if (t.canSend && !sentVersion) {
          sentVersion = true;
          out.push(t.encrypt([contentsPrefix('version'), versionPayload()]));
        }
      } catch (err) {
        reject(err);
        return;
      }
      if (out.length > 0) {
        trace.push([now(), 'client sends terminator + version packet + VERSION', out.reduce((n, b) => n + b.length, 0)]);
        socket.cork();
        for (const b of out) socket.write(b);
        socket.uncork();
      }
    });
  });
  socket.destroy();
  return trace;
}

/** The n-th (1-based) event whose name starts with `what`, or undefined. */
function nth(events: TraceEvent[], what: string, n = 1): TraceEvent | undefined {
  let seen = 0;
  for (const e of events) if (e[1].startsWith(what) && ++seen === n) return e;
  return undefined;
}

interface Step {
  label: string;
  /** The event that ends the step, found in a connection's merged events. */
  find: (ev: TraceEvent[]) => TraceEvent | undefined;
}

const PROXY_STEPS: Step[] = [
  { label: 'client TCP connected to the proxy', find: (e) => nth(e, 'client connected') },
  { label: 'proxy reads the SOCKS5 greeting', find: (e) => nth(e, 'proxy client-side read', 1) },
  { label: 'proxy writes the method choice', find: (e) => nth(e, 'proxy client-side write', 1) },
  { label: 'proxy reads user/password', find: (e) => nth(e, 'proxy client-side read', 2) },
  { label: 'proxy writes the auth reply', find: (e) => nth(e, 'proxy client-side write', 2) },
  { label: 'proxy reads CONNECT: dial starts', find: (e) => nth(e, 'proxy client-side read', 3) },
  { label: 'peer accepts the TCP connection', find: (e) => nth(e, 'peer accept') },
  { label: 'proxy writes the SOCKS5 reply (dial done)', find: (e) => nth(e, 'proxy client-side write', 3) },
  { label: 'client has the reply, sends VERSION', find: (e) => nth(e, 'client sends VERSION') },
  { label: "proxy reads the client's VERSION", find: (e) => nth(e, 'proxy client-side read', 4) },
  { label: 'proxy writes its key + garbage', find: (e) => nth(e, 'proxy remote-side write', 1) },
  { label: 'peer reads the key', find: (e) => nth(e, 'peer read', 1) },
  { label: 'peer writes key + garbage (+ terminator + version packet)', find: (e) => nth(e, 'peer write handshake', 1) },
  { label: "proxy reads the peer's key (and what came with it)", find: (e) => nth(e, 'proxy remote-side read', 1) },
  { label: 'proxy: ECDH, keys, terminator found, version packet (receive() returns)', find: (e) => nth(e, 'proxy v2 receive out', 1) },
  { label: 'proxy writes terminator + version packet + client VERSION', find: (e) => nth(e, 'proxy remote-side write', 2) },
  { label: "peer has the client's VERSION", find: (e) => nth(e, 'peer got version') },
  { label: 'peer writes VERSION + VERACK', find: (e) => nth(e, 'peer write VERSION') },
  { label: 'proxy reads them', find: (e) => nth(e, 'proxy remote-side read', 2) },
  { label: 'proxy writes v1 VERSION + VERACK to the client', find: (e) => nth(e, 'proxy client-side write', 4) },
  { label: 'client has VERACK', find: (e) => nth(e, 'client has verack') },
];

const DIRECT_STEPS: Step[] = [
  { label: 'client TCP connected to the peer', find: (e) => nth(e, 'client connected') },
  { label: 'client writes key + garbage', find: (e) => nth(e, 'client sends key') },
  { label: 'peer reads the key', find: (e) => nth(e, 'peer read', 1) },
  { label: 'peer writes key + garbage (+ terminator + version packet)', find: (e) => nth(e, 'peer write handshake', 1) },
  { label: "client reads the peer's key", find: (e) => nth(e, 'client read', 1) },
  { label: 'client writes terminator + version packet + VERSION', find: (e) => nth(e, 'client sends terminator') },
  { label: "peer has the client's VERSION", find: (e) => nth(e, 'peer got version') },
  { label: 'peer writes VERSION + VERACK', find: (e) => nth(e, 'peer write VERSION') },
  { label: 'client has VERACK', find: (e) => nth(e, 'client has verack') },
];

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function report(title: string, steps: Step[], runs: TraceEvent[][]): { total: number } {
  const at: number[][] = steps.map(() => []);
  const dur: number[][] = steps.map(() => []);
  for (const events of runs) {
    const t0 = events[0][0];
    let prev = t0;
    steps.forEach((s, i) => {
      const e = s.find(events);
      if (e === undefined) throw new Error(`setup-trace: step "${s.label}" not found in a connection's events`);
      at[i].push((e[0] - t0) / 1e3);
      dur[i].push((e[0] - prev) / 1e3);
      prev = e[0];
    });
  }
  console.log(`\n${title} (${runs.length} connections; microseconds since the client's connect(), median and p90; step = since the previous line)`);
  console.log(`${'step'.padEnd(80)} ${'at'.padStart(7)} ${'p90'.padStart(7)} ${'step'.padStart(7)} ${'p90'.padStart(7)}`);
  steps.forEach((s, i) => {
    const f = (v: number): string => v.toFixed(0).padStart(7);
    console.log(`${s.label.padEnd(80)} ${f(quantile(at[i], 0.5))} ${f(quantile(at[i], 0.9))} ${f(quantile(dur[i], 0.5))} ${f(quantile(dur[i], 0.9))}`);
  });
  return { total: quantile(at[steps.length - 1], 0.5) };
}

const N = Number(process.argv[2] ?? 200);
const WARMUP = 30;
const load0 = loadavg();
const peer = await startTracedPeer();
const peerPort = (peer.address() as net.AddressInfo).port;
const proxy = await startChild(new URL('./proxy-process.js', import.meta.url), ['4096', '{}', 'trace']);
try {
  const proxyRuns: TraceEvent[][] = [];
  const directRuns: TraceEvent[][] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    // Taking turns, so that both see the same load.
    peerTrace = [];
    await proxy.request('trace');
    const client = await viaProxy(proxy.port, peerPort);
    await new Promise((r) => setTimeout(r, 2));
    const events = [...client, ...peerTrace, ...((await proxy.request('trace')).trace ?? [])].sort((a, b) => a[0] - b[0]);
    peerTrace = [];
    const direct = [...(await directV2(peerPort)), ...peerTrace].sort((a, b) => a[0] - b[0]);
    if (i >= WARMUP) {
      proxyRuns.push(events);
      directRuns.push(direct);
    }
    randomBytes(1); // keep the two kinds of connection interleaved without a timer in between
  }
  const p = report('Through the proxy: v1 client -> SOCKS5 -> proxy -> v2 peer', PROXY_STEPS, proxyRuns);
  const d = report('Direct v2: v2 client -> v2 peer', DIRECT_STEPS, directRuns);
  console.log(
    `\nmedian to VERACK: via proxy ${(p.total / 1e3).toFixed(2)} ms, direct v2 ${(d.total / 1e3).toFixed(2)} ms, difference ${((p.total - d.total) / 1e3).toFixed(2)} ms`,
  );
  console.log(
    `load average ${load0.map((l) => l.toFixed(2)).join(',')} at start, ${loadavg()
      .map((l) => l.toFixed(2))
      .join(',')} at end`,
  );
} finally {
  await proxy.stop();
  peer.close();
}
