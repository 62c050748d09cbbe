/**
 * Reads into one reusable buffer (net.connect's `onread`) for the sockets the proxy dials directly:
 * no allocation per read and no stream 'data' machinery, and a read may take up to READ_SIZE bytes
 * instead of libuv's 64 KiB. The remote's bytes in the down direction are most of the traffic, and
 * most of its CPU went to those two (one fresh 64 KiB buffer per read, and the stream events).
 *
 * Such a socket emits no 'data': each read is handed to the socket's sink (setSink) as a view of the
 * shared buffer, valid only during that call. The next read of any such socket overwrites it, so
 * whoever keeps bytes past the call (a parser's queue, a write the kernel did not take at once, the
 * bytes held while a fallback VERSION is judged) must copy them first. 'end', 'close' and 'error'
 * are emitted as usual, and pause()/resume() stop and start the reads themselves (readStop and
 * readStart: nothing is buffered behind a pause).
 *
 * A read that comes while no sink is set (the dialer hands its socket over paused, so normally
 * none does) is copied and kept, and the socket stops reading until it is resumed: setSink
 * returns those copies, for the new owner to handle before anything read later.
 */
import { connect as netConnect, type Socket, type TcpNetConnectOpts } from 'node:net';
import { ownCopy } from './byte-queue.js';

/** The shared read buffer's size: the most one read can bring in. */
export const READ_SIZE = 256 * 1024;

let shared: Buffer | undefined;

/** Called with each read: a view of the shared buffer, valid during the call only. */
export type Sink = (chunk: Buffer) => void;

interface Entry {
  sink: Sink | undefined;
  /** Owned copies of what was read while no sink was set, in order. */
  early: Buffer[];
}

const entries = new WeakMap<Socket, Entry>();

/** Told of every read (the benchmark's read counts and traces, bench/proxy-process.ts): these reads emit no 'data' and push nothing. */
let observer: ((socket: Socket, bytes: number) => void) | undefined;

export function observeTransientReads(fn: ((socket: Socket, bytes: number) => void) | undefined): void {
  observer = fn;
}

/** net.connect whose reads go to a sink (setSink) as views of the shared buffer. */
export function connectTransient(options: TcpNetConnectOpts): Socket {
  shared ??= Buffer.allocUnsafeSlow(READ_SIZE);
  const buffer = shared;
  const entry: Entry = { sink: undefined, early: [] };
  const socket = netConnect({
    ...options,
    onread: {
      buffer,
      callback: (n: number): boolean => {
        observer?.(socket, n);
        const view = buffer.subarray(0, n);
        if (entry.sink !== undefined) {
          entry.sink(view);
          return true;
        }
        entry.early.push(ownCopy(view));
        // No reads pile up with no one to take them: returning false stops reading (readStop) until resume().
        return false;
      },
    },
  });
  entries.set(socket, entry);
  return socket;
}

/** Whether `socket` was opened by connectTransient (its reads go to a sink, never to 'data'). */
export function isTransient(socket: Socket): boolean {
  return entries.has(socket);
}

/** Set (or clear, with undefined) where the socket's reads go; returns the owned copies of what was read before. */
export function setSink(socket: Socket, sink: Sink | undefined): Buffer[] {
  const entry = entries.get(socket);
  if (entry === undefined) return [];
  entry.sink = sink;
  return entry.early.splice(0);
}
