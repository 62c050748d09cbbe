/**
 * A connection before its Bridge: the registry's entry for it (Conn), the context the listen
 * port's front ends share while they negotiate with a client (Negotiation), and what the server
 * offers the front ends (Services).
 *
 * A negotiation reads the client all the time (reader.ts), so a client that leaves is noticed at
 * once and the dial in progress cancelled; it has one deadline per phase, re-armed as it moves on
 * (--socks-timeout for the SOCKS5 request, the legacy VERSION and the client's first bytes after the
 * SOCKS5 reply; the dial has --connect-timeout of its own).
 */
import type { Socket } from 'node:net';
import type { Config } from '../config/index.js';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Destination } from '../address.js';
import type { Credentials } from '../upstream/dialer.js';
import type { Ticket } from './admission.js';
import { type Bridge, type BridgeParams, MAX_HELD } from './bridge.js';
import { SocketReader } from './reader.js';
import type { ConnectionRecord } from './record.js';

/** One live connection, from accept to its last socket closed. */
export interface Conn {
  readonly record: ConnectionRecord;
  readonly log: Logger;
  /** The socket that connected to us first, then any we dialed for it. */
  readonly sockets: Set<Socket>;
  readonly ticket: Ticket;
  bridge?: Bridge;
  announced: boolean;
}

/** What the front ends need from the server. */
export interface Services {
  readonly config: Config;
  /** The connection's front end is known: tell the observers. */
  announce(conn: Conn): void;
  /** Dial for a client in negotiation: cancelled when it leaves; loops back to the proxy are refused. */
  dialFor(n: Negotiation, destination: Destination, credentials: Credentials): Promise<Socket>;
  /**
   * Dial a destination, loops refused: a fallback's redial (the same route: `viaProxy` and the same
   * credentials) or the node behind an inbound port (directly).
   */
  dial(destination: Destination, options: { credentials?: Credentials; signal: AbortSignal; viaProxy: boolean }): Promise<Socket>;
  startBridge(conn: Conn, params: BridgeParams): void;
}

export class Negotiation {
  readonly reader: SocketReader;
  /** Aborted when the client leaves or a deadline passes: cancels the dial in progress. */
  readonly signal: AbortSignal;
  /** Set once the client has sent what the session needs (its VERSION): a FIN is then a half-close. */
  sent = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly conn: Conn,
    readonly socket: Socket,
  ) {
    const abort = new AbortController();
    this.signal = abort.signal;
    // A FIN is the client leaving, unless it has already sent what the session needs: then it is a
    // half-close, passed on to the remote once the session is up.
    this.reader = new SocketReader(
      socket,
      MAX_HELD,
      (err) => abort.abort(err),
      () => {
        if (!this.sent && this.reader.buffered === 0) this.reader.abort(new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection during negotiation'));
      },
    );
  }

  /** Arm the deadline of the current phase, replacing the previous one. */
  deadline(ms: number, error: () => ProxyError): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reader.abort(error()), ms);
  }

  clearDeadline(): void {
    clearTimeout(this.timer);
  }

  /** The client's bytes, accumulated until `decide` returns something other than undefined. */
  async readUntil<T>(first: Buffer, decide: (bytes: Buffer) => T | undefined): Promise<{ bytes: Buffer; result: T }> {
    let bytes = first;
    let result = decide(bytes);
    while (result === undefined) {
      bytes = Buffer.concat([bytes, await this.reader.next()]);
      result = decide(bytes);
    }
    return { bytes, result };
  }
}
