/**
 * `bip324-proxy status`: ask a running proxy for its live connections through the --metrics
 * endpoint (GET /connections, see metrics.ts) and print them as a table a person reads at a glance,
 * with the traffic shaping mode (GET /info; an older daemon without it is still shown, without).
 */
import * as http from 'node:http';

import { type HostPort, formatHostPort } from './address.js';
import { DEFAULT_METRICS, DEFAULT_METRICS_PORT } from './config/index.js';
import type { Config } from './config/index.js';
import type { ConnectionInfo, ProxyInfo } from './metrics.js';
import { SHAPE_MODES, type ShapingOptions } from './engine/shaper.js';

/** Where `status` looks when no --metrics is given: the daemon's default metrics address. */
export { DEFAULT_METRICS_PORT };
export const DEFAULT_METRICS_ADDRESS: HostPort = DEFAULT_METRICS;

/** A local daemon answers in milliseconds; a hung one must not hang the operator's shell. */
export const STATUS_TIMEOUT_MS = 3000;

/** The largest answer status reads: /connections is about 500 bytes per connection, so 100,000 of them. */
export const MAX_ANSWER_BYTES = 64 * 2 ** 20;

/** The order transports appear in the summary line. */
const TRANSPORT_ORDER = ['v2', 'inbound-v2', 'v1-fallback', 'inbound-v1', 'passthrough', 'pending'];

/**
 * Prints the connections of the proxy reachable at config.metrics (default 127.0.0.1:9324) to `out`;
 * a failure goes to `err` with a hint. Resolves to the exit code: 0 on success, 1 otherwise.
 * `full` prints whole session ids, to compare with the remote node's getpeerinfo.
 */
export async function runStatus(
  config: Config,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
  options: { full?: boolean } = {},
): Promise<number> {
  const address = config.metrics;
  if (address === undefined) {
    await write(
      err,
      `bip324-proxy status: metrics are off (--metrics off, or metrics=off in the configuration file), and status reads them; pass the address the daemon serves them on, e.g. --metrics ${formatHostPort(DEFAULT_METRICS)}\n`,
    );
    return 1;
  }
  const isDefault = address.host === DEFAULT_METRICS.host && address.port === DEFAULT_METRICS.port;
  let list: ConnectionInfo[];
  // Both at once; /info is optional (a daemon from before it answers 404), so its failure is not one.
  const info = fetchText(address, '/info', STATUS_TIMEOUT_MS).then(parseInfo, () => undefined);
  try {
    list = parseConnections(await fetchText(address, '/connections', STATUS_TIMEOUT_MS));
  } catch (e) {
    await write(err, `bip324-proxy status: ${describeFailure(e, address, !isDefault)}\n`);
    return 1;
  }
  await write(out, formatStatus(list, options.full === true, (await info)?.shaping));
  return 0;
}

/** Resolves once the text is handed to the OS, so a process.exit() right after loses nothing. */
function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    try {
      stream.write(text, () => resolve());
    } catch {
      resolve();
    }
  });
}

class StatusError extends Error {}

function describeFailure(e: unknown, address: HostPort, configured: boolean): string {
  const where = formatHostPort(address);
  const code = (e as NodeJS.ErrnoException).code;
  const hint = configured
    ? `Is bip324-proxy running with --metrics ${where}?`
    : `Is bip324-proxy running? It serves status on ${where} unless it was started with --metrics off or another --metrics HOST:PORT, which status then needs too.`;
  if (code === 'ECONNREFUSED') return `cannot connect to ${where}: connection refused. ${hint}`;
  if (code === 'ETIMEDOUT') return `no answer from ${where} within ${STATUS_TIMEOUT_MS / 1000} s. ${hint}`;
  // Something listens there, but not an HTTP server: most likely the proxy's own SOCKS5 or P2P
  // port given in place of its metrics address (Node reports that as HPE_* or a reset).
  if ((typeof code === 'string' && code.startsWith('HPE_')) || code === 'ECONNRESET') {
    return `--metrics ${where}: no HTTP answer there (${code}); --metrics is the proxy's metrics address, e.g. --metrics ${formatHostPort(DEFAULT_METRICS)}, not its SOCKS5 or P2P port`;
  }
  if (e instanceof StatusError) return `${where}: ${e.message}. ${hint}`;
  const reason = code ?? (e instanceof Error ? e.message : String(e));
  return `cannot reach ${where}: ${reason}. ${hint}`;
}

function fetchText(address: HostPort, path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: address.host, port: address.port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        size += c.length;
        // Whatever listens there decides how much it sends; the answer is held whole to be parsed.
        if (size > MAX_ANSWER_BYTES)
          req.destroy(new StatusError(`GET ${path} answered more than ${MAX_ANSWER_BYTES / 2 ** 20} MiB; is that a bip324-proxy metrics endpoint`));
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new StatusError(`GET ${path} answered HTTP ${res.statusCode ?? '?'}; is that a bip324-proxy metrics endpoint`));
        else resolve(body);
      });
      res.on('error', reject);
    });
    // One deadline for the whole request, so that a server trickling bytes cannot hold it open either.
    const deadline = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('error', reject);
    req.on('close', () => clearTimeout(deadline));
  });
}

function parseConnections(body: string): ConnectionInfo[] {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new StatusError('GET /connections did not answer JSON; is that a bip324-proxy metrics endpoint');
  }
  if (!Array.isArray(value) || !value.every((c) => c !== null && typeof c === 'object' && typeof (c as ConnectionInfo).id === 'number')) {
    throw new StatusError('GET /connections did not answer a list of connections');
  }
  return value as ConnectionInfo[];
}

/** GET /info, when it is what a proxy answers; anything else counts as no answer. */
function parseInfo(body: string): ProxyInfo | undefined {
  try {
    const v = JSON.parse(body) as ProxyInfo;
    const s = v?.shaping;
    if (s !== undefined && (SHAPE_MODES as readonly string[]).includes(s.mode) && typeof s.rate === 'number') return v;
  } catch {
    // not JSON
  }
  return undefined;
}

/** "shaping cover at 1024 B/s per connection", or undefined when shaping is off or unknown. */
function describeShaping(shaping: ShapingOptions | undefined): string | undefined {
  if (shaping === undefined || shaping.mode === 'off') return undefined;
  return shaping.mode === 'cover' ? `shaping cover at ${shaping.rate} B/s per connection` : `shaping ${shaping.mode}`;
}

/**
 * The table and the summary line, or "no connections"; session ids cut to 16 hex digits unless
 * `full`. With traffic shaping on (`shaping`, from GET /info, or any connection shaped), a DECOYS
 * column (decoy packets and their bytes, per connection) and the mode and totals after the summary.
 */
export function formatStatus(list: ConnectionInfo[], full = false, shaping?: ShapingOptions): string {
  const mode = describeShaping(shaping);
  if (list.length === 0) return mode === undefined ? 'no connections\n' : `no connections; ${mode}\n`;
  const rows = [...list].sort((a, b) => a.id - b.id);
  const shaped = mode !== undefined || rows.some((c) => (c.shaping ?? null) !== null || (c.decoys_to_peer ?? 0) > 0);
  const header = ['ID', 'FRONTEND', 'PEER', 'TRANSPORT', 'SESSION', 'TO PEER', 'FROM PEER', 'MSGS', ...(shaped ? ['DECOYS'] : []), 'AGE'];
  // Numbers read best right-aligned, names left-aligned.
  const right = [true, false, false, false, false, true, true, true, ...(shaped ? [true] : []), true];
  const decoys = (c: ConnectionInfo): string =>
    (c.shaping ?? null) === null && (c.decoys_to_peer ?? 0) === 0 ? '-' : `${c.decoys_to_peer ?? 0} (${humanBytes(c.decoy_bytes_to_peer ?? 0)})`;
  const cells = rows.map((c) => [
    String(c.id),
    c.frontend,
    c.peer ?? '-',
    c.transport ?? 'pending',
    c.session_id ? (full ? c.session_id : `${c.session_id.slice(0, 16)}…`) : '-',
    humanBytes(c.bytes_to_peer),
    humanBytes(c.bytes_from_peer),
    `${c.msgs_to_peer}/${c.msgs_from_peer}`,
    ...(shaped ? [decoys(c)] : []),
    humanAge(c.age_seconds),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]): string =>
    r
      .map((cell, i) => (right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const counts = new Map<string, number>();
  for (const c of rows) {
    const t = c.transport ?? 'pending';
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  const order = [...TRANSPORT_ORDER, ...[...counts.keys()].filter((t) => !TRANSPORT_ORDER.includes(t)).sort()];
  const summary = order
    .filter((t) => counts.has(t))
    .map((t) => `${counts.get(t)} ${t}`)
    .join(', ');
  let total = `${rows.length} connection${rows.length === 1 ? '' : 's'}: ${summary}`;
  if (shaped) {
    const packets = rows.reduce((n, c) => n + (c.decoys_to_peer ?? 0), 0);
    const bytes = rows.reduce((n, c) => n + (c.decoy_bytes_to_peer ?? 0), 0);
    total += `; ${mode ?? 'shaping'}: ${packets} decoy${packets === 1 ? '' : 's'} (${humanBytes(bytes)})`;
  }
  return [line(header), ...cells.map(line), total].join('\n') + '\n';
}

/** 532 B, 45 kB, 1.2 MB: decimal units, two significant digits below 10. */
export function humanBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = -1;
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v < 9.95 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** 42s, 5m07s, 1h02m, 3d04h: two units at most, enough to tell a fresh connection from an old one. */
export function humanAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const two = (x: number): string => String(x).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}
