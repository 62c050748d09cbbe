/**
 * BIP324 handshake cost (key creation, ECDH, key derivation, the handshake): full in-memory handshakes between two V2Transports,
 * CPU time per side with the key made on the spot and with a key from the pool, and the cost of
 * each crypto step on each scalar-multiplication backend (libsecp256k1, OpenSSL, @noble/curves), so a slow one
 * is visible: key generation (scalar multiplication + ElligatorSwift encoding), decoding, the x-only
 * ECDH, the tagged hash, HKDF and the packet cipher setup.
 *
 * Every figure is CPU time of this process (process.cpuUsage), measured in batches: the row holds
 * the median batch, `min`/`max` the spread. CPU time moves less than wall time when other
 * processes share the machine, but still moves (caches, frequency); bench/callgrind.ts counts
 * instructions instead, which do not depend on load at all.
 *
 *   node dist/bench/handshake.js                      table
 *   node dist/bench/handshake.js --step NAME --count N --prepare M   run one step N times after
 *                                                     preparing M inputs (for bench/callgrind.ts)
 *
 * Feature-detects the ellswift API, so the compiled file also runs against an older build of src/
 * (that is how the "before" column of bench/README.md was measured).
 */
import { createECDH, createHash } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import * as libsecp from 'tiny-secp256k1';
import { networkByName } from '../src/networks.js';
import * as ell from '../src/crypto/ellswift.js';
import { deriveSessionKeys } from '../src/crypto/keys.js';
import { PacketDecryptor, PacketEncryptor } from '../src/crypto/packet.js';
import { V2Transport, type V2Event, type V2TransportOptions } from '../src/v2/transport.js';

export interface Row {
  name: string;
  size?: number;
  value: number;
  unit: string;
  /** Spread over the batches (same unit). */
  min?: number;
  max?: number;
}

type Backend = 'libsecp256k1' | 'openssl' | 'noble';
type Key = { privateKey: Uint8Array; ellswift: Buffer };

const MAGIC = networkByName('main')!.magic;
const TAG = createHash('sha256').update('bip324_ellswift_xonly_ecdh').digest();

const hasBackends = typeof (ell as Record<string, unknown>).setEcdhBackend === 'function';
const hasEncode = typeof (ell as Record<string, unknown>).ellswiftEncode === 'function';

/** The backend this process starts with (libsecp256k1 in builds that have it, else OpenSSL where node:crypto has secp256k1). */
const DEFAULT_BACKEND: Backend | undefined = hasBackends ? ell.ecdhBackend() : undefined;

/** Steps and handshakes without a backend of their own run on the default one. */
function useBackend(b: Backend | undefined): void {
  if (hasBackends) ell.setEcdhBackend(b ?? DEFAULT_BACKEND!);
}

function backends(): (Backend | undefined)[] {
  if (!hasBackends) return [undefined];
  return DEFAULT_BACKEND === 'libsecp256k1' ? ['libsecp256k1', 'openssl', 'noble'] : ['openssl', 'noble'];
}

function sendBytes(events: V2Event[]): Buffer {
  return Buffer.concat(events.flatMap((e) => (e.type === 'send' ? [e.data] : [])));
}

function cpuUs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return d.user + d.system;
}

/** One handshake, 1.5 round trips as on the wire; returns CPU µs spent inside each side. */
function handshake(keys: { initiator: () => Key; responder: () => Key }, garbage?: Uint8Array): { initiator: number; responder: number } {
  // keyPool is ignored by builds without it (they make the key themselves: the on-the-spot case).
  const opts = (take: () => Key): Omit<V2TransportOptions, 'role'> => ({ magic: MAGIC, garbage, keyPool: { take } });
  let iCpu = 0;
  let rCpu = 0;
  let t = process.cpuUsage();
  const i = new V2Transport({ ...opts(keys.initiator), role: 'initiator' });
  const iHead = sendBytes(i.start());
  iCpu += cpuUs(t);

  t = process.cpuUsage();
  const r = new V2Transport({ ...opts(keys.responder), role: 'responder' });
  r.start();
  const rOut = sendBytes(r.receive(iHead));
  rCpu += cpuUs(t);

  t = process.cpuUsage();
  const iEvents = i.receive(rOut);
  const iTail = sendBytes(iEvents);
  iCpu += cpuUs(t);

  t = process.cpuUsage();
  const rEvents = r.receive(iTail);
  rCpu += cpuUs(t);

  if (!iEvents.some((e) => e.type === 'ready') || !rEvents.some((e) => e.type === 'ready')) {
    throw new Error('benchmark handshake did not complete');
  }
  return { initiator: iCpu, responder: rCpu };
}

interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1] };
}

// ---------------------------------------------------------------------------------------------
// Steps: each prepares its inputs (untimed), then runs one operation per call.

interface Step {
  name: string;
  backend?: Backend;
  prepare(n: number): unknown;
  run(state: unknown, i: number): void;
}

function freshKeys(n: number): Key[] {
  return Array.from({ length: n }, () => ell.ellswiftCreate());
}

function steps(): Step[] {
  const out: Step[] = [];
  const peer = () => ell.ellswiftCreate().ellswift;
  for (const backend of backends()) {
    const tag = backend === undefined ? '' : ` [${backend}]`;
    out.push({ name: `key generation: ellswiftCreate (scalar mult + encode)${tag}`, backend, prepare: () => undefined, run: () => ell.ellswiftCreate() });
    if (backend === 'openssl') {
      out.push({
        name: `key generation: scalar mult alone (createECDH + generateKeys)${tag}`,
        backend,
        prepare: () => undefined,
        run: () => createECDH('secp256k1').generateKeys(),
      });
    } else if (backend === 'libsecp256k1') {
      out.push({
        name: `key generation: scalar mult alone (tiny-secp256k1 pointFromScalar)${tag}`,
        backend,
        prepare: (n) => Array.from({ length: n }, () => secp256k1.utils.randomSecretKey()),
        run: (s, i) => libsecp.pointFromScalar((s as Uint8Array[])[i], true),
      });
    } else if (backend === 'noble') {
      out.push({
        name: `key generation: scalar mult alone (noble priv·G)${tag}`,
        backend,
        prepare: (n) => Array.from({ length: n }, () => secp256k1.utils.randomSecretKey()),
        run: (s, i) => secp256k1.Point.BASE.multiply(secp256k1.Point.Fn.fromBytes((s as Uint8Array[])[i])).toAffine(),
      });
    }
    out.push({
      name: `ECDH: xOnlyEcdh, key made here (decode + lift + scalar mult)${tag}`,
      backend,
      prepare: (n) => ({ keys: freshKeys(n), peer: peer() }),
      run: (s, i) => {
        const st = s as { keys: Key[]; peer: Buffer };
        ell.xOnlyEcdh(st.keys[i].privateKey, st.peer);
      },
    });
    out.push({
      name: `ECDH: xOnlyEcdh, raw private key bytes (+ key import)${tag}`,
      backend,
      prepare: () => ({ priv: Buffer.from(ell.ellswiftCreate().privateKey), peer: peer() }),
      run: (s) => {
        const st = s as { priv: Buffer; peer: Buffer };
        ell.xOnlyEcdh(st.priv, st.peer);
      },
    });
  }
  if (hasEncode) {
    out.push({
      name: 'key generation: ElligatorSwift encode alone (XSwiftECInv tries)',
      prepare: () => ell.ellswiftDecode(ell.ellswiftCreate().ellswift),
      run: (s) => ell.ellswiftEncode(s as Buffer),
    });
  }
  out.push({
    name: 'full handshake, both roles, keys made on the spot',
    prepare: () => undefined,
    run: () => handshake({ initiator: () => ell.ellswiftCreate(), responder: () => ell.ellswiftCreate() }),
  });
  out.push({
    name: 'full handshake, both roles, keys made beforehand (pool)',
    prepare: (n) => freshKeys(2 * n),
    run: (st) => {
      const keys = st as Key[];
      handshake({ initiator: () => keys.pop()!, responder: () => keys.pop()! });
    },
  });
  out.push({
    name: 'ECDH: ElligatorSwift decode alone (XSwiftEC)',
    prepare: (n) => Array.from({ length: n }, peer),
    run: (s, i) => ell.ellswiftDecode((s as Buffer[])[i]),
  });
  out.push({
    name: 'tagged hash (bip324_ellswift_xonly_ecdh)',
    prepare: () => ({ a: peer(), b: peer(), x: Buffer.alloc(32, 7) }),
    run: (s) => {
      const st = s as { a: Buffer; b: Buffer; x: Buffer };
      createHash('sha256').update(TAG).update(TAG).update(st.a).update(st.b).update(st.x).digest();
    },
  });
  out.push({
    name: 'HKDF: deriveSessionKeys (6 outputs)',
    prepare: () => Buffer.alloc(32, 9),
    run: (s) => deriveSessionKeys(s as Buffer, MAGIC, true),
  });
  out.push({
    name: 'packet cipher setup (both directions)',
    prepare: () => deriveSessionKeys(Buffer.alloc(32, 9), MAGIC, true),
    run: (s) => {
      const k = s as ReturnType<typeof deriveSessionKeys>;
      new PacketEncryptor(k.sendL, k.sendP);
      new PacketDecryptor(k.recvL, k.recvP);
    },
  });
  return out;
}

/** CPU µs per operation: `batches` batches of `perBatch` calls, after a warm-up; median and spread. */
function measureStep(step: Step, perBatch: number, batches: number): Spread {
  useBackend(step.backend);
  const warm = Math.min(10, perBatch);
  const state = step.prepare(warm + perBatch * batches);
  for (let k = 0; k < warm; k++) step.run(state, k);
  const samples: number[] = [];
  let i = warm;
  for (let b = 0; b < batches; b++) {
    const t = process.cpuUsage();
    for (let k = 0; k < perBatch; k++) step.run(state, i++);
    samples.push(cpuUs(t) / perBatch);
  }
  return spread(samples);
}

/** Steps of a few microseconds, which need more repetitions to stand out of the noise. */
export function fastStep(name: string): boolean {
  return name.startsWith('tagged') || name.startsWith('HKDF') || name.startsWith('packet') || name.includes('decode alone');
}

export async function benchHandshake(): Promise<Row[]> {
  const rows: Row[] = [];
  const onTheSpot = { initiator: () => ell.ellswiftCreate(), responder: () => ell.ellswiftCreate() };
  for (let k = 0; k < 20; k++) handshake(onTheSpot); // warm-up: JIT, OpenSSL, noble's tables

  // Full handshakes, default garbage (random 0..4095 bytes), in batches of 20.
  const BATCH = 20;
  const BATCHES = 9;
  const iOwn: number[] = [];
  const rOwn: number[] = [];
  const wall: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    let iSum = 0;
    let rSum = 0;
    const start = process.hrtime.bigint();
    for (let k = 0; k < BATCH; k++) {
      const c = handshake(onTheSpot);
      iSum += c.initiator;
      rSum += c.responder;
    }
    wall.push(Number(process.hrtime.bigint() - start) / 1e6 / BATCH);
    iOwn.push(iSum / BATCH / 1000);
    rOwn.push(rSum / BATCH / 1000);
    await new Promise((r) => setImmediate(r));
  }
  const w = spread(wall);
  rows.push({ name: 'handshake: full in-memory, both roles', value: 1000 / w.median, unit: 'handshakes/s', min: 1000 / w.max, max: 1000 / w.min });
  rows.push({ name: 'handshake: wall time, both roles', value: w.median, unit: 'ms/handshake', min: w.min, max: w.max });
  const i1 = spread(iOwn);
  const r1 = spread(rOwn);
  rows.push({ name: 'handshake: CPU, initiator side', value: i1.median, unit: 'ms/handshake', min: i1.min, max: i1.max });
  rows.push({ name: 'handshake: CPU, responder side', value: r1.median, unit: 'ms/handshake', min: r1.min, max: r1.max });
  rows.push({
    name: 'handshake: initiator side (the proxy) per CPU second, key generation included',
    value: 1000 / i1.median,
    unit: 'handshakes/s',
    min: 1000 / i1.max,
    max: 1000 / i1.min,
  });

  // The same with keys made beforehand, as the pool hands them out: the cost on the critical path.
  const iPool: number[] = [];
  const rPool: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const iKeys = freshKeys(BATCH);
    const rKeys = freshKeys(BATCH);
    const pooled = { initiator: () => iKeys.pop()!, responder: () => rKeys.pop()! };
    let iSum = 0;
    let rSum = 0;
    for (let k = 0; k < BATCH; k++) {
      const c = handshake(pooled);
      iSum += c.initiator;
      rSum += c.responder;
    }
    iPool.push(iSum / BATCH / 1000);
    rPool.push(rSum / BATCH / 1000);
    await new Promise((r) => setImmediate(r));
  }
  const i2 = spread(iPool);
  const r2 = spread(rPool);
  rows.push({ name: 'handshake: CPU, initiator side, key from the pool', value: i2.median, unit: 'ms/handshake', min: i2.min, max: i2.max });
  rows.push({ name: 'handshake: CPU, responder side, key from the pool', value: r2.median, unit: 'ms/handshake', min: r2.min, max: r2.max });

  for (const step of steps()) {
    const fast = fastStep(step.name);
    const s = measureStep(step, fast ? 200 : 20, 9);
    rows.push({ name: `step: ${step.name}`, value: s.median, unit: 'us', min: s.min, max: s.max });
    await new Promise((r) => setImmediate(r));
  }
  useBackend(undefined);
  return rows;
}

/** Child mode for bench/callgrind.ts: prepare, warm up, then run one step `count` times. */
function runStepChild(args: string[]): void {
  const name = args[args.indexOf('--step') + 1];
  const count = Number(args[args.indexOf('--count') + 1]);
  const prepare = Number(args[args.indexOf('--prepare') + 1]);
  const step = steps().find((s) => s.name === name);
  if (step === undefined)
    throw new Error(
      `no step ${String(name)}; steps: ${steps()
        .map((s) => s.name)
        .join(' | ')}`,
    );
  useBackend(step.backend);
  const warm = 10;
  const state = step.prepare(warm + prepare);
  for (let k = 0; k < warm; k++) step.run(state, k);
  for (let k = 0; k < count; k++) step.run(state, warm + k);
}

/** The step names, for bench/callgrind.ts. */
export function stepNames(): string[] {
  return steps().map((s) => s.name);
}

if (process.argv[1]?.endsWith('handshake.js')) {
  if (process.argv.includes('--step')) {
    runStepChild(process.argv);
  } else if (process.argv.includes('--list')) {
    for (const n of stepNames()) console.log(n);
  } else {
    const rows = await benchHandshake();
    console.log(`node ${process.version}, OpenSSL ${process.versions.openssl}, ${process.platform}/${process.arch}; CPU time, median of 9 batches [min-max]`);
    const wName = Math.max(...rows.map((r) => r.name.length));
    const f = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
    for (const r of rows) {
      const sp = r.min !== undefined && r.max !== undefined ? `  [${f(r.min)}-${f(r.max)}]` : '';
      console.log(`${r.name.padEnd(wName)}  ${f(r.value).padStart(8)} ${r.unit}${sp}`);
    }
  }
}
