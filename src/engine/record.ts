/**
 * What the proxy knows about each live connection, and the hooks through which the outside
 * (logs, metrics, the status endpoint) learns of connection events. The engine updates the
 * record in place; observers read it.
 */
import type { ErrorCode } from '../errors.js';
import type { LogFields } from '../log.js';
import type { ShapeMode } from './shaper.js';

/** 'unknown': a connection on the shared port whose first bytes named no front end (refused). */
export type FrontEndKind = 'socks5' | 'legacy' | 'inbound' | 'unknown';
export type TransportKind = 'v2' | 'v1-fallback' | 'passthrough' | 'inbound-v2' | 'inbound-v1';

export interface ConnectionRecord {
  readonly id: number;
  frontEnd: FrontEndKind;
  /** host:port of whoever connected to us. */
  readonly client: string;
  /** host:port of the peer at the other end, once known (inbound: the peer that connected, as `client`). */
  peer?: string;
  /** Inbound only: host:port of the node behind the proxy. */
  node?: string;
  transport?: TransportKind;
  /** BIP324 session id (hex), once the peer's version packet authenticated. */
  sessionId?: string;
  readonly startedAt: number;
  establishedAt?: number;
  /** Wire bytes and application messages to and from the remote peer. */
  bytesToPeer: number;
  bytesFromPeer: number;
  msgsToPeer: number;
  msgsFromPeer: number;
  /** --shape as applied to this connection: set on v2 sessions we encrypt, never on relayed ones. */
  shaping?: Exclude<ShapeMode, 'off'>;
  /** Decoy packets sent to the peer, and their wire bytes (counted in bytesToPeer too). */
  decoysToPeer: number;
  decoyBytesToPeer: number;
}

/** A new connection's record: who connected, through which front end, and every counter at zero. */
export function newRecord(id: number, frontEnd: FrontEndKind, client: string): ConnectionRecord {
  return {
    id,
    frontEnd,
    client,
    startedAt: Date.now(),
    bytesToPeer: 0,
    bytesFromPeer: 0,
    msgsToPeer: 0,
    msgsFromPeer: 0,
    decoysToPeer: 0,
    decoyBytesToPeer: 0,
  };
}

export interface ProxyObserver {
  /** A connection was accepted; on the shared port, once its first bytes named the front end (or it was refused). */
  opened(record: ConnectionRecord): void;
  /** The transport to the peer is up (after the v2 handshake, a fallback, or at once for passthrough). */
  established(record: ConnectionRecord, handshakeMs: number | undefined): void;
  /** The remote was taken for a v1-only peer (whether or not fallback was allowed). */
  fallback(record: ConnectionRecord, allowed: boolean): void;
  /** A downgrade to plaintext v1 was refused (a peer known to speak v2), or detected after a fallback. */
  downgrade(record: ConnectionRecord, outcome: 'refused' | 'detected'): void;
  /** A message was dropped instead of relayed (bad checksum, undefined short id, ...); the connection goes on. */
  dropped(record: ConnectionRecord, code: ErrorCode): void;
  /** The connection ended; `code` is set when it ended on an error or refusal. */
  closed(record: ConnectionRecord, reason: string, code: ErrorCode | undefined): void;
}

export const NO_OBSERVER: ProxyObserver = {
  opened() {},
  established() {},
  fallback() {},
  downgrade() {},
  dropped() {},
  closed() {},
};

/**
 * The two ends of a connection, for its log lines: the local client and the remote peer (outbound),
 * or the peer that connected and the node it is forwarded to (inbound).
 */
export function endpoints(r: ConnectionRecord): LogFields {
  return r.frontEnd === 'inbound' ? { peer: r.client, node: r.node } : { client: r.client, peer: r.peer };
}
