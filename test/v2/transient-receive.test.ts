/**
 * V2Transport.receive(chunk, transient = true): every chunk is a view of ONE buffer that is filled
 * with 0xEE after each call, as the shared read buffer of transient-reads.ts is by the next read.
 * Whatever the transport keeps past a call (a packet not complete yet, the first bytes while v1
 * detection is undecided) must be its own copy: the messages out must be exactly those the other
 * side, the independent BIP324 implementation of test/helpers/independent-v2, encrypted.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { ellswiftCreate } from '../../src/crypto/ellswift.js';
import { networkByName } from '../../src/networks.js';
import { serializeV1 } from '../../src/v1/framing.js';
import { V2Transport, type V2Event } from '../../src/v2/transport.js';
import * as independent from '../helpers/independent-v2/index.js';
import { versionPayload } from '../helpers/node.js';
import { READ_SIZE } from '../../src/transient-reads.js';

const MAGIC = networkByName('main')!.magic;

/** One buffer reused for every call, as a socket's read buffer is. */
class ReadBuffer {
  readonly buffer = Buffer.allocUnsafeSlow(512 * 1024);

  /** Hand `bytes` to `receive` as a view of the buffer, then overwrite the buffer. */
  feed(bytes: Buffer, receive: (view: Buffer) => V2Event[]): V2Event[] {
    bytes.copy(this.buffer);
    try {
      return receive(this.buffer.subarray(0, bytes.length));
    } finally {
      this.buffer.fill(0xee);
    }
  }
}

/** Message contents as the independent peer encrypts them: the short id or long form, then the payload. */
function contents(command: string, payload: Buffer): Buffer {
  return Buffer.concat([independent.encodeType(command), payload]);
}

/**
 * Everything an independent responder sends to our initiator (its key, garbage, terminator, decoys,
 * version packet, then `messages` with a decoy before every second one), for our fixed key and
 * garbage: replayable into any number of fresh initiators.
 */
function responderStream(messages: readonly Buffer[]): { stream: Buffer; replay: (cuts: readonly number[]) => { ready: boolean; messages: Buffer[] } } {
  const key = ellswiftCreate();
  const garbage = randomBytes(29);
  const peer = new independent.IndependentV2Peer({
    role: 'responder',
    magic: MAGIC,
    garbage: randomBytes(45),
    decoys: [randomBytes(3), randomBytes(70)],
    appDecoys: (n) => (n % 2 === 1 ? [randomBytes(10)] : []),
  });
  const first = new V2Transport({ role: 'initiator', magic: MAGIC, key, garbage });
  const [hello] = first.start();
  assert.equal(hello.type, 'send');
  const sent: Buffer[] = [];
  for (const e of peer.receive(hello.data)) if (e.type === 'send') sent.push(e.data);
  assert.ok(peer.canSend);
  for (const m of messages) sent.push(peer.encrypt([m]));
  const stream = Buffer.concat(sent);

  const replay = (cuts: readonly number[]): { ready: boolean; messages: Buffer[] } => {
    const t = new V2Transport({ role: 'initiator', magic: MAGIC, key, garbage });
    t.start();
    const read = new ReadBuffer();
    const out: Buffer[] = [];
    let ready = false;
    let at = 0;
    for (const end of [...cuts, stream.length]) {
      if (end === at) continue;
      for (const e of read.feed(stream.subarray(at, end), (view) => t.receive(view, true))) {
        if (e.type === 'ready') ready = true;
        else if (e.type === 'message') out.push(e.contents); // kept as handed out: must not be a view of the read buffer either
      }
      at = end;
    }
    assert.equal(t.midPacket, false);
    return { ready, messages: out };
  };
  return { stream, replay };
}

const every = (size: number, length: number): number[] => Array.from({ length: Math.ceil(length / size) - 1 }, (_, i) => (i + 1) * size);

describe('V2Transport: transient chunks (views of one read buffer, overwritten after each call)', function () {
  this.timeout(60_000);

  describe('initiator, fed by the independent responder', () => {
    const small = [
      contents('ping', randomBytes(8)),
      contents('inv', randomBytes(37)),
      contents('sendcmpct', randomBytes(9)),
      contents('tx', randomBytes(250)),
      contents('verack', Buffer.alloc(0)),
    ];

    it('split once at every byte (inside the key, the garbage, the terminator, a length field, a header, contents, a tag, between packets)', () => {
      const { stream, replay } = responderStream(small);
      for (let p = 1; p < stream.length; p++) {
        const got = replay([p]);
        assert.ok(got.ready, `cut at ${p}`);
        assert.deepEqual(got.messages, small, `cut at ${p}`);
      }
    });

    it('in pieces of every size from 1 to 40 bytes, and of 100 and 1,000', () => {
      const { stream, replay } = responderStream(small);
      for (const size of [...Array.from({ length: 40 }, (_, i) => i + 1), 100, 1000]) {
        const got = replay(every(size, stream.length));
        assert.ok(got.ready, `pieces of ${size}`);
        assert.deepEqual(got.messages, small, `pieces of ${size}`);
      }
    });

    it('large packets across reads of up to READ_SIZE and odd sizes', () => {
      const messages = [
        contents('block', randomBytes(300_000)),
        contents('ping', randomBytes(8)),
        contents('block', randomBytes(65_536)),
        contents('cmpctblock', randomBytes(100_000)),
        contents('tx', randomBytes(3000)),
        contents('block', randomBytes(1_000_000)),
      ];
      const { stream, replay } = responderStream(messages);
      for (const size of [READ_SIZE, 65_536, 99_991, 4093, 777]) {
        assert.deepEqual(replay(every(size, stream.length)).messages, messages, `pieces of ${size}`);
      }
      const cuts: number[] = [];
      for (let at = 0; at < stream.length;) {
        at += 1 + (randomBytes(4).readUInt32LE(0) % READ_SIZE);
        if (at < stream.length) cuts.push(at);
      }
      assert.deepEqual(replay(cuts).messages, messages, `random cuts ${cuts.join(',')}`);
    });
  });

  describe('responder', () => {
    it("an initiator whose key starts like our network's v1 VERSION prefix, one byte per call: the held bytes are its key", () => {
      // Our network's magic is the first 4 bytes of the initiator's key: detection holds them (a v1
      // VERSION starts with the magic) until the command field differs, then they start the key.
      const iKey = independent.ellswiftCreate();
      const magic = Buffer.from(iKey.ellswift.subarray(0, 4));
      const peer = new independent.IndependentV2Peer({ role: 'initiator', magic, key: iKey, garbage: randomBytes(20) });
      const ours = new V2Transport({ role: 'responder', magic });
      const read = new ReadBuffer();
      const messages = [contents('ping', randomBytes(8)), contents('block', randomBytes(20_000))];
      let toUs: Buffer[] = peer.start().flatMap((e) => (e.type === 'send' ? [e.data] : []));
      const got: Buffer[] = [];
      let ready = false;
      let sentMessages = false;
      while (toUs.length > 0) {
        const bytes = Buffer.concat(toUs.splice(0));
        for (let i = 0; i < bytes.length; i++) {
          for (const e of read.feed(bytes.subarray(i, i + 1), (view) => ours.receive(view, true))) {
            if (e.type === 'send') toUs.push(...peer.receive(e.data).flatMap((pe) => (pe.type === 'send' ? [pe.data] : [])));
            else if (e.type === 'ready') ready = true;
            else if (e.type === 'message') got.push(e.contents);
            else assert.fail('a v2 initiator taken for v1');
          }
        }
        if (toUs.length === 0 && peer.canSend && !sentMessages) {
          sentMessages = true;
          toUs = messages.map((m) => peer.encrypt([m]));
        }
      }
      assert.ok(ready);
      assert.deepEqual(got, messages);
    });

    for (const [what, cuts] of [
      ['one byte per call', Array.from({ length: 15 }, (_, i) => i + 1)],
      ['5, 5, then the rest in one call', [5, 10]],
    ] as const) {
      it(`a v1 VERSION, ${what}: the v1 event has its bytes exactly`, () => {
        const version = serializeV1(MAGIC, 'version', versionPayload());
        const t = new V2Transport({ role: 'responder', magic: MAGIC });
        const read = new ReadBuffer();
        const events: V2Event[] = [];
        let at = 0;
        for (const end of [...cuts, version.length]) {
          events.push(...read.feed(version.subarray(at, end), (view) => t.receive(view, true)));
          at = end;
          if (events.length > 0) break;
        }
        assert.equal(events.length, 1);
        const ev = events[0];
        assert.equal(ev.type, 'v1');
        assert.deepEqual(ev.type === 'v1' ? ev.data : undefined, version.subarray(0, at));
        assert.ok(at >= 16);
      });
    }
  });
});
