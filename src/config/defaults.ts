/**
 * What the daemon is configured with (Config), and what each setting is when nobody says
 * otherwise: every operator default, with where its number comes from, and the places the
 * configuration file is looked for. Protocol constants, which no operator chooses, are in
 * ../limits.ts. --help, the man page and the sample configuration quote these values.
 */
import { fileURLToPath } from 'node:url';

import type { HostPort } from '../address.js';
import type { DowngradeGuard } from '../engine/fallback.js';
import type { LogLevel } from '../log.js';
import type { Network } from '../networks.js';
import type { ProxyEndpoint } from '../upstream/dialer.js';

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
}

// Timeouts and connection limits.

/** SOCKS5 negotiation deadline, accept to parsed request (slowloris guard; RFC 1928 §6 gives a server 10 s to close after a failure). */
export const DEFAULT_SOCKS_TIMEOUT_MS = 10_000;
/** Remote connect deadline; below Bitcoin Core's 20 s SOCKS5 receive timeout (netbase.cpp g_socks5_recv_timeout). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/**
 * The v2 handshake deadline; also how long a silent remote is given before it is taken for a
 * v1 peer that hangs (cloudhead/nakamoto#161). 10 s leaves room for a Tor round trip or two, so a
 * slow v2 peer is not mistaken for a v1 one, and with a fallback reconnect still fits well inside
 * the 60 s Bitcoin Core gives a peer to complete VERSION/VERACK (-peertimeout).
 */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Idle connection timeout; Core TIMEOUT_INTERVAL (net.h) is 20 minutes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 20 * 60_000;
/** Concurrent local client connections (SOCKS5, legacy) before new ones are refused. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Concurrent inbound peers: Bitcoin Core's default -maxconnections, so the node behind us is the limit, not us. */
export const DEFAULT_MAX_INBOUND = 125;
/** Inbound peers from one IPv4 address or IPv6 /64 (Core connects to an address once; a few nodes may share a NAT). */
export const DEFAULT_MAX_INBOUND_PER_IP = 4;
/** Inbound v2 handshakes in progress at once (each costs an ElligatorSwift key and an ECDH). */
export const DEFAULT_MAX_INBOUND_HANDSHAKES = 32;
/** New inbound handshakes per second on average (a node sees a few new inbound peers a minute). */
export const DEFAULT_INBOUND_HANDSHAKE_RATE = 20;
/**
 * Not ours to choose: Bitcoin Core reads the SOCKS5 CONNECT reply with a 20 s timeout (netbase.cpp
 * g_socks5_recv_timeout); a dial allowed to take that long would answer a client that has already
 * given up, so --connect-timeout must stay below it.
 */
export const CORE_SOCKS_TIMEOUT_SECONDS = 20;

// Addresses and files.

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
export const SAMPLE_CONFIG_FILE = fileURLToPath(new URL(`../../../conf/${CONFIG_FILE_NAME}`, import.meta.url));
/**
 * The metrics endpoint, on by default so `status` works out of the box. 9324 is clear of the ports
 * a node operator already runs: Bitcoin Core's P2P and RPC (8332-8334, 18332-18445, 38332-38334,
 * 48332-48334) and its conventional ZMQ ports (28332-28334), Tor's (9050, 9051, 9150, 9151),
 * lnd and Core Lightning (9735, 10009), electrs and Fulcrum (4224, 50001, 50002).
 */
export const DEFAULT_METRICS_PORT = 9324;
export const DEFAULT_METRICS: HostPort = { host: '127.0.0.1', port: DEFAULT_METRICS_PORT };

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
