/**
 * Pull-style reads for the short negotiation phase of a connection (SOCKS5, the legacy VERSION,
 * the client's first bytes), before the Bridge takes the socket over with its own listeners.
 *
 * The socket is paused whenever nobody is waiting, so nothing is read that the next owner would
 * miss: release() hands back every chunk not yet consumed and leaves the socket paused.
 */
import type { Socket } from 'node:net';
import { ProxyError } from '../errors.js';

export class SocketReader {
  private readonly queue: Buffer[] = [];
  private failure: Error | undefined;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private readonly onData = (chunk: Buffer): void => {
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      this.socket.pause();
      w.resolve(chunk);
    } else {
      this.queue.push(chunk);
      this.socket.pause();
    }
  };
  private readonly onEnd = (): void => this.abort(new ProxyError('ERR_CLIENT_CLOSED', 'client closed the connection during negotiation'));
  private readonly onError = (err: NodeJS.ErrnoException): void =>
    this.abort(new ProxyError('ERR_CLIENT_CLOSED', `client socket error during negotiation: ${err.code ?? err.message}`));

  constructor(private readonly socket: Socket) {
    socket.pause();
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onEnd);
  }

  /** The next chunk from the client. Rejects once the client closed, failed or abort() was called. */
  next(): Promise<Buffer> {
    const chunk = this.queue.shift();
    if (chunk !== undefined) return Promise.resolve(chunk);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.resume();
    });
  }

  /** Put bytes back to be returned first by next() or release(). */
  unshift(chunk: Buffer): void {
    if (chunk.length > 0) this.queue.unshift(chunk);
  }

  /** Fail the pending and all later reads (deadline, client gone). */
  abort(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.socket.pause();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Stop listening; the socket stays paused. Returns the unread chunks. */
  release(): Buffer[] {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onEnd);
    this.socket.pause();
    return this.queue.splice(0);
  }
}
