/**
 * Command line and configuration file.
 *
 * Follows the Bitcoin Core / Tor operator conventions (reference/prior-art-and-core.md, STYLE.md):
 * an ini file of `key=value` lines whose keys are the long option names, and a command line that
 * wins over the file. Every refusal is a ProxyError ERR_CONFIG whose message names the option (and
 * the file when the value came from it), never a proxy password.
 *
 * The checks that matter for safety live here rather than in the server: a listener on a
 * non-loopback address would be an open proxy (anyone on the network could use this machine to
 * reach arbitrary hosts), so it needs --allow-remote; and --connect-timeout must stay below Bitcoin
 * Core's 20 s SOCKS5 reply timeout (netbase.cpp g_socks5_recv_timeout), or Core would give up on
 * the SOCKS request before we answer it (reference/socks5-and-clients.md section 1.1).
 */

import { existsSync, readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ConfigSyntaxError, parseConfigText } from './config-file.js';
import { DOWNGRADE_GUARDS, type DowngradeGuard } from './engine/fallback.js';
import { DEFAULT_SHAPE_RATE, MAX_SHAPE_RATE, SHAPE_MODES, type ShapeMode, type ShapingOptions } from './engine/shaper.js';
import { ProxyError, isProxyError } from './errors.js';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_INBOUND_HANDSHAKE_RATE,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_INBOUND,
  DEFAULT_MAX_INBOUND_HANDSHAKES,
  DEFAULT_MAX_INBOUND_PER_IP,
  DEFAULT_SOCKS_TIMEOUT_MS,
} from './limits.js';
import { LOG_LEVELS, isLogLevel } from './log.js';
import type { LogLevel } from './log.js';
import { NETWORKS, customNetwork, networkByName } from './networks.js';
import type { Network } from './networks.js';
import { formatHostPort, makeDestination } from './socks5/address.js';
import { parseProxyUrl, redactProxySecret } from './upstream/dialer.js';
import type { ProxyEndpoint } from './upstream/dialer.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface InboundRule {
  listen: HostPort;
  target: HostPort;
}

export interface Config {
  /** default [{host:'127.0.0.1', port:1324}] */
  listen: HostPort[];
  /** --network or --magic; undefined = accept any known network, detected from the client's magic */
  network?: Network;
  /** When a v2 attempt that failed like a v1 peer's may fall back to v1 (engine/fallback.ts). */
  downgradeGuard: DowngradeGuard;
  /** Where the table of peers known to speak v2 is kept across restarts. */
  v2PeersFile?: string;
  upstreamProxy?: ProxyEndpoint;
  /** default: upstreamProxy */
  onionProxy?: ProxyEndpoint;
  allowRemote: boolean;
  logLevel: LogLevel;
  logFile?: string;
  /** --log-timestamps / --no-log-timestamps; undefined = on, except when stderr is the systemd journal */
  logTimestamps?: boolean;
  /** Local clients (SOCKS5, legacy); inbound peers have their own limits. */
  maxConnections: number;
  inboundLimits: { max: number; perIp: number; handshakes: number; handshakeRate: number };
  timeouts: { socksMs: number; connectMs: number; handshakeMs: number; idleMs: number };
  /** --inbound LISTEN=TARGET (repeatable) */
  inbound: InboundRule[];
  /** --metrics HOST:PORT; default 127.0.0.1:9324, undefined after --metrics off */
  metrics?: HostPort;
  /** --shape and --shape-rate (engine/shaper.ts); undefined = off */
  shaping?: ShapingOptions;
}

export type Command = 'run' | 'status' | 'help' | 'version';

export interface ParsedCommand {
  command: Command;
  config: Config;
  /** The configuration file that was read, if any (--config, BIP324_PROXY_CONFIG or the default lookup). */
  configFile?: string;
  /** status --full: whole session ids */
  full?: boolean;
}

/** The proxy's default port: the one the earlier BIP324 proxies (theStack, rust-bitcoin) used. */
export const DEFAULT_PORT = 1324;
export const DEFAULT_LISTEN: HostPort = { host: '127.0.0.1', port: DEFAULT_PORT };
/** Environment variable naming a configuration file when --config is not given. */
export const CONFIG_ENV = 'BIP324_PROXY_CONFIG';
/** The file name looked for under $XDG_CONFIG_HOME/bip324-proxy/ and /etc/bip324-proxy/. */
export const CONFIG_FILE_NAME = 'bip324-proxy.conf';
/** The system-wide configuration file, last in the lookup (the systemd unit relies on it). */
export const SYSTEM_CONFIG_FILE = `/etc/bip324-proxy/${CONFIG_FILE_NAME}`;
/** The commented sample shipped in the package (conf/ next to dist/), printed by --help. */
export const SAMPLE_CONFIG_FILE = fileURLToPath(new URL(`../../conf/${CONFIG_FILE_NAME}`, import.meta.url));
/**
 * The metrics endpoint, on by default so `status` works out of the box. 9324 is clear of the ports
 * a node operator already runs: Bitcoin Core's P2P and RPC (8332-8334, 18332-18445, 38332-38334,
 * 48332-48334) and its conventional ZMQ ports (28332-28334), Tor's (9050, 9051, 9150, 9151),
 * lnd and Core Lightning (9735, 10009), electrs and Fulcrum (4224, 50001, 50002).
 */
export const DEFAULT_METRICS_PORT = 9324;
export const DEFAULT_METRICS: HostPort = { host: '127.0.0.1', port: DEFAULT_METRICS_PORT };

/**
 * Bitcoin Core reads the SOCKS5 CONNECT reply with a 20 s timeout (netbase.cpp g_socks5_recv_timeout);
 * a dial allowed to take that long would answer a client that has already given up.
 */
export const CORE_SOCKS_TIMEOUT_SECONDS = 20;
/** setTimeout stores delays in a signed 32-bit int; anything larger fires after 1 ms instead. */
const MAX_TIMER_SECONDS = Math.floor(0x7fffffff / 1000);

interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** The value's placeholder in --help. */
  arg?: string;
  help: string;
  /** Options that make no sense in the file itself (config, help, version). */
  cliOnly?: boolean;
  short?: string;
}

/** Every option, in --help order; also the set of keys the configuration file accepts. */
export const OPTIONS = {
  listen: {
    type: 'string',
    multiple: true,
    arg: 'HOST:PORT',
    help: 'accept clients here, SOCKS5 and legacy v1 on the same port; repeatable; IPv6 in brackets, e.g. [::1]:1324 (default 127.0.0.1:1324)',
  },
  network: {
    type: 'string',
    arg: 'NAME',
    help: `only serve this network: ${NETWORKS.map((n) => n.name).join(', ')} (default: any of them, detected from the client's magic)`,
  },
  magic: {
    type: 'string',
    arg: 'HEX8',
    help: 'network magic as 8 hex digits in wire order, for a custom signet; wins over --network',
  },
  'downgrade-guard': {
    type: 'string',
    arg: 'off|known|all',
    help: 'when a remote fails the v2 handshake the way a v1-only peer does (closes or resets before its first byte), reconnect with plaintext v1: off = always, like Bitcoin Core; known = unless the peer is known to speak v2 (it did a v2 handshake with us, or is gossiped with NODE_P2P_V2), so an attacker on the path cannot force plaintext on it; all = never (default known)',
  },
  'v2-peers-file': {
    type: 'string',
    arg: 'FILE',
    help: 'keep the table of peers known to speak v2 in FILE, so that the downgrade guard remembers them across restarts (default: in memory only)',
  },
  'v2-only': {
    type: 'boolean',
    help: 'never fall back to v1 when the remote peer does not speak BIP324: the same as --downgrade-guard all',
  },
  'upstream-proxy': {
    type: 'string',
    arg: 'URL',
    help: 'send every outbound connection through this SOCKS5 proxy, e.g. socks5://127.0.0.1:9050 for Tor; socks5://user:pass@host:port; socks5h:// means the same (host names always go to the proxy) and the scheme may be left out (default: connect directly)',
  },
  'onion-proxy': {
    type: 'string',
    arg: 'URL',
    help: 'SOCKS5 proxy for .onion destinations only (default: --upstream-proxy; without either, .onion is refused)',
  },
  'allow-remote': {
    type: 'boolean',
    help: 'allow --listen, --inbound and --metrics on non-loopback addresses (an open proxy is a hazard)',
  },
  'max-connections': {
    type: 'string',
    arg: 'N',
    help: `refuse local clients (SOCKS5, legacy) beyond this many concurrent connections; inbound peers have their own limits (default ${DEFAULT_MAX_CONNECTIONS})`,
  },
  'max-inbound': {
    type: 'string',
    arg: 'N',
    help: `inbound mode: refuse peers beyond this many concurrent connections, so they never take the local clients' slots (default ${DEFAULT_MAX_INBOUND})`,
  },
  'max-inbound-per-ip': {
    type: 'string',
    arg: 'N',
    help: `inbound mode: at most this many peers from one IPv4 address or IPv6 /64; 0 for no cap, e.g. behind a Tor onion service, where every peer comes from 127.0.0.1 (default ${DEFAULT_MAX_INBOUND_PER_IP})`,
  },
  'max-inbound-handshakes': {
    type: 'string',
    arg: 'N',
    help: `inbound mode: BIP324 handshakes in progress at once (each costs milliseconds of CPU); further peers are refused until one finishes (default ${DEFAULT_MAX_INBOUND_HANDSHAKES})`,
  },
  'inbound-handshake-rate': {
    type: 'string',
    arg: 'N',
    help: `inbound mode: new handshakes per second on average, in bursts of up to twice that; peers above it are refused (default ${DEFAULT_INBOUND_HANDSHAKE_RATE})`,
  },
  'socks-timeout': {
    type: 'string',
    arg: 'SECONDS',
    help: `a client must finish its SOCKS5 request within this time (default ${DEFAULT_SOCKS_TIMEOUT_MS / 1000})`,
  },
  'connect-timeout': {
    type: 'string',
    arg: 'SECONDS',
    help: `give up connecting to the remote peer after this time; must be below ${CORE_SOCKS_TIMEOUT_SECONDS}, Bitcoin Core's SOCKS5 timeout (default ${DEFAULT_CONNECT_TIMEOUT_MS / 1000})`,
  },
  'handshake-timeout': {
    type: 'string',
    arg: 'SECONDS',
    help: `the BIP324 handshake with the remote must finish within this time; a silent remote is then taken for a v1 peer (default ${DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000})`,
  },
  'idle-timeout': {
    type: 'string',
    arg: 'SECONDS',
    help: `close a connection with no bytes in either direction for this long (default ${DEFAULT_IDLE_TIMEOUT_MS / 1000}, Bitcoin Core's 20 minutes)`,
  },
  shape: {
    type: 'string',
    arg: 'off|pad|cover',
    help: 'traffic shaping of what the proxy encrypts, against an observer who reads packet sizes and times: pad = decoy packets round each burst up to a size class; cover = coarser classes, and decoy bursts at random moments while a connection is idle, --shape-rate bytes per second (default off; see TRAFFIC SHAPING in bip324-proxy(1))',
  },
  'shape-rate': {
    type: 'string',
    arg: 'BYTES',
    help: `with --shape cover: average bytes per second of cover on each v2 connection (default ${DEFAULT_SHAPE_RATE}, at most ${MAX_SHAPE_RATE})`,
  },
  inbound: {
    type: 'string',
    multiple: true,
    arg: 'LISTEN=TARGET',
    help: 'accept inbound peers on LISTEN (BIP324, or v1 passed through) and forward them as v1 to TARGET, e.g. a local node\'s P2P port; repeatable',
  },
  metrics: {
    type: 'string',
    arg: 'HOST:PORT',
    help: `serve Prometheus metrics and the live connections (for status) at http://HOST:PORT/, or off (default ${DEFAULT_METRICS.host}:${DEFAULT_METRICS_PORT}); for status, the proxy to ask`,
  },
  'log-level': {
    type: 'string',
    arg: 'LEVEL',
    help: `${LOG_LEVELS.join(', ')} (default info)`,
  },
  'log-file': {
    type: 'string',
    arg: 'FILE',
    help: 'append the log to FILE, reopened on SIGHUP (default: standard error)',
  },
  'log-timestamps': {
    type: 'boolean',
    help: 'start each log line with its time (default: on, except when standard error is the systemd journal, which stamps lines itself)',
  },
  config: {
    type: 'string',
    arg: 'FILE',
    help: 'read options from this ini file first; the command line wins (default: see "Configuration file" below)',
    cliOnly: true,
  },
  full: {
    type: 'boolean',
    help: 'status: print whole session ids, not their first 16 hex digits',
    cliOnly: true,
  },
  help: { type: 'boolean', help: 'print this help and exit', cliOnly: true, short: 'h' },
  version: { type: 'boolean', help: 'print the version and exit', cliOnly: true },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** Greedy word wrap, so --help reads on an 80-column terminal. */
function wrap(text: string, indent: number, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(' '.repeat(indent) + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(' '.repeat(indent) + line);
  return lines;
}

function buildHelp(): string {
  const lines = [
    'Usage: bip324-proxy [options]',
    '       bip324-proxy status [--metrics HOST:PORT] [--full]',
    '',
    ...wrap(
      "Gives Bitcoin P2P clients BIP324 (v2 encrypted transport). Point a client's SOCKS5 proxy at the listen address (bitcoind -proxy=127.0.0.1:1324), or redirect its v1 connections to it (legacy mode). Clients that already speak v2 are passed through.",
      0,
      80,
    ),
    '',
    'Options:',
  ];
  for (const [name, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    const left = `  ${spec.short === undefined ? '' : `-${spec.short}, `}--${name}${spec.arg === undefined ? '' : ` ${spec.arg}`}`;
    lines.push(left, ...wrap(spec.help, 8, 80));
  }
  lines.push(
    '',
    ...wrap(
      'On/off options can be negated: --no-v2-only undoes v2-only=1 from the configuration file. Every option except config, full, help and version can be set in the configuration file as name=value (listen=127.0.0.1:1324, v2-only=1). See bip324-proxy(1).',
      0,
      80,
    ),
    '',
    ...wrap(
      `Configuration file, when --config is not given: the file named by $${CONFIG_ENV}, else $XDG_CONFIG_HOME/bip324-proxy/${CONFIG_FILE_NAME} (XDG_CONFIG_HOME defaults to ~/.config), else ${SYSTEM_CONFIG_FILE}, else none. A commented sample with every key and its default:`,
      0,
      80,
    ),
    `  ${SAMPLE_CONFIG_FILE}`,
    '',
  );
  return lines.join('\n');
}

export const HELP_TEXT: string = buildHelp();

export function defaultConfig(): Config {
  return {
    listen: [{ ...DEFAULT_LISTEN }],
    downgradeGuard: 'known',
    allowRemote: false,
    logLevel: 'info',
    maxConnections: DEFAULT_MAX_CONNECTIONS,
    inboundLimits: {
      max: DEFAULT_MAX_INBOUND,
      perIp: DEFAULT_MAX_INBOUND_PER_IP,
      handshakes: DEFAULT_MAX_INBOUND_HANDSHAKES,
      handshakeRate: DEFAULT_INBOUND_HANDSHAKE_RATE,
    },
    metrics: { ...DEFAULT_METRICS },
    timeouts: {
      socksMs: DEFAULT_SOCKS_TIMEOUT_MS,
      connectMs: DEFAULT_CONNECT_TIMEOUT_MS,
      handshakeMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
      idleMs: DEFAULT_IDLE_TIMEOUT_MS,
    },
    inbound: [],
  };
}

function configError(message: string): ProxyError {
  return new ProxyError('ERR_CONFIG', message);
}

/** "host:port", with IPv6 in brackets so the result parses back with parseHostPort. */
export function formatAddress(hp: HostPort): string {
  return formatHostPort(hp.host, hp.port);
}

/** "socks5://user:***@host:port" for logs: never the password. */
export function describeProxy(proxy: ProxyEndpoint): string {
  const user = proxy.username === undefined ? '' : `${encodeURIComponent(proxy.username)}:***@`;
  return `socks5://${user}${formatAddress(proxy)}`;
}

const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/**
 * "127.0.0.1:1324", "[::1]:1324", "localhost:1324", or a host alone when defaultPort is given.
 * Port 0 is accepted (a listener on any free port); callers that dial refuse it themselves.
 * A bare IPv6 address is refused even with a default port: "::1:1324" is itself a valid address,
 * so guessing would silently pick the wrong one.
 */
export function parseHostPort(text: string, defaultPort?: number): HostPort {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw configError(`'${text}' is missing the ']' after the IPv6 address`);
    host = text.slice(1, end);
    if (!isIPv6(host)) throw configError(`'${text}': '${host}' is not an IPv6 address`);
    const rest = text.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) throw configError(`'${text}' is not [IPV6]:PORT`);
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon !== text.indexOf(':')) {
      throw configError(`'${text}': put an IPv6 address in brackets, e.g. [::1]:${defaultPort ?? DEFAULT_PORT}`);
    }
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (colon < 0 && /^[0-9]+$/.test(text)) throw configError(`'${text}' is a port without a host`);
    if (host === '') throw configError(`'${text}' has no host`);
    if (!isIPv4(host)) {
      if (/^[0-9.]+$/.test(host)) throw configError(`'${text}': '${host}' is not an IPv4 address`);
      if (host.length > 253 || !HOSTNAME.test(host)) throw configError(`'${text}': '${host}' is not a host name or IP address`);
    }
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw configError(`'${text}' has no port (HOST:PORT)`);
    port = defaultPort;
  } else {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw configError(`'${text}': port '${portText}' is not a number from 0 to 65535`);
    }
    port = Number(portText);
  }
  return { host, port };
}

/** 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and "localhost": addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const lower = h.toLowerCase();
  if (lower === 'localhost' || lower === 'localhost.') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (!isIPv6(h)) return false;
  let canonical: string;
  try {
    // The WHATWG URL parser compresses and lower-cases IPv6 (and rewrites ::ffff:127.0.0.1 to
    // ::ffff:7f00:1), so every spelling of the same address compares equal.
    canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1);
  } catch {
    return false; // zone ids (fe80::1%eth0) are link-local, never loopback
  }
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

// ---------------------------------------------------------------------------------------------
// Raw values: what the command line and the file said, before interpretation.

type RawValue = string | boolean | string[];

interface RawSource {
  values: Map<OptionName, RawValue>;
  /** How an error names an option from this source: "--listen" or "listen (in FILE)". */
  label(name: OptionName): string;
}

function isOptionName(name: string): name is OptionName {
  return Object.prototype.hasOwnProperty.call(OPTIONS, name);
}

function parseCommandLine(argv: string[]): { source: RawSource; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    options[name] = { type: spec.type, ...(spec.multiple === true ? { multiple: true } : {}), ...(spec.short === undefined ? {} : { short: spec.short }) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    // allowNegative: --no-v2-only undoes v2-only=1 from the file, since the command line wins.
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, allowNegative: true });
  } catch (err) {
    // Only the user's mistakes become ERR_CONFIG; anything else is a bug here and must show as one.
    if (!String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) throw err;
    throw configError(describeParseArgsError(err, argv));
  }
  const values = new Map<OptionName, RawValue>();
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === undefined || !isOptionName(name)) continue;
    const spec: OptionSpec = OPTIONS[name];
    if (spec.type === 'boolean' && typeof value !== 'boolean') continue;
    values.set(name, Array.isArray(value) ? value.map(String) : value);
  }
  return { source: { values, label: (name) => `--${name}` }, positionals: parsed.positionals };
}

/**
 * A right value for each option, for error messages ("e.g. ..."); an option missing here falls
 * back to its placeholder.
 */
const EXAMPLE_VALUES: Partial<Record<OptionName, string>> = {
  listen: '127.0.0.1:1324',
  network: 'signet',
  magic: '0a03cf40',
  'upstream-proxy': 'socks5://127.0.0.1:9050',
  'onion-proxy': 'socks5://127.0.0.1:9050',
  'max-connections': String(DEFAULT_MAX_CONNECTIONS),
  'max-inbound': String(DEFAULT_MAX_INBOUND),
  'max-inbound-per-ip': String(DEFAULT_MAX_INBOUND_PER_IP),
  'max-inbound-handshakes': String(DEFAULT_MAX_INBOUND_HANDSHAKES),
  'inbound-handshake-rate': String(DEFAULT_INBOUND_HANDSHAKE_RATE),
  'socks-timeout': '10',
  'connect-timeout': '15',
  'handshake-timeout': '10',
  'idle-timeout': '1200',
  inbound: '0.0.0.0:8333=127.0.0.1:8334',
  metrics: '127.0.0.1:9324',
  shape: 'pad',
  'shape-rate': String(DEFAULT_SHAPE_RATE),
  'log-level': 'debug',
  'log-file': '/var/log/bip324-proxy.log',
  config: SYSTEM_CONFIG_FILE,
};

function exampleValue(name: string): string {
  if (!isOptionName(name)) return 'VALUE';
  const spec: OptionSpec = OPTIONS[name];
  return EXAMPLE_VALUES[name] ?? spec.arg ?? 'VALUE';
}

/** parseArgs messages suggest "--" tricks that do not apply here; keep ours short and naming the option. */
function describeParseArgsError(err: unknown, argv: string[]): string {
  const e = err as { code?: string; message?: string };
  const quoted = /'([^']*)'/.exec(e.message ?? '')?.[1] ?? '';
  const option = quoted.split(' ')[0] ?? quoted;
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = option.replace(/^-+/, '').replace(/^no-/, '');
      if (option.startsWith('--no-') && isOptionName(name) && OPTIONS[name].type === 'string') {
        return `${option}: only on/off options can be negated`;
      }
      return `unknown option ${option} (see --help)`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument is ambiguous/.test(e.message ?? '')) {
        // parseArgs refuses "--max-connections -5": the value looks like the next option.
        const next = argv[argv.indexOf(option) + 1] ?? '';
        const example = `${option} ${exampleValue(option.replace(/^-+/, ''))}`;
        return `${option}: '${next}' looks like an option, not a value; e.g. ${example} (write ${option}=${next} for a value that starts with a dash)`;
      }
      if (/argument missing/.test(e.message ?? '')) return `${option} needs a value`;
      if (/does not take an argument/.test(e.message ?? '')) return `${option} does not take a value`;
      return `${option}: ${e.message ?? 'invalid value'}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument '${option}' (see --help)`;
    default:
      return e.message ?? String(err);
  }
}

function readConfigFile(file: string, optionLabel: string): RawSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw configError(`${optionLabel}: cannot read ${file} (${reason})`);
  }
  let lines;
  try {
    lines = parseConfigText(text);
  } catch (err) {
    if (err instanceof ConfigSyntaxError) throw configError(`config file ${file}, line ${err.line}: ${err.message}`);
    throw err;
  }
  // Repeated keys are collected in file order, so `listen=` twice works like --listen twice.
  const collected = new Map<string, { items: (string | true)[]; line: number }>();
  for (const { key, value, line } of lines) {
    const entry = collected.get(key) ?? { items: [], line };
    entry.items.push(value);
    collected.set(key, entry);
  }
  const values = new Map<OptionName, RawValue>();
  const where = `config file ${file}`;
  for (const [key, { items, line }] of collected) {
    if (!isOptionName(key) || (OPTIONS[key] as OptionSpec).cliOnly === true) {
      const hint = isOptionName(key) ? `${key} is only a command-line option` : `unknown key '${key}'`;
      throw configError(`${where}, line ${line}: ${hint} (keys are the long option names without dashes, e.g. listen=127.0.0.1:1324)`);
    }
    const label = `${key} (in ${file})`;
    const spec: OptionSpec = OPTIONS[key];
    if (spec.type === 'boolean') {
      if (items.length > 1) throw configError(`${label} is given more than once`);
      values.set(key, parseFileBoolean(label, items[0]));
      continue;
    }
    const strings = items.map((item) => {
      // A bare "key" line is an on/off switch; a string option needs "key=value".
      if (typeof item !== 'string' || item === '') throw configError(`${label} needs a value (${key}=${spec.arg ?? 'VALUE'})`);
      return item;
    });
    if (spec.multiple === true) values.set(key, strings);
    else {
      if (strings.length > 1) throw configError(`${label} is given more than once`);
      values.set(key, strings[0] as string);
    }
  }
  return { values, label: (name) => `${name} (in ${file})` };
}

function parseFileBoolean(label: string, value: unknown): boolean {
  if (value === true || value === false) return value;
  if (typeof value === 'string') {
    const v = value.toLowerCase();
    if (v === '1' || v === 'true' || v === 'yes' || v === 'on') return true;
    if (v === '0' || v === 'false' || v === 'no' || v === 'off') return false;
  }
  throw configError(`${label} must be 1 or 0 (true/false, yes/no, on/off), not '${String(value)}'`);
}

// ---------------------------------------------------------------------------------------------
// Interpretation.

/** Both sources merged: the command line's value if it has one, else the file's. */
class Merged {
  constructor(
    private readonly cli: RawSource,
    private readonly file: RawSource | undefined,
  ) {}

  private pick(name: OptionName): { value: RawValue; label: string } | undefined {
    const fromCli = this.cli.values.get(name);
    if (fromCli !== undefined) return { value: fromCli, label: this.cli.label(name) };
    const fromFile = this.file?.values.get(name);
    if (fromFile !== undefined && this.file !== undefined) return { value: fromFile, label: this.file.label(name) };
    return undefined;
  }

  string(name: OptionName): { value: string; label: string } | undefined {
    const p = this.pick(name);
    return p === undefined || typeof p.value !== 'string' ? undefined : { value: p.value, label: p.label };
  }

  list(name: OptionName): { value: string[]; label: string } | undefined {
    const p = this.pick(name);
    return p === undefined || !Array.isArray(p.value) ? undefined : { value: p.value, label: p.label };
  }

  flag(name: OptionName): boolean {
    return this.pick(name)?.value === true;
  }

  /** An on/off option that means something different when given neither way. */
  optionalFlag(name: OptionName): boolean | undefined {
    const value = this.pick(name)?.value;
    return typeof value === 'boolean' ? value : undefined;
  }
}

/** Re-labels a parse error with the option it came from, and a right value when one is given. */
function withLabel<T>(label: string, fn: () => T, example?: string): T {
  try {
    return fn();
  } catch (err) {
    if (isProxyError(err)) throw configError(`${label}: ${err.message}${example === undefined ? '' : `; e.g. ${example}`}`);
    throw err;
  }
}

/**
 * How to allow a non-loopback address, in the words of the source the address came from: a file
 * value is fixed in the file ("allow-remote=1"), a command-line value with --allow-remote.
 */
function allowRemoteHint(label: string): string {
  const file = /^[a-z0-9-]+ \(in (.+)\)$/.exec(label)?.[1];
  return file === undefined ? '--allow-remote' : `allow-remote=1 in ${file}`;
}

/** A whole number of at least `min`; the default doubles as the example of a right value. */
function parseCount(opt: { value: string; label: string } | undefined, defaultValue: number, min: number): number {
  if (opt === undefined) return defaultValue;
  const n = Number(opt.value);
  if (!/^[0-9]+$/.test(opt.value) || !Number.isSafeInteger(n) || n < min) {
    throw configError(`${opt.label}: '${opt.value}' is not a whole number of at least ${min}; e.g. ${defaultValue}`);
  }
  return n;
}

function parseSeconds(opt: { value: string; label: string } | undefined, defaultMs: number, belowSeconds?: number): number {
  if (opt === undefined) return defaultMs;
  const { value, label } = opt;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value)) throw configError(`${label}: '${value}' is not a number of seconds`);
  const seconds = Number(value);
  if (seconds <= 0) throw configError(`${label}: must be more than 0 seconds`);
  if (belowSeconds !== undefined && seconds >= belowSeconds) {
    throw configError(
      `${label} ${value}: must be below ${belowSeconds} seconds, because Bitcoin Core gives up on a SOCKS5 CONNECT reply after ${belowSeconds} s and would never see a slower answer`,
    );
  }
  if (seconds > MAX_TIMER_SECONDS) throw configError(`${label}: at most ${MAX_TIMER_SECONDS} seconds`);
  return Math.max(1, Math.round(seconds * 1000));
}

function parseProxyOption(opt: { value: string; label: string } | undefined): ProxyEndpoint | undefined {
  if (opt === undefined) return undefined;
  try {
    return parseProxyUrl(opt.value);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    // No `cause`: the original error may quote the URL with its password.
    throw configError(`${opt.label}: ${redactProxySecret(reason, opt.value)}`);
  }
}

function interpret(merged: Merged, command: Command): Config {
  const config = defaultConfig();

  const network = merged.string('network');
  if (network !== undefined) {
    const net = networkByName(network.value);
    if (net === undefined) {
      throw configError(`${network.label}: unknown network '${network.value}' (one of ${NETWORKS.map((n) => n.name).join(', ')})`);
    }
    config.network = net;
  }
  const magic = merged.string('magic');
  if (magic !== undefined) {
    const hex = magic.value.replace(/^0x/i, '');
    if (!/^[0-9a-fA-F]{8}$/.test(hex)) {
      throw configError(`${magic.label}: '${magic.value}' is not 8 hex digits (the 4 message-start bytes in wire order, e.g. 0a03cf40)`);
    }
    config.network = customNetwork(hex.toLowerCase());
  }
  // Inbound targets are peers' P2P ports, so the network's port is the natural default there.
  const p2pPort = config.network?.port;

  const guard = merged.string('downgrade-guard');
  if (guard !== undefined && !(DOWNGRADE_GUARDS as readonly string[]).includes(guard.value)) {
    throw configError(`${guard.label}: '${guard.value}' is not one of ${DOWNGRADE_GUARDS.join(', ')} (e.g. --downgrade-guard known)`);
  }
  const v2Only = merged.flag('v2-only');
  if (v2Only && guard !== undefined && guard.value !== 'all') {
    throw configError(`--v2-only is --downgrade-guard all; it contradicts ${guard.label} ${guard.value}`);
  }
  config.downgradeGuard = v2Only ? 'all' : ((guard?.value as DowngradeGuard | undefined) ?? 'known');
  const peersFile = merged.string('v2-peers-file');
  if (peersFile !== undefined) config.v2PeersFile = peersFile.value;
  config.allowRemote = merged.flag('allow-remote');

  const listen = merged.list('listen');
  if (listen !== undefined) {
    config.listen = listen.value.map((text) => withLabel(listen.label, () => parseHostPort(text, DEFAULT_PORT), EXAMPLE_VALUES.listen));
  }

  const inbound = merged.list('inbound');
  if (inbound !== undefined) {
    config.inbound = inbound.value.map((text) =>
      withLabel(inbound.label, () => {
        const eq = text.indexOf('=');
        if (eq < 0) throw configError(`'${text}' is not LISTEN=TARGET`);
        if (eq === 0) throw configError(`'${text}' has no LISTEN address before the '='`);
        if (eq === text.length - 1) throw configError(`'${text}' has no TARGET address after the '='`);
        const rule = { listen: parseHostPort(text.slice(0, eq), p2pPort), target: parseHostPort(text.slice(eq + 1), p2pPort) };
        if (rule.target.port === 0) throw configError(`'${text}': the target needs a port from 1 to 65535`);
        // The same rules as when a peer connects and the target is dialed: a target that would fail
        // there must fail here, at start-up, not on the first peer.
        let kind;
        try {
          kind = makeDestination(rule.target.host, rule.target.port).kind;
        } catch (err) {
          throw configError(`'${text}': the target cannot be dialed: ${(err as Error).message}`);
        }
        if (kind === 'onion') throw configError(`'${text}': the target must be the node's own address, not an onion service`);
        return rule;
      }, EXAMPLE_VALUES.inbound),
    );
  }

  const metrics = merged.string('metrics');
  if (metrics?.value === 'off') delete config.metrics;
  else if (metrics !== undefined) config.metrics = withLabel(metrics.label, () => parseHostPort(metrics.value), `${EXAMPLE_VALUES.metrics}, or off`);

  const upstreamProxy = parseProxyOption(merged.string('upstream-proxy'));
  const onionProxy = parseProxyOption(merged.string('onion-proxy')) ?? upstreamProxy;
  if (upstreamProxy !== undefined) config.upstreamProxy = upstreamProxy;
  if (onionProxy !== undefined) config.onionProxy = onionProxy;

  const level = merged.string('log-level');
  if (level !== undefined) {
    if (!isLogLevel(level.value)) throw configError(`${level.label}: '${level.value}' is not one of ${LOG_LEVELS.join(', ')}`);
    config.logLevel = level.value;
  }
  const logFile = merged.string('log-file');
  if (logFile?.value === '') throw configError(`${logFile.label}: the file name is empty; e.g. ${EXAMPLE_VALUES['log-file']}`);
  if (logFile !== undefined) config.logFile = logFile.value;
  const timestamps = merged.optionalFlag('log-timestamps');
  if (timestamps !== undefined) config.logTimestamps = timestamps;

  config.maxConnections = parseCount(merged.string('max-connections'), DEFAULT_MAX_CONNECTIONS, 1);
  config.inboundLimits = {
    max: parseCount(merged.string('max-inbound'), DEFAULT_MAX_INBOUND, 1),
    perIp: parseCount(merged.string('max-inbound-per-ip'), DEFAULT_MAX_INBOUND_PER_IP, 0),
    handshakes: parseCount(merged.string('max-inbound-handshakes'), DEFAULT_MAX_INBOUND_HANDSHAKES, 1),
    handshakeRate: parseCount(merged.string('inbound-handshake-rate'), DEFAULT_INBOUND_HANDSHAKE_RATE, 1),
  };

  config.timeouts = {
    socksMs: parseSeconds(merged.string('socks-timeout'), DEFAULT_SOCKS_TIMEOUT_MS),
    connectMs: parseSeconds(merged.string('connect-timeout'), DEFAULT_CONNECT_TIMEOUT_MS, CORE_SOCKS_TIMEOUT_SECONDS),
    handshakeMs: parseSeconds(merged.string('handshake-timeout'), DEFAULT_HANDSHAKE_TIMEOUT_MS),
    idleMs: parseSeconds(merged.string('idle-timeout'), DEFAULT_IDLE_TIMEOUT_MS),
  };

  const shape = merged.string('shape');
  if (shape !== undefined && !(SHAPE_MODES as readonly string[]).includes(shape.value)) {
    throw configError(`${shape.label}: '${shape.value}' is not one of ${SHAPE_MODES.join(', ')} (e.g. --shape pad)`);
  }
  const rate = parseCount(merged.string('shape-rate'), DEFAULT_SHAPE_RATE, 1);
  if (rate > MAX_SHAPE_RATE) throw configError(`${merged.string('shape-rate')!.label}: at most ${MAX_SHAPE_RATE} bytes per second; e.g. ${DEFAULT_SHAPE_RATE}`);
  if (shape !== undefined && shape.value !== 'off') config.shaping = { mode: shape.value as ShapeMode, rate };

  // `status` only dials the metrics address, so listening rules do not apply to it.
  if (command === 'run' && !config.allowRemote) {
    const refuse = (label: string, hp: HostPort, what: string, example: string): never => {
      throw configError(
        `${label} ${formatAddress(hp)}: not a loopback address; ${what} on it would be reachable from the network. Use a loopback address (e.g. ${example}), or ${allowRemoteHint(label)} if that is intended`,
      );
    };
    for (const hp of config.listen) if (!isLoopback(hp.host)) refuse(listen?.label ?? '--listen', hp, 'an open proxy', `127.0.0.1:${hp.port}`);
    for (const rule of config.inbound) {
      if (!isLoopback(rule.listen.host)) refuse(inbound?.label ?? '--inbound', rule.listen, 'an inbound listener', `127.0.0.1:${rule.listen.port}`);
    }
    if (config.metrics !== undefined && !isLoopback(config.metrics.host)) {
      refuse(metrics?.label ?? '--metrics', config.metrics, 'the metrics endpoint', `127.0.0.1:${config.metrics.port}`);
    }
  }
  return config;
}

/**
 * Parse argv (without node and script) and the optional --config ini file; the command line wins over the file.
 * Throws ProxyError ERR_CONFIG with a clear message naming the option.
 */
/**
 * Where to look for a configuration file when neither --config nor $BIP324_PROXY_CONFIG names one,
 * in order: the user's ($XDG_CONFIG_HOME, or ~/.config, per the XDG Base Directory specification,
 * which ignores a relative XDG_CONFIG_HOME), then the system's.
 */
export function defaultConfigFiles(env: NodeJS.ProcessEnv, systemFile: string = SYSTEM_CONFIG_FILE): string[] {
  const xdg = env.XDG_CONFIG_HOME;
  const home = env.HOME;
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : home !== undefined && isAbsolute(home) ? join(home, '.config') : undefined;
  return [...(base === undefined ? [] : [join(base, 'bip324-proxy', CONFIG_FILE_NAME)]), systemFile];
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, systemFile: string = SYSTEM_CONFIG_FILE): ParsedCommand {
  const { source: cli, positionals } = parseCommandLine(argv);

  let command: Command = 'run';
  if (positionals.length > 0) {
    if (positionals[0] !== 'status') throw configError(`unknown command '${positionals[0]}' (the only command is status; see --help)`);
    if (positionals.length > 1) throw configError(`unexpected argument '${positionals[1]}' after status`);
    command = 'status';
  }
  // Help and version must work whatever else is broken, so nothing else is read.
  if (cli.values.get('help') === true) return { command: 'help', config: defaultConfig() };
  if (cli.values.get('version') === true) return { command: 'version', config: defaultConfig() };

  const full = cli.values.get('full') === true;
  if (full && command !== 'status') throw configError('--full only applies to status: bip324-proxy status --full');

  // An explicit file must exist; the default places are only read when something is there.
  const fromCli = cli.values.get('config');
  if (fromCli === '') throw configError(`--config: the file name is empty; e.g. ${EXAMPLE_VALUES.config}`);
  let configFile: string | undefined;
  let label = '--config';
  if (typeof fromCli === 'string') {
    configFile = fromCli;
  } else if (env[CONFIG_ENV]) {
    configFile = env[CONFIG_ENV];
    label = CONFIG_ENV;
  } else {
    configFile = defaultConfigFiles(env, systemFile).find((candidate) => existsSync(candidate));
    label = 'configuration file';
  }
  const file = configFile === undefined ? undefined : readConfigFile(configFile, label);

  const config = interpret(new Merged(cli, file), command);
  return { command, config, ...(configFile === undefined ? {} : { configFile }), ...(full ? { full } : {}) };
}
