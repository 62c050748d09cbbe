/**
 * How many received bytes a local TCP socket holds that its process has not read yet, from the
 * kernel's own table (/proc/net/tcp and tcp6, the rx_queue column). Linux only. Used to reset a
 * connection only once the other end has read everything: an RST that arrives while bytes are
 * still unread is reported by libuv as a plain end of stream, not as ECONNRESET.
 */
import { readFileSync } from 'node:fs';

export function tcpQueueUnavailable(): string | undefined {
  return process.platform === 'linux' ? undefined : `reading /proc/net/tcp needs Linux, this is ${process.platform}`;
}

/** tx_queue and rx_queue of the socket with this local and remote port, or undefined when there is none. */
export function tcpQueues(localPort: number, remotePort: number): { tx: number; rx: number } | undefined {
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const local = parseInt(f[1].split(':')[1], 16);
      const remote = parseInt(f[2].split(':')[1], 16);
      if (local !== localPort || remote !== remotePort) continue;
      const [tx, rx] = f[4].split(':').map((h) => parseInt(h, 16));
      return { tx, rx };
    }
  }
  return undefined;
}

/**
 * Resolves once everything the sender (local port `fromPort`) wrote on this loopback connection has
 * been acknowledged and read by the receiver (local port `toPort`): nothing in flight, nothing unread.
 */
export async function untilAllRead(fromPort: number, toPort: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sender = tcpQueues(fromPort, toPort);
    const receiver = tcpQueues(toPort, fromPort);
    if (sender?.tx === 0 && receiver?.rx === 0) return;
    if (Date.now() > deadline)
      throw new Error(`:${fromPort} -> :${toPort} not all read: sender ${JSON.stringify(sender)}, receiver ${JSON.stringify(receiver)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
