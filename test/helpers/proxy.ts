/** Start a ProxyServer on a free loopback port with test-friendly settings, capturing its log lines. */
import { Writable } from 'node:stream';
import type { Config } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { ProxyServer, type ProxyServerOptions } from '../../src/engine/server.js';

export interface TestProxy {
  server: ProxyServer;
  port: number;
  config: Config;
  logs: string[];
  /** Resolves with the first log line that matches. */
  waitLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    downgradeGuard: 'known',
    allowRemote: false,
    logLevel: 'debug',
    maxConnections: 100,
    // Tests open many inbound connections from 127.0.0.1 at once; the tests of these limits set their own.
    inboundLimits: { max: 1000, perIp: 0, handshakes: 1000, handshakeRate: 100_000 },
    timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 2000, idleMs: 60_000 },
    inbound: [],
    ...overrides,
  };
}

export async function startProxy(overrides: Partial<Config> = {}, options: ProxyServerOptions = {}): Promise<TestProxy> {
  const config = testConfig(overrides);
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line !== '') logs.push(line);
      if (process.env.PROXY_TEST_LOG) process.stderr.write(chunk);
      cb();
    },
  });
  const log = createLogger({ level: config.logLevel, stream });
  const server = new ProxyServer(config, log, options);
  await server.listen();
  const port = server.addresses[0]?.port ?? 0;
  return {
    server,
    port,
    config,
    logs,
    async waitLog(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = logs.find((l) => pattern.test(l));
        if (line !== undefined) return line;
        if (Date.now() > deadline) throw new Error(`no log line matching ${pattern}; got:\n${logs.join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: () => server.close(),
  };
}
