/**
 * Small socket helpers of the fuzz harness: sleep, wait for a close with a bound, connect to the
 * proxy, and probe (write raw bytes, end as told, collect what comes back).
 */
import * as net from 'node:net';

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
