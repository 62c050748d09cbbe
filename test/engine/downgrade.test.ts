/**
 * The downgrade guard (issue 14), on real sockets: a peer known to speak v2 whose v2 attempt dies
 * before its first byte (what an on-path attacker can produce at will) is refused, not downgraded
 * to plaintext; a peer nobody said speaks v2 still falls back, as Bitcoin Core does; and a fallback
 * whose remote then answers v1 advertising NODE_P2P_V2 is caught before the client sees that VERSION.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metrics } from '../../src/metrics.js';
import { networkByName } from '../../src/networks.js';
import { V1Parser, serializeV1 } from '../../src/v1/framing.js';
import { MessageChannel, handshakeV1, socks5Connect, startTestNode, versionPayload } from '../helpers/node.js';
import { type TestProxy, startProxy } from '../helpers/proxy.js';
import { tempDir } from '../helpers/tmp.js';

const MAIN = networkByName('main')!;
const V2_BIT = 1n << 11n;

/** An addr payload announcing 127.0.0.1:port with these services. */
function addrPayload(port: number, services: bigint): Buffer {
  const entry = Buffer.alloc(30);
  entry.writeBigUInt64LE(services, 4);
  Buffer.from('00000000000000000000ffff7f000001', 'hex').copy(entry, 12);
  entry.writeUInt16BE(port, 28);
  return Buffer.concat([Buffer.from([1]), entry]);
}

/**
 * A v1-only node: closes on anything but a v1 VERSION (so a v2 attempt dies before its first byte),
 * answers a v1 VERSION with its own, advertising `services`, and verack. Counts its connections.
 */
async function startV1Node(services: bigint): Promise<{ port: number; accepted: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const node = { port: 0, accepted: 0, stop: async () => {} };
  const server = net.createServer((s) => {
    node.accepted++;
    sockets.add(s);
    s.on('error', () => {});
    const parser = new V1Parser(MAIN.magic);
    s.once('data', (first: Buffer) => {
      if (!first.subarray(0, 4).equals(MAIN.magic)) {
        s.destroy();
        return;
      }
      const onData = (chunk: Buffer): void => {
        for (const ev of parser.push(chunk)) {
          if (ev.type === 'message' && ev.command === 'version') {
            const v = versionPayload();
            v.writeBigUInt64LE(services, 4);
            s.write(Buffer.concat([serializeV1(MAIN.magic, 'version', v), serializeV1(MAIN.magic, 'verack', Buffer.alloc(0))]));
          }
        }
      };
      onData(first);
      s.on('data', onData);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  node.port = (server.address() as net.AddressInfo).port;
  node.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return node;
}

describe('downgrade guard: never fall back to plaintext for a peer known to speak v2', function () {
  this.timeout(30_000);
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function proxyWith(overrides: Parameters<typeof startProxy>[0] = {}, metrics?: Metrics): Promise<TestProxy> {
    const proxy = await startProxy(overrides, metrics === undefined ? {} : { observer: metrics });
    cleanups.push(() => proxy.stop());
    return proxy;
  }

  /** A v2 node that, once a client is through to it, gossips `addr` about port with services. */
  async function gossip(proxy: TestProxy, port: number, services: bigint): Promise<void> {
    const a = await startTestNode(MAIN.magic, 'v2');
    cleanups.push(() => a.stop());
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', a.port);
    cleanups.push(() => socket.destroy());
    const ch = new MessageChannel(socket, MAIN.magic);
    await handshakeV1(ch);
    a.channels[0].send('addr', addrPayload(port, services));
    const got = await ch.next('addr');
    assert.deepEqual(got.payload, addrPayload(port, services), 'the gossip reaches the client unchanged');
  }

  it('a peer gossiped with NODE_P2P_V2, whose v2 port then closes before a byte, is refused with ERR_V2_DOWNGRADE, not downgraded', async () => {
    const b = await startV1Node(0x409n);
    cleanups.push(() => b.stop());
    const metrics = new Metrics({ collectDefault: false });
    const proxy = await proxyWith({}, metrics);
    await gossip(proxy, b.port, 0x409n | V2_BIT);
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', b.port);
    cleanups.push(() => socket.destroy());
    const ch = new MessageChannel(socket, MAIN.magic);
    ch.send('version', versionPayload());
    await ch.waitClosed();
    assert.equal(ch.received.length, 0, 'the client got nothing in plaintext');
    const line = await proxy.waitLog(/ closed .*ERR_V2_DOWNGRADE/);
    assert.match(line, new RegExp(`peer=127\\.0\\.0\\.1:${b.port}`));
    assert.match(line, /announced it with NODE_P2P_V2/);
    assert.equal(b.accepted, 1, 'no v1 reconnect was made');
    assert.match(await metrics.registry.metrics(), /bip324_proxy_downgrades_total\{outcome="refused"\} 1/);
  });

  it('a peer gossiped without the bit still falls back to v1, as Bitcoin Core does', async () => {
    const b = await startV1Node(0x409n);
    cleanups.push(() => b.stop());
    const proxy = await proxyWith();
    await gossip(proxy, b.port, 0x409n);
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', b.port);
    cleanups.push(() => socket.destroy());
    const ch = new MessageChannel(socket, MAIN.magic);
    await handshakeV1(ch);
    assert.match(await proxy.waitLog(/established .*transport=v1-fallback/), new RegExp(`peer=127\\.0\\.0\\.1:${b.port}`));
    assert.equal(b.accepted, 2);
  });

  it('with --downgrade-guard off, even a peer gossiped with the bit falls back', async () => {
    const b = await startV1Node(0x409n);
    cleanups.push(() => b.stop());
    const proxy = await proxyWith({ downgradeGuard: 'off' });
    await gossip(proxy, b.port, 0x409n | V2_BIT);
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', b.port);
    cleanups.push(() => socket.destroy());
    await handshakeV1(new MessageChannel(socket, MAIN.magic));
    await proxy.waitLog(/established .*transport=v1-fallback/);
  });

  it('a peer we completed a v2 handshake with is refused a downgrade later, naming that handshake', async () => {
    const v2 = await startTestNode(MAIN.magic, 'v2');
    const port = v2.port;
    const proxy = await proxyWith();
    const first = await socks5Connect(proxy.port, '127.0.0.1', port);
    await handshakeV1(new MessageChannel(first.socket, MAIN.magic));
    first.socket.destroy();
    await v2.stop();
    // The same address now cuts every v2 attempt before its first byte, as an on-path attacker would.
    const cutter = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => cutter.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => cutter.close(() => r())));
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', port);
    cleanups.push(() => socket.destroy());
    new MessageChannel(socket, MAIN.magic).send('version', versionPayload());
    assert.match(await proxy.waitLog(/ closed .*ERR_V2_DOWNGRADE/), /we completed a v2 handshake with it/);
  });

  for (const guard of ['known', 'off'] as const) {
    it(`a fallback whose remote answers v1 advertising NODE_P2P_V2 is detected and counted${guard === 'known' ? ', and closed before the client sees that VERSION' : '; with the guard off it is relayed with a warning'}`, async () => {
      const b = await startV1Node(0x409n | V2_BIT);
      cleanups.push(() => b.stop());
      const metrics = new Metrics({ collectDefault: false });
      const proxy = await proxyWith({ downgradeGuard: guard }, metrics);
      const { socket } = await socks5Connect(proxy.port, '127.0.0.1', b.port);
      cleanups.push(() => socket.destroy());
      const ch = new MessageChannel(socket, MAIN.magic);
      ch.send('version', versionPayload());
      if (guard === 'known') {
        await ch.waitClosed();
        assert.equal(ch.received.length, 0, "the remote's VERSION was not relayed");
        assert.match(await proxy.waitLog(/ closed .*ERR_V2_DOWNGRADE/), /own VERSION advertises NODE_P2P_V2/);
        // And it is remembered: the next attempt is refused without a v1 reconnect.
        const accepted = b.accepted;
        const again = await socks5Connect(proxy.port, '127.0.0.1', b.port);
        cleanups.push(() => again.socket.destroy());
        new MessageChannel(again.socket, MAIN.magic).send('version', versionPayload());
        await proxy.waitLog(/ closed .*its own VERSION advertised NODE_P2P_V2/);
        assert.equal(b.accepted, accepted + 1, 'only the v2 attempt, no fallback');
      } else {
        await ch.next('version');
        assert.match(await proxy.waitLog(/v1 fallback was a downgrade/), /WARN/);
      }
      assert.match(await metrics.registry.metrics(), /bip324_proxy_downgrades_total\{outcome="detected"\} 1/);
    });
  }

  it('--v2-peers-file: what was learnt survives a restart; a corrupt file is reported and the proxy starts anyway', async () => {
    const dir = tempDir('bip324-downgrade-');
    const file = join(dir, 'v2-peers.json');
    writeFileSync(file, '{ this is not json');
    const b = await startV1Node(0x409n);
    cleanups.push(() => b.stop());
    const first = await startProxy({ v2PeersFile: file });
    assert.match(await first.waitLog(/v2 peers file ignored/), /ERROR .*not JSON/);
    await gossip(first, b.port, 0x409n | V2_BIT);
    await first.stop(); // saves the table
    const second = await proxyWith({ v2PeersFile: file });
    // The gossiped peer, and the node that gossiped it (we had a v2 session with it).
    assert.match(await second.waitLog(/v2 peers file read/), /peers=2/);
    const { socket } = await socks5Connect(second.port, '127.0.0.1', b.port);
    cleanups.push(() => socket.destroy());
    new MessageChannel(socket, MAIN.magic).send('version', versionPayload());
    await second.waitLog(/ closed .*ERR_V2_DOWNGRADE/);
  });
});
