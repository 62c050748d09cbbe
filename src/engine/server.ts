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
 * - make us buffer: at most MAX_HELD bytes are read ahead during negotiation, and a legacy first
 *   message must be a VERSION of at most MAX_LEGACY_VERSION bytes, checked from its header;
 * - take the local clients' slots: inbound peers have their own (admission.ts);
 * - crash the daemon: nothing thrown while serving one connection escapes it (it is closed with
 *   ERR_INTERNAL and the daemon goes on).
 */
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Socket } from 'node:net';
import { ByteQueue } from '../byte-queue.js';
import { ProxyError, isProxyError, type ErrorCode } from '../errors.js';
import type { Config, HostPort, InboundRule } from '../config.js';
import { isLoopback } from '../config.js';
import { V1_HEADER_LEN } from '../limits.js';
import type { Logger } from '../log.js';
import { NETWORKS } from '../networks.js';
import { type Destination, formatHostPort, makeDestination } from '../socks5/address.js';
import { REP, SOCKS4_REJECT, Socks5Negotiation, type Socks5Step, repForError, socks5Reply } from '../socks5/server.js';
import { type Credentials, dial, randomCredentials } from '../upstream/dialer.js';
import { V1Parser } from '../v1/framing.js';
import { Admission, LogThrottle, type Ticket, isRefusal } from './admission.js';
import { Bridge, MAX_HELD } from './bridge.js';
import { type ClientStream, MAX_LEGACY_VERSION, checkLegacyHeader, classifyClientStream, classifyFirstBytes, legacyNetwork, versionDestination } from './detect.js';
import { SocketReader } from './reader.js';
import { type ConnectionRecord, type FrontEndKind, NO_OBSERVER, type ProxyObserver, endpoints } from './record.js';

export interface ProxyServerOptions {
  observer?: ProxyObserver;
  /** Test hook: passed to every Bridge's V2Transport. */
  transportOptions?: ConstructorParameters<typeof Bridge>[0]['transportOptions'];
  /** Test hook: the clock of the inbound handshake rate limit (milliseconds). */
  now?: () => number;
}

interface Listener {
  server: net.Server;
  address: HostPort;
  inbound?: InboundRule;
}

/** One live connection, from accept to its last socket closed. */
interface Conn {
  readonly record: ConnectionRecord;
  readonly log: Logger;
  /** The socket that connected to us first, then any we dialed for it. */
  readonly sockets: Set<Socket>;
  readonly ticket: Ticket;
  bridge?: Bridge;
  announced: boolean;
}

/** What a client's front end works with until the Bridge takes the sockets over. */
interface Negotiation {
  readonly conn: Conn;
  readonly socket: Socket;
  readonly reader: SocketReader;
  /** Set once the client has sent bytes for the session itself (a legacy VERSION): a FIN is then a half-close. */
  sent: boolean;
  /** Aborted when the client leaves or a deadline passes: cancels the dial in progress. */
  readonly signal: AbortSignal;
  /** Arm the deadline of the current phase, replacing the previous one. */
  deadline(ms: number, error: () => ProxyError): void;
  clearDeadline(): void;
}

export class ProxyServer {
  private readonly listeners: Listener[] = [];
  private readonly live = new Map<number, Conn>();
  private readonly admission: Admission;
  /** Refusals at accept are logged at most a few per code and window: a flood must not fill the disk. */
  private readonly refusalLog = new LogThrottle();
  /** Each inbound rule's target, validated once at start-up. */
  private readonly targets = new Map<InboundRule, Destination>();
  private nextId = 0;
  private closing = false;
  private readonly observer: ProxyObserver;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly options: ProxyServerOptions = {},
  ) {
    this.observer = options.observer ?? NO_OBSERVER;
    const l = config.inboundLimits;
    this.admission = new Admission(
      { maxClients: config.maxConnections, maxInbound: l.max, maxInboundPerSource: l.perIp, maxInboundHandshakes: l.handshakes, inboundHandshakeRate: l.handshakeRate },
      options.now,
    );
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
        throw new ProxyError('ERR_CONFIG', `--inbound ${describeRule(rule)}: the target is this proxy's own listen address; peers would be forwarded back into the proxy`);
      }
    }
    return this.addresses;
  }

  private bind(address: HostPort, inbound: InboundRule | undefined): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      try {
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
        server.on('error', (err) => this.log.error('listener error', { listen: formatHostPort(address.host, address.port), reason: err.message }));
        const bound = server.address() as net.AddressInfo;
        this.listeners.push({ server, address: { host: address.host, port: bound.port }, inbound });
        resolve();
      });
    });
  }

  /** Stop listening and close every connection. */
  async close(): Promise<void> {
    this.closing = true;
    const closed = this.listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())));
    for (const c of [...this.live.values()]) {
      if (c.bridge !== undefined) c.bridge.destroy('proxy shutting down');
      else {
        this.finish(c);
        for (const s of c.sockets) s.destroy();
      }
    }
    await Promise.all(closed);
  }

  // --- common --------------------------------------------------------------------------------

  private accept(socket: Socket, inbound: InboundRule | undefined): void {
    const conn = this.open(socket, inbound === undefined ? 'unknown' : 'inbound');
    if (conn === undefined) return;
    try {
      if (inbound !== undefined) this.announce(conn);
      if (inbound === undefined) this.serveClient(conn, socket);
      else this.serveInbound(conn, socket, inbound);
    } catch (err) {
      this.refuse(conn, err);
    }
  }

  /** Register a new connection, or refuse it at once when its pool is full. */
  private open(socket: Socket, frontEnd: FrontEndKind): Conn | undefined {
    const id = ++this.nextId;
    const record: ConnectionRecord = {
      id,
      frontEnd,
      client: formatHostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0),
      startedAt: Date.now(),
      bytesToPeer: 0,
      bytesFromPeer: 0,
      msgsToPeer: 0,
      msgsFromPeer: 0,
    };
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

  /** End a connection that never reached a Bridge: log why, optionally send a last reply, close. */
  private refuse(conn: Conn, err: unknown, lastWords?: Buffer): void {
    if (!this.live.has(conn.record.id)) return;
    const e = isProxyError(err) ? err : new ProxyError('ERR_INTERNAL', `internal error: ${describeError(err)}`);
    this.finish(conn);
    conn.log.warn('refused', { ...endpoints(conn.record), code: e.code, reason: e.message });
    // The first socket is the one that connected to us: only it gets the last words (a SOCKS reply).
    const [first, ...others] = conn.sockets;
    if (lastWords !== undefined && first !== undefined && !first.destroyed && first.writable) {
      first.end(lastWords);
      // A client that never reads our last words must not keep the socket open.
      setTimeout(() => first.destroy(), 1000).unref();
    } else first?.destroy();
    for (const s of others) s.destroy();
    this.announce(conn);
    this.observer.closed(conn.record, e.message, e.code);
  }

  private startBridge(
    conn: Conn,
    params: Omit<ConstructorParameters<typeof Bridge>[0], 'record' | 'log' | 'observer' | 'handshakeTimeoutMs' | 'idleTimeoutMs' | 'onDone' | 'onEstablished'>,
  ): void {
    if (!this.live.has(conn.record.id)) {
      params.plain.destroy();
      params.peer.destroy();
      return;
    }
    const bridge = new Bridge({
      ...params,
      record: conn.record,
      log: conn.log,
      observer: this.observer,
      handshakeTimeoutMs: this.config.timeouts.handshakeMs,
      idleTimeoutMs: this.config.timeouts.idleMs,
      transportOptions: this.options.transportOptions,
      onEstablished: () => this.admission.settled(conn.ticket),
      onDone: () => this.finish(conn),
    });
    conn.bridge = bridge;
    bridge.start();
  }

  /**
   * Dial a destination, refusing loops back to this proxy. `viaProxy`: through --upstream-proxy /
   * --onion-proxy (client connections); inbound targets are the node's own address, dialed directly.
   */
  private async dialChecked(destination: Destination, options: { credentials?: Credentials; signal: AbortSignal; viaProxy: boolean }): Promise<Socket> {
    if (this.isSelf(destination)) {
      throw new ProxyError('ERR_DIAL_NOT_ALLOWED', `${formatHostPort(destination.host, destination.port)} is this proxy's own listen address`);
    }
    const upstream = options.viaProxy ? this.config.upstreamProxy : undefined;
    const socket = await dial({
      destination,
      upstreamProxy: upstream,
      onionProxy: options.viaProxy ? this.config.onionProxy : undefined,
      credentials: options.credentials,
      timeoutMs: this.config.timeouts.connectMs,
      signal: options.signal,
    });
    socket.on('error', () => {});
    // A name, or a spelling isSelf does not know, can still lead back here: check where a direct dial landed.
    const landed = socket.remoteAddress;
    if (upstream === undefined && destination.kind !== 'onion' && landed !== undefined) {
      if (this.isSelf({ host: landed, port: socket.remotePort ?? 0, kind: net.isIPv6(landed) ? 'ipv6' : 'ipv4' })) {
        socket.destroy();
        throw new ProxyError('ERR_DIAL_NOT_ALLOWED', `${formatHostPort(destination.host, destination.port)} leads back to this proxy's own listen address`);
      }
    }
    return socket;
  }

  /** Dial for a client in negotiation; the dial is cancelled when the client leaves. */
  private async dialFor(n: Negotiation, destination: Destination, credentials: Credentials): Promise<Socket> {
    const socket = await this.dialChecked(destination, { credentials, signal: n.signal, viaProxy: true });
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
      const wildcard = h === '0.0.0.0' || h === '::' || h === '';
      return (
        h === d.host ||
        ((wildcard || isLoopback(h)) && (isLoopback(d.host) || d.host === '0.0.0.0' || d.host === '::')) ||
        // A wildcard listener is reachable at every address of this machine: dialing one would loop (a
        // legacy VERSION naming it makes the proxy chain connections to itself up to --max-connections).
        (wildcard && isOwnAddress(d.host))
      );
    });
  }

  // --- outbound front ends (SOCKS5 and legacy, one port) -----------------------------------------

  private serveClient(conn: Conn, socket: Socket): void {
    const abort = new AbortController();
    // Reading goes on through the dial, so a client that leaves is noticed and the dial cancelled.
    // A FIN is a client leaving, unless it has already sent what the session needs (its VERSION or
    // its key): then it is a half-close, passed on to the remote once the session is up.
    const reader: SocketReader = new SocketReader(
      socket,
      MAX_HELD,
      (err) => abort.abort(err),
      () => {
        if (!n.sent && reader.buffered === 0) reader.abort(new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection during negotiation'));
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const n: Negotiation = {
      conn,
      socket,
      reader,
      sent: false,
      signal: abort.signal,
      deadline: (ms, error) => {
        clearTimeout(timer);
        timer = setTimeout(() => reader.abort(error()), ms);
      },
      clearDeadline: () => clearTimeout(timer),
    };
    const socksMs = this.config.timeouts.socksMs;
    n.deadline(socksMs, () => new ProxyError('ERR_SOCKS_TIMEOUT', `client negotiation not complete after ${socksMs} ms`));
    this.negotiate(n)
      .catch((err: unknown) => this.refuse(conn, reader.failed ?? err, lastWordsOf(err)))
      .catch((err: unknown) => this.log.error('internal error refusing a connection', { conn: conn.record.id, code: 'ERR_INTERNAL', reason: describeError(err) }))
      .finally(() => n.clearDeadline());
  }

  private async negotiate(n: Negotiation): Promise<void> {
    let head = Buffer.alloc(0);
    let kind = classifyFirstBytes(head, this.config.network);
    while (kind === 'more') {
      head = Buffer.concat([head, await n.reader.next()]);
      kind = classifyFirstBytes(head, this.config.network);
    }
    if (kind === 'socks4') throw withLastWords(new ProxyError('ERR_SOCKS4', 'SOCKS4 request; only SOCKS5 is served'), SOCKS4_REJECT);
    if (kind === 'unknown') {
      throw new ProxyError('ERR_UNKNOWN_PROTOCOL', `first byte 0x${head[0]!.toString(16).padStart(2, '0')} is neither SOCKS5 nor a known network magic`);
    }
    n.conn.record.frontEnd = kind;
    this.announce(n.conn);
    if (kind === 'legacy') return this.serveLegacy(n, head);
    return this.serveSocks5(n, head);
  }

  /** SOCKS5: negotiate, dial, reply. */
  private async serveSocks5(n: Negotiation, head: Buffer): Promise<void> {
    const negotiation = new Socks5Negotiation();
    let chunk: Buffer = head;
    for (;;) {
      for (const step of negotiation.push(chunk)) {
        if (step.type === 'reply') n.socket.write(step.data);
        else if (step.type === 'fail') throw withLastWords(step.error, step.data);
        else return this.connectSocks5(n, step);
      }
      chunk = await n.reader.next();
    }
  }

  private async connectSocks5(n: Negotiation, step: Extract<Socks5Step, { type: 'request' }>): Promise<void> {
    // The dial has its own deadline (--connect-timeout); the negotiation one is over.
    n.clearDeadline();
    n.reader.unshift(step.rest);
    const destination = step.destination;
    n.conn.record.peer = formatHostPort(destination.host, destination.port);
    const clientCreds =
      step.username !== undefined && (step.username !== '' || (step.password ?? '') !== '') ? { username: step.username, password: step.password ?? '' } : undefined;
    const credentials = clientCreds ?? randomCredentials();
    let remote: Socket;
    try {
      remote = await this.dialFor(n, destination, credentials);
    } catch (err) {
      throw withLastWords(err, socks5Reply(repForError(err)));
    }
    n.socket.write(socks5Reply(REP.SUCCEEDED));

    // A v1 client sends its VERSION, a v2 client its key, right after the reply: wait that long at most.
    const socksMs = this.config.timeouts.socksMs;
    n.deadline(socksMs, () => new ProxyError('ERR_CLIENT_TIMEOUT', `the client sent nothing within ${socksMs} ms of the SOCKS5 reply`));
    let first = Buffer.alloc(0);
    let stream: ClientStream = { kind: 'more' };
    while (stream.kind === 'more') {
      first = Buffer.concat([first, await n.reader.next()]);
      stream = classifyClientStream(first, this.config.network);
    }
    n.clearDeadline();
    n.reader.unshift(first);
    const initial = n.reader.release();
    if (stream.kind === 'v2') {
      this.startBridge(n.conn, { plain: n.socket, plainInitial: initial, peer: remote, role: 'initiator', network: this.config.network ?? NETWORKS[0]!, passthrough: true });
      return;
    }
    if (stream.unknownMagic === true) {
      const magic = stream.network.magic.toString('hex');
      // Relaying it as "a client that speaks v2" would send the client's plaintext as is: encrypt it
      // instead, with the client's own magic in the key derivation, as its custom network's nodes do.
      n.conn.log.warn('client sent a v1 VERSION with an unknown network magic; treating it as a custom network (set --magic if this is your custom signet)', {
        ...endpoints(n.conn.record),
        magic,
        hint: `--magic ${magic}`,
      });
    }
    this.startBridge(n.conn, {
      plain: n.socket,
      plainInitial: initial,
      peer: remote,
      role: 'initiator',
      network: stream.network,
      v2Only: this.config.v2Only,
      // A fallback keeps the same route: the same upstream proxy and the same credentials.
      redial: (signal) => this.dialChecked(destination, { credentials, signal, viaProxy: true }),
    });
  }

  /** Legacy mode: the client sent its VERSION straight to us; addr_recv says where it wants to go. */
  private async serveLegacy(n: Negotiation, head: Buffer): Promise<void> {
    const network = legacyNetwork(head.subarray(0, 4), this.config.network);
    const socksMs = this.config.timeouts.socksMs;
    n.deadline(socksMs, () => new ProxyError('ERR_CLIENT_TIMEOUT', `no complete VERSION from the legacy client within ${socksMs} ms`));
    // Everything read is kept for the Bridge, which sends it on (the VERSION included).
    const raw = new ByteQueue();
    raw.push(head);
    let header = head;
    while (header.length < V1_HEADER_LEN) {
      const c = await n.reader.next();
      raw.push(c);
      header = Buffer.concat([header, c]);
    }
    checkLegacyHeader(header.subarray(0, V1_HEADER_LEN));
    const parser = new V1Parser(network.magic, { maxPayload: MAX_LEGACY_VERSION });
    let events = parser.push(header);
    while (events.length === 0) {
      const c = await n.reader.next();
      raw.push(c);
      events = parser.push(c);
    }
    const first = events[0]!;
    if (first.type === 'dropped') throw new ProxyError('ERR_V1_BAD_CHECKSUM', 'the first message (VERSION) has a bad checksum');
    n.sent = true;
    const destination = versionDestination(first.payload);
    n.conn.record.peer = formatHostPort(destination.host, destination.port);
    n.clearDeadline();
    const credentials = randomCredentials();
    const remote = await this.dialFor(n, destination, credentials);
    this.startBridge(n.conn, {
      plain: n.socket,
      plainInitial: [...raw.drain(), ...n.reader.release()],
      peer: remote,
      role: 'initiator',
      network,
      v2Only: this.config.v2Only,
      redial: (signal) => this.dialChecked(destination, { credentials, signal, viaProxy: true }),
    });
  }

  // --- inbound (responder) mode ------------------------------------------------------------------

  private serveInbound(conn: Conn, socket: Socket, rule: InboundRule): void {
    const target = this.targets.get(rule);
    if (target === undefined) throw new ProxyError('ERR_INTERNAL', `no validated target for --inbound ${describeRule(rule)}`);
    conn.record.peer = conn.record.client;
    conn.record.node = formatHostPort(target.host, target.port);
    const abort = new AbortController();
    socket.once('close', () => abort.abort());
    this.dialChecked(target, { signal: abort.signal, viaProxy: false })
      .then((node) => {
        if (abort.signal.aborted || !this.live.has(conn.record.id)) {
          node.destroy();
          this.refuse(conn, new ProxyError('ERR_V2_PEER_CLOSED', 'the peer left before the node connection was up'));
          return;
        }
        conn.sockets.add(node);
        this.startBridge(conn, { plain: node, peer: socket, role: 'responder', network: this.config.network ?? NETWORKS[0]! });
      })
      .catch((err: unknown) => this.refuse(conn, err))
      .catch((err: unknown) => this.log.error('internal error refusing a connection', { conn: conn.record.id, code: 'ERR_INTERNAL', reason: describeError(err) }));
  }
}

function describeRule(rule: InboundRule): string {
  return `${formatHostPort(rule.listen.host, rule.listen.port)}=${formatHostPort(rule.target.host, rule.target.port)}`;
}

function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message).replace(/\n\s*/g, ' | ') : String(err);
}

/** Whether an IP literal is an address of one of this machine's interfaces (IPv4-mapped IPv6 included). */
function isOwnAddress(host: string): boolean {
  let h = host.toLowerCase();
  if (net.isIPv6(h)) {
    h = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
    if (mapped !== null) {
      const hi = parseInt(mapped[1], 16);
      const lo = parseInt(mapped[2], 16);
      h = `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
    }
  } else if (!net.isIPv4(h)) return false;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address.toLowerCase() === h));
}

function withLastWords(err: unknown, lastWords: Buffer | undefined): unknown {
  if (lastWords !== undefined && err !== null && typeof err === 'object') (err as { lastWords?: Buffer }).lastWords = lastWords;
  return err;
}

function lastWordsOf(err: unknown): Buffer | undefined {
  return (err as { lastWords?: Buffer } | null)?.lastWords;
}
