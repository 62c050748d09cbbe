/**
 * No open proxy by accident (socks5-and-clients.md: loops and DNS leaks):
 * - a destination that is the proxy's own listen address is refused (REP 02, ERR_DIAL_NOT_ALLOWED)
 *   however it is spelled: 127.0.0.1, localhost, ::1, 0.0.0.0, ::ffff:127.0.0.1, from SOCKS5 (ATYP 01,
 *   03, 04) and from a legacy VERSION's addr_recv;
 * - with an upstream proxy, a host name goes to it as ATYP 03 exactly as given and is never resolved
 *   here (a fake upstream records the request; dns.lookup is watched);
 * - a .onion without any proxy gets REP 02 and no connection attempt and no lookup at all.
 */
import assert from 'node:assert/strict';
import dns from 'node:dns';
import * as net from 'node:net';
import * as os from 'node:os';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fuzz/fake-upstream.js';
import { MAIN, socks5Request } from '../helpers/fuzz/inputs.js';
import { connectTo } from '../helpers/fuzz/sockets.js';
import { expectNoLeaks, settle } from '../helpers/leaks.js';
import { MessageChannel, byteReader, handshakeV1, socks5Connect, startTestNode, type TestNode, versionPayload } from '../helpers/node.js';
import { type TestProxy, startProxy } from '../helpers/proxy.js';
import { skipBecause } from '../helpers/skip.js';

const ONION = 'pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion';

async function ipv6Loopback(): Promise<boolean> {
  const s = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => s.close(() => resolve()));
  return ok;
}

/** SOCKS5 no-auth greeting + a CONNECT with the given ATYP; resolves with the REP byte. */
async function socksRep(proxyPort: number, host: string, port: number, atyp: 1 | 3 | 4): Promise<number> {
  const socket = await connectTo(proxyPort);
  try {
    const read = byteReader(socket);
    socket.write(Buffer.concat([Buffer.from([5, 1, 0]), socks5Request(host, port, atyp)]));
    await read(2);
    return (await read(10))[1];
  } finally {
    socket.destroy();
  }
}

/** Watch dns.lookup (which net.connect uses for names) and net.Socket.prototype.connect for the duration of fn. */
async function watchNetwork<T>(fn: () => Promise<T>): Promise<{ result: T; lookups: string[]; connects: unknown[] }> {
  const lookups: string[] = [];
  const connects: unknown[] = [];
  const lookup = dns.lookup;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the socket as `this`, and put back afterwards
  const connect = net.Socket.prototype.connect;
  (dns as { lookup: unknown }).lookup = function (this: unknown, hostname: string, ...rest: unknown[]) {
    lookups.push(hostname);
    return (lookup as (...a: unknown[]) => unknown).call(this, hostname, ...rest);
  };
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    connects.push(args[0]);
    return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
  };
  try {
    return { result: await fn(), lookups, connects };
  } finally {
    (dns as { lookup: unknown }).lookup = lookup;
    net.Socket.prototype.connect = connect;
  }
}

describe('hardening: no open proxy by accident', function () {
  this.timeout(30_000);

  describe('connections back to the proxy itself', () => {
    let proxy: TestProxy;
    let node: TestNode;
    before(async () => {
      node = await startTestNode(MAIN.magic);
      proxy = await startProxy();
    });
    after(async () => {
      await proxy.stop();
      await node.stop();
    });

    for (const [host, atyp] of [
      ['127.0.0.1', 1],
      ['127.0.0.1', 3],
      ['localhost', 3],
      ['LOCALHOST', 3],
      ['0.0.0.0', 1],
      ['0.0.0.0', 3],
      ['::ffff:127.0.0.1', 3],
      ['::ffff:127.0.0.1', 4],
    ] as const) {
      it(`refuses ${host} (ATYP 0${atyp}) at its own port with REP 02 and ERR_DIAL_NOT_ALLOWED`, async () => {
        const before = await settle();
        const logStart = proxy.logs.length;
        assert.equal(await socksRep(proxy.port, host, proxy.port, atyp), 0x02);
        const refused = proxy.logs.slice(logStart).find((l) => / refused /.test(l));
        // Refused before any dial ("is"), not only once a dial has landed back here ("leads back").
        assert.match(refused ?? '', /code=ERR_DIAL_NOT_ALLOWED reason=.* is this proxy's own listen address/);
        await expectNoLeaks(before);
      });
    }

    it('refuses ::1 (ATYP 03 as Core sends it, and ATYP 04) at its own port, when IPv6 loopback works', async function () {
      if (!(await ipv6Loopback())) skipBecause(this, 'no IPv6 loopback (::1) on this machine');
      assert.equal(await socksRep(proxy.port, '::1', proxy.port, 3), 0x02);
      assert.equal(await socksRep(proxy.port, '::1', proxy.port, 4), 0x02);
      assert.equal(await socksRep(proxy.port, '[::1]', proxy.port, 3), 0x02);
    });

    it('refuses a legacy VERSION whose addr_recv is its own address (IPv4-mapped 127.0.0.1 and ::1)', async () => {
      for (const host of ['127.0.0.1', '::1']) {
        const logStart = proxy.logs.length;
        const socket = await connectTo(proxy.port);
        const ch = new MessageChannel(socket, MAIN.magic);
        ch.send('version', versionPayload({ host, port: proxy.port }));
        await ch.waitClosed();
        assert.equal(ch.received.length, 0);
        assert.ok(
          proxy.logs.slice(logStart).some((l) => /refused .*code=ERR_DIAL_NOT_ALLOWED/.test(l)),
          host,
        );
      }
    });

    it('still dials another port on loopback (the refusal is about itself, not about loopback)', async () => {
      for (const host of ['127.0.0.1', 'localhost']) {
        const { socket, rep } = await socks5Connect(proxy.port, host, node.port);
        assert.equal(rep, 0, host);
        await handshakeV1(new MessageChannel(socket, MAIN.magic));
        socket.destroy();
      }
    });

    it("a proxy listening on 0.0.0.0 refuses this machine's own non-loopback address at its port", async function () {
      const own = Object.values(os.networkInterfaces())
        .flat()
        .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;
      if (own === undefined) skipBecause(this, 'this machine has no non-loopback IPv4 address');
      const wild = await startProxy({ listen: [{ host: '0.0.0.0', port: 0 }] });
      try {
        const port = wild.server.addresses[0].port;
        const logStart = wild.logs.length;
        assert.equal(await socksRep(port, own, port, 1), 0x02);
        assert.ok(
          wild.logs.slice(logStart).some((l) => /code=ERR_DIAL_NOT_ALLOWED/.test(l)),
          wild.logs.slice(logStart).join('\n'),
        );
      } finally {
        await wild.stop();
      }
    });

    it("a proxy listening on 0.0.0.0 refuses a legacy VERSION naming this machine's address, instead of chaining connections to itself", async function () {
      const own = Object.values(os.networkInterfaces())
        .flat()
        .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;
      if (own === undefined) skipBecause(this, 'this machine has no non-loopback IPv4 address');
      const wild = await startProxy({ listen: [{ host: '0.0.0.0', port: 0 }], timeouts: { socksMs: 2000, connectMs: 2000, handshakeMs: 300, idleMs: 10_000 } });
      try {
        const port = wild.server.addresses[0].port;
        const socket = await connectTo(port);
        const ch = new MessageChannel(socket, MAIN.magic);
        ch.send('version', versionPayload({ host: own, port }));
        await ch.waitClosed();
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(wild.logs.filter((l) => / accepted /.test(l)).length, 1, wild.logs.join('\n'));
        await wild.waitLog(/refused .*code=ERR_DIAL_NOT_ALLOWED/);
      } finally {
        await wild.stop();
      }
    });

    it('a proxy listening on 0.0.0.0 refuses a host name that resolves back to itself (checked where the connection landed)', async function () {
      const name = os.hostname();
      const addr = await dns.promises.lookup(name, { family: 4 }).catch(() => undefined);
      if (addr === undefined) skipBecause(this, `the host name ${name} does not resolve to an IPv4 address`);
      const wild = await startProxy({ listen: [{ host: '0.0.0.0', port: 0 }] });
      try {
        const port = wild.server.addresses[0].port;
        assert.equal(await socksRep(port, name, port, 3), 0x02);
        await wild.waitLog(/refused .*code=ERR_DIAL_NOT_ALLOWED reason=.*leads back/);
      } finally {
        await wild.stop();
      }
    });

    it('a proxy listening on ::1 refuses 127.0.0.1, localhost and ::1 at its port', async function () {
      if (!(await ipv6Loopback())) skipBecause(this, 'no IPv6 loopback (::1) on this machine');
      const v6 = await startProxy({ listen: [{ host: '::1', port: 0 }] });
      try {
        const port = v6.server.addresses[0].port;
        const socket = net.connect({ host: '::1', port });
        socket.on('error', () => {});
        await new Promise((r) => socket.once('connect', r));
        const read = byteReader(socket);
        socket.write(Buffer.concat([Buffer.from([5, 1, 0]), socks5Request('127.0.0.1', port, 1)]));
        await read(2);
        assert.equal((await read(10))[1], 0x02);
        socket.destroy();
        for (const host of ['localhost', '::1']) {
          const s = net.connect({ host: '::1', port });
          s.on('error', () => {});
          await new Promise((r) => s.once('connect', r));
          const r = byteReader(s);
          s.write(Buffer.concat([Buffer.from([5, 1, 0]), socks5Request(host, port, 3)]));
          await r(2);
          assert.equal((await r(10))[1], 0x02, host);
          s.destroy();
        }
      } finally {
        await v6.stop();
      }
    });
  });

  describe('which addresses count as its own: refused before any dial, and only those', () => {
    const ownIPv4 = (): string | undefined =>
      Object.values(os.networkInterfaces())
        .flat()
        .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;
    // [listen host, CONNECT host, ATYP, own?]. A wildcard listener is reached at every address of the
    // machine; a loopback one at every loopback spelling and at "any" (0.0.0.0, ::), which Linux
    // dials as this host; a listener on one other address only at that address.
    const OWN = '<own IPv4>';
    const table: [string, string, 1 | 4, boolean][] = [
      ['127.0.0.1', OWN, 1, false],
      ['127.0.0.1', '::', 4, true],
      ['127.0.0.1', '::1', 4, true],
      [OWN, OWN, 1, true],
      [OWN, '127.0.0.1', 1, false],
      [OWN, '0.0.0.0', 1, false],
      ['0.0.0.0', OWN, 1, true],
      ['::', OWN, 1, true],
      ['::', '127.0.0.1', 1, true],
    ];
    for (const [listen, target, atyp, own] of table) {
      it(`listening on ${listen}, CONNECT ${target}${atyp === 4 ? ' (ATYP 04)' : ''} at its port is ${own ? 'refused with REP 02' : 'dialed (REP 05: nothing listens there)'}`, async function () {
        const address = ownIPv4();
        if ((listen === OWN || target === OWN) && address === undefined) skipBecause(this, 'this machine has no non-loopback IPv4 address');
        const host = (h: string): string => (h === OWN ? address! : h);
        let proxy: TestProxy;
        try {
          proxy = await startProxy({ listen: [{ host: host(listen), port: 0 }] });
        } catch (err) {
          if (listen === '::') skipBecause(this, `cannot listen on [::] here (${(err as NodeJS.ErrnoException).code})`);
          throw err;
        }
        try {
          const port = proxy.server.addresses[0].port;
          const socket = net.connect({ host: listen === '::' ? '127.0.0.1' : host(listen), port });
          socket.on('error', () => {});
          await new Promise((r) => socket.once('connect', r));
          const read = byteReader(socket);
          socket.write(Buffer.concat([Buffer.from([5, 1, 0]), socks5Request(host(target), port, atyp)]));
          await read(2);
          const rep = (await read(10))[1];
          socket.destroy();
          if (own) {
            assert.equal(rep, 0x02);
            assert.match(await proxy.waitLog(/ refused /), /code=ERR_DIAL_NOT_ALLOWED reason=.* is this proxy's own listen address/);
          } else {
            assert.equal(rep, 0x05);
            assert.match(await proxy.waitLog(/ refused /), /code=ERR_DIAL_REFUSED/);
          }
        } finally {
          await proxy.stop();
        }
      });
    }
  });

  describe('names through an upstream proxy are never resolved here', () => {
    let node: TestNode;
    let upstream: FakeUpstream;
    let proxy: TestProxy;
    before(async () => {
      node = await startTestNode(MAIN.magic);
      // Everything the upstream is asked for ends up at the test node, as if the name resolved there.
      upstream = await startFakeUpstream(() => ({ connect: { host: '127.0.0.1', port: node.port } }));
      proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: upstream.port } });
    });
    after(async () => {
      await proxy.stop();
      await upstream.stop();
      await node.stop();
    });

    it('the watch on dns.lookup sees a name that is resolved locally (so its silence below means something)', async () => {
      const { lookups } = await watchNetwork(async () => {
        const s = net.connect({ host: 'seed.example.invalid', port: 8333 });
        await new Promise((r) => s.once('error', r));
        s.destroy();
      });
      assert.ok(lookups.includes('seed.example.invalid'));
    });

    it('seed.example.invalid goes to the upstream as ATYP 03 with the name as given, unresolved, and the session runs v2 end to end', async () => {
      const before = upstream.requests.length;
      const { result: ch, lookups } = await watchNetwork(async () => {
        const { socket, rep } = await socks5Connect(proxy.port, 'seed.example.invalid', 8333);
        assert.equal(rep, 0);
        const c = new MessageChannel(socket, MAIN.magic);
        await handshakeV1(c);
        return c;
      });
      ch.socket.destroy();
      assert.deepEqual(lookups, [], 'no local DNS lookup');
      const req = upstream.requests[before];
      assert.equal(req.atyp, 0x03);
      assert.equal(req.host, 'seed.example.invalid');
      assert.equal(req.port, 8333);
      assert.ok(node.channels[node.channels.length - 1].isV2);
    });

    it('a .onion goes to the upstream as ATYP 03 too, and an IPv4 literal as ATYP 01', async () => {
      const before = upstream.requests.length;
      const { lookups } = await watchNetwork(async () => {
        for (const host of [ONION, '203.0.113.7']) {
          const { socket, rep } = await socks5Connect(proxy.port, host, 8333);
          assert.equal(rep, 0, host);
          socket.destroy();
        }
      });
      assert.deepEqual(lookups, []);
      assert.deepEqual(
        upstream.requests.slice(before).map((r) => [r.atyp, r.host, r.port]),
        [
          [3, ONION, 8333],
          [1, '203.0.113.7', 8333],
        ],
      );
    });
  });

  it('a .onion without any proxy gets REP 02, with no connection attempt and no lookup', async () => {
    const proxy = await startProxy();
    try {
      const before = await settle();
      const {
        result: rep,
        lookups,
        connects,
      } = await watchNetwork(async () => {
        const socket = await connectTo(proxy.port);
        const read = byteReader(socket);
        socket.write(Buffer.concat([Buffer.from([5, 1, 0]), socks5Request(ONION, 8333, 3)]));
        await read(2);
        const r = (await read(10))[1];
        socket.destroy();
        return r;
      });
      assert.equal(rep, 0x02);
      assert.deepEqual(lookups, []);
      // The only connect is the test's own, to the proxy.
      assert.equal(connects.length, 1);
      await proxy.waitLog(/refused .*code=ERR_ONION_NO_PROXY reason=/);
      await expectNoLeaks(before);
    } finally {
      await proxy.stop();
    }
  });
});
