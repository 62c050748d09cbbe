/**
 * Mutating a live endpoint's output. A BIP324 transcript depends on both ephemeral keys, so it cannot
 * be recorded once and replayed: it is mutated on the fly by tapping the writes of a live endpoint
 * (tapWrites), which also records where each write (key+garbage, terminator + version packet, each
 * application packet) starts, so the expected error follows from the offset.
 */
import type * as net from 'node:net';
import { sleep } from './sockets.js';

export type WritePlan =
  /** Flip one bit at a stream offset. */
  | { kind: 'flip'; offset: number; bit: number }
  /** Send up to `offset`, then FIN or RST; later writes are dropped. */
  | { kind: 'cut'; offset: number; then: 'end' | 'reset' }
  /**
   * The first write of at least `minWrite` bytes goes out half, then RST (a peer dying mid-message).
   * `beforeReset` (optional) is awaited between the two, e.g. until the other end has read every byte:
   * an RST that arrives while bytes are still unread is reported by libuv as a plain EOF.
   */
  | { kind: 'reset-inside'; minWrite: number; beforeReset?: () => Promise<void> }
  /** Deliver the stream in pieces cut at these offsets, a few ms apart (TCP segment boundaries). */
  | { kind: 'split'; at: number[] };

export interface WriteTap {
  /** Stream bytes the endpoint wrote (before the plan changed anything). */
  written: number;
  /** Where each write() started and how long it was: key+garbage, terminator+version, then one per packet. */
  writes: { start: number; length: number }[];
  fired: boolean;
}

/** Route every socket.write through `plan`. Install before the first write. */
export function tapWrites(socket: net.Socket, plan: WritePlan): WriteTap {
  const tap: WriteTap = { written: 0, writes: [], fired: false };
  const write = socket.write.bind(socket) as (data: Buffer, cb?: (err?: Error | null) => void) => boolean;
  let chain: Promise<void> = Promise.resolve();
  const splitPoints = plan.kind === 'split' ? [...plan.at].sort((x, y) => x - y) : [];
  socket.write = (data: Uint8Array | string): boolean => {
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const start = tap.written;
    tap.written += buf.length;
    tap.writes.push({ start, length: buf.length });
    switch (plan.kind) {
      case 'flip':
        if (!tap.fired && plan.offset >= start && plan.offset < start + buf.length) {
          tap.fired = true;
          const copy = Buffer.from(buf);
          copy[plan.offset - start] ^= 1 << plan.bit;
          return write(copy);
        }
        return write(buf);
      case 'cut': {
        if (tap.fired) return false;
        if (plan.offset >= start + buf.length) return write(buf);
        tap.fired = true;
        const finish = (): void => {
          if (socket.destroyed) return;
          if (plan.then === 'end') socket.end();
          else socket.resetAndDestroy();
        };
        const head = buf.subarray(0, Math.max(0, plan.offset - start));
        if (head.length > 0) write(head, () => finish());
        else finish();
        return false;
      }
      case 'reset-inside':
        if (tap.fired) return false;
        if (buf.length < plan.minWrite) return write(buf);
        tap.fired = true;
        write(buf.subarray(0, buf.length >> 1), () => {
          const reset = (): void => {
            if (!socket.destroyed) socket.resetAndDestroy();
          };
          if (plan.beforeReset === undefined) reset();
          else plan.beforeReset().then(reset, reset);
        });
        return false;
      case 'split': {
        const pieces: Buffer[] = [];
        let from = 0;
        for (const at of splitPoints) {
          if (at <= start || at >= start + buf.length) continue;
          pieces.push(buf.subarray(from, at - start));
          from = at - start;
        }
        pieces.push(buf.subarray(from));
        for (const piece of pieces) {
          chain = chain.then(async () => {
            if (socket.destroyed) return;
            await new Promise<void>((resolve) => write(piece, () => resolve()));
            if (pieces.length > 1) await sleep(5);
          });
        }
        tap.fired ||= pieces.length > 1;
        return true;
      }
    }
  };
  return tap;
}
