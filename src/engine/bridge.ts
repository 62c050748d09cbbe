/**
 * The session engine: joins the local side (plaintext v1) and the remote side (BIP324 v2) of one
 * connection, for every front end.
 *
 * - outbound (SOCKS5, legacy): local = the client on this machine, remote = the node it asked for;
 *   we are the v2 initiator.
 * - inbound: local = the v1-only node behind us, remote = the peer that connected; we respond.
 *   The node is dialed only once the peer's transport is settled (a v2 session is up, or the peer
 *   spoke v1), so a peer that never completes a handshake never costs the node a connection.
 * - passthrough: the local client speaks v2 itself; both directions are relayed untouched.
 *
 * The protocol work is done by the sans-I/O V2Transport and V1Parser; this file moves bytes between
 * them and the sockets, and owns every timer and the one idempotent teardown. A remote the proxy
 * dialed directly, and a socket its listeners accepted, are read through transient-reads.ts: their
 * reads are views of a shared buffer, valid during the call only, and copied wherever they are kept
 * (onLocalData, onRemoteData, the parser, the transport).
 *
 * States, one at a time (`state.kind`), and what moves between them:
 *
 *   handshake --transport ready (version packet)-------> session    v2, translated both ways
 *   handshake --the remote spoke v1 (responder)--------> relay      inbound-v1
 *   handshake --remote gone before its first byte------> redialing  (fallbackDecision: fallback)
 *                                                     \-> closed     (fallbackDecision: refuse)
 *   redialing --connected again, held bytes replayed---> relay      v1-fallback
 *   (start) ---passthrough------------------------------> relay      passthrough
 *   any -------error, timer, both sides closed, destroy()-> closed
 *
 * "The remote went away" (FIN, reset, close, or silence until the handshake timer) is handled in
 * one place, remoteGone(), which asks fallback.ts whether to reconnect with v1. The client's
 * original bytes are replayed on the new connection.
 * Also: the initiator pipelines (the client's VERSION leaves in the same flight as our version
 * packet); backpressure both ways (a socket whose write buffer is full pauses the one feeding it);
 * half-close is passed on in each direction.
 *
 * Traffic shaping (--shape, shaper.ts) applies to what we encrypt, in the handshake and session
 * states only: every burst we write to the remote is padded with decoys to the mode's ladder, and
 * under cover a timer adds cover bursts while the session is idle. Decoys are never written to a
 * remote whose write buffer is full, cover never while real data waits to be sent, and neither
 * refreshes the idle timer: a connection whose client and peer are silent still times out.
 */
import type { Socket } from 'node:net';
import { ByteQueue, ownCopy } from '../byte-queue.js';
import { ProxyError, type ErrorCode, isProxyError } from '../errors.js';
import { MAX_V1_PAYLOAD } from '../limits.js';
import type { Logger } from '../log.js';
import type { Network } from '../networks.js';
import { V1Parser, type V1Event, serializeV1, v1Header } from '../v1/framing.js';
import { contentsPrefix, decodeContents } from '../v2/messages.js';
import { V2Transport, type V2Event, type V2TransportOptions } from '../v2/transport.js';
import { type DowngradeGuard, type RemoteGone, describeEvidence, fallbackDecision } from './fallback.js';
import { parseAddr, parseAddrV2, speaksV2, versionServices } from '../p2p/services.js';
import type { V2PeerTable } from './v2-peers.js';
import { isTransient, setSink } from '../transient-reads.js';
import { type ConnectionRecord, type ProxyObserver, type TransportKind, endpoints } from './record.js';
import { CoverClock, DECOY_ZEROS, type ShapingOptions, decoyContents, ladderFor, ladderTarget } from './shaper.js';

interface CommonOptions {
  record: ConnectionRecord;
  log: Logger;
  observer: ProxyObserver;
  /** The remote side: the node dialed for the client (outbound), or the peer that connected (inbound). */
  remote: Socket;
  idleTimeoutMs: number;
  /** Called once, when the transport is settled (v2 session up, v1 fallback, v1 peer or passthrough). */
  onEstablished?: () => void;
  /** Called once, after both sockets are gone. */
  onDone?: () => void;
  /**
   * Peers known to speak v2 (the downgrade guard's table), learnt from what is relayed to the local
   * side: addr/addrv2 gossip, v2 sessions, VERSIONs. Only with --downgrade-guard known.
   */
  v2Peers?: V2PeerTable;
  /** --shape and --shape-rate; default off. Passthrough connections are never shaped (we hold no keys). */
  shaping?: ShapingOptions;
}

/** Outbound: a local v1 client, translated to v2 towards the remote we dialed. */
export interface InitiatorOptions extends CommonOptions {
  role: 'initiator';
  local: Socket;
  /** Bytes already read from the client (its VERSION among them). */
  localInitial: Buffer[];
  network: Network;
  handshakeTimeoutMs: number;
  /** Where the client asked to go: the key the downgrade guard knows the peer under. */
  destination: { host: string; port: number };
  /** Dial the same remote again, by the same route, for a v1 fallback; aborted if the Bridge ends first. */
  redial: (signal: AbortSignal) => Promise<Socket>;
  /** When a remote that went away before its first byte may be reconnected with v1 (fallback.ts). */
  guard: DowngradeGuard;
  /** Test hook: options for the V2Transport (garbage, decoys). */
  transportOptions?: Partial<V2TransportOptions>;
}

/** Inbound: a peer that connected, answered as the v2 responder; the node behind us is dialed once it settles. */
export interface ResponderOptions extends CommonOptions {
  role: 'responder';
  /** Connect to the node; called once the peer's transport is settled. */
  connectLocal: (signal: AbortSignal) => Promise<Socket>;
  /**
   * The networks a peer may be on, in order of preference: the peer's garbage terminator (whose key
   * derivation includes the magic) or its v1 VERSION's magic says which one it is on.
   */
  networks: readonly Network[];
  handshakeTimeoutMs: number;
  transportOptions?: Partial<V2TransportOptions>;
}

/** Outbound, for a client that speaks v2 itself: relay both ways untouched. */
export interface PassthroughOptions extends CommonOptions {
  role: 'passthrough';
  local: Socket;
  localInitial: Buffer[];
}

export type BridgeOptions = InitiatorOptions | ResponderOptions | PassthroughOptions;

type ServerSupplied =
  'record' | 'log' | 'observer' | 'idleTimeoutMs' | 'onEstablished' | 'onDone' | 'handshakeTimeoutMs' | 'transportOptions' | 'v2Peers' | 'guard' | 'shaping';
/** What a front end decides for its Bridge; the server supplies the rest (ProxyServer.startBridge). */
export type BridgeParams = Omit<InitiatorOptions, ServerSupplied> | Omit<ResponderOptions, ServerSupplied> | Omit<PassthroughOptions, ServerSupplied>;

type State =
  /** `held`: raw local bytes received while the transport cannot encrypt yet (no peer key). */
  | { kind: 'handshake'; transport: V2Transport; parser: V1Parser; held: ByteQueue }
  | { kind: 'session'; transport: V2Transport; parser: V1Parser }
  /** `held`: every byte the client sent, to replay on the new connection. */
  | { kind: 'redialing'; held: ByteQueue }
  | { kind: 'relay'; watch?: RemoteWatch }
  | { kind: 'closed' };

/**
 * Reading along a v1 stream the remote sends, relayed untouched: for gossip to learn from and,
 * after a fallback, for the remote's own VERSION, which decides whether the fallback was a
 * downgrade. `judging`: the remote's bytes held back until that VERSION is judged.
 */
interface RemoteWatch {
  parser: V1Parser;
  judging?: ByteQueue;
}

/** The commands whose payloads the watch reads; every other payload is skipped unread. */
const WATCHED = new Set(['version', 'addr', 'addrv2']);
/** At most this much of a fallback remote is held back waiting for its VERSION (a real one is under 400 bytes). */
const MAX_JUDGED = 24 + 4096;

type Side = 'local' | 'remote';

/** Passthrough has no network of its own (the client's v2 handshake is end to end). */
const NO_NETWORK: Network = { name: 'none', magic: Buffer.alloc(4), port: 0 };

/** Up to this payload size a v1 message is written as one buffer (header copied in front). */
const COALESCE_MAX = 16 * 1024;

/**
 * What the local side may send before we can encrypt (the peer's key is not in yet) is held raw, up
 * to this many bytes; past it the local side is not read until the peer answers. A v1 client sends
 * one VERSION (about 130 bytes) and waits for the peer's, so this is never reached in normal use.
 */
export const MAX_HELD = 64 * 1024;

export class Bridge {
  private readonly o: BridgeOptions;
  private readonly record: ConnectionRecord;
  private readonly log: Logger;
  private state: State;
  /** Undefined only while an inbound Bridge waits for its node connection. */
  private local: Socket | undefined;
  private remote: Socket;
  /** Inbound: what is bound for the node before its connection is up (the remote is paused meanwhile). */
  private readonly toLocalPending: Buffer[] = [];
  /** Messages dropped instead of relayed, by reason: logged at debug one by one, counted at close. */
  private readonly drops = new Map<ErrorCode, number>();
  private readonly pauses: Record<Side, Set<string>> = { local: new Set(), remote: new Set() };
  private readonly draining = new Set<Socket>();
  private localEnded = false;
  private remoteEnded = false;
  /** The side whose FIN came first: the closed line names it (the other side's FIN usually follows). */
  private firstEnded: Side | undefined;
  private readonly closedSockets = new Set<Socket>();
  private handshakeTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  /** For each socket we listen on, the function that removes our listeners again. */
  private readonly listeners = new Map<Socket, () => void>();
  /** Aborts a redial or a node connection still in progress when the Bridge ends. */
  private readonly ended = new AbortController();
  /** The network the session is on (magic for v1 framing and the key derivation). */
  private network: Network;
  /** Shaping: the ladder every burst we encrypt is padded to (undefined: no shaping). */
  private readonly ladder: readonly number[] | undefined;
  /** Shaping under cover: when the next cover burst is due, and its size. */
  private readonly cover: CoverClock | undefined;
  private coverTimer: NodeJS.Timeout | undefined;

  constructor(options: BridgeOptions) {
    this.o = options;
    // A responder learns its peer's network from the handshake (settleNetwork); until then, the first.
    this.network = options.role === 'initiator' ? options.network : options.role === 'responder' ? options.networks[0] : NO_NETWORK;
    this.record = options.record;
    this.log = options.log;
    this.remote = options.remote;
    if (options.role === 'passthrough') {
      this.local = options.local;
      this.state = { kind: 'relay' };
    } else {
      const shaping = options.shaping;
      if (shaping !== undefined && shaping.mode !== 'off') {
        this.ladder = ladderFor(shaping.mode);
        if (shaping.mode === 'cover') this.cover = new CoverClock(shaping.rate);
        this.record.shaping = shaping.mode;
      }
      this.local = options.role === 'initiator' ? options.local : undefined;
      this.state = {
        kind: 'handshake',
        transport: new V2Transport({
          role: options.role,
          magic: this.network.magic,
          ...(options.role === 'responder' ? { networks: options.networks.map((n) => n.magic) } : {}),
          ...options.transportOptions,
        }),
        parser: new V1Parser(this.network.magic),
        held: new ByteQueue(),
      };
    }
  }

  start(): void {
    const localEarly = this.local === undefined ? [] : this.attach(this.local, 'local');
    const remoteEarly = this.attach(this.remote, 'remote');
    this.idleTimer = setTimeout(() => this.fail(new ProxyError('ERR_IDLE_TIMEOUT', 'no traffic in either direction')), this.o.idleTimeoutMs);
    const o = this.o;
    try {
      if (o.role === 'passthrough') {
        this.established('passthrough', undefined);
        this.writeRemote(o.localInitial);
      } else {
        const s = this.state as Extract<State, { kind: 'handshake' }>;
        this.handshakeTimer = setTimeout(() => this.guard(() => this.onHandshakeTimeout()), o.handshakeTimeoutMs);
        this.writeRemote(this.transportEvents(s.transport.start()));
        if (o.role === 'initiator') for (const chunk of o.localInitial) this.onLocalData(chunk);
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.deliver('local', localEarly);
    this.deliver('remote', remoteEarly);
    this.catchUp();
    this.resume('local', 'start');
    this.resume('remote', 'start');
  }

  /**
   * The front end may have seen a socket's FIN or close (they are emitted even while it is paused)
   * before handing it over; our listeners would never hear of it and the session would idle open.
   * A socket onEnd let go of (a remote taken for v1-only, being redialed) is no longer ours to close.
   */
  private catchUp(): void {
    for (const side of ['local', 'remote'] as const) {
      const socket = this.socketOf(side);
      if (socket === undefined) continue;
      if (this.open && socket.readableEnded) this.guard(() => this.onEnd(side));
      if (this.open && socket.closed && this.listeners.has(socket)) this.onClose(socket, side);
    }
  }

  private get open(): boolean {
    return this.state.kind !== 'closed';
  }

  /** Tear down both sockets and every timer. Idempotent. */
  destroy(reason: string, code?: ErrorCode): void {
    if (!this.open) return;
    this.state = { kind: 'closed' };
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.idleTimer);
    clearTimeout(this.coverTimer);
    this.ended.abort();
    for (const off of this.listeners.values()) off();
    this.listeners.clear();
    // Keep a no-op error listener: a destroyed socket may still report an error, which must not crash the daemon.
    for (const s of [this.local, this.remote]) {
      if (s === undefined) continue;
      s.on('error', () => {});
      s.destroy();
    }
    this.toLocalPending.length = 0;
    const r = this.record;
    const fields = {
      reason,
      code,
      ...endpoints(r),
      transport: r.transport,
      duration: `${((Date.now() - this.startedAt) / 1000).toFixed(3)}s`,
      bytes_to_peer: r.bytesToPeer,
      bytes_from_peer: r.bytesFromPeer,
      msgs_to_peer: r.msgsToPeer,
      msgs_from_peer: r.msgsFromPeer,
      decoys_to_peer: r.shaping === undefined ? undefined : r.decoysToPeer,
      decoy_bytes_to_peer: r.shaping === undefined ? undefined : r.decoyBytesToPeer,
      dropped: this.drops.size === 0 ? undefined : [...this.drops].map(([c, n]) => `${c}:${n}`).join(','),
    };
    // The slot is freed first: nothing an observer does may keep a closed connection counted.
    this.o.onDone?.();
    if (code !== undefined) this.log.warn('closed', fields);
    else this.log.info('closed', fields);
    this.o.observer.closed(r, reason, code);
  }

  // --- socket plumbing -------------------------------------------------------------------------

  /**
   * Listen on a socket. One the proxy dialed with transient reads (transient-reads.ts) emits no
   * 'data': its reads come to a sink as views of a shared buffer, valid during the call only. The
   * local side's are copied here; the remote's in onRemoteData (relayed) and by the transport (the
   * bytes of a packet not yet complete). Returns the copies of what the socket read before it had
   * a sink, for the caller to hand on (deliver) once the state is ready for them.
   */
  private attach(socket: Socket, side: Side): Buffer[] {
    const onEnd = (): void => this.guard(() => this.onEnd(side));
    const onError = (err: NodeJS.ErrnoException): void => this.guard(() => this.onSocketError(side, err));
    const onClose = (): void => this.guard(() => this.onClose(socket, side));
    let early: Buffer[] = [];
    let offData: () => void;
    if (isTransient(socket)) {
      early = setSink(socket, (view) => this.onData(side, view, true));
      offData = () => setSink(socket, undefined);
    } else {
      const onData = (chunk: Buffer): void => this.onData(side, chunk);
      socket.on('data', onData);
      offData = () => socket.off('data', onData);
    }
    socket.on('end', onEnd).on('error', onError).on('close', onClose);
    this.listeners.set(socket, () => {
      offData();
      socket.off('end', onEnd).off('error', onError).off('close', onClose);
    });
    return early;
  }

  /** Bytes a socket read before it was attached (owned copies), in order, as if they came now. */
  private deliver(side: Side, chunks: Buffer[]): void {
    for (const chunk of chunks) this.onData(side, chunk);
  }

  /** A read from either side; `transient`: a view of the shared read buffer, valid during this call only. */
  private onData(side: Side, chunk: Buffer, transient = false): void {
    this.guard(() => (side === 'local' ? this.onLocalData(chunk, transient) : this.onRemoteData(chunk, transient)));
  }

  private detach(socket: Socket): void {
    this.listeners.get(socket)?.();
    this.listeners.delete(socket);
  }

  private guard(fn: () => void): void {
    if (!this.open) return;
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (isProxyError(err)) this.destroy(err.message, err.code);
    else this.destroy(`internal error: ${(err as Error)?.stack ?? String(err)}`, 'ERR_INTERNAL');
  }

  /** A message dropped instead of relayed (Core drops the same ones): counted, logged at debug only. */
  private drop(code: ErrorCode, reason: string, from: string): void {
    this.drops.set(code, (this.drops.get(code) ?? 0) + 1);
    this.o.observer.dropped(this.record, code);
    if (this.log.level === 'debug') this.log.debug(`dropped a message from the ${from}`, { code, reason });
  }

  /** What the local side is, for log lines: the client (outbound) or the node behind us (inbound). */
  private get localName(): 'client' | 'node' {
    return this.o.role === 'responder' ? 'node' : 'client';
  }

  private socketOf(side: Side): Socket | undefined {
    return side === 'local' ? this.local : this.remote;
  }

  private pause(side: Side, why: string): void {
    this.pauses[side].add(why);
    this.socketOf(side)?.pause();
  }

  private resume(side: Side, why: string): void {
    this.pauses[side].delete(why);
    if (this.pauses[side].size === 0 && this.open) this.socketOf(side)?.resume();
  }

  /** Write to one side; if its buffer is full, stop reading the other side until it drains. */
  private write(side: Side, buffers: Buffer[]): void {
    if (buffers.length === 0 || !this.open) return;
    const dst = this.socketOf(side);
    const src: Side = side === 'local' ? 'remote' : 'local';
    if (dst === undefined) {
      // Inbound, the node is not connected yet: keep it, and read no more from the peer meanwhile.
      this.toLocalPending.push(...buffers);
      this.pause(src, 'connecting');
      return;
    }
    if (buffers.length === 1) dst.write(buffers[0]);
    else {
      dst.cork();
      for (const b of buffers) dst.write(b);
      dst.uncork();
    }
    // A write past the high-water mark sets needDrain even when libuv then wrote all of it at once
    // ('drain' follows on the next tick): pausing for that would stop and restart the other side's
    // reads once per large message. Pause only while bytes are really left in the buffer.
    if (dst.writableNeedDrain && dst.writableLength > 0 && !this.draining.has(dst)) {
      this.draining.add(dst);
      this.pause(src, 'backpressure');
      dst.once('drain', () => {
        this.draining.delete(dst);
        if (dst === this.socketOf(side)) this.resume(src, 'backpressure');
      });
    }
  }

  private writeRemote(buffers: Buffer[]): void {
    for (const b of buffers) this.record.bytesToPeer += b.length;
    this.write('remote', buffers);
  }

  // --- shaping (shaper.ts) -----------------------------------------------------------------------

  /** Write a burst of bytes the transport produced; with shaping, decoys after them bring it to a step of the ladder. */
  private writeEncrypted(transport: V2Transport, buffers: Buffer[]): void {
    if (this.ladder !== undefined && buffers.length > 0 && transport.canSend && this.mayAddDecoys()) {
      let n = 0;
      for (const b of buffers) n += b.length;
      for (const len of decoyContents(ladderTarget(n, this.ladder) - n)) buffers.push(this.decoy(transport, len));
    }
    this.writeRemote(buffers);
  }

  /**
   * Backpressure: no decoys into a remote socket whose write buffer is full. (While it is, the local
   * side is paused and produces no bursts; this holds should that ever change.)
   */
  private mayAddDecoys(): boolean {
    return !this.remote.writableNeedDrain;
  }

  /** One decoy packet with `len` bytes of contents, through the session's cipher like any packet. */
  private decoy(transport: V2Transport, len: number): Buffer {
    const packet = transport.encrypt([DECOY_ZEROS.subarray(0, len)], true);
    this.record.decoysToPeer++;
    this.record.decoyBytesToPeer += packet.length;
    return packet;
  }

  private scheduleCover(): void {
    if (this.cover === undefined) return;
    this.coverTimer = setTimeout(() => this.guard(() => this.onCoverTick()), this.cover.nextDelayMs());
  }

  /**
   * A tick of the cover clock. Sent only while idle: nothing of ours still waiting in the socket's
   * buffer (so cover never piles up behind a transfer, nor into a full buffer). It does not touch()
   * the idle timer, which is about the client's and the peer's traffic: cover must not keep a dead
   * connection open. Stopped when either side ends (onEnd) and at teardown (destroy).
   */
  private onCoverTick(): void {
    const s = this.state;
    if (s.kind !== 'session' || this.cover === undefined) return;
    const size = this.cover.burstSize();
    if (this.remote.writableLength === 0) this.writeRemote(decoyContents(size).map((len) => this.decoy(s.transport, len)));
    this.scheduleCover();
  }

  private stopCover(): void {
    clearTimeout(this.coverTimer);
    this.coverTimer = undefined;
  }

  private touch(): void {
    this.idleTimer?.refresh();
  }

  // --- data ------------------------------------------------------------------------------------

  /** `transient`: `chunk` is a view valid during this call only (attach); what is kept of it is copied. */
  private onLocalData(chunk: Buffer, transient = false): void {
    this.touch();
    const s = this.state;
    // What outlives the call is copied: a relayed chunk here, a held one in hold(); the parser copies what it keeps itself.
    switch (s.kind) {
      case 'relay':
        this.writeRemote([transient ? Buffer.from(chunk) : chunk]);
        return;
      case 'redialing':
        this.hold(s.held, chunk, transient);
        return;
      case 'handshake':
        if (!s.transport.canSend) {
          this.hold(s.held, chunk, transient);
          return;
        }
        this.writeEncrypted(s.transport, this.encryptLocal(s, chunk, transient));
        return;
      case 'session':
        this.writeEncrypted(s.transport, this.encryptLocal(s, chunk, transient));
        return;
      case 'closed':
        return;
    }
  }

  /** Held until the peer's key is in (or the redial is done): a view of the shared read buffer is copied into memory of its own. */
  private hold(held: ByteQueue, chunk: Buffer, transient: boolean): void {
    held.push(transient ? ownCopy(chunk) : chunk);
    if (held.length > MAX_HELD) this.pause('local', 'held');
  }

  /** Parse v1 bytes from the local side and encrypt each message; returns the packets to send. */
  private encryptLocal(s: { transport: V2Transport; parser: V1Parser }, chunk: Buffer, transient = false): Buffer[] {
    const out: Buffer[] = [];
    for (const ev of s.parser.push(chunk, transient)) {
      if (ev.type === 'dropped') this.drop(ev.error.code, ev.error.message, this.localName);
      else {
        this.record.msgsToPeer++;
        out.push(...s.transport.encryptPieces([contentsPrefix(ev.command), ev.payload]));
      }
    }
    return out;
  }

  /** `transient`: `chunk` is a view valid during this call only (attach); what is kept of it is copied. */
  private onRemoteData(chunk: Buffer, transient = false): void {
    this.touch();
    this.record.bytesFromPeer += chunk.length;
    const s = this.state;
    if (s.kind === 'relay') {
      // Relayed bytes outlive the call: in the write queue of a local socket that did not take them
      // at once, in the watch's parser, and held with `judging` until a fallback's VERSION is judged.
      if (transient) chunk = Buffer.from(chunk);
      if (s.watch === undefined) this.write('local', [chunk]);
      else this.watchRemote(s, s.watch, chunk);
      return;
    }
    if (s.kind !== 'handshake' && s.kind !== 'session') return;
    const toRemote = this.transportEvents(s.transport.receive(chunk, transient));
    if (this.state.kind === 'handshake' || this.state.kind === 'session') {
      // Local bytes held until we could encrypt go out now, right after our version packet.
      if (s.kind === 'handshake' && s.transport.canSend && s.held.length > 0) {
        for (const c of s.held.drain()) toRemote.push(...this.encryptLocal(s, c));
        this.resume('local', 'held');
      }
      if (this.localEnded && s.transport.canSend && !this.remote.writableEnded) {
        this.writeEncrypted(s.transport, toRemote);
        this.remote.end();
        return;
      }
      this.writeEncrypted(s.transport, toRemote);
      return;
    }
    // The remote spoke v1 (inbound): what is left goes out as it is.
    this.writeRemote(toRemote);
  }

  /** Apply transport events; returns the bytes to send to the remote, and writes messages to the local side. */
  private transportEvents(events: V2Event[]): Buffer[] {
    const toRemote: Buffer[] = [];
    const toLocal: Buffer[] = [];
    for (const ev of events) {
      switch (ev.type) {
        case 'send':
          toRemote.push(ev.data);
          break;
        case 'ready':
          this.onReady(ev.sessionId);
          break;
        case 'message': {
          let decoded: { command: string; payload: Buffer };
          try {
            decoded = decodeContents(ev.contents);
          } catch (err) {
            if (isProxyError(err) && !err.fatal) {
              this.drop(err.code, err.message, 'peer');
              continue;
            }
            throw err;
          }
          if (decoded.payload.length > MAX_V1_PAYLOAD) {
            // v2 allows 12 bytes more than v1 (a short id saves the 12-byte command): a v1 receiver
            // such as Bitcoin Core disconnects on a header above the limit, so such a message cannot
            // be relayed. The v2 peer misbehaved; its other messages still go through.
            this.drop(
              'ERR_V1_TOO_LARGE',
              `v2 ${JSON.stringify(decoded.command)} message with ${decoded.payload.length} payload bytes, above the v1 limit of ${MAX_V1_PAYLOAD}`,
              'peer',
            );
            continue;
          }
          this.record.msgsFromPeer++;
          this.learn(decoded.command, decoded.payload);
          const magic = this.network.magic;
          // A small message goes out as one buffer (one write, no writev); a large one is not copied.
          if (decoded.payload.length <= COALESCE_MAX) toLocal.push(serializeV1(magic, decoded.command, decoded.payload));
          else toLocal.push(v1Header(magic, decoded.command, decoded.payload), decoded.payload);
          break;
        }
        case 'v1': {
          // Inbound only: the peer speaks v1. Relay it untouched, from its first byte; anything
          // the node already sent goes the other way.
          const held = this.state.kind === 'handshake' ? this.state.held.drain() : [];
          if (this.state.kind === 'handshake') this.settleNetwork(this.state.transport);
          this.write('local', toLocal.splice(0));
          this.startRelay('inbound-v1', this.newWatch(false));
          this.onRemoteData(ev.data);
          return held;
        }
      }
    }
    this.write('local', toLocal);
    return toRemote;
  }

  private onReady(sessionId: Buffer): void {
    const s = this.state;
    if (s.kind !== 'handshake') throw new ProxyError('ERR_INTERNAL', `v2 session ready in state ${s.kind}`);
    this.settleNetwork(s.transport);
    // The node's bytes (inbound) come only from now on: parse them for the peer's network.
    this.state = { kind: 'session', transport: s.transport, parser: this.o.role === 'responder' ? new V1Parser(this.network.magic) : s.parser };
    clearTimeout(this.handshakeTimer);
    const r = this.record;
    r.sessionId = sessionId.toString('hex');
    if (this.o.role === 'initiator') this.o.v2Peers?.note(this.o.destination.host, this.o.destination.port, 'session', 'itself');
    const handshakeMs = Date.now() - this.startedAt;
    this.established(this.o.role === 'initiator' ? 'v2' : 'inbound-v2', handshakeMs);
    this.scheduleCover();
  }

  /** A responder with several candidate networks: the handshake (or the v1 VERSION) said which. */
  private settleNetwork(transport: V2Transport): void {
    if (this.o.role !== 'responder') return;
    const magic = transport.magic;
    const n = magic === undefined ? undefined : this.o.networks.find((c) => c.magic.equals(magic));
    if (n !== undefined) this.network = n;
  }

  /** The transport is settled: log it, tell the observers and, inbound, connect to the node. */
  private established(kind: TransportKind, handshakeMs: number | undefined): void {
    const r = this.record;
    r.transport = kind;
    r.establishedAt = Date.now();
    const network = this.o.role === 'passthrough' ? undefined : this.network.name;
    this.log.info('established', { frontend: r.frontEnd, ...endpoints(r), network, transport: kind, session_id: r.sessionId, handshake_ms: handshakeMs });
    this.o.observer.established(r, handshakeMs);
    this.o.onEstablished?.();
    this.connectLocal();
  }

  /** Inbound: dial the node now that the peer's transport is settled; meanwhile the peer is not read. Once per Bridge. */
  private connectLocal(): void {
    const o = this.o;
    if (o.role !== 'responder') return;
    this.pause('remote', 'connecting');
    o.connectLocal(this.ended.signal).then(
      (socket) => {
        // Ended while the node was being dialed: the connection is no one's to use.
        if (!this.open) {
          socket.destroy();
          return;
        }
        this.guard(() => {
          this.local = socket;
          const early = this.attach(socket, 'local');
          const pending = this.toLocalPending.splice(0);
          this.write('local', pending);
          this.deliver('local', early);
          if (this.remoteEnded) socket.end();
          this.resume('remote', 'connecting');
          this.resume('local', 'start');
        });
      },
      // After the Bridge ended this is its abort, and destroy() does nothing.
      (err: unknown) => {
        const e = isProxyError(err) ? err : new ProxyError('ERR_INTERNAL', `node connection: ${String(err)}`);
        this.destroy(`cannot reach the node: ${e.message}`, e.code);
      },
    );
  }

  // --- the remote went away, fallback and relay --------------------------------------------------

  /**
   * The one place that decides what the remote going away means: a v1-only peer to reconnect to
   * with v1, a refusal, or nothing special (the caller goes on with a normal close). Returns true
   * when it handled the event.
   */
  private remoteGone(gone: RemoteGone): boolean {
    const s = this.state;
    const o = this.o;
    if (o.role !== 'initiator' || s.kind !== 'handshake') return false;
    // Consulted only under --downgrade-guard known (fallbackDecision ignores it otherwise).
    const known = o.v2Peers?.lookup(o.destination.host, o.destination.port);
    const decision = fallbackDecision({ initiator: true, handshaking: true, bytesReceived: s.transport.bytesReceived, guard: o.guard, known });
    if (decision === 'none') return false;
    this.o.observer.fallback(this.record, decision === 'fallback');
    if (decision === 'refuse') {
      this.destroy(`remote ${gone.detail} before sending anything: it looks like a v1-only peer, and --v2-only is set`, 'ERR_V2_ONLY');
      return true;
    }
    if (decision === 'downgrade') {
      this.o.observer.downgrade(this.record, 'refused');
      this.destroy(
        `remote ${gone.detail} before sending anything, but it is known to speak v2 (${describeEvidence(known!)}): refusing to fall back to plaintext; the client may retry`,
        'ERR_V2_DOWNGRADE',
      );
      return true;
    }
    this.log.info('remote looks like a v1-only peer; reconnecting with v1', { ...endpoints(this.record), why: gone.detail });
    // Nothing was parsed (the peer never sent its key): every byte the client sent is in `held`.
    this.state = { kind: 'redialing', held: s.held };
    clearTimeout(this.handshakeTimer);
    const old = this.remote;
    this.detach(old);
    old.on('error', () => {});
    old.destroy();
    this.pause('local', 'redialing');
    o.redial(this.ended.signal).then(
      (socket) => {
        const now = this.state;
        if (now.kind !== 'redialing') {
          socket.destroy();
          return;
        }
        this.guard(() => {
          this.remote = socket;
          const early = this.attach(socket, 'remote');
          const replay = now.held.drain();
          // The remote's VERSION is held back until it is judged: a v2 peer that answers v1 was downgraded.
          this.startRelay('v1-fallback', this.newWatch(true));
          this.writeRemote(replay);
          this.deliver('remote', early);
          this.resume('local', 'redialing');
          this.resume('local', 'held');
          socket.resume();
          if (this.localEnded) socket.end();
        });
      },
      // After the Bridge ended this is its abort, and destroy() does nothing.
      (err: unknown) => {
        const e = isProxyError(err) ? err : new ProxyError('ERR_INTERNAL', `v1 fallback reconnect: ${String(err)}`);
        this.destroy(`v1 fallback reconnect failed: ${e.message}`, e.code);
      },
    );
    return true;
  }

  /** From now on both directions are relayed untouched (read along by `watch`, if given). */
  private startRelay(kind: TransportKind, watch?: RemoteWatch): void {
    this.state = { kind: 'relay', watch };
    // Relayed bytes are not ours to shape: we hold no keys for them.
    this.record.shaping = undefined;
    clearTimeout(this.handshakeTimer);
    this.established(kind, undefined);
  }

  /** A watch on the remote's v1 stream, when there is a table to learn into or a VERSION to judge. */
  private newWatch(judge: boolean): RemoteWatch | undefined {
    if (this.o.v2Peers === undefined && !judge) return undefined;
    const magic = this.network.magic;
    const parser = new V1Parser(magic, { verifyChecksum: false, keep: (command) => WATCHED.has(command) });
    return judge ? { parser, judging: new ByteQueue() } : { parser };
  }

  /** Relay the remote's v1 bytes, reading along; after a fallback, hold them until its VERSION is judged. */
  private watchRemote(s: Extract<State, { kind: 'relay' }>, watch: RemoteWatch, chunk: Buffer): void {
    let events: V1Event[];
    try {
      events = watch.parser.push(chunk);
    } catch {
      // Not a v1 stream we can read (the client will judge it): relay it, stop reading along.
      events = [];
      s.watch = undefined;
    }
    if (watch.judging === undefined) {
      this.write('local', [chunk]);
      for (const ev of events) if (ev.type === 'message') this.learn(ev.command, ev.payload);
      return;
    }
    watch.judging.push(chunk);
    const first = events[0];
    if (first === undefined && s.watch !== undefined && watch.judging.length <= MAX_JUDGED) return;
    const held = watch.judging.drain();
    watch.judging = undefined;
    if (first !== undefined && first.type === 'message' && first.command === 'version' && !this.judgeVersion(first.payload)) return;
    this.write('local', held);
    for (const ev of events) if (ev.type === 'message') this.learn(ev.command, ev.payload);
  }

  /**
   * After a fallback: the remote's own VERSION. Advertising NODE_P2P_V2, it was a v2 peer after all,
   * and the v2 attempt was cut by someone on the path. Returns false when the connection is closed
   * for it (under --downgrade-guard known, before the client sees that VERSION).
   */
  private judgeVersion(payload: Buffer): boolean {
    const o = this.o;
    if (o.role !== 'initiator') return true;
    const services = versionServices(payload);
    if (services === undefined) return true;
    const { host, port } = o.destination;
    if (!speaksV2(services)) {
      o.v2Peers?.forget(host, port);
      return true;
    }
    o.v2Peers?.note(host, port, 'version', 'itself');
    this.o.observer.downgrade(this.record, 'detected');
    const reason = "after the v1 fallback the remote's own VERSION advertises NODE_P2P_V2: the v2 attempt was cut on the path (a downgrade)";
    if (o.guard === 'known') {
      this.destroy(`${reason}; closed before relaying it`, 'ERR_V2_DOWNGRADE');
      return false;
    }
    this.log.warn('v1 fallback was a downgrade', { ...endpoints(this.record), code: 'ERR_V2_DOWNGRADE', reason });
    return true;
  }

  /** Learn from a message relayed to the local side: addresses gossiped with NODE_P2P_V2. */
  private learn(command: string, payload: Buffer): void {
    const table = this.o.v2Peers;
    if (table === undefined || (command !== 'addr' && command !== 'addrv2')) return;
    const from = this.record.peer ?? this.record.client;
    for (const a of command === 'addr' ? parseAddr(payload) : parseAddrV2(payload)) {
      if (speaksV2(a.services)) table.note(a.host, a.port, 'gossip', from);
    }
  }

  /** Every way out of the handshake state clears this timer: it fires only in that state. */
  private onHandshakeTimeout(): void {
    const ms = (this.o as InitiatorOptions | ResponderOptions).handshakeTimeoutMs;
    if (this.remoteGone({ how: 'silent', detail: `sent nothing for ${ms} ms` })) return;
    this.fail(new ProxyError('ERR_V2_HANDSHAKE_TIMEOUT', `v2 handshake not complete after ${ms} ms`));
  }

  // --- ends ------------------------------------------------------------------------------------

  private onEnd(side: Side): void {
    // Either side closing ends the session: no more cover (the remote may be ended below).
    this.stopCover();
    if (side === 'remote') {
      if (this.remoteGone({ how: 'closed', detail: 'closed the connection' })) return;
      this.remoteEnded = true;
      this.firstEnded ??= 'remote';
      if (this.state.kind === 'handshake') {
        this.destroy('remote closed during the v2 handshake', 'ERR_V2_PEER_CLOSED');
        return;
      }
      if (this.state.kind === 'session' && this.state.transport.midPacket) {
        // A stream cut inside a packet is a failure, not a close (a reset arriving while bytes were
        // still unread is also reported as an end of stream).
        this.destroy('peer closed the connection in the middle of a packet', 'ERR_PEER_RESET');
        return;
      }
      this.local?.end();
      return;
    }
    this.localEnded = true;
    this.firstEnded ??= 'local';
    const s = this.state;
    // Bytes still held for the handshake go out first; onRemoteData ends the remote after them.
    if (s.kind === 'relay' || s.kind === 'session' || (s.kind === 'handshake' && (s.transport.canSend || s.held.length === 0))) this.remote.end();
  }

  private onSocketError(side: Side, err: NodeJS.ErrnoException): void {
    const what = err.code ?? err.message;
    if (side === 'remote' && this.remoteGone({ how: 'reset', detail: `reset the connection (${what})` })) return;
    const code: ErrorCode = side === 'remote' ? 'ERR_PEER_RESET' : this.o.role === 'responder' ? 'ERR_NODE_RESET' : 'ERR_CLIENT_RESET';
    this.destroy(`${side === 'remote' ? 'peer' : this.localName} socket error: ${what}`, code);
  }

  private onClose(socket: Socket, side: Side): void {
    if (side === 'remote' && socket === this.remote && !this.remoteEnded && this.remoteGone({ how: 'closed', detail: 'closed the connection' })) return;
    this.closedSockets.add(socket);
    const other = side === 'local' ? this.remote : this.local;
    if (other === undefined || this.closedSockets.has(other)) {
      this.destroy(this.endReason());
      return;
    }
    // Nothing more can reach the closed side; deliver what the other side still holds, then stop.
    other.end(() => this.destroy(this.endReason()));
  }

  private endReason(): string {
    if (this.firstEnded === 'local') return `${this.localName} closed`;
    if (this.firstEnded === 'remote') return 'peer closed';
    return 'both sides closed';
  }
}
