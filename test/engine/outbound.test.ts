/**
 * End to end on loopback: a v1 client through the proxy (SOCKS5 and legacy front ends) to a v2
 * node, built once from the project's own responder and once from the independent peer
 * (test/helpers/independent-v2/); passthrough of a client that speaks v2 itself;
 * v1 fallback to peers that close or hang; --v2-only; wrong networks and bad first bytes.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { networkByName } from '../../src/networks.js';
import {
  IMPLS,
  MessageChannel,
  byteReader,
  handshakeV1,
  implLabel,
  serveLikeANode,
  socks5Connect,
  startTestNode,
  type TestNode,
  versionPayload,
} from '../helpers/node.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { skipBecause } from '../helpers/skip.js';

const main = networkByName('main')!;
const regtest = networkByName('regtest')!;

for (const impl of IMPLS)
  describe(`outbound: v1 client through the proxy to a v2 node${implLabel(impl)}`, function () {
    let node: TestNode;
    let proxy: TestProxy;
    beforeEach(async () => {
      node = await startTestNode(main.magic, 'v2', {}, { impl });
      proxy = await startProxy();
    });
    afterEach(async () => {
      await proxy.stop();
      await node.stop();
    });

    it('SOCKS5: handshake, ping/pong and multi-megabyte messages both ways arrive byte-exact over v2', async () => {
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      assert.equal(rep, 0);
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client);
      const nonce = randomBytes(8);
      client.send('ping', nonce);
      assert.deepEqual((await client.next('pong')).payload, nonce);
      for (const size of [0, 1, 250, 65_536, 3_000_000, 4_000_000]) {
        const payload = randomBytes(size);
        client.send('echo', payload);
        const back = await client.next('echo');
        assert.ok(back.payload.equals(payload), `echo of ${size} bytes differs`);
      }
      // The node saw a v2 connection and the proxy logged the same BIP324 session id.
      const peer = node.channels[0];
      assert.ok(peer.isV2, 'the node must have been reached over v2');
      assert.ok(peer.sessionId !== undefined);
      const line = await proxy.waitLog(/established .*transport=v2/);
      assert.match(line, new RegExp(`session_id=${peer.sessionId.toString('hex')}`));
      assert.match(line, /frontend=socks5/);
      const rec = proxy.server.connections[0];
      assert.equal(rec.sessionId, peer.sessionId.toString('hex'));
      assert.equal(rec.msgsToPeer, 1 + 1 + 1 + 6);
      client.socket.destroy();
      await proxy.waitLog(/closed .*bytes_to_peer=\d+/);
    });

    it('700 pings answered in order: both directions of the session rekey three times (224 packets each)', async () => {
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client);
      const nonces = Array.from({ length: 700 }, () => randomBytes(8));
      for (const n of nonces) client.send('ping', n);
      await client.until(() => client.received.filter((m) => m.command === 'pong').length === nonces.length || client.closed, 20_000, '700 pongs');
      assert.deepEqual(
        client.received.filter((m) => m.command === 'pong').map((m) => m.payload.toString('hex')),
        nonces.map((n) => n.toString('hex')),
      );
      socket.destroy();
    });

    it('SOCKS5 with unauthenticated greeting 05 01 00 works the same', async () => {
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port, null);
      assert.equal(rep, 0);
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client);
      assert.ok(node.channels[0].isV2);
      socket.destroy();
    });

    it('legacy mode: the destination comes from addr_recv of the client VERSION', async () => {
      const socket = net.connect(proxy.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      const client = new MessageChannel(socket, main.magic);
      await handshakeV1(client, { host: '127.0.0.1', port: node.port });
      const payload = randomBytes(2_500_000);
      client.send('echo', payload);
      assert.ok((await client.next('echo')).payload.equals(payload));
      assert.ok(node.channels[0].isV2);
      await proxy.waitLog(/established .*frontend=legacy .*transport=v2/);
      socket.destroy();
    });

    it('legacy mode: a message larger than the 4 KiB VERSION cap, sent in the same write as the VERSION, is relayed', async () => {
      const socket = net.connect(proxy.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      const client = new MessageChannel(socket, main.magic);
      const payload = randomBytes(5000);
      // One write: the VERSION and what follows it reach the legacy front end in the same read.
      socket.cork();
      client.send('version', versionPayload({ host: '127.0.0.1', port: node.port }));
      client.send('echo', payload);
      socket.uncork();
      await client.next('version');
      await client.next('verack');
      client.send('verack');
      assert.ok((await client.next('echo')).payload.equals(payload));
      socket.destroy();
    });

    it('legacy mode: an IPv6 addr_recv (::1) is dialed as IPv6', async function () {
      const v6 = net.createServer();
      const ok = await new Promise<boolean>((resolve) => {
        v6.once('error', () => resolve(false));
        v6.listen(0, '::1', () => resolve(true));
      });
      if (!ok) skipBecause(this, 'no IPv6 loopback (::1) on this machine');
      const port = (v6.address() as net.AddressInfo).port;
      const accepted = new Promise<net.Socket>((resolve) => v6.once('connection', resolve));
      const socket = net.connect(proxy.port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((r) => socket.once('connect', r));
      new MessageChannel(socket, main.magic).send('version', versionPayload({ host: '::1', port }));
      const remote = await accepted;
      assert.equal(remote.remoteFamily, 'IPv6');
      remote.destroy();
      socket.destroy();
      v6.close();
    });

    it('legacy mode: a zero addr_recv is refused with a log line that says why', async () => {
      const socket = net.connect(proxy.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      const client = new MessageChannel(socket, main.magic);
      client.send('version', versionPayload());
      await client.waitClosed();
      assert.match(await proxy.waitLog(/refused/), /code=ERR_LEGACY_BAD_ADDR .*zero/);
      assert.equal(node.accepted, 0);
    });

    it('passthrough: a client that speaks v2 itself reaches the v2 node end to end', async () => {
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      assert.equal(rep, 0);
      const client = new MessageChannel(socket, main.magic, { v2: 'initiator', impl });
      await handshakeV1(client);
      const payload = randomBytes(1_000_000);
      client.send('echo', payload);
      assert.ok((await client.next('echo')).payload.equals(payload));
      // Same session id at both ends: the proxy did not terminate the encryption.
      assert.ok(client.sessionId !== undefined);
      assert.deepEqual(client.sessionId, node.channels[0].sessionId);
      await proxy.waitLog(/established .*transport=passthrough/);
      socket.destroy();
    });
  });

describe('outbound: v1 fallback', function () {
  for (const mode of ['v1-close', 'v1-hang'] as const) {
    it(`reaches a v1-only peer that ${mode === 'v1-close' ? 'closes' : 'hangs'} on v2 bytes, replaying the client's VERSION`, async () => {
      const node = await startTestNode(main.magic, mode);
      const proxy = await startProxy({ timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 400, idleMs: 60_000 } });
      try {
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        const client = new MessageChannel(socket, main.magic);
        await handshakeV1(client);
        const payload = randomBytes(300_000);
        client.send('echo', payload);
        assert.ok((await client.next('echo')).payload.equals(payload));
        assert.equal(node.accepted, 2, 'one v2 attempt, one v1 reconnect');
        assert.ok(!node.firstBytes[0].subarray(0, 4).equals(main.magic), 'the first attempt was v2');
        assert.ok(node.firstBytes[1].subarray(0, 16).equals(Buffer.concat([main.magic, Buffer.from('version\0\0\0\0\0')])));
        await proxy.waitLog(/established .*transport=v1-fallback/);
        socket.destroy();
      } finally {
        await proxy.stop();
        await node.stop();
      }
    });

    it(`--v2-only refuses a v1-only peer that ${mode === 'v1-close' ? 'closes' : 'hangs'}: the client sees a close and no bytes`, async () => {
      const node = await startTestNode(main.magic, mode);
      const proxy = await startProxy({ downgradeGuard: 'all', timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 400, idleMs: 60_000 } });
      try {
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        const received: Buffer[] = [];
        socket.on('data', (d) => received.push(d));
        new MessageChannel(socket, main.magic).send('version', versionPayload());
        await new Promise((r) => socket.once('close', r));
        assert.equal(Buffer.concat(received).length, 0);
        assert.equal(node.accepted, 1, 'no v1 reconnect');
        assert.match(await proxy.waitLog(/closed/), /code=ERR_V2_ONLY/);
      } finally {
        await proxy.stop();
        await node.stop();
      }
    });
  }

  for (const impl of IMPLS) {
    it(`reaches a v2-capable node that closed the first attempt: its responder takes the replayed VERSION as v1${implLabel(impl)}`, async () => {
      // The v1 reconnect lands on a node that also speaks v2: the v1 VERSION prefix the proxy
      // replays must be recognised by a BIP324 responder (byte by byte, as Bitcoin Core does).
      let accepted = 0;
      const responders: MessageChannel[] = [];
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
        if (accepted++ === 0) {
          socket.once('data', () => socket.destroy());
          return;
        }
        const ch = new MessageChannel(socket, main.magic, { v2: 'responder', impl });
        responders.push(ch);
        serveLikeANode(ch);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as net.AddressInfo).port;
      const proxy = await startProxy({ timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 2000, idleMs: 60_000 } });
      try {
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', port);
        const client = new MessageChannel(socket, main.magic);
        await handshakeV1(client);
        const payload = randomBytes(300_000);
        client.send('echo', payload);
        assert.ok((await client.next('echo')).payload.equals(payload));
        assert.equal(accepted, 2, 'one v2 attempt, one v1 reconnect');
        assert.ok(responders[0].detectedV1 && !responders[0].isV2, 'the responder switched to v1');
        await proxy.waitLog(/established .*transport=v1-fallback/);
        socket.destroy();
      } finally {
        await proxy.stop();
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }

  for (const v2Only of [false, true]) {
    it(`stops reading a client that floods before the remote answered${v2Only ? ' (--v2-only, nothing kept for a replay)' : ''}`, async () => {
      const node = await startTestNode(main.magic, 'v1-hang');
      const proxy = await startProxy({
        downgradeGuard: v2Only ? 'all' : 'known',
        timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 10_000, idleMs: 60_000 },
      });
      try {
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        const client = new MessageChannel(socket, main.magic);
        client.send('version', versionPayload());
        const flood = 40 << 20;
        for (let sent = 0; sent < flood; sent += 1 << 20) client.send('echo', randomBytes(1 << 20));
        await new Promise((r) => setTimeout(r, 2500));
        // The proxy holds at most ~1 MiB; the kernel buffers a few MB more; the rest must still be in the client.
        assert.ok(socket.writableLength > 20 << 20, `only ${socket.writableLength} bytes still unsent: the proxy kept reading`);
        socket.destroy();
      } finally {
        await proxy.stop();
        await node.stop();
      }
    });
  }

  it('passthrough: when the remote closes at once, the client gets a close without a single byte', async () => {
    const node = await startTestNode(main.magic, 'v1-close');
    const proxy = await startProxy();
    try {
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const received: Buffer[] = [];
      socket.on('data', (d) => received.push(d));
      socket.write(randomBytes(64 + 100)); // a v2 key and garbage, as Bitcoin Core sends them
      await new Promise((r) => socket.once('close', r));
      assert.equal(Buffer.concat(received).length, 0);
    } finally {
      await proxy.stop();
      await node.stop();
    }
  });
});

describe('outbound: refusals', function () {
  let proxy: TestProxy;
  afterEach(async () => proxy?.stop());

  it('a v1 VERSION for another network than --network is closed with a log line (legacy and SOCKS5)', async () => {
    const node = await startTestNode(main.magic);
    proxy = await startProxy({ network: regtest });
    try {
      const legacy = net.connect(proxy.port, '127.0.0.1');
      await new Promise((r) => legacy.once('connect', r));
      const ch = new MessageChannel(legacy, main.magic);
      ch.send('version', versionPayload({ host: '127.0.0.1', port: node.port }));
      await ch.waitClosed();
      assert.match(await proxy.waitLog(/refused.*ERR_V1_WRONG_NETWORK/), /main/);

      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      assert.equal(rep, 0);
      const ch2 = new MessageChannel(socket, main.magic);
      ch2.send('version', versionPayload());
      await ch2.waitClosed();
      assert.equal(proxy.logs.filter((l) => /ERR_V1_WRONG_NETWORK/.test(l)).length, 2);
    } finally {
      await node.stop();
    }
  });

  it('a first byte that is neither SOCKS5 nor a magic (an HTTP request) is closed with a log line', async () => {
    proxy = await startProxy();
    const socket = net.connect(proxy.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    const got: Buffer[] = [];
    socket.on('data', (d) => got.push(d));
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise((r) => socket.once('close', r));
    assert.equal(Buffer.concat(got).length, 0);
    assert.match(await proxy.waitLog(/refused/), /code=ERR_UNKNOWN_PROTOCOL .*0x47/);
  });

  it('SOCKS4 gets the SOCKS4 rejection reply', async () => {
    proxy = await startProxy();
    const socket = net.connect(proxy.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const read = byteReader(socket);
    socket.write(Buffer.from([4, 1, 0x20, 0x8d, 1, 2, 3, 4, 0]));
    assert.deepEqual(await read(8), Buffer.from([0, 0x5b, 0, 0, 0, 0, 0, 0]));
    await new Promise((r) => socket.once('close', r));
    await proxy.waitLog(/code=ERR_SOCKS4/);
  });

  it('a client that says nothing is closed after the SOCKS timeout', async () => {
    proxy = await startProxy({ timeouts: { socksMs: 200, connectMs: 3000, handshakeMs: 2000, idleMs: 60_000 } });
    const socket = net.connect(proxy.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    await new Promise((r) => socket.once('close', r));
    await proxy.waitLog(/code=ERR_SOCKS_TIMEOUT/);
  });

  it('a destination that is the proxy itself is refused with REP 02', async () => {
    proxy = await startProxy();
    const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', proxy.port);
    assert.equal(rep, 0x02);
    socket.destroy();
    await proxy.waitLog(/code=ERR_DIAL_NOT_ALLOWED/);
  });

  it('--max-connections refuses the connection past the limit and keeps serving the others', async () => {
    const node = await startTestNode(main.magic);
    proxy = await startProxy({ maxConnections: 1 });
    try {
      const first = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      const c1 = new MessageChannel(first.socket, main.magic);
      await handshakeV1(c1);
      const second = net.connect(proxy.port, '127.0.0.1');
      second.on('error', () => {});
      await new Promise((r) => second.once('close', r));
      await proxy.waitLog(/code=ERR_MAX_CONNECTIONS/);
      c1.send('ping', Buffer.alloc(8, 1));
      assert.deepEqual((await c1.next('pong')).payload, Buffer.alloc(8, 1));
      first.socket.destroy();
    } finally {
      await node.stop();
    }
  });
});
