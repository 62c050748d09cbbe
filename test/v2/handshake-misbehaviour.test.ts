/**
 * V2Transport against misbehaving peers: one test per case of Bitcoin Core's
 * test/functional/p2p_v2_misbehaving.py and p2p_v2_transport.py, plus v1 detection by the responder.
 *
 * The misbehaving peer is played twice: by our own V2Transport and by the independent peer of
 * test/helpers/independent-v2/, so the bytes our transport must refuse or accept do not all come
 * from the code under test.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { type ErrorCode, isProxyError } from '../../src/errors.js';
import { networkByName, v1VersionPrefix } from '../../src/networks.js';
import { MAX_V2_CONTENTS } from '../../src/limits.js';
import { type EllSwiftKey, ellswiftCreate, ellswiftDecode, xswiftecInv } from '../../src/crypto/ellswift.js';
import { V2Transport, type V2Event, type V2TransportOptions } from '../../src/v2/transport.js';
import * as independent from '../helpers/independent-v2/index.js';
import { IMPLS, type Impl, implLabel } from '../helpers/node.js';

const MAGIC = networkByName('main')!.magic;
const TESTNET = networkByName('testnet3')!.magic;

function make(role: 'initiator' | 'responder', options: Partial<V2TransportOptions> = {}): V2Transport {
  return new V2Transport({ role, magic: MAGIC, ...options });
}

/** The peer that misbehaves (or behaves): our own transport or the independent peer, with the same options. */
function peer(impl: Impl, role: 'initiator' | 'responder', options: Partial<V2TransportOptions> = {}): V2Transport | independent.IndependentV2Peer {
  return impl === 'ours' ? make(role, options) : new independent.IndependentV2Peer({ role, magic: MAGIC, ...options });
}

/** A fresh key pair from the chosen implementation's own ellswift_create. */
function newKey(impl: Impl): EllSwiftKey {
  if (impl === 'ours') return ellswiftCreate();
  const k = independent.ellswiftCreate();
  return { privateKey: k.privateKey, ellswift: Buffer.from(k.ellswift) };
}

function sends(events: V2Event[]): Buffer {
  return Buffer.concat(events.map((e) => (e.type === 'send' ? e.data : Buffer.alloc(0))));
}

function types(events: V2Event[]): string[] {
  return events.map((e) => e.type);
}

function messages(events: V2Event[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'message' ? [e.contents] : []));
}

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => isProxyError(err, code), `expected ${code}`);
}

/**
 * A handshake driven by hand: the initiator's key+garbage reaches the responder, whose whole
 * answer reaches the initiator; `iTail` is the initiator's terminator + decoys + version packet,
 * not yet delivered, so a test can tamper with it.
 */
function halfHandshake(iOpts: Partial<V2TransportOptions> = {}, rOpts: Partial<V2TransportOptions> = {}, impl: Impl = 'ours') {
  const i = peer(impl, 'initiator', iOpts);
  const r = make('responder', rOpts);
  r.start();
  const iHead = sends(i.start());
  const rOut = r.receive(iHead);
  assert.deepEqual(types(rOut), ['send', 'send']);
  const iEvents = i.receive(sends(rOut));
  assert.deepEqual(types(iEvents), ['send', 'ready']);
  return { i, r, iHead, iTail: sends(iEvents) };
}

/** Full handshake, for tests of the packet stream. */
function established(iOpts: Partial<V2TransportOptions> = {}, rOpts: Partial<V2TransportOptions> = {}, impl: Impl = 'ours') {
  const h = halfHandshake(iOpts, rOpts, impl);
  const rEvents = h.r.receive(h.iTail);
  assert.deepEqual(types(rEvents), ['ready']);
  return h;
}

/** A valid key for a fresh private key whose encoding starts with `head` (u is free in ElligatorSwift). */
function keyStartingWith(head: Buffer, impl: Impl = 'ours'): EllSwiftKey {
  const inv = impl === 'ours' ? xswiftecInv : independent.xswiftecInv;
  const decode = impl === 'ours' ? (e: Buffer) => BigInt('0x' + ellswiftDecode(e).toString('hex')) : independent.ellswiftDecode;
  const privateKey = secp256k1.utils.randomSecretKey();
  const x = BigInt('0x' + Buffer.from(secp256k1.getPublicKey(privateKey, true).subarray(1)).toString('hex'));
  for (let attempt = 0; attempt < 1000; attempt++) {
    const uBytes = Buffer.concat([head, randomBytes(32 - head.length)]);
    const u = BigInt('0x' + uBytes.toString('hex'));
    for (let c = 0; c < 8; c++) {
      const t = inv(x, u, c);
      if (t === null) continue;
      const ellswift = Buffer.concat([uBytes, Buffer.from(t.toString(16).padStart(64, '0'), 'hex')]);
      assert.equal(decode(ellswift), x);
      return { privateKey, ellswift };
    }
  }
  throw new Error('no encoding found');
}

for (const impl of IMPLS)
  describe(`v2 handshake misbehaviour: garbage and terminator${implLabel(impl)}`, () => {
    it('disconnects an initiator that sends 4096 bytes of garbage (ERR_V2_NO_TERMINATOR)', () => {
      const { r, iTail } = halfHandshake({ garbage: randomBytes(4096) }, {}, impl);
      assert.equal(r.state, 'garbage');
      throwsCode(() => r.receive(iTail), 'ERR_V2_NO_TERMINATOR');
      assert.equal(r.state, 'failed');
    });

    it('accepts exactly 4095 bytes of garbage', () => {
      const { r, iTail } = halfHandshake({ garbage: randomBytes(4095) }, {}, impl);
      assert.deepEqual(types(r.receive(iTail)), ['ready']);
    });

    it('fails when 4111 bytes follow the key without a terminator, and not one byte earlier', () => {
      const r = make('responder');
      r.receive(newKey(impl).ellswift);
      assert.equal(r.state, 'garbage');
      const junk = randomBytes(4111);
      assert.deepEqual(r.receive(junk.subarray(0, 4110)), []);
      throwsCode(() => r.receive(junk.subarray(4110)), 'ERR_V2_NO_TERMINATOR');
    });

    it('fails on one big chunk holding far more than 4111 bytes of garbage', () => {
      const i = make('initiator');
      i.start();
      throwsCode(() => i.receive(Buffer.concat([newKey(impl).ellswift, randomBytes(100_000)])), 'ERR_V2_NO_TERMINATOR');
    });

    it('keeps waiting on a wrong terminator (one byte flipped), then fails once 4111 bytes passed', () => {
      const garbageLen = 10;
      const { r, iTail } = halfHandshake({ garbage: randomBytes(garbageLen) }, {}, impl);
      const tampered = Buffer.from(iTail);
      tampered[5] ^= 0x01;
      assert.deepEqual(r.receive(tampered), [], 'the peer keeps waiting, as Core does until its handshake timeout');
      assert.equal(r.state, 'garbage');
      const seen = garbageLen + tampered.length;
      const more = randomBytes(4111 - seen);
      assert.deepEqual(r.receive(more.subarray(0, more.length - 1)), []);
      throwsCode(() => r.receive(more.subarray(more.length - 1)), 'ERR_V2_NO_TERMINATOR');
    });

    it('finds a terminator split across two chunks at every position', () => {
      const garbage = randomBytes(40);
      const { r, iHead, iTail } = (() => {
        const i = peer(impl, 'initiator', { garbage, key: newKey(impl) });
        const rKey = ellswiftCreate();
        const rGarbage = randomBytes(3);
        const r0 = make('responder', { key: rKey, garbage: rGarbage });
        const head = sends(i.start());
        const tail = sends(i.receive(sends(r0.receive(head))));
        return { r: { key: rKey, garbage: rGarbage }, iHead: head, iTail: tail };
      })();
      // the terminator sits at offset 0..15 of iTail; cut the garbage + terminator region everywhere
      const afterKey = Buffer.concat([iHead.subarray(64), iTail]);
      for (let cut = 0; cut <= garbage.length + 16; cut++) {
        const fresh = make('responder', { key: r.key, garbage: r.garbage });
        fresh.receive(iHead.subarray(0, 64));
        const a = fresh.receive(afterKey.subarray(0, cut));
        const b = fresh.receive(afterKey.subarray(cut));
        assert.deepEqual(types([...a, ...b]), ['ready'], `cut at ${cut}`);
      }
    });

    it('rejects garbage changed after it was sent: the version packet fails authentication (ERR_V2_BAD_TAG)', () => {
      const i = peer(impl, 'initiator', { garbage: randomBytes(20) });
      const r = make('responder');
      const head = Buffer.from(sends(i.start()));
      head[head.length - 1] ^= 0x80;
      const tail = sends(i.receive(sends(r.receive(head))));
      throwsCode(() => r.receive(tail), 'ERR_V2_BAD_TAG');
      assert.equal(r.sessionId, undefined);
    });

    it('rejects changed garbage on the first packet even when that packet is a decoy (ERR_V2_BAD_TAG)', () => {
      const i = peer(impl, 'initiator', { garbage: randomBytes(20), decoys: [Buffer.alloc(5)] });
      const r = make('responder');
      const head = Buffer.from(sends(i.start()));
      head[70] ^= 0x01;
      const tail = sends(i.receive(sends(r.receive(head))));
      // terminator (16) + decoy packet (20 + 5): the decoy alone already fails
      throwsCode(() => r.receive(tail.subarray(0, 16 + 25)), 'ERR_V2_BAD_TAG');
    });
  });

for (const impl of IMPLS)
  describe(`v2 handshake misbehaviour: version packet and decoys${implLabel(impl)}`, () => {
    it('accepts a non-empty version packet and never surfaces its contents', () => {
      const { i, r, iTail } = halfHandshake({ versionContents: randomBytes(100) }, { versionContents: Buffer.from('future feature') }, impl);
      const events = r.receive(Buffer.concat([iTail, i.encrypt([Buffer.from('hi')])]));
      assert.deepEqual(types(events), ['ready', 'message']);
      assert.deepEqual(messages(events), [Buffer.from('hi')]);
      assert.deepEqual(r.sessionId, i.sessionId);
    });

    it('accepts decoys before the version packet (10 decoys of 1..100 zero bytes, as the Core test framework sends)', () => {
      const decoys = Array.from({ length: 10 }, (_, n) => Buffer.alloc(1 + n * 11));
      const { i, r, iTail } = halfHandshake({ decoys, garbage: randomBytes(30) }, { decoys }, impl);
      assert.ok(i.sessionId);
      const events = r.receive(iTail);
      assert.deepEqual(types(events), ['ready']);
      assert.deepEqual(r.sessionId, i.sessionId);
    });

    it('accepts decoys before the version packet delivered one byte at a time', () => {
      const decoys = [Buffer.alloc(3), randomBytes(50)];
      const { r, iTail } = halfHandshake({ decoys }, {}, impl);
      const events: V2Event[] = [];
      for (let k = 0; k < iTail.length; k++) events.push(...r.receive(iTail.subarray(k, k + 1)));
      assert.deepEqual(types(events), ['ready']);
    });

    it('skips decoys between application messages', () => {
      const { i, r } = established({}, {}, impl);
      const wire = Buffer.concat([
        i.encrypt([Buffer.from('one')]),
        i.encrypt([randomBytes(10)], true),
        i.encrypt([], true),
        i.encrypt([Buffer.from('two')]),
        i.encrypt([randomBytes(1000)], true),
      ]);
      assert.deepEqual(messages(r.receive(wire)), [Buffer.from('one'), Buffer.from('two')]);
      assert.deepEqual(messages(r.receive(i.encrypt([Buffer.from('three')]))), [Buffer.from('three')]);
    });
  });

for (const impl of IMPLS)
  describe(`v2 handshake misbehaviour: packet authentication and length${implLabel(impl)}`, () => {
    it('rejects a version packet with a flipped tag bit (ERR_V2_BAD_TAG)', () => {
      const { r, iTail } = halfHandshake({}, {}, impl);
      const tampered = Buffer.from(iTail);
      tampered[tampered.length - 1] ^= 0x01;
      throwsCode(() => r.receive(tampered), 'ERR_V2_BAD_TAG');
    });

    it('rejects an application packet with a flipped tag bit (ERR_V2_BAD_TAG)', () => {
      const { i, r } = established({}, {}, impl);
      const pkt = Buffer.from(i.encrypt([Buffer.from('payload')]));
      pkt[pkt.length - 16] ^= 0x40;
      throwsCode(() => r.receive(pkt), 'ERR_V2_BAD_TAG');
    });

    it('rejects a packet whose header or contents byte was flipped (ERR_V2_BAD_TAG)', () => {
      for (const pos of [3, 4, 8]) {
        const { i, r } = established({}, {}, impl);
        const pkt = Buffer.from(i.encrypt([Buffer.from('payload')]));
        pkt[pos] ^= 0x80;
        throwsCode(() => r.receive(pkt), 'ERR_V2_BAD_TAG');
      }
    });

    it('rejects a length above 4,000,013 as soon as the 3 length bytes arrive (ERR_V2_TOO_LARGE)', () => {
      const { i, r } = established({}, {}, impl);
      const pkt = i.encrypt([Buffer.alloc(MAX_V2_CONTENTS + 1)]);
      assert.deepEqual(r.receive(pkt.subarray(0, 2)), []);
      throwsCode(() => r.receive(pkt.subarray(2, 3)), 'ERR_V2_TOO_LARGE');
    });

    it('applies a smaller maxContents, including to the version packet', () => {
      const { i, r } = established({}, { maxContents: 100 }, impl);
      assert.deepEqual(messages(r.receive(i.encrypt([Buffer.alloc(100, 7)]))), [Buffer.alloc(100, 7)]);
      throwsCode(() => r.receive(i.encrypt([Buffer.alloc(101)])), 'ERR_V2_TOO_LARGE');
      const h = halfHandshake({ versionContents: Buffer.alloc(11) }, { maxContents: 10 }, impl);
      throwsCode(() => h.r.receive(h.iTail), 'ERR_V2_TOO_LARGE');
    });
  });

describe('v2 handshake misbehaviour: v1 peers at the responder', () => {
  const versionMessage = Buffer.concat([v1VersionPrefix(MAGIC), Buffer.from('66000000', 'hex'), randomBytes(4), randomBytes(102)]);

  it('hands back a whole v1 VERSION message delivered in one chunk, byte for byte', () => {
    const r = make('responder');
    r.start();
    const events = r.receive(versionMessage);
    assert.deepEqual(events, [{ type: 'v1', data: versionMessage }]);
    assert.equal(r.state, 'v1');
    assert.equal(r.canSend, false);
    assert.equal(r.bytesReceived, versionMessage.length);
  });

  it('stays silent for 16 bytes delivered one at a time, then hands back exactly those 16', () => {
    const r = make('responder');
    for (let k = 0; k < 15; k++) {
      assert.deepEqual(r.receive(versionMessage.subarray(k, k + 1)), [], `byte ${k}`);
      assert.equal(r.state, 'detect');
    }
    assert.deepEqual(r.receive(versionMessage.subarray(15, 16)), [{ type: 'v1', data: versionMessage.subarray(0, 16) }]);
  });

  it('hands back every byte received when the prefix arrives in uneven pieces', () => {
    for (const cuts of [
      [3, 16],
      [1, 2, 20],
      [15, 17],
      [4, 10, 40],
    ]) {
      const r = make('responder');
      const out: V2Event[] = [];
      let at = 0;
      for (const c of cuts) {
        out.push(...r.receive(versionMessage.subarray(at, c)));
        at = c;
      }
      assert.deepEqual(out, [{ type: 'v1', data: versionMessage.subarray(0, at) }], cuts.join(','));
    }
  });

  it('refuses further bytes once it fell back to v1 (ERR_V2_BAD_STATE)', () => {
    const r = make('responder');
    r.receive(versionMessage.subarray(0, 20));
    throwsCode(() => r.receive(versionMessage.subarray(20)), 'ERR_V2_BAD_STATE');
    throwsCode(() => r.encrypt([Buffer.from('x')]), 'ERR_V2_BAD_STATE');
  });

  it('disconnects a v1 VERSION of another network (ERR_V1_WRONG_NETWORK)', () => {
    const r = make('responder');
    const wrong = Buffer.concat([v1VersionPrefix(TESTNET), randomBytes(100)]);
    throwsCode(() => r.receive(wrong), 'ERR_V1_WRONG_NETWORK');
    assert.equal(r.state, 'failed');
  });

  it('disconnects a v1 VERSION of an unknown network fed one byte at a time, at byte 16 (ERR_V1_WRONG_NETWORK)', () => {
    const r = make('responder');
    const wrong = v1VersionPrefix(Buffer.from('deadbeef', 'hex'));
    // byte 0 already differs from our magic, so the responder has answered with its key (as Core)
    assert.deepEqual(types(r.receive(wrong.subarray(0, 1))), ['send']);
    for (let k = 1; k < 15; k++) assert.deepEqual(r.receive(wrong.subarray(k, k + 1)), []);
    throwsCode(() => r.receive(wrong.subarray(15, 16)), 'ERR_V1_WRONG_NETWORK');
  });

  for (const impl of IMPLS)
    it(`takes a v2 key that matches the first 15 prefix bytes as v2 at byte 16, and those bytes as the key start${implLabel(impl)}`, () => {
      const prefix = v1VersionPrefix(MAGIC);
      const head = Buffer.concat([prefix.subarray(0, 15), Buffer.of(0x01)]);
      const key = keyStartingWith(head, impl);
      const i = peer(impl, 'initiator', { key });
      const r = make('responder');
      const iHead = sends(i.start());
      assert.deepEqual(iHead.subarray(0, 16), head);
      for (let k = 0; k < 15; k++) assert.deepEqual(r.receive(iHead.subarray(k, k + 1)), [], `byte ${k}`);
      const rEvents = r.receive(iHead.subarray(15));
      assert.deepEqual(types(rEvents), ['send', 'send']);
      const iEvents = i.receive(sends(rEvents));
      assert.deepEqual(types(iEvents), ['send', 'ready']);
      assert.deepEqual(types(r.receive(sends(iEvents))), ['ready']);
      assert.deepEqual(r.sessionId, i.sessionId);
    });

  it('disconnects a v1 VERSION whose magic differs from ours in the last byte only (ERR_V1_WRONG_NETWORK)', () => {
    const head = v1VersionPrefix(MAGIC);
    head[3] ^= 0x01;
    const r = make('responder');
    assert.deepEqual(r.receive(head.subarray(0, 3)), []);
    throwsCode(() => r.receive(Buffer.concat([head.subarray(3), randomBytes(48)])), 'ERR_V1_WRONG_NETWORK');
  });
});

describe('v2 handshake misbehaviour: a failed transport stays dead', () => {
  for (const impl of IMPLS)
    it(`keeps throwing ERR_V2_BAD_STATE on receive() and encrypt() after ERR_V2_BAD_TAG${implLabel(impl)}`, () => {
      const { i, r } = established({}, {}, impl);
      const pkt = Buffer.from(i.encrypt([Buffer.from('x')]));
      pkt[pkt.length - 1] ^= 1;
      throwsCode(() => r.receive(pkt), 'ERR_V2_BAD_TAG');
      assert.equal(r.state, 'failed');
      assert.equal(r.canSend, false);
      // even a valid packet is refused now
      for (let n = 0; n < 3; n++) {
        throwsCode(() => r.receive(i.encrypt([Buffer.from('y')])), 'ERR_V2_BAD_STATE');
        throwsCode(() => r.encrypt([Buffer.from('z')]), 'ERR_V2_BAD_STATE');
        throwsCode(() => r.receive(Buffer.alloc(0)), 'ERR_V2_BAD_STATE');
      }
    });

  it('keeps throwing after ERR_V2_NO_TERMINATOR and after ERR_V1_WRONG_NETWORK', () => {
    const a = make('responder');
    throwsCode(() => a.receive(Buffer.concat([ellswiftCreate().ellswift, randomBytes(5000)])), 'ERR_V2_NO_TERMINATOR');
    throwsCode(() => a.receive(Buffer.of(1)), 'ERR_V2_BAD_STATE');
    const b = make('responder');
    throwsCode(() => b.receive(v1VersionPrefix(TESTNET)), 'ERR_V1_WRONG_NETWORK');
    throwsCode(() => b.receive(Buffer.of(1)), 'ERR_V2_BAD_STATE');
  });

  it('keeps the original error as the cause', () => {
    const r = make('responder');
    throwsCode(() => r.receive(v1VersionPrefix(TESTNET)), 'ERR_V1_WRONG_NETWORK');
    try {
      r.receive(Buffer.of(1));
      assert.fail('should throw');
    } catch (err) {
      assert.ok(isProxyError(err, 'ERR_V2_BAD_STATE'));
      assert.ok(isProxyError((err as Error).cause, 'ERR_V1_WRONG_NETWORK'));
    }
  });
});

describe('v2 handshake misbehaviour: keys that look partly like a v1 VERSION', () => {
  const versionField = Buffer.from('version\0\0\0\0\0', 'latin1');

  for (const impl of IMPLS)
    it(`an initiator accepts a responder key whose first 16 bytes read as a v1 VERSION of another network${implLabel(impl)}`, () => {
      // Only a responder tells v1 from v2 by these bytes; from a responder they are just a key.
      const rKey = keyStartingWith(Buffer.concat([TESTNET, versionField]), impl);
      const i = make('initiator');
      const r = peer(impl, 'responder', { key: rKey });
      r.start();
      const rOut = r.receive(sends(i.start()));
      assert.deepEqual(sends(rOut).subarray(0, 16), Buffer.concat([TESTNET, versionField]));
      const iEvents = i.receive(sends(rOut));
      assert.deepEqual(types(iEvents), ['send', 'ready']);
      assert.deepEqual(types(r.receive(sends(iEvents))), ['ready']);
      assert.deepEqual(i.sessionId, r.sessionId);
    });

  for (const impl of IMPLS)
    it(`a responder takes a key with "version" at bytes 4..10 but a non-NUL byte 15 as v2, fed one byte at a time${implLabel(impl)}`, () => {
      const head = Buffer.concat([Buffer.from('01020304', 'hex'), versionField.subarray(0, 11), Buffer.of(0x01)]);
      const key = keyStartingWith(head, impl);
      const i = peer(impl, 'initiator', { key });
      const r = make('responder');
      const iHead = sends(i.start());
      const rEvents: V2Event[] = [];
      for (let k = 0; k < iHead.length; k++) rEvents.push(...r.receive(iHead.subarray(k, k + 1)));
      assert.deepEqual(types(rEvents), ['send', 'send']);
      const iEvents = i.receive(sends(rEvents));
      assert.deepEqual(types(r.receive(sends(iEvents))), ['ready']);
      assert.deepEqual(r.sessionId, i.sessionId);
    });
});

describe('v2 handshake misbehaviour: a responder on several networks', () => {
  const REGTEST = networkByName('regtest')!.magic;

  /**
   * The terminators each network would use for this pair of keys, from the independent
   * implementation: `iTerm` is what the initiator sends, `rTerm` what the responder answers with.
   */
  function terminators(
    magic: Uint8Array,
    iKey: independent.EllswiftKeyPair,
    rKey: independent.EllswiftKeyPair,
  ): { iTerm: Buffer; rTerm: Buffer; lengthOf: (n: number) => Buffer } {
    const s = independent.initializeV2Transport(magic, iKey.privateKey, iKey.ellswift, rKey.ellswift, true);
    return {
      iTerm: Buffer.from(s.sendGarbageTerminator),
      rTerm: Buffer.from(s.recvGarbageTerminator),
      /** The encrypted length field of the initiator's first packet announcing n bytes of contents. */
      lengthOf: (n) => Buffer.from(s.sendL.crypt(Uint8Array.of(n & 0xff, (n >> 8) & 0xff, n >> 16))),
    };
  }

  for (const order of ['the real network first', 'the real network last'] as const)
    it(`takes the earliest terminator when garbage holds another network's terminator (${order})`, () => {
      // The peer's garbage starts with regtest's terminator for these keys; mainnet's follows it,
      // 7 bytes later. The first terminator in the stream ends the garbage, whichever candidate it
      // belongs to; what follows is then the start of a packet (a valid regtest length field of 100
      // bytes, then 4 bytes of its body and mainnet's terminator), so nothing fails yet.
      const iKey = independent.ellswiftCreate();
      const rKey = independent.ellswiftCreate();
      const main = terminators(MAGIC, iKey, rKey);
      const reg = terminators(REGTEST, iKey, rKey);
      const networks = order === 'the real network first' ? [MAGIC, REGTEST] : [REGTEST, MAGIC];
      const r = make('responder', {
        magic: networks[0],
        networks,
        key: { privateKey: rKey.privateKey, ellswift: Buffer.from(rKey.ellswift) },
        garbage: Buffer.alloc(0),
      });
      assert.deepEqual(types(r.receive(Buffer.from(iKey.ellswift))), ['send']);
      assert.equal(r.magic, undefined);
      const events = r.receive(Buffer.concat([reg.iTerm, reg.lengthOf(100), randomBytes(4), main.iTerm]));
      assert.deepEqual(r.magic, REGTEST);
      assert.deepEqual(sends(events).subarray(0, 16), reg.rTerm);
      assert.equal(r.state, 'version');
      assert.equal(r.midPacket, true);
    });

  it('finds the terminator of the second of three networks split across two chunks at every position', () => {
    const iKey = independent.ellswiftCreate();
    const rKey = independent.ellswiftCreate();
    const networks = [MAGIC, TESTNET, REGTEST];
    const t = terminators(TESTNET, iKey, rKey);
    const afterKey = Buffer.concat([randomBytes(20), t.iTerm]);
    for (let cut = 0; cut <= afterKey.length; cut++) {
      const r = make('responder', { networks, key: { privateKey: rKey.privateKey, ellswift: Buffer.from(rKey.ellswift) }, garbage: Buffer.alloc(0) });
      r.receive(Buffer.from(iKey.ellswift));
      const a = r.receive(afterKey.subarray(0, cut));
      const b = r.receive(afterKey.subarray(cut));
      assert.deepEqual(sends([...a, ...b]).subarray(0, 16), t.rTerm, `cut at ${cut}`);
      assert.deepEqual(r.magic, TESTNET, `cut at ${cut}`);
    }
  });
});
