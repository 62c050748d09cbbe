/**
 * transient-reads.ts on real loopback sockets, on the Node this runs on: reads reach the sink as
 * views of one shared buffer and never as 'data'; pause() and resume() stop and start the reads
 * themselves (the Bridge's backpressure depends on it); 'end' and 'close' still come; a socket
 * dialed for the proxy reads nothing before it is resumed; and what is read while no sink is set is
 * copied, kept in order, and stops the reads until the socket is resumed.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { makeDestination } from '../src/address.js';
import { READ_SIZE, STREAM_READ_SIZE, acceptTransient, connectTransient, isTransient, observeTransientReads, setSink } from '../src/transient-reads.js';
import { dial } from '../src/upstream/dialer.js';
import { sleep } from './helpers/fuzz/sockets.js';
import { until } from './helpers/wait.js';

const open: net.Socket[] = [];
const servers: net.Server[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A loopback server; `serve` gets each accepted socket. */
async function listen(serve: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer((s) => {
    open.push(s);
    s.on('error', () => {});
    serve(s);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

async function connected(port: number): Promise<net.Socket> {
  const socket = connectTransient({ host: '127.0.0.1', port, allowHalfOpen: true });
  open.push(socket);
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  return socket;
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed + (i >> 8)) & 0xff;
  return b;
}

describe('transient reads (net.connect onread, one shared buffer)', function () {
  this.timeout(20_000);

  it("reads reach the sink as views of one shared buffer, never as 'data'; then 'end' and 'close'", async () => {
    const sent = pattern(3_000_000, 1);
    const port = await listen((s) => s.end(sent));
    const socket = await connected(port);
    assert.equal(isTransient(socket), true);
    const got: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    let largest = 0;
    let dataEvents = 0;
    socket.on('data', () => dataEvents++);
    setSink(socket, (view) => {
      memory.add(view.buffer);
      largest = Math.max(largest, view.length);
      got.push(Buffer.from(view));
    });
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    const closed = new Promise<void>((resolve) => socket.once('close', resolve));
    socket.resume();
    await ended;
    socket.end();
    await closed;
    assert.equal(dataEvents, 0);
    assert.equal(memory.size, 1, 'every read is a view of the same memory');
    assert.ok(largest <= READ_SIZE);
    assert.deepEqual(Buffer.concat(got), sent);
  });

  it('observeTransientReads is told of every read, with its socket and size, before the sink (the benchmark counts reads with it)', async () => {
    const sent = pattern(500_000, 5);
    const port = await listen((s) => s.end(sent));
    const socket = await connected(port);
    const seen: number[] = [];
    const order: string[] = [];
    observeTransientReads((s, n) => {
      if (s === socket) seen.push(n);
      order.push('observer');
    });
    try {
      let bytes = 0;
      setSink(socket, (view) => {
        bytes += view.length;
        order.push('sink');
      });
      const ended = new Promise<void>((resolve) => socket.once('end', resolve));
      socket.resume();
      await ended;
      assert.equal(bytes, sent.length);
      assert.equal(
        seen.reduce((a, b) => a + b, 0),
        sent.length,
      );
      assert.deepEqual(
        order,
        seen.flatMap(() => ['observer', 'sink']),
      );
    } finally {
      observeTransientReads(undefined);
    }
  });

  it('pause() in the sink stops the reads at once; resume() starts them again; nothing is lost', async () => {
    const sent = pattern(2_000_000, 2);
    const port = await listen((s) => s.end(sent));
    const socket = await connected(port);
    const got: Buffer[] = [];
    let calls = 0;
    setSink(socket, (view) => {
      calls++;
      got.push(Buffer.from(view));
      socket.pause();
    });
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.resume();
    await until(() => calls === 1, 2000, 'the first read');
    // The peer's bytes wait in the kernel: no read, no 'end', however long we wait.
    await sleep(200);
    assert.equal(calls, 1);
    assert.equal(socket.readableEnded, false);
    for (let i = 0; i < 3; i++) {
      socket.resume();
      await until(() => calls === i + 2, 2000, `read ${i + 2}`);
      await sleep(50);
      assert.equal(calls, i + 2, 'one read per resume');
    }
    setSink(socket, (view) => got.push(Buffer.from(view)));
    socket.resume();
    await ended;
    assert.deepEqual(Buffer.concat(got), sent);
  });

  /**
   * A socket with several full reads' worth waiting in the kernel: `bytes` sent in two halves, the
   * first read whole (so that the receive window grows), then the socket paused while the second
   * piles up, and the sink set to `sink` before it is resumed.
   */
  async function backlogged(bytes: number, sink: (view: Buffer, socket: net.Socket) => void): Promise<net.Socket> {
    let peer: net.Socket | undefined;
    const port = await listen((s) => {
      peer = s;
      s.write(Buffer.alloc(bytes / 2, 1));
    });
    const socket = await connected(port);
    let warm = 0;
    setSink(socket, (view) => (warm += view.length));
    socket.resume();
    await until(() => warm === bytes / 2, 10_000, 'the first half read');
    socket.pause();
    peer!.write(Buffer.alloc(bytes / 2, 2));
    await sleep(200);
    setSink(socket, (view) => sink(view, socket));
    socket.resume();
    return socket;
  }

  it('one read per turn of the event loop: after a read that fills the buffer, the next waits for the turn', async () => {
    let reads = 0;
    let full = 0;
    let total = 0;
    const readsWhenTurnCame: number[] = [];
    const readsAtFull: number[] = [];
    await backlogged(32 << 20, (view) => {
      reads++;
      total += view.length;
      if (view.length === READ_SIZE) {
        full++;
        readsAtFull.push(reads);
        setImmediate(() => readsWhenTurnCame.push(reads));
      }
    });
    await until(() => total === 16 << 20, 20_000, 'the second half read');
    await sleep(20);
    // Several full reads prove the backlog was there: without the turn, libuv reads again at once.
    assert.ok(full >= 4, `full reads: ${full} of ${reads}`);
    assert.deepEqual(readsWhenTurnCame, readsAtFull);
  });

  it('a socket its owner paused in the sink of a full read stays paused after that turn, and reads on when resumed', async () => {
    let total = 0;
    let pausedAt = -1;
    const socket = await backlogged(8 << 20, (view, s) => {
      total += view.length;
      if (pausedAt < 0 && view.length === READ_SIZE) {
        pausedAt = total;
        s.pause();
      }
    });
    await until(() => pausedAt >= 0, 10_000, 'a full read');
    await sleep(50);
    assert.equal(total, pausedAt);
    socket.resume();
    await until(() => total === 4 << 20, 10_000, 'the rest after resume()');
  });

  it('a direct dial with transientReads reads nothing before it is resumed, not even a FIN', async () => {
    const port = await listen((s) => s.end('hello'));
    const socket = await dial({ destination: makeDestination('127.0.0.1', port), timeoutMs: 2000, transientReads: true });
    open.push(socket);
    assert.equal(isTransient(socket), true);
    await sleep(200);
    assert.equal(socket.bytesRead, 0);
    const got: Buffer[] = [];
    assert.deepEqual(
      setSink(socket, (view) => got.push(Buffer.from(view))),
      [],
    );
    assert.equal(socket.readableEnded, false);
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.resume();
    await ended;
    assert.deepEqual(Buffer.concat(got), Buffer.from('hello'));
  });

  it('setting a sink on a dialed socket that is reading does not pause it', async () => {
    let peer: net.Socket | undefined;
    const port = await listen((s) => (peer = s));
    const socket = await connected(port);
    let first = 0;
    setSink(socket, (view) => (first += view.length));
    socket.resume();
    peer!.write(pattern(500, 14));
    await until(() => first === 500, 2000, 'the first sink');
    let second = 0;
    setSink(socket, (view) => (second += view.length));
    peer!.write(pattern(700, 15));
    await until(() => second === 700, 2000, 'the second sink, with no resume()');
    assert.equal(first, 500);
  });

  it('a direct dial without transientReads is a plain socket', async () => {
    const port = await listen((s) => s.end('plain'));
    const socket = await dial({ destination: makeDestination('127.0.0.1', port), timeoutMs: 2000 });
    open.push(socket);
    assert.equal(isTransient(socket), false);
    const got = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.resume();
    assert.deepEqual(await got, Buffer.from('plain'));
  });

  it('a read while no sink is set is copied and kept, and stops the reads until the socket is resumed', async () => {
    const first = pattern(1000, 3);
    const second = pattern(5000, 4);
    let peer: net.Socket | undefined;
    const port = await listen((s) => {
      peer = s;
      s.write(first);
    });
    const socket = await connected(port);
    // Resumed with no sink: its first read has no one to take it.
    socket.resume();
    await until(() => socket.bytesRead >= first.length, 2000, 'the first read');
    peer!.write(second);
    // Another socket's read overwrites the shared buffer.
    const other = await connected(await listen((s) => s.end(Buffer.alloc(4000, 0xee))));
    let otherRead = 0;
    setSink(other, (view) => (otherRead += view.length));
    other.resume();
    await until(() => otherRead === 4000, 2000, "the other socket's read");
    await sleep(100);
    assert.equal(socket.bytesRead, first.length, 'no read after the one that found no sink');
    const got: Buffer[] = [];
    const early = setSink(socket, (view) => got.push(Buffer.from(view)));
    assert.deepEqual(Buffer.concat(early), first);
    socket.resume();
    await until(() => Buffer.concat(got).length >= second.length, 2000, 'the later bytes');
    assert.deepEqual(Buffer.concat(got), second);
  });
});

describe('transient reads on accepted sockets (acceptTransient)', function () {
  this.timeout(20_000);
  afterEach(() => observeTransientReads(undefined));

  /** A pauseOnConnect, half-open server whose one connection is handed to acceptTransient, as the proxy's listeners do. */
  async function acceptedPair(): Promise<{ client: net.Socket; accepted: net.Socket; original: net.Socket; server: net.Server }> {
    let original: net.Socket | undefined;
    let accepted: net.Socket | undefined;
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
      original = s;
      accepted = acceptTransient(s, true);
      accepted.on('error', () => {});
      open.push(accepted);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
    client.on('error', () => {});
    open.push(client);
    await until(() => accepted !== undefined, 2000, 'the connection');
    return { client, accepted: accepted!, original: original!, server };
  }

  it("until a sink is set, reads come as 'data', owned copies that later reads do not overwrite; then as views of the shared buffer", async () => {
    const { client, accepted, original } = await acceptedPair();
    assert.notEqual(accepted, original);
    assert.equal(original.destroyed, true);
    assert.equal(isTransient(accepted), true);
    assert.equal(isTransient(original), false);
    // The benchmark counts the stream's pushes itself: the observer is told only of the reads that go to a sink.
    let observed = 0;
    observeTransientReads((s, n) => {
      if (s === accepted) observed += n;
    });
    const hello = pattern(3000, 7);
    const early: Buffer[] = [];
    const onData = (chunk: Buffer): number => early.push(chunk);
    accepted.on('data', onData);
    client.write(hello);
    // Handed over paused, as pauseOnConnect gives it: nothing is read until the front end resumes it.
    await sleep(100);
    assert.equal(accepted.bytesRead, 0);
    accepted.resume();
    await until(() => Buffer.concat(early).length === hello.length, 2000, "the first bytes as 'data'");
    accepted.off('data', onData);
    assert.equal(observed, 0);
    const bulk = pattern(1_500_000, 8);
    const got: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    assert.deepEqual(
      setSink(accepted, (view) => {
        memory.add(view.buffer);
        got.push(Buffer.from(view));
      }),
      [],
    );
    accepted.resume();
    client.end(bulk);
    await new Promise<void>((resolve) => accepted.once('end', resolve));
    assert.deepEqual(Buffer.concat(got), bulk);
    assert.equal(observed, bulk.length);
    assert.equal(memory.size, 1, 'every read after the sink is a view of the same memory');
    assert.ok(!memory.has(early[0].buffer), "the 'data' chunks are not in the shared buffer");
    assert.deepEqual(Buffer.concat(early), hello, "the 'data' chunks are intact after the shared buffer was overwritten");
  });

  it('reads at most STREAM_READ_SIZE at a time until a sink is set, then up to READ_SIZE', async () => {
    const { client, accepted } = await acceptedPair();
    const sizes: number[] = [];
    accepted.on('data', (c: Buffer) => sizes.push(c.length));
    // Written while the socket is paused: every read then finds more queued than it can take.
    client.write(pattern(1_000_000, 16));
    await sleep(100);
    accepted.resume();
    await until(() => sizes.reduce((a, b) => a + b, 0) >= 300_000, 2000, "the first reads as 'data'");
    accepted.removeAllListeners('data');
    assert.equal(Math.max(...sizes), STREAM_READ_SIZE);
    const viewSizes: number[] = [];
    setSink(accepted, (view) => viewSizes.push(view.length));
    client.write(pattern(2_000_000, 17));
    await sleep(100);
    accepted.resume();
    await until(() => viewSizes.length >= 4, 2000, 'reads at the sink');
    assert.ok(Math.max(...viewSizes) > STREAM_READ_SIZE, `reads at the sink: ${viewSizes.join(', ')}`);
    assert.ok(Math.max(...viewSizes) <= READ_SIZE);
  });

  it('setSink hands back what the stream holds, in order, and leaves the socket paused until resume()', async () => {
    const { client, accepted } = await acceptedPair();
    const first = pattern(2000, 9);
    const second = pattern(3000, 10);
    // read(0) reads without flowing: the reads stay in the stream's buffer.
    accepted.read(0);
    client.write(first);
    await until(() => accepted.readableLength === first.length, 2000, 'the first write in the stream buffer');
    client.write(second);
    await until(() => accepted.readableLength === first.length + second.length, 2000, 'the second write in the stream buffer');
    const got: Buffer[] = [];
    const handed = setSink(accepted, (view) => got.push(Buffer.from(view)));
    assert.deepEqual(Buffer.concat(handed), Buffer.concat([first, second]));
    assert.equal(accepted.readableLength, 0);
    const later = pattern(4000, 11);
    client.write(later);
    await sleep(200);
    assert.equal(got.length, 0, 'no read reaches the sink before resume()');
    assert.equal(accepted.bytesRead, first.length + second.length);
    accepted.resume();
    await until(() => Buffer.concat(got).length === later.length, 2000, 'the later bytes');
    assert.deepEqual(Buffer.concat(got), later);
  });

  it('the connection stays counted by its server until the new socket closes (server.close() waits for it)', async () => {
    const { client, accepted, server } = await acceptedPair();
    const count = (): Promise<number> => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    assert.equal(await count(), 1);
    let closed = false;
    server.close(() => (closed = true));
    await sleep(200);
    assert.equal(closed, false, 'server.close() waits for the accepted connection');
    accepted.destroy();
    await until(() => closed, 2000, 'server.close() once the socket closed');
    client.destroy();
  });

  it("keeps allowHalfOpen: after the client's FIN it can still answer", async () => {
    const { client, accepted } = await acceptedPair();
    setSink(accepted, () => {});
    accepted.resume();
    const reply = new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      client.on('data', (c: Buffer) => parts.push(c));
      client.on('end', () => resolve(Buffer.concat(parts)));
    });
    client.end('bye');
    await new Promise<void>((resolve) => accepted.once('end', resolve));
    await sleep(50);
    accepted.end('answer after your FIN');
    assert.equal((await reply).toString(), 'answer after your FIN');
  });

  it('clearing the sink puts it back to reading as a stream, still flowing', async () => {
    const { client, accepted } = await acceptedPair();
    let sunk = 0;
    setSink(accepted, (view) => (sunk += view.length));
    accepted.resume();
    client.write(pattern(1000, 12));
    await until(() => sunk === 1000, 2000, 'the bytes at the sink');
    assert.deepEqual(setSink(accepted, undefined), []);
    const data: Buffer[] = [];
    accepted.on('data', (c: Buffer) => data.push(c));
    const more = pattern(2000, 13);
    client.write(more);
    await until(() => Buffer.concat(data).length === more.length, 2000, "the later bytes as 'data', with no resume()");
    assert.deepEqual(Buffer.concat(data), more);
    assert.equal(sunk, 1000);
  });

  it('a socket without a handle, or with one that is not a stream handle of Node 20, is returned as it is', () => {
    const socket = new net.Socket();
    assert.equal(acceptTransient(socket, true), socket);
    assert.equal(socket.destroyed, false);
    assert.equal(isTransient(socket), false);
    let destroyed = false;
    const foreign = { _handle: {}, _server: null, destroy: () => (destroyed = true) } as unknown as net.Socket;
    assert.equal(acceptTransient(foreign, true), foreign);
    assert.equal(destroyed, false);
  });
});
