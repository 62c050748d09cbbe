import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import dns, { type LookupAddress } from 'node:dns';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';

import { isProxyError, type ErrorCode } from '../../src/errors.js';
import { makeDestination, type Destination } from '../../src/address.js';
import { Socks5Negotiation } from '../../src/socks5/negotiation.js';
import { REP, repForError, socks5Reply } from '../../src/socks5/reply.js';
import { parseProxyUrl } from '../../src/config/proxy-url.js';
import { dial, randomCredentials, type ProxyEndpoint } from '../../src/upstream/dialer.js';
import { isTransient } from '../../src/transient-reads.js';
import { startMicrosocks, type Microsocks } from '../helpers/microsocks.js';

const ONION = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion';
const HEX32 = /^[0-9a-f]{32}$/;

interface Listening {
  server: Server;
  port: number;
  /** Server-side sockets still open. */
  open: Set<Socket>;
  /** Connections accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

async function listen(onSocket: (socket: Socket) => void): Promise<Listening> {
  const open = new Set<Socket>();
  const state: Listening = {
    server: createServer((socket) => {
      state.accepted++;
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => {});
      onSocket(socket);
    }),
    port: 0,
    open,
    accepted: 0,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => state.server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.port = (state.server.address() as AddressInfo).port;
  return state;
}

/** Echo server: the remote peer for direct and proxied dials. */
const startEcho = (): Promise<Listening> => listen((socket) => socket.pipe(socket));

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const l = await listen(() => {});
  await l.close();
  return l.port;
}

interface SeenRequest {
  destination: Destination;
  username?: string;
  password?: string;
}
type FakeBehaviour =
  | { kind: 'silent' }
  | { kind: 'close-after-greeting' }
  /** After a success reply the fake echoes, or, given `peer`, hands the socket to it instead. */
  | { kind: 'reply'; rep: number; extra?: Buffer; peer?: (socket: Socket) => void };

/**
 * A SOCKS5 upstream built on our own server state machine: records what the dialer sends and answers
 * as told. On success it then echoes, standing in for the remote peer.
 */
async function startFakeUpstream(behaviour: FakeBehaviour): Promise<Listening & { requests: SeenRequest[] }> {
  const requests: SeenRequest[] = [];
  const l = await listen((socket) => {
    if (behaviour.kind === 'silent') {
      socket.resume(); // read and drop, so the close from the dialer is seen
      return;
    }
    const negotiation = new Socks5Negotiation();
    let piping = false;
    socket.on('data', (chunk: Buffer) => {
      if (piping) {
        if (behaviour.kind === 'reply' && behaviour.peer === undefined) socket.write(chunk);
        return;
      }
      for (const step of negotiation.push(chunk)) {
        if (step.type === 'reply') {
          socket.write(step.data);
          if (behaviour.kind === 'close-after-greeting') socket.destroy();
        } else if (step.type === 'fail') {
          if (step.data) socket.end(step.data);
          else socket.end();
        } else {
          const seen: SeenRequest = { destination: step.destination };
          if (step.username !== undefined) seen.username = step.username;
          if (step.password !== undefined) seen.password = step.password;
          requests.push(seen);
          if (behaviour.kind !== 'reply') return;
          // Reply and the peer's first bytes in one write, as they can arrive from Tor.
          socket.write(Buffer.concat([socks5Reply(behaviour.rep), behaviour.extra ?? Buffer.alloc(0)]));
          if (behaviour.rep !== REP.SUCCEEDED) socket.end();
          else {
            piping = true;
            behaviour.peer?.(socket);
          }
        }
      }
    });
  });
  return Object.assign(l, { requests });
}

function proxyAt(port: number): ProxyEndpoint {
  return { host: '127.0.0.1', port };
}

async function assertRejects(promise: Promise<unknown>, code: ErrorCode): Promise<Error> {
  let caught: unknown;
  try {
    const value = await promise;
    if (value && typeof (value as Socket).destroy === 'function') (value as Socket).destroy();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${code}, but the dial succeeded`);
  assert.ok(isProxyError(caught, code), `expected ${code}, got ${String((caught as { code?: string }).code)}: ${inspect(caught)}`);
  return caught;
}

/** Write, then read until `expected.length` bytes came back. */
async function roundTrip(socket: Socket, payload: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= payload.length) resolve();
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the echo came back')));
  });
  socket.resume(); // dial() hands sockets over paused
  socket.write(payload);
  await done;
  return Buffer.concat(chunks);
}

async function waitFor(condition: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * A peer that sends "bye" and half-closes at once, then records what still arrives until our FIN.
 * `got` resolves with it.
 */
function halfClosingPeer(): { peer: (socket: Socket) => void; got: Promise<string> } {
  let resolveGot!: (text: string) => void;
  const got = new Promise<string>((resolve) => (resolveGot = resolve));
  const peer = (socket: Socket): void => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolveGot(Buffer.concat(chunks).toString()));
    socket.on('close', () => resolveGot(Buffer.concat(chunks).toString()));
    socket.end('bye');
  };
  return { peer, got };
}

/** Read the dialed socket until the peer's FIN, then send "after" and end: what a half-open socket allows. */
async function readToEndThenSend(socket: Socket): Promise<{ read: string; writeError?: string }> {
  const chunks: Buffer[] = [];
  let writeError: string | undefined;
  socket.on('error', (err: NodeJS.ErrnoException) => (writeError = err.code ?? err.message));
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', resolve);
    socket.resume();
  });
  await new Promise<void>((resolve) => socket.end('after', () => resolve()));
  const result: { read: string; writeError?: string } = { read: Buffer.concat(chunks).toString() };
  if (writeError !== undefined) result.writeError = writeError;
  return result;
}

type LookupAnswer = LookupAddress[] | { errno: string };

/**
 * Names resolved as the test says, through the resolver net.connect calls (dns.lookup, read at call
 * time); every other name goes to the real one. No other way gives a name several loopback-reachable
 * addresses (happy eyeballs), or makes a connect fail with an errno the kernel only gives after minutes.
 */
async function withLookup<T>(answers: Record<string, LookupAnswer>, body: () => Promise<T>): Promise<T> {
  const real = dns.lookup;
  const fake = (hostname: string, options: dns.LookupAllOptions, callback: (...args: unknown[]) => void): void => {
    const answer = answers[hostname];
    if (answer === undefined) {
      real(hostname, options, callback as never);
      return;
    }
    process.nextTick(() => {
      if ('errno' in answer) callback(Object.assign(new Error(`${answer.errno} ${hostname}`), { code: answer.errno, syscall: 'connect', hostname }));
      else if (options.all) callback(null, answer);
      else callback(null, answer[0].address, answer[0].family);
    });
  };
  (dns as { lookup: unknown }).lookup = fake;
  try {
    return await body();
  } finally {
    (dns as { lookup: unknown }).lookup = real;
  }
}

interface Unaccepting {
  port: number;
  stop(): void;
}

/**
 * A loopback port whose TCP handshake never completes: a listener (in a child process blocked in
 * Atomics.wait, so nothing ever calls accept) whose accept queue is full, so the kernel drops further
 * SYNs. The queue is filled by connecting until a connection stays pending.
 */
async function startUnaccepting(): Promise<Unaccepting> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer();
       s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () =>
         process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
    child.once('exit', (code) => reject(new Error(`listener child exited (${String(code)})`)));
  });
  const fillers: Socket[] = [];
  const stop = (): void => {
    for (const f of fillers) f.destroy();
    child.kill('SIGKILL');
  };
  for (;;) {
    if (fillers.length === 10) {
      stop();
      throw new Error('the accept queue never filled');
    }
    const filler = connect(port, '127.0.0.1');
    filler.on('error', () => {});
    fillers.push(filler);
    const connected = await Promise.race([new Promise<boolean>((r) => filler.once('connect', () => r(true))), sleep(500).then(() => false)]);
    if (connected) continue;
    // A busy event loop may only be late with 'connect': give it time, then look again.
    await sleep(250);
    if (filler.connecting) return { port, stop };
  }
}

describe('upstream/dialer', () => {
  describe('randomCredentials', () => {
    it('is 16 random bytes as hex for username and password, fresh every call', () => {
      const a = randomCredentials();
      const b = randomCredentials();
      for (const v of [a.username, a.password, b.username, b.password]) assert.match(v, HEX32);
      assert.notEqual(a.username, b.username);
      assert.notEqual(a.username, a.password);
      assert.ok(!a.username.startsWith('<torS0X>'));
    });
  });

  describe('direct', () => {
    let echo: Listening;
    before(async () => {
      echo = await startEcho();
    });
    after(async () => {
      await echo.close();
    });

    it('connects to a loopback peer and carries bytes both ways', async () => {
      const socket = await dial({ destination: makeDestination('127.0.0.1', echo.port), timeoutMs: 2000 });
      try {
        assert.deepEqual(await roundTrip(socket, Buffer.from('ping')), Buffer.from('ping'));
        assert.equal(socket.remotePort, echo.port);
      } finally {
        socket.destroy();
      }
    });

    it('a closed port is ERR_DIAL_REFUSED (REP 05)', async () => {
      const err = await assertRejects(dial({ destination: makeDestination('127.0.0.1', await closedPort()), timeoutMs: 2000 }), 'ERR_DIAL_REFUSED');
      assert.equal(repForError(err), REP.CONNECTION_REFUSED);
    });

    // Linux refuses a TCP connect to a multicast address at once with ENETUNREACH (tcp_v4_connect).
    it('a multicast address is ERR_DIAL_UNREACHABLE, reported as REP 03 (network unreachable) from the errno', async () => {
      const err = await assertRejects(dial({ destination: makeDestination('224.0.0.1', 8333), timeoutMs: 2000 }), 'ERR_DIAL_UNREACHABLE');
      assert.equal(repForError(err), REP.NETWORK_UNREACHABLE);
    });

    describe('errno mapping', () => {
      const table: [string, ErrorCode, number][] = [
        ['ETIMEDOUT', 'ERR_DIAL_TIMEOUT', REP.TTL_EXPIRED],
        ['EADDRNOTAVAIL', 'ERR_DIAL_UNREACHABLE', REP.HOST_UNREACHABLE],
        ['ENETDOWN', 'ERR_DIAL_UNREACHABLE', REP.NETWORK_UNREACHABLE],
      ];
      for (const [errno, code, rep] of table) {
        it(`a connect failing with ${errno} is ${code}, REP 0${rep}`, async () => {
          const err = await withLookup({ 'fails.test': { errno } }, () =>
            assertRejects(dial({ destination: makeDestination('fails.test', 8333), timeoutMs: 2000 }), code),
          );
          assert.equal(repForError(err), rep);
        });
      }

      // With several addresses, net.connect tries each (happy eyeballs) and fails with an AggregateError
      // whose own code is the first attempt's; the dialer maps the last attempt's errno.
      const orders: [string, string, ErrorCode, number][] = [
        ['224.0.0.1', '127.0.0.1', 'ERR_DIAL_REFUSED', REP.CONNECTION_REFUSED],
        ['127.0.0.1', '224.0.0.1', 'ERR_DIAL_UNREACHABLE', REP.NETWORK_UNREACHABLE],
      ];
      for (const [first, last, code, rep] of orders) {
        it(`a name whose every address fails (${first}, then ${last}) is mapped by the last address tried: ${code}, REP 0${rep}`, async () => {
          const port = await closedPort();
          const addresses: LookupAddress[] = [
            { address: first, family: 4 },
            { address: last, family: 4 },
          ];
          const err = await withLookup({ 'two.test': addresses }, () =>
            assertRejects(dial({ destination: makeDestination('two.test', port), timeoutMs: 2000 }), code),
          );
          assert.equal(repForError(err), rep);
        });
      }
    });

    it('the socket is half-open: after the peer ends its side, we can still send', async () => {
      const { peer, got } = halfClosingPeer();
      const remote = await listen(peer);
      try {
        const socket = await dial({ destination: makeDestination('127.0.0.1', remote.port), timeoutMs: 2000 });
        try {
          assert.deepEqual(await readToEndThenSend(socket), { read: 'bye' });
          assert.equal(await got, 'after');
        } finally {
          socket.destroy();
        }
      } finally {
        await remote.close();
      }
    });

    it('a peer that never completes the TCP handshake is ERR_DIAL_TIMEOUT (REP 06) after timeoutMs', async function () {
      this.timeout(10_000); // without the dial's own timer it would hang here
      const blackhole = await startUnaccepting();
      try {
        const err = await assertRejects(dial({ destination: makeDestination('127.0.0.1', blackhole.port), timeoutMs: 300 }), 'ERR_DIAL_TIMEOUT');
        assert.equal(repForError(err), REP.TTL_EXPIRED);
      } finally {
        blackhole.stop();
      }
    });

    it('a .onion with no proxy is ERR_ONION_NO_PROXY (REP 02) without any connection or lookup', async () => {
      const err = await assertRejects(dial({ destination: makeDestination(ONION, 8333), timeoutMs: 2000 }), 'ERR_ONION_NO_PROXY');
      assert.equal(repForError(err), REP.NOT_ALLOWED);
      assert.equal(err.cause, undefined, 'nothing was attempted, so nothing failed underneath');
    });

    it('an already aborted signal rejects without connecting', async () => {
      const before = echo.accepted;
      const controller = new AbortController();
      controller.abort();
      await assertRejects(dial({ destination: makeDestination('127.0.0.1', echo.port), timeoutMs: 2000, signal: controller.signal }), 'ERR_DIAL_FAILED');
      await sleep(50);
      assert.equal(echo.accepted, before);
    });

    it('with only an onion proxy, clearnet still goes direct and .onion goes to that proxy', async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        const direct = await dial({ destination: makeDestination('127.0.0.1', echo.port), onionProxy: proxyAt(fake.port), timeoutMs: 2000 });
        direct.destroy();
        assert.equal(fake.requests.length, 0);
        const onion = await dial({ destination: makeDestination(ONION, 8333), onionProxy: proxyAt(fake.port), timeoutMs: 2000 });
        onion.destroy();
        assert.deepEqual(
          fake.requests.map((r) => r.destination),
          [{ host: ONION, port: 8333, kind: 'onion' }],
        );
      } finally {
        await fake.close();
      }
    });
  });

  describe('through an upstream SOCKS5 proxy (fake, built on our server state machine)', () => {
    it('a proxy that accepts TCP and never answers is ERR_DIAL_TIMEOUT after timeoutMs, and the socket is closed', async () => {
      const fake = await startFakeUpstream({ kind: 'silent' });
      try {
        const started = Date.now();
        const err = await assertRejects(
          dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 300 }),
          'ERR_DIAL_TIMEOUT',
        );
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 280 && elapsed < 2000, `took ${elapsed} ms`);
        assert.equal(repForError(err), REP.TTL_EXPIRED);
        await waitFor(() => fake.open.size === 0, 'the proxy to see the connection closed');
      } finally {
        await fake.close();
      }
    });

    it('a proxy that never completes the TCP handshake is ERR_UPSTREAM_PROXY (REP 01), not a timeout of the destination', async function () {
      this.timeout(10_000); // without the dial's own timer it would hang here
      const blackhole = await startUnaccepting();
      try {
        const err = await assertRejects(
          dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(blackhole.port), timeoutMs: 300 }),
          'ERR_UPSTREAM_PROXY',
        );
        assert.equal(repForError(err), REP.GENERAL_FAILURE);
      } finally {
        blackhole.stop();
      }
    });

    it('the socket is half-open: after the peer (through the proxy) ends its side, we can still send', async () => {
      const { peer, got } = halfClosingPeer();
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED, peer });
      try {
        const socket = await dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 });
        try {
          assert.deepEqual(await readToEndThenSend(socket), { read: 'bye' });
          assert.equal(await got, 'after');
        } finally {
          socket.destroy();
        }
      } finally {
        await fake.close();
      }
    });

    it('AbortSignal.timeout() is reported as ERR_DIAL_TIMEOUT', async () => {
      const fake = await startFakeUpstream({ kind: 'silent' });
      try {
        await assertRejects(
          dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 5000, signal: AbortSignal.timeout(100) }),
          'ERR_DIAL_TIMEOUT',
        );
      } finally {
        await fake.close();
      }
    });

    it('aborting mid-handshake rejects with ERR_DIAL_FAILED and closes the socket', async () => {
      const fake = await startFakeUpstream({ kind: 'silent' });
      try {
        const controller = new AbortController();
        const pending = dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 5000, signal: controller.signal });
        await waitFor(() => fake.accepted === 1, 'the proxy to accept');
        controller.abort();
        await assertRejects(pending, 'ERR_DIAL_FAILED');
        await waitFor(() => fake.open.size === 0, 'the proxy to see the connection closed');
      } finally {
        await fake.close();
      }
    });

    it("passes the client's credentials on unchanged (Core's isolation tokens)", async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        const credentials = { username: 'a1b2c3d4e5f6a7b8-0', password: 'a1b2c3d4e5f6a7b8-0' };
        const socket = await dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), credentials, timeoutMs: 2000 });
        socket.destroy();
        assert.deepEqual(fake.requests, [{ destination: { host: '1.2.3.4', port: 8333, kind: 'ipv4' }, ...credentials }]);
      } finally {
        await fake.close();
      }
    });

    it('without credentials (or with empty ones) uses fresh random hex credentials per dial', async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        const destination = makeDestination('1.2.3.4', 8333);
        for (const credentials of [undefined, undefined, { username: '', password: '' }]) {
          const socket = await dial(
            credentials
              ? { destination, upstreamProxy: proxyAt(fake.port), credentials, timeoutMs: 2000 }
              : { destination, upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 },
          );
          socket.destroy();
        }
        assert.equal(fake.requests.length, 3);
        for (const r of fake.requests) {
          assert.match(r.username!, HEX32);
          assert.match(r.password!, HEX32);
        }
        assert.equal(new Set(fake.requests.map((r) => r.username)).size, 3);
      } finally {
        await fake.close();
      }
    });

    // Credentials in the proxy URL are what the proxy requires: they win over the client's, even in part.
    const inProxyUrl: [string, { username?: string; password?: string }, { username: string; password: string }, { username: string; password: string }][] = [
      [
        'a proxy URL with a username and a password',
        { username: 'operator', password: 'pw' },
        { username: 'client', password: 'client' },
        { username: 'operator', password: 'pw' },
      ],
      ['a proxy URL with only a username', { username: 'operator' }, { username: 'client', password: 'client' }, { username: 'operator', password: '' }],
      ['a proxy URL with only a password', { password: 'pw' }, { username: 'client', password: 'client' }, { username: '', password: 'pw' }],
    ];
    for (const [what, inUrl, fromClient, expected] of inProxyUrl) {
      it(`${what} wins over the client's credentials`, async () => {
        const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
        try {
          const socket = await dial({
            destination: makeDestination('1.2.3.4', 8333),
            upstreamProxy: { ...proxyAt(fake.port), ...inUrl },
            credentials: fromClient,
            timeoutMs: 2000,
          });
          socket.destroy();
          assert.deepEqual(
            fake.requests.map((r) => ({ username: r.username, password: r.password })),
            [expected],
          );
        } finally {
          await fake.close();
        }
      });
    }

    for (const credentials of [
      { username: 'only-user', password: '' },
      { username: '', password: 'only-pass' },
    ]) {
      it(`client credentials ${JSON.stringify(credentials)} are passed on as they are, not replaced by random ones`, async () => {
        const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
        try {
          const socket = await dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), credentials, timeoutMs: 2000 });
          socket.destroy();
          assert.deepEqual(
            fake.requests.map((r) => ({ username: r.username, password: r.password })),
            [credentials],
          );
        } finally {
          await fake.close();
        }
      });
    }

    it('a credential of exactly 255 bytes is passed on unchanged; 256 bytes become the SHA-256 hex of the value', async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        const socket = await dial({
          destination: makeDestination('1.2.3.4', 8333),
          upstreamProxy: proxyAt(fake.port),
          credentials: { username: 'a'.repeat(255), password: 'a'.repeat(256) },
          timeoutMs: 2000,
        });
        socket.destroy();
        // printf 'a%.0s' $(seq 256) | sha256sum
        assert.deepEqual(
          fake.requests.map((r) => ({ username: r.username, password: r.password })),
          [{ username: 'a'.repeat(255), password: '02d7160d77e18c6447be80c2e355c7ed4388545271702c50253b0914c65ce5fe' }],
        );
      } finally {
        await fake.close();
      }
    });

    it('credentials too long for RFC 1929 once UTF-8 encoded are replaced by a stable hash instead of crashing', async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        const long = '\u00ff'.repeat(200); // 200 latin1 bytes from our server, 400 bytes as UTF-8
        for (let i = 0; i < 2; i++) {
          const socket = await dial({
            destination: makeDestination('1.2.3.4', 8333),
            upstreamProxy: proxyAt(fake.port),
            credentials: { username: long, password: 'p' },
            timeoutMs: 2000,
          });
          socket.destroy();
        }
        assert.match(fake.requests[0].username!, /^[0-9a-f]{64}$/);
        assert.equal(fake.requests[0].username, fake.requests[1].username);
        assert.equal(fake.requests[0].password, 'p');
      } finally {
        await fake.close();
      }
    });

    it('sends host names and .onion to the proxy as names, never resolving them here', async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        // .invalid never resolves (RFC 2606): a local lookup would fail before the proxy saw anything.
        for (const host of ['seed.nonexistent.invalid', ONION]) {
          const socket = await dial({ destination: makeDestination(host, 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 });
          socket.destroy();
        }
        assert.deepEqual(
          fake.requests.map((r) => r.destination),
          [
            { host: 'seed.nonexistent.invalid', port: 8333, kind: 'name' },
            { host: ONION, port: 8333, kind: 'onion' },
          ],
        );
      } finally {
        await fake.close();
      }
    });

    for (const delayMs of [0, 50]) {
      it(`keeps bytes the peer sent in the same segment as the CONNECT reply (reader attached after ${delayMs} ms)`, async () => {
        const extra = Buffer.from('f9beb4d976657273696f6e0000000000', 'hex');
        const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED, extra });
        try {
          const socket = await dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 });
          assert.equal(socket.isPaused(), true, 'handed over paused');
          await new Promise((r) => setTimeout(r, delayMs));
          const received = new Promise<Buffer>((resolve) => socket.once('data', resolve));
          socket.resume();
          const got = await received;
          socket.destroy();
          assert.deepEqual(got, extra);
        } finally {
          await fake.close();
        }
      });
    }

    it("ignores transientReads: the socket `socks` was handed emits 'data' as usual (the bytes after the reply kept)", async () => {
      const extra = Buffer.from('after the reply');
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED, extra });
      try {
        const socket = await dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000, transientReads: true });
        try {
          assert.equal(isTransient(socket), false);
          const received = new Promise<Buffer>((resolve) => socket.once('data', resolve));
          socket.resume();
          assert.deepEqual(await received, extra);
        } finally {
          socket.destroy();
        }
      } finally {
        await fake.close();
      }
    });

    // TCP_NODELAY and keepalive are read from the kernel in socket-options.test.ts.
    it('returns a connected socket that carries bytes through the upstream', async () => {
      const fake = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      try {
        const socket = await dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 });
        try {
          assert.deepEqual(await roundTrip(socket, Buffer.from('through')), Buffer.from('through'));
        } finally {
          socket.destroy();
        }
      } finally {
        await fake.close();
      }
    });

    // The log line names the proxy, the destination and the proxy's own reason ("PROXY" stands for its address).
    const repTable: [number, string, ErrorCode, number, string][] = [
      [REP.GENERAL_FAILURE, 'general failure', 'ERR_UPSTREAM_PROXY', REP.GENERAL_FAILURE, 'upstream proxy PROXY could not connect to 1.2.3.4:8333: Failure'],
      [REP.NOT_ALLOWED, 'not allowed (exit policy)', 'ERR_DIAL_NOT_ALLOWED', REP.NOT_ALLOWED, 'upstream proxy PROXY refused 1.2.3.4:8333 by its policy'],
      [
        REP.NETWORK_UNREACHABLE,
        'network unreachable',
        'ERR_DIAL_UNREACHABLE',
        REP.NETWORK_UNREACHABLE,
        'upstream proxy PROXY could not connect to 1.2.3.4:8333: NetworkUnreachable',
      ],
      [
        REP.HOST_UNREACHABLE,
        'host unreachable',
        'ERR_DIAL_UNREACHABLE',
        REP.HOST_UNREACHABLE,
        'upstream proxy PROXY could not connect to 1.2.3.4:8333: HostUnreachable',
      ],
      [
        REP.CONNECTION_REFUSED,
        'connection refused',
        'ERR_DIAL_REFUSED',
        REP.CONNECTION_REFUSED,
        'upstream proxy PROXY could not connect to 1.2.3.4:8333: ConnectionRefused',
      ],
      [REP.TTL_EXPIRED, 'TTL expired (Tor timeout)', 'ERR_DIAL_TIMEOUT', REP.TTL_EXPIRED, 'upstream proxy PROXY could not connect to 1.2.3.4:8333: TTLExpired'],
      [
        REP.COMMAND_NOT_SUPPORTED,
        'command not supported',
        'ERR_UPSTREAM_PROXY',
        REP.GENERAL_FAILURE,
        'upstream proxy PROXY could not connect to 1.2.3.4:8333: CommandNotSupported',
      ],
      [
        REP.ATYP_NOT_SUPPORTED,
        'address type not supported',
        'ERR_UPSTREAM_PROXY',
        REP.GENERAL_FAILURE,
        'upstream proxy PROXY could not connect to 1.2.3.4:8333: AddressNotSupported',
      ],
      [
        0xf0,
        'Tor extended error F0 (onion descriptor not found)',
        'ERR_DIAL_UNREACHABLE',
        REP.HOST_UNREACHABLE,
        'upstream proxy PROXY could not reach 1.2.3.4:8333 (onion service error)',
      ],
    ];
    for (const [rep, what, code, ourRep, message] of repTable) {
      it(`proxy REP 0x${rep.toString(16).padStart(2, '0')} (${what}) is ${code}, reported to our client as REP 0${ourRep}`, async () => {
        const fake = await startFakeUpstream({ kind: 'reply', rep });
        try {
          const err = await assertRejects(dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 }), code);
          assert.equal(repForError(err), ourRep);
          assert.equal(err.message, message.replace('PROXY', `127.0.0.1:${fake.port}`));
        } finally {
          await fake.close();
        }
      });
    }

    it('a proxy that hangs up mid-handshake is ERR_UPSTREAM_PROXY', async () => {
      const fake = await startFakeUpstream({ kind: 'close-after-greeting' });
      try {
        await assertRejects(dial({ destination: makeDestination('1.2.3.4', 8333), upstreamProxy: proxyAt(fake.port), timeoutMs: 2000 }), 'ERR_UPSTREAM_PROXY');
      } finally {
        await fake.close();
      }
    });

    it('leaves no socket or timer behind, whichever way a dial ends', async () => {
      const silent = await startFakeUpstream({ kind: 'silent' });
      const refusing = await startFakeUpstream({ kind: 'reply', rep: REP.CONNECTION_REFUSED });
      const accepting = await startFakeUpstream({ kind: 'reply', rep: REP.SUCCEEDED });
      const closed = await closedPort();
      // Every TCP handle and every ref'd timer created while dialing must be gone afterwards. (The
      // `socks` package's own timer cannot be cleared, but it is unref'd: it never holds the process.)
      const created = new Map<number, { type: string; resource: unknown }>();
      let recording = true;
      const hook = createHook({
        init(id, type, _trigger, resource) {
          if (recording && (type === 'Timeout' || type === 'TCPWRAP' || type === 'TCPCONNECTWRAP')) created.set(id, { type, resource });
        },
        destroy(id) {
          created.delete(id);
        },
      }).enable();
      const alive = (): string[] =>
        [...created.values()].filter(({ type, resource }) => type !== 'Timeout' || (resource as { hasRef(): boolean }).hasRef()).map(({ type }) => type);
      try {
        const destination = makeDestination('1.2.3.4', 8333);
        const controller = new AbortController();
        const aborted = dial({ destination, upstreamProxy: proxyAt(silent.port), timeoutMs: 5000, signal: controller.signal });
        await waitFor(() => silent.accepted === 1, 'accept');
        controller.abort();
        const results = await Promise.allSettled([
          aborted,
          dial({ destination, upstreamProxy: proxyAt(silent.port), timeoutMs: 100 }),
          dial({ destination, upstreamProxy: proxyAt(refusing.port), timeoutMs: 5000 }),
          dial({ destination, upstreamProxy: proxyAt(closed), timeoutMs: 5000 }),
          dial({ destination: makeDestination('127.0.0.1', closed), timeoutMs: 5000 }),
          dial({ destination: makeDestination(ONION, 8333), timeoutMs: 5000 }),
          dial({ destination, upstreamProxy: proxyAt(accepting.port), timeoutMs: 5000 }),
        ]);
        recording = false;
        assert.deepEqual(
          results.map((r) => r.status),
          ['rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'rejected', 'fulfilled'],
        );
        (results[6] as PromiseFulfilledResult<Socket>).value.destroy();
        await waitFor(() => silent.open.size + refusing.open.size + accepting.open.size === 0, 'server sides to close');
        // Well inside the 5 s dial timeouts: a timer that was not cleared would still be pending.
        await waitFor(() => alive().length === 0, 'handles to close', 1000).catch(() => {
          assert.deepEqual(alive(), [], 'handles left behind');
        });
      } finally {
        hook.disable();
        await silent.close();
        await refusing.close();
        await accepting.close();
      }
    });
  });

  describe('through microsocks', () => {
    let plain: Microsocks;
    let authed: Microsocks;
    let echo: Listening;
    before(async () => {
      plain = await startMicrosocks();
      authed = await startMicrosocks({ user: 'user', pass: 'pass' });
      echo = await startEcho();
    });
    after(async () => {
      await plain?.stop();
      await authed?.stop();
      await echo?.close();
    });

    it('connects through it and carries bytes both ways', async () => {
      const socket = await dial({ destination: makeDestination('127.0.0.1', echo.port), upstreamProxy: proxyAt(plain.port), timeoutMs: 5000 });
      try {
        const payload = Buffer.alloc(100_000, 0xab);
        assert.deepEqual(await roundTrip(socket, payload), payload);
      } finally {
        socket.destroy();
      }
    });

    it('a destination that refuses behind the proxy is ERR_DIAL_REFUSED, not a proxy failure', async () => {
      const err = await assertRejects(
        dial({ destination: makeDestination('127.0.0.1', await closedPort()), upstreamProxy: proxyAt(plain.port), timeoutMs: 5000 }),
        'ERR_DIAL_REFUSED',
      );
      assert.equal(repForError(err), REP.CONNECTION_REFUSED);
    });

    it('an upstream proxy port with nothing listening is ERR_UPSTREAM_PROXY (REP 01)', async () => {
      const err = await assertRejects(
        dial({ destination: makeDestination('127.0.0.1', echo.port), upstreamProxy: proxyAt(await closedPort()), timeoutMs: 5000 }),
        'ERR_UPSTREAM_PROXY',
      );
      assert.equal(repForError(err), REP.GENERAL_FAILURE);
    });

    it('with -u/-P, the credentials passed on succeed', async () => {
      const socket = await dial({
        destination: makeDestination('127.0.0.1', echo.port),
        upstreamProxy: proxyAt(authed.port),
        credentials: { username: 'user', password: 'pass' },
        timeoutMs: 5000,
      });
      try {
        assert.deepEqual(await roundTrip(socket, Buffer.from('authed')), Buffer.from('authed'));
      } finally {
        socket.destroy();
      }
    });

    it('with -u/-P, credentials from the proxy URL succeed whatever the client sent', async () => {
      const accepted = echo.accepted;
      const socket = await dial({
        destination: makeDestination('127.0.0.1', echo.port),
        upstreamProxy: { ...parseProxyUrl(`socks5://user:pass@127.0.0.1:${authed.port}`) },
        credentials: { username: 'a1b2c3d4e5f6a7b8-0', password: 'a1b2c3d4e5f6a7b8-0' },
        timeoutMs: 5000,
      });
      try {
        // microsocks let us through (it refuses anything but user/pass, see the next tests) and
        // connected to the echo server: bytes come back through it.
        assert.deepEqual(await roundTrip(socket, Buffer.from('url credentials')), Buffer.from('url credentials'));
        assert.equal(echo.accepted, accepted + 1, 'microsocks connected to the destination once');
      } finally {
        socket.destroy();
      }
    });

    it('with -u/-P, wrong credentials are ERR_UPSTREAM_PROXY', async () => {
      await assertRejects(
        dial({
          destination: makeDestination('127.0.0.1', echo.port),
          upstreamProxy: proxyAt(authed.port),
          credentials: { username: 'user', password: 'wrong' },
          timeoutMs: 5000,
        }),
        'ERR_UPSTREAM_PROXY',
      );
    });

    it('with -u/-P, random credentials (none given) are ERR_UPSTREAM_PROXY', async () => {
      await assertRejects(
        dial({ destination: makeDestination('127.0.0.1', echo.port), upstreamProxy: proxyAt(authed.port), timeoutMs: 5000 }),
        'ERR_UPSTREAM_PROXY',
      );
    });
  });
});
