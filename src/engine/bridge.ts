/**
 * The session engine: joins a plaintext v1 socket and an encrypted v2 socket.
 *
 * One Bridge per connection, shared by every front end:
 * - outbound (SOCKS5 and legacy): plain = the local client, peer = the remote node, we initiate;
 * - inbound: plain = the v1-only node behind us, peer = whoever connected, we respond.
 *
 * The protocol work is done by the sans-I/O V2Transport and V1Parser; this file only moves bytes
 * between them and the sockets, and owns every timer and the one idempotent teardown.
 *
 * Rules it implements (see prior-art-and-core.md, sections 2 and 4):
 * - the initiator pipelines: the client's VERSION leaves in the same flight as our version packet;
 * - v1 fallback only when the remote closed or reset before sending a single byte, or sent nothing
 *   within the handshake timeout (v1 peers that hang); never after a crypto failure. The client's
 *   original bytes are replayed on the new connection, then both directions are relayed untouched;
 * - backpressure both ways: a socket whose write buffer is full pauses the socket feeding it;
 * - half-close is passed on in each direction.
 */
import type { Socket } from 'node:net';
import { ByteQueue } from '../byte-queue.js';
import { ProxyError, type ErrorCode, isProxyError } from '../errors.js';
import { MAX_V1_PAYLOAD } from '../limits.js';
import type { Logger } from '../log.js';
import type { Network } from '../networks.js';
import { V1Parser, serializeV1, v1Header } from '../v1/framing.js';
import { contentsPrefix, decodeContents } from '../v2/messages.js';
import { V2Transport, type V2Event } from '../v2/transport.js';
import { type ConnectionRecord, type ProxyObserver, type TransportKind, endpoints } from './record.js';

export interface BridgeOptions {
  record: ConnectionRecord;
  log: Logger;
  observer: ProxyObserver;
  /** The plaintext v1 side: the local client (outbound) or the node behind us (inbound). */
  plain: Socket;
  /** Bytes already read from `plain` (outbound: the client's first bytes, its VERSION among them). */
  plainInitial?: Buffer[];
  /** The encrypted side: the remote node (outbound) or the peer that connected (inbound). */
  peer: Socket;
  role: 'initiator' | 'responder';
  network: Network;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  /** Outbound only: dial the same remote again, by the same route, for a v1 fallback; aborted if the Bridge ends first. */
  redial?: (signal: AbortSignal) => Promise<Socket>;
  /** Outbound only: refuse instead of falling back. */
  v2Only?: boolean;
  /** Called once, when the transport is settled (v2 session up, v1 fallback, v1 peer or passthrough). */
  onEstablished?: () => void;
  /** Called once, after both sockets are gone. */
  onDone?: () => void;
  /** Relay both directions untouched from the start (a client that speaks v2 itself). */
  passthrough?: boolean;
  /** Test hook: options passed to the V2Transport (garbage, decoys). */
  transportOptions?: Partial<ConstructorParameters<typeof V2Transport>[0]>;
}

type Mode = 'v2' | 'redialing' | 'raw' | 'done';
type Side = 'plain' | 'peer';

/** Up to this payload size a v1 message is written as one buffer (header copied in front). */
const COALESCE_MAX = 16 * 1024;

/**
 * What the plain side may send before we can encrypt (the peer's key is not in yet) is held raw, up
 * to this many bytes; past it the plain side is not read until the peer answers. A v1 client sends
 * one VERSION (about 130 bytes) and waits for the peer's, so this is never reached in normal use.
 */
export const MAX_HELD = 64 * 1024;

export class Bridge {
  private readonly o: BridgeOptions;
  private readonly record: ConnectionRecord;
  private readonly log: Logger;
  private plain: Socket;
  private peer: Socket;
  private mode: Mode = 'v2';
  private readonly transport!: V2Transport;
  private readonly parser: V1Parser;
  /**
   * Raw plain-side bytes received while the transport cannot encrypt yet (no peer key). They are
   * parsed once it can; and since a fallback is only possible while the peer has sent nothing (so
   * before its key), they are also exactly what a v1 fallback replays.
   */
  private readonly held = new ByteQueue();
  /** Messages dropped instead of relayed, by reason: logged at debug one by one, counted at close. */
  private readonly drops = new Map<ErrorCode, number>();
  private readonly pauses: Record<Side, Set<string>> = { plain: new Set(), peer: new Set() };
  private readonly draining = new Set<Socket>();
  private plainEnded = false;
  private peerEnded = false;
  private readonly closedSockets = new Set<Socket>();
  private handshakeTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private readonly listeners = new Map<Socket, [string, (...args: any[]) => void][]>();
  /** Cancels a fallback redial still in progress when the Bridge ends. */
  private readonly ended = new AbortController();

  constructor(options: BridgeOptions) {
    this.o = options;
    this.record = options.record;
    this.log = options.log;
    this.plain = options.plain;
    this.peer = options.peer;
    if (!options.passthrough) this.transport = new V2Transport({ role: options.role, magic: options.network.magic, ...options.transportOptions });
    this.parser = new V1Parser(options.network.magic);
  }

  start(): void {
    this.attach(this.plain, 'plain');
    this.attach(this.peer, 'peer');
    this.idleTimer = setTimeout(() => this.fail(new ProxyError('ERR_IDLE_TIMEOUT', 'no traffic in either direction')), this.o.idleTimeoutMs);
    if (this.o.passthrough) {
      this.startRaw('passthrough', []);
      this.writePeer(this.o.plainInitial ?? []);
      this.catchUp();
      this.resumeBoth();
      return;
    }
    this.handshakeTimer = setTimeout(() => this.onHandshakeTimeout(), this.o.handshakeTimeoutMs);
    try {
      this.writePeer(this.transportEvents(this.transport.start()));
      for (const chunk of this.o.plainInitial ?? []) this.onPlainData(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.mode === 'done') return;
    this.catchUp();
    this.resumeBoth();
  }

  /** Start reading both sockets, except one already paused for a reason (backpressure, retained bytes). */
  private resumeBoth(): void {
    if (this.mode === 'done') return;
    this.resume('plain', 'start');
    this.resume('peer', 'start');
  }

  /**
   * The front end may have seen a socket's FIN or close (they are emitted even while it is paused)
   * before handing it over; our listeners would never hear of it and the session would idle open.
   */
  private catchUp(): void {
    for (const side of ['plain', 'peer'] as const) {
      const socket = this.socketOf(side);
      if (this.mode !== 'done' && socket.readableEnded) this.guard(() => this.onEnd(side));
      if (this.mode !== 'done' && socket.closed && socket === this.socketOf(side)) this.onClose(socket, side);
    }
  }

  /** Tear down both sockets and every timer. Idempotent. */
  destroy(reason: string, code?: ErrorCode): void {
    if (this.mode === 'done') return;
    this.mode = 'done';
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.idleTimer);
    this.ended.abort();
    for (const [socket, list] of this.listeners) for (const [ev, fn] of list) socket.off(ev, fn);
    this.listeners.clear();
    // Keep a no-op error listener: a destroyed socket may still report an error, which must not crash the daemon.
    for (const s of [this.plain, this.peer]) {
      s.on('error', () => {});
      s.destroy();
    }
    this.held.clear();
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
      dropped: this.drops.size === 0 ? undefined : [...this.drops].map(([c, n]) => `${c}:${n}`).join(','),
    };
    // The slot is freed first: nothing an observer does may keep a closed connection counted.
    this.o.onDone?.();
    if (code !== undefined) this.log.warn('closed', fields);
    else this.log.info('closed', fields);
    this.o.observer.closed(r, reason, code);
  }

  // --- socket plumbing -------------------------------------------------------------------------

  private attach(socket: Socket, side: Side): void {
    const list: [string, (...args: any[]) => void][] = [
      ['data', (chunk: Buffer) => this.guard(() => (side === 'plain' ? this.onPlainData(chunk) : this.onPeerData(chunk)))],
      ['end', () => this.guard(() => this.onEnd(side))],
      ['error', (err: NodeJS.ErrnoException) => this.onSocketError(side, err)],
      ['close', () => this.onClose(socket, side)],
    ];
    for (const [ev, fn] of list) socket.on(ev, fn);
    this.listeners.set(socket, list);
  }

  private detach(socket: Socket): void {
    for (const [ev, fn] of this.listeners.get(socket) ?? []) socket.off(ev, fn);
    this.listeners.delete(socket);
  }

  private guard(fn: () => void): void {
    if (this.mode === 'done') return;
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
  private drop(code: ErrorCode, reason: string, from: 'client' | 'node' | 'peer'): void {
    this.drops.set(code, (this.drops.get(code) ?? 0) + 1);
    this.o.observer.dropped(this.record, code);
    if (this.log.level === 'debug') this.log.debug(`dropped a message from the ${from}`, { code, reason });
  }

  private socketOf(side: Side): Socket {
    return side === 'plain' ? this.plain : this.peer;
  }

  private pause(side: Side, why: string): void {
    this.pauses[side].add(why);
    this.socketOf(side).pause();
  }

  private resume(side: Side, why: string): void {
    this.pauses[side].delete(why);
    if (this.pauses[side].size === 0 && this.mode !== 'done') this.socketOf(side).resume();
  }

  /** Write to one side; if its buffer is full, stop reading the other side until it drains. */
  private write(side: Side, buffers: Buffer[]): void {
    if (buffers.length === 0 || this.mode === 'done') return;
    const dst = this.socketOf(side);
    const src: Side = side === 'plain' ? 'peer' : 'plain';
    if (buffers.length === 1) dst.write(buffers[0]);
    else {
      dst.cork();
      for (const b of buffers) dst.write(b);
      dst.uncork();
    }
    if (dst.writableNeedDrain && !this.draining.has(dst)) {
      this.draining.add(dst);
      this.pause(src, 'backpressure');
      dst.once('drain', () => {
        this.draining.delete(dst);
        if (dst === this.socketOf(side)) this.resume(src, 'backpressure');
      });
    }
  }

  private writePeer(buffers: Buffer[]): void {
    for (const b of buffers) this.record.bytesToPeer += b.length;
    this.write('peer', buffers);
  }

  private touch(): void {
    this.idleTimer?.refresh();
  }

  // --- data ------------------------------------------------------------------------------------

  private onPlainData(chunk: Buffer): void {
    this.touch();
    if (this.mode === 'raw') {
      this.writePeer([chunk]);
      return;
    }
    if (this.mode === 'redialing' || !this.transport.canSend) {
      this.held.push(chunk);
      if (this.held.length > MAX_HELD) this.pause('plain', 'held');
      return;
    }
    this.writePeer(this.encryptPlain(chunk));
  }

  /** Parse v1 bytes from the plain side and encrypt each message; returns the packets to send. */
  private encryptPlain(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (const ev of this.parser.push(chunk)) {
      if (ev.type === 'dropped') this.drop(ev.error.code, ev.error.message, this.plainName());
      else out.push(...this.encryptMessage(ev.command, ev.payload));
    }
    return out;
  }

  /** What the plain side is, for log lines: the local client (outbound) or the node behind us (inbound). */
  private plainName(): 'client' | 'node' {
    return this.o.role === 'initiator' ? 'client' : 'node';
  }

  private encryptMessage(command: string, payload: Buffer): Buffer[] {
    this.record.msgsToPeer++;
    return this.transport.encryptPieces([contentsPrefix(command), payload]);
  }

  private onPeerData(chunk: Buffer): void {
    this.touch();
    this.record.bytesFromPeer += chunk.length;
    if (this.mode === 'raw') {
      this.write('plain', [chunk]);
      return;
    }
    if (this.mode !== 'v2') return;
    const toPeer = this.transportEvents(this.transport.receive(chunk));
    if (this.mode !== 'v2') return; // switched to raw relay by a v1 event
    if (this.transport.canSend && this.held.length > 0) {
      for (const c of this.held.drain()) toPeer.push(...this.encryptPlain(c));
      this.resume('plain', 'held');
    }
    this.writePeer(toPeer);
    if (this.plainEnded && this.transport.canSend && !this.peer.writableEnded) this.peer.end();
  }

  /** Apply transport events; returns the bytes to send to the peer, and writes messages to the plain side. */
  private transportEvents(events: V2Event[]): Buffer[] {
    const toPeer: Buffer[] = [];
    const toPlain: Buffer[] = [];
    for (const ev of events) {
      switch (ev.type) {
        case 'send':
          toPeer.push(ev.data);
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
            this.drop('ERR_V1_TOO_LARGE', `v2 ${JSON.stringify(decoded.command)} message with ${decoded.payload.length} payload bytes, above the v1 limit of ${MAX_V1_PAYLOAD}`, 'peer');
            continue;
          }
          this.record.msgsFromPeer++;
          // A small message goes out as one buffer (one write, no writev); a large one is not copied.
          if (decoded.payload.length <= COALESCE_MAX) toPlain.push(serializeV1(this.o.network.magic, decoded.command, decoded.payload));
          else toPlain.push(v1Header(this.o.network.magic, decoded.command, decoded.payload), decoded.payload);
          break;
        }
        case 'v1':
          // Inbound only: the peer speaks v1. Relay it untouched, from its first byte, and anything
          // the node already sent (held for the handshake) the other way.
          this.write('plain', toPlain.splice(0));
          this.startRaw('inbound-v1', [ev.data]);
          return this.held.drain();
      }
    }
    this.write('plain', toPlain);
    return toPeer;
  }

  private onReady(sessionId: Buffer): void {
    clearTimeout(this.handshakeTimer);
    const r = this.record;
    r.sessionId = sessionId.toString('hex');
    r.transport = this.o.role === 'initiator' ? 'v2' : 'inbound-v2';
    r.establishedAt = Date.now();
    const handshakeMs = r.establishedAt - this.startedAt;
    this.log.info('established', {
      frontend: r.frontEnd,
      ...endpoints(r),
      transport: r.transport,
      session_id: r.sessionId,
      handshake_ms: handshakeMs,
    });
    this.o.observer.established(r, handshakeMs);
    this.o.onEstablished?.();
  }

  // --- fallback and raw relay ------------------------------------------------------------------

  /** The peer closed, reset or stayed silent. Returns true when that was handled as a v1 peer. */
  private maybeFallback(what: string): boolean {
    if (this.o.role !== 'initiator' || this.mode !== 'v2' || this.transport.bytesReceived > 0) return false;
    const allowed = !this.o.v2Only && this.o.redial !== undefined;
    this.o.observer.fallback(this.record, allowed);
    if (!allowed) {
      this.destroy(`remote ${what} before sending anything: it looks like a v1-only peer, and --v2-only is set`, 'ERR_V2_ONLY');
      return true;
    }
    this.log.info('remote looks like a v1-only peer; reconnecting with v1', { peer: this.record.peer, why: what });
    this.mode = 'redialing';
    clearTimeout(this.handshakeTimer);
    const old = this.peer;
    this.detach(old);
    old.on('error', () => {});
    old.destroy();
    this.pause('plain', 'redialing');
    this.o.redial!(this.ended.signal).then(
      (socket) => {
        if (this.mode !== 'redialing') {
          socket.destroy();
          return;
        }
        this.peer = socket;
        this.attach(socket, 'peer');
        // Everything the client sent so far, exactly as it sent it (nothing was parsed: the peer never answered).
        const replay = this.held.drain();
        this.startRaw('v1-fallback', []);
        this.writePeer(replay);
        this.resume('plain', 'redialing');
        this.resume('plain', 'held');
        socket.resume();
        if (this.plainEnded) socket.end();
      },
      (err: unknown) => {
        if (this.mode !== 'redialing') return;
        const e = isProxyError(err) ? err : new ProxyError('ERR_INTERNAL', `v1 fallback reconnect: ${String(err)}`);
        this.destroy(`v1 fallback reconnect failed: ${e.message}`, e.code);
      },
    );
    return true;
  }

  /** From now on both directions are relayed untouched. `toPlain` is written to the plain side first. */
  private startRaw(kind: TransportKind, toPlain: Buffer[]): void {
    this.mode = 'raw';
    clearTimeout(this.handshakeTimer);
    const r = this.record;
    r.transport = kind;
    r.establishedAt = Date.now();
    this.log.info('established', { frontend: r.frontEnd, ...endpoints(r), transport: kind });
    this.o.observer.established(r, undefined);
    this.o.onEstablished?.();
    this.write('plain', toPlain);
  }

  private onHandshakeTimeout(): void {
    if (this.mode !== 'v2') return;
    if (this.maybeFallback(`sent nothing for ${this.o.handshakeTimeoutMs} ms`)) return;
    this.fail(new ProxyError('ERR_V2_HANDSHAKE_TIMEOUT', `v2 handshake not complete after ${this.o.handshakeTimeoutMs} ms`));
  }

  // --- ends ------------------------------------------------------------------------------------

  private onEnd(side: Side): void {
    if (side === 'peer') {
      if (this.maybeFallback('closed the connection')) return;
      this.peerEnded = true;
      if (this.mode === 'v2' && this.transport.sessionId === undefined) {
        this.destroy('remote closed during the v2 handshake', 'ERR_V2_PEER_CLOSED');
        return;
      }
      this.plain.end();
      return;
    }
    this.plainEnded = true;
    // Bytes still held for the handshake go out first; onPeerData ends the peer after them.
    if (this.mode === 'raw' || (this.mode === 'v2' && (this.transport.canSend || this.held.length === 0))) this.peer.end();
  }

  private onSocketError(side: Side, err: NodeJS.ErrnoException): void {
    if (this.mode === 'done') return;
    if (side === 'peer' && this.maybeFallback(`reset the connection (${err.code ?? err.message})`)) return;
    const code: ErrorCode = side === 'peer' ? 'ERR_PEER_RESET' : this.o.role === 'initiator' ? 'ERR_CLIENT_RESET' : 'ERR_NODE_RESET';
    this.destroy(`${side === 'peer' ? 'peer' : this.plainName()} socket error: ${err.code ?? err.message}`, code);
  }

  private onClose(socket: Socket, side: Side): void {
    if (this.mode === 'done') return;
    if (side === 'peer' && socket === this.peer && !this.peerEnded && this.maybeFallback('closed the connection')) return;
    this.closedSockets.add(socket);
    const other = side === 'plain' ? this.peer : this.plain;
    if (this.closedSockets.has(other)) {
      this.destroy(this.endReason());
      return;
    }
    // Nothing more can reach the closed side; deliver what the other side still holds, then stop.
    other.end(() => this.destroy(this.endReason()));
  }

  private endReason(): string {
    if (this.plainEnded && !this.peerEnded) return this.o.role === 'initiator' ? 'client closed' : 'node closed';
    if (this.peerEnded && !this.plainEnded) return 'peer closed';
    return 'both sides closed';
  }
}
