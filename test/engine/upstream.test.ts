/**
 * Upstream SOCKS5 chaining and every SOCKS5 reply code, end to end on loopback: a real SOCKS5
 * proxy (microsocks) in the chain to a v2 node (our own, and the independent peer), and a scripted upstream that records what it was asked and
 * answers with a chosen reply code (the way Tor reports failures).
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { networkByName } from '../../src/networks.js';
import { startMicrosocks } from '../helpers/microsocks.js';
import { IMPLS, MessageChannel, byteReader, handshakeV1, implLabel, socks5Connect, startTestNode, type TestNode } from '../helpers/node.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

const main = networkByName('main')!;
const ONION = 'pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion';

interface UpstreamRequest {
  methods: number[];
  user?: string;
  pass?: string;
  atyp: number;
  host: string;
  port: number;
}

/**
 * A SOCKS5 server that records each request and answers it with `rep` (or never answers), or with
 * 'relay' connects to the IPv4 destination asked for and relays both ways, as a working proxy.
 */
async function startScriptedUpstream(rep: number | 'silent' | 'relay'): Promise<{ port: number; requests: UpstreamRequest[]; stop(): Promise<void> }> {
  const requests: UpstreamRequest[] = [];
  const sockets = new Set<net.Socket>();
  // A read that fails (the proxy left mid-request) ends the connection.
  const answer = async (socket: net.Socket): Promise<void> => {
    const read = byteReader(socket);
    const [, n] = await read(2);
    const methods = [...(await read(n))];
    const req: Partial<UpstreamRequest> = { methods };
    if (methods.includes(2)) {
      socket.write(Buffer.from([5, 2]));
      const [, ulen] = await read(2);
      req.user = (await read(ulen)).toString();
      const [plen] = await read(1);
      req.pass = (await read(plen)).toString();
      socket.write(Buffer.from([1, 0]));
    } else socket.write(Buffer.from([5, 0]));
    const [, , , atyp] = await read(4);
    req.atyp = atyp;
    if (atyp === 3) req.host = (await read((await read(1))[0])).toString();
    else req.host = [...(await read(atyp === 1 ? 4 : 16))].join('.');
    req.port = (await read(2)).readUInt16BE(0);
    requests.push(req as UpstreamRequest);
    if (rep === 'relay') {
      read.release();
      const target = net.connect(req.port, req.host, () => {
        socket.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        socket.pipe(target).pipe(socket);
      });
      sockets.add(target);
      target.on('error', () => socket.destroy());
      target.on('close', () => socket.destroy());
      socket.on('close', () => target.destroy());
    } else if (rep !== 'silent') socket.end(Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]));
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    answer(socket).catch(() => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

for (const impl of IMPLS)
  describe(`upstream SOCKS5 chaining (microsocks)${implLabel(impl)}`, function () {
    let node: TestNode;
    let proxy: TestProxy | undefined;
    beforeEach(async () => {
      node = await startTestNode(main.magic, 'v2', {}, { impl });
    });
    afterEach(async () => {
      await proxy?.stop();
      proxy = undefined;
      await node.stop();
    });

    it('reaches a v2 node through an upstream SOCKS5 proxy', async () => {
      const ms = await startMicrosocks();
      try {
        proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: ms.port } });
        const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        assert.equal(rep, 0);
        const client = new MessageChannel(socket, main.magic);
        await handshakeV1(client);
        client.send('ping', Buffer.alloc(8, 7));
        assert.deepEqual((await client.next('pong')).payload, Buffer.alloc(8, 7));
        assert.ok(node.channels[0].isV2);
        socket.destroy();
      } finally {
        await ms.stop();
      }
    });

    it("passes the client's SOCKS credentials on: only they satisfy an upstream that requires a password", async () => {
      const ms = await startMicrosocks({ user: 'alice-7f3a', pass: 's3cret-7f3a' });
      try {
        proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: ms.port } });
        const good = await socks5Connect(proxy.port, '127.0.0.1', node.port, { user: 'alice-7f3a', pass: 's3cret-7f3a' });
        assert.equal(good.rep, 0);
        const client = new MessageChannel(good.socket, main.magic);
        await handshakeV1(client);
        assert.ok(node.channels[0].isV2);
        good.socket.destroy();

        const bad = await socks5Connect(proxy.port, '127.0.0.1', node.port, { user: 'mallory', pass: 'guess' });
        assert.equal(bad.rep, 0x01, 'an upstream authentication failure is a general failure');
        bad.socket.destroy();
        const line = await proxy.waitLog(/refused.*ERR_UPSTREAM_PROXY/);
        assert.doesNotMatch(proxy.logs.join('\n'), /s3cret|guess/, 'credentials never appear in logs');
        assert.match(line, /reason=/);
      } finally {
        await ms.stop();
      }
    });

    it('a v1 fallback through the upstream proxy reuses the same credentials (one Tor circuit)', async () => {
      const v1node = await startTestNode(main.magic, 'v1-close');
      const ms = await startMicrosocks({ user: 'bob-1', pass: 'pw-1' });
      try {
        proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: ms.port } });
        const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', v1node.port, { user: 'bob-1', pass: 'pw-1' });
        assert.equal(rep, 0);
        const client = new MessageChannel(socket, main.magic);
        await handshakeV1(client);
        assert.equal(v1node.accepted, 2);
        socket.destroy();
      } finally {
        await ms.stop();
        await v1node.stop();
      }
    });
  });

describe('SOCKS5 reply codes, end to end', function () {
  let proxy: TestProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  it('05 connection refused: nothing listens at the destination', async () => {
    proxy = await startProxy();
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', port);
    assert.equal(rep, 0x05);
    socket.destroy();
    await proxy.waitLog(/refused.*code=ERR_DIAL_REFUSED/);
  });

  for (const [upstreamRep, expected, code] of [
    [0x04, 0x04, 'ERR_DIAL_UNREACHABLE'],
    [0x05, 0x05, 'ERR_DIAL_REFUSED'],
    [0x03, 0x03, 'ERR_DIAL_UNREACHABLE'],
  ] as const) {
    it(`upstream REP 0x0${upstreamRep} is reported to the client as 0x0${expected} (${code})`, async () => {
      const up = await startScriptedUpstream(upstreamRep);
      try {
        proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: up.port } });
        const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', 8333);
        assert.equal(rep, expected);
        socket.destroy();
        await proxy.waitLog(new RegExp(`refused.*code=${code}`));
      } finally {
        await up.stop();
      }
    });
  }

  it('06 TTL expired: the upstream proxy never answers within the connect timeout', async () => {
    const up = await startScriptedUpstream('silent');
    try {
      proxy = await startProxy({
        upstreamProxy: { host: '127.0.0.1', port: up.port },
        timeouts: { socksMs: 5000, connectMs: 300, handshakeMs: 2000, idleMs: 60_000 },
      });
      const started = Date.now();
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', 8333);
      assert.equal(rep, 0x06);
      assert.ok(Date.now() - started < 3000);
      socket.destroy();
      await proxy.waitLog(/refused.*code=ERR_DIAL_TIMEOUT/);
    } finally {
      await up.stop();
    }
  });

  it('01 general failure: the upstream proxy is down', async () => {
    const gone = net.createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    const port = (gone.address() as net.AddressInfo).port;
    await new Promise<void>((r) => gone.close(() => r()));
    proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port } });
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', 8333);
    assert.equal(rep, 0x01);
    socket.destroy();
    await proxy.waitLog(/refused.*code=ERR_UPSTREAM_PROXY/);
  });

  it('02 not allowed: a .onion destination with no proxy to reach it, and no connection attempt', async () => {
    proxy = await startProxy();
    const { socket, rep } = await socks5Connect(proxy.port, ONION, 8333);
    assert.equal(rep, 0x02);
    socket.destroy();
    assert.match(await proxy.waitLog(/refused/), /code=ERR_ONION_NO_PROXY/);
  });

  it('.onion goes to --onion-proxy as a name (ATYP 03), with the client credentials', async () => {
    const up = await startScriptedUpstream(0x05);
    try {
      proxy = await startProxy({ onionProxy: { host: '127.0.0.1', port: up.port } });
      const { socket, rep } = await socks5Connect(proxy.port, ONION, 8333, { user: 'iso-1', pass: 'iso-1' });
      assert.equal(rep, 0x05);
      socket.destroy();
      assert.equal(up.requests.length, 1);
      assert.equal(up.requests[0].atyp, 3);
      assert.equal(up.requests[0].host, ONION);
      assert.equal(up.requests[0].user, 'iso-1');
    } finally {
      await up.stop();
    }
  });

  it('a client without credentials gets fresh random ones per connection toward the upstream', async () => {
    const up = await startScriptedUpstream(0x05);
    try {
      proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: up.port } });
      for (let i = 0; i < 2; i++) (await socks5Connect(proxy.port, 'seed.example.invalid', 8333, null)).socket.destroy();
      assert.equal(up.requests.length, 2);
      assert.equal(up.requests[0].atyp, 3, 'names are never resolved locally');
      assert.equal(up.requests[0].host, 'seed.example.invalid');
      assert.ok(up.requests[0].user && up.requests[1].user && up.requests[0].user !== up.requests[1].user);
    } finally {
      await up.stop();
    }
  });

  it("a v1 fallback goes through the upstream again, with the same credentials: the client's, or the random ones of the first attempt", async () => {
    const up = await startScriptedUpstream('relay');
    const v1node = await startTestNode(main.magic, 'v1-close');
    try {
      proxy = await startProxy({ upstreamProxy: { host: '127.0.0.1', port: up.port } });
      // Without credentials, with empty ones (the same as none: Tor isolates nothing on them), and with the client's own.
      for (const creds of [null, { user: '', pass: '' }, { user: 'carol', pass: '' }, { user: '', pass: 'pw' }]) {
        const before = up.requests.length;
        const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', v1node.port, creds);
        assert.equal(rep, 0);
        const client = new MessageChannel(socket, main.magic);
        await handshakeV1(client);
        socket.destroy();
        const [first, redial, ...more] = up.requests.slice(before);
        assert.deepEqual(more, [], 'two dials: the v2 attempt and the v1 redial');
        assert.ok(first !== undefined && redial !== undefined, `${JSON.stringify(creds)}: the redial went around the upstream`);
        assert.equal(redial.user, first.user);
        assert.equal(redial.pass, first.pass);
        if (creds !== null && (creds.user !== '' || creds.pass !== '')) assert.deepEqual([first.user, first.pass], [creds.user, creds.pass]);
        else assert.match(`${first.user} ${first.pass}`, /^[0-9a-f]{32} [0-9a-f]{32}$/, `${JSON.stringify(creds)}: fresh random credentials`);
      }
      // A legacy client (no SOCKS5): random credentials too, the same for its redial.
      const before = up.requests.length;
      const socket = net.connect(proxy.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      await handshakeV1(new MessageChannel(socket, main.magic), { host: '127.0.0.1', port: v1node.port });
      socket.destroy();
      const [first, redial, ...more] = up.requests.slice(before);
      assert.deepEqual(more, []);
      assert.ok(first !== undefined && redial !== undefined, 'legacy: the redial went around the upstream');
      assert.match(`${first.user} ${first.pass}`, /^[0-9a-f]{32} [0-9a-f]{32}$/);
      assert.deepEqual([redial.user, redial.pass], [first.user, first.pass]);
      assert.equal(v1node.accepted, 10);
    } finally {
      await up.stop();
      await v1node.stop();
    }
  });

  it('07 command not supported (BIND) and 08 address type not supported', async () => {
    proxy = await startProxy();
    for (const [request, expected] of [
      [Buffer.from([5, 2, 0, 1, 127, 0, 0, 1, 0x20, 0x8d]), 0x07],
      [Buffer.from([5, 1, 0, 5, 127, 0, 0, 1, 0x20, 0x8d]), 0x08],
    ] as const) {
      const socket = net.connect(proxy.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      const read = byteReader(socket);
      socket.write(Buffer.from([5, 1, 0]));
      assert.deepEqual(await read(2), Buffer.from([5, 0]));
      socket.write(request);
      const reply = await read(10);
      assert.equal(reply[1], expected);
      await new Promise((r) => socket.once('close', r));
    }
    await proxy.waitLog(/code=ERR_SOCKS_BAD_COMMAND/);
    await proxy.waitLog(/code=ERR_SOCKS_BAD_ATYP/);
  });
});
