/**
 * Reads into one reusable buffer (`onread`) for the sockets that carry the bulk of the traffic: the
 * remotes the proxy dials directly, and the sockets its listeners accept. No allocation per read and
 * no stream 'data' machinery, and a read may take up to READ_SIZE bytes instead of libuv's 64 KiB.
 * One fresh 64 KiB buffer per read and the stream events were most of the CPU spent on reading
 * (bench/README.md, issue 12).
 *
 * One read per socket per turn of the event loop: after a read that filled the buffer, libuv would
 * read the same socket again at once, up to 32 times (32 x READ_SIZE) before any other connection's
 * events are handled, so one connection's bulk transfer would delay every other connection's
 * messages by tens of milliseconds (`proxy.js pingflood-down`). Such a socket stops reading and
 * starts again on the next turn (setImmediate), after the other sockets' events.
 *
 * Such a socket hands each read to its sink (setSink) as a view of the shared buffer, valid only
 * during that call. The next read of any such socket overwrites it, so whoever keeps bytes past the
 * call (a parser's queue, a write the kernel did not take at once, the bytes held while a fallback
 * VERSION is judged) must copy them first. 'end', 'close' and 'error' are emitted as usual, and
 * pause()/resume() stop and start the reads themselves (readStop and readStart: nothing is buffered
 * behind a pause).
 *
 * While no sink is set:
 * - a dialed socket (connectTransient) is handed over paused, so normally reads nothing; a read that
 *   comes anyway is copied and kept, and the socket stops reading until it is resumed;
 * - an accepted socket (acceptTransient) reads as any socket does, at most 64 KiB at a time
 *   (STREAM_READ_SIZE), each read an owned copy pushed to its stream ('data'), for the front ends'
 *   negotiation (SOCKS5, the legacy VERSION).
 * setSink returns what was read and not yet taken, as owned copies, for the new owner to handle
 * before anything read later, and leaves the socket paused until the owner resumes it.
 */
import { connect as netConnect, Socket, type TcpNetConnectOpts } from 'node:net';
import { ownCopy } from './byte-queue.js';

/** The shared read buffer's size: the most one read can bring in. */
export const READ_SIZE = 512 * 1024;

/**
 * The most one read of an accepted socket brings in while no sink is set (negotiation): what a
 * plain socket reads (libuv's 64 KiB), so that what a client can make the proxy read ahead before
 * its connection is set up, a paused read included, stays what it was.
 */
export const STREAM_READ_SIZE = 64 * 1024;

let shared: Buffer | undefined;

/** Called with each read: a view of the shared buffer, valid during the call only. */
export type Sink = (chunk: Buffer) => void;

interface Entry {
  sink: Sink | undefined;
  /** Owned copies of what was read while no sink was set, in order (dialed sockets). */
  early: Buffer[];
  /** Accepted sockets: with no sink set, reads go to the stream ('data') as owned copies. */
  stream: boolean;
}

const entries = new WeakMap<Socket, Entry>();

/**
 * Told of every read that does not reach the stream (the benchmark's read counts and traces,
 * bench/proxy-process.ts, which count the stream's pushes themselves).
 */
let observer: ((socket: Socket, bytes: number) => void) | undefined;

export function observeTransientReads(fn: ((socket: Socket, bytes: number) => void) | undefined): void {
  observer = fn;
}

/**
 * The socket's `onread`: each read to the sink, or (no sink) to the stream or the early copies. An
 * accepted socket's next read goes to the first STREAM_READ_SIZE bytes of the shared buffer while
 * it has no sink (Node asks for the next read's buffer after each read).
 */
function onread(entry: Entry, socket: () => Socket): { buffer: Buffer | (() => Buffer); callback: (n: number) => boolean } {
  shared ??= Buffer.allocUnsafeSlow(READ_SIZE);
  const buffer = shared;
  const streamBuffer = buffer.subarray(0, STREAM_READ_SIZE);
  return {
    buffer: entry.stream ? () => (entry.sink === undefined ? streamBuffer : buffer) : buffer,
    callback: (n: number): boolean => {
      const view = buffer.subarray(0, n);
      if (entry.stream && entry.sink === undefined) return socket().push(ownCopy(view));
      observer?.(socket(), n);
      if (entry.sink !== undefined) {
        entry.sink(view);
        if (n < buffer.length) return true;
        // A full read: more is waiting, and libuv would read this socket again at once.
        setImmediate(readOn, socket());
        return false;
      }
      entry.early.push(ownCopy(view));
      // No reads pile up with no one to take them: returning false stops reading (readStop) until resume().
      return false;
    },
  };
}

/**
 * Reading again, one turn of the event loop after a read that filled the buffer, unless the owner
 * paused the socket meanwhile (its resume() starts the reads then).
 */
function readOn(socket: Socket): void {
  if (!socket.isPaused()) socket.resume();
}

/** net.connect whose reads go to a sink (setSink) as views of the shared buffer. */
export function connectTransient(options: TcpNetConnectOpts): Socket {
  const entry: Entry = { sink: undefined, early: [], stream: false };
  const socket: Socket = netConnect({ ...options, onread: onread(entry, () => socket) });
  entries.set(socket, entry);
  return socket;
}

/** The parts of a net.Socket that Node 20's net.Server uses to hand over an accepted handle. */
interface AcceptedInternals {
  _handle: { useUserBuffer?: unknown } | null;
  _server: unknown;
  server: unknown;
}

/**
 * The same for a socket a net.Server accepted with `pauseOnConnect` (nothing read yet; call it
 * before anything else holds the socket). Node 20's net.Server has no `onread` option, but
 * net.Socket's constructor takes an accepted `handle` with one, which is how net.Server wraps each
 * accepted handle: so the handle is moved to a new Socket that reads into the shared buffer, and the
 * first Socket object is let go without closing it (its server's connection count moves with the
 * handle). Until a sink is set the new socket reads as before, each read an owned copy on its
 * stream. Returns `accepted` itself, reading as any socket does, where the handle is not what Node
 * 20 gives (no `useUserBuffer`).
 */
export function acceptTransient(accepted: Socket, allowHalfOpen: boolean): Socket {
  const old = accepted as unknown as AcceptedInternals;
  const handle = old._handle;
  if (handle === null || typeof handle.useUserBuffer !== 'function') return accepted;
  const entry: Entry = { sink: undefined, early: [], stream: true };
  // As net.Server's own `new Socket({ handle, ... })`; `handle` and `pauseOnCreate` are not in @types/node's options type.
  const options: object = { handle, allowHalfOpen, pauseOnCreate: true, readable: true, writable: true, onread: onread(entry, () => socket) };
  // Made first: if it threw, `accepted` would still own the handle, and destroying it would close it.
  const socket: Socket = new Socket(options);
  const moved = socket as unknown as AcceptedInternals;
  moved._server = old._server;
  moved.server = old._server;
  old._handle = null;
  old._server = null;
  accepted.destroy();
  entries.set(socket, entry);
  return socket;
}

/** Whether `socket` was opened by connectTransient (its reads go to a sink, never to 'data'). */
export function isTransient(socket: Socket): boolean {
  return entries.has(socket);
}

/**
 * Set (or clear, with undefined) where the socket's reads go; returns the owned copies of what was
 * read before and not yet taken (an accepted socket's stream buffer included). Setting a sink on an
 * accepted socket pauses it: the new owner resumes it once it has handled those bytes.
 */
export function setSink(socket: Socket, sink: Sink | undefined): Buffer[] {
  const entry = entries.get(socket);
  if (entry === undefined) return [];
  entry.sink = sink;
  if (entry.stream && sink !== undefined) {
    // read(n) returns exactly n bytes when that many are buffered (and emits them as 'data' too:
    // the front end's listener is gone by now, SocketReader.release()).
    if (socket.readableLength > 0) entry.early.push(socket.read(socket.readableLength) as Buffer);
    socket.pause(); // after read(), which may start the reads again
  }
  return entry.early.splice(0);
}
