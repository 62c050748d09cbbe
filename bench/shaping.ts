/**
 * Traffic shaping, measured live (issue 13): the real proxy (bench/proxy-process.ts, its own
 * process) with --shape off, pad and cover; v1 clients play a scripted mix through it over SOCKS5
 * (bench/shaping-model.ts: invs, getdatas, pings, getheaders, headers, and transaction broadcasts);
 * a v2 node (our V2Transport as the responder) reads what the proxy sends. The observer is the
 * node's socket: the size and the time of every read of the proxy's outbound stream, which on
 * loopback is one read per write burst, as a passive on-path observer sees TCP segments. The node
 * also decrypts, which gives the ground truth (which reads carried a `tx`) and each real
 * message's latency (client write to node decrypt; every payload starts with a sequence number).
 *
 * The script runs SPEED times faster than the mix's clock, and the cover rate is SPEED times the
 * --shape-rate it stands for, so that the trace is the real-time one compressed; times given to the
 * classifier are in the mix's clock again. Latency is wall-clock and not rescaled.
 *
 *   node dist/bench/shaping.js [traces=8] [seconds=300] [speed=10] [rate=1024]
 *
 * Prints one row per mode, and one more for cover at four times the rate: the classifier's balanced accuracy at picking out transaction
 * broadcasts (size alone, a burst with its neighbours, a 1 s window), wire bytes against off,
 * cover bytes per second, and the latency of real messages. Writes bench/results/shaping.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_SHAPE_RATE } from '../src/config/defaults.js';
import type { ShapeMode } from '../src/engine/shaper.js';
import { networkByName } from '../src/networks.js';
import { serializeV1 } from '../src/v1/framing.js';
import { contentsPrefix, decodeContents } from '../src/v2/messages.js';
import { V2Transport } from '../src/v2/transport.js';
import { startChild } from './child.js';
import { listen, socks5Connect, V1Client, versionPayload } from './peers.js';
import { type Trace, MIX_DESCRIPTION, evaluate, mixScript, quantile, toBursts, v2WireSize } from './shaping-model.js';

const MAIN = networkByName('main')!;
const PROXY_SCRIPT = new URL('./proxy-process.js', import.meta.url);
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const MODES: readonly ShapeMode[] = ['off', 'pad', 'cover'];

interface Read {
  /** Wall-clock ms (performance.now()). */
  at: number;
  bytes: number;
  /** The read completed a `tx` message (ground truth, never shown to the classifier). */
  tx: boolean;
  /** The read completed at least one real message. */
  real: boolean;
}

interface NodeConn {
  reads: Read[];
  /** Sequence number -> wall-clock ms the node decrypted the message. */
  arrivals: Map<number, number>;
  recording: boolean;
  handshaken: Promise<void>;
}

/** A v2 node: answers version with version + verack and ping with pong, and records every read. */
async function startNode(): Promise<{ port: number; conns: NodeConn[]; close(): Promise<void> }> {
  const conns: NodeConn[] = [];
  const server = await listen((socket) => {
    const t = new V2Transport({ role: 'responder', magic: MAIN.magic });
    let done!: () => void;
    const conn: NodeConn = { reads: [], arrivals: new Map(), recording: false, handshaken: new Promise((r) => (done = r)) };
    conns.push(conn);
    t.start();
    socket.on('data', (chunk: Buffer) => {
      const at = performance.now();
      const out: Buffer[] = [];
      let tx = false;
      let real = false;
      for (const ev of t.receive(chunk)) {
        if (ev.type === 'send') out.push(ev.data);
        else if (ev.type === 'message') {
          const { command, payload } = decodeContents(ev.contents);
          if (command === 'version') out.push(t.encrypt([contentsPrefix('version'), versionPayload()]), t.encrypt([contentsPrefix('verack')]));
          else if (command === 'verack') done();
          else {
            real = true;
            if (command === 'tx') tx = true;
            if (command === 'ping') out.push(t.encrypt([contentsPrefix('pong'), payload]));
            if (payload.length >= 4) conn.arrivals.set(payload.readUInt32LE(0), at);
          }
        } else if (ev.type === 'v1') throw new Error('the bench node was reached over v1');
      }
      if (conn.recording) conn.reads.push({ at, bytes: chunk.length, tx, real });
      for (const b of out) socket.write(b);
    });
  });
  return { port: server.port, conns, close: () => server.close() };
}

export interface ShapingRow {
  mode: ShapeMode;
  /** --shape-rate the row stands for (cover), in the mix's clock. */
  rate?: number;
  traces: number;
  broadcasts: number;
  bursts: number;
  /** Balanced accuracies, %: size alone, a burst with its neighbours, a 1 s window. */
  sizeBA: number;
  burstBA: number;
  windowBA: number;
  /** Wire bytes the node read during the traces. */
  bytes: number;
  /** Against off, %. */
  overheadPct: number;
  /** Bytes per second (mix clock) per connection in reads that carried no real message: cover. */
  coverRate: number;
  /** Real messages' latency, client write to node decrypt, wall-clock ms. */
  latencyP50: number;
  latencyP99: number;
  latencyMax: number;
  messages: number;
  /** Burst sizes the observer saw: how many bursts of each size, broadcasts and the rest. */
  sizes: { tx: Record<number, number>; other: Record<number, number> };
}

async function runMode(mode: ShapeMode, traces: number, seconds: number, speed: number, rate: number): Promise<ShapingRow> {
  const config = mode === 'off' ? {} : { shaping: { mode, rate: rate * speed } };
  const proxy = await startChild(PROXY_SCRIPT, ['64', JSON.stringify(config)]);
  const node = await startNode();
  const clients: V1Client[] = [];
  try {
    // One connection at a time, so that the node's n-th connection is the n-th client.
    for (let i = 0; i < traces; i++) {
      const c = new V1Client(await socks5Connect(proxy.port, node.port), MAIN.magic);
      await c.handshake();
      await node.conns[i].handshaken;
      c.onMessage = () => {};
      clients.push(c);
    }
    await sleep(200);
    const start = performance.now();
    for (const n of node.conns) n.recording = true;
    const sentAt = new Map<number, number>();
    let seq = 1;
    const wallMs = (seconds * 1000) / speed;
    const runs = clients.map(async (c, i) => {
      const script = mixScript(1 + i, seconds);
      for (const ev of script) {
        const due = start + ev.at / speed;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const parts: Buffer[] = [];
        for (const m of ev.messages) {
          const payload = Buffer.alloc(m.payloadLength);
          const id = seq++;
          payload.writeUInt32LE(id, 0);
          sentAt.set(id, performance.now());
          parts.push(serializeV1(MAIN.magic, m.command, payload));
        }
        c.socket.write(Buffer.concat(parts));
      }
    });
    await Promise.all(runs);
    const left = start + wallMs - performance.now();
    if (left > 0) await sleep(left);
    await sleep(300);
    for (const n of node.conns) n.recording = false;

    const ts: Trace[] = node.conns.map((n) => ({
      bursts: toBursts(n.reads.map((r) => ({ at: (r.at - start) * speed, bytes: r.bytes, tx: r.tx }))),
      length: seconds * 1000,
    }));
    const e = evaluate(ts);
    const latencies: number[] = [];
    for (const n of node.conns) for (const [id, at] of n.arrivals) if (sentAt.has(id)) latencies.push(at - sentAt.get(id)!);
    const reads = node.conns.flatMap((n) => n.reads);
    const sizes: ShapingRow['sizes'] = { tx: {}, other: {} };
    for (const t of ts) for (const b of t.bursts) (b.tx ? sizes.tx : sizes.other)[b.bytes] = ((b.tx ? sizes.tx : sizes.other)[b.bytes] ?? 0) + 1;
    return {
      mode,
      ...(mode === 'cover' ? { rate } : {}),
      traces,
      broadcasts: ts.reduce((a, t) => a + t.bursts.filter((b) => b.tx).length, 0),
      bursts: ts.reduce((a, t) => a + t.bursts.length, 0),
      sizeBA: e.size,
      burstBA: e.burst,
      windowBA: e.window,
      bytes: reads.reduce((a, r) => a + r.bytes, 0),
      overheadPct: 0,
      coverRate: reads.filter((r) => !r.real).reduce((a, r) => a + r.bytes, 0) / traces / seconds,
      latencyP50: quantile(latencies, 0.5),
      latencyP99: quantile(latencies, 0.99),
      latencyMax: Math.max(...latencies),
      messages: latencies.length,
      sizes,
    };
  } finally {
    for (const c of clients) c.socket.destroy();
    await node.close();
    await proxy.stop();
  }
}

/** What the mix itself weighs without shaping, from the script (a check on the live `off` row). */
function scriptBytes(traces: number, seconds: number): number {
  let n = 0;
  for (let i = 0; i < traces; i++) for (const ev of mixScript(1 + i, seconds)) for (const m of ev.messages) n += v2WireSize(m);
  return n;
}

export async function benchShaping(traces = 8, seconds = 300, speed = 10, rate = DEFAULT_SHAPE_RATE): Promise<ShapingRow[]> {
  const rows: ShapingRow[] = [];
  for (const mode of MODES) rows.push(await runMode(mode, traces, seconds, speed, rate));
  // What more cover buys: four times the rate.
  rows.push(await runMode('cover', traces, seconds, speed, 4 * rate));
  const off = rows.find((r) => r.mode === 'off')!;
  for (const r of rows) r.overheadPct = (100 * (r.bytes - off.bytes)) / off.bytes;
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [traces, seconds, speed, rate] = [8, 300, 10, DEFAULT_SHAPE_RATE].map((d, i) => Number(process.argv[2 + i] ?? d)) as [number, number, number, number];
  const load = loadavg().map((l) => l.toFixed(2));
  console.log(
    `shaping bench: ${traces} connections x ${seconds} s of mix at ${speed}x, --shape-rate ${rate} (run at ${rate * speed} B/s wall); ${cpus()[0]?.model} x${cpus().length}, node ${process.version}, load ${load.join(' ')}`,
  );
  for (const line of MIX_DESCRIPTION) console.log(`  mix: ${line}`);
  console.log(`  the mix's own v2 wire bytes: ${scriptBytes(traces, seconds)}`);
  const rows = await benchShaping(traces, seconds, speed, rate);
  console.log('mode        broadcasts bursts  size-BA burst-BA window-BA   bytes  vs off  cover B/s  latency p50/p99/max ms (n)');
  for (const r of rows) {
    console.log(
      `${(r.mode === 'cover' ? `cover@${r.rate}` : r.mode).padEnd(11)} ${String(r.broadcasts).padStart(10)} ${String(r.bursts).padStart(6)} ${r.sizeBA.toFixed(1).padStart(8)} ${r.burstBA.toFixed(1).padStart(8)} ${r.windowBA.toFixed(1).padStart(9)} ${String(r.bytes).padStart(8)} ${`${r.overheadPct >= 0 ? '+' : ''}${r.overheadPct.toFixed(1)}%`.padStart(7)} ${r.coverRate.toFixed(0).padStart(10)}  ${r.latencyP50.toFixed(2)}/${r.latencyP99.toFixed(2)}/${r.latencyMax.toFixed(2)} (${r.messages})`,
    );
  }
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(
    `${RESULTS}shaping.json`,
    `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadStart: load, loadEnd: loadavg(), traces, seconds, speed, rate, rows }, null, 2)}\n`,
  );
}
