/**
 * An --inbound LISTEN=TARGET port: every peer is answered as the BIP324 responder (or relayed
 * untouched when it speaks v1), and its plaintext v1 stream forwarded to the node at TARGET.
 *
 * The node is dialed by the Bridge once the peer's transport is settled, not at accept: a peer that
 * never completes a handshake must not cost the node a connection. Admission (how many peers, from
 * where, how fast) was decided before this is called (admission.ts).
 */
import type { Socket } from 'node:net';
import { NETWORKS } from '../../networks.js';
import { type Destination, formatHostPort } from '../../address.js';
import type { Conn, Services } from '../negotiation.js';

export function serveInbound(conn: Conn, socket: Socket, target: Destination, services: Services): void {
  conn.record.peer = conn.record.client;
  conn.record.node = formatHostPort(target);
  services.startBridge(conn, {
    role: 'responder',
    remote: socket,
    // --network (or --magic) restricts; without it the peer may be on any known network.
    networks: services.config.network === undefined ? NETWORKS : [services.config.network],
    connectLocal: async (signal) => {
      const node = await services.dial(target, { signal, viaProxy: false });
      conn.sockets.add(node);
      return node;
    },
  });
}
