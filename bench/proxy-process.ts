/**
 * The proxy under test, alone in its own process (bench/proxy.ts and bench/exposure.ts start it; see
 * bench/README.md).
 *
 * Runs the real ProxyServer with the daemon's defaults (network detected per connection, default
 * timeouts), listening on 127.0.0.1 port 0, logging errors only to stderr (BENCH_PROXY_LOG=info to
 * see every connection). The one change is --max-connections: 1000 idle connections are part of
 * the benchmark, and the default is 1024.
 *
 *   node --expose-gc dist/bench/proxy-process.js [max-connections] [config-json] [count-reads | trace]
 *
 * - config-json: fields of the Config replacing the defaults, one level deep for objects, e.g.
 *   '{"inbound":[{"listen":{"host":"127.0.0.1","port":0},"target":{"host":"127.0.0.1","port":8333}}],
 *   "inboundLimits":{"perIp":0}}'. The first --inbound port is reported as the named port 'inbound'.
 * - count-reads: count the socket reads the proxy gets and their bytes (the 'stats' request), to
 *   show how a trickle arrived: one byte per read, or coalesced.
 * - trace: record a timestamp (process.hrtime, the same clock in every process) for every socket
 *   read and write, named by side ('proxy client-side' = a socket on the listening port, 'proxy
 *   remote-side' = one the proxy dialed), and for each V2Transport.receive() call (in, and out with its events), for the
 *   'trace' request (bench/setup-trace.ts: one connection's set-up, step by step).
 * - BENCH_PROXY_DIST=/path/to/other/tree/dist runs that tree's ProxyServer instead (same Config
 *   shape assumed; fields it does not know are ignored), for before/after numbers.
 *
 * Then talks to its parent over IPC (bench/child.ts): port, cpu, mem (after gc), conns, stats, stop.
 */
import { Socket } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveParent, type TraceEvent } from './child.js';

const dist = process.env.BENCH_PROXY_DIST;
const src = dist === undefined ? new URL('../src/', import.meta.url) : pathToFileURL(`${resolve(dist)}/src/`);
// The configuration moved from src/config.ts to src/config/; an older tree has the former.
const configModule = (await import(new URL('config/index.js', src).href).catch(
  () => import(new URL('config.js', src).href),
)) as typeof import('../src/config/index.js');
const { defaultConfig } = configModule;
const { ProxyServer } = (await import(new URL('engine/server.js', src).href)) as typeof import('../src/engine/server.js');
const { createLogger, isLogLevel } = (await import(new URL('log.js', src).href)) as typeof import('../src/log.js');

// A remote the proxy dials directly reads into a shared buffer and pushes nothing (src/transient-reads.ts,
// absent from an older tree): its reads are counted and traced through its observer.
const transientReads = (await import(new URL('transient-reads.js', src).href).catch(() => undefined)) as typeof import('../src/transient-reads.js') | undefined;

const reads = { reads: 0, bytes: 0 };
if (process.argv[4] === 'count-reads') {
  transientReads?.observeTransientReads((_socket, bytes) => {
    reads.reads++;
    reads.bytes += bytes;
  });
  // Every socket read reaches the stream as one push(chunk) (null at EOF).
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the socket as `this`
  const push = Socket.prototype.push;
  Socket.prototype.push = function (this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) {
      reads.reads++;
      reads.bytes += (chunk as Buffer).length;
    }
    return push.call(this, chunk, encoding);
  };
}

const traced: TraceEvent[] = [];
let listenPort = -1;
if (process.argv[4] === 'trace') {
  const now = (): number => Number(process.hrtime.bigint());
  const side = (socket: Socket): string => (socket.localPort === listenPort ? 'proxy client-side' : 'proxy remote-side');
  transientReads?.observeTransientReads((socket, bytes) => traced.push([now(), `${side(socket)} read`, bytes]));
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the socket as `this`
  const push = Socket.prototype.push;
  Socket.prototype.push = function (this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) traced.push([now(), `${side(this)} read`, (chunk as Buffer).length]);
    return push.call(this, chunk, encoding);
  };
  // Every write reaches libuv through _writeGeneric (one call per write, or one per writev of a cork).
  const proto = Socket.prototype as unknown as { _writeGeneric: (writev: boolean, data: unknown, ...rest: unknown[]) => unknown };
  const writeGeneric = proto._writeGeneric;
  proto._writeGeneric = function (this: Socket, writev: boolean, data: unknown, ...rest: unknown[]): unknown {
    const bytes = writev ? (data as { chunk: Buffer }[]).reduce((n, d) => n + d.chunk.length, 0) : (data as Buffer).length;
    traced.push([now(), `${side(this)} write`, bytes]);
    return writeGeneric.call(this, writev, data, ...rest);
  };
  const { V2Transport } = (await import(new URL('v2/transport.js', src).href)) as typeof import('../src/v2/transport.js');
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the transport as `this`
  const receive = V2Transport.prototype.receive;
  V2Transport.prototype.receive = function (this: InstanceType<typeof V2Transport>, chunk: Buffer, transient?: boolean) {
    traced.push([now(), 'proxy v2 receive in', chunk.length]);
    // `transient` passed on: the chunk is then a view of a shared read buffer, which the transport must copy from.
    const events = receive.call(this, chunk, transient);
    traced.push([now(), `proxy v2 receive out: ${events.map((e) => e.type).join(',')}`, chunk.length]);
    return events;
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const overrides = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
const level = process.env.BENCH_PROXY_LOG ?? 'error';
const config: Record<string, unknown> = {
  ...defaultConfig(),
  listen: [{ host: '127.0.0.1', port: 0 }],
  logLevel: isLogLevel(level) ? level : 'error',
  maxConnections: Number(process.argv[2] ?? 4096),
};
for (const [k, v] of Object.entries(overrides)) config[k] = isObject(v) && isObject(config[k]) ? { ...config[k], ...v } : v;

const server = new ProxyServer(config as unknown as ReturnType<typeof defaultConfig>, createLogger({ level: config.logLevel as 'error' }));
const [bound] = await server.listen();
listenPort = bound.port;
const inbound = server.inboundAddresses[0];
serveParent(bound.port, {
  ports: inbound === undefined ? {} : { inbound: inbound.port },
  count: () => server.connections.length,
  stats: () => ({ ...reads }),
  trace: () => traced.splice(0),
  close: () => server.close(),
});
