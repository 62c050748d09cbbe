/**
 * The proxy under test, alone in its own process (bench/proxy.ts starts it; see bench/README.md).
 *
 * Runs the real ProxyServer with the daemon's defaults (network detected per connection, default
 * timeouts), listening on 127.0.0.1 port 0, logging errors only to stderr (BENCH_PROXY_LOG=info to
 * see every connection). The one change is --max-connections: 1000 idle connections are part of
 * the benchmark, and the default is 1024.
 *
 *   node --expose-gc dist/bench/proxy-process.js [max-connections]
 *
 * Then talks to its parent over IPC (bench/child.ts): port, cpu, mem (after gc), conns, stop.
 */
import { defaultConfig } from '../src/config/index.js';
import { ProxyServer } from '../src/engine/server.js';
import { createLogger, isLogLevel } from '../src/log.js';
import { serveParent } from './child.js';

const level = process.env.BENCH_PROXY_LOG ?? 'error';
const config = {
  ...defaultConfig(),
  listen: [{ host: '127.0.0.1', port: 0 }],
  logLevel: isLogLevel(level) ? level : 'error',
  maxConnections: Number(process.argv[2] ?? 4096),
};
const server = new ProxyServer(config, createLogger({ level: config.logLevel }));
const [bound] = await server.listen();
serveParent(bound!.port, { count: () => server.connections.length, close: () => server.close() });
