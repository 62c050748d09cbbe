/**
 * dial() hands over sockets with TCP_NODELAY on (no Nagle delay for small P2P messages) and TCP
 * keepalive on with a 60 s idle time (a dead peer behind NAT is noticed in minutes, not the OS
 * default of 2 hours). Node has no getter for either, so the kernel's own state of the very socket
 * dial() returned is read with getsockopt(2) (test/helpers/sockopt.ts).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

import { makeDestination } from '../../src/address.js';
import { dial } from '../../src/upstream/dialer.js';
import { startMicrosocks, type Microsocks } from '../helpers/microsocks.js';
import { skipBecause } from '../helpers/skip.js';
import { kernelSocketOptions, sockoptUnavailable } from '../helpers/sockopt.js';

/** The values src/upstream/dialer.ts documents, as literals. */
const EXPECTED = { noDelay: true, keepAlive: true, keepIdleSeconds: 60 };

describe('dialer: socket options as the kernel sees them', function () {
  let echo: Server;
  let port = 0;
  let microsocks: Microsocks | undefined;
  const open = new Set<Socket>();
  before(async () => {
    echo = createServer((s) => {
      open.add(s);
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    port = (echo.address() as AddressInfo).port;
  });
  beforeEach(function () {
    const why = sockoptUnavailable();
    if (why !== undefined) skipBecause(this, why);
  });
  after(async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((r) => echo.close(() => r()));
    await microsocks?.stop();
  });

  it('the probe itself tells a plain socket (no NODELAY, no keepalive) from a configured one', async () => {
    const s = connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    try {
      const before = await kernelSocketOptions(s);
      assert.equal(before.noDelay, false);
      assert.equal(before.keepAlive, false);
      s.setNoDelay(true);
      s.setKeepAlive(true, 60_000);
      assert.deepEqual(await kernelSocketOptions(s), EXPECTED);
    } finally {
      s.destroy();
    }
  });

  it('a direct dial returns a socket with TCP_NODELAY and keepalive (60 s) on', async () => {
    const socket = await dial({ destination: makeDestination('127.0.0.1', port), timeoutMs: 5000 });
    try {
      assert.deepEqual(await kernelSocketOptions(socket), EXPECTED);
    } finally {
      socket.destroy();
    }
  });

  it('a dial through an upstream SOCKS5 proxy (microsocks) returns a socket with TCP_NODELAY and keepalive (60 s) on', async () => {
    microsocks = await startMicrosocks();
    const socket = await dial({
      destination: makeDestination('127.0.0.1', port),
      upstreamProxy: { host: '127.0.0.1', port: microsocks.port },
      timeoutMs: 5000,
    });
    try {
      assert.deepEqual(await kernelSocketOptions(socket), EXPECTED);
      // And it is the live, connected socket: bytes still go through after the probe.
      socket.resume();
      const back = new Promise<Buffer>((r) => socket.once('data', r));
      socket.write('through');
      assert.equal((await back).toString(), 'through');
    } finally {
      socket.destroy();
    }
  });
});
