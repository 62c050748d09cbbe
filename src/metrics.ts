/**
 * Live visibility for operators: Prometheus metrics and a JSON list of the live connections,
 * served over plain HTTP on the --metrics address (loopback unless --allow-remote).
 *
 * Metrics follow the Prometheus naming conventions (https://prometheus.io/docs/practices/naming/):
 * one `bip324_proxy_` prefix, base units (seconds, bytes), `_total` on counters. Process metrics
 * (`process_*`, `nodejs_*`) keep their standard unprefixed names so stock dashboards work.
 *
 * Byte and message counters must be right on a scrape taken in the middle of a long connection
 * (a Bitcoin peer connection lives for days), so they are not only bumped at close: each scrape
 * adds the live records' counters to the totals of the connections already closed. A record moves
 * from "live" to "closed" exactly once, in closed(), so nothing is counted twice.
 */
import * as http from 'node:http';
import { type AddressInfo, isIPv4 } from 'node:net';

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { type HostPort, formatHostPort, splitHostPort } from './address.js';
import type { ErrorCode } from './errors.js';
import type { ConnectionRecord, ProxyObserver } from './engine/record.js';
import type { Logger } from './log.js';

export const METRICS_PREFIX = 'bip324_proxy_';

/**
 * A v2 handshake on loopback takes about a millisecond; across the world or over Tor it takes
 * seconds, and the handshake timeout caps it at ten.
 */
export const HANDSHAKE_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The transport label of a connection whose transport is not settled yet. */
const PENDING = 'pending';

type Direction = 'to_peer' | 'from_peer';

export class Metrics implements ProxyObserver {
  readonly registry = new Registry();

  /** Connections that were opened and not yet closed; their counters are added at scrape time. */
  private readonly live = new Map<number, ConnectionRecord>();
  private readonly closedBytes: Record<Direction, number> = { to_peer: 0, from_peer: 0 };
  private readonly closedMsgs: Record<Direction, number> = { to_peer: 0, from_peer: 0 };
  /** Every {frontend, transport} pair ever reported active, so a pair that empties reads 0 rather than vanishing. */
  private readonly activeSeen = new Map<string, { frontend: string; transport: string }>();

  private readonly openedTotal: Counter<'frontend'>;
  private readonly closedTotal: Counter<'frontend' | 'transport' | 'reason'>;
  private readonly handshakeSeconds: Histogram<never>;
  private readonly fallbackTotal: Counter<'allowed'>;
  private readonly refusedTotal: Counter<'code'>;
  private readonly droppedTotal: Counter<'code'>;
  private readonly downgradeTotal: Counter<'outcome'>;

  constructor(options: { collectDefault?: boolean } = {}) {
    const registers = [this.registry];
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client calls collect() with the metric as `this`
    const self = this;

    this.openedTotal = new Counter({
      name: `${METRICS_PREFIX}connections_opened_total`,
      help: 'Connections accepted, by front end (socks5, legacy, inbound).',
      labelNames: ['frontend'],
      registers,
    });

    // Computed from the live records at scrape time: the engine sets a record's transport after
    // opened(), when the handshake settles (or a v1 fallback), without telling observers.
    new Gauge({
      name: `${METRICS_PREFIX}connections_active`,
      help: `Connections open now, by front end and transport ("${PENDING}" until established).`,
      labelNames: ['frontend', 'transport'],
      registers,
      collect() {
        const counts = new Map<string, number>();
        for (const key of self.activeSeen.keys()) counts.set(key, 0);
        for (const r of self.live.values()) {
          const transport = r.transport ?? PENDING;
          const key = `${r.frontEnd}/${transport}`;
          if (!self.activeSeen.has(key)) self.activeSeen.set(key, { frontend: r.frontEnd, transport });
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counts) this.set(self.activeSeen.get(key)!, n);
      },
    });

    this.closedTotal = new Counter({
      name: `${METRICS_PREFIX}connections_closed_total`,
      help: 'Connections closed, by front end, transport and reason (the error code, or "normal").',
      labelNames: ['frontend', 'transport', 'reason'],
      registers,
    });

    this.handshakeSeconds = new Histogram({
      name: `${METRICS_PREFIX}handshake_duration_seconds`,
      help: 'Time from the start of the v2 handshake to the authenticated version packet.',
      buckets: HANDSHAKE_BUCKETS_SECONDS,
      registers,
    });

    new Counter({
      name: `${METRICS_PREFIX}bytes_total`,
      help: 'Wire bytes to and from remote peers, live connections included.',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const [to, from] = self.liveSums('bytesToPeer', 'bytesFromPeer');
        this.inc({ direction: 'to_peer' }, self.closedBytes.to_peer + to);
        this.inc({ direction: 'from_peer' }, self.closedBytes.from_peer + from);
      },
    });

    new Counter({
      name: `${METRICS_PREFIX}messages_total`,
      help: 'Application messages to and from remote peers, live connections included.',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const [to, from] = self.liveSums('msgsToPeer', 'msgsFromPeer');
        this.inc({ direction: 'to_peer' }, self.closedMsgs.to_peer + to);
        this.inc({ direction: 'from_peer' }, self.closedMsgs.from_peer + from);
      },
    });

    this.fallbackTotal = new Counter({
      name: `${METRICS_PREFIX}v1_fallbacks_total`,
      help: 'Remote peers taken for v1-only, by whether falling back to v1 was allowed.',
      labelNames: ['allowed'],
      registers,
    });

    this.refusedTotal = new Counter({
      name: `${METRICS_PREFIX}connections_refused_total`,
      help: 'Connections closed on an error before they were established, by error code.',
      labelNames: ['code'],
      registers,
    });

    this.droppedTotal = new Counter({
      name: `${METRICS_PREFIX}messages_dropped_total`,
      help: 'Messages dropped instead of relayed (bad checksum, undefined short id, too large for v1), by error code.',
      labelNames: ['code'],
      registers,
    });

    this.downgradeTotal = new Counter({
      name: `${METRICS_PREFIX}downgrades_total`,
      help: 'Downgrades to plaintext v1 of peers known to speak v2: refused before a fallback, or detected after one (the remote answered v1 advertising NODE_P2P_V2).',
      labelNames: ['outcome'],
      registers,
    });

    if (options.collectDefault ?? true) collectDefaultMetrics({ register: this.registry });
  }

  opened(record: ConnectionRecord): void {
    this.live.set(record.id, record);
    this.openedTotal.inc({ frontend: record.frontEnd });
  }

  established(record: ConnectionRecord, handshakeMs: number | undefined): void {
    if (handshakeMs !== undefined && (record.transport === 'v2' || record.transport === 'inbound-v2')) {
      this.handshakeSeconds.observe(handshakeMs / 1000);
    }
  }

  fallback(_record: ConnectionRecord, allowed: boolean): void {
    this.fallbackTotal.inc({ allowed: allowed ? 'true' : 'false' });
  }

  downgrade(_record: ConnectionRecord, outcome: 'refused' | 'detected'): void {
    this.downgradeTotal.inc({ outcome });
  }

  dropped(_record: ConnectionRecord, code: ErrorCode): void {
    this.droppedTotal.inc({ code });
  }

  closed(record: ConnectionRecord, _reason: string, code: ErrorCode | undefined): void {
    // A second close of the same record must not count its bytes twice.
    if (!this.live.delete(record.id)) return;
    this.closedBytes.to_peer += record.bytesToPeer;
    this.closedBytes.from_peer += record.bytesFromPeer;
    this.closedMsgs.to_peer += record.msgsToPeer;
    this.closedMsgs.from_peer += record.msgsFromPeer;
    this.closedTotal.inc({ frontend: record.frontEnd, transport: record.transport ?? PENDING, reason: code ?? 'normal' });
    if (code !== undefined && record.establishedAt === undefined) this.refusedTotal.inc({ code });
  }

  private liveSums(a: 'bytesToPeer' | 'msgsToPeer', b: 'bytesFromPeer' | 'msgsFromPeer'): [number, number] {
    let x = 0;
    let y = 0;
    for (const r of this.live.values()) {
      x += r[a];
      y += r[b];
    }
    return [x, y];
  }
}

/** One element of the /connections JSON array (snake_case, like the log fields). */
export interface ConnectionInfo {
  id: number;
  frontend: string;
  client: string;
  peer: string | null;
  transport: string | null;
  session_id: string | null;
  bytes_to_peer: number;
  bytes_from_peer: number;
  msgs_to_peer: number;
  msgs_from_peer: number;
  age_seconds: number;
  established: boolean;
}

export function describeConnection(r: ConnectionRecord, now: number = Date.now()): ConnectionInfo {
  return {
    id: r.id,
    frontend: r.frontEnd,
    client: r.client,
    peer: r.peer ?? null,
    transport: r.transport ?? null,
    session_id: r.sessionId ?? null,
    bytes_to_peer: r.bytesToPeer,
    bytes_from_peer: r.bytesFromPeer,
    msgs_to_peer: r.msgsToPeer,
    msgs_from_peer: r.msgsFromPeer,
    age_seconds: Math.max(0, now - r.startedAt) / 1000,
    established: r.establishedAt !== undefined,
  };
}

/** A scraper or `status` that stalls must not hold a socket for long. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsServer {
  /** The bound address (port 0 resolved). */
  address: HostPort;
  close(): Promise<void>;
}

/**
 * HTTP server on host:port serving GET /metrics (Prometheus text) and GET /connections (JSON array);
 * 404 for other paths, 405 for methods other than GET and HEAD. Rejects with the listen error
 * (EADDRINUSE, ...) so the caller can report it like a --listen failure.
 */
export function startMetricsServer(
  address: HostPort,
  metrics: Metrics,
  connections: () => ConnectionRecord[],
  log: Logger,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (!hostAllowed(req.headers.host, address.host)) {
      // DNS rebinding: a web page on evil.example whose name is made to resolve to 127.0.0.1 reaches
      // this port from the victim's browser with "Host: evil.example". Peer addresses, .onion
      // destinations and session ids must not be readable that way.
      send(res, 403, 'text/plain; charset=utf-8', 'forbidden: unexpected Host header; use the address the proxy serves metrics on\n');
      return;
    }
    respond(req, res, metrics, connections).catch((err: unknown) => {
      log.warn('metrics request failed', { path: req.url, reason: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error('metrics listener error', { reason: err.message }));
      const bound: HostPort = { host: address.host, port: (server.address() as AddressInfo).port };
      log.info('listening', { address: formatHostPort(bound), mode: 'metrics' });
      resolve({
        address: bound,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // A keep-alive scraper would otherwise hold close() open until its idle timeout.
            server.closeAllConnections();
          }),
      });
    });
  });
}

/**
 * Whether a request's Host header names this endpoint in a way DNS rebinding cannot forge: an IP
 * literal (IPv6 in brackets, as HTTP writes it), "localhost", or the host the metrics address was
 * configured with. A request without a Host header (HTTP/1.0) comes from a program, not a browser,
 * and is answered.
 */
export function hostAllowed(header: string | undefined, configuredHost: string): boolean {
  if (header === undefined) return true;
  const split = splitHostPort(header.trim().toLowerCase());
  if (split.problem !== undefined || !/^[0-9]*$/.test(split.port ?? '')) return false;
  if (split.bracketed) return true;
  const bare = (h: string): string => (h.endsWith('.') ? h.slice(0, -1) : h);
  const host = bare(split.host);
  return isIPv4(host) || host === 'localhost' || host === bare(configuredHost.toLowerCase());
}

async function respond(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  metrics: Metrics,
  connections: () => ConnectionRecord[],
): Promise<void> {
  // HEAD is answered like GET (Node drops the body): HTTP requires it wherever GET works.
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path === '/metrics') {
    send(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
  } else if (path === '/connections') {
    const now = Date.now();
    const list = connections()
      .map((r) => describeConnection(r, now))
      .sort((a, b) => a.id - b.id);
    send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(list)}\n`);
  } else {
    send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics or /connections\n');
  }
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
