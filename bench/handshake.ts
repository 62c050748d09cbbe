/**
 * BIP324 handshake cost (notes §5-§7, §11): full in-memory handshakes between two V2Transports,
 * wall-clock rate and CPU time per side, plus the cost of each crypto step so a slow one is visible:
 * ellswift_create (keygen + ElligatorSwift encoding), v2SharedSecret (decoding + x-only ECDH +
 * tagged hash), HKDF key derivation, and the packet cipher setup.
 *
 * Run alone: `node dist/bench/handshake.js` prints a table.
 */
import { networkByName } from '../src/networks.js';
import { ellswiftCreate, v2SharedSecret } from '../src/crypto/ellswift.js';
import { deriveSessionKeys } from '../src/crypto/keys.js';
import { PacketDecryptor, PacketEncryptor } from '../src/crypto/packet.js';
import { V2Transport, type V2Event } from '../src/v2/transport.js';

export interface Row {
  name: string;
  size?: number;
  value: number;
  unit: string;
}

const MAGIC = networkByName('main')!.magic;

function sendBytes(events: V2Event[]): Buffer {
  return Buffer.concat(events.flatMap((e) => (e.type === 'send' ? [e.data] : [])));
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/** One handshake, 1.5 round trips as on the wire; returns CPU ms spent inside each side. */
function handshake(garbage?: Uint8Array): { initiator: number; responder: number } {
  let iCpu = 0;
  let rCpu = 0;
  let t = process.cpuUsage();
  const i = new V2Transport({ role: 'initiator', magic: MAGIC, garbage });
  const iHead = sendBytes(i.start());
  iCpu += cpuMs(t);

  t = process.cpuUsage();
  const r = new V2Transport({ role: 'responder', magic: MAGIC, garbage });
  r.start();
  const rOut = sendBytes(r.receive(iHead));
  rCpu += cpuMs(t);

  t = process.cpuUsage();
  const iEvents = i.receive(rOut);
  const iTail = sendBytes(iEvents);
  iCpu += cpuMs(t);

  t = process.cpuUsage();
  const rEvents = r.receive(iTail);
  rCpu += cpuMs(t);

  if (!iEvents.some((e) => e.type === 'ready') || !rEvents.some((e) => e.type === 'ready')) {
    throw new Error('benchmark handshake did not complete');
  }
  return { initiator: iCpu, responder: rCpu };
}

/** Mean wall-clock ms of fn over n runs (after a short warm-up). */
function timeMs(n: number, fn: () => void): number {
  for (let k = 0; k < Math.min(20, n); k++) fn();
  const start = process.hrtime.bigint();
  for (let k = 0; k < n; k++) fn();
  return Number(process.hrtime.bigint() - start) / 1e6 / n;
}

export async function benchHandshake(): Promise<Row[]> {
  const rows: Row[] = [];

  for (let k = 0; k < 20; k++) handshake(); // warm-up: JIT and noble's precomputed tables

  // Default garbage: random length 0..4095, as deployed.
  const n = 200;
  let iCpu = 0;
  let rCpu = 0;
  const start = process.hrtime.bigint();
  for (let k = 0; k < n; k++) {
    const c = handshake();
    iCpu += c.initiator;
    rCpu += c.responder;
  }
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  rows.push({ name: 'handshake: full in-memory, both roles', value: (n * 1000) / wallMs, unit: 'handshakes/s' });
  rows.push({ name: 'handshake: wall time, both roles', value: wallMs / n, unit: 'ms/handshake' });
  rows.push({ name: 'handshake: CPU, initiator side', value: iCpu / n, unit: 'ms/handshake' });
  rows.push({ name: 'handshake: CPU, responder side', value: rCpu / n, unit: 'ms/handshake' });

  const empty = new Uint8Array(0);
  let iCpu0 = 0;
  let rCpu0 = 0;
  for (let k = 0; k < n; k++) {
    const c = handshake(empty);
    iCpu0 += c.initiator;
    rCpu0 += c.responder;
  }
  rows.push({ name: 'handshake: CPU, initiator side, no garbage', value: iCpu0 / n, unit: 'ms/handshake' });
  rows.push({ name: 'handshake: CPU, responder side, no garbage', value: rCpu0 / n, unit: 'ms/handshake' });

  // Per-step costs, each as one side pays it once per handshake.
  const a = ellswiftCreate();
  const b = ellswiftCreate();
  rows.push({ name: 'step: ellswiftCreate (keygen + encode)', value: timeMs(200, () => ellswiftCreate()), unit: 'ms' });
  rows.push({
    name: 'step: v2SharedSecret (decode + ECDH + tagged hash)',
    value: timeMs(200, () => v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true)),
    unit: 'ms',
  });
  const secret = v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true);
  rows.push({ name: 'step: deriveSessionKeys (HKDF, 6 outputs)', value: timeMs(2000, () => deriveSessionKeys(secret, MAGIC, true)), unit: 'ms' });
  const keys = deriveSessionKeys(secret, MAGIC, true);
  rows.push({
    name: 'step: packet cipher setup (both directions)',
    value: timeMs(2000, () => {
      new PacketEncryptor(keys.sendL, keys.sendP);
      new PacketDecryptor(keys.recvL, keys.recvP);
    }),
    unit: 'ms',
  });
  return rows;
}

if (process.argv[1]?.endsWith('handshake.js')) {
  const rows = await benchHandshake();
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
  console.table(rows.map((r) => ({ name: r.name, value: Number(r.value.toFixed(3)), unit: r.unit })));
}
