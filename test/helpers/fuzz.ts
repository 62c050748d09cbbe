/**
 * Fuzz and fault harness shared by test/hardening/*.test.ts and `npm run fuzz` (test/fuzz-long.ts).
 *
 * - Rng: a seeded PRNG; every case gets its own seed, printed with any problem, so a case replays alone.
 * - Generators and mutators for the proxy's inputs: SOCKS5 negotiations (RFC 1928/1929), legacy
 *   VERSION messages, v1 streams, BIP324 transcripts. A BIP324 transcript depends on both ephemeral
 *   keys, so it cannot be recorded once and replayed: it is mutated on the fly by tapping the writes
 *   of a live endpoint (tapWrites), which also records where each write (key+garbage, terminator +
 *   version packet, each application packet) starts, so the expected error follows from the offset.
 * - Loopback actors: a scripted v2 node (write taps, half-close, custom commands) and a fake SOCKS5
 *   upstream that records each request (ATYP, address) and relays or refuses it.
 * - FUZZ_TARGETS: one per front end and handshake role; each runs one case over real sockets and
 *   reports the outcome (the error code the proxy logged for that very connection, found by the
 *   client's port in its "accepted" line) and any problem (wrong code, a hang, no end line, bytes the
 *   proxy should not have sent).
 *
 * No case makes the proxy dial anything but the test node, itself or the local sink: plannedDial()
 * reads each input with the proxy's own pure parsers, and an input that would dial anything else goes
 * to a second proxy whose upstream SOCKS5 proxy is the sink, which refuses it. So nothing leaves the
 * machine and no mutated name reaches a resolver.
 */
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { ERROR_CODES } from '../../src/errors.js';
import { classifyFirstBytes, legacyNetwork, versionDestination } from '../../src/engine/detect.js';
import { ellswiftCreate } from '../../src/crypto/ellswift.js';
import { MAX_V1_PAYLOAD, V1_HEADER_LEN } from '../../src/limits.js';
import { NETWORKS, networkByName, type Network } from '../../src/networks.js';
import { type Destination, isLoopback } from '../../src/address.js';
import { Socks5Negotiation } from '../../src/socks5/negotiation.js';
import { SOCKS4_REJECT, socks5Reply } from '../../src/socks5/reply.js';
import { V1Parser, serializeV1 } from '../../src/v1/framing.js';
import { MessageChannel, byteReader, handshakeV1, socks5Connect, startTestNode, type Msg, type TestNode, versionPayload } from './node.js';
import { startProxy, type TestProxy } from './proxy.js';

export const MAIN: Network = networkByName('main')!;
const EMPTY = Buffer.alloc(0);

// --- randomness ---------------------------------------------------------------------------------

/** xoshiro128** seeded through splitmix32: fast, reproducible, good enough to pick mutations. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  u32(): number {
    const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c = (this.c ^ this.a) >>> 0;
    this.d = (this.d ^ this.b) >>> 0;
    this.b = (this.b ^ this.c) >>> 0;
    this.a = (this.a ^ this.d) >>> 0;
    this.c = (this.c ^ t) >>> 0;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** 0..n-1 */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** lo..hi inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

/** A copy with `count` random bits flipped. */
export function flipBits(data: Buffer, rng: Rng, count = 1 + rng.int(3)): Buffer {
  const out = Buffer.from(data);
  if (out.length === 0) return out;
  for (let i = 0; i < count; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
  return out;
}

/** 1..maxPieces views of `data`, cut at random points (pieces are written separately). */
export function splitRandomly(data: Buffer, rng: Rng, maxPieces = 3): Buffer[] {
  const cuts = new Set<number>();
  const pieces = rng.range(1, maxPieces);
  for (let i = 1; i < pieces && data.length > 1; i++) cuts.add(rng.range(1, data.length - 1));
  const points = [0, ...[...cuts].sort((x, y) => x - y), data.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < points.length; i++) if (points[i + 1] > points[i]) out.push(data.subarray(points[i], points[i + 1]));
  return out.length > 0 ? out : [data];
}

// --- input generators ---------------------------------------------------------------------------

/** Bitcoin Core's stream-isolation credentials look like this. */
export const SOCKS_USER = 'a1b2c3d4e5f6a7b8-0';
export const SOCKS_PASS = 'a1b2c3d4e5f6a7b8-0';

export function socks5Auth(user: string, pass: string): Buffer {
  const u = Buffer.from(user, 'latin1');
  const p = Buffer.from(pass, 'latin1');
  return Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]);
}

/** RFC 1928 §4 CONNECT with ATYP 01 (IPv4 literal), 03 (name, as Core sends everything) or 04 (IPv6 literal). */
export function socks5Request(host: string, port: number, atyp: 1 | 3 | 4 = 3): Buffer {
  let addr: Buffer;
  if (atyp === 1) addr = Buffer.from(host.split('.').map(Number));
  else if (atyp === 4) addr = ipv6Bytes(host);
  else addr = Buffer.concat([Buffer.from([Buffer.byteLength(host, 'latin1')]), Buffer.from(host, 'latin1')]);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([5, 1, 0, atyp]), addr, p]);
}

function ipv6Bytes(host: string): Buffer {
  const full = new URL(`http://[${host}]/`).hostname.slice(1, -1);
  const [head, tail] = full.includes('::') ? full.split('::') : [full, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function ipv6String(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** A legacy client's VERSION (24-byte header + 86-byte payload) asking for addrRecv. */
export function legacyVersion(magic: Buffer, addrRecv: { host: string; port: number }): Buffer {
  return serializeV1(magic, 'version', versionPayload(addrRecv));
}

/** VERSION payload offsets (detect.ts): addr_recv ip at 28..44, port (big-endian) at 44. */
const ADDR_IP = 28;
const ADDR_PORT = 44;
const V1_LENGTH = 16;
const V1_CHECKSUM = 20;

// --- what the proxy would dial ------------------------------------------------------------------

/**
 * The destination the proxy would dial for a connection whose first bytes are `bytes`, as its own
 * pure parsers read them (detect.ts, the SOCKS5 negotiation, the v1 parser), or undefined.
 */
export function plannedDial(bytes: Buffer, network?: Network): Destination | undefined {
  try {
    const kind = classifyFirstBytes(bytes, network);
    if (kind === 'socks5') {
      for (const step of new Socks5Negotiation().push(bytes)) {
        if (step.type === 'request') return step.destination;
        if (step.type === 'fail') return undefined;
      }
      return undefined;
    }
    if (kind === 'legacy') {
      if (bytes.length < V1_HEADER_LEN) return undefined;
      const len = bytes.readUInt32LE(V1_LENGTH);
      // Only the first message: the proxy dials as soon as the VERSION is in, whatever follows.
      if (len > MAX_V1_PAYLOAD || bytes.length < V1_HEADER_LEN + len) return undefined;
      const n = legacyNetwork(bytes.subarray(0, 4), network);
      const first = new V1Parser(n.magic).push(bytes.subarray(0, V1_HEADER_LEN + len))[0];
      if (first === undefined || first.type !== 'message' || first.command !== 'version') return undefined;
      return versionDestination(first.payload);
    }
  } catch {
    // refused before any dial
  }
  return undefined;
}

// --- timing helpers -----------------------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True once `socket` has emitted 'close', false if that takes longer than `ms` (the timer is cleared either way). */
export function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      socket.off('close', onClose);
      resolve(false);
    }, ms);
    socket.once('close', onClose);
  });
}

export async function connectTo(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: options.allowHalfOpen ?? false });
  socket.on('error', () => {});
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error(`connection to port ${port} failed`)));
  });
  return socket;
}

// --- raw probes ---------------------------------------------------------------------------------

/** end: send FIN after the bytes; reset: send RST; wait: keep the connection open until the proxy closes it. */
export type Ending = 'end' | 'reset' | 'wait';

export interface ProbeResult {
  localPort: number;
  /** What the proxy sent back (first 64 KiB). */
  received: Buffer;
  /** The proxy did not close the connection within waitMs. */
  hung: boolean;
}

/** Connect, write the pieces (separate writes, a few ms apart), end as told, wait for the proxy to close. */
export async function probe(port: number, pieces: readonly Buffer[], ending: Ending, waitMs: number): Promise<ProbeResult> {
  const socket = await connectTo(port);
  const localPort = socket.localPort ?? 0;
  const received: Buffer[] = [];
  let receivedLen = 0;
  socket.on('data', (d: Buffer) => {
    if (receivedLen < 65_536) received.push(d);
    receivedLen += d.length;
  });
  for (let i = 0; i < pieces.length && !socket.destroyed; i++) {
    await new Promise<void>((resolve) => socket.write(pieces[i], () => resolve()));
    if (i + 1 < pieces.length) await sleep(2);
  }
  if (ending === 'end') socket.end();
  else if (ending === 'reset' && !socket.destroyed) socket.resetAndDestroy();
  const closed = await closedWithin(socket, waitMs);
  socket.destroy();
  return { localPort, received: Buffer.concat(received), hung: !closed };
}

// --- the proxy's log ----------------------------------------------------------------------------

/** Incremental index of a TestProxy's log lines by connection: who was accepted on which client port, how each ended. */
export class LogIndex {
  private scanned = 0;
  private readonly acceptedByPort = new Map<number, { id: number; at: number }>();
  private readonly endLines = new Map<number, string>();
  private readonly byConn = new Map<number, string[]>();
  /** Connections that logged more than one end line. */
  readonly duplicateEnds: string[] = [];

  constructor(readonly logs: string[]) {}

  update(): void {
    for (; this.scanned < this.logs.length; this.scanned++) {
      const line = this.logs[this.scanned];
      const m = /\bconn=(\d+) (\S+)/.exec(line);
      if (m === null) continue;
      const id = Number(m[1]);
      let list = this.byConn.get(id);
      if (list === undefined) this.byConn.set(id, (list = []));
      list.push(line);
      if (m[2] === 'accepted') {
        const p = /\bclient=\S*:(\d+)\b/.exec(line);
        if (p !== null) this.acceptedByPort.set(Number(p[1]), { id, at: this.scanned });
      } else if (m[2] === 'refused' || m[2] === 'closed') {
        if (this.endLines.has(id)) this.duplicateEnds.push(line);
        else this.endLines.set(id, line);
      }
    }
  }

  /** The connection accepted from this client port at or after log position `since`. */
  connOf(clientPort: number, since: number): number | undefined {
    this.update();
    const a = this.acceptedByPort.get(clientPort);
    return a !== undefined && a.at >= since ? a.id : undefined;
  }

  endOf(id: number): string | undefined {
    this.update();
    return this.endLines.get(id);
  }

  linesOf(id: number): string[] {
    this.update();
    return this.byConn.get(id) ?? [];
  }

  /** Drop every line (long fuzz runs); positions restart at 0. */
  clear(): void {
    this.logs.length = 0;
    this.scanned = 0;
    this.acceptedByPort.clear();
    this.endLines.clear();
    this.byConn.clear();
    this.duplicateEnds.length = 0;
  }
}

export function codeOf(line: string): string | undefined {
  return /\bcode=(ERR_[A-Z0-9_]+)/.exec(line)?.[1];
}

/**
 * What is wrong in these log lines: a refusal or error close without `code=ERR_...` and `reason=`,
 * a code that is not in ERROR_CODES, an ERROR line, an "internal error" (a non-ProxyError escaped).
 */
export function logProblems(lines: readonly string[]): string[] {
  const problems: string[] = [];
  for (const line of lines) {
    if (/ ERROR /.test(line)) problems.push(`ERROR line: ${line}`);
    if (/internal error/.test(line)) problems.push(`internal error: ${line}`);
    const refusal = / WARN  .*\b(refused|closed|dropped)\b/.test(line);
    if (refusal && (!/\bcode=ERR_[A-Z0-9_]+/.test(line) || !/\breason=/.test(line))) problems.push(`refusal without code and reason: ${line}`);
    const code = codeOf(line);
    if (code !== undefined && !(code in ERROR_CODES)) problems.push(`unknown code ${code}: ${line}`);
  }
  return problems;
}

/** Outcome of a connection: the code of its end line, 'clean' (no code), or why there is none. */
export async function outcomeOf(index: LogIndex, clientPort: number, since: number, waitMs = 3000): Promise<{ id?: number; outcome: string; line?: string }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const id = index.connOf(clientPort, since);
    const line = id === undefined ? undefined : index.endOf(id);
    if (line !== undefined) return { id, line, outcome: codeOf(line) ?? 'clean' };
    if (Date.now() > deadline) return { id, outcome: id === undefined ? 'not-accepted' : 'no-end-line' };
    await sleep(20);
  }
}

// --- write taps ---------------------------------------------------------------------------------

export type WritePlan =
  /** Flip one bit at a stream offset. */
  | { kind: 'flip'; offset: number; bit: number }
  /** Send up to `offset`, then FIN or RST; later writes are dropped. */
  | { kind: 'cut'; offset: number; then: 'end' | 'reset' }
  /**
   * The first write of at least `minWrite` bytes goes out half, then RST (a peer dying mid-message).
   * `beforeReset` (optional) is awaited between the two, e.g. until the other end has read every byte:
   * an RST that arrives while bytes are still unread is reported by libuv as a plain EOF.
   */
  | { kind: 'reset-inside'; minWrite: number; beforeReset?: () => Promise<void> }
  /** Deliver the stream in pieces cut at these offsets, a few ms apart (TCP segment boundaries). */
  | { kind: 'split'; at: number[] };

export interface WriteTap {
  /** Stream bytes the endpoint wrote (before the plan changed anything). */
  written: number;
  /** Where each write() started and how long it was: key+garbage, terminator+version, then one per packet. */
  writes: { start: number; length: number }[];
  fired: boolean;
}

/** Route every socket.write through `plan`. Install before the first write. */
export function tapWrites(socket: net.Socket, plan: WritePlan): WriteTap {
  const tap: WriteTap = { written: 0, writes: [], fired: false };
  const write = socket.write.bind(socket) as (data: Buffer, cb?: (err?: Error | null) => void) => boolean;
  let chain: Promise<void> = Promise.resolve();
  const splitPoints = plan.kind === 'split' ? [...plan.at].sort((x, y) => x - y) : [];
  socket.write = ((data: Uint8Array | string): boolean => {
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const start = tap.written;
    tap.written += buf.length;
    tap.writes.push({ start, length: buf.length });
    switch (plan.kind) {
      case 'flip':
        if (!tap.fired && plan.offset >= start && plan.offset < start + buf.length) {
          tap.fired = true;
          const copy = Buffer.from(buf);
          copy[plan.offset - start] ^= 1 << plan.bit;
          return write(copy);
        }
        return write(buf);
      case 'cut': {
        if (tap.fired) return false;
        if (plan.offset >= start + buf.length) return write(buf);
        tap.fired = true;
        const finish = (): void => {
          if (socket.destroyed) return;
          if (plan.then === 'end') socket.end();
          else socket.resetAndDestroy();
        };
        const head = buf.subarray(0, Math.max(0, plan.offset - start));
        if (head.length > 0) write(head, () => finish());
        else finish();
        return false;
      }
      case 'reset-inside':
        if (tap.fired) return false;
        if (buf.length < plan.minWrite) return write(buf);
        tap.fired = true;
        write(buf.subarray(0, buf.length >> 1), () => {
          const reset = (): void => {
            if (!socket.destroyed) socket.resetAndDestroy();
          };
          if (plan.beforeReset === undefined) reset();
          else plan.beforeReset().then(reset, reset);
        });
        return false;
      case 'split': {
        const pieces: Buffer[] = [];
        let from = 0;
        for (const at of splitPoints) {
          if (at <= start || at >= start + buf.length) continue;
          pieces.push(buf.subarray(from, at - start));
          from = at - start;
        }
        pieces.push(buf.subarray(from));
        for (const piece of pieces) {
          chain = chain.then(async () => {
            if (socket.destroyed) return;
            await new Promise<void>((resolve) => write(piece, () => resolve()));
            if (pieces.length > 1) await sleep(5);
          });
        }
        tap.fired ||= pieces.length > 1;
        return true;
      }
    }
  }) as typeof socket.write;
  return tap;
}

// --- scripted v2 node ---------------------------------------------------------------------------

export interface ScriptedConn {
  readonly index: number;
  readonly socket: net.Socket;
  readonly channel: MessageChannel;
  /** Every message this node sent on the connection, in order. */
  readonly sent: Msg[];
  readonly tap: WriteTap | undefined;
}

export interface ScriptedNodeOptions {
  magic?: Buffer;
  /**
   * true (default): when the proxy half-closes, answer what was received, then end; reading goes on.
   * false: end at once, like a default net.Server.
   */
  halfOpen?: boolean;
  /** Garbage length of the responder (default random 0..4095, as BIP324). */
  garbageLen?: number;
  /** A write plan per accepted connection (index from 0). */
  plan?: (index: number) => WritePlan | undefined;
  /** Called for every received message after the built-in answers (version, ping, echo). */
  onMessage?: (conn: ScriptedConn, msg: Msg) => void;
  /** Keep every sent message in conn.sent (default true; off for bulk senders). */
  recordSent?: boolean;
}

export interface ScriptedNode {
  port: number;
  conns: ScriptedConn[];
  stop(): Promise<void>;
}

/** A v2 responder on 127.0.0.1 (falls back to v1 like Core), answering version/ping/echo, with hooks for faults. */
export async function startScriptedNode(options: ScriptedNodeOptions = {}): Promise<ScriptedNode> {
  const magic = options.magic ?? MAIN.magic;
  const halfOpen = options.halfOpen ?? true;
  const sockets = new Set<net.Socket>();
  const node: ScriptedNode = { port: 0, conns: [], stop: async () => {} };
  const server = net.createServer({ allowHalfOpen: halfOpen }, (socket) => {
    const index = node.conns.length;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const plan = options.plan?.(index);
    const tap = plan === undefined ? undefined : tapWrites(socket, plan);
    const channel = new MessageChannel(socket, magic, {
      v2: 'responder',
      transportOptions: options.garbageLen === undefined ? {} : { garbage: randomBytes(options.garbageLen) },
    });
    const sent: Msg[] = [];
    const send = channel.send.bind(channel);
    const record = options.recordSent ?? true;
    channel.send = (command: string, payload: Buffer = EMPTY): void => {
      if (record) sent.push({ command, payload });
      send(command, payload);
    };
    const conn: ScriptedConn = { index, socket, channel, sent, tap };
    node.conns.push(conn);
    const tick = (): void => {
      for (const m of channel.received.splice(0)) {
        if (m.command === 'version') {
          channel.send('version', versionPayload());
          channel.send('verack');
        } else if (m.command === 'ping') channel.send('pong', m.payload);
        else if (m.command === 'echo') channel.send('echo', m.payload);
        options.onMessage?.(conn, m);
      }
    };
    socket.on('data', () => setImmediate(tick));
    if (halfOpen) {
      // Answer what came with or before the FIN first (tick is queued by the last 'data'), then end.
      socket.on('end', () => setImmediate(() => setImmediate(() => !socket.destroyed && socket.end())));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  node.port = (server.address() as net.AddressInfo).port;
  node.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return node;
}

// --- fake SOCKS5 upstream -----------------------------------------------------------------------

export interface UpstreamRequest {
  atyp: number;
  host: string;
  port: number;
  username?: string;
  password?: string;
}

export type UpstreamDecision = { rep: number } | { connect: { host: string; port: number } };

export interface FakeUpstream {
  port: number;
  /** Every CONNECT request, as received. */
  requests: UpstreamRequest[];
  /** Connections being relayed: the proxy's side and the target side. */
  relays: { client: net.Socket; target: net.Socket }[];
  stop(): Promise<void>;
}

/** A SOCKS5 server (RFC 1928/1929, CONNECT only) that records requests and relays or refuses each as `decide` says. */
export async function startFakeUpstream(decide: (req: UpstreamRequest) => UpstreamDecision): Promise<FakeUpstream> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const up: FakeUpstream = { port: 0, requests: [], relays: [], stop: async () => {} };

  async function serve(client: net.Socket): Promise<void> {
    const read = byteReader(client);
    // The server is half-open (to relay half-closes), so a FIN during negotiation must end it here.
    let relaying = false;
    client.once('end', () => !relaying && client.destroy());
    const [ver, nMethods] = await read(2);
    if (ver !== 5) throw new Error('not SOCKS5');
    const methods = nMethods === 0 ? EMPTY : await read(nMethods);
    const req: Partial<UpstreamRequest> = {};
    if (methods.includes(2)) {
      client.write(Buffer.from([5, 2]));
      const [, ulen] = await read(2);
      req.username = ulen === 0 ? '' : (await read(ulen)).toString('latin1');
      const [plen] = await read(1);
      req.password = plen === 0 ? '' : (await read(plen)).toString('latin1');
      client.write(Buffer.from([1, 0]));
    } else if (methods.includes(0)) {
      client.write(Buffer.from([5, 0]));
    } else {
      client.end(Buffer.from([5, 0xff]));
      return;
    }
    const head = await read(4);
    const atyp = head[3];
    let host: string;
    if (atyp === 1) host = [...(await read(4))].join('.');
    else if (atyp === 3) {
      const [len] = await read(1);
      host = (await read(len)).toString('latin1');
    } else if (atyp === 4) host = ipv6String(await read(16));
    else {
      client.end(socks5Reply(8));
      return;
    }
    const port = (await read(2)).readUInt16BE(0);
    const request: UpstreamRequest = { atyp, host, port, ...req };
    up.requests.push(request);
    const decision = decide(request);
    if ('rep' in decision) {
      client.end(socks5Reply(decision.rep));
      return;
    }
    const target = net.connect({ host: decision.connect.host, port: decision.connect.port, allowHalfOpen: true });
    track(target);
    const ok = await new Promise<boolean>((resolve) => {
      target.once('connect', () => resolve(true));
      target.once('close', () => resolve(false));
    });
    if (!ok || client.destroyed) {
      target.destroy();
      client.end(socks5Reply(5));
      return;
    }
    read.release();
    relaying = true;
    client.write(socks5Reply(0));
    up.relays.push({ client, target });
    client.pipe(target);
    target.pipe(client);
    // Either side gone for good: the other goes too (a clean close has already passed both FINs).
    client.once('close', () => target.destroy());
    target.once('close', () => client.destroy());
  }

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    serve(client).catch(() => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.port = (server.address() as net.AddressInfo).port;
  up.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return up;
}

// --- the fuzz environment -----------------------------------------------------------------------

/** Short deadlines so refusals by timeout (and hangs) show up within a couple of seconds. */
export const FUZZ_TIMEOUTS = { socksMs: 1500, connectMs: 1500, handshakeMs: 1500, idleMs: 15_000 };

export interface FuzzEnv {
  magic: Buffer;
  /** v2 node: the one destination fuzz inputs reach directly. */
  node: TestNode;
  /** v1-only node behind the --inbound listener. */
  v1Node: TestNode;
  /** Upstream of `viaSink`: relays only to `node`, refuses (REP 05) everything else. */
  sink: FakeUpstream;
  /** Dials directly; also has the --inbound listener. */
  direct: TestProxy;
  viaSink: TestProxy;
  inboundPort: number;
  logsOf(proxy: TestProxy): LogIndex;
  /** Forget logs and per-connection state (long runs). */
  trim(): void;
  stop(): Promise<void>;
}

export async function startFuzzEnv(): Promise<FuzzEnv> {
  const node = await startTestNode(MAIN.magic);
  const v1Node = await startTestNode(MAIN.magic, 'v1-close');
  const sink = await startFakeUpstream((r) =>
    r.host === '127.0.0.1' && r.port === node.port ? { connect: { host: '127.0.0.1', port: node.port } } : { rep: 0x05 },
  );
  const direct = await startProxy({
    maxConnections: 1000,
    timeouts: { ...FUZZ_TIMEOUTS },
    inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: v1Node.port } }],
  });
  const viaSink = await startProxy({ maxConnections: 1000, timeouts: { ...FUZZ_TIMEOUTS }, upstreamProxy: { host: '127.0.0.1', port: sink.port } });
  const indexes = new Map<TestProxy, LogIndex>([
    [direct, new LogIndex(direct.logs)],
    [viaSink, new LogIndex(viaSink.logs)],
  ]);
  return {
    magic: MAIN.magic,
    node,
    v1Node,
    sink,
    direct,
    viaSink,
    inboundPort: direct.server.inboundAddresses[0].port,
    logsOf: (proxy) => indexes.get(proxy)!,
    trim() {
      for (const index of indexes.values()) index.clear();
      node.channels.length = 0;
      node.firstBytes.length = 0;
      v1Node.channels.length = 0;
      v1Node.firstBytes.length = 0;
      sink.requests.length = 0;
      sink.relays.length = 0;
    },
    async stop() {
      await direct.stop();
      await viaSink.stop();
      await sink.stop();
      await node.stop();
      await v1Node.stop();
    },
  };
}

/** The proxy a fuzz input goes to: direct only when it would dial the test node or the proxy itself. */
export function routeFor(env: FuzzEnv, bytes: Buffer): TestProxy {
  const d = plannedDial(bytes);
  if (d === undefined) return env.direct;
  const local = isLoopback(d.host) || d.host === '0.0.0.0' || d.host === '::';
  return local && (d.port === env.node.port || d.port === env.direct.port) ? env.direct : env.viaSink;
}

export { handshakeV1 };

/**
 * After a batch: each proxy still carries a good connection end to end (SOCKS5 v1 client to the v2
 * node: handshake, ping/pong, a 100 kB echo; an inbound v2 peer to the v1 node). Throws otherwise.
 */
export async function checkHealthy(env: FuzzEnv): Promise<void> {
  for (const proxy of [env.direct, env.viaSink]) {
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', env.node.port);
    try {
      if (rep !== 0) throw new Error(`healthy check: SOCKS5 reply ${rep} from proxy ${proxy.port}`);
      const ch = new MessageChannel(socket, env.magic);
      await handshakeV1(ch);
      const nonce = randomBytes(8);
      ch.send('ping', nonce);
      if (!(await ch.next('pong')).payload.equals(nonce)) throw new Error('healthy check: pong differs');
      const payload = randomBytes(100_000);
      ch.send('echo', payload);
      if (!(await ch.next('echo')).payload.equals(payload)) throw new Error('healthy check: echo differs');
    } finally {
      socket.destroy();
    }
  }
  const socket = await connectTo(env.inboundPort);
  try {
    const ch = new MessageChannel(socket, env.magic, { v2: 'initiator' });
    await handshakeV1(ch);
    const nonce = randomBytes(8);
    ch.send('ping', nonce);
    if (!(await ch.next('pong')).payload.equals(nonce)) throw new Error('healthy check (inbound): pong differs');
  } finally {
    socket.destroy();
  }
}

// --- targets ------------------------------------------------------------------------------------

export interface CaseReport {
  target: string;
  index: number;
  seed: number;
  /** What the case did (mutation kind and parameters). */
  how: string;
  /** The code logged for the connection, 'clean', or what went wrong ('hung', 'no-end-line', ...). */
  outcome: string;
  problems: string[];
}

export interface FuzzTarget {
  name: string;
  /** Deterministic cases (every truncation point) run first: index < exhaustive(env). */
  exhaustive(env: FuzzEnv): number;
  run(env: FuzzEnv, rng: Rng, index: number): Promise<CaseReport>;
}

const WAIT_MS = 6000;

/** Judge one connection: it must have ended, with one of `expect` (any code or 'clean' when undefined). */
async function judge(
  env: FuzzEnv,
  proxy: TestProxy,
  r: { target: string; index: number; how: string; localPort: number; since: number; hung: boolean; expect?: readonly string[]; reset?: boolean },
  problems: string[],
): Promise<CaseReport> {
  const { outcome, line } = await outcomeOf(env.logsOf(proxy), r.localPort, r.since, r.hung ? 500 : 3000);
  const at = `${r.target}#${r.index} ${r.how}`;
  if (r.hung) problems.push(`${at}: the proxy kept the connection open for ${WAIT_MS} ms (outcome so far: ${outcome})`);
  // A client that resets at once may be gone before the proxy can read its address: the log then says client=?:0.
  const vanished = r.reset === true && outcome === 'not-accepted';
  if ((outcome === 'not-accepted' && !vanished) || outcome === 'no-end-line') problems.push(`${at}: ${outcome}`);
  else if (!vanished && r.expect !== undefined && !r.expect.includes(outcome)) problems.push(`${at}: expected ${r.expect.join('|')}, got ${outcome}: ${line}`);
  return { target: r.target, index: r.index, seed: 0, how: r.how, outcome: r.hung ? 'hung' : vanished ? 'reset-before-accept' : outcome, problems: problems.map((p) => (p.startsWith(at) ? p : `${at}: ${p}`)) };
}

/** Send `bytes` to the shared port of the proxy routeFor() picks, end as told, and judge the result. */
async function sharedCase(
  env: FuzzEnv,
  rng: Rng,
  c: { target: string; index: number; how: string; bytes: Buffer; ending: Ending; expect?: readonly string[]; expectReceived?: Buffer; lastReply?: number },
): Promise<CaseReport> {
  const proxy = routeFor(env, c.bytes);
  const since = proxy.logs.length;
  const ending: Ending = c.ending === 'wait' && plannedDial(c.bytes) !== undefined ? 'end' : c.ending;
  const pieces = c.bytes.length === 0 ? [] : splitRandomly(c.bytes, rng);
  const r = await probe(proxy.port, pieces, ending, WAIT_MS);
  const problems: string[] = [];
  if (ending !== 'reset' && c.expectReceived !== undefined && !r.received.equals(c.expectReceived)) {
    problems.push(`received ${r.received.toString('hex')}, expected ${c.expectReceived.toString('hex')}`);
  }
  if (ending !== 'reset' && c.lastReply !== undefined) {
    const last = r.received.subarray(-10);
    if (!last.equals(socks5Reply(c.lastReply))) problems.push(`last reply ${last.toString('hex')}, expected REP ${c.lastReply}`);
  }
  // A client that ends mid-negotiation is ERR_CLIENT_CLOSED; one that waits runs into ERR_SOCKS_TIMEOUT.
  const expect = ending === 'reset' ? undefined : ending === 'end' ? c.expect?.map((x) => (x === 'ERR_SOCKS_TIMEOUT' ? 'ERR_CLIENT_CLOSED' : x)) : c.expect;
  return judge(env, proxy, { target: c.target, index: c.index, how: `${c.how} ending=${ending}`, localPort: r.localPort, since, hung: r.hung, expect, reset: ending === 'reset' }, problems);
}

const sharedRandom: FuzzTarget = {
  name: 'shared-random',
  exhaustive: () => 0,
  async run(env, rng, index) {
    const flavour = rng.pick(['noise', 'socks5', 'socks4', 'magic', 'http'] as const);
    let bytes = rng.bytes(rng.range(1, 700));
    if (flavour === 'socks5') bytes[0] = 5;
    else if (flavour === 'socks4') bytes[0] = 4;
    else if (flavour === 'magic') {
      bytes = Buffer.concat([rng.pick(NETWORKS).magic, bytes]);
    } else if (flavour === 'http') bytes = Buffer.concat([Buffer.from(`GET /${rng.int(1000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`), bytes.subarray(0, rng.int(64))]);
    const ending = rng.pick(['end', 'end', 'end', 'reset', 'wait'] as const);
    const kind = classifyFirstBytes(bytes);
    let expect: string[] | undefined;
    let expectReceived: Buffer | undefined;
    if (kind === 'unknown') {
      expect = ['ERR_UNKNOWN_PROTOCOL'];
      expectReceived = EMPTY;
    } else if (kind === 'socks4') {
      expect = ['ERR_SOCKS4'];
      expectReceived = SOCKS4_REJECT;
    }
    return sharedCase(env, rng, { target: this.name, index, how: `${flavour} len=${bytes.length}`, bytes, ending, expect, expectReceived });
  },
};

interface SocksTemplate {
  name: string;
  /** greeting, [auth], request */
  messages: Buffer[];
  /** The reply to each message before the request. */
  replies: Buffer[];
}

function socksTemplates(env: FuzzEnv): SocksTemplate[] {
  const port = env.node.port;
  return [
    { name: 'noauth-ipv4', messages: [Buffer.from([5, 1, 0]), socks5Request('127.0.0.1', port, 1)], replies: [Buffer.from([5, 0])] },
    {
      name: 'userpass-name',
      messages: [Buffer.from([5, 2, 0, 2]), socks5Auth(SOCKS_USER, SOCKS_PASS), socks5Request('127.0.0.1', port, 3)],
      replies: [Buffer.from([5, 2]), Buffer.from([1, 0])],
    },
    {
      name: 'emptyauth-ipv6',
      messages: [Buffer.from([5, 1, 2]), socks5Auth('', ''), socks5Request('::1', port, 4)],
      replies: [Buffer.from([5, 2]), Buffer.from([1, 0])],
    },
  ];
}

const sharedSocks5: FuzzTarget = {
  name: 'shared-socks5',
  exhaustive: (env) => socksTemplates(env).reduce((n, t) => n + Buffer.concat(t.messages).length, 0),
  async run(env, rng, index) {
    const templates = socksTemplates(env);
    if (index < this.exhaustive(env)) {
      // Cut at every byte: exactly the replies to the complete messages come back, then the FIN is a refusal.
      let k = index;
      for (const t of templates) {
        const full = Buffer.concat(t.messages);
        if (k >= full.length) {
          k -= full.length;
          continue;
        }
        const replies: Buffer[] = [];
        let end = 0;
        t.messages.forEach((m, i) => {
          end += m.length;
          if (end <= k && i < t.replies.length) replies.push(t.replies[i]);
        });
        return sharedCase(env, rng, {
          target: this.name,
          index,
          how: `${t.name} cut at ${k}/${full.length}`,
          bytes: full.subarray(0, k),
          ending: 'end',
          expect: ['ERR_SOCKS_TIMEOUT'],
          expectReceived: Buffer.concat(replies),
        });
      }
    }
    const t = rng.pick(templates);
    const starts: number[] = [];
    let pos = 0;
    for (const m of t.messages) {
      starts.push(pos);
      pos += m.length;
    }
    const req = starts[starts.length - 1];
    const auth = t.messages.length === 3 ? starts[1] : -1;
    const trailer = rng.chance(0.5) ? legacyVersion(env.magic, { host: '127.0.0.1', port: env.node.port }) : EMPTY;
    const bytes = Buffer.concat([...t.messages, trailer]);
    const kinds = ['flip', 'flip', 'flip', 'nmethods-0', 'nmethods-255', 'cmd', 'atyp', 'ver', 'rsv'] as string[];
    if (auth >= 0) kinds.push('ulen-255', 'plen-255', 'auth-ver');
    if (t.name === 'userpass-name') kinds.push('dlen-0', 'dlen-255', 'dlen-short');
    const kind = rng.pick(kinds);
    let expect: string[] | undefined;
    let lastReply: number | undefined;
    let mutated: Buffer = bytes;
    let detail = '';
    switch (kind) {
      case 'flip':
        mutated = flipBits(bytes, rng);
        break;
      case 'nmethods-0':
        mutated[1] = 0;
        expect = ['ERR_SOCKS_NO_METHOD'];
        break;
      case 'nmethods-255':
        mutated[1] = 255;
        expect = ['ERR_SOCKS_TIMEOUT'];
        break;
      case 'ulen-255':
        mutated[auth + 1] = 255;
        expect = ['ERR_SOCKS_TIMEOUT'];
        break;
      case 'plen-255':
        mutated[auth + 2 + mutated[auth + 1]] = 255;
        expect = ['ERR_SOCKS_TIMEOUT'];
        break;
      case 'auth-ver':
        mutated[auth] = rng.pick([0, 2, 5, 0xff]);
        break;
      case 'cmd':
        mutated[req + 1] = rng.pick([0, 2, 3, 0x7f, 0xf0, 0xf1]);
        expect = ['ERR_SOCKS_BAD_COMMAND'];
        lastReply = 0x07;
        break;
      case 'atyp':
        mutated[req + 3] = rng.pick([0, 2, 5, 0xff]);
        expect = ['ERR_SOCKS_BAD_ATYP'];
        lastReply = 0x08;
        break;
      case 'ver':
        mutated[req] = rng.pick([0, 4, 6, 0xff]);
        expect = ['ERR_SOCKS_BAD_VERSION'];
        break;
      case 'rsv':
        mutated[req + 2] = rng.range(1, 255);
        break;
      case 'dlen-0':
        mutated[req + 4] = 0;
        expect = ['ERR_SOCKS_BAD_ADDRESS'];
        break;
      case 'dlen-255':
        mutated[req + 4] = 255;
        expect = ['ERR_SOCKS_TIMEOUT'];
        break;
      case 'dlen-short':
        mutated[req + 4] = rng.range(1, 8);
        expect = ['ERR_SOCKS_BAD_ADDRESS'];
        detail = ` dlen=${mutated[req + 4]}`;
        break;
    }
    const ending = rng.pick(['end', 'end', 'end', 'reset'] as const);
    return sharedCase(env, rng, {
      target: this.name,
      index,
      how: `${t.name} ${kind}${detail} trailer=${trailer.length > 0} bytes=${mutated.toString('hex')}`,
      bytes: mutated,
      ending,
      expect,
      lastReply,
    });
  },
};

const LEGACY_LEN = V1_HEADER_LEN + 86;

const sharedLegacy: FuzzTarget = {
  name: 'shared-legacy',
  exhaustive: () => LEGACY_LEN,
  async run(env, rng, index) {
    const good = legacyVersion(env.magic, { host: '127.0.0.1', port: env.node.port });
    if (index < LEGACY_LEN) {
      return sharedCase(env, rng, {
        target: this.name,
        index,
        how: `VERSION cut at ${index}/${LEGACY_LEN}`,
        bytes: good.subarray(0, index),
        ending: 'end',
        expect: ['ERR_SOCKS_TIMEOUT'],
        expectReceived: EMPTY,
      });
    }
    const payload = Buffer.from(good.subarray(V1_HEADER_LEN));
    const reframe = (p: Buffer): Buffer => serializeV1(env.magic, 'version', p);
    const kind = rng.pick([
      'flip',
      'flip',
      'checksum',
      'length-huge',
      'length-short',
      'length-long',
      'not-version',
      'bad-command',
      'other-magic',
      'addr-zero',
      'addr-v4-zero',
      'addr-port0',
      'addr-random-v4',
      'addr-random-v6',
      'addr-loopback',
      'addr-self',
      'payload-short',
    ] as const);
    let bytes: Buffer = Buffer.from(good);
    let expect: string[] | undefined;
    let detail = '';
    switch (kind) {
      case 'flip':
        bytes = flipBits(good, rng);
        break;
      case 'checksum':
        bytes[V1_CHECKSUM + rng.int(4)] ^= 1 << rng.int(8);
        expect = ['ERR_V1_BAD_CHECKSUM'];
        break;
      case 'length-huge': {
        const len = rng.pick([MAX_V1_PAYLOAD + 1, 0xffffffff, 0x80000000, 16_000_000]);
        bytes.writeUInt32LE(len, V1_LENGTH);
        detail = ` len=${len}`;
        expect = ['ERR_V1_TOO_LARGE'];
        break;
      }
      case 'length-short':
        // The short message fails its checksum (dropped); what follows it is then read as a header.
        bytes.writeUInt32LE(rng.range(0, 85), V1_LENGTH);
        expect = ['ERR_V1_BAD_CHECKSUM', 'ERR_V1_BAD_MAGIC'];
        break;
      case 'length-long':
        bytes.writeUInt32LE(86 + rng.range(1, 2000), V1_LENGTH);
        expect = ['ERR_SOCKS_TIMEOUT'];
        break;
      case 'not-version':
        bytes = serializeV1(env.magic, rng.pick(['verack', 'ping', 'getaddr', 'versio', 'version1']), payload);
        expect = ['ERR_V1_NOT_VERSION'];
        break;
      case 'bad-command':
        bytes[4 + rng.int(12)] = rng.pick([0x01, 0x0a, 0x7f, 0x80, 0xff]);
        expect = ['ERR_V1_BAD_COMMAND'];
        break;
      case 'other-magic':
        // Accepted as that network (no --network), then the v2 handshake with a mainnet node cannot succeed.
        bytes = serializeV1(rng.pick(NETWORKS.filter((n) => !n.magic.equals(env.magic))).magic, 'version', payload);
        break;
      case 'addr-zero':
        payload.fill(0, ADDR_IP, ADDR_IP + 16);
        bytes = reframe(payload);
        expect = ['ERR_LEGACY_BAD_ADDR'];
        break;
      case 'addr-v4-zero':
        payload.fill(0, ADDR_IP + 12, ADDR_IP + 16);
        bytes = reframe(payload);
        expect = ['ERR_LEGACY_BAD_ADDR'];
        break;
      case 'addr-port0':
        payload.writeUInt16BE(0, ADDR_PORT);
        bytes = reframe(payload);
        expect = ['ERR_LEGACY_BAD_ADDR'];
        break;
      case 'addr-random-v4':
        rng.bytes(4).copy(payload, ADDR_IP + 12);
        payload.writeUInt16BE(rng.range(1, 65535), ADDR_PORT);
        bytes = reframe(payload);
        expect = ['ERR_DIAL_REFUSED', 'ERR_LEGACY_BAD_ADDR', 'ERR_DIAL_NOT_ALLOWED'];
        break;
      case 'addr-random-v6':
        rng.bytes(16).copy(payload, ADDR_IP);
        bytes = reframe(payload);
        expect = ['ERR_DIAL_REFUSED', 'ERR_LEGACY_BAD_ADDR'];
        break;
      case 'addr-loopback':
        // 127.x.y.z other than the node's address: dialed directly, and nothing listens there.
        payload.set([127, rng.range(1, 254), rng.int(256), rng.range(1, 254)], ADDR_IP + 12);
        bytes = reframe(payload);
        detail = ` ip=${[...payload.subarray(ADDR_IP + 12, ADDR_IP + 16)].join('.')}`;
        expect = ['ERR_DIAL_REFUSED'];
        break;
      case 'addr-self':
        payload.writeUInt16BE(env.direct.port, ADDR_PORT);
        bytes = reframe(payload);
        expect = ['ERR_DIAL_NOT_ALLOWED'];
        break;
      case 'payload-short':
        bytes = reframe(payload.subarray(0, rng.range(0, ADDR_PORT + 1)));
        expect = ['ERR_LEGACY_BAD_ADDR'];
        break;
    }
    return sharedCase(env, rng, { target: this.name, index, how: `${kind}${detail}`, bytes, ending: rng.chance(0.85) ? 'end' : 'reset', expect });
  },
};

const v1Stream: FuzzTarget = {
  name: 'socks5-v1-stream',
  exhaustive: () => 0,
  async run(env, rng, index) {
    const proxy = env.direct;
    const since = proxy.logs.length;
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', env.node.port);
    const localPort = socket.localPort ?? 0;
    const problems: string[] = [];
    if (rep !== 0) {
      socket.destroy();
      return { target: this.name, index, seed: 0, how: 'connect', outcome: `rep-${rep}`, problems: [`${this.name}#${index}: SOCKS5 reply ${rep}`] };
    }
    const client = new MessageChannel(socket, env.magic);
    const msgs: Msg[] = [
      { command: 'version', payload: versionPayload() },
      { command: 'verack', payload: EMPTY },
      { command: 'ping', payload: rng.bytes(8) },
    ];
    for (let i = rng.range(1, 4); i > 0; i--) msgs.push({ command: 'echo', payload: rng.bytes(rng.range(0, 3000)) });
    const frames = msgs.map((m) => serializeV1(env.magic, m.command, m.payload));
    // The VERSION stays intact so the proxy takes the client for v1 (its first 16 bytes decide).
    const target = rng.range(1, frames.length - 1);
    const kind = rng.pick(['huge-length', 'bad-magic', 'bad-command', 'bad-checksum', 'flip', 'flip'] as const);
    const f = Buffer.from(frames[target]);
    let expect: string[] | undefined;
    let ending: Ending = 'end';
    switch (kind) {
      case 'huge-length':
        f.writeUInt32LE(rng.pick([MAX_V1_PAYLOAD + 1, 0xffffffff, 0x80000000, 16_000_000]), V1_LENGTH);
        expect = ['ERR_V1_TOO_LARGE'];
        ending = 'wait';
        break;
      case 'bad-magic':
        do rng.bytes(4).copy(f, 0);
        while (f.subarray(0, 4).equals(env.magic));
        expect = ['ERR_V1_BAD_MAGIC'];
        ending = 'wait';
        break;
      case 'bad-command':
        f[4 + rng.int(12)] = rng.pick([0x01, 0x0a, 0x7f, 0x80, 0xff]);
        expect = ['ERR_V1_BAD_COMMAND'];
        ending = 'wait';
        break;
      case 'bad-checksum':
        f[V1_CHECKSUM + rng.int(4)] ^= 1 << rng.int(8);
        expect = ['clean'];
        break;
    }
    frames[target] = f;
    let stream = Buffer.concat(frames);
    if (kind === 'flip') stream = Buffer.concat([stream.subarray(0, 16), flipBits(stream.subarray(16), rng)]);
    for (const piece of splitRandomly(stream, rng)) socket.write(piece);
    if (kind === 'bad-checksum') {
      // Only the message with the bad checksum is dropped: every other echo (and the pong) comes back, in order.
      const echoes = msgs.filter((m, i) => m.command === 'echo' && i !== target).map((m) => m.payload);
      const wantPong = target !== 2;
      const got = (): Msg[] => client.received.filter((m) => m.command === 'echo');
      await client
        .until(() => client.closed || (got().length >= echoes.length && (!wantPong || client.received.some((m) => m.command === 'pong'))), 5000)
        .catch(() => {});
      const back = got().map((m) => m.payload);
      if (back.length !== echoes.length || back.some((p, i) => !p.equals(echoes[i]))) {
        problems.push(`after a dropped message ${back.length} of ${echoes.length} echoes came back intact`);
      }
      if (wantPong && !client.received.some((m) => m.command === 'pong' && m.payload.equals(msgs[2].payload))) problems.push('no pong after a dropped message');
      const id = env.logsOf(proxy).connOf(localPort, since);
      const lines = id === undefined ? [] : env.logsOf(proxy).linesOf(id);
      if (!lines.some((l) => /dropped a message from the v1 side .*code=ERR_V1_BAD_CHECKSUM .*reason=/.test(l))) problems.push('no "dropped" log line with ERR_V1_BAD_CHECKSUM');
    }
    if (ending === 'end') socket.end();
    const closed = await closedWithin(socket, WAIT_MS);
    socket.destroy();
    return judge(env, proxy, { target: this.name, index, how: `${kind} in message ${target} (${msgs[target].command})`, localPort, since, hung: !closed, expect }, problems);
  },
};

/** Where a flipped bit lands in a v2 endpoint's output, from its recorded writes, and what the other end must do. */
function expectForFlip(tap: WriteTap, offset: number): { region: string; expect: string[] } {
  const w = tap.writes;
  if (w.length === 0 || offset >= tap.written) return { region: 'unsent', expect: ['clean'] };
  // Neither side finds the other's terminator; whichever gives up first decides the code (the other
  // end gives up when our garbage pushes it past 4111 bytes, and may reset if our bytes are unread).
  const timeout = ['ERR_V2_HANDSHAKE_TIMEOUT', 'ERR_V2_NO_TERMINATOR', 'ERR_V2_PEER_CLOSED', 'ERR_PEER_RESET'];
  if (offset < 64) return { region: 'key', expect: timeout };
  if (offset < w[0].length) return { region: 'garbage', expect: ['ERR_V2_BAD_TAG'] };
  const second = w[1];
  if (second === undefined) return { region: 'unsent', expect: ['clean'] };
  if (offset < second.start + 16) return { region: 'terminator', expect: timeout };
  if (offset < second.start + second.length) {
    return offset < second.start + 19
      ? { region: 'version-length', expect: ['ERR_V2_BAD_TAG', 'ERR_V2_TOO_LARGE', 'ERR_V2_HANDSHAKE_TIMEOUT'] }
      : { region: 'version-packet', expect: ['ERR_V2_BAD_TAG'] };
  }
  const pkt = w.find((x) => offset >= x.start && offset < x.start + x.length)!;
  // A flipped length bit may announce a longer packet that never completes: the session idles until the client leaves.
  return offset < pkt.start + 3 ? { region: 'app-length', expect: ['ERR_V2_BAD_TAG', 'ERR_V2_TOO_LARGE', 'clean'] } : { region: 'app-packet', expect: ['ERR_V2_BAD_TAG'] };
}

/** What the other end must do when a v2 endpoint's output stops at `offset` (FIN or RST). */
function expectForCut(tap: WriteTap, offset: number, then: 'end' | 'reset'): { region: string; expect: string[] } {
  const w = tap.writes;
  const handshakeEnd = w.length >= 2 ? w[1].start + w[1].length : Infinity;
  if (!tap.fired) return { region: 'unsent', expect: ['clean'] };
  const inHandshake = offset < handshakeEnd;
  if (then === 'end') return inHandshake ? { region: 'handshake', expect: ['ERR_V2_PEER_CLOSED'] } : { region: 'app', expect: ['clean'] };
  return { region: inHandshake ? 'handshake' : 'app', expect: ['ERR_V2_PEER_CLOSED', 'ERR_PEER_RESET', 'clean'] };
}

/** Wait for the proxy to close the client; if it does not within `graceMs`, end the client and wait again. */
async function endOrWait(socket: net.Socket, graceMs: number): Promise<boolean> {
  if (await closedWithin(socket, graceMs)) return true;
  socket.end();
  return closedWithin(socket, WAIT_MS);
}

/** Every message the client got must be one the remote sent, in order (the proxy never delivers unauthenticated bytes). */
function prefixProblems(got: readonly Msg[], sent: readonly Msg[]): string[] {
  for (let i = 0; i < got.length; i++) {
    const s = sent[i];
    if (s === undefined || s.command !== got[i].command || !s.payload.equals(got[i].payload)) {
      return [`client got message ${i} (${got[i].command}, ${got[i].payload.length} bytes) that the remote did not send as such`];
    }
  }
  return [];
}

const initiator: FuzzTarget = {
  name: 'initiator-remote',
  exhaustive: () => 0,
  async run(env, rng, index) {
    const kind = rng.pick(['random-close', 'random-long', 'random-hold', 'key-garbage', 'flip', 'flip', 'flip', 'cut', 'cut'] as const);
    let remotePort: number;
    let stopRemote: () => Promise<void>;
    let scripted: ScriptedNode | undefined;
    let plan: WritePlan | undefined;
    let expect: string[] | undefined;
    let how: string = kind;
    if (kind === 'flip' || kind === 'cut') {
      const g = rng.range(0, 300);
      // key, garbage, terminator, version packet, then the node's version (119) and verack (33) packets
      const span = 64 + g + 16 + 20 + 152;
      plan = kind === 'flip' ? { kind: 'flip', offset: rng.int(span), bit: rng.int(8) } : { kind: 'cut', offset: rng.range(1, span - 1), then: rng.chance(0.75) ? 'end' : 'reset' };
      const p = plan;
      scripted = await startScriptedNode({ garbageLen: g, halfOpen: false, plan: (i) => (i === 0 ? p : undefined) });
      remotePort = scripted.port;
      stopRemote = scripted.stop;
      how = `${kind} garbage=${g} ${JSON.stringify(plan)}`;
    } else {
      let bytes: Buffer;
      let hold = true;
      if (kind === 'random-close') {
        bytes = rng.bytes(rng.range(1, 4000));
        hold = false;
        expect = ['ERR_V2_PEER_CLOSED'];
      } else if (kind === 'random-long') {
        bytes = rng.bytes(rng.range(64 + 4111, 6000));
        expect = ['ERR_V2_NO_TERMINATOR'];
      } else if (kind === 'random-hold') {
        bytes = rng.bytes(rng.range(1, 4000));
        expect = ['ERR_V2_HANDSHAKE_TIMEOUT'];
      } else {
        bytes = Buffer.concat([ellswiftCreate().ellswift, rng.bytes(rng.range(4111, 5000))]);
        expect = ['ERR_V2_NO_TERMINATOR'];
      }
      how = `${kind} len=${bytes.length}`;
      const sockets = new Set<net.Socket>();
      const server = net.createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
        s.resume();
        s.write(bytes, () => {
          if (!hold) s.end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      remotePort = (server.address() as net.AddressInfo).port;
      stopRemote = async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      };
    }
    const proxy = env.direct;
    const since = proxy.logs.length;
    const problems: string[] = [];
    let localPort = 0;
    let hung = false;
    try {
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', remotePort);
      localPort = socket.localPort ?? 0;
      if (rep !== 0) problems.push(`SOCKS5 reply ${rep}`);
      const client = new MessageChannel(socket, env.magic);
      client.send('version', versionPayload());
      hung = !(await endOrWait(socket, 2500));
      socket.destroy();
      if (scripted !== undefined && plan !== undefined) {
        const conn = scripted.conns[0];
        if (conn?.tap !== undefined) {
          const judged =
            plan.kind === 'flip' ? expectForFlip(conn.tap, plan.offset) : plan.kind === 'cut' ? expectForCut(conn.tap, plan.offset, plan.then) : { region: '?', expect: undefined };
          expect = judged.expect;
          how += ` region=${judged.region}`;
          problems.push(...prefixProblems(client.received, conn.sent));
        }
      }
    } catch (err) {
      problems.push(`client failed: ${(err as Error).message}`);
    } finally {
      await stopRemote();
    }
    return judge(env, proxy, { target: this.name, index, how, localPort, since, hung, expect }, problems);
  },
};

const responder: FuzzTarget = {
  name: 'responder-inbound',
  exhaustive: () => 0,
  async run(env, rng, index) {
    const proxy = env.direct;
    const kind = rng.pick(['random', 'random', 'wrong-magic', 'v1', 'flip', 'flip', 'flip', 'cut', 'cut'] as const);
    if (kind === 'random') {
      const n = rng.range(1, 6000);
      const ending = rng.pick(['end', 'end', 'wait', 'reset'] as const);
      const long = n >= 64 + 4111;
      const expect = long ? ['ERR_V2_NO_TERMINATOR'] : ending === 'end' ? ['ERR_V2_PEER_CLOSED'] : ending === 'wait' ? ['ERR_V2_HANDSHAKE_TIMEOUT'] : undefined;
      const bytes = rng.bytes(n);
      const since = proxy.logs.length;
      const r = await probe(env.inboundPort, splitRandomly(bytes, rng), ending, WAIT_MS);
      return judge(env, proxy, { target: this.name, index, how: `random len=${n} ending=${ending}`, localPort: r.localPort, since, hung: r.hung, expect: ending === 'reset' ? undefined : expect, reset: ending === 'reset' }, []);
    }
    if (kind === 'wrong-magic') {
      // The --inbound listener has no --network, so it accepts every known network (the peer's is
      // found from its handshake): a network it does not accept is one with an unknown magic.
      let magic = rng.bytes(4);
      while (NETWORKS.some((n) => n.magic.equals(magic))) magic = rng.bytes(4);
      const full = serializeV1(magic, 'version', versionPayload());
      const bytes = full.subarray(0, rng.range(16, full.length));
      const since = proxy.logs.length;
      const ending = rng.pick(['end', 'wait'] as const);
      const r = await probe(env.inboundPort, splitRandomly(bytes, rng), ending, WAIT_MS);
      return judge(env, proxy, { target: this.name, index, how: `v1 VERSION of unaccepted network ${magic.toString('hex')}, ${bytes.length} bytes, ending=${ending}`, localPort: r.localPort, since, hung: r.hung, expect: ['ERR_V1_WRONG_NETWORK'] }, []);
    }
    const since = proxy.logs.length;
    const socket = await connectTo(env.inboundPort);
    const localPort = socket.localPort ?? 0;
    const problems: string[] = [];
    let how: string = kind;
    let expect: string[] | undefined;
    let hung: boolean;
    if (kind === 'v1') {
      // A v1 peer on the inbound port is relayed as is to the v1 node behind it.
      const ch = new MessageChannel(socket, env.magic);
      try {
        await handshakeV1(ch, undefined, 5000);
      } catch (err) {
        problems.push(`v1 peer through --inbound: ${(err as Error).message}`);
      }
      socket.end();
      hung = !(await closedWithin(socket, WAIT_MS));
      expect = ['clean'];
    } else {
      const g = rng.range(0, 300);
      // key, garbage, terminator, version packet, then our VERSION packet (119 bytes)
      const span = 64 + g + 16 + 20 + 119;
      const offset = rng.int(span);
      const then = rng.chance(0.75) ? 'end' : 'reset';
      const plan: WritePlan = kind === 'flip' ? { kind: 'flip', offset, bit: rng.int(8) } : { kind: 'cut', offset, then };
      const tap = tapWrites(socket, plan);
      const ch = new MessageChannel(socket, env.magic, { v2: 'initiator', transportOptions: { garbage: rng.bytes(g) } });
      ch.send('version', versionPayload());
      hung = !(await endOrWait(socket, 2500));
      const judged = kind === 'flip' ? expectForFlip(tap, offset) : expectForCut(tap, offset, then);
      expect = judged.expect;
      how = `${kind} garbage=${g} ${JSON.stringify(plan)} region=${judged.region}`;
    }
    socket.destroy();
    return judge(env, proxy, { target: this.name, index, how, localPort, since, hung, expect, reset: how.includes('"reset"') }, problems);
  },
};

export const FUZZ_TARGETS: readonly FuzzTarget[] = [sharedRandom, sharedSocks5, sharedLegacy, v1Stream, initiator, responder];

export function fuzzTarget(name: string): FuzzTarget {
  const t = FUZZ_TARGETS.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no fuzz target ${name}; known: ${FUZZ_TARGETS.map((x) => x.name).join(', ')}`);
  return t;
}

/** Run `count` cases of a target from case index `from`, `concurrency` at a time; each case gets its own seed. */
export async function runBatch(env: FuzzEnv, target: FuzzTarget, options: { from?: number; count: number; seed: number; concurrency?: number }): Promise<CaseReport[]> {
  const from = options.from ?? 0;
  const master = new Rng(options.seed);
  const seeds = Array.from({ length: options.count }, () => master.u32());
  const reports: CaseReport[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < options.count) {
      const i = next++;
      const seed = seeds[i];
      let report: CaseReport;
      try {
        report = await target.run(env, new Rng(seed), from + i);
      } catch (err) {
        report = { target: target.name, index: from + i, seed, how: 'harness', outcome: 'harness-error', problems: [`${target.name}#${from + i}: ${(err as Error).stack ?? String(err)}`] };
      }
      report.seed = seed;
      report.problems = report.problems.map((p) => `${p} [replay: target=${target.name} index=${from + i} seed=${seed}]`);
      reports.push(report);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 12 }, worker));
  return reports;
}

/** outcome -> count */
export function tally(reports: readonly CaseReport[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of reports) m.set(r.outcome, (m.get(r.outcome) ?? 0) + 1);
  return m;
}
