/**
 * A v2 peer that bends or breaks BIP324 on real loopback sockets, against the proxy: as the remote
 * node (outbound) and as the initiator (--inbound). Each case runs with our own V2Transport and
 * with the independent peer of test/helpers/independent-v2/ playing that peer. Allowed variations
 * (4095 bytes of garbage, decoys, version contents) must work; violations (4096 bytes of garbage,
 * an oversized packet, a failed tag) must end that connection with its error code in the log.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { networkByName } from '../../src/networks.js';
import { V2Transport } from '../../src/v2/transport.js';
import { IndependentV2Peer, be32, ellswiftCreate, encodeType, fromBe, pubX, xswiftecInv } from '../helpers/independent-v2/index.js';
import { contentsPrefix } from '../../src/v2/messages.js';
import { IMPLS, type Impl, MessageChannel, handshakeV1, implLabel, socks5Connect, startTestNode, type TestNode, versionPayload } from '../helpers/node.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

const main = networkByName('main')!;

/** Options both implementations take under the same names. */
interface PeerVariant {
  garbage?: Uint8Array;
  decoys?: Uint8Array[];
  versionContents?: Uint8Array;
}

function nodeWith(impl: Impl, v: PeerVariant): Promise<TestNode> {
  return impl === 'ours' ? startTestNode(main.magic, 'v2', v) : startTestNode(main.magic, 'v2', {}, { impl, independentOptions: v });
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  return socket;
}

/** A v2 initiator driven by hand over a socket, so a test can write altered bytes. */
async function rawInitiator(impl: Impl, socket: net.Socket, v: PeerVariant = {}): Promise<V2Transport | IndependentV2Peer> {
  const t =
    impl === 'ours' ? new V2Transport({ role: 'initiator', magic: main.magic, ...v }) : new IndependentV2Peer({ role: 'initiator', magic: main.magic, ...v });
  for (const ev of t.start()) if (ev.type === 'send') socket.write(ev.data);
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      try {
        for (const ev of t.receive(chunk)) {
          if (ev.type === 'send') socket.write(ev.data);
          if (ev.type === 'ready') {
            socket.off('data', onData);
            resolve();
          }
        }
      } catch (err) {
        reject(err);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed during the handshake')));
  });
  return t;
}

function prefix(impl: Impl, command: string): Uint8Array {
  return impl === 'ours' ? contentsPrefix(command) : encodeType(command);
}

for (const impl of IMPLS) {
  describe(`misbehaving v2 node behind the proxy${implLabel(impl)}`, function () {
    let node: TestNode | undefined;
    let proxy: TestProxy | undefined;
    afterEach(async () => {
      await proxy?.stop();
      await node?.stop();
      proxy = node = undefined;
    });

    async function client(): Promise<{ ch: MessageChannel; rep: number }> {
      const { socket, rep } = await socks5Connect(proxy!.port, '127.0.0.1', node!.port);
      return { ch: new MessageChannel(socket, main.magic), rep };
    }

    it('4095 bytes of garbage, 10 decoys and non-empty version contents: the session works', async () => {
      node = await nodeWith(impl, {
        garbage: randomBytes(4095),
        decoys: Array.from({ length: 10 }, (_, k) => randomBytes(1 + k * 10)),
        versionContents: randomBytes(50),
      });
      proxy = await startProxy();
      const { ch } = await client();
      await handshakeV1(ch);
      const payload = randomBytes(100_000);
      ch.send('echo', payload);
      assert.ok((await ch.next('echo')).payload.equals(payload));
      assert.ok(node.channels[0].isV2);
      await proxy.waitLog(/established .*transport=v2/);
      ch.socket.destroy();
    });

    it('4096 bytes of garbage: the client is closed, ERR_V2_NO_TERMINATOR is logged, and there is no v1 retry', async () => {
      node = await nodeWith(impl, { garbage: randomBytes(4096) });
      proxy = await startProxy();
      const { ch } = await client();
      ch.send('version', versionPayload());
      await ch.waitClosed();
      assert.equal(ch.received.length, 0);
      assert.match(await proxy.waitLog(/code=ERR_V2_/), /code=ERR_V2_NO_TERMINATOR/);
      assert.equal(node.accepted, 1, 'the node answered, so no v1 fallback');
    });

    it('a packet with 4,000,014 bytes of contents: the session is closed with ERR_V2_TOO_LARGE', async () => {
      node = await nodeWith(impl, {});
      proxy = await startProxy();
      const { ch } = await client();
      await handshakeV1(ch);
      // 'echo' has no short id: 13 bytes of type + 4,000,001 of payload = one byte over the limit.
      node.channels[0].send('echo', Buffer.alloc(4_000_001));
      await ch.waitClosed();
      assert.match(await proxy.waitLog(/closed/), /code=ERR_V2_TOO_LARGE/);
    });
  });

  describe(`misbehaving v2 initiator at --inbound${implLabel(impl)}`, function () {
    let node: TestNode;
    let proxy: TestProxy;
    let inboundPort: number;
    beforeEach(async () => {
      node = await startTestNode(main.magic, 'v1-close');
      proxy = await startProxy({ inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] });
      inboundPort = proxy.server.inboundAddresses[0].port;
    });
    afterEach(async () => {
      await proxy.stop();
      await node.stop();
    });

    it('4095 bytes of garbage, decoys and version contents: the session works', async () => {
      const peer = new MessageChannel(await connect(inboundPort), main.magic, {
        v2: 'initiator',
        impl,
        transportOptions: { garbage: randomBytes(4095), decoys: [randomBytes(3), Buffer.alloc(0)], versionContents: Buffer.from('feature') },
        independentOptions: {
          garbage: randomBytes(4095),
          decoys: [randomBytes(3), Buffer.alloc(0)],
          versionContents: Buffer.from('feature'),
          appDecoys: () => [randomBytes(9)],
        },
      });
      peer.send('version', versionPayload());
      await peer.next('version');
      await peer.next('verack');
      peer.send('ping', Buffer.alloc(8, 3));
      assert.deepEqual((await peer.next('pong')).payload, Buffer.alloc(8, 3));
      await proxy.waitLog(/established .*transport=inbound-v2/);
      peer.socket.destroy();
    });

    it('4096 bytes of garbage: closed with ERR_V2_NO_TERMINATOR', async () => {
      const socket = await connect(inboundPort);
      const t =
        impl === 'ours'
          ? new V2Transport({ role: 'initiator', magic: main.magic, garbage: randomBytes(4096) })
          : new IndependentV2Peer({ role: 'initiator', magic: main.magic, garbage: randomBytes(4096) });
      for (const ev of t.start()) if (ev.type === 'send') socket.write(ev.data);
      socket.on('data', (chunk: Buffer) => {
        for (const ev of t.receive(chunk)) if (ev.type === 'send') socket.write(ev.data);
      });
      await new Promise((r) => socket.once('close', r));
      assert.match(await proxy.waitLog(/closed/), /code=ERR_V2_NO_TERMINATOR/);
      assert.equal(node.firstBytes.length, 0, 'not a byte reached the node');
    });

    it('an application packet with a flipped tag bit: closed with ERR_V2_BAD_TAG', async () => {
      const socket = await connect(inboundPort);
      const t = await rawInitiator(impl, socket);
      const pkt = Buffer.from(t.encrypt([prefix(impl, 'version'), versionPayload()]));
      pkt[pkt.length - 1] ^= 0x01;
      socket.write(pkt);
      await new Promise((r) => socket.once('close', r));
      assert.match(await proxy.waitLog(/closed/), /code=ERR_V2_BAD_TAG/);
    });
  });
}

/** A valid key whose 64-byte encoding starts with `head` (u is free in ElligatorSwift; solve for t). */
function keyStartingWith(head: Buffer): { privateKey: Uint8Array; ellswift: Buffer } {
  for (;;) {
    const { privateKey } = ellswiftCreate();
    const uBytes = Buffer.concat([head, randomBytes(32 - head.length)]);
    const t = xswiftecInv(pubX(privateKey), fromBe(uBytes), randomBytes(1)[0] & 7);
    if (t !== null) return { privateKey, ellswift: Buffer.concat([uBytes, Buffer.from(be32(t))]) };
  }
}

for (const impl of IMPLS) {
  describe(`a v2 key that starts with 15 bytes of a v1 VERSION${implLabel(impl)}`, function () {
    // One byte short of magic || "version" || 00x5: v2 peers may send this (chance 2^-120 at
    // random); a responder must wait for byte 16 and then take it as v2, never as v1.
    const head = Buffer.concat([main.magic, Buffer.from('version'), Buffer.alloc(4), Buffer.of(0x01)]);
    let node: TestNode;
    let proxy: TestProxy;
    afterEach(async () => {
      await proxy.stop();
      await node.stop();
    });

    /**
     * The initiator's first write goes out as 15 bytes, then (a moment later, so the responder
     * reads them alone) the rest: a responder that decided before byte 16 would take it for v1.
     */
    function initiator(socket: net.Socket): MessageChannel {
      const key = keyStartingWith(head);
      assert.ok(key.ellswift.subarray(0, 16).equals(head));
      const original = socket.write.bind(socket);
      const write = (data: Uint8Array): boolean => original(data);
      let first = true;
      socket.write = (data: Uint8Array) => {
        if (!first) return write(data);
        first = false;
        write(data.subarray(0, 15));
        setTimeout(() => write(data.subarray(15)), 100);
        return true;
      };
      return new MessageChannel(socket, main.magic, { v2: 'initiator', impl, transportOptions: { key }, independentOptions: { key } });
    }

    it('at --inbound: taken as v2, the session works', async () => {
      node = await startTestNode(main.magic, 'v1-close');
      proxy = await startProxy({ inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] });
      const peer = initiator(await connect(proxy.server.inboundAddresses[0].port));
      peer.send('version', versionPayload());
      await peer.next('version');
      await peer.next('verack');
      assert.ok(peer.sessionId !== undefined);
      await proxy.waitLog(/established .*transport=inbound-v2/);
      peer.socket.destroy();
    });

    it('from a SOCKS5 client that speaks v2 itself: passed through to a v2 node, same session id at both ends', async () => {
      node = await startTestNode(main.magic, 'v2', {}, { impl });
      proxy = await startProxy();
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      assert.equal(rep, 0);
      const client = initiator(socket);
      await handshakeV1(client);
      assert.ok(client.sessionId !== undefined);
      assert.deepEqual(client.sessionId, node.channels[0].sessionId);
      await proxy.waitLog(/established .*transport=passthrough/);
      socket.destroy();
    });
  });
}

for (const impl of IMPLS) {
  describe(`messages a v2 node sends that a v1 client cannot get${implLabel(impl)}`, function () {
    it('empty contents, an undefined short id and malformed long forms are dropped with a log line; the session goes on', async () => {
      const node = await startTestNode(main.magic, 'v2', {}, { impl });
      const proxy = await startProxy();
      try {
        const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
        const client = new MessageChannel(socket, main.magic);
        await handshakeV1(client);
        const remote = node.channels[0];
        const bad: [Uint8Array, string][] = [
          [new Uint8Array(0), 'ERR_V2_EMPTY_CONTENTS'],
          [Uint8Array.of(29, 1, 2, 3), 'ERR_V2_UNKNOWN_SHORT_ID'],
          [Uint8Array.of(0, 0x70, 0x69), 'ERR_V2_BAD_LONG_COMMAND'], // 2 of the 12 command bytes
          [Buffer.from('0070696e670078000000000000', 'hex'), 'ERR_V2_BAD_LONG_COMMAND'], // a byte after the NUL
        ];
        for (const [contents] of bad) remote.sendContents(contents);
        remote.send('ping', Buffer.alloc(8, 9));
        assert.deepEqual((await client.next('ping')).payload, Buffer.alloc(8, 9));
        assert.deepEqual(
          client.received.map((m) => m.command),
          [],
          'nothing else reached the client',
        );
        const drops = proxy.logs.filter((l) => /dropped a message from the peer/.test(l));
        assert.deepEqual(
          drops.map((l) => /code=(\w+)/.exec(l)?.[1]),
          bad.map(([, code]) => code),
        );
        client.send('ping', Buffer.alloc(8, 1));
        assert.deepEqual((await remote.next('ping')).payload, Buffer.alloc(8, 1));
        assert.ok(!client.closed);
        socket.destroy();
      } finally {
        await proxy.stop();
        await node.stop();
      }
    });
  });
}
