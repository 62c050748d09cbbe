/**
 * The baseline for the proxy benchmark: a plain TCP relay, alone in its own process, in the same
 * place as the proxy (client -> relay -> server). Each accepted connection is piped to
 * 127.0.0.1:TARGET and back with stream.pipe (backpressure both ways), Nagle off on both sockets as
 * the proxy does. No parsing, no crypto: what any relay process pays to move the same bytes.
 *
 *   node dist/bench/relay-process.js TARGET_PORT
 */
import * as net from 'node:net';
import { serveParent } from './child.js';

const target = Number(process.argv[2]);
if (!Number.isInteger(target) || target <= 0 || target > 65535) throw new Error('usage: relay-process.js TARGET_PORT');

const sockets = new Set<net.Socket>();
const track = (s: net.Socket): void => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
};

const server = net.createServer((client) => {
  track(client);
  client.setNoDelay(true);
  const upstream = net.connect({ host: '127.0.0.1', port: target });
  track(upstream);
  upstream.setNoDelay(true);
  const teardown = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', teardown);
  upstream.on('error', teardown);
  client.on('close', teardown);
  upstream.on('close', teardown);
  client.pipe(upstream);
  upstream.pipe(client);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
serveParent((server.address() as net.AddressInfo).port, {
  count: () => sockets.size / 2,
  close: () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
});
