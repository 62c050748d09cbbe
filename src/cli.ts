#!/usr/bin/env node
/**
 * The bip324-proxy executable: parse the configuration, then run the daemon (or `status`).
 *
 * Exit codes: 0 after a clean shutdown (or --help/--version), 1 when the proxy cannot start
 * (a listen address in use, ...) or dies, 2 for a configuration error (like getopt-based tools).
 * Signals follow daemon conventions (Bitcoin Core, Tor): SIGINT/SIGTERM shut down gracefully and a
 * second one exits at once; SIGHUP reopens the log file for logrotate.
 * With --log-file, whatever stops the daemon from starting also goes to standard error: the
 * operator who just ran the command is looking at the terminal, not at the file.
 */

import { readFileSync } from 'node:fs';

import { type HostPort, formatHostPort } from './address.js';
import { HELP_TEXT, describeProxy, loadConfig } from './config/index.js';
import type { Config, ParsedCommand } from './config/index.js';
import { isProxyError } from './errors.js';
import { createLogger, formatFields, isJournalStream } from './log.js';
import type { LogFields, Logger } from './log.js';
import type { MetricsServer } from './metrics.js';

const NAME = 'bip324-proxy';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_CONFIG = 2;

/** Set when the only job was printing to stdout, which must drain before the process ends. */
let printed = false;

/** package.json sits two levels above dist/src/cli.js; read it at run time so the version has one source. */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function fail(message: string, code: number): number {
  process.stderr.write(`${NAME}: ${message}\n`);
  return code;
}

/** Logs an error; until the daemon is up, also on stderr when the log goes to a file. */
type StartupError = (msg: string, fields?: LogFields) => void;

async function run(config: Config, log: Logger, configFile: string | undefined, startupError: StartupError, started: () => void): Promise<number> {
  // Loaded here rather than at the top so --help, --version and config errors never depend on the
  // engine (and its crypto) loading.
  const { ProxyServer } = await import('./engine/server.js');
  const { ecdhBackend } = await import('./crypto/ellswift.js');
  // Metrics observe every connection, so they exist before the server; their HTTP listener
  // starts after the proxy's own listeners.
  const metricsModule = config.metrics === undefined ? undefined : await import('./metrics.js');
  const metrics = metricsModule === undefined ? undefined : new metricsModule.Metrics({ shaping: config.shaping });
  const server = new ProxyServer(config, log, metrics === undefined ? {} : { observer: metrics });
  let metricsServer: MetricsServer | undefined;
  const closeAll = async (): Promise<void> => {
    await Promise.all([server.close(), metricsServer?.close()]);
  };

  log.info('starting', {
    version: packageVersion(),
    config: configFile ?? 'none',
    network: config.network?.name ?? 'any',
    downgrade_guard: config.downgradeGuard,
    upstream_proxy: config.upstreamProxy === undefined ? undefined : describeProxy(config.upstreamProxy),
    onion_proxy: config.onionProxy === undefined ? undefined : describeProxy(config.onionProxy),
    max_connections: config.maxConnections,
    shape: config.shaping?.mode ?? 'off',
    shape_rate: config.shaping?.mode === 'cover' ? config.shaping.rate : undefined,
    // Which code does the handshake's curve arithmetic: 'libsecp256k1' unless WebAssembly is
    // missing (node --jitless), when OpenSSL's makes each connection cost about 1.7 times the CPU.
    ecdh: ecdhBackend(),
  });

  // Handlers go in before listening: a supervisor may signal as soon as it sees the first
  // "listening" line, and a signal without a handler would kill the process mid-startup.
  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // The operator asked twice: do not wait for connections that will not close.
      log.warn('second signal, exiting now', { signal });
      process.exit(EXIT_FAILURE);
    }
    stopping = true;
    log.info('shutting down', { signal });
    closeAll().then(
      () => {
        log.info('stopped');
        finish(EXIT_OK);
      },
      (err: unknown) => {
        log.error('error while shutting down', { reason: err instanceof Error ? err.message : String(err) });
        finish(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => {
    // Logging to stderr there is nothing to reopen, and the man page says SIGHUP then does nothing.
    if (config.logFile === undefined) return;
    log.reopen();
    log.info('log file reopened', { signal: 'SIGHUP' });
  });

  let addresses: HostPort[];
  let listenedProxy = false;
  try {
    addresses = await server.listen();
    listenedProxy = true;
    if (metricsModule !== undefined && metrics !== undefined && config.metrics !== undefined) {
      metricsServer = await metricsModule.startMetricsServer(config.metrics, metrics, () => server.connections, log);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    const where = e.address === undefined ? undefined : formatHostPort({ host: e.address, port: e.port ?? 0 });
    const hint =
      e.code === 'EADDRINUSE'
        ? 'another process is listening there'
        : e.code === 'EADDRNOTAVAIL'
          ? 'no local interface has that address'
          : e.code === 'EACCES'
            ? 'permission denied'
            : undefined;
    // The metrics endpoint is on by default, so its port is the one an operator did not choose.
    const isMetrics = listenedProxy && config.metrics !== undefined;
    startupError('cannot listen', {
      address: where,
      code: e.code,
      reason: hint ?? e.message,
      hint: isMetrics ? 'this is the metrics endpoint: move it with --metrics HOST:PORT (e.g. 127.0.0.1:9325) or turn it off with --metrics off' : undefined,
    });
    await closeAll().catch(() => undefined);
    return EXIT_FAILURE;
  }
  if (stopping) {
    // A signal arrived while binding: listeners bound after close() started must go too.
    await closeAll().catch(() => undefined);
    return done;
  }
  started();
  for (const address of addresses) log.info('listening', { address: formatHostPort(address), mode: 'socks5+legacy' });
  const inbound = (server as { inboundAddresses?: HostPort[] }).inboundAddresses ?? [];
  inbound.forEach((address, i) => {
    const target = config.inbound[i]?.target;
    log.info('listening', { address: formatHostPort(address), mode: 'inbound', target: target === undefined ? undefined : formatHostPort(target) });
  });
  return done;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ParsedCommand;
  try {
    parsed = loadConfig(argv);
  } catch (err) {
    if (isProxyError(err)) return fail(err.message, EXIT_CONFIG);
    throw err;
  }

  switch (parsed.command) {
    case 'help':
      printed = true;
      process.stdout.write(HELP_TEXT);
      return EXIT_OK;
    case 'version':
      printed = true;
      process.stdout.write(`${NAME} ${packageVersion()}\n`);
      return EXIT_OK;
    case 'status': {
      printed = true;
      const { runStatus } = await import('./status.js');
      return runStatus(parsed.config, process.stdout, process.stderr, { full: parsed.full === true });
    }
    case 'run':
      break;
  }

  const config = parsed.config;
  let log: Logger;
  try {
    // Priority prefixes only where journald reads them: not in a file, not on a terminal.
    const journal = config.logFile === undefined && isJournalStream(process.env, 2);
    log = createLogger({
      level: config.logLevel,
      file: config.logFile,
      journal,
      ...(config.logTimestamps === undefined ? {} : { timestamps: config.logTimestamps }),
    });
  } catch (err) {
    if (isProxyError(err)) return fail(err.message, EXIT_CONFIG);
    throw err;
  }
  let starting = true;
  const startupError: StartupError = (msg, fields) => {
    log.error(msg, fields);
    if (starting && config.logFile !== undefined) process.stderr.write(`${NAME}: ${msg}${formatFields(fields)} (log: ${config.logFile})\n`);
  };
  // A daemon's last words belong in its log file, not only on a terminal nobody watches.
  const die =
    (what: string) =>
    (err: unknown): void => {
      startupError(what, { reason: err instanceof Error ? (err.stack ?? err.message).replace(/\n\s*/g, ' | ') : String(err) });
      process.exit(EXIT_FAILURE);
    };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled rejection'));
  return run(config, log, parsed.configFile, startupError, () => {
    starting = false;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    // After a shutdown, exit() rather than waiting for the loop to empty: a timer or socket some
    // module forgot must not keep a stopped daemon alive. Printed output instead gets exitCode,
    // so stdout to a pipe (--help | less) drains first.
    if (printed) process.exitCode = code;
    else process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`${NAME}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT_FAILURE);
  },
);
