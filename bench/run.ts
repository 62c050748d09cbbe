/**
 * `npm run bench`: every benchmark in one run, one table, one JSON file.
 *
 * Sections: crypto (bench/crypto.ts: v2 packet encrypt/decrypt by size, node:crypto and noble),
 * v1 (bench/v1.ts: parse + checksum), handshake (bench/handshake.ts: in-memory handshakes, CPU per
 * side), proxy (bench/proxy.ts: the daemon end to end on loopback against a plain relay, the crypto
 * alone and a direct connection), exposure (bench/exposure.ts: what hostile peers can make the
 * proxy hold, and a handshake flood's effect on latency; repeated runs, median and range). Ends
 * with the targets of issues 2, 5, 8 and 12, pass or fail.
 *
 *   node dist/bench/run.js [crypto] [v1] [handshake] [proxy] [exposure]     (default: all)
 *
 * Writes bench/results/latest.json: the machine (CPU model, cores, load, node and OpenSSL), the
 * topology, every row, the proxy details and the targets. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchCrypto } from './crypto.js';
import { benchExposure, type ExposureResults } from './exposure.js';
import { benchHandshake } from './handshake.js';
import { benchProxy, type ProxyResults, TOPOLOGY } from './proxy.js';
import { benchV1 } from './v1.js';

interface Row {
  name: string;
  size?: number;
  value: number;
  unit: string;
  /** Repeated measurements: value is the median, and the range of the runs. */
  min?: number;
  max?: number;
  runs?: number;
}

interface Target {
  what: string;
  target: string;
  measured: string;
  pass: boolean | undefined;
}

const SECTIONS = ['crypto', 'v1', 'handshake', 'proxy', 'exposure'] as const;
type Section = (typeof SECTIONS)[number];

const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const MIB = 1 << 20;

/** The machine a run was on, written into the JSON results; the last two fields are set when the run ends. */
interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  v8: string;
  openssl: string;
  date: string;
  loadavgAtStart: number[];
  loadavgAtEnd?: number[];
  seconds?: number;
}

function machine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    v8: process.versions.v8,
    openssl: process.versions.openssl,
    date: new Date().toISOString(),
    loadavgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function formatSize(size: number | undefined): string {
  if (size === undefined) return '';
  if (size >= MIB && size % MIB === 0) return `${size / MIB} MiB`;
  if (size >= 1024 && size % 1024 === 0) return `${size / 1024} KiB`;
  return `${size} B`;
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function find(rows: Row[], name: string, size?: number): Row | undefined {
  return rows.find((r) => r.name === name && r.size === size);
}

function targets(rows: Partial<Record<Section, Row[]>>, proxy: ProxyResults | undefined): Target[] {
  const out: Target[] = [];
  const notRun = (what: string, target: string): Target => ({ what, target, measured: 'not run', pass: undefined });

  for (const dir of ['encrypt', 'decrypt'] as const) {
    const what = `v2 packet ${dir} at 1 MiB (node:crypto)`;
    const r = rows.crypto && find(rows.crypto, `v2 packet ${dir} (node:crypto)`, MIB);
    out.push(r ? { what, target: '>= 1000 MB/s', measured: `${formatValue(r.value)} MB/s`, pass: r.value >= 1000 } : notRun(what, '>= 1000 MB/s'));
  }

  for (const side of ['initiator', 'responder']) {
    const what = `handshake CPU, ${side} side (in memory)`;
    const r = rows.handshake && find(rows.handshake, `handshake: CPU, ${side} side`);
    out.push(r ? { what, target: '<= 10 ms', measured: `${formatValue(r.value)} ms`, pass: r.value <= 10 } : notRun(what, '<= 10 ms'));
  }

  // Issue 8, rule 1: memory held for a connection is at most a small constant factor (2x) of the bytes it buffered, whatever the read pattern.
  for (const [who, name] of [
    ['v2 peer', 'v2 trickle (peer): heap + ArrayBuffers per byte buffered'],
    ['v1 client', 'v1 trickle (client): heap + ArrayBuffers per byte buffered'],
  ] as const) {
    const what = `proxy memory per byte trickled one per read, ${who}`;
    const r = rows.exposure && find(rows.exposure, name);
    out.push(r ? { what, target: '<= 2 B/B', measured: `${formatValue(r.value)} B/B (median of ${r.runs})`, pass: r.value <= 2 } : notRun(what, '<= 2 B/B'));
  }

  if (proxy === undefined) {
    out.push(notRun('proxy throughput / crypto alone, 1 MiB', '>= 60 %'));
    out.push(notRun('added RTT through the proxy, median', '< 100 us'));
    out.push(notRun('added RTT through the proxy, p99', '< 100 us'));
    out.push(notRun('proxy RSS per idle connection (1000)', '<= 64 KiB'));
    for (const what of ISSUE12_TARGETS) out.push(notRun(what[0], what[1]));
    return out;
  }
  const big = proxy.throughput.find((t) => t.size === MIB)!;
  out.push({
    what: 'proxy throughput / crypto alone, 1 MiB',
    target: '>= 60 %',
    measured: `${formatValue(100 * big.ratioToCrypto)} % (${formatValue(big.proxyMBps)} of ${formatValue(big.cryptoAloneMBps)} MB/s)`,
    pass: big.ratioToCrypto >= 0.6,
  });
  const lat = proxy.latency;
  out.push({
    what: 'added RTT through the proxy, median',
    target: '< 100 us',
    measured: `${formatValue(lat.addedMedianUs)} us (${formatValue(lat.proxy.median)} vs ${formatValue(lat.direct.median)})`,
    pass: lat.addedMedianUs < 100,
  });
  out.push({
    what: 'added RTT through the proxy, p99',
    target: '< 100 us',
    measured: `${formatValue(lat.addedP99Us)} us (${formatValue(lat.proxy.p99)} vs ${formatValue(lat.direct.p99)})`,
    pass: lat.addedP99Us < 100,
  });
  const perConnKiB = proxy.memory.rssPerConnection / 1024;
  out.push({
    what: `proxy RSS per idle connection (${proxy.memory.connections})`,
    target: '<= 64 KiB',
    measured: `${formatValue(perConnKiB)} KiB`,
    pass: perConnKiB <= 64,
  });

  // Issue 12: the proxy against a direct v2 connection and a plain relay, in the same run.
  const setup = proxy.setup;
  out.push({
    what: ISSUE12_TARGETS[0][0],
    target: ISSUE12_TARGETS[0][1],
    measured: `${formatValue(setup.overV2MedianMs)} ms (${formatValue(setup.proxy.median)} vs ${formatValue(setup.directV2.median)})`,
    pass: setup.overV2MedianMs <= 5,
  });
  out.push({
    what: ISSUE12_TARGETS[1][0],
    target: ISSUE12_TARGETS[1][1],
    measured: `${formatValue(setup.connectionsPerCpuSecond)} conn/s warm (${formatValue(setup.proxyCpuMsPerConnection)} ms CPU each; plain relay ${formatValue(setup.relayCpuMsPerConnection)} ms); cold ${formatValue(setup.cold.connectionsPerCpuSecond)} conn/s`,
    pass: setup.connectionsPerCpuSecond >= 500,
  });
  out.push({
    what: ISSUE12_TARGETS[2][0],
    target: ISSUE12_TARGETS[2][1],
    measured: `${formatValue(lat.overRelayMedianUs)} us (${formatValue(lat.proxy.median)} vs ${formatValue(lat.relay.median)})`,
    pass: lat.overRelayMedianUs <= 100,
  });
  for (const [k, direction] of [
    [3, 'up'],
    [4, 'down'],
  ] as const) {
    const f = proxy.flood.find((x) => x.route === 'proxy' && x.direction === direction && x.size === MIB);
    out.push(
      f?.proxyCpuMsPerMB === undefined
        ? notRun(ISSUE12_TARGETS[k][0], ISSUE12_TARGETS[k][1])
        : { what: ISSUE12_TARGETS[k][0], target: ISSUE12_TARGETS[k][1], measured: `${formatValue(f.proxyCpuMsPerMB)} ms`, pass: f.proxyCpuMsPerMB <= 2.5 },
    );
  }
  for (const [k, size] of [
    [5, 64 * 1024],
    [6, MIB],
  ] as const) {
    const via = proxy.flood.find((x) => x.route === 'proxy' && x.direction === 'up' && x.size === size);
    const direct = proxy.flood.find((x) => x.route === 'direct-v2' && x.direction === 'up' && x.size === size);
    if (via === undefined || direct === undefined) out.push(notRun(ISSUE12_TARGETS[k][0], ISSUE12_TARGETS[k][1]));
    else {
      const ratio = via.mbps / direct.mbps;
      out.push({
        what: ISSUE12_TARGETS[k][0],
        target: ISSUE12_TARGETS[k][1],
        measured: `${formatValue(ratio)} (${formatValue(via.mbps)} vs ${formatValue(direct.mbps)} MB/s)`,
        pass: ratio >= 0.9,
      });
    }
  }
  return out;
}

/** Issue 12's targets, in the order targets() reports them. */
const ISSUE12_TARGETS: [what: string, target: string][] = [
  ['set-up via proxy - direct v2, median', '<= 5 ms'],
  ['connections per proxy CPU second', '>= 500'],
  ['RTT via proxy - via plain relay, median', '<= 100 us'],
  ['proxy CPU per MB, 1 MiB messages, up', '<= 2.5 ms'],
  ['proxy CPU per MB, 1 MiB messages, down', '<= 2.5 ms'],
  ['flood up via proxy / direct v2, 64 KiB', '>= 0.9'],
  ['flood up via proxy / direct v2, 1 MiB', '>= 0.9'],
];

function printTable(headers: string[], body: string[][], rightAlign: boolean[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (rightAlign[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  console.log(line(headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
}

const wanted: Section[] =
  process.argv.slice(2).length === 0 ? [...SECTIONS] : (process.argv.slice(2).filter((a) => (SECTIONS as readonly string[]).includes(a)) as Section[]);
const info = machine();
console.log(`bip324-proxy bench: ${info.cpu}, ${info.cores} cores, node ${info.node}, OpenSSL ${info.openssl}, load ${String(info.loadavgAtStart)}`);
console.log(`sections: ${wanted.join(', ')}\n`);
const progress = (what: string): void => console.error(`... ${what}`);
const started = performance.now();

const rows: Partial<Record<Section, Row[]>> = {};
let proxy: ProxyResults | undefined;
let exposure: ExposureResults | undefined;
if (wanted.includes('crypto')) {
  progress('crypto');
  rows.crypto = await benchCrypto();
}
if (wanted.includes('v1')) {
  progress('v1 framing');
  rows.v1 = await benchV1();
}
if (wanted.includes('handshake')) {
  progress('handshake');
  rows.handshake = await benchHandshake();
}
if (wanted.includes('proxy')) {
  proxy = await benchProxy(progress);
  rows.proxy = proxy.rows;
}
if (wanted.includes('exposure')) {
  exposure = await benchExposure(progress);
  rows.exposure = exposure.rows;
}
info.loadavgAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
info.seconds = Math.round((performance.now() - started) / 100) / 10;

console.log('');
const body: string[][] = [];
const spread = (r: Row): string => (r.runs === undefined ? '' : `${formatValue(r.min!)} .. ${formatValue(r.max!)} (${r.runs} runs)`);
for (const section of SECTIONS) for (const r of rows[section] ?? []) body.push([section, r.name, formatSize(r.size), formatValue(r.value), r.unit, spread(r)]);
printTable(['section', 'measurement', 'size', 'value', 'unit', 'range'], body, [false, false, true, true, false, false]);

const tg = targets(rows, proxy);
console.log('');
printTable(
  ['target', 'limit', 'measured', 'result'],
  tg.map((t) => [t.what, t.target, t.measured, t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'FAIL']),
  [false, false, false, false],
);
console.log(`\nload average at start ${String(info.loadavgAtStart)}, at end ${String(info.loadavgAtEnd)} (${info.cores} cores); ${info.seconds} s in all`);

mkdirSync(RESULTS, { recursive: true });
const file = `${RESULTS}latest.json`;
writeFileSync(
  file,
  `${JSON.stringify({ machine: info, topology: wanted.includes('proxy') ? TOPOLOGY : undefined, sections: rows, proxy: proxy && { ...proxy, rows: undefined, topology: undefined }, exposure: exposure && { ...exposure, rows: undefined }, targets: tg }, null, 2)}\n`,
);
console.log(`wrote ${file}`);
