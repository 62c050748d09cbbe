/**
 * A BIP324 handshake flood (issue 8, item 7), in a child process of its own so that its work is not
 * on the event loop of the client whose latency is measured (bench/exposure.ts).
 *
 * COUNT flooders, each from its own source address (127.100.x.y: loopback is all of 127/8 on Linux,
 * so they look like COUNT different hosts and per-source caps do not single them out), each in a
 * loop: connect to 127.0.0.1:PORT, send 64 random bytes (an ElligatorSwift key as far as a
 * responder can tell), and as soon as the proxy answers (its own key: it has done the ECDH) or
 * closes, close and connect again. It costs the flooder a connect and 64 bytes; it costs the proxy
 * a key generation and an ECDH per answered connection.
 *
 *   node dist/bench/flood-process.js PORT COUNT
 *
 * Floods from start until 'stop'. 'stats' (bench/child.ts): attempts, answered (connections the
 * proxy answered, i.e. handshakes it did), refused (closed before answering), errors (connect
 * failed); 'conns': flooders currently connected.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { serveParent } from './child.js';

const port = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 500);
if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(count) || count <= 0 || count > 250 * 250) {
  throw new Error('usage: flood-process.js PORT COUNT');
}

const stats = { attempts: 0, answered: 0, refused: 0, errors: 0 };
const open = new Set<net.Socket>();
let running = true;

function source(i: number): string {
  return `127.100.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

function flood(i: number): void {
  if (!running) return;
  stats.attempts++;
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: source(i) });
  socket.setNoDelay(true);
  open.add(socket);
  let answered = false;
  let connected = false;
  socket.once('connect', () => {
    connected = true;
    socket.write(randomBytes(64));
  });
  socket.once('data', () => {
    answered = true;
    stats.answered++;
    socket.destroy();
  });
  // A refused connection may end with a reset (our 64 bytes unread): that is a refusal, not an error.
  socket.on('error', () => {});
  socket.once('close', () => {
    open.delete(socket);
    if (!connected) stats.errors++;
    else if (!answered) stats.refused++;
    // A connect error (no port left, say) retries a little later rather than spinning.
    if (!connected) setTimeout(() => flood(i), 10);
    else setImmediate(() => flood(i));
  });
}

for (let i = 0; i < count; i++) flood(i);

serveParent(0, {
  count: () => open.size,
  stats: () => ({ ...stats }),
  close: async () => {
    running = false;
    for (const s of open) s.destroy();
  },
});
