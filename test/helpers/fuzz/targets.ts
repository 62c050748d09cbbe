/**
 * The fuzz targets shared by test/hardening/fuzz.test.ts and `npm run fuzz` (test/fuzz-long.ts).
 *
 * FUZZ_TARGETS: one per front end and handshake role; each runs one case over real sockets and
 * reports the outcome (the error code the proxy logged for that very connection, found by the
 * client's port in its "accepted" line) and any problem (wrong code, a hang, no end line, bytes the
 * proxy should not have sent). runBatch runs many cases, each from its own seed.
 *
 * The rest of the harness, in this folder:
 * - rng.ts: the seeded PRNG and the byte mutators (flipBits, splitRandomly).
 * - inputs.ts: well-formed SOCKS5 and legacy VERSION inputs, and the offsets mutations aim at.
 * - sockets.ts: connect, wait for a close, probe with raw bytes.
 * - write-tap.ts: mutating a live v2 endpoint's output as it is written.
 * - scripted-node.ts, fake-upstream.ts: loopback actors (a v2 node with hooks, a SOCKS5 upstream).
 * - log-index.ts: finding each connection's end line and code in the proxy's log.
 * - env.ts: the node and proxies a fuzz run talks to, and routing inputs so nothing leaves the machine.
 */
import * as net from 'node:net';
import { classifyFirstBytes } from '../../../src/engine/detect.js';
import { ellswiftCreate } from '../../../src/crypto/ellswift.js';
import { MAX_V1_PAYLOAD, V1_HEADER_LEN } from '../../../src/limits.js';
import { NETWORKS } from '../../../src/networks.js';
import { SOCKS4_REJECT, socks5Reply } from '../../../src/socks5/reply.js';
import { serializeV1 } from '../../../src/v1/framing.js';
import { MessageChannel, handshakeV1, socks5Connect, type Msg, versionPayload } from '../node.js';
import { type TestProxy } from '../proxy.js';
import { type FuzzEnv, plannedDial, routeFor } from './env.js';
import { ADDR_IP, ADDR_PORT, SOCKS_PASS, SOCKS_USER, V1_CHECKSUM, V1_LENGTH, legacyVersion, socks5Auth, socks5Request } from './inputs.js';
import { outcomeOf } from './log-index.js';
import { Rng, flipBits, splitRandomly } from './rng.js';
import { type Ending, closedWithin, connectTo, probe } from './sockets.js';
import { type WritePlan, type WriteTap, tapWrites } from './write-tap.js';
import { startScriptedNode, type ScriptedNode } from './scripted-node.js';

const EMPTY = Buffer.alloc(0);

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
  return {
    target: r.target,
    index: r.index,
    seed: 0,
    how: r.how,
    outcome: r.hung ? 'hung' : vanished ? 'reset-before-accept' : outcome,
    problems: problems.map((p) => (p.startsWith(at) ? p : `${at}: ${p}`)),
  };
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
  return judge(
    env,
    proxy,
    { target: c.target, index: c.index, how: `${c.how} ending=${ending}`, localPort: r.localPort, since, hung: r.hung, expect, reset: ending === 'reset' },
    problems,
  );
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
    } else if (flavour === 'http')
      bytes = Buffer.concat([Buffer.from(`GET /${rng.int(1000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`), bytes.subarray(0, rng.int(64))]);
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
      if (!lines.some((l) => /dropped a message from the v1 side .*code=ERR_V1_BAD_CHECKSUM .*reason=/.test(l)))
        problems.push('no "dropped" log line with ERR_V1_BAD_CHECKSUM');
    }
    if (ending === 'end') socket.end();
    const closed = await closedWithin(socket, WAIT_MS);
    socket.destroy();
    return judge(
      env,
      proxy,
      { target: this.name, index, how: `${kind} in message ${target} (${msgs[target].command})`, localPort, since, hung: !closed, expect },
      problems,
    );
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
  // A flipped length bit may announce a longer packet that never completes: the session idles until
  // the client leaves, or the peer's end of stream finds the packet cut short.
  return offset < pkt.start + 3
    ? { region: 'app-length', expect: ['ERR_V2_BAD_TAG', 'ERR_V2_TOO_LARGE', 'ERR_PEER_RESET', 'clean'] }
    : { region: 'app-packet', expect: ['ERR_V2_BAD_TAG'] };
}

/**
 * What the other end must do when a v2 endpoint's output stops at `offset` (FIN or RST). After the
 * handshake, a FIN between packets is a clean close and a FIN inside a packet is ERR_PEER_RESET
 * (each application packet is one write, so a packet boundary is where a write starts).
 */
function expectForCut(tap: WriteTap, offset: number, then: 'end' | 'reset'): { region: string; expect: string[] } {
  const w = tap.writes;
  const handshakeEnd = w.length >= 2 ? w[1].start + w[1].length : Infinity;
  if (!tap.fired) return { region: 'unsent', expect: ['clean'] };
  const inHandshake = offset < handshakeEnd;
  if (then === 'end') {
    if (inHandshake) return { region: 'handshake', expect: ['ERR_V2_PEER_CLOSED'] };
    return w.some((x) => x.start === offset) ? { region: 'app', expect: ['clean'] } : { region: 'app-mid-packet', expect: ['ERR_PEER_RESET'] };
  }
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
    let how: string;
    if (kind === 'flip' || kind === 'cut') {
      const g = rng.range(0, 300);
      // key, garbage, terminator, version packet, then the node's version (119) and verack (33) packets
      const span = 64 + g + 16 + 20 + 152;
      plan =
        kind === 'flip'
          ? { kind: 'flip', offset: rng.int(span), bit: rng.int(8) }
          : { kind: 'cut', offset: rng.range(1, span - 1), then: rng.chance(0.75) ? 'end' : 'reset' };
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
            plan.kind === 'flip'
              ? expectForFlip(conn.tap, plan.offset)
              : plan.kind === 'cut'
                ? expectForCut(conn.tap, plan.offset, plan.then)
                : { region: '?', expect: undefined };
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
      return judge(
        env,
        proxy,
        {
          target: this.name,
          index,
          how: `random len=${n} ending=${ending}`,
          localPort: r.localPort,
          since,
          hung: r.hung,
          expect: ending === 'reset' ? undefined : expect,
          reset: ending === 'reset',
        },
        [],
      );
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
      return judge(
        env,
        proxy,
        {
          target: this.name,
          index,
          how: `v1 VERSION of unaccepted network ${magic.toString('hex')}, ${bytes.length} bytes, ending=${ending}`,
          localPort: r.localPort,
          since,
          hung: r.hung,
          expect: ['ERR_V1_WRONG_NETWORK'],
        },
        [],
      );
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
export async function runBatch(
  env: FuzzEnv,
  target: FuzzTarget,
  options: { from?: number; count: number; seed: number; concurrency?: number },
): Promise<CaseReport[]> {
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
        report = {
          target: target.name,
          index: from + i,
          seed,
          how: 'harness',
          outcome: 'harness-error',
          problems: [`${target.name}#${from + i}: ${(err as Error).stack ?? String(err)}`],
        };
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
