/**
 * V2Transport (BIP324 "Handshake" and "Packet encryption"): both roles joined in memory, each side's 'send' events piped
 * into the other's receive(). Happy paths, byte-boundary splits, big and many packets, pipelining,
 * and the official packet vectors replayed through the handshake.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isProxyError } from '../../src/errors.js';
import { NETWORKS, networkByName, v1VersionPrefix } from '../../src/networks.js';
import { MAX_V2_CONTENTS } from '../../src/limits.js';
import { type EllSwiftKey, ellswiftCreate } from '../../src/crypto/ellswift.js';
import { startsLikeV1Version, V2Transport, type V2Event, type V2TransportOptions } from '../../src/v2/transport.js';
import * as independent from '../helpers/independent-v2/index.js';

const MAGIC = networkByName('main')!.magic;

/** One side of an in-memory connection: what it emitted, and the bytes waiting to reach it. */
interface Side {
  t: V2Transport;
  inbox: Buffer[];
  sent: Buffer[];
  ready: Buffer | undefined;
  readyBeforeMessages: boolean;
  messages: Buffer[];
}

function side(options: Partial<V2TransportOptions> & { role: V2TransportOptions['role'] }): Side {
  return {
    t: new V2Transport({ magic: MAGIC, ...options }),
    inbox: [],
    sent: [],
    ready: undefined,
    readyBeforeMessages: true,
    messages: [],
  };
}

function absorb(s: Side, peer: Side, events: V2Event[]): void {
  for (const e of events) {
    if (e.type === 'send') {
      s.sent.push(e.data);
      peer.inbox.push(e.data);
    } else if (e.type === 'ready') {
      assert.equal(s.ready, undefined, 'ready emitted twice');
      s.ready = e.sessionId;
    } else if (e.type === 'message') {
      if (s.ready === undefined) s.readyBeforeMessages = false;
      s.messages.push(e.contents);
    } else {
      assert.fail(`unexpected v1 event on a v2 connection`);
    }
  }
}

type Chunker = (b: Buffer) => Buffer[];
const whole: Chunker = (b) => [b];
const chunksOf =
  (n: number): Chunker =>
  (b) => {
    const out: Buffer[] = [];
    for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
    return out;
  };

/** Deliver everything in flight, in both directions, until both inboxes are empty. */
function pump(a: Side, b: Side, chunker: Chunker = whole): void {
  while (a.inbox.length > 0 || b.inbox.length > 0) {
    for (const [s, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      const pending = s.inbox.splice(0);
      for (const data of pending) for (const c of chunker(data)) absorb(s, peer, s.t.receive(c));
    }
  }
}

function connect(iOpts: Partial<V2TransportOptions> = {}, rOpts: Partial<V2TransportOptions> = {}, chunker: Chunker = whole): { i: Side; r: Side } {
  const i = side({ role: 'initiator', ...iOpts });
  const r = side({ role: 'responder', ...rOpts });
  assert.deepEqual(r.t.start(), []);
  absorb(i, r, i.t.start());
  pump(i, r, chunker);
  return { i, r };
}

function send(from: Side, to: Side, contents: readonly Uint8Array[], ignore = false): void {
  to.inbox.push(from.t.encrypt(contents, ignore));
}

function assertCode(fn: () => unknown, code: Parameters<typeof isProxyError>[1]): void {
  assert.throws(fn, (err: unknown) => isProxyError(err, code), `expected ${code}`);
}

describe('startsLikeV1Version', () => {
  it('is true for the v1 VERSION prefix of our own magic', () => {
    assert.equal(startsLikeV1Version(Buffer.concat([v1VersionPrefix(MAGIC), randomBytes(48)]), MAGIC), true);
  });

  it('is true for the v1 VERSION prefix of every known network, whatever our magic', () => {
    for (const net of NETWORKS) {
      assert.equal(startsLikeV1Version(Buffer.concat([v1VersionPrefix(net.magic), randomBytes(48)]), MAGIC), true, net.name);
    }
  });

  it('is true for a custom signet magic followed by "version" and five NULs', () => {
    assert.equal(startsLikeV1Version(v1VersionPrefix(Buffer.from('deadbeef', 'hex')), MAGIC), true);
  });

  it('is true for our own custom magic', () => {
    const custom = Buffer.from('01020304', 'hex');
    assert.equal(startsLikeV1Version(v1VersionPrefix(custom), custom), true);
  });

  it('is false when any byte of the command field differs', () => {
    for (let pos = 4; pos < 16; pos++) {
      const b = v1VersionPrefix(MAGIC);
      b[pos] ^= 0x01;
      assert.equal(startsLikeV1Version(b, MAGIC), false, `byte ${pos}`);
    }
  });

  it('is false for fewer than 16 bytes and for a real key', () => {
    assert.equal(startsLikeV1Version(v1VersionPrefix(MAGIC).subarray(0, 15), MAGIC), false);
    assert.equal(startsLikeV1Version(ellswiftCreate().ellswift, MAGIC), false);
  });
});

describe('V2Transport start()', () => {
  it('initiator sends its key and garbage at once', () => {
    const key = ellswiftCreate();
    const garbage = randomBytes(33);
    const t = new V2Transport({ role: 'initiator', magic: MAGIC, key, garbage });
    const events = t.start();
    assert.deepEqual(events, [{ type: 'send', data: Buffer.concat([key.ellswift, garbage]) }]);
    assert.equal(t.canSend, false);
    assert.equal(t.state, 'key');
  });

  it('responder sends nothing until the first byte arrives', () => {
    const t = new V2Transport({ role: 'responder', magic: MAGIC });
    assert.deepEqual(t.start(), []);
    assert.equal(t.state, 'detect');
    assert.equal(t.bytesReceived, 0);
  });

  it('initiator regenerates a key whose first 16 bytes read as a v1 VERSION of our network', () => {
    const crafted: EllSwiftKey = { privateKey: ellswiftCreate().privateKey, ellswift: Buffer.concat([v1VersionPrefix(MAGIC), randomBytes(48)]) };
    const privateCopy = Buffer.from(crafted.privateKey);
    const t = new V2Transport({ role: 'initiator', magic: MAGIC, key: crafted, garbage: Buffer.alloc(0) });
    const [ev] = t.start();
    assert.equal(ev?.type, 'send');
    const data = (ev as { data: Buffer }).data;
    assert.equal(data.length, 64);
    assert.notDeepEqual(data, crafted.ellswift);
    assert.equal(startsLikeV1Version(data, MAGIC), false);
    // an injected key belongs to the caller: not wiped
    assert.deepEqual(Buffer.from(crafted.privateKey), privateCopy);
  });

  it('initiator regenerates a key that reads as a v1 VERSION of another network', () => {
    const testnet = networkByName('testnet4')!.magic;
    const crafted: EllSwiftKey = { privateKey: ellswiftCreate().privateKey, ellswift: Buffer.concat([v1VersionPrefix(testnet), randomBytes(48)]) };
    const t = new V2Transport({ role: 'initiator', magic: MAGIC, key: crafted, garbage: Buffer.alloc(0) });
    const data = (t.start()[0] as { data: Buffer }).data;
    assert.notDeepEqual(data, crafted.ellswift);
    assert.equal(startsLikeV1Version(data, MAGIC), false);
  });

  it('throws ERR_V2_BAD_STATE when called twice', () => {
    const t = new V2Transport({ role: 'initiator', magic: MAGIC });
    t.start();
    assertCode(() => t.start(), 'ERR_V2_BAD_STATE');
  });

  it('initiator refuses bytes before start()', () => {
    const t = new V2Transport({ role: 'initiator', magic: MAGIC });
    assertCode(() => t.receive(randomBytes(64)), 'ERR_V2_BAD_STATE');
  });
});

describe('V2Transport handshake', () => {
  for (const [name, gi, gr] of [
    ['empty garbage on both sides', 0, 0],
    ['4095 bytes of garbage on both sides', 4095, 4095],
    ['garbage of 4095 and 0 bytes', 4095, 0],
  ] as const) {
    it(`completes with ${name}, equal session ids, messages both ways`, () => {
      const { i, r } = connect({ garbage: randomBytes(gi) }, { garbage: randomBytes(gr) });
      assert.ok(i.ready && r.ready);
      assert.equal(i.ready.length, 32);
      assert.deepEqual(i.ready, r.ready);
      assert.deepEqual(i.t.sessionId, r.t.sessionId);
      assert.equal(i.t.state, 'app');
      assert.equal(r.t.state, 'app');
      send(i, r, [Buffer.of(1), Buffer.from('ping')]);
      send(r, i, [Buffer.from('pong')]);
      pump(i, r);
      assert.deepEqual(r.messages, [Buffer.from('\x01ping')]);
      assert.deepEqual(i.messages, [Buffer.from('pong')]);
    });
  }

  it('completes with default random garbage, ten times', () => {
    for (let n = 0; n < 10; n++) {
      const { i, r } = connect();
      assert.ok(i.ready);
      assert.deepEqual(i.ready, r.ready);
    }
  });

  it('sends 64 + garbage bytes first, then terminator + version packet (36 bytes) from each side', () => {
    const { i, r } = connect({ garbage: randomBytes(10) }, { garbage: randomBytes(20) });
    assert.deepEqual(
      i.sent.map((b) => b.length),
      [74, 36],
    );
    assert.deepEqual(
      r.sent.map((b) => b.length),
      [84, 36],
    );
  });

  it('delivers a handshake fed one byte at a time on both sides', () => {
    const { i, r } = connect({ garbage: randomBytes(100) }, { garbage: randomBytes(50) }, chunksOf(1));
    assert.ok(i.ready);
    assert.deepEqual(i.ready, r.ready);
  });

  it('the initiator sends terminator and version on the peer key alone, without waiting for its terminator', () => {
    const i = side({ role: 'initiator', garbage: Buffer.alloc(0) });
    i.t.start();
    const rKey = ellswiftCreate();
    const events = i.t.receive(rKey.ellswift.subarray(0, 63));
    assert.deepEqual(events, []);
    assert.equal(i.t.canSend, false);
    const after = i.t.receive(rKey.ellswift.subarray(63));
    assert.equal(after.length, 1);
    assert.equal(after[0].type, 'send');
    assert.equal((after[0] as { data: Buffer }).data.length, 16 + 20);
    assert.equal(i.t.canSend, true);
    assert.equal(i.t.sessionId, undefined);
    assert.equal(i.t.state, 'garbage');
  });

  it('the responder sends key + garbage at the first byte, and terminator + version once the key is complete', () => {
    const rGarbage = randomBytes(7);
    const r = side({ role: 'responder', garbage: rGarbage });
    const iKey = ellswiftCreate();
    // byte 0 of a key differs from the magic's first byte except with probability 1/256
    const key = Buffer.from(iKey.ellswift);
    key[0] = MAGIC[0] ^ 0xff;
    const first = r.t.receive(key.subarray(0, 1));
    assert.equal(first.length, 1);
    assert.equal((first[0] as { data: Buffer }).data.length, 64 + 7);
    assert.deepEqual((first[0] as { data: Buffer }).data.subarray(64), rGarbage);
    assert.equal(r.t.state, 'key');
    assert.deepEqual(r.t.receive(key.subarray(1, 63)), []);
    const last = r.t.receive(key.subarray(63));
    assert.equal(last.length, 1);
    assert.equal((last[0] as { data: Buffer }).data.length, 36);
    assert.equal(r.t.canSend, true);
  });

  it('emits nothing for a partial packet and the rest on completion', () => {
    const { i, r } = connect();
    const pkt = i.t.encrypt([Buffer.from('hello world')]);
    for (let k = 0; k < pkt.length - 1; k++) assert.deepEqual(r.t.receive(pkt.subarray(k, k + 1)), []);
    assert.deepEqual(r.t.receive(pkt.subarray(pkt.length - 1)), [{ type: 'message', contents: Buffer.from('hello world') }]);
  });

  it('counts every byte received in bytesReceived', () => {
    const { i, r } = connect({ garbage: randomBytes(5) }, { garbage: randomBytes(9) });
    assert.equal(r.t.bytesReceived, 64 + 5 + 36);
    assert.equal(i.t.bytesReceived, 64 + 9 + 36);
  });
});

describe('V2Transport split delivery at every byte boundary', () => {
  // Fixed keys and garbage make both transcripts deterministic, so a fresh transport can be fed
  // the peer's transcript cut at each position and must produce the same output.
  const iKey = ellswiftCreate();
  const rKey = ellswiftCreate();
  const iGarbage = randomBytes(13);
  const rGarbage = randomBytes(11);
  const msgsI = [Buffer.from('a'), Buffer.alloc(0), randomBytes(40)];
  const msgsR = [randomBytes(3), Buffer.from('bb'), randomBytes(17)];

  function transcript(): { iOut: Buffer; rOut: Buffer; iHandshake: Buffer; rHandshake: Buffer; sid: Buffer } {
    const { i, r } = connect({ key: iKey, garbage: iGarbage }, { key: rKey, garbage: rGarbage });
    const iHandshake = Buffer.concat(i.sent);
    const rHandshake = Buffer.concat(r.sent);
    const iMsgs = msgsI.map((m) => i.t.encrypt([m]));
    const rMsgs = msgsR.map((m) => r.t.encrypt([m]));
    return {
      iOut: Buffer.concat([iHandshake, ...iMsgs]),
      rOut: Buffer.concat([rHandshake, ...rMsgs]),
      iHandshake,
      rHandshake,
      sid: i.ready!,
    };
  }

  let tr: ReturnType<typeof transcript>;
  before(() => {
    tr = transcript();
  });

  function feed(role: 'initiator' | 'responder', pieces: Buffer[]): { sent: Buffer; ready?: Buffer; messages: Buffer[]; order: string[] } {
    const t = new V2Transport({
      role,
      magic: MAGIC,
      key: role === 'initiator' ? iKey : rKey,
      garbage: role === 'initiator' ? iGarbage : rGarbage,
    });
    const sent: Buffer[] = [];
    const messages: Buffer[] = [];
    const order: string[] = [];
    let ready: Buffer | undefined;
    const take = (events: V2Event[]): void => {
      for (const e of events) {
        order.push(e.type);
        if (e.type === 'send') sent.push(e.data);
        else if (e.type === 'ready') ready = e.sessionId;
        else if (e.type === 'message') messages.push(e.contents);
      }
    };
    take(t.start());
    for (const p of pieces) take(t.receive(p));
    return { sent: Buffer.concat(sent), ready, messages, order };
  }

  it('the fixed transcripts are a real handshake with 3 messages each way', () => {
    assert.equal(tr.iOut.length, 64 + 13 + 36 + (20 + 1) + 20 + (20 + 40));
    assert.equal(tr.rOut.length, 64 + 11 + 36 + (20 + 3) + (20 + 2) + (20 + 17));
  });

  it('the responder gives the same output and events for the initiator transcript cut at any position', () => {
    for (let k = 0; k <= tr.iOut.length; k++) {
      const got = feed('responder', [tr.iOut.subarray(0, k), tr.iOut.subarray(k)]);
      assert.deepEqual(got.sent, tr.rHandshake, `cut at ${k}`);
      assert.deepEqual(got.ready, tr.sid, `cut at ${k}`);
      assert.deepEqual(got.messages, msgsI, `cut at ${k}`);
      assert.deepEqual(got.order.slice(-4), ['ready', 'message', 'message', 'message'], `cut at ${k}`);
    }
  });

  it('the initiator gives the same output and events for the responder transcript cut at any position', () => {
    for (let k = 0; k <= tr.rOut.length; k++) {
      const got = feed('initiator', [tr.rOut.subarray(0, k), tr.rOut.subarray(k)]);
      assert.deepEqual(got.sent, tr.iHandshake, `cut at ${k}`);
      assert.deepEqual(got.ready, tr.sid, `cut at ${k}`);
      assert.deepEqual(got.messages, msgsR, `cut at ${k}`);
    }
  });

  it('both sides give the same result for transcripts fed one byte at a time', () => {
    const r = feed('responder', chunksOf(1)(tr.iOut));
    assert.deepEqual(r.sent, tr.rHandshake);
    assert.deepEqual(r.messages, msgsI);
    const i = feed('initiator', chunksOf(1)(tr.rOut));
    assert.deepEqual(i.sent, tr.iHandshake);
    assert.deepEqual(i.messages, msgsR);
  });
});

describe('V2Transport packet stream', () => {
  it('carries 4,000,013-byte contents both ways, delivered in 64 KiB chunks', () => {
    const { i, r } = connect({}, {}, chunksOf(65536));
    const big1 = randomBytes(MAX_V2_CONTENTS);
    const big2 = randomBytes(MAX_V2_CONTENTS);
    send(i, r, [big1.subarray(0, 1), big1.subarray(1)]);
    send(r, i, [big2]);
    send(i, r, [Buffer.from('after')]);
    pump(i, r, chunksOf(65536));
    assert.equal(r.messages.length, 2);
    assert.ok(r.messages[0].equals(big1));
    assert.deepEqual(r.messages[1], Buffer.from('after'));
    assert.equal(i.messages.length, 1);
    assert.ok(i.messages[0].equals(big2));
  });

  it('assembles a 4 MB packet fed in 1 KiB chunks in linear time', () => {
    const { i, r } = connect();
    const big = randomBytes(MAX_V2_CONTENTS);
    const pkt = i.t.encrypt([big]);
    const chunks = chunksOf(1024)(pkt);
    const started = process.hrtime.bigint();
    let got: V2Event[] = [];
    for (const c of chunks) got = got.concat(r.t.receive(c));
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(got.length, 1);
    assert.ok((got[0] as { contents: Buffer }).contents.equals(big));
    // Re-concatenating 3900 chunks would copy ~8 GB; one assembly copies 4 MB.
    assert.ok(ms < 2000, `took ${ms} ms`);
  });

  it('keeps 1000 messages in order both ways across four rekeys', () => {
    const { i, r } = connect();
    const fromI: Buffer[] = [];
    const fromR: Buffer[] = [];
    for (let n = 0; n < 1000; n++) {
      const a = Buffer.from(`i-${n}-${'x'.repeat(n % 37)}`);
      const b = Buffer.from(`r-${n}`);
      fromI.push(a);
      fromR.push(b);
      send(i, r, [a]);
      send(r, i, [b]);
    }
    pump(i, r, chunksOf(777));
    assert.deepEqual(r.messages, fromI);
    assert.deepEqual(i.messages, fromR);
  });

  it("delivers messages the initiator pipelined before its 'ready' after the responder's 'ready'", () => {
    const i = side({ role: 'initiator' });
    const r = side({ role: 'responder' });
    absorb(i, r, i.t.start());
    // the responder answers; hand the initiator only the responder's 64-byte key
    absorb(r, i, r.t.receive(Buffer.concat(r.inbox.splice(0))));
    const fromR = Buffer.concat(i.inbox.splice(0));
    absorb(i, r, i.t.receive(fromR.subarray(0, 64)));
    assert.equal(i.t.canSend, true);
    assert.equal(i.ready, undefined);
    send(i, r, [Buffer.from('early-1')]);
    send(i, r, [Buffer.from('early-2')]);
    // now the responder gets terminator + version + the two pipelined packets in one chunk
    absorb(r, i, r.t.receive(Buffer.concat(r.inbox.splice(0))));
    assert.ok(r.ready);
    assert.ok(r.readyBeforeMessages);
    assert.deepEqual(r.messages, [Buffer.from('early-1'), Buffer.from('early-2')]);
    absorb(i, r, i.t.receive(fromR.subarray(64)));
    assert.deepEqual(i.ready, r.ready);
  });

  it('refuses encrypt() before the peer key with ERR_V2_BAD_STATE and stays usable', () => {
    const i = side({ role: 'initiator' });
    const r = side({ role: 'responder' });
    assertCode(() => i.t.encrypt([Buffer.from('x')]), 'ERR_V2_BAD_STATE');
    absorb(i, r, i.t.start());
    assertCode(() => i.t.encrypt([Buffer.from('x')]), 'ERR_V2_BAD_STATE');
    pump(i, r);
    assert.ok(i.ready);
    send(i, r, [Buffer.from('x')]);
    pump(i, r);
    assert.deepEqual(r.messages, [Buffer.from('x')]);
  });

  it('an ignore packet sent with encrypt(..., true) never surfaces', () => {
    const { i, r } = connect();
    send(i, r, [Buffer.from('decoy')], true);
    send(i, r, [Buffer.from('real')]);
    pump(i, r);
    assert.deepEqual(r.messages, [Buffer.from('real')]);
  });

  it('delivers an empty application packet as empty contents (the message layer drops it)', () => {
    const { i, r } = connect();
    send(i, r, []);
    pump(i, r);
    assert.deepEqual(r.messages, [Buffer.alloc(0)]);
  });
});

describe('V2Transport against the official BIP324 packet vectors', () => {
  // Each row gives our key, the peer's key, our role and packet number in_idx with in_contents,
  // in_aad and in_ignore. Replayed through the handshake: the garbage is the AAD of packet 0,
  // in_idx - 1 decoys come first, and the row's packet is the version packet (or a decoy before
  // an empty version packet when in_ignore is set).
  const text = readFileSync(new URL('../../../test/vectors/packet_encoding_test_vectors.csv', import.meta.url), 'utf8');
  const lines = text.trim().split(/\r?\n/);
  const cols = lines[0].split(',');
  const rows = lines.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, n) => [cols[n], v])) as Record<string, string>);
  const hex = (s: string | undefined): Buffer => Buffer.from(s ?? '', 'hex');

  for (const row of rows) {
    const idx = Number(row.in_idx);
    const initiating = row.in_initiating === '1';
    const ignore = row.in_ignore === '1';
    it(`row in_idx=${idx} (${initiating ? 'initiator' : 'responder'}${ignore ? ', decoy' : ''}): terminator and packet match`, () => {
      const contents = Buffer.alloc(hex(row.in_contents).length * Number(row.in_multiply));
      contents.fill(hex(row.in_contents));
      const fillers = Array.from({ length: idx }, () => Buffer.alloc(0));
      const t = new V2Transport({
        role: initiating ? 'initiator' : 'responder',
        magic: MAGIC,
        key: { privateKey: hex(row.in_priv_ours), ellswift: hex(row.in_ellswift_ours) },
        garbage: hex(row.in_aad),
        decoys: ignore ? [...fillers, contents] : fillers,
        versionContents: ignore ? Buffer.alloc(0) : contents,
      });
      const sent: Buffer[] = [];
      for (const e of [...t.start(), ...t.receive(hex(row.in_ellswift_theirs))]) {
        assert.equal(e.type, 'send');
        sent.push((e as { data: Buffer }).data);
      }
      assert.equal(sent.length, 2);
      assert.deepEqual(sent[0].subarray(0, 64), hex(row.in_ellswift_ours));
      const tail = sent[1];
      assert.deepEqual(tail.subarray(0, 16), hex(row.mid_send_garbage_terminator));
      const packetLen = contents.length + 20;
      const end = ignore ? tail.length - 20 : tail.length;
      const packet = tail.subarray(end - packetLen, end);
      if (row.out_ciphertext) assert.deepEqual(packet, hex(row.out_ciphertext));
      else assert.deepEqual(packet.subarray(packet.length - hex(row.out_ciphertext_endswith).length), hex(row.out_ciphertext_endswith));
      assert.equal(t.canSend, true);
    });
  }
});

describe('V2Transport.midPacket: whether a stream that ends now was cut inside a packet', () => {
  it('is false between packets and true inside the version packet, inside a length field and inside a body', () => {
    const i = side({ role: 'initiator' });
    const r = side({ role: 'responder' });
    assert.deepEqual(r.t.start(), []);
    absorb(i, r, i.t.start());
    absorb(r, i, r.t.receive(Buffer.concat(r.inbox.splice(0))));
    absorb(i, r, i.t.receive(Buffer.concat(i.inbox.splice(0))));
    // The responder now has the initiator's terminator and version packet in flight: all but its last 5 bytes.
    const flight = Buffer.concat(r.inbox.splice(0));
    absorb(r, i, r.t.receive(flight.subarray(0, flight.length - 5)));
    assert.equal(r.ready, undefined, 'the version packet is not complete yet');
    assert.equal(r.t.midPacket, true, 'inside the version packet');
    absorb(r, i, r.t.receive(flight.subarray(flight.length - 5)));
    assert.notEqual(r.ready, undefined);
    assert.equal(r.t.midPacket, false, 'between packets');

    // An empty packet too: its announced length is 0, and its header byte and tag are still to come.
    for (const [cut, text] of [
      [1, 'hello'],
      [3, 'hello'],
      [10, 'hello'],
      [3, ''],
    ] as const) {
      const packet = i.t.encrypt([Buffer.from(text)]);
      absorb(r, i, r.t.receive(packet.subarray(0, cut)));
      assert.equal(r.t.midPacket, true, `${cut} bytes into a packet`);
      absorb(r, i, r.t.receive(packet.subarray(cut)));
      assert.equal(r.t.midPacket, false, `after the rest of the packet (cut at ${cut})`);
      assert.deepEqual(r.messages.pop(), Buffer.from(text));
    }
  });
});

/** The mainnet magic, written out rather than read back from src/networks.ts. */
const MAINNET_MAGIC = Buffer.from('f9beb4d9', 'hex');

/** A key pool that hands out the given keys in order, so a test can look at a key after the transport used it. */
function poolOf(...keys: EllSwiftKey[]): { take(): EllSwiftKey } {
  return {
    take: () => {
      const k = keys.shift();
      assert.ok(k, 'the transport took more keys than expected');
      return k;
    },
  };
}

function isZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

/**
 * Runs `fn` and returns every array wiped with fill(0) meanwhile (whole-array fills only): the array
 * itself and a copy of what it held just before. Buffer.prototype.fill and the typed-array fill are
 * both watched, and restored afterwards.
 */
function wipedDuring(fn: () => void): { target: Uint8Array; before: Buffer }[] {
  const wiped: { target: Uint8Array; before: Buffer }[] = [];
  const typedProto = Object.getPrototypeOf(Uint8Array.prototype) as { fill: (...a: unknown[]) => unknown };
  const bufferProto = Buffer.prototype as unknown as { fill: (...a: unknown[]) => unknown };
  const origTyped = typedProto.fill;
  const origBuffer = bufferProto.fill;
  const watch = (orig: (...a: unknown[]) => unknown) =>
    function (this: Uint8Array, ...args: unknown[]): unknown {
      if (args.length === 1 && args[0] === 0) wiped.push({ target: this, before: Buffer.from(this) });
      return orig.apply(this, args);
    };
  typedProto.fill = watch(origTyped);
  bufferProto.fill = watch(origBuffer);
  try {
    fn();
  } finally {
    typedProto.fill = origTyped;
    bufferProto.fill = origBuffer;
  }
  return wiped;
}

describe('V2Transport constructor validation', () => {
  it('throws RangeError for a magic that is not 4 bytes', () => {
    for (const len of [0, 3, 5]) {
      assert.throws(() => new V2Transport({ role: 'initiator', magic: Buffer.alloc(len, 1) }), RangeError, `magic of ${len} bytes`);
    }
  });

  it('throws RangeError when any network magic of a responder is not 4 bytes, first or last', () => {
    for (const networks of [[Buffer.alloc(3, 1)], [MAGIC, Buffer.alloc(5, 1)], [Buffer.alloc(0), MAGIC], [MAGIC, MAGIC, Buffer.alloc(3)]]) {
      assert.throws(() => new V2Transport({ role: 'responder', magic: MAGIC, networks }), RangeError, networks.map((m) => m.length).join(','));
    }
    // every magic 4 bytes: accepted
    assert.doesNotThrow(() => new V2Transport({ role: 'responder', magic: MAGIC, networks: [MAGIC, Buffer.from('0b110907', 'hex')] }));
  });

  it('throws RangeError for an initiator given more than one network (an initiator knows its network)', () => {
    assert.throws(() => new V2Transport({ role: 'initiator', magic: MAGIC, networks: [MAGIC, Buffer.from('0b110907', 'hex')] }), RangeError);
    assert.doesNotThrow(() => new V2Transport({ role: 'initiator', magic: MAGIC, networks: [MAGIC] }));
  });

  it('throws RangeError for a responder given no network at all (it could never match a terminator)', () => {
    assert.throws(() => new V2Transport({ role: 'responder', magic: MAGIC, networks: [] }), RangeError);
    assert.doesNotThrow(() => new V2Transport({ role: 'responder', magic: MAGIC, networks: [MAGIC] }));
  });
});

describe('V2Transport default garbage', () => {
  it('has a length in 0..4095 and reaches both ends of that range (100,000 draws)', () => {
    // Each length has probability 1/4096 per draw: the chance that 0 or 4095 never shows up in
    // 100,000 draws is 2 * (4095/4096)^100000 < 5e-11, so this does not fail by bad luck.
    const key = ellswiftCreate();
    let min = Infinity;
    let max = -Infinity;
    for (let n = 0; n < 100_000; n++) {
      const t = new V2Transport({ role: 'initiator', magic: MAGIC, keyPool: { take: () => key } });
      const [ev] = t.start();
      const len = (ev as { data: Buffer }).data.length - 64;
      if (len < min) min = len;
      if (len > max) max = len;
    }
    assert.equal(min, 0);
    assert.equal(max, 4095);
  });
});

describe('V2Transport misuse leaves the state unchanged', () => {
  it('an initiator fed bytes before start() throws ERR_V2_BAD_STATE, stays in key and can still complete', () => {
    const i = side({ role: 'initiator' });
    const r = side({ role: 'responder' });
    for (const bytes of [Buffer.of(1), randomBytes(64), randomBytes(200)]) {
      assertCode(() => i.t.receive(bytes), 'ERR_V2_BAD_STATE');
      assert.equal(i.t.state, 'key', `after ${bytes.length} bytes`);
      assert.equal(i.t.bytesReceived, 0);
    }
    absorb(i, r, i.t.start());
    pump(i, r);
    assert.ok(i.ready && r.ready);
    assert.deepEqual(i.ready, r.ready);
  });

  it('a responder is started by its first receive(): a start() after it throws ERR_V2_BAD_STATE', () => {
    const r = new V2Transport({ role: 'responder', magic: MAGIC });
    r.receive(Buffer.of(MAGIC[0] ^ 0xff));
    assertCode(() => r.start(), 'ERR_V2_BAD_STATE');
    // an empty first chunk starts it as well
    const r2 = new V2Transport({ role: 'responder', magic: MAGIC });
    assert.deepEqual(r2.receive(Buffer.alloc(0)), []);
    assertCode(() => r2.start(), 'ERR_V2_BAD_STATE');
  });

  it('bytes after the v1 fallback throw ERR_V2_BAD_STATE and leave the transport in v1 with its magic', () => {
    const r = new V2Transport({ role: 'responder', magic: MAGIC });
    const version = Buffer.concat([v1VersionPrefix(MAINNET_MAGIC), randomBytes(30)]);
    assert.deepEqual(
      r.receive(version).map((e) => e.type),
      ['v1'],
    );
    for (let n = 0; n < 2; n++) {
      assertCode(() => r.receive(Buffer.of(1)), 'ERR_V2_BAD_STATE');
      assert.equal(r.state, 'v1');
      assert.deepEqual(r.magic, MAINNET_MAGIC);
    }
  });

  it('encrypt() and encryptPieces() before the handshake throw ERR_V2_BAD_STATE, not fatal', () => {
    const i = side({ role: 'initiator' });
    for (const call of [() => i.t.encrypt([Buffer.from('x')]), () => i.t.encryptPieces([Buffer.from('x')])]) {
      assert.throws(call, (err: unknown) => isProxyError(err, 'ERR_V2_BAD_STATE') && err.fatal === false);
    }
    i.t.start();
    for (const call of [() => i.t.encrypt([Buffer.from('x')]), () => i.t.encryptPieces([Buffer.from('x')])]) {
      assert.throws(call, (err: unknown) => isProxyError(err, 'ERR_V2_BAD_STATE') && err.fatal === false);
    }
    assert.equal(i.t.state, 'key');
  });
});

describe('V2Transport.encryptPieces', () => {
  it('sends a message by default and a decoy the receiver skips with ignore = true, read by the independent peer', () => {
    const peer = new independent.IndependentV2Peer({ role: 'responder', magic: MAGIC });
    const t = new V2Transport({ role: 'initiator', magic: MAGIC });
    peer.start();
    const toPeer: Buffer[] = [];
    const deliver = (events: V2Event[]): void => {
      for (const e of events) if (e.type === 'send') toPeer.push(e.data);
    };
    deliver(t.start());
    const fromPeer = peer.receive(Buffer.concat(toPeer.splice(0)));
    deliver(t.receive(Buffer.concat(fromPeer.flatMap((e) => (e.type === 'send' ? [e.data] : [])))));
    assert.deepEqual(
      peer.receive(Buffer.concat(toPeer.splice(0))).map((e) => e.type),
      ['ready'],
    );
    const wire = Buffer.concat([
      ...t.encryptPieces([Buffer.from('dec'), Buffer.from('oy')], true),
      ...t.encryptPieces([Buffer.from('hel'), Buffer.from('lo')]),
      ...t.encryptPieces([Buffer.from('x')], false),
    ]);
    const got = peer.receive(wire);
    assert.deepEqual(got, [
      { type: 'message', contents: Buffer.from('hello') },
      { type: 'message', contents: Buffer.from('x') },
    ]);
  });

  it('a decoy from encryptPieces(..., true) is skipped by our own receiver as well', () => {
    const a = connect({ key: ellswiftCreate(), garbage: Buffer.alloc(0) });
    const pieces = [Buffer.from('abc'), randomBytes(100)];
    const viaPieces = Buffer.concat(a.i.t.encryptPieces(pieces, true));
    a.r.inbox.push(viaPieces);
    pump(a.i, a.r);
    assert.deepEqual(a.r.messages, [], 'the decoy is skipped');
    send(a.i, a.r, [Buffer.from('after')]);
    pump(a.i, a.r);
    assert.deepEqual(a.r.messages, [Buffer.from('after')]);
  });
});

describe('V2Transport.magic', () => {
  it('is the only network from the start, for both roles and after a failure', () => {
    const i = new V2Transport({ role: 'initiator', magic: MAINNET_MAGIC });
    assert.deepEqual(i.magic, MAINNET_MAGIC);
    i.start();
    assert.deepEqual(i.magic, MAINNET_MAGIC);
    const r = new V2Transport({ role: 'responder', magic: MAINNET_MAGIC });
    assert.deepEqual(r.magic, MAINNET_MAGIC);
    r.receive(ellswiftCreate().ellswift.subarray(0, 20));
    assert.deepEqual(r.magic, MAINNET_MAGIC);
    assertCode(() => r.receive(Buffer.concat([randomBytes(44), randomBytes(5000)])), 'ERR_V2_NO_TERMINATOR');
    assert.equal(r.state, 'failed');
    assert.deepEqual(r.magic, MAINNET_MAGIC);
  });
});

describe('V2Transport.footprint', () => {
  it('counts the 4111-byte garbage scan window while the terminator is awaited, and drops it once found', () => {
    const i = side({ role: 'initiator', garbage: randomBytes(30) });
    const r = side({ role: 'responder' });
    const head = (i.t.start()[0] as { data: Buffer }).data;
    assert.equal(r.t.footprint, 0);
    absorb(r, i, r.t.receive(head.subarray(0, 64)));
    assert.equal(r.t.state, 'garbage');
    assert.equal(r.t.footprint, 4095 + 16);
    absorb(r, i, r.t.receive(head.subarray(64)));
    assert.equal(r.t.footprint, 4095 + 16, 'garbage received, no terminator yet');
    absorb(i, r, i.t.receive(Buffer.concat(i.inbox.splice(0))));
    absorb(r, i, r.t.receive(Buffer.concat(r.inbox.splice(0))));
    assert.ok(r.ready);
    assert.equal(r.t.footprint, 0);
  });
});

describe('V2Transport wipes its own private key and the derived keys, never an injected key', () => {
  it('wipes a key it took from its pool once the ECDH is done (initiator and responder)', () => {
    for (const role of ['initiator', 'responder'] as const) {
      const mine = ellswiftCreate();
      const copy = Buffer.from(mine.privateKey);
      const a = side({ role, keyPool: poolOf(mine) });
      const b = side({ role: role === 'initiator' ? 'responder' : 'initiator' });
      const [i, r] = role === 'initiator' ? [a, b] : [b, a];
      assert.deepEqual(r.t.start(), []);
      absorb(i, r, i.t.start());
      assert.deepEqual(Buffer.from(mine.privateKey), copy, `${role}: not before the ECDH`);
      pump(i, r);
      assert.ok(i.ready && r.ready);
      assert.ok(isZero(mine.privateKey), `${role}: wiped`);
    }
  });

  it('never wipes an injected key: after the handshake, after the v1 fallback, after a failure', () => {
    const k1 = ellswiftCreate();
    const c1 = Buffer.from(k1.privateKey);
    const { i, r } = connect({ key: k1 }, {});
    assert.ok(i.ready && r.ready);
    assert.deepEqual(Buffer.from(k1.privateKey), c1, 'initiator, after the handshake');

    const k2 = ellswiftCreate();
    const c2 = Buffer.from(k2.privateKey);
    const v1 = new V2Transport({ role: 'responder', magic: MAGIC, key: k2 });
    assert.equal(v1.receive(Buffer.concat([v1VersionPrefix(MAINNET_MAGIC), randomBytes(10)]))[0].type, 'v1');
    assert.deepEqual(Buffer.from(k2.privateKey), c2, 'responder, after the v1 fallback');

    const k3 = ellswiftCreate();
    const c3 = Buffer.from(k3.privateKey);
    const bad = new V2Transport({ role: 'responder', magic: MAGIC, key: k3 });
    assertCode(() => bad.receive(Buffer.concat([ellswiftCreate().ellswift, randomBytes(5000)])), 'ERR_V2_NO_TERMINATOR');
    assert.deepEqual(Buffer.from(k3.privateKey), c3, 'responder, after a failure');
  });

  it('wipes its own key when the handshake fails (responder)', () => {
    const mine = ellswiftCreate();
    const r = new V2Transport({ role: 'responder', magic: MAGIC, keyPool: poolOf(mine) });
    assert.equal(r.receive(Buffer.of(MAGIC[0] ^ 0xff))[0].type, 'send');
    assertCode(() => r.receive(Buffer.concat([randomBytes(63), randomBytes(5000)])), 'ERR_V2_NO_TERMINATOR');
    assert.ok(isZero(mine.privateKey));
  });

  // The replacement key is made inside start() and never handed out, so these two tests read it from
  // the transport's private field (checked to be the key that was sent, by the independent decoder).
  function replacementKey(t: V2Transport, sent: Buffer): EllSwiftKey {
    const key = (t as unknown as { ourKey?: EllSwiftKey }).ourKey;
    assert.ok(key, 'the transport holds its replacement key until the ECDH');
    assert.deepEqual(Buffer.from(key.ellswift), sent);
    assert.equal(independent.pubX(key.privateKey), independent.ellswiftDecode(sent));
    return key;
  }

  it('wipes a pooled key that reads as a v1 VERSION at start(), and the replacement key after the ECDH', () => {
    const crafted: EllSwiftKey = { privateKey: ellswiftCreate().privateKey, ellswift: Buffer.concat([v1VersionPrefix(MAGIC), randomBytes(48)]) };
    const i = side({ role: 'initiator', keyPool: poolOf(crafted), garbage: Buffer.alloc(0) });
    const r = side({ role: 'responder' });
    absorb(i, r, i.t.start());
    assert.ok(isZero(crafted.privateKey), 'the refused pooled key is wiped at once');
    const sentKey = i.sent[0].subarray(0, 64);
    assert.notDeepEqual(sentKey, crafted.ellswift);
    const replacement = replacementKey(i.t, sentKey);
    assert.ok(!isZero(replacement.privateKey));
    pump(i, r);
    assert.ok(i.ready && r.ready);
    assert.ok(isZero(replacement.privateKey), 'the replacement is wiped after the ECDH');
  });

  it('an injected key that reads as a v1 VERSION is left alone, and its replacement (ours) wiped after the ECDH', () => {
    const crafted: EllSwiftKey = { privateKey: ellswiftCreate().privateKey, ellswift: Buffer.concat([v1VersionPrefix(MAGIC), randomBytes(48)]) };
    const copy = Buffer.from(crafted.privateKey);
    const i = side({ role: 'initiator', key: crafted, garbage: Buffer.alloc(0) });
    const r = side({ role: 'responder' });
    absorb(i, r, i.t.start());
    const replacement = replacementKey(i.t, i.sent[0].subarray(0, 64));
    pump(i, r);
    assert.ok(i.ready && r.ready);
    assert.ok(isZero(replacement.privateKey), 'the replacement is ours: wiped after the ECDH');
    assert.deepEqual(Buffer.from(crafted.privateKey), copy, "the injected key is the caller's: never wiped");
  });

  it('wipes the four derived L/P keys (computed by the independent implementation) once the ciphers exist', () => {
    for (const role of ['initiator', 'responder'] as const) {
      const iKey = independent.ellswiftCreate();
      const rKey = independent.ellswiftCreate();
      const ours = role === 'initiator' ? iKey : rKey;
      const theirs = role === 'initiator' ? rKey : iKey;
      const t = new V2Transport({ role, magic: MAGIC, key: { privateKey: ours.privateKey, ellswift: Buffer.from(ours.ellswift) }, garbage: Buffer.alloc(0) });
      t.start();
      const expected = independent.initializeV2Transport(MAGIC, iKey.privateKey, iKey.ellswift, rKey.ellswift, true);
      const wiped = wipedDuring(() => t.receive(Buffer.from(theirs.ellswift)));
      assert.equal(t.canSend, true);
      for (const [name, k] of Object.entries({
        initiatorL: expected.initiatorL,
        initiatorP: expected.initiatorP,
        responderL: expected.responderL,
        responderP: expected.responderP,
      })) {
        const hit = wiped.find((w) => w.before.equals(k));
        assert.ok(hit, `${role}: ${name} wiped`);
        assert.ok(isZero(hit.target), `${role}: ${name} is zero now`);
      }
    }
  });

  it("a responder on several networks wipes every network's derived keys once the peer's terminator names one", () => {
    const nets = [MAGIC, Buffer.from('0b110907', 'hex'), Buffer.from('fabfb5da', 'hex')];
    const iKey = independent.ellswiftCreate();
    const rKey = independent.ellswiftCreate();
    const r = new V2Transport({
      role: 'responder',
      magic: nets[0],
      networks: nets,
      key: { privateKey: rKey.privateKey, ellswift: Buffer.from(rKey.ellswift) },
    });
    r.receive(Buffer.from(iKey.ellswift));
    const states = nets.map((m) => independent.initializeV2Transport(m, iKey.privateKey, iKey.ellswift, rKey.ellswift, true));
    const wiped = wipedDuring(() => r.receive(Buffer.from(states[1].sendGarbageTerminator)));
    assert.deepEqual(r.magic, nets[1]);
    for (const [n, s] of states.entries()) {
      for (const k of [s.initiatorL, s.initiatorP, s.responderL, s.responderP]) {
        const hit = wiped.find((w) => w.before.equals(k));
        assert.ok(hit, `network ${n}: a derived key wiped`);
        assert.ok(isZero(hit.target));
      }
    }
  });
});
