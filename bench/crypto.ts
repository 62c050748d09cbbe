/**
 * BIP324 crypto benchmark: v2 packet encrypt/decrypt throughput by payload size for the node:crypto
 * (OpenSSL) path against a pure-JS @noble/ciphers packet path, plus the per-connection handshake
 * crypto. Throughput counts contents bytes, in MB/s (10^6 bytes per second). Each case runs
 * time-bounded loops (~0.5 s of encryption and ~0.5 s of decryption, in alternating batches).
 * Wall-clock rows are medians over batches. The "per CPU second" rows divide by this process's CPU
 * time instead, which is what to compare on a shared machine where other processes take the CPU
 * (GC helper threads count against us there, so they are if anything pessimistic).
 *
 * Run alone: node dist/bench/crypto.js
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ellswiftCreate, v2SharedSecret } from '../src/crypto/ellswift.js';
import { deriveSessionKeys } from '../src/crypto/keys.js';
import { PacketDecryptor, PacketEncryptor } from '../src/crypto/packet.js';

export interface Row {
  name: string;
  size?: number;
  value: number;
  unit: string;
}

const SIZES = [64, 1024, 64 * 1024, 1024 * 1024];
const PHASE_MS = 500;
const BATCH_BYTES = 2 * 1024 * 1024;
const REKEY = 224;

interface Sender {
  encrypt(contents: readonly Uint8Array[]): Uint8Array;
}
interface Receiver {
  decryptLength(length3: Uint8Array): number;
  decrypt(body: Uint8Array): { ignore: boolean; contents: Uint8Array };
}

function nonce12(first: number, epoch: number): Uint8Array {
  const n = new Uint8Array(12);
  const dv = new DataView(n.buffer);
  dv.setUint32(0, first, true);
  dv.setBigUint64(4, BigInt(epoch), true);
  return n;
}

/** The same BIP324 packet path on @noble/ciphers (stateless calls, so the FS state is kept here). */
class NobleCipherPair {
  private lKey: Uint8Array;
  private lEpoch = 0;
  private lChunks = 0;
  private lStream: Uint8Array;
  private pKey: Uint8Array;
  private pI = 0;

  constructor(keyL: Uint8Array, keyP: Uint8Array) {
    this.lKey = Uint8Array.from(keyL);
    this.lStream = chacha20(this.lKey, nonce12(0, 0), new Uint8Array(REKEY * 3 + 32));
    this.pKey = Uint8Array.from(keyP);
  }

  length(len3: Uint8Array): Uint8Array {
    const off = this.lChunks * 3;
    const out = Uint8Array.of(len3[0] ^ this.lStream[off], len3[1] ^ this.lStream[off + 1], len3[2] ^ this.lStream[off + 2]);
    if (++this.lChunks === REKEY) {
      this.lKey = this.lStream.slice(REKEY * 3);
      this.lEpoch++;
      this.lChunks = 0;
      this.lStream = chacha20(this.lKey, nonce12(0, this.lEpoch), new Uint8Array(REKEY * 3 + 32));
    }
    return out;
  }

  aead(): ReturnType<typeof chacha20poly1305> {
    return chacha20poly1305(this.pKey, nonce12(this.pI % REKEY, Math.floor(this.pI / REKEY)));
  }

  advance(): void {
    if ((this.pI + 1) % REKEY === 0) {
      this.pKey = chacha20(this.pKey, nonce12(0xffffffff, Math.floor(this.pI / REKEY)), new Uint8Array(32), undefined, 1);
    }
    this.pI++;
  }
}

class NobleSender extends NobleCipherPair implements Sender {
  encrypt(contents: readonly Uint8Array[]): Uint8Array {
    let len = 0;
    for (const c of contents) len += c.length;
    const out = new Uint8Array(len + 20);
    out.set(this.length(Uint8Array.of(len & 0xff, (len >> 8) & 0xff, len >> 16)), 0);
    const plain = new Uint8Array(1 + len);
    let pos = 1;
    for (const c of contents) {
      plain.set(c, pos);
      pos += c.length;
    }
    this.aead().encrypt(plain, out.subarray(3));
    this.advance();
    return out;
  }
}

class NobleReceiver extends NobleCipherPair implements Receiver {
  decryptLength(length3: Uint8Array): number {
    const l = this.length(length3);
    return l[0] | (l[1] << 8) | (l[2] << 16);
  }
  decrypt(body: Uint8Array): { ignore: boolean; contents: Uint8Array } {
    const plain = this.aead().decrypt(body);
    this.advance();
    return { ignore: (plain[0] & 0x80) !== 0, contents: plain.subarray(1) };
  }
}

interface Impl {
  label: string;
  make(keyL: Uint8Array, keyP: Uint8Array): [Sender, Receiver];
}

const IMPLS: Impl[] = [
  { label: 'node:crypto', make: (l, p) => [new PacketEncryptor(l, p), new PacketDecryptor(l, p)] },
  { label: '@noble/ciphers', make: (l, p) => [new NobleSender(l, p), new NobleReceiver(l, p)] },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Encrypts a batch (timed), then decrypts it (timed), until each phase has run `phaseMs`. Each batch
 * gives one MB/s sample per phase and the median is reported, so a neighbour process stealing the
 * CPU for a moment (this runs on shared machines) moves the result less than a plain average would.
 */
function measure(impl: Impl, size: number, phaseMs: number): { enc: number; dec: number; encCpu: number; decCpu: number } {
  const [tx, rx] = impl.make(randomBytes(32), randomBytes(32));
  const payload = [Buffer.of(0x02), randomBytes(size - 1)]; // [short id, payload], as the proxy sends
  const batch = Math.max(4, Math.min(2000, Math.floor(BATCH_BYTES / size)));
  const packets: Uint8Array[] = new Array<Uint8Array>(batch);
  const encRates: number[] = [];
  const decRates: number[] = [];
  let encMs = 0;
  let decMs = 0;
  let encCpuUs = 0;
  let decCpuUs = 0;
  let received = 0;
  while (encMs < phaseMs || decMs < phaseMs) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let k = 0; k < batch; k++) packets[k] = tx.encrypt(payload);
    const t1 = performance.now();
    const c1 = process.cpuUsage();
    for (let k = 0; k < batch; k++) {
      const wire = packets[k];
      rx.decryptLength(wire.subarray(0, 3));
      received += rx.decrypt(wire.subarray(3)).contents.length;
    }
    const t2 = performance.now();
    const c2 = process.cpuUsage();
    encCpuUs += c1.user + c1.system - c0.user - c0.system;
    decCpuUs += c2.user + c2.system - c1.user - c1.system;
    encMs += t1 - t0;
    decMs += t2 - t1;
    encRates.push((batch * size) / 1e3 / (t1 - t0));
    decRates.push((batch * size) / 1e3 / (t2 - t1));
  }
  if (received !== encRates.length * batch * size) throw new Error(`${impl.label}: round trip lost bytes`);
  const total = encRates.length * batch * size;
  return { enc: median(encRates), dec: median(decRates), encCpu: total / encCpuUs, decCpu: total / decCpuUs };
}

function opsPerSecond(fn: () => void, ms: number): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    fn();
    n++;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

export async function benchCrypto(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const impl of IMPLS) measure(impl, 1024, 50); // warm up JIT and OpenSSL before timing
  for (const size of SIZES) {
    for (const impl of IMPLS) {
      const { enc, dec, encCpu, decCpu } = measure(impl, size, PHASE_MS);
      rows.push({ name: `v2 packet encrypt (${impl.label})`, size, value: enc, unit: 'MB/s' });
      rows.push({ name: `v2 packet decrypt (${impl.label})`, size, value: dec, unit: 'MB/s' });
      rows.push({ name: `v2 packet encrypt+decrypt (${impl.label})`, size, value: 1 / (1 / enc + 1 / dec), unit: 'MB/s' });
      rows.push({ name: `v2 packet encrypt, per CPU second (${impl.label})`, size, value: encCpu, unit: 'MB/s' });
      rows.push({ name: `v2 packet decrypt, per CPU second (${impl.label})`, size, value: decCpu, unit: 'MB/s' });
      await new Promise((r) => setImmediate(r)); // let a caller's event loop breathe between cases
    }
  }
  const a = ellswiftCreate();
  const b = ellswiftCreate();
  const secret = v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true);
  const magic = Buffer.from('f9beb4d9', 'hex');
  rows.push({ name: 'ellswiftCreate (key + encoding)', value: opsPerSecond(() => ellswiftCreate(), 300), unit: 'ops/s' });
  rows.push({
    name: 'v2SharedSecret (decode + ECDH + hash)',
    value: opsPerSecond(() => v2SharedSecret(a.privateKey, b.ellswift, a.ellswift, true), 300),
    unit: 'ops/s',
  });
  rows.push({ name: 'deriveSessionKeys (6 x HKDF)', value: opsPerSecond(() => deriveSessionKeys(secret, magic, true), 300), unit: 'ops/s' });
  return rows;
}

function formatSize(size: number | undefined): string {
  if (size === undefined) return '';
  if (size >= 1 << 20) return `${size / (1 << 20)} MiB`;
  if (size >= 1024) return `${size / 1024} KiB`;
  return `${size} B`;
}

if (process.argv[1]?.endsWith('crypto.js')) {
  const rows = await benchCrypto();
  console.log(`BIP324 crypto, Node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus()[0]?.model ?? 'unknown CPU'}`);
  const w = Math.max(...rows.map((r) => r.name.length));
  for (const r of rows) {
    const v = r.value >= 100 ? r.value.toFixed(0) : r.value.toFixed(1);
    console.log(`${r.name.padEnd(w)}  ${formatSize(r.size).padStart(7)}  ${v.padStart(9)} ${r.unit}`);
  }
}
