/**
 * The fuzz environment: a v2 test node, a v1 node behind an --inbound listener, and two proxies.
 *
 * No case makes the proxy dial anything but the test node, itself or the local sink: plannedDial()
 * reads each input with the proxy's own pure parsers, and an input that would dial anything else goes
 * (routeFor) to a second proxy whose upstream SOCKS5 proxy is the sink, which refuses it. So nothing
 * leaves the machine and no mutated name reaches a resolver.
 */
import { randomBytes } from 'node:crypto';
import { type Destination, isLoopback } from '../../../src/address.js';
import { classifyFirstBytes, legacyNetwork, versionDestination } from '../../../src/engine/detect.js';
import { MAX_V1_PAYLOAD, V1_HEADER_LEN } from '../../../src/limits.js';
import { type Network } from '../../../src/networks.js';
import { Socks5Negotiation } from '../../../src/socks5/negotiation.js';
import { V1Parser } from '../../../src/v1/framing.js';
import { MessageChannel, handshakeV1, socks5Connect, startTestNode, type TestNode } from '../node.js';
import { startProxy, type TestProxy } from '../proxy.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';
import { MAIN, V1_LENGTH } from './inputs.js';
import { LogIndex } from './log-index.js';
import { connectTo } from './sockets.js';

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
