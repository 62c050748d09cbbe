/**
 * Interpretation: from the raw values of both sources (sources.ts) to a Config, the command line's
 * value winning over the file's. Each option's rules are here, and every refusal is a ProxyError
 * ERR_CONFIG whose message names the option as the operator wrote it (and the file when the value
 * came from it), says what is wrong and offers a right value, never a proxy password.
 *
 * The checks that matter for safety live here rather than in the server: a listener on a
 * non-loopback address would be an open proxy (anyone on the network could use this machine to
 * reach arbitrary hosts), so it needs --allow-remote; and --connect-timeout must stay below Bitcoin
 * Core's 20 s SOCKS5 reply timeout (netbase.cpp g_socks5_recv_timeout, which InterruptibleRecv
 * applies to every step of Socks5()), or Core would give up on the SOCKS request before we answer it.
 */
import { type HostPort, canonicalIP, formatHostPort, isLoopback, makeDestination, parseHostPort } from '../address.js';
import { DOWNGRADE_GUARDS, type DowngradeGuard } from '../engine/fallback.js';
import { SHAPE_MODES, type ShapeMode } from '../engine/shaper.js';
import { isProxyError } from '../errors.js';
import { LOG_LEVELS, isLogLevel } from '../log.js';
import { NETWORKS, customNetwork, networkByName } from '../networks.js';
import type { ProxyEndpoint } from '../upstream/dialer.js';
import {
  CORE_SOCKS_TIMEOUT_SECONDS,
  type Config,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_INBOUND_HANDSHAKE_RATE,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_INBOUND,
  DEFAULT_MAX_INBOUND_HANDSHAKES,
  DEFAULT_MAX_INBOUND_PER_IP,
  DEFAULT_PORT,
  DEFAULT_SHAPE_RATE,
  DEFAULT_SOCKS_TIMEOUT_MS,
  MAX_SHAPE_RATE,
  defaultConfig,
} from './defaults.js';
import { EXAMPLE_VALUES, type OptionName } from './options.js';
import { parseProxyUrl, redactProxySecret } from './proxy-url.js';
import { type RawSource, type RawValue, configError } from './sources.js';

/** What runs: the daemon, `status`, or --help / --version. */
export type Command = 'run' | 'status' | 'help' | 'version';

/** setTimeout stores delays in a signed 32-bit int; anything larger fires after 1 ms instead. */
const MAX_TIMER_SECONDS = Math.floor(0x7fffffff / 1000);

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

/**
 * The configuration the raw values describe, the command line's value winning over the file's.
 * `command` is what runs: only 'run' listens, so only it is held to the loopback rule.
 */
export function interpret(cli: RawSource, file: RawSource | undefined, command: Command): Config {
  const merged = new Merged(cli, file);
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
      withLabel(
        inbound.label,
        () => {
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
          // 0.0.0.0 and :: mean "every address" to a listener; dialed, Linux quietly takes them as
          // this host, other systems refuse: name the node's address instead.
          const ip = canonicalIP(rule.target.host);
          if (ip === '0.0.0.0' || ip === '::') throw configError(`'${text}': the target ${ip} is "any address", not one to dial; name the node's address`);
          return rule;
        },
        EXAMPLE_VALUES.inbound,
      ),
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

  // Traffic shaping: off leaves config.shaping undefined, whatever the rate (which is checked anyway).
  const shape = merged.string('shape');
  if (shape !== undefined && !(SHAPE_MODES as readonly string[]).includes(shape.value)) {
    throw configError(`${shape.label}: '${shape.value}' is not one of ${SHAPE_MODES.join(', ')} (e.g. --shape ${EXAMPLE_VALUES.shape})`);
  }
  const shapeRate = merged.string('shape-rate');
  const rate = parseCount(shapeRate, DEFAULT_SHAPE_RATE, 1);
  if (rate > MAX_SHAPE_RATE) throw configError(`${shapeRate!.label}: at most ${MAX_SHAPE_RATE} bytes per second; e.g. ${DEFAULT_SHAPE_RATE}`);
  if (shape !== undefined && shape.value !== 'off') config.shaping = { mode: shape.value as ShapeMode, rate };

  // `status` only dials the metrics address, so listening rules do not apply to it.
  if (command === 'run' && !config.allowRemote) {
    const refuse = (label: string, hp: HostPort, what: string, example: string): never => {
      throw configError(
        `${label} ${formatHostPort(hp)}: not a loopback address; ${what} on it would be reachable from the network. Use a loopback address (e.g. ${example}), or ${allowRemoteHint(label)} if that is intended`,
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
