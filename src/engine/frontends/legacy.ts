/**
 * The legacy front end: a v1 client redirected to us (iptables REDIRECT) sends its VERSION as if
 * we were the node; its addr_recv says where it wanted to go.
 *
 * Unauthenticated and reachable by anything the firewall redirects, so it buffers as little as
 * it can: the first message must be a VERSION of at most MAX_LEGACY_VERSION bytes, which its
 * 24-byte header tells before a byte of payload is held (detect.ts checkLegacyHeader).
 */
import { ByteQueue } from '../../byte-queue.js';
import { ProxyError } from '../../errors.js';
import { V1_HEADER_LEN } from '../../limits.js';
import { formatHostPort } from '../../address.js';
import { randomCredentials } from '../../upstream/dialer.js';
import { V1Parser } from '../../v1/framing.js';
import { checkLegacyHeader, legacyNetwork, versionDestination } from '../detect.js';
import type { Negotiation, Services } from '../negotiation.js';

export async function serveLegacy(n: Negotiation, head: Buffer, services: Services): Promise<void> {
  const network = legacyNetwork(head.subarray(0, 4), services.config.network);
  const socksMs = services.config.timeouts.socksMs;
  n.deadline(socksMs, () => new ProxyError('ERR_CLIENT_TIMEOUT', `no complete VERSION from the legacy client within ${socksMs} ms`));
  // Everything read is kept for the Bridge, which sends it on (the VERSION included).
  const raw = new ByteQueue();
  raw.push(head);
  let header = head;
  while (header.length < V1_HEADER_LEN) {
    const c = await n.reader.next();
    raw.push(c);
    header = Buffer.concat([header, c]);
  }
  checkLegacyHeader(header.subarray(0, V1_HEADER_LEN));
  // The header check above bounds the VERSION; what the client sent after it in the same read is
  // only carried along to the Bridge, which applies the usual limits (a cap here refused it).
  const parser = new V1Parser(network.magic);
  let events = parser.push(header);
  while (events.length === 0) {
    const c = await n.reader.next();
    raw.push(c);
    events = parser.push(c);
  }
  const first = events[0];
  if (first.type === 'dropped') throw new ProxyError('ERR_V1_BAD_CHECKSUM', 'the first message (VERSION) has a bad checksum');
  n.sent = true;
  const destination = versionDestination(first.payload);
  n.conn.record.peer = formatHostPort(destination);
  n.clearDeadline();
  const credentials = randomCredentials();
  const remote = await services.dialFor(n, destination, credentials);
  services.startBridge(n.conn, {
    role: 'initiator',
    local: n.socket,
    localInitial: [...raw.drain(), ...n.reader.release()],
    remote,
    network,
    destination,
    redial: (signal) => services.dial(destination, { credentials, signal, viaProxy: true }),
  });
}
