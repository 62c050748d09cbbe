/**
 * The options: one table (OPTIONS) that is at once the command line's options, the keys the
 * configuration file accepts and the --help text, in --help order; and a right value for each,
 * which error messages offer as an example. The man page and the sample configuration list the
 * same options (a test keeps them equal).
 */
import { LOG_LEVELS } from '../log.js';
import { NETWORKS } from '../networks.js';
import {
  CONFIG_ENV,
  CONFIG_FILE_NAME,
  CORE_SOCKS_TIMEOUT_SECONDS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_INBOUND_HANDSHAKE_RATE,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_INBOUND,
  DEFAULT_MAX_INBOUND_HANDSHAKES,
  DEFAULT_MAX_INBOUND_PER_IP,
  DEFAULT_METRICS,
  DEFAULT_METRICS_PORT,
  DEFAULT_SOCKS_TIMEOUT_MS,
  SAMPLE_CONFIG_FILE,
  SYSTEM_CONFIG_FILE,
} from './defaults.js';

export interface OptionSpec {
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
    help: `only serve this network: ${NETWORKS.map((n) => n.name).join(', ')} (default: any of them, detected from the client's magic, or from an inbound peer's handshake)`,
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

export function isOptionName(name: string): name is OptionName {
  return Object.prototype.hasOwnProperty.call(OPTIONS, name);
}

/**
 * A right value for each option, for error messages ("e.g. ..."); an option missing here falls
 * back to its placeholder.
 */
export const EXAMPLE_VALUES: Partial<Record<OptionName, string>> = {
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
  'log-level': 'debug',
  'log-file': '/var/log/bip324-proxy.log',
  config: SYSTEM_CONFIG_FILE,
};

export function exampleValue(name: string): string {
  if (!isOptionName(name)) return 'VALUE';
  const spec: OptionSpec = OPTIONS[name];
  return EXAMPLE_VALUES[name] ?? spec.arg ?? 'VALUE';
}
