/**
 * v1 framing throughput: V1Parser.push with checksum verification, fed in 64 KiB chunks the way a
 * socket delivers them. Reports payload MB/s (1 MB = 10^6 bytes) for 250-byte messages (typical tx,
 * inv) and 1 MiB messages (blocks). Run alone with `node dist/bench/v1.js`.
 */
import { cpus } from 'node:os';
import { V1Parser, serializeV1 } from '../src/v1/framing.js';

export interface Row {
  name: string;
  size?: number;
  value: number;
  unit: string;
}

const MAGIC = Buffer.from('f9beb4d9', 'hex');
const READ_SIZE = 64 * 1024;
const STREAM_BYTES = 8 * 1024 * 1024;
const DURATION_MS = 500;

/** One stream of back-to-back messages of `size` payload bytes, cut into socket-sized reads. */
function makeChunks(size: number): { chunks: Buffer[]; messages: number } {
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, Math.min(i, size - 4));
  const one = serializeV1(MAGIC, 'tx', payload);
  const messages = Math.max(2, Math.floor(STREAM_BYTES / one.length));
  const stream = Buffer.concat(Array.from({ length: messages }, () => one));
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += READ_SIZE) chunks.push(stream.subarray(i, i + READ_SIZE));
  return { chunks, messages };
}

function measure(size: number): { mbps: number; msgsPerSec: number } {
  const { chunks, messages } = makeChunks(size);
  let parsed = 0;
  const run = (): void => {
    const parser = new V1Parser(MAGIC);
    for (const c of chunks) parsed += parser.push(c).length;
  };
  run(); // warm up
  parsed = 0;
  let rounds = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(DURATION_MS) * 1_000_000n;
  do {
    run();
    rounds++;
  } while (process.hrtime.bigint() < deadline);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (parsed !== rounds * messages) throw new Error(`parsed ${parsed} messages, expected ${rounds * messages}`);
  return { mbps: (parsed * size) / seconds / 1e6, msgsPerSec: parsed / seconds };
}

export async function benchV1(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const size of [250, 1024 * 1024]) {
    const { mbps, msgsPerSec } = measure(size);
    rows.push({ name: 'v1 parse+checksum', size, value: Math.round(mbps * 10) / 10, unit: 'MB/s' });
    rows.push({ name: 'v1 parse+checksum', size, value: Math.round(msgsPerSec), unit: 'msg/s' });
  }
  return rows;
}

if (process.argv[1]?.endsWith('v1.js')) {
  const rows = await benchV1();
  console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}`);
  console.log(['benchmark'.padEnd(20), 'payload'.padStart(9), 'value'.padStart(12), 'unit'].join('  '));
  for (const r of rows) {
    console.log([r.name.padEnd(20), String(r.size ?? '').padStart(9), String(r.value).padStart(12), r.unit].join('  '));
  }
}
