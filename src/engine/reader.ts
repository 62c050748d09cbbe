/**
 * Pull-style reads for the short negotiation phase of a connection (SOCKS5, the legacy VERSION,
 * the client's first bytes), before the Bridge takes the socket over with its own listeners.
 *
 * The socket is read all the time, not only while someone waits for bytes: a client that leaves
 * while the remote is being dialed must be noticed at once (a paused socket never reports its FIN),
 * and the dial aborted. What arrives meanwhile is kept, at most `budget` bytes counting those put
 * back with unshift() (then the socket is paused until they are consumed), in a ByteQueue so that memory follows the bytes held whatever
 * the read pattern. release() hands back every byte not yet consumed and leaves the socket paused.
 */
import type { Socket } from 'node:net';
import { ByteQueue } from '../byte-queue.js';
import { ProxyError } from '../errors.js';

const CLOSED = (): ProxyError => new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection during negotiation');

export class SocketReader {
  private readonly queue = new ByteQueue();
  /** Bytes put back with unshift(), returned before the queue. */
  private readonly front: Buffer[] = [];
  private failure: Error | undefined;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.queue.push(chunk);
    if (this.buffered >= this.budget) this.socket.pause();
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve(this.takeAll());
    }
  };
  /**
   * A FIN: no more bytes will come, but the client may still read (a half-close). Pending and later
   * reads past what is queued fail; whether the connection as a whole is over is for `onEnd` to say.
   */
  private readonly onFin = (): void => {
    this.ended = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(CLOSED());
    this.onEnd?.();
  };
  private readonly onClose = (): void => this.abort(CLOSED());
  private readonly onError = (err: NodeJS.ErrnoException): void =>
    this.abort(new ProxyError('ERR_CLIENT_CLOSED', `client socket error during negotiation: ${err.code ?? err.message}`));
  private ended = false;

  /**
   * @param budget bytes to hold unread before the socket is paused.
   * @param onFail called once, when the client is gone or abort() is called (e.g. to cancel a dial).
   * @param onEnd called once, on the client's FIN.
   */
  constructor(
    private readonly socket: Socket,
    private readonly budget: number,
    private readonly onFail?: (err: Error) => void,
    private readonly onEnd?: () => void,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onFin);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.resume();
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    let n = this.queue.length;
    for (const b of this.front) n += b.length;
    return n;
  }

  /** The client's failure (it left, or abort() was called), if any. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Everything received and not yet consumed, as soon as there is something. Rejects once the client left and nothing is left. */
  next(): Promise<Buffer> {
    const front = this.front.shift();
    if (front !== undefined) {
      this.readOnIfRoom();
      return Promise.resolve(front);
    }
    if (this.queue.length > 0) return Promise.resolve(this.takeAll());
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(CLOSED());
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Put bytes back to be returned first by next() or release(); they count against the budget. */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.front.unshift(chunk);
    if (this.buffered >= this.budget) this.socket.pause();
  }

  /** Fail the pending and all later reads (deadline, client gone). */
  abort(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.socket.pause();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
    this.onFail?.(err);
  }

  /** Stop listening; the socket stays paused. Returns the unread bytes, in order. */
  release(): Buffer[] {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onFin);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    this.socket.pause();
    return [...this.front.splice(0), ...this.queue.drain()];
  }

  private takeAll(): Buffer {
    const all = this.queue.take(this.queue.length);
    this.readOnIfRoom();
    return all;
  }

  /** Resume reading once what is held is under the budget again (never after a failure). */
  private readOnIfRoom(): void {
    if (this.failure === undefined && this.buffered < this.budget) this.socket.resume();
  }
}
