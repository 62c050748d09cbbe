/**
 * The daemon: listeners, the shared-port front ends, and the registry of live connections.
 *
 * Every connection on a --listen port is dispatched on its first bytes (detect.ts):
 * - 0x05: SOCKS5 (RFC 1928/1929). The destination comes from CONNECT; we dial it and answer only
 *   once the remote TCP connection is up. Then the client's first bytes decide: a v1 VERSION prefix
 *   is translated to v2, anything else is a client that speaks v2 itself and is passed through.
 * - a network magic: a legacy v1 client. The destination is addr_recv of its VERSION.
 * - 0x04: SOCKS4, rejected with its own reply; anything else is closed.
 * Both front ends then hand the two sockets to one Bridge (the session engine).
 *
 * Every --inbound LISTEN=TARGET port accepts peers as the BIP324 responder and forwards the
 * plaintext v1 stream to the node at TARGET.
 *
 * What a hostile client or peer cannot do here:
 * - hold a slot for ever: every phase has a timer (negotiation: --socks-timeout; dial:
 *   --connect-timeout; the client's first bytes after the SOCKS5 reply: --socks-timeout; then the
 *   Bridge's handshake and idle timers), and a client that leaves during the dial is noticed at once;
 * - make us buffer: at most MAX_HELD bytes are read ahead during negotiation (plus the reads in
 *   flight when it is reached, 64 KiB each: transient-reads.ts STREAM_READ_SIZE), and a legacy
 *   first message must be a VERSION of at most MAX_LEGACY_VERSION bytes, checked from its header;
 * - take the local clients' slots: inbound peers have their own (admission.ts);
 * - crash the daemon: nothing thrown while serving one connection escapes it (it is closed with
 *   ERR_INTERNAL and the daemon goes on).
 *
 * The front ends themselves are in frontends/ (listen-port.ts dispatches to socks5.ts and
 * legacy.ts; inbound.ts); this file holds the listeners, the registry of live connections, the
 * refusals and the dialing they share (negotiation.ts Services).
 */
import * as net from 'node:net';
import type { Socket } from 'node:net';
import { ephemeralKeys } from '../crypto/keypool.js';
import { ProxyError, isProxyError, type ErrorCode } from '../errors.js';
import type { Config, InboundRule } from '../config/index.js';
import type { Logger } from '../log.js';
import { type Destination, type HostPort, formatHostPort, isLoopback, isOwnAddress, makeDestination } from '../address.js';
import { type Credentials, dial } from '../upstream/dialer.js';
import { Admission, LogThrottle, type Ticket, isRefusal } from './admission.js';
import { Bridge, type BridgeParams, type InitiatorOptions } from './bridge.js';
import { serveInbound } from './frontends/inbound.js';
import { V2PeerTable } from './v2-peers.js';
import { acceptTransient } from '../transient-reads.js';
import { serveListenPort } from './frontends/listen-port.js';
import { type Conn, Negotiation, type Services } from './negotiation.js';
import { type ConnectionRecord, type FrontEndKind, NO_OBSERVER, type ProxyObserver, endpoints, newRecord } from './record.js';

export interface ProxyServerOptions {
  observer?: ProxyObserver;
  /** Test hook: passed to every Bridge's V2Transport. */
  transportOptions?: InitiatorOptions['transportOptions'];
  /** Test hook: the clock of the inbound handshake rate limit and of the refusal log's windows (milliseconds). */
  now?: () => number;
  /** Test hook: how often a changed v2 peers table is written (default V2_PEERS_SAVE_MS). */
  peersSaveMs?: number;
}

/** How often a changed v2 peers table is written to --v2-peers-file (and once more at shutdown). */
const V2_PEERS_SAVE_MS = 5 * 60_000;

interface Listener {
  server: net.Server;
  address: HostPort;
  inbound?: InboundRule;
}

export class ProxyServer {
  private readonly listeners: Listener[] = [];
  private readonly live = new Map<number, Conn>();
  private readonly admission: Admission;
  /** Refusals at accept are logged at most a few per code and window: a flood must not fill the disk. */
  private readonly refusalLog: LogThrottle;
  /** Each inbound rule's target, validated once at start-up. */
  private readonly targets = new Map<InboundRule, Destination>();
  private nextId = 0;
  private closing = false;
  private readonly observer: ProxyObserver;
  /** What the front ends use of this server. */
  private readonly services: Services;
  /** Peers known to speak v2 (fallback.ts); none with --downgrade-guard all, where nothing falls back. */
  private readonly v2Peers: V2PeerTable | undefined;
  private saveTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly options: ProxyServerOptions = {},
  ) {
    this.observer = options.observer ?? NO_OBSERVER;
    const l = config.inboundLimits;
    this.admission = new Admission(
      {
        maxClients: config.maxConnections,
        maxInbound: l.max,
        maxInboundPerSource: l.perIp,
        maxInboundHandshakes: l.handshakes,
        inboundHandshakeRate: l.handshakeRate,
      },
      options.now,
    );
    this.refusalLog = new LogThrottle(undefined, undefined, options.now);
    this.v2Peers = config.downgradeGuard === 'all' ? undefined : new V2PeerTable();
    this.services = {
      config,
      announce: (conn) => this.announce(conn),
      dialFor: (n, destination, credentials) => this.dialFor(n, destination, credentials),
      dial: (destination, o) => this.dial(destination, o),
      startBridge: (conn, params) => this.startBridge(conn, params),
    };
  }

  /** Live connections by id (read-only view for metrics and status). */
  get connections(): ConnectionRecord[] {
    return [...this.live.values()].map((c) => c.record);
  }

  /** The addresses actually bound for --listen (port 0 resolved), in config order. */
  get addresses(): HostPort[] {
    return this.listeners.filter((l) => l.inbound === undefined).map((l) => l.address);
  }

  /** The addresses bound for --inbound, in config order. */
  get inboundAddresses(): HostPort[] {
    return this.listeners.filter((l) => l.inbound !== undefined).map((l) => l.address);
  }

  /**
   * Bind every listener. Throws ProxyError ERR_CONFIG, with nothing left listening, for an inbound
   * target that cannot be dialed or that is one of our own listeners (each peer would be forwarded
   * back into the proxy, which would forward it again, up to the connection limit).
   */
  async listen(): Promise<HostPort[]> {
    for (const rule of this.config.inbound) {
      try {
        this.targets.set(rule, makeDestination(rule.target.host, rule.target.port));
      } catch (err) {
        throw new ProxyError('ERR_CONFIG', `--inbound ${describeRule(rule)}: the target cannot be dialed: ${(err as Error).message}`);
      }
    }
    for (const address of this.config.listen) await this.bind(address, undefined);
    for (const rule of this.config.inbound) await this.bind(rule.listen, rule);
    for (const [rule, target] of this.targets) {
      if (this.isSelf(target)) {
        await this.close();
        throw new ProxyError(
          'ERR_CONFIG',
          `--inbound ${describeRule(rule)}: the target is this proxy's own listen address; peers would be forwarded back into the proxy`,
        );
      }
    }
    // The first connections find their ephemeral keys made already (crypto/keypool.ts).
    ephemeralKeys.fill();
    this.loadV2Peers();
    return this.addresses;
  }

  private bind(address: HostPort, inbound: InboundRule | undefined): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
      let socket = accepted;
      try {
        // Read into the shared buffer (transient-reads.ts): most of the up direction's bytes come this way.
        socket = acceptTransient(accepted, true);
        this.accept(socket, inbound);
      } catch (err) {
        // Only a bug gets here (accept() closes its own failures); the daemon must outlive it.
        this.log.error('internal error accepting a connection', { code: 'ERR_INTERNAL', reason: describeError(err) });
        socket.destroy();
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.error('listener error', { listen: formatHostPort(address), reason: err.message }));
        const bound = server.address() as net.AddressInfo;
        this.listeners.push({ server, address: { host: address.host, port: bound.port }, inbound });
        resolve();
      });
    });
  }

  /** Read --v2-peers-file; a file that fails is reported and ignored (it is replaced at the next save). */
  private loadV2Peers(): void {
    const file = this.config.v2PeersFile;
    if (file === undefined || this.v2Peers === undefined) return;
    try {
      const n = this.v2Peers.loadFile(file);
      this.log.info('v2 peers file read', { file, peers: n });
    } catch (err) {
      this.log.error('v2 peers file ignored; it will be replaced', { file, reason: (err as Error).message });
    }
    this.saveTimer = setInterval(() => void this.saveV2Peers(), this.options.peersSaveMs ?? V2_PEERS_SAVE_MS);
    this.saveTimer.unref();
  }

  private async saveV2Peers(): Promise<void> {
    const file = this.config.v2PeersFile;
    if (file === undefined || this.v2Peers === undefined) return;
    try {
      // Waits for a timed save still writing, so that close() returns with the file written.
      await this.v2Peers.saveFile(file, true);
    } catch (err) {
      this.log.warn('cannot write the v2 peers file', { file, reason: (err as Error).message });
    }
  }

  /** Stop listening and close every connection. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.saveTimer);
    const closed = this.listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())));
    for (const c of [...this.live.values()]) {
      if (c.bridge !== undefined) c.bridge.destroy('proxy shutting down');
      else this.abandon(c, 'proxy shutting down');
    }
    await Promise.all(closed);
    await this.saveV2Peers();
    // Keys made for connections that will not come are wiped.
    ephemeralKeys.clear();
  }

  // --- the registry ----------------------------------------------------------------------------

  private accept(socket: Socket, inbound: InboundRule | undefined): void {
    const conn = this.open(socket, inbound === undefined ? 'unknown' : 'inbound');
    if (conn === undefined) return;
    try {
      if (inbound === undefined) {
        const n = new Negotiation(conn, socket);
        const socksMs = this.config.timeouts.socksMs;
        n.deadline(socksMs, () => new ProxyError('ERR_SOCKS_TIMEOUT', `client negotiation not complete after ${socksMs} ms`));
        serveListenPort(n, this.services)
          .catch((err: unknown) => this.refuse(conn, n.reader.failed ?? err))
          .catch((err: unknown) =>
            this.log.error('internal error refusing a connection', { conn: conn.record.id, code: 'ERR_INTERNAL', reason: describeError(err) }),
          )
          .finally(() => n.clearDeadline());
        return;
      }
      this.announce(conn);
      const target = this.targets.get(inbound);
      if (target === undefined) throw new ProxyError('ERR_INTERNAL', `no validated target for --inbound ${describeRule(inbound)}`);
      serveInbound(conn, socket, target, this.services);
    } catch (err) {
      this.refuse(conn, err);
    }
  }

  /** Register a new connection, or refuse it at once when its pool is full. */
  private open(socket: Socket, frontEnd: FrontEndKind): Conn | undefined {
    const id = ++this.nextId;
    const record = newRecord(id, frontEnd, formatHostPort({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 }));
    const log = this.log.child({ conn: id });
    socket.on('error', () => {}); // errors are handled by whoever owns the socket at the time
    const ticket: Ticket | { code: ErrorCode; reason: string } = this.closing
      ? { code: 'ERR_MAX_CONNECTIONS', reason: 'proxy shutting down' }
      : frontEnd === 'inbound'
        ? this.admission.admitInbound(socket.remoteAddress)
        : this.admission.admitClient(socket.remoteAddress);
    if (isRefusal(ticket)) {
      socket.destroy();
      const shown = this.refusalLog.allow(ticket.code);
      if (shown.show) {
        log.warn('refused', { ...endpoints(record), code: ticket.code, reason: ticket.reason, suppressed: shown.suppressed || undefined });
      }
      this.observer.opened(record);
      this.observer.closed(record, ticket.reason, ticket.code);
      return undefined;
    }
    socket.setNoDelay(true);
    const conn: Conn = { record, log, sockets: new Set([socket]), ticket, announced: false };
    this.live.set(id, conn);
    log.debug('accepted', { client: record.client, frontend: frontEnd });
    return conn;
  }

  /** Tell the observer about a connection once its front end is known. */
  private announce(conn: Conn): void {
    if (conn.announced) return;
    conn.announced = true;
    this.observer.opened(conn.record);
  }

  /** The connection is over: free its slot. Idempotent. */
  private finish(conn: Conn): void {
    this.live.delete(conn.record.id);
    this.admission.release(conn.ticket);
  }

  /** End a connection that never reached a Bridge: log why, send the error's reply if it has one, close. */
  private refuse(conn: Conn, err: unknown): void {
    if (!this.live.has(conn.record.id)) return;
    const e = isProxyError(err) ? err : new ProxyError('ERR_INTERNAL', `internal error: ${describeError(err)}`);
    this.finish(conn);
    conn.log.warn('refused', { ...endpoints(conn.record), code: e.code, reason: e.message });
    // The first socket is the one that connected to us: only it gets the reply (a SOCKS reply).
    const [first, ...others] = conn.sockets;
    if (e.reply !== undefined && first !== undefined && !first.destroyed && first.writable) {
      first.end(e.reply);
      // A client that never reads the reply must not keep the socket open.
      setTimeout(() => first.destroy(), 1000).unref();
    } else first?.destroy();
    for (const s of others) s.destroy();
    this.announce(conn);
    this.observer.closed(conn.record, e.message, e.code);
  }

  /**
   * End a connection still negotiating (no Bridge yet) without an error: at shutdown. Logged and
   * reported closed like a Bridge's end; its negotiation then fails and finds nothing left to refuse.
   */
  private abandon(conn: Conn, reason: string): void {
    this.finish(conn);
    for (const s of conn.sockets) s.destroy();
    conn.log.info('closed', { reason, ...endpoints(conn.record) });
    this.announce(conn);
    this.observer.closed(conn.record, reason, undefined);
  }

  private startBridge(conn: Conn, params: BridgeParams): void {
    if (!this.live.has(conn.record.id)) {
      for (const s of conn.sockets) s.destroy();
      return;
    }
    const common = {
      record: conn.record,
      log: conn.log,
      observer: this.observer,
      v2Peers: this.v2Peers,
      idleTimeoutMs: this.config.timeouts.idleMs,
      shaping: this.config.shaping,
      onEstablished: () => this.admission.settled(conn.ticket),
      onDone: () => this.finish(conn),
    };
    const v2 = { handshakeTimeoutMs: this.config.timeouts.handshakeMs, transportOptions: this.options.transportOptions, guard: this.config.downgradeGuard };
    const bridge = new Bridge(params.role === 'passthrough' ? { ...common, ...params } : { ...common, ...v2, ...params });
    conn.bridge = bridge;
    bridge.start();
  }

  // --- dialing ---------------------------------------------------------------------------------

  /**
   * Dial a destination, refusing loops back to this proxy. `viaProxy`: through --upstream-proxy /
   * --onion-proxy (client connections); inbound targets are the node's own address, dialed directly.
   */
  private async dial(destination: Destination, options: { credentials?: Credentials; signal: AbortSignal; viaProxy: boolean }): Promise<Socket> {
    if (this.isSelf(destination)) {
      throw new ProxyError('ERR_DIAL_NOT_ALLOWED', `${formatHostPort(destination)} is this proxy's own listen address`);
    }
    const upstream = options.viaProxy ? this.config.upstreamProxy : undefined;
    const socket = await dial({
      destination,
      upstreamProxy: upstream,
      onionProxy: options.viaProxy ? this.config.onionProxy : undefined,
      credentials: options.credentials,
      timeoutMs: this.config.timeouts.connectMs,
      signal: options.signal,
      // The remote of a client connection, dialed directly: its reads go to the Bridge as views of a
      // shared buffer (transient-reads.ts; the v2 peer's bytes are most of the traffic). The node
      // behind an inbound port (viaProxy false) is read as usual.
      transientReads: options.viaProxy,
    });
    socket.on('error', () => {});
    // A name, or a spelling isSelf does not know, can still lead back here: check where a direct dial landed.
    const landed = socket.remoteAddress;
    if (upstream === undefined && destination.kind !== 'onion' && landed !== undefined) {
      if (this.isSelf({ host: landed, port: socket.remotePort ?? 0, kind: net.isIPv6(landed) ? 'ipv6' : 'ipv4' })) {
        socket.destroy();
        throw new ProxyError('ERR_DIAL_NOT_ALLOWED', `${formatHostPort(destination)} leads back to this proxy's own listen address`);
      }
    }
    return socket;
  }

  /** Dial for a client in negotiation; the dial is cancelled when the client leaves. */
  private async dialFor(n: Negotiation, destination: Destination, credentials: Credentials): Promise<Socket> {
    const socket = await this.dial(destination, { credentials, signal: n.signal, viaProxy: true });
    if (n.signal.aborted || !this.live.has(n.conn.record.id)) {
      socket.destroy();
      throw n.reader.failed ?? new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection while the remote was being dialed');
    }
    n.conn.sockets.add(socket);
    return socket;
  }

  private isSelf(d: Destination): boolean {
    return this.listeners.some((l) => {
      if (l.address.port !== d.port) return false;
      const h = l.address.host;
      const wildcard = h === '0.0.0.0' || h === '::';
      return (
        h === d.host ||
        ((wildcard || isLoopback(h)) && (isLoopback(d.host) || d.host === '0.0.0.0' || d.host === '::')) ||
        // A wildcard listener is reachable at every address of this machine: dialing one would loop (a
        // legacy VERSION naming it makes the proxy chain connections to itself up to --max-connections).
        (wildcard && isOwnAddress(d.host))
      );
    });
  }
}

function describeRule(rule: InboundRule): string {
  return `${formatHostPort(rule.listen)}=${formatHostPort(rule.target)}`;
}

function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message).replace(/\n\s*/g, ' | ') : String(err);
}
