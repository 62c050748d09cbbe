/**
 * The endpoints of the proxy benchmark, on loopback, built from the project's own protocol core and
 * kept lean so that the process under test is the bottleneck: the servers run in the peers child
 * (bench/peers-process.ts), the clients in the bench process (bench/proxy.ts).
 *
 * - startV2EchoPeer: a BIP324 responder (V2Transport) that answers version with version+verack,
 *   ping with pong, and echoes every other message back unchanged (same contents, re-encrypted),
 *   except for the one-way floods: `block` messages are counted and dropped (a sink, `sunk` in
 *   PeerCounters), and a `flood` message (payload LE32 size) makes it send `block` messages of that
 *   size (payload LE32 size || LE32 count: that many) for as long as the connection lasts, as fast as
 *   the socket takes them (a source).
 * - startV1EchoNode: the same over v1; echoes by re-sending the received header and payload.
 * - startRawEcho: echoes bytes (the relay baseline's server: no framing at all).
 * - V1Client: a v1 client as Bitcoin Core speaks it; socks5Connect as Core's SOCKS5 client
 *   (methods 00+02 with a user/password, ATYP 03 with the address as text).
 * - V2Client: a v2 initiator as Bitcoin Core is one (its VERSION leaves with its version packet),
 *   the "native v2" baseline that talks to the v2 echo peer directly.
 * - floodSend: a one-way stream of `block` messages from either client, with backpressure.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { serializeV1, V1Parser } from '../src/v1/framing.js';
import { contentsPrefix, decodeContents } from '../src/v2/messages.js';
import { V2Transport } from '../src/v2/transport.js';

/** What the servers count, for the one-way floods (bench/peers-process.ts reports them as 'stats'). */
export interface PeerCounters {
  /** Payload bytes of `block` messages received and dropped by the v2 peer. */
  sunk: number;
}

/** The command the floods use: both ways it is a short id in v2, and nobody answers it. */
export const FLOOD_COMMAND = 'block';

export interface EchoServer {
  port: number;
  /** Connections currently open. */
  readonly open: number;
  close(): Promise<void>;
}

/** A minimal VERSION payload (protocol 70016, no addresses, empty user agent), as Core would accept it. */
export function versionPayload(): Buffer {
  const p = Buffer.alloc(86);
  p.writeInt32LE(70016, 0);
  p.writeBigUInt64LE(0x409n, 4); // NODE_NETWORK | NODE_WITNESS | NODE_NETWORK_LIMITED
  p.writeBigInt64LE(BigInt(Math.floor(Date.now() / 1000)), 12);
  randomBytes(8).copy(p, 72); // nonce; addr_recv, addr_from, user agent, start height stay 0
  p[85] = 1; // relay
  return p;
}

/** A loopback server on an ephemeral port: Nagle off, errors end the socket, close() destroys every connection. */
export async function listen(onConnection: (socket: net.Socket) => void): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    onConnection(socket);
  });
  // A burst of 1000 connections must not overflow the accept queue.
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 2048 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Write a batch under cork; if the kernel buffer is full, stop reading until it drains (an echo must not queue without bound). */
function writeAll(socket: net.Socket, out: Buffer[]): void {
  if (out.length === 0) return;
  socket.cork();
  for (const b of out) socket.write(b);
  socket.uncork();
  if (socket.writableNeedDrain && !socket.isPaused()) {
    socket.pause();
    socket.once('drain', () => socket.resume());
  }
}

/** Send `count` (0: for as long as the socket is open) `size`-byte block messages on a v2 transport, with backpressure. */
function v2Source(socket: net.Socket, t: V2Transport, size: number, count: number): void {
  const payload = randomBytes(size);
  const prefix = contentsPrefix(FLOOD_COMMAND);
  let left = count === 0 ? Infinity : count;
  const pump = (): void => {
    while (!socket.destroyed && !socket.writableNeedDrain && left > 0) {
      left--;
      socket.cork();
      for (const b of t.encryptPieces([prefix, payload])) socket.write(b);
      socket.uncork();
    }
    if (!socket.destroyed && left > 0) socket.once('drain', pump);
  };
  pump();
}

export function startV2EchoPeer(magic: Buffer, counters: PeerCounters = { sunk: 0 }): Promise<EchoServer> {
  return listen((socket) => {
    const t = new V2Transport({ role: 'responder', magic });
    t.start();
    socket.on('data', (chunk: Buffer) => {
      const out: Buffer[] = [];
      try {
        for (const ev of t.receive(chunk)) {
          if (ev.type === 'send') out.push(ev.data);
          else if (ev.type === 'v1') throw new Error('the bench v2 peer was reached over v1');
          else if (ev.type === 'message') {
            const { command, payload } = decodeContents(ev.contents);
            if (command === 'version') {
              out.push(t.encrypt([contentsPrefix('version'), versionPayload()]), t.encrypt([contentsPrefix('verack')]));
            } else if (command === 'ping') out.push(t.encrypt([contentsPrefix('pong'), payload]));
            else if (command === FLOOD_COMMAND) counters.sunk += payload.length;
            else if (command === 'flood') setImmediate(() => v2Source(socket, t, payload.readUInt32LE(0), payload.length >= 8 ? payload.readUInt32LE(4) : 0));
            else if (command !== 'verack') out.push(t.encrypt([ev.contents]));
          }
        }
      } catch (err) {
        console.error(`bench v2 peer: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      writeAll(socket, out);
    });
  });
}

export function startV1EchoNode(magic: Buffer): Promise<EchoServer> {
  return listen((socket) => {
    const parser = new V1Parser(magic);
    socket.on('data', (chunk: Buffer) => {
      const out: Buffer[] = [];
      try {
        for (const ev of parser.push(chunk)) {
          if (ev.type !== 'message') continue;
          if (ev.command === 'version') out.push(serializeV1(magic, 'version', versionPayload()), serializeV1(magic, 'verack', Buffer.alloc(0)));
          else if (ev.command === 'ping') out.push(serializeV1(magic, 'pong', ev.payload));
          else if (ev.command !== 'verack') out.push(ev.header, ev.payload);
        }
      } catch (err) {
        console.error(`bench v1 node: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      writeAll(socket, out);
    });
  });
}

export function startRawEcho(): Promise<EchoServer> {
  return listen((socket) => socket.pipe(socket));
}

/** Resolves once connected to 127.0.0.1:port. */
export function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Reads exact byte counts from a socket during a request/reply exchange, then hands the socket back. */
export class ExactReader {
  private buf: Buffer = Buffer.alloc(0);
  private want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.check();
  };
  private readonly onEnd = (): void => this.want?.reject(new Error('connection closed during SOCKS5 negotiation'));

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = { n, resolve, reject };
      this.check();
    });
  }

  release(): void {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    if (this.buf.length > 0) this.socket.unshift(this.buf);
  }

  private check(): void {
    if (this.want === undefined || this.buf.length < this.want.n) return;
    const { n, resolve } = this.want;
    this.want = undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    resolve(out);
  }
}

const SOCKS_USER = Buffer.from('bench-user-0');
const SOCKS_PASS = Buffer.from('bench-pass-0');

/** A SOCKS5 CONNECT to 127.0.0.1:port through the proxy, as Bitcoin Core's client does it. */
export async function socks5Connect(proxyPort: number, port: number): Promise<net.Socket> {
  const socket = await connectTcp(proxyPort);
  const reader = new ExactReader(socket);
  try {
    socket.write(Buffer.of(5, 2, 0, 2));
    const method = await reader.read(2);
    if (method[1] === 2) {
      socket.write(Buffer.concat([Buffer.of(1, SOCKS_USER.length), SOCKS_USER, Buffer.of(SOCKS_PASS.length), SOCKS_PASS]));
      const auth = await reader.read(2);
      if (auth[1] !== 0) throw new Error('SOCKS5 authentication refused');
    } else if (method[1] !== 0) throw new Error(`SOCKS5 method 0x${method[1].toString(16)} refused`);
    const host = Buffer.from('127.0.0.1');
    const request = Buffer.concat([Buffer.of(5, 1, 0, 3, host.length), host, Buffer.of(port >> 8, port & 0xff)]);
    socket.write(request);
    const reply = await reader.read(10); // the proxy always answers with ATYP 01 (IPv4)
    if (reply[1] !== 0) throw new Error(`SOCKS5 CONNECT failed, REP 0x${reply[1].toString(16)}`);
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    reader.release();
  }
  return socket;
}

/** What both clients share: a queue per command for request/reply, or a callback for streaming. */
export abstract class MessageClient {
  private readonly backlog = new Map<string, Buffer[]>();
  private readonly waiters = new Map<string, (payload: Buffer) => void>();
  private failure: Error | undefined;
  private onFail: ((err: Error) => void) | undefined;
  /** When set, every message without a waiter goes here instead of the backlog. */
  onMessage: ((command: string, payload: Buffer) => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  abstract send(command: string, payload?: Buffer): void;

  /** The wire bytes of one more `command` message with this payload (a v2 client encrypts each anew). */
  abstract frame(command: string, payload: Buffer): Buffer[];

  next(command: string): Promise<Buffer> {
    const queued = this.backlog.get(command)?.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.set(command, resolve);
      this.onFail = reject;
    });
  }

  /** version -> version + verack -> verack, as a client opens a connection. */
  async handshake(): Promise<void> {
    this.send('version', versionPayload());
    await this.next('version');
    await this.next('verack');
    this.send('verack');
  }

  protected dispatch(command: string, payload: Buffer): void {
    const waiter = this.waiters.get(command);
    if (waiter !== undefined) {
      this.waiters.delete(command);
      waiter(payload);
    } else if (this.onMessage !== undefined) this.onMessage(command, payload);
    else {
      const q = this.backlog.get(command);
      if (q === undefined) this.backlog.set(command, [payload]);
      else q.push(payload);
    }
  }

  protected fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.waiters.clear();
    this.onFail?.(err);
    this.socket.destroy();
  }
}

/** A v1 message client. */
export class V1Client extends MessageClient {
  private readonly parser: V1Parser;

  constructor(
    socket: net.Socket,
    readonly magic: Buffer,
    verifyChecksum = true,
  ) {
    super(socket);
    this.parser = new V1Parser(magic, { verifyChecksum });
    socket.on('data', (chunk: Buffer) => {
      let events;
      try {
        events = this.parser.push(chunk);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      for (const ev of events) {
        if (ev.type !== 'message') this.fail(ev.error);
        else this.dispatch(ev.command, ev.payload);
      }
    });
  }

  send(command: string, payload: Buffer = Buffer.alloc(0)): void {
    this.socket.write(serializeV1(this.magic, command, payload));
  }

  /** The last frame made, reused while the payload is the same (a flood must not hash in the client). */
  private lastFrame: { command: string; payload: Buffer; wire: Buffer[] } | undefined;

  frame(command: string, payload: Buffer): Buffer[] {
    const last = this.lastFrame;
    if (last !== undefined && last.command === command && last.payload === payload) return last.wire;
    const wire = [serializeV1(this.magic, command, payload)];
    this.lastFrame = { command, payload, wire };
    return wire;
  }
}

/**
 * A v2 client as Bitcoin Core's initiator: key and garbage at once, and its VERSION in the same
 * flight as its version packet (as soon as the peer's key is in), then the same message API as
 * V1Client. Its ephemeral key comes from this process's key pool, as the proxy's does.
 */
export class V2Client extends MessageClient {
  private readonly t: V2Transport;
  /** Messages sent before the transport can encrypt (the VERSION), sent as soon as it can. */
  private readonly early: [string, Buffer][] = [];

  constructor(
    socket: net.Socket,
    readonly magic: Buffer,
  ) {
    super(socket);
    this.t = new V2Transport({ role: 'initiator', magic });
    for (const ev of this.t.start()) if (ev.type === 'send') socket.write(ev.data);
    socket.on('data', (chunk: Buffer) => {
      const out: Buffer[] = [];
      try {
        for (const ev of this.t.receive(chunk)) {
          if (ev.type === 'send') out.push(ev.data);
          else if (ev.type === 'message') {
            const { command, payload } = decodeContents(ev.contents);
            this.dispatch(command, payload);
          }
        }
        if (this.t.canSend) for (const [command, payload] of this.early.splice(0)) out.push(...this.frame(command, payload));
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      if (out.length > 0) {
        socket.cork();
        for (const b of out) socket.write(b);
        socket.uncork();
      }
    });
  }

  send(command: string, payload: Buffer = Buffer.alloc(0)): void {
    if (!this.t.canSend) this.early.push([command, payload]);
    else for (const b of this.frame(command, payload)) this.socket.write(b);
  }

  frame(command: string, payload: Buffer): Buffer[] {
    return this.t.encryptPieces([contentsPrefix(command), payload]);
  }
}

/**
 * Send `size`-byte block messages as fast as the socket takes them (at most `highWater` bytes
 * queued in this process), until the returned stop function is called.
 */
export function floodSend(client: MessageClient, size: number, highWater = Math.max(2 * size, 1 << 20)): () => void {
  const payload = randomBytes(size);
  const socket = client.socket;
  let running = true;
  const pump = (): void => {
    while (running && !socket.destroyed && socket.writableLength < highWater) {
      const wire = client.frame(FLOOD_COMMAND, payload);
      if (wire.length === 1) socket.write(wire[0]);
      else {
        socket.cork();
        for (const b of wire) socket.write(b);
        socket.uncork();
      }
    }
    if (running && !socket.destroyed) socket.once('drain', pump);
  };
  pump();
  return () => {
    running = false;
  };
}
