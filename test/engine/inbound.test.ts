/**
 * Inbound (responder) mode on loopback: a v2 initiator (our own, and the independent peer of
 * test/helpers/independent-v2/) through --inbound to a v1-only node, a v1 peer relayed untouched,
 * a wrong-network peer refused, an unreachable node.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { networkByName } from '../../src/networks.js';
import { IMPLS, MessageChannel, implLabel, startTestNode, type TestNode, versionPayload } from '../helpers/node.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

const main = networkByName('main')!;
const testnet = networkByName('testnet3')!;

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  return socket;
}

describe('inbound: v2 in front of a v1-only node', function () {
  let node: TestNode;
  let proxy: TestProxy;
  let inboundPort: number;
  beforeEach(async () => {
    node = await startTestNode(main.magic, 'v1-close');
    proxy = await startProxy({ network: main, inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] });
    inboundPort = proxy.server.inboundAddresses[0].port;
  });
  afterEach(async () => {
    await proxy.stop();
    await node.stop();
  });

  for (const impl of IMPLS)
    it(`a v2 initiator reaches the v1 node: handshake, ping/pong and large messages byte-exact, same session id${implLabel(impl)}`, async () => {
      const peer = new MessageChannel(await connect(inboundPort), main.magic, { v2: 'initiator', impl });
      peer.send('version', versionPayload());
      await peer.next('version');
      await peer.next('verack');
      peer.send('verack');
      peer.send('ping', Buffer.from('0102030405060708', 'hex'));
      assert.deepEqual((await peer.next('pong')).payload, Buffer.from('0102030405060708', 'hex'));
      for (const size of [0, 4096, 2_000_000]) {
        const payload = randomBytes(size);
        peer.send('echo', payload);
        assert.ok((await peer.next('echo')).payload.equals(payload), `echo of ${size} bytes`);
      }
      // The node behind the proxy spoke plain v1.
      assert.ok(!node.channels[0].isV2);
      assert.equal(node.firstBytes[0].subarray(0, 4).toString('hex'), main.magic.toString('hex'));
      const line = await proxy.waitLog(/established .*transport=inbound-v2/);
      assert.match(line, new RegExp(`session_id=${peer.sessionId!.toString('hex')}`));
      assert.match(line, /frontend=inbound/);
      peer.socket.destroy();
    });

  it('a v1 peer is relayed to the node untouched, as a v2-capable node would accept it', async () => {
    const peer = new MessageChannel(await connect(inboundPort), main.magic);
    peer.send('version', versionPayload());
    await peer.next('version');
    await peer.next('verack');
    const payload = randomBytes(100_000);
    peer.send('echo', payload);
    assert.ok((await peer.next('echo')).payload.equals(payload));
    await proxy.waitLog(/established .*transport=inbound-v1/);
    peer.socket.destroy();
  });

  it("a v1 VERSION with another network's magic is closed with a log line", async () => {
    const peer = new MessageChannel(await connect(inboundPort), testnet.magic);
    peer.send('version', versionPayload());
    await peer.waitClosed();
    assert.equal(peer.received.length, 0);
    assert.match(await proxy.waitLog(/closed/), /code=ERR_V1_WRONG_NETWORK/);
  });

  it('a node that is down closes the peer, once its handshake is done, with a log line naming the node', async () => {
    await node.stop();
    const peer = await connect(inboundPort);
    // The node is dialed only once the peer's transport is settled (a silent or failed peer never costs it a connection).
    const ch = new MessageChannel(peer, main.magic, { v2: 'initiator' });
    ch.send('version', versionPayload());
    await ch.waitClosed();
    assert.match(await proxy.waitLog(/ closed /), /code=ERR_DIAL_REFUSED.*node=127\.0\.0\.1:/);
  });

  it('a peer that never completes its handshake never costs the node a connection', async () => {
    const before = node.accepted;
    const peer = await connect(inboundPort);
    peer.write(randomBytes(64 + 100));
    await proxy.waitLog(/ closed .*code=ERR_V2_/);
    assert.equal(node.accepted, before);
  });
});

describe("inbound without --network: the peer's network is found from its handshake", function () {
  const regtest = networkByName('regtest')!;
  let node: TestNode;
  let proxy: TestProxy;
  beforeEach(async () => {
    node = await startTestNode(regtest.magic, 'v1-close');
    proxy = await startProxy({ inbound: [{ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: node.port } }] });
  });
  afterEach(async () => {
    await proxy.stop();
    await node.stop();
  });

  for (const impl of IMPLS)
    it(`a regtest v2 initiator reaches a regtest node, and the established line names regtest${implLabel(impl)}`, async () => {
      const peer = new MessageChannel(await connect(proxy.server.inboundAddresses[0].port), regtest.magic, { v2: 'initiator', impl });
      peer.send('version', versionPayload());
      await peer.next('version');
      await peer.next('verack');
      assert.match(await proxy.waitLog(/established/), /network=regtest transport=inbound-v2/);
    });

  it('a regtest v1 peer is relayed as v1, named regtest', async () => {
    const peer = new MessageChannel(await connect(proxy.server.inboundAddresses[0].port), regtest.magic);
    peer.send('version', versionPayload());
    await peer.next('version');
    assert.match(await proxy.waitLog(/established/), /network=regtest transport=inbound-v1/);
  });
});
