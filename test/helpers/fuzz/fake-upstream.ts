/**
 * A loopback SOCKS5 server standing in for an upstream proxy (Tor): it records each CONNECT request
 * (ATYP, address, credentials) and relays or refuses it as the test decides.
 */
import * as net from 'node:net';
import { socks5Reply } from '../../../src/socks5/reply.js';
import { byteReader } from '../node.js';

const EMPTY = Buffer.alloc(0);

function ipv6String(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

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
