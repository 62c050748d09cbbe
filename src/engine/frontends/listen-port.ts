/**
 * A connection on a --listen port: SOCKS5 or a legacy v1 client, told apart by its first bytes
 * (detect.ts classifyFirstBytes). SOCKS4 gets its own rejection; anything else is closed.
 */
import { ProxyError } from '../../errors.js';
import { SOCKS4_REJECT } from '../../socks5/reply.js';
import { classifyFirstBytes } from '../detect.js';
import type { Negotiation, Services } from '../negotiation.js';
import { serveLegacy } from './legacy.js';
import { serveSocks5 } from './socks5.js';

export async function serveListenPort(n: Negotiation, services: Services): Promise<void> {
  const network = services.config.network;
  const { bytes: head, result: kind } = await n.readUntil(Buffer.alloc(0), (b) => {
    const k = classifyFirstBytes(b, network);
    return k === 'more' ? undefined : k;
  });
  if (kind === 'socks4') throw new ProxyError('ERR_SOCKS4', 'SOCKS4 request; only SOCKS5 is served', { reply: SOCKS4_REJECT });
  if (kind === 'unknown') {
    throw new ProxyError('ERR_UNKNOWN_PROTOCOL', `first byte 0x${head[0].toString(16).padStart(2, '0')} is neither SOCKS5 nor a known network magic`);
  }
  n.conn.record.frontEnd = kind;
  services.announce(n.conn);
  if (kind === 'legacy') return serveLegacy(n, head, services);
  return serveSocks5(n, head, services);
}
