/**
 * SocketReader (src/engine/reader.ts) on real loopback sockets: the negotiation phase's reads, its
 * budget (the socket paused once that many bytes wait), and how the client's FIN, a reset, a local
 * destroy and abort() reach the reads in progress and the connection's callbacks.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { SocketReader } from '../../src/engine/reader.js';
import { ProxyError } from '../../src/errors.js';

interface Pair {
  client: net.Socket;
  server: net.Socket;
}

/** A connected pair: `server` is the accepted side, the one the proxy would wrap. */
async function pair(): Promise<Pair> {
  const listener = net.createServer();
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => listener.once('connection', r));
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  const server = await accepted;
  server.on('error', () => {});
  listener.close();
  return { client, server };
}

/** Resolves once `n` bytes in all have come in on `socket`, after the reader has seen them (listeners run in order). */
function received(socket: net.Socket, n: number): Promise<void> {
  let got = 0;
  return new Promise((resolve) => {
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got >= n) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
  });
}

/** What a promise has done by the next turn of the event loop: its value, its error, or 'pending'. */
async function settledSoon<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown } | 'pending'> {
  return Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<'pending'>((r) => setImmediate(() => setImmediate(() => r('pending')))),
  ]);
}

function code(e: unknown): string | undefined {
  return e instanceof ProxyError ? e.code : undefined;
}

describe('SocketReader', () => {
  let p: Pair;
  beforeEach(async () => {
    p = await pair();
  });
  afterEach(() => {
    p.client.destroy();
    p.server.destroy();
  });

  it('pauses the socket once `budget` bytes wait unread, not before, and resumes it when they are taken', async () => {
    const r = new SocketReader(p.server, 10);
    const first = received(p.server, 9);
    p.client.write(Buffer.alloc(9, 1));
    await first;
    assert.equal(p.server.isPaused(), false);
    const second = received(p.server, 1);
    p.client.write(Buffer.alloc(1, 2));
    await second;
    assert.equal(p.server.isPaused(), true);
    assert.equal(r.buffered, 10);
    assert.deepEqual(await r.next(), Buffer.concat([Buffer.alloc(9, 1), Buffer.alloc(1, 2)]));
    assert.equal(p.server.isPaused(), false);
    assert.equal(r.buffered, 0);
  });

  it('bytes put back with unshift() count against the budget: the socket pauses when they and the new bytes reach it', async () => {
    const r = new SocketReader(p.server, 10);
    const first = received(p.server, 6);
    p.client.write(Buffer.alloc(6, 1));
    await first;
    const got = await r.next();
    assert.equal(got.length, 6);
    // A front end that read too far puts the rest back (as SOCKS5 does with bytes after CONNECT).
    r.unshift(got);
    assert.equal(p.server.isPaused(), false);
    const more = received(p.server, 4);
    p.client.write(Buffer.alloc(4, 2));
    await more;
    assert.equal(r.buffered, 10);
    assert.equal(p.server.isPaused(), true);
  });

  it('unshift() of the budget or more pauses at once; next() resumes only once what is left is under the budget', async () => {
    const r = new SocketReader(p.server, 10);
    r.unshift(Buffer.alloc(10, 1));
    assert.equal(p.server.isPaused(), true);
    r.unshift(Buffer.alloc(3, 2));
    assert.deepEqual(await r.next(), Buffer.alloc(3, 2));
    // 10 bytes still held: stays paused.
    assert.equal(p.server.isPaused(), true);
    assert.deepEqual(await r.next(), Buffer.alloc(10, 1));
    assert.equal(p.server.isPaused(), false);
    // And reading goes on: the next bytes reach the next read.
    const waiting = r.next();
    p.client.write('x');
    assert.deepEqual(await waiting, Buffer.from('x'));
  });

  it('next() gives what is already queued at once, and waits for bytes when nothing is', async () => {
    const r = new SocketReader(p.server, 1000);
    const got = received(p.server, 3);
    p.client.write('abc');
    await got;
    assert.deepEqual(await settledSoon(r.next()), { value: Buffer.from('abc') });
    const waiting = r.next();
    assert.equal(await settledSoon(waiting), 'pending');
    p.client.write('de');
    assert.deepEqual(await waiting, Buffer.from('de'));
  });

  it('unshift() puts bytes back ahead of the queue (counted as buffered); an empty one is no read', async () => {
    const r = new SocketReader(p.server, 1000);
    r.unshift(Buffer.alloc(0));
    assert.equal(await settledSoon(r.next()), 'pending');
    const got = received(p.server, 5);
    p.client.write('queue');
    await got;
    r.unshift(Buffer.from('front'));
    r.unshift(Buffer.from('very '));
    // The pending next() above took 'queue' when it came.
    assert.equal(r.buffered, 10);
    assert.deepEqual(r.release(), [Buffer.from('very '), Buffer.from('front')]);
  });

  it("the client's FIN fails the read waiting and every later one with ERR_CLIENT_CLOSED, after what was queued, and calls onEnd once", async () => {
    let ends = 0;
    const failures: Error[] = [];
    const r = new SocketReader(
      p.server,
      1000,
      (e) => failures.push(e),
      () => ends++,
    );
    const waiting = r.next();
    p.client.write('last');
    assert.deepEqual(await waiting, Buffer.from('last'));
    const next = r.next();
    p.client.end();
    await assert.rejects(next, (e) => code(e) === 'ERR_CLIENT_CLOSED');
    const later = await settledSoon(r.next());
    assert.ok(later !== 'pending' && code(later.error) === 'ERR_CLIENT_CLOSED', 'a read after the FIN is not left waiting');
    assert.equal(ends, 1);
    // A FIN is not a failure by itself (a half-close): the caller decides through onEnd.
    assert.deepEqual(failures, []);
    assert.equal(r.failed, undefined);
  });

  it('a reset fails the reads with ERR_CLIENT_CLOSED naming the socket error, and calls onFail once', async () => {
    const failures: Error[] = [];
    const r = new SocketReader(p.server, 1000, (e) => failures.push(e));
    const waiting = r.next();
    p.client.resetAndDestroy();
    await assert.rejects(waiting, (e) => code(e) === 'ERR_CLIENT_CLOSED' && /client socket error during negotiation: ECONNRESET/.test((e as Error).message));
    await new Promise<void>((resolve) => (p.server.closed ? resolve() : p.server.once('close', () => resolve())));
    assert.equal(failures.length, 1);
    assert.equal(r.failed, failures[0]);
  });

  it('a socket closed without an error (destroyed here) fails the reads with ERR_CLIENT_CLOSED', async () => {
    const failures: Error[] = [];
    const r = new SocketReader(p.server, 1000, (e) => failures.push(e));
    const waiting = r.next();
    p.server.destroy();
    await assert.rejects(waiting, (e) => code(e) === 'ERR_CLIENT_CLOSED');
    assert.equal(failures.length, 1);
    assert.equal(code(failures[0]), 'ERR_CLIENT_CLOSED');
  });

  it('abort(): the first error wins, onFail is called once, queued bytes are still handed out but the socket stays paused', async () => {
    const failures: Error[] = [];
    const r = new SocketReader(p.server, 1000, (e) => failures.push(e));
    const got = received(p.server, 4);
    p.client.write('held');
    await got;
    const first = new ProxyError('ERR_CLIENT_TIMEOUT', 'deadline');
    r.abort(first);
    r.abort(new ProxyError('ERR_INTERNAL', 'second'));
    assert.deepEqual(failures, [first]);
    assert.equal(p.server.isPaused(), true);
    assert.deepEqual(await r.next(), Buffer.from('held'));
    assert.equal(p.server.isPaused(), true);
    assert.deepEqual(await settledSoon(r.next()), { error: first });
  });

  it('release() hands back the unread bytes in order, stops listening and leaves the socket paused', async () => {
    const events = ['data', 'end', 'error', 'close'] as const;
    const before = events.map((e) => p.server.listenerCount(e));
    const r = new SocketReader(p.server, 1000);
    assert.notDeepEqual(
      events.map((e) => p.server.listenerCount(e)),
      before,
    );
    const got = received(p.server, 6);
    p.client.write('queued');
    await got;
    r.unshift(Buffer.from('put back '));
    assert.deepEqual(Buffer.concat(r.release()), Buffer.from('put back queued'));
    assert.equal(p.server.isPaused(), true);
    assert.deepEqual(
      events.map((e) => p.server.listenerCount(e)),
      before,
    );
  });
});
