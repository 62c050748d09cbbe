/**
 * The servers the bench client reaches, in a child process of their own (bench/peers.ts): the v2
 * echo peer, the v1 echo node and the raw echo server, all on 127.0.0.1 port 0, for the network
 * given as argument (default main). Reports their ports over IPC (bench/child.ts) as v2, v1, raw,
 * and the v2 peer's flood counters as 'stats' (sunk: payload bytes of `block` messages received).
 *
 *   node dist/bench/peers-process.js [network]
 */
import { networkByName } from '../src/networks.js';
import { serveParent } from './child.js';
import { type PeerCounters, startRawEcho, startV1EchoNode, startV2EchoPeer } from './peers.js';

const network = networkByName(process.argv[2] ?? 'main');
if (network === undefined) throw new Error(`unknown network ${process.argv[2]}`);
const counters: PeerCounters = { sunk: 0 };
const v2 = await startV2EchoPeer(network.magic, counters);
const v1 = await startV1EchoNode(network.magic);
const raw = await startRawEcho();
serveParent(v2.port, {
  ports: { v2: v2.port, v1: v1.port, raw: raw.port },
  count: () => v2.open + v1.open + raw.open,
  stats: () => ({ ...counters }),
  close: async () => {
    await Promise.all([v2.close(), v1.close(), raw.close()]);
  },
});
