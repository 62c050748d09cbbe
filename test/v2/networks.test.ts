/**
 * A responder that accepts several networks finds the peer's from the handshake itself: the
 * network magic is part of the key derivation, so only the right network's garbage terminator
 * appears; a v1 VERSION names its network by its magic. The initiator here is the independent
 * peer (test/helpers/independent-v2), which shares no code with src/.
 */
import assert from 'node:assert/strict';
import { NETWORKS, customNetwork } from '../../src/networks.js';
import { V2Transport, type V2Event } from '../../src/v2/transport.js';
import { IndependentV2Peer, type PeerEvent } from '../helpers/independent-v2/index.js';
import { isProxyError } from '../../src/errors.js';

const ALL = NETWORKS.map((n) => n.magic);

/** Run a handshake to completion, delivering bytes in pieces of `piece` bytes; returns both ends' events. */
function handshake(initiator: IndependentV2Peer, responder: V2Transport, piece = Infinity): { toR: PeerEvent[]; toI: V2Event[] } {
  const iEvents: PeerEvent[] = [];
  const rEvents: V2Event[] = [];
  let toResponder: Buffer[] = initiator
    .start()
    .filter((e) => e.type === 'send')
    .map((e) => e.data);
  responder.start();
  for (let round = 0; round < 10 && toResponder.length > 0; round++) {
    const toInitiator: Buffer[] = [];
    for (const data of toResponder) {
      for (let i = 0; i < data.length; i += piece) {
        for (const ev of responder.receive(data.subarray(i, Math.min(data.length, i + piece)))) {
          rEvents.push(ev);
          if (ev.type === 'send') toInitiator.push(ev.data);
        }
      }
    }
    toResponder = [];
    for (const data of toInitiator) {
      for (const ev of initiator.receive(data)) {
        iEvents.push(ev);
        if (ev.type === 'send') toResponder.push(ev.data);
      }
    }
  }
  return { toR: iEvents, toI: rEvents };
}

describe('V2Transport responder on several networks', () => {
  for (const net of NETWORKS) {
    it(`finds a ${net.name} initiator by its garbage terminator, and both ends reach the same session`, () => {
      const initiator = new IndependentV2Peer({ role: 'initiator', magic: net.magic });
      const responder = new V2Transport({ role: 'responder', magic: ALL[0], networks: ALL });
      const { toR, toI } = handshake(initiator, responder);
      const ready = toI.find((e) => e.type === 'ready');
      const iReady = toR.find((e) => e.type === 'ready');
      assert.ok(ready !== undefined && iReady !== undefined, 'both sides ready');
      assert.deepEqual(ready.sessionId, iReady.sessionId);
      assert.deepEqual(responder.magic, net.magic);
      // Messages both ways after the handshake.
      const out = responder.encrypt([Buffer.from('pong')]);
      const got = initiator.receive(out).find((e) => e.type === 'message');
      assert.deepEqual(got?.contents, Buffer.from('pong'));
    });
  }

  it('works when every byte arrives on its own', () => {
    const net = NETWORKS.find((n) => n.name === 'regtest')!;
    const initiator = new IndependentV2Peer({ role: 'initiator', magic: net.magic, garbage: Buffer.alloc(300, 7) });
    const responder = new V2Transport({ role: 'responder', magic: ALL[0], networks: ALL });
    const { toI } = handshake(initiator, responder, 1);
    assert.ok(toI.some((e) => e.type === 'ready'));
    assert.deepEqual(responder.magic, net.magic);
  });

  it("sends its terminator only once it knows the network (nothing before the peer's terminator but its key and garbage)", () => {
    const initiator = new IndependentV2Peer({ role: 'initiator', magic: NETWORKS[3].magic, garbage: Buffer.alloc(0) });
    const responder = new V2Transport({ role: 'responder', magic: ALL[0], networks: ALL, garbage: Buffer.alloc(5, 9) });
    const first = initiator.start().find((e) => e.type === 'send')!.data;
    const events = [...responder.start(), ...responder.receive(first)];
    const sent = Buffer.concat(events.filter((e) => e.type === 'send').map((e) => e.data));
    assert.equal(sent.length, 64 + 5, 'key and garbage only');
    assert.equal(responder.magic, undefined, 'not known yet');
  });

  it('with one network, still answers at once with terminator and version packet (1.5 round trips)', () => {
    const initiator = new IndependentV2Peer({ role: 'initiator', magic: NETWORKS[0].magic, garbage: Buffer.alloc(0) });
    const responder = new V2Transport({ role: 'responder', magic: ALL[0], garbage: Buffer.alloc(5, 9) });
    const first = initiator.start().find((e) => e.type === 'send')!.data;
    const events = [...responder.start(), ...responder.receive(first)];
    const sent = Buffer.concat(events.filter((e) => e.type === 'send').map((e) => e.data));
    assert.equal(sent.length, 64 + 5 + 16 + 20, 'key, garbage, terminator, empty version packet');
  });

  it('a peer on none of the networks finds no terminator (ERR_V2_NO_TERMINATOR)', () => {
    const initiator = new IndependentV2Peer({ role: 'initiator', magic: customNetwork('0a03cf41').magic });
    const responder = new V2Transport({ role: 'responder', magic: ALL[0], networks: ALL });
    responder.start();
    const key = initiator.start().find((e) => e.type === 'send')!.data;
    const reply = responder
      .receive(key)
      .filter((e) => e.type === 'send')
      .map((e) => e.data);
    const termAndVersion = Buffer.concat(
      reply.flatMap((d) =>
        initiator
          .receive(d)
          .filter((e) => e.type === 'send')
          .map((e) => e.data),
      ),
    );
    assert.throws(
      () => responder.receive(Buffer.concat([termAndVersion, Buffer.alloc(4111)])),
      (e: unknown) => isProxyError(e, 'ERR_V2_NO_TERMINATOR'),
    );
  });

  it('a v1 VERSION names its network: the one of its magic among those accepted', () => {
    const net = NETWORKS.find((n) => n.name === 'testnet4')!;
    const responder = new V2Transport({ role: 'responder', magic: ALL[0], networks: ALL });
    responder.start();
    const prefix = Buffer.concat([net.magic, Buffer.from('version\0\0\0\0\0', 'latin1')]);
    const events = responder.receive(prefix);
    assert.deepEqual(
      events.map((e) => e.type),
      ['v1'],
    );
    assert.deepEqual(responder.magic, net.magic);
  });

  it('a v1 VERSION of a network not accepted is refused (ERR_V1_WRONG_NETWORK), naming what is accepted', () => {
    const responder = new V2Transport({ role: 'responder', magic: ALL[0], networks: [ALL[0], ALL[4]] });
    responder.start();
    const prefix = Buffer.concat([NETWORKS[3].magic, Buffer.from('version\0\0\0\0\0', 'latin1')]);
    assert.throws(
      () => responder.receive(prefix),
      (e: unknown) => isProxyError(e, 'ERR_V1_WRONG_NETWORK') && /f9beb4d9 or fabfb5da/.test(e.message),
    );
  });
});

describe('customNetwork', () => {
  it('names a custom magic by its hex digits in lower case, whatever the case given, and a known magic by its network', () => {
    assert.deepEqual(customNetwork('0A03CF41'), { name: 'custom-0a03cf41', magic: Buffer.from([0x0a, 0x03, 0xcf, 0x41]), port: 38333 });
    assert.equal(customNetwork('F9BEB4D9').name, 'main');
  });
});
