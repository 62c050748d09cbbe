/**
 * Who gets a connection slot: pure bookkeeping, no sockets, the clock injected.
 *
 * Local clients (SOCKS5 and legacy, on --listen) and inbound peers (on --inbound, the open
 * internet) have separate pools, so peers can never lock local clients out: a thousand inbound
 * connections that each sent a few bytes and held on used to take every slot --max-connections had.
 * For inbound, as Bitcoin Core keeps its inbound slots apart from its outbound ones:
 * - at most --max-inbound connections, and at most --max-inbound-per-ip from one source (an IPv4
 *   address, or an IPv6 /64, the smallest block a single host is normally given);
 * - a v2 handshake costs us an ElligatorSwift key and an ECDH (milliseconds of CPU) and costs the
 *   peer 64 random bytes, so the handshakes in progress are bounded (--max-inbound-handshakes in
 *   all, MAX_HANDSHAKES_PER_SOURCE per source) and new ones may start at most at
 *   --inbound-handshake-rate per second on average (a token bucket with a burst of twice the rate).
 *   A connection counts as "in handshake" from accept until its transport is settled (v2 session
 *   up, or a v1 peer detected) or it closes.
 * A refused connection is closed before anything is read from it or dialed for it.
 */
import { sourceKey } from '../address.js';
import type { ErrorCode } from '../errors.js';

/** One source may hold at most this many inbound handshakes at once (a real peer needs one); off with the per-source cap. */
export const MAX_HANDSHAKES_PER_SOURCE = 2;

export interface AdmissionLimits {
  /** Local clients (SOCKS5, legacy). */
  maxClients: number;
  maxInbound: number;
  /** 0: no per-source caps at all (behind a Tor onion service, every peer comes from 127.0.0.1). */
  maxInboundPerSource: number;
  maxInboundHandshakes: number;
  /** New inbound handshakes per second, on average. */
  inboundHandshakeRate: number;
}

export type Refusal = { code: ErrorCode; reason: string };

/** A slot held by one connection; give it back with release(). */
export interface Ticket {
  readonly inbound: boolean;
  readonly source: string;
  /** Inbound: whether it still counts as a handshake in progress. */
  handshaking: boolean;
  released: boolean;
}

export class Admission {
  private clients = 0;
  private inbound = 0;
  private handshakes = 0;
  private readonly perSource = new Map<string, { connections: number; handshakes: number }>();
  private tokens: number;
  private last: number;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = this.burst;
    this.last = now();
  }

  private get burst(): number {
    return Math.max(1, 2 * this.limits.inboundHandshakeRate);
  }

  /** Slots in use, and the sources holding inbound ones (the per-source table must not outlive its connections). */
  get counts(): { clients: number; inbound: number; handshakes: number; sources: number } {
    return { clients: this.clients, inbound: this.inbound, handshakes: this.handshakes, sources: this.perSource.size };
  }

  /** A local client on a --listen port. */
  admitClient(source: string | undefined): Ticket | Refusal {
    if (this.clients >= this.limits.maxClients) {
      return { code: 'ERR_MAX_CONNECTIONS', reason: `--max-connections ${this.limits.maxClients} reached` };
    }
    this.clients++;
    return { inbound: false, source: sourceKey(source), handshaking: false, released: false };
  }

  /** A peer on an --inbound port: a connection slot and a handshake slot, or a refusal. */
  admitInbound(address: string | undefined): Ticket | Refusal {
    const source = sourceKey(address);
    const mine = this.perSource.get(source) ?? { connections: 0, handshakes: 0 };
    const l = this.limits;
    if (this.inbound >= l.maxInbound) return { code: 'ERR_MAX_INBOUND', reason: `--max-inbound ${l.maxInbound} reached` };
    if (l.maxInboundPerSource > 0 && mine.connections >= l.maxInboundPerSource) {
      return { code: 'ERR_INBOUND_PER_IP', reason: `${source} already has ${mine.connections} connections (--max-inbound-per-ip ${l.maxInboundPerSource})` };
    }
    if (this.handshakes >= l.maxInboundHandshakes) {
      return { code: 'ERR_HANDSHAKE_BUSY', reason: `${this.handshakes} inbound handshakes in progress (--max-inbound-handshakes ${l.maxInboundHandshakes})` };
    }
    // (A source's handshakes never outnumber its connections, so the cap above covers a lower --max-inbound-per-ip.)
    if (l.maxInboundPerSource > 0 && mine.handshakes >= MAX_HANDSHAKES_PER_SOURCE) {
      return { code: 'ERR_HANDSHAKE_BUSY', reason: `${source} already has ${mine.handshakes} handshakes in progress` };
    }
    if (!this.takeToken()) {
      return { code: 'ERR_HANDSHAKE_BUSY', reason: `new inbound handshakes above --inbound-handshake-rate ${l.inboundHandshakeRate}/s` };
    }
    this.inbound++;
    this.handshakes++;
    mine.connections++;
    mine.handshakes++;
    this.perSource.set(source, mine);
    return { inbound: true, source, handshaking: true, released: false };
  }

  /** The connection's transport is settled: it no longer counts as a handshake in progress. */
  settled(ticket: Ticket): void {
    if (!ticket.inbound || !ticket.handshaking || ticket.released) return;
    ticket.handshaking = false;
    this.handshakes--;
    const mine = this.perSource.get(ticket.source);
    if (mine !== undefined) mine.handshakes--;
  }

  /** The connection is gone. Idempotent. */
  release(ticket: Ticket): void {
    if (ticket.released) return;
    this.settled(ticket);
    ticket.released = true;
    if (!ticket.inbound) {
      this.clients--;
      return;
    }
    this.inbound--;
    const mine = this.perSource.get(ticket.source);
    if (mine === undefined) return;
    if (--mine.connections <= 0) this.perSource.delete(ticket.source);
  }

  private takeToken(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.limits.inboundHandshakeRate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export function isRefusal(x: Ticket | Refusal): x is Refusal {
  return (x as Refusal).code !== undefined;
}

/**
 * Logs at most `perWindow` lines of one kind per window and counts the rest, so a flood of refused
 * connections cannot fill the disk: the next line after a quiet spell says how many were left out.
 */
export class LogThrottle {
  private readonly state = new Map<string, { windowStart: number; shown: number; suppressed: number }>();

  constructor(
    private readonly perWindow = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether to log this line now; `suppressed` = lines of this kind left out since the last one shown. */
  allow(kind: string): { show: boolean; suppressed: number } {
    const t = this.now();
    let s = this.state.get(kind);
    if (s === undefined || t - s.windowStart >= this.windowMs) {
      const suppressed = s?.suppressed ?? 0;
      s = { windowStart: t, shown: 1, suppressed: 0 };
      this.state.set(kind, s);
      return { show: true, suppressed };
    }
    if (s.shown < this.perWindow) {
      s.shown++;
      return { show: true, suppressed: 0 };
    }
    s.suppressed++;
    return { show: false, suppressed: 0 };
  }
}
