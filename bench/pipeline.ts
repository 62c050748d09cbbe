/**
 * The proxy's per-message work without sockets, for comparing two builds in one process (issue 12):
 * what the bridge does with each message, fed in 64 KiB socket-sized reads.
 *
 * - up: v1 bytes from the client -> V1Parser (checksum check) -> V2Transport packet encryption;
 * - down: v2 bytes from the peer -> V2Transport (decryption) -> v1 header with a fresh checksum.
 *
 *   node dist/bench/pipeline.js [--other DIR] [size ...]     (default sizes 1 MiB, 64 KiB, 250 B)
 *
 * `--other DIR` loads a second build (e.g. /tmp/base/dist) and runs the same work on it, the two
 * builds taking turns (round k: this build, then the other), so that both see the same load; each
 * figure is the lowest CPU time (process.cpuUsage) of ROUNDS rounds of about 8 MB each, in ms per
 * MB of payload (MB = 10^6 bytes). Syscalls and socket copies are not in it: this is the part of
 * the proxy's CPU per MB that the JavaScript and crypto code decide.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';

type Framing = typeof import('../src/v1/framing.js');
type Messages = typeof import('../src/v2/messages.js');
type Transport = typeof import('../src/v2/transport.js');

interface Build {
  name: string;
  framing: Framing;
  messages: Messages;
  transport: Transport;
}

async function load(name: string, srcUrl: URL): Promise<Build> {
  const imp = async <T>(path: string): Promise<T> => (await import(new URL(path, srcUrl).href)) as T;
  return {
    name,
    framing: await imp<Framing>('v1/framing.js'),
    messages: await imp<Messages>('v2/messages.js'),
    transport: await imp<Transport>('v2/transport.js'),
  };
}

const MAGIC = Buffer.from('f9beb4d9', 'hex');
const READ = 64 * 1024;
const ROUNDS = 9;
const ROUND_BYTES = 8e6;

/** Cut a byte stream into READ-sized socket reads, each its own buffer as a socket delivers them. */
function reads(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += READ) out.push(Buffer.from(stream.subarray(i, i + READ)));
  return out;
}

/** A connected initiator/responder pair of this build, handshake done. */
function pair(b: Build): { a: InstanceType<Transport['V2Transport']>; z: InstanceType<Transport['V2Transport']> } {
  const a = new b.transport.V2Transport({ role: 'initiator', magic: MAGIC });
  const z = new b.transport.V2Transport({ role: 'responder', magic: MAGIC });
  let toZ = a.start().flatMap((e) => (e.type === 'send' ? [e.data] : []));
  z.start();
  for (let i = 0; i < 4; i++) {
    const toA = toZ.flatMap((d) => z.receive(d)).flatMap((e) => (e.type === 'send' ? [e.data] : []));
    toZ = toA.flatMap((d) => a.receive(d)).flatMap((e) => (e.type === 'send' ? [e.data] : []));
  }
  if (!a.canSend || !z.canSend) throw new Error('pipeline bench: handshake did not complete');
  return { a, z };
}

/** Up: parse v1 reads and encrypt each message, as Bridge.encryptLocal does. Returns payload bytes. */
function up(b: Build, size: number, count: number): () => number {
  const payload = randomBytes(size);
  const one = b.framing.serializeV1(MAGIC, 'tx', payload);
  const input = reads(Buffer.concat(Array.from({ length: count }, () => one)));
  return () => {
    const { a } = pair(b);
    const parser = new b.framing.V1Parser(MAGIC);
    const prefix = b.messages.contentsPrefix('tx');
    const t0 = process.cpuUsage();
    let n = 0;
    for (const chunk of input) {
      for (const ev of parser.push(chunk)) {
        if (ev.type !== 'message') throw new Error('pipeline bench: dropped');
        a.encryptPieces([prefix, ev.payload]);
        n += size;
      }
    }
    // The handshake is not part of the measurement.
    lastCpu = process.cpuUsage(t0);
    return n;
  };
}

/** Down: decrypt v2 reads and frame each message for v1, as Bridge.transportEvents does. Returns payload bytes. */
function down(b: Build, size: number, count: number): () => number {
  const payload = randomBytes(size);
  return () => {
    const { a, z } = pair(b);
    const prefix = b.messages.contentsPrefix('tx');
    const stream = Buffer.concat(Array.from({ length: count }, () => Buffer.concat(a.encryptPieces([prefix, payload]))));
    const input = reads(stream);
    const t0 = process.cpuUsage();
    let n = 0;
    for (const chunk of input) {
      for (const ev of z.receive(chunk)) {
        if (ev.type !== 'message') continue;
        const d = b.messages.decodeContents(ev.contents);
        if (d.payload.length <= 16 * 1024) b.framing.serializeV1(MAGIC, d.command, d.payload);
        else b.framing.v1Header(MAGIC, d.command, d.payload);
        n += size;
      }
    }
    // The sender's encryption is not part of the measurement: report the receiver's CPU only.
    lastCpu = process.cpuUsage(t0);
    return n;
  };
}

let lastCpu: NodeJS.CpuUsage | undefined;

function measure(run: () => number): number {
  lastCpu = undefined;
  const n = run();
  const c = lastCpu!;
  return (c.user + c.system) / 1000 / (n / 1e6);
}

const args = process.argv.slice(2);
let otherDir: string | undefined;
const sizes: number[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--other') otherDir = args[++i];
  else sizes.push(Number(args[i]));
}
if (sizes.length === 0) sizes.push(1 << 20, 64 * 1024, 250);

const builds = [await load('this build', new URL('../src/', import.meta.url))];
if (otherDir !== undefined) builds.push(await load(otherDir, pathToFileURL(`${resolve(otherDir)}/src/`)));

console.log(`proxy pipeline without sockets, CPU ms per MB of payload, lowest of ${ROUNDS} rounds (builds taking turns)`);
for (const size of sizes) {
  const count = Math.max(1, Math.round(ROUND_BYTES / (size + 24)));
  for (const [dir, make] of [
    ['up', up],
    ['down', down],
  ] as const) {
    const runs = builds.map((b) => make(b, size, count));
    for (const r of runs) r(); // warm-up
    const best = builds.map(() => Infinity);
    for (let k = 0; k < ROUNDS; k++) runs.forEach((r, i) => (best[i] = Math.min(best[i], measure(r))));
    const perMessage = (msPerMB: number): string => (size < 64 * 1024 ? ` ms/MB (${((msPerMB * size) / 1000).toFixed(2)} us/message)` : ' ms/MB');
    console.log(
      `${dir.padEnd(5)} ${String(size).padStart(8)} B  ${builds.map((b, i) => `${b.name}: ${best[i].toFixed(3)}${perMessage(best[i])}`).join('   ')}`,
    );
  }
}
