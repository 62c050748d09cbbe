/**
 * What the proxy knows about each live connection, and the hooks through which the outside
 * (logs, metrics, the status endpoint) learns of connection events. The engine updates the
 * record in place; observers read it.
 */
import type { ErrorCode } from '../errors.js';

/** 'unknown': a connection on the shared port whose first bytes named no front end (refused). */
export type FrontEndKind = 'socks5' | 'legacy' | 'inbound' | 'unknown';
export type TransportKind = 'v2' | 'v1-fallback' | 'passthrough' | 'inbound-v2' | 'inbound-v1';

export interface ConnectionRecord {
  readonly id: number;
  frontEnd: FrontEndKind;
  /** host:port of whoever connected to us. */
  readonly client: string;
  /** host:port of the peer at the other end, once known. */
  peer?: string;
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
}

export interface ProxyObserver {
  /** A connection was accepted; on the shared port, once its first bytes named the front end (or it was refused). */
  opened(record: ConnectionRecord): void;
  /** The transport to the peer is up (after the v2 handshake, a fallback, or at once for passthrough). */
  established(record: ConnectionRecord, handshakeMs: number | undefined): void;
  /** The remote was taken for a v1-only peer (whether or not fallback was allowed). */
  fallback(record: ConnectionRecord, allowed: boolean): void;
  /** The connection ended; `code` is set when it ended on an error or refusal. */
  closed(record: ConnectionRecord, reason: string, code: ErrorCode | undefined): void;
}

export const NO_OBSERVER: ProxyObserver = {
  opened() {},
  established() {},
  fallback() {},
  closed() {},
};

/** Several observers as one. */
export function combineObservers(observers: ProxyObserver[]): ProxyObserver {
  return {
    opened: (r) => observers.forEach((o) => o.opened(r)),
    established: (r, ms) => observers.forEach((o) => o.established(r, ms)),
    fallback: (r, a) => observers.forEach((o) => o.fallback(r, a)),
    closed: (r, reason, code) => observers.forEach((o) => o.closed(r, reason, code)),
  };
}
