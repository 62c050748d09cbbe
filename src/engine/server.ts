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
 */
import * as net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Socket } from 'node:net';
import { ProxyError, isProxyError, type ErrorCode } from '../errors.js';
import type { Config, HostPort, InboundRule } from '../config.js';
import { isLoopback } from '../config.js';
import type { Logger } from '../log.js';
import { NETWORKS, type Network } from '../networks.js';
import { type Destination, formatHostPort, makeDestination } from '../socks5/address.js';
import { REP, SOCKS4_REJECT, Socks5Negotiation, repForError, socks5Reply } from '../socks5/server.js';
import { type Credentials, dial, randomCredentials } from '../upstream/dialer.js';
import { V1Parser } from '../v1/framing.js';
import { Bridge } from './bridge.js';
import { classifyClientStream, classifyFirstBytes, legacyNetwork, versionDestination } from './detect.js';
import { SocketReader } from './reader.js';
import { type ConnectionRecord, type FrontEndKind, NO_OBSERVER, type ProxyObserver } from './record.js';

export interface ProxyServerOptions {
  observer?: ProxyObserver;
  /** Test hook: passed to every Bridge's V2Transport. */
  transportOptions?: ConstructorParameters<typeof Bridge>[0]['transportOptions'];
}

interface Listener {
  server: net.Server;
  address: HostPort;
  inbound?: InboundRule;
}

export class ProxyServer {
  private readonly listeners: Listener[] = [];
  private readonly live = new Map<number, { record: ConnectionRecord; sockets: Set<Socket>; bridge?: Bridge; announced: boolean }>();
  private nextId = 0;
  private closing = false;
  private readonly observer: ProxyObserver;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly options: ProxyServerOptions = {},
  ) {
    this.observer = options.observer ?? NO_OBSERVER;
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

  async listen(): Promise<HostPort[]> {
    for (const address of this.config.listen) await this.bind(address, undefined);
    for (const rule of this.config.inbound) await this.bind(rule.listen, rule);
    return this.addresses;
  }

  private bind(address: HostPort, inbound: InboundRule | undefined): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      inbound === undefined ? this.acceptClient(socket) : this.acceptInbound(socket, inbound),
    );
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
      else for (const s of c.sockets) s.destroy();
    }
    await Promise.all(closed);
  }

  // --- common --------------------------------------------------------------------------------

  private open(socket: Socket, frontEnd: FrontEndKind): { record: ConnectionRecord; log: Logger } | undefined {
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
    if (this.closing || this.live.size >= this.config.maxConnections) {
      const reason = this.closing ? 'proxy shutting down' : `--max-connections ${this.config.maxConnections} reached`;
      log.warn('refused', { client: record.client, code: 'ERR_MAX_CONNECTIONS', reason });
      this.observer.opened(record);
      this.observer.closed(record, reason, 'ERR_MAX_CONNECTIONS');
      socket.destroy();
      return undefined;
    }
    socket.setNoDelay(true);
    this.live.set(id, { record, sockets: new Set([socket]), announced: false });
    if (frontEnd !== 'unknown') this.announce(record);
    log.debug('accepted', { client: record.client, frontend: frontEnd });
    return { record, log };
  }

  /** Tell the observer about a connection once its front end is known. */
  private announce(record: ConnectionRecord): void {
    const entry = this.live.get(record.id);
    if (entry === undefined || entry.announced) return;
    entry.announced = true;
    this.observer.opened(record);
  }

  /** End a connection that never reached a Bridge: log why, optionally send a last reply, close. */
  private refuse(record: ConnectionRecord, log: Logger, err: unknown, lastWords?: Buffer): void {
    const e = isProxyError(err) ? err : new ProxyError('ERR_DIAL_FAILED', `internal error: ${(err as Error)?.message ?? String(err)}`);
    const entry = this.live.get(record.id);
    if (entry === undefined) return;
    this.announce(record);
    this.live.delete(record.id);
    log.warn('refused', { client: record.client, peer: record.peer, code: e.code, reason: e.message });
    // The first socket is the one that connected to us: only it gets the last words (a SOCKS reply).
    const [first, ...others] = entry.sockets;
    if (lastWords !== undefined && first !== undefined && !first.destroyed && first.writable) {
      first.end(lastWords);
      // A client that never reads our last words must not keep the socket open.
      setTimeout(() => first.destroy(), 1000).unref();
    } else first?.destroy();
    for (const s of others) s.destroy();
    this.observer.closed(record, e.message, e.code);
  }

  private startBridge(
    record: ConnectionRecord,
    log: Logger,
    params: Omit<ConstructorParameters<typeof Bridge>[0], 'record' | 'log' | 'observer' | 'handshakeTimeoutMs' | 'idleTimeoutMs' | 'onDone'>,
  ): void {
    const entry = this.live.get(record.id);
    if (entry === undefined) {
      params.plain.destroy();
      params.peer.destroy();
      return;
    }
    const bridge = new Bridge({
      ...params,
      record,
      log,
      observer: this.observer,
      handshakeTimeoutMs: this.config.timeouts.handshakeMs,
      idleTimeoutMs: this.config.timeouts.idleMs,
      transportOptions: this.options.transportOptions,
      onDone: () => this.live.delete(record.id),
    });
    entry.bridge = bridge;
    bridge.start();
  }

  /** Dial a destination for a client connection, refusing loops back to this proxy. */
  private async dialFor(record: ConnectionRecord, destination: Destination, credentials: Credentials, signal: AbortSignal): Promise<Socket> {
    if (this.isSelf(destination)) {
      throw new ProxyError('ERR_DIAL_NOT_ALLOWED', `${formatHostPort(destination.host, destination.port)} is this proxy's own listen address`);
    }
    const socket = await dial({
      destination,
      upstreamProxy: this.config.upstreamProxy,
      onionProxy: this.config.onionProxy,
      credentials,
      timeoutMs: this.config.timeouts.connectMs,
      signal,
    });
    socket.on('error', () => {});
    // A name, or a spelling isSelf does not know, can still lead back here: check where a direct dial landed.
    const landed = socket.remoteAddress;
    if (this.config.upstreamProxy === undefined && destination.kind !== 'onion' && landed !== undefined) {
      if (this.isSelf({ host: landed, port: socket.remotePort ?? 0, kind: net.isIPv6(landed) ? 'ipv6' : 'ipv4' })) {
        socket.destroy();
        throw new ProxyError('ERR_DIAL_NOT_ALLOWED', `${formatHostPort(destination.host, destination.port)} leads back to this proxy's own listen address`);
      }
    }
    this.live.get(record.id)?.sockets.add(socket);
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

  private acceptClient(socket: Socket): void {
    const opened = this.open(socket, 'unknown');
    if (opened === undefined) return;
    const { record, log } = opened;
    const reader = new SocketReader(socket);
    const abort = new AbortController();
    const deadline = setTimeout(
      () => reader.abort(new ProxyError('ERR_SOCKS_TIMEOUT', `client negotiation not complete after ${this.config.timeouts.socksMs} ms`)),
      this.config.timeouts.socksMs,
    );
    socket.once('close', () => abort.abort());
    this.serveClient(socket, reader, record, log, abort.signal, deadline)
      .catch((err: unknown) => this.refuse(record, log, err, (err as { lastWords?: Buffer }).lastWords))
      .finally(() => clearTimeout(deadline));
  }

  private async serveClient(
    socket: Socket,
    reader: SocketReader,
    record: ConnectionRecord,
    log: Logger,
    signal: AbortSignal,
    deadline: NodeJS.Timeout,
  ): Promise<void> {
    let head = Buffer.alloc(0);
    let kind = classifyFirstBytes(head, this.config.network);
    while (kind === 'more') {
      head = Buffer.concat([head, await reader.next()]);
      kind = classifyFirstBytes(head, this.config.network);
    }
    if (kind === 'socks4') throw withLastWords(new ProxyError('ERR_SOCKS4', 'SOCKS4 request; only SOCKS5 is served'), SOCKS4_REJECT);
    if (kind === 'unknown') {
      throw new ProxyError('ERR_UNKNOWN_PROTOCOL', `first byte 0x${head[0].toString(16).padStart(2, '0')} is neither SOCKS5 nor a known network magic`);
    }
    record.frontEnd = kind;
    this.announce(record);
    if (kind === 'legacy') {
      return this.serveLegacy(socket, reader, record, log, signal, head);
    }

    // SOCKS5: negotiate, dial, reply.
    const negotiation = new Socks5Negotiation();
    let chunk: Buffer = head;
    for (;;) {
      for (const step of negotiation.push(chunk)) {
        if (step.type === 'reply') socket.write(step.data);
        else if (step.type === 'fail') throw withLastWords(step.error, step.data);
        else {
          clearTimeout(deadline);
          reader.unshift(step.rest);
          const destination = step.destination;
          record.peer = formatHostPort(destination.host, destination.port);
          const clientCreds =
            step.username !== undefined && (step.username !== '' || (step.password ?? '') !== '')
              ? { username: step.username, password: step.password ?? '' }
              : undefined;
          const credentials = clientCreds ?? randomCredentials();
          let remote: Socket;
          try {
            remote = await this.dialFor(record, destination, credentials, signal);
          } catch (err) {
            throw withLastWords(err, socks5Reply(repForError(err)));
          }
          if (signal.aborted) {
            remote.destroy();
            throw new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection while the remote was being dialed');
          }
          socket.write(socks5Reply(REP.SUCCEEDED));
          deadline.refresh();
          return this.afterSocksReply(socket, reader, record, log, remote, destination, credentials, signal);
        }
      }
      chunk = await reader.next();
    }
  }

  /** After the SOCKS5 success reply: v1 client (translate) or v2 client (passthrough)? */
  private async afterSocksReply(
    socket: Socket,
    reader: SocketReader,
    record: ConnectionRecord,
    log: Logger,
    remote: Socket,
    destination: Destination,
    credentials: Credentials,
    signal: AbortSignal,
  ): Promise<void> {
    let head = Buffer.alloc(0);
    let stream = classifyClientStream(head, this.config.network);
    const chunks: Buffer[] = [];
    while (head.length === 0 || stream.kind === 'more') {
      const c = await reader.next();
      chunks.push(c);
      head = Buffer.concat([head, c]);
      stream = classifyClientStream(head, this.config.network);
    }
    const initial = [...chunks, ...reader.release()];
    if (stream.kind === 'v2') {
      this.startBridge(record, log, { plain: socket, plainInitial: initial, peer: remote, role: 'initiator', network: this.config.network ?? NETWORKS[0], passthrough: true });
      return;
    }
    this.startBridge(record, log, {
      plain: socket,
      plainInitial: initial,
      peer: remote,
      role: 'initiator',
      network: stream.network,
      v2Only: this.config.v2Only,
      redial: () => this.dialFor(record, destination, credentials, signal),
    });
  }

  /** Legacy mode: the client sent its VERSION straight to us; addr_recv says where it wants to go. */
  private async serveLegacy(
    socket: Socket,
    reader: SocketReader,
    record: ConnectionRecord,
    log: Logger,
    signal: AbortSignal,
    head: Buffer,
  ): Promise<void> {
    const network: Network = legacyNetwork(head.subarray(0, 4), this.config.network);
    const parser = new V1Parser(network.magic);
    const chunks: Buffer[] = [head];
    let events = parser.push(head);
    while (events.length === 0) {
      const c = await reader.next();
      chunks.push(c);
      events = parser.push(c);
    }
    const first = events[0];
    if (first.type === 'dropped') throw new ProxyError('ERR_V1_BAD_CHECKSUM', 'the first message (VERSION) has a bad checksum');
    if (first.command !== 'version') throw new ProxyError('ERR_V1_NOT_VERSION', `first message is "${first.command}", not VERSION`);
    const destination = versionDestination(first.payload);
    record.peer = formatHostPort(destination.host, destination.port);
    const credentials = randomCredentials();
    const remote = await this.dialFor(record, destination, credentials, signal);
    if (signal.aborted) {
      remote.destroy();
      throw new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection while the remote was being dialed');
    }
    this.startBridge(record, log, {
      plain: socket,
      plainInitial: [...chunks, ...reader.release()],
      peer: remote,
      role: 'initiator',
      network,
      v2Only: this.config.v2Only,
      redial: () => this.dialFor(record, destination, credentials, signal),
    });
  }

  // --- inbound (responder) mode ------------------------------------------------------------------

  private acceptInbound(socket: Socket, rule: InboundRule): void {
    const opened = this.open(socket, 'inbound');
    if (opened === undefined) return;
    const { record, log } = opened;
    record.peer = record.client;
    const abort = new AbortController();
    socket.once('close', () => abort.abort());
    const target = makeDestination(rule.target.host, rule.target.port);
    dial({ destination: target, timeoutMs: this.config.timeouts.connectMs, signal: abort.signal }).then(
      (node) => {
        node.on('error', () => {});
        if (abort.signal.aborted) {
          node.destroy();
          this.refuse(record, log, new ProxyError('ERR_DIAL_FAILED', 'peer left before the node connection was up'));
          return;
        }
        this.live.get(record.id)?.sockets.add(node);
        this.startBridge(record, log, { plain: node, peer: socket, role: 'responder', network: this.config.network ?? NETWORKS[0] });
      },
      (err: unknown) => this.refuse(record, log, err),
    );
  }
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

export type { ErrorCode };
