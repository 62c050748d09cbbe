/**
 * Test peers and clients on real loopback sockets, built from the project's own protocol core.
 *
 * - startTestNode: a listening Bitcoin-like node. 'v2' detects v1/v2 like Bitcoin Core's responder;
 *   'v1-close' speaks only v1 and closes on anything else; 'v1-hang' speaks only v1 and goes silent.
 *   It answers version with version+verack, ping with pong, and echoes 'echo' messages back.
 * - MessageChannel: v1 or v2 message exchange over one socket (command + payload), with a queue to await.
 * - socks5Connect: a SOCKS5 client as Bitcoin Core speaks it (methods 00+02, ATYP 03).
 *
 * The v2 endpoint is our own V2Transport ('ours') or the independent peer of
 * test/helpers/independent-v2/ ('independent'), which shares no code with src/.
 */
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { V1Parser, serializeV1 } from '../../src/v1/framing.js';
import { contentsPrefix, decodeContents } from '../../src/v2/messages.js';
import { V2Transport, type V2TransportOptions } from '../../src/v2/transport.js';
import { IndependentV2Peer, type PeerOptions, decodeType, encodeType, noisyPeerOptions } from './independent-v2/index.js';

/** Which v2 implementation plays the remote node or the v2 client. */
export type Impl = 'ours' | 'independent';
export const IMPLS: readonly Impl[] = ['ours', 'independent'];

/** Suffix for test names: '' for our own transport, ' (independent peer)' for the other. */
export function implLabel(impl: Impl): string {
  return impl === 'ours' ? '' : ' (independent peer)';
}

export interface Msg {
  command: string;
  payload: Buffer;
}

/** Sends and receives whole messages over a socket, as v1 or as a v2 endpoint. */
export class MessageChannel {
  readonly received: Msg[] = [];
  sessionId: Buffer | undefined;
  closed = false;
  error: Error | undefined;
  private waiters: (() => void)[] = [];
  private parser: V1Parser | undefined;
  private transport: V2Transport | IndependentV2Peer | undefined;
  /** Messages waiting for the v2 send ciphers. */
  private pending: Msg[] = [];
  /** v2 responder detected a v1 peer: continue as v1. */
  detectedV1 = false;

  constructor(
    readonly socket: net.Socket,
    readonly magic: Buffer,
    mode: {
      v2?: V2TransportOptions['role'];
      transportOptions?: Partial<V2TransportOptions>;
      initial?: Buffer;
      /** Default 'ours'. 'independent' uses independentOptions (default noisyPeerOptions()) and ignores transportOptions. */
      impl?: Impl;
      independentOptions?: Partial<PeerOptions>;
    } = {},
  ) {
    if (mode.v2 !== undefined && mode.impl === 'independent') {
      this.transport = new IndependentV2Peer({ role: mode.v2, magic, ...(mode.independentOptions ?? noisyPeerOptions()) });
      for (const ev of this.transport.start()) if (ev.type === 'send') socket.write(ev.data);
    } else if (mode.v2 !== undefined) {
      this.transport = new V2Transport({ role: mode.v2, magic, ...mode.transportOptions });
      for (const ev of this.transport.start()) if (ev.type === 'send') socket.write(ev.data);
    } else {
      this.parser = new V1Parser(magic);
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    if (mode.initial !== undefined && mode.initial.length > 0) this.onData(mode.initial);
  }

  get isV2(): boolean {
    return this.transport !== undefined && !this.detectedV1;
  }

  /** The independent v2 endpoint, when this channel uses it (impl: 'independent'): its counters are the tests' oracle. */
  get independent(): IndependentV2Peer | undefined {
    return this.transport instanceof IndependentV2Peer ? this.transport : undefined;
  }

  send(command: string, payload: Buffer = Buffer.alloc(0)): void {
    if (this.transport !== undefined && !this.detectedV1) {
      if (!this.transport.canSend) {
        this.pending.push({ command, payload });
        return;
      }
      const prefix = this.transport instanceof IndependentV2Peer ? encodeType(command) : contentsPrefix(command);
      this.socket.write(this.transport.encrypt([prefix, payload]));
    } else {
      this.socket.write(serializeV1(this.magic, command, payload));
    }
  }

  /** v2 only, once the handshake allows it: one packet with these exact contents (e.g. malformed ones). */
  sendContents(contents: Uint8Array): void {
    if (this.transport === undefined || this.detectedV1 || !this.transport.canSend) throw new Error('sendContents needs an established v2 channel');
    this.socket.write(this.transport.encrypt([contents]));
  }

  private onData(chunk: Buffer): void {
    try {
      if (this.transport !== undefined && !this.detectedV1) {
        for (const ev of this.transport.receive(chunk)) {
          if (ev.type === 'send') this.socket.write(ev.data);
          else if (ev.type === 'ready') this.sessionId = ev.sessionId;
          else if (ev.type === 'message') this.received.push(this.decode(ev.contents));
          else if (ev.type === 'v1') {
            this.detectedV1 = true;
            this.parser = new V1Parser(this.magic);
            this.onV1(ev.data);
          }
        }
        if (this.transport.canSend && this.pending.length > 0) {
          const p = this.pending.splice(0);
          for (const m of p) this.send(m.command, m.payload);
        }
      } else {
        this.onV1(chunk);
      }
    } catch (err) {
      this.error = err as Error;
      this.socket.destroy();
    }
    this.wake();
  }

  private decode(contents: Buffer): Msg {
    if (!(this.transport instanceof IndependentV2Peer)) return decodeContents(contents);
    const { command, payload } = decodeType(contents);
    return { command, payload: Buffer.from(payload) };
  }

  private onV1(chunk: Buffer): void {
    for (const ev of this.parser!.push(chunk)) if (ev.type === 'message') this.received.push({ command: ev.command, payload: Buffer.from(ev.payload) });
  }

  private wake(): void {
    const w = this.waiters.splice(0);
    for (const f of w) f();
  }

  /** Resolve when `predicate` holds (checked on every event), or reject after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received ${this.received.map((m) => m.command).join(',')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next message with this command, removed from the queue. */
  async next(command: string, timeoutMs = 10_000): Promise<Msg> {
    await this.until(() => this.received.some((m) => m.command === command) || this.closed, timeoutMs, command);
    const i = this.received.findIndex((m) => m.command === command);
    if (i < 0) throw new Error(`connection closed before "${command}" arrived${this.error ? `: ${this.error.message}` : ''}`);
    return this.received.splice(i, 1)[0];
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await this.until(() => this.closed, timeoutMs, 'close');
  }
}

/** A minimal VERSION payload; addr_recv = the given IPv4 or IPv6 address and port. */
export function versionPayload(addrRecv?: { host: string; port: number }): Buffer {
  const p = Buffer.alloc(86);
  p.writeInt32LE(70016, 0);
  p.writeBigUInt64LE(0x409n, 4); // NODE_NETWORK | NODE_WITNESS | NODE_NETWORK_LIMITED
  p.writeBigInt64LE(BigInt(Math.floor(Date.now() / 1000)), 12);
  if (addrRecv !== undefined) {
    if (net.isIPv4(addrRecv.host)) {
      p.set([0xff, 0xff], 20 + 8 + 10);
      p.set(addrRecv.host.split('.').map(Number), 20 + 8 + 12);
    } else {
      p.set(ipv6Bytes(addrRecv.host), 20 + 8);
    }
    p.writeUInt16BE(addrRecv.port, 44);
  }
  // addr_from (26 bytes of zero), nonce, user agent (empty), start height, relay
  randomBytes(8).copy(p, 72);
  p[80] = 0;
  p.writeInt32LE(0, 81);
  p[85] = 1;
  return p;
}

/** v1 handshake as a client: VERSION out, VERSION + VERACK back, VERACK out. */
export async function handshakeV1(ch: MessageChannel, addrRecv?: { host: string; port: number }, timeoutMs = 10_000): Promise<void> {
  ch.send('version', versionPayload(addrRecv));
  await ch.next('version', timeoutMs);
  await ch.next('verack', timeoutMs);
  ch.send('verack');
}

/** The 16 bytes of an IPv6 address in any text form (the test's own parser: an oracle for src/address.ts). */
export function ipv6Bytes(host: string): Buffer {
  const full = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  const [head, tail] = full.includes('::') ? full.split('::') : [full, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

export type NodeMode = 'v2' | 'v1-close' | 'v1-hang';

export interface TestNode {
  port: number;
  /** One channel per accepted connection, in order. */
  channels: MessageChannel[];
  /** Connections accepted so far (including ones that were closed at once). */
  accepted: number;
  /** Raw first bytes of each accepted connection. */
  firstBytes: Buffer[];
  stop(): Promise<void>;
}

/** A listening node on 127.0.0.1 that answers like a Bitcoin node would. */
export async function startTestNode(
  magic: Buffer,
  mode: NodeMode = 'v2',
  transportOptions: Partial<V2TransportOptions> = {},
  peer: {
    impl?: Impl;
    independentOptions?: Partial<PeerOptions>;
    /** Keep sending after the proxy's FIN (default: end at once, as Node does). */ allowHalfOpen?: boolean;
  } = {},
): Promise<TestNode> {
  const node: TestNode = { port: 0, channels: [], accepted: 0, firstBytes: [], stop: async () => {} };
  const server = net.createServer({ allowHalfOpen: peer.allowHalfOpen ?? false }, (socket) => {
    node.accepted++;
    socket.on('error', () => {});
    socket.once('data', (first: Buffer) => {
      node.firstBytes.push(Buffer.from(first));
      socket.pause();
      const isV1 = first.length >= 4 && first.subarray(0, 4).equals(magic);
      if (mode !== 'v2' && !isV1) {
        if (mode === 'v1-close') socket.destroy();
        // v1-hang: read and ignore everything, never answer (like some non-Core v1 peers)
        else socket.resume();
        return;
      }
      const ch = new MessageChannel(socket, magic, mode === 'v2' ? { v2: 'responder', transportOptions, initial: first, ...peer } : { initial: first });
      node.channels.push(ch);
      serveLikeANode(ch);
      socket.resume();
    });
  });
  Object.assign(node, await listenOnLoopback(server));
  return node;
}

/**
 * Listen on 127.0.0.1, port 0; `stop` destroys the connections still open, then closes the server
 * (a plain close() would wait for them).
 */
export async function listenOnLoopback(server: net.Server): Promise<{ port: number; stop: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answer version/ping/echo as a node would; leave other messages in the channel's queue. */
export function serveLikeANode(ch: MessageChannel): void {
  const seen = new Set<Msg>();
  const tick = (): void => {
    for (const m of ch.received) {
      if (seen.has(m)) continue;
      seen.add(m);
      if (m.command === 'version') {
        ch.send('version', versionPayload());
        ch.send('verack');
      } else if (m.command === 'ping') ch.send('pong', m.payload);
      else if (m.command === 'echo') ch.send('echo', m.payload);
    }
  };
  ch.socket.on('data', () => setImmediate(tick));
  setImmediate(tick);
}

/** Connect to a SOCKS5 proxy as Bitcoin Core does and ask for host:port. Resolves with the socket and the reply code. */
export async function socks5Connect(
  proxyPort: number,
  host: string,
  port: number,
  creds: { user: string; pass: string } | null = { user: 'a1b2c3d4e5f6a7b8-0', pass: 'a1b2c3d4e5f6a7b8-0' },
): Promise<{ socket: net.Socket; rep: number }> {
  const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const reader = byteReader(socket);
  socket.write(creds ? Buffer.from([5, 2, 0, 2]) : Buffer.from([5, 1, 0]));
  const method = await reader(2);
  if (method[1] === 0x02 && creds) {
    const u = Buffer.from(creds.user);
    const p = Buffer.from(creds.pass);
    socket.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
    await reader(2);
  }
  const h = Buffer.from(host);
  const portBuf = Buffer.alloc(2);
  portBuf.writeUInt16BE(port);
  socket.write(Buffer.concat([Buffer.from([5, 1, 0, 3, h.length]), h, portBuf]));
  const reply = await reader(10);
  reader.release();
  return { socket, rep: reply[1] };
}

/** Read exactly n bytes at a time from a socket (test client side). */
export function byteReader(socket: net.Socket): ((n: number) => Promise<Buffer>) & { release(): void } {
  let buf = Buffer.alloc(0);
  let want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  const check = (): void => {
    if (want && buf.length >= want.n) {
      const w = want;
      want = undefined;
      const out = buf.subarray(0, w.n);
      buf = buf.subarray(w.n);
      w.resolve(out);
    }
  };
  const onData = (c: Buffer): void => {
    buf = Buffer.concat([buf, c]);
    check();
  };
  const onClose = (): void => want?.reject(new Error(`socket closed with ${buf.length} of ${want.n} bytes`));
  socket.on('data', onData);
  socket.on('close', onClose);
  const read = ((n: number) =>
    new Promise<Buffer>((resolve, reject) => {
      want = { n, resolve, reject };
      check();
      if (want && socket.destroyed) onClose();
    })) as ((n: number) => Promise<Buffer>) & { release(): void };
  read.release = () => {
    socket.off('data', onData);
    socket.off('close', onClose);
    if (buf.length > 0) socket.unshift(buf);
  };
  return read;
}

/** A loopback port on which nothing listens: bound to port 0, then released. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
