/**
 * The independent BIP324 peer (test/helpers/independent-v2/) proven on the official vectors, then
 * cross-checked with our own V2Transport in both roles: the end-to-end tests use it as a second,
 * unrelated remote node, so a mistake made the same way on both ends of our own code shows up.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { isProxyError, type ErrorCode } from '../src/errors.js';
import { V2Transport, type V2TransportOptions } from '../src/v2/transport.js';
import { decodeContents, contentsPrefix } from '../src/v2/messages.js';
import {
  IndependentV2Peer,
  MAX_CONTENTS,
  PeerError,
  type PeerEvent,
  type PeerFailure,
  type PeerOptions,
  REKEY_INTERVAL,
  ellswiftCreate,
  ellswiftDecode,
  ellswiftEcdhXonly,
  fromBe,
  initializeV2Transport,
  pubX,
  v2Ecdh,
  v2EncPacket,
  xswiftec,
  xswiftecInv,
  decodeType,
  encodeType,
} from './helpers/independent-v2/index.js';
import { col, hexCol, loadCsv } from './helpers/vectors.js';

/** Mainnet magic, as BIP324's packet vectors use it (written out, not taken from src/networks). */
const MAINNET = Buffer.from('f9beb4d9', 'hex');
const hex32 = (v: bigint): string => v.toString(16).padStart(64, '0');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('independent v2 peer: official BIP324 vectors', () => {
  describe('ellswift_decode_test_vectors.csv (xswiftec)', () => {
    const rows = loadCsv('ellswift_decode_test_vectors.csv');
    it('all 76 rows decode to x', () => {
      assert.equal(rows.length, 76);
      for (const [i, row] of rows.entries()) assert.equal(hex32(ellswiftDecode(hexCol(row, 'ellswift'))), col(row, 'x'), `row ${i}: ${col(row, 'comment')}`);
    });
  });

  describe('xswiftec_inv_test_vectors.csv (xswiftec_inv)', () => {
    const rows = loadCsv('xswiftec_inv_test_vectors.csv');
    it('all 32 rows x 8 cases give the exact t or none, and every t decodes back to x', () => {
      assert.equal(rows.length, 32);
      let found = 0;
      for (const [i, row] of rows.entries()) {
        const u = BigInt('0x' + col(row, 'u'));
        const x = BigInt('0x' + col(row, 'x'));
        for (let c = 0; c < 8; c++) {
          const expected = col(row, `case${c}_t`);
          const t = xswiftecInv(x, u, c);
          if (expected === '') {
            assert.equal(t, null, `row ${i} case ${c} must have no solution`);
          } else {
            assert.equal(t === null ? null : hex32(t), expected, `row ${i} case ${c}`);
            assert.equal(xswiftec(u, t!), x, `row ${i} case ${c} decodes back`);
            found++;
          }
        }
      }
      assert.equal(found, 98);
    });
  });

  describe('packet_encoding_test_vectors.csv', () => {
    const rows = loadCsv('packet_encoding_test_vectors.csv');
    it('holds 7 rows', () => assert.equal(rows.length, 7));

    rows.forEach((row, i) => {
      const initiating = col(row, 'in_initiating') === '1';
      const idx = Number(col(row, 'in_idx'));
      const priv = hexCol(row, 'in_priv_ours');
      const ours = hexCol(row, 'in_ellswift_ours');
      const theirs = hexCol(row, 'in_ellswift_theirs');
      const contents = Buffer.concat(new Array<Buffer>(Number(col(row, 'in_multiply'))).fill(hexCol(row, 'in_contents')));
      const aad = hexCol(row, 'in_aad');
      const ignore = col(row, 'in_ignore') === '1';

      describe(`row ${i} (in_idx ${idx}, ${initiating ? 'initiator' : 'responder'}, ${contents.length} bytes)`, () => {
        it('x(priv·G), both decodings, the x-only ECDH and the shared secret', () => {
          assert.equal(hex32(pubX(priv)), col(row, 'mid_x_ours'));
          assert.equal(hex32(ellswiftDecode(ours)), col(row, 'mid_x_ours'));
          assert.equal(hex32(ellswiftDecode(theirs)), col(row, 'mid_x_theirs'));
          assert.equal(hex(ellswiftEcdhXonly(theirs, priv)), col(row, 'mid_x_shared'));
          assert.equal(hex(v2Ecdh(priv, theirs, ours, initiating)), col(row, 'mid_shared_secret'));
        });

        it('the four keys, both terminators and the session id', () => {
          const s = initializeV2Transport(MAINNET, priv, ours, theirs, initiating);
          assert.equal(hex(s.initiatorL), col(row, 'mid_initiator_l'));
          assert.equal(hex(s.initiatorP), col(row, 'mid_initiator_p'));
          assert.equal(hex(s.responderL), col(row, 'mid_responder_l'));
          assert.equal(hex(s.responderP), col(row, 'mid_responder_p'));
          assert.equal(hex(s.sendGarbageTerminator), col(row, 'mid_send_garbage_terminator'));
          assert.equal(hex(s.recvGarbageTerminator), col(row, 'mid_recv_garbage_terminator'));
          assert.equal(hex(s.sessionId), col(row, 'out_session_id'));
        });

        it('the peer in this role sends mid_send_garbage_terminator right after the key exchange and derives out_session_id', () => {
          const garbage = randomBytes(7);
          const peer = new IndependentV2Peer({
            role: initiating ? 'initiator' : 'responder',
            magic: MAINNET,
            key: { privateKey: priv, ellswift: ours },
            garbage,
          });
          const out = sent(peer.start());
          const reply = sent(peer.receive(theirs));
          const all = Buffer.concat([out, reply]);
          assert.equal(hex(all.subarray(0, 64)), hex(ours), 'our key goes first');
          assert.ok(all.subarray(64, 71).equals(garbage), 'then our garbage');
          assert.equal(hex(all.subarray(71, 87)), col(row, 'mid_send_garbage_terminator'));
          assert.equal(hex(peer.state!.sessionId), col(row, 'out_session_id'));
          assert.equal(hex(peer.state!.recvGarbageTerminator), col(row, 'mid_recv_garbage_terminator'));
        });

        it(`the peer's own handshake output carries the vector packet: garbage as AAD on packet 0 only, ${idx} empty decoys first`, () => {
          // Packet in_idx comes out of the handshake itself: in_idx empty decoys (which advance both
          // ciphers exactly like the vector's empty packets), then the vector's contents as the
          // version packet, or as one more decoy when in_ignore is set. Only row in_idx 0 has an AAD:
          // it is the garbage, which must authenticate with the first packet and no other.
          assert.ok(idx === 0 || aad.length === 0);
          const garbage = idx === 0 ? aad : randomBytes(25);
          const decoys = new Array<Uint8Array>(idx).fill(new Uint8Array(0));
          if (ignore) decoys.push(contents);
          const peer = new IndependentV2Peer({
            role: initiating ? 'initiator' : 'responder',
            magic: MAINNET,
            key: { privateKey: priv, ellswift: ours },
            garbage,
            decoys,
            versionContents: ignore ? new Uint8Array(0) : contents,
          });
          const wire = Buffer.concat([sent(peer.start()), sent(peer.receive(theirs))]);
          const at = 64 + garbage.length + 16 + 20 * idx;
          const packet = wire.subarray(at, at + contents.length + 20);
          const full = col(row, 'out_ciphertext');
          const tail = col(row, 'out_ciphertext_endswith');
          if (full !== '') assert.equal(hex(packet), full);
          else assert.equal(hex(packet.subarray(packet.length - tail.length / 2)), tail);
          assert.equal(wire.length, at + contents.length + 20 + (ignore ? 20 : 0), 'then only the version packet, if the vector packet was a decoy');
        });

        it(`encrypts packet ${idx} (after ${idx} empty packets) to the expected wire bytes, and the other side decrypts it`, () => {
          const s = initializeV2Transport(MAINNET, priv, ours, theirs, initiating);
          for (let k = 0; k < idx; k++) v2EncPacket(s, new Uint8Array(0));
          const packet = v2EncPacket(s, contents, aad, ignore);
          const full = col(row, 'out_ciphertext');
          const tail = col(row, 'out_ciphertext_endswith');
          if (full !== '') assert.equal(hex(packet), full);
          else assert.equal(hex(packet.subarray(packet.length - tail.length / 2)), tail);

          // The receiving side: the same keys seen from the other role, driven by hand.
          const rx = initializeV2Transport(MAINNET, priv, ours, theirs, initiating);
          const [recvL, recvP] = [rx.sendL, rx.sendP];
          for (let k = 0; k < idx; k++) {
            recvL.crypt(new Uint8Array(3));
            recvP.encrypt(new Uint8Array(0), new Uint8Array(1));
          }
          const lenBytes = recvL.crypt(packet.subarray(0, 3));
          assert.equal(lenBytes[0] | (lenBytes[1] << 8) | (lenBytes[2] << 16), contents.length);
          const plaintext = recvP.decrypt(aad, packet.subarray(3));
          assert.equal(plaintext[0], ignore ? 0x80 : 0x00);
          assert.ok(Buffer.from(plaintext.subarray(1)).equals(contents));
        });
      });
    });
  });

  it('ellswift_create: fresh encodings of a key decode to x(priv·G) and two keys agree on the ECDH secret', () => {
    for (let k = 0; k < 8; k++) {
      const a = ellswiftCreate();
      const b = ellswiftCreate();
      assert.equal(ellswiftDecode(a.ellswift), pubX(a.privateKey));
      assert.equal(
        ellswiftDecode(a.ellswift),
        BigInt('0x' + Buffer.from(secp256k1.getPublicKey(a.privateKey, true)).subarray(1).toString('hex')),
        'noble agrees on the public key',
      );
      assert.equal(hex(v2Ecdh(a.privateKey, b.ellswift, a.ellswift, true)), hex(v2Ecdh(b.privateKey, a.ellswift, b.ellswift, false)));
      assert.notEqual(hex(a.ellswift), hex(b.ellswift));
    }
  });

  it('message types: the BIP324 short ids and the 12-byte long form', () => {
    assert.deepEqual([...encodeType('addr')], [1]);
    assert.deepEqual([...encodeType('ping')], [18]);
    assert.deepEqual([...encodeType('addrv2')], [28]);
    assert.equal(hex(encodeType('version')), '0076657273696f6e0000000000');
    assert.deepEqual(decodeType(Uint8Array.of(10, 9)), { command: 'getblocktxn', payload: Uint8Array.of(9) });
    assert.equal(decodeType(Buffer.from('00676574626c6f636b74786e0009', 'hex')).command, 'getblocktxn');
    assert.throws(() => decodeType(Uint8Array.of(29)));
    assert.throws(() => decodeType(new Uint8Array(0)));
    assert.throws(() => decodeType(Buffer.from('0076657200736900000000000000', 'hex')), 'a byte after the first NUL');
  });
});

// ---------------------------------------------------------------------------------------------
// Cross-check with our own V2Transport, in memory.

type Endpoint = IndependentV2Peer | V2Transport;
type AnyEvent = PeerEvent;

function sent(events: readonly AnyEvent[]): Buffer {
  return Buffer.concat(events.flatMap((e) => (e.type === 'send' ? [e.data] : [])));
}

function contentsOf(events: readonly AnyEvent[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'message' ? [e.contents] : []));
}

/** Deliver bytes in pieces of random sizes (1..max), collecting the events. */
function deliver(to: Endpoint, bytes: Buffer, max = 1 << 16): AnyEvent[] {
  const events: AnyEvent[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(Math.random() * max));
    events.push(...to.receive(bytes.subarray(at, at + n)));
    at += n;
  }
  return events;
}

interface Pair {
  ini: Endpoint;
  res: Endpoint;
  /** Events seen by each side during the handshake, in order. */
  iniEvents: AnyEvent[];
  resEvents: AnyEvent[];
}

/** A full handshake between the two, bytes delivered in random pieces of at most `max`. */
function handshake(ini: Endpoint, res: Endpoint, max = 1 << 16): Pair {
  const iniEvents: AnyEvent[] = [];
  const resEvents: AnyEvent[] = [];
  res.start();
  let toRes: Buffer = sent(ini.start());
  let toIni: Buffer = Buffer.alloc(0);
  for (let rounds = 0; toRes.length > 0 || toIni.length > 0; rounds++) {
    assert.ok(rounds < 10, 'handshake does not converge');
    const r = deliver(res, toRes, max);
    resEvents.push(...r);
    const i = deliver(ini, toIni, max);
    iniEvents.push(...i);
    toIni = sent(r);
    toRes = sent(i);
  }
  return { ini, res, iniEvents, resEvents };
}

function ours(role: 'initiator' | 'responder', options: Partial<V2TransportOptions> = {}): V2Transport {
  return new V2Transport({ role, magic: MAINNET, ...options });
}

function theirs(role: 'initiator' | 'responder', options: Partial<PeerOptions> = {}): IndependentV2Peer {
  return new IndependentV2Peer({ role, magic: MAINNET, ...options });
}

function failsWith(fn: () => unknown, reason: PeerFailure): void {
  assert.throws(fn, (err: unknown) => err instanceof PeerError && err.reason === reason, `expected the independent peer to fail with ${reason}`);
}

function oursFailsWith(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => isProxyError(err, code), `expected our transport to fail with ${code}`);
}

const readyOf = (events: readonly AnyEvent[]): Buffer | undefined => {
  const e = events.find((ev) => ev.type === 'ready');
  return e?.type === 'ready' ? e.sessionId : undefined;
};

/** Send `count` application packets from `from` to `to` (with decoys every `decoyEvery`), check every one arrives in order. */
function stream(from: Endpoint, to: Endpoint, count: number, decoyEvery = 0, size = (k: number) => k % 50): void {
  const expected: Buffer[] = [];
  const wire: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    if (decoyEvery > 0 && k % decoyEvery === 0) wire.push(from.encrypt([randomBytes(k % 7)], true));
    const c = randomBytes(size(k) + 1);
    expected.push(c);
    wire.push(from.encrypt([c]));
  }
  const got = contentsOf(deliver(to, Buffer.concat(wire), 4096));
  assert.equal(got.length, count);
  got.forEach((c, k) => assert.ok(c.equals(expected[k]), `packet ${k} differs`));
}

const DIRECTIONS = [
  {
    name: 'our initiator -> independent responder',
    make: (io: Partial<V2TransportOptions> & Partial<PeerOptions> = {}, ro: Partial<V2TransportOptions> & Partial<PeerOptions> = {}) => ({
      ini: ours('initiator', io) as Endpoint,
      res: theirs('responder', ro) as Endpoint,
    }),
  },
  {
    name: 'independent initiator -> our responder',
    make: (io: Partial<V2TransportOptions> & Partial<PeerOptions> = {}, ro: Partial<V2TransportOptions> & Partial<PeerOptions> = {}) => ({
      ini: theirs('initiator', io) as Endpoint,
      res: ours('responder', ro) as Endpoint,
    }),
  },
] as const;

describe('independent v2 peer <-> our V2Transport, in memory', function () {
  this.timeout(120_000);

  for (const dir of DIRECTIONS) {
    describe(dir.name, () => {
      it('handshake with random garbage on both sides: both ready with the same session id', () => {
        for (let k = 0; k < 5; k++) {
          const { ini, res } = dir.make();
          const h = handshake(ini, res);
          const a = readyOf(h.iniEvents);
          const b = readyOf(h.resEvents);
          assert.ok(a !== undefined && b !== undefined, 'both sides ready');
          assert.ok(a.equals(b), 'same session id');
        }
      });

      for (const [gi, gr] of [
        [0, 0],
        [4095, 4095],
        [1, 4095],
        [4095, 0],
      ] as const) {
        it(`garbage of ${gi} and ${gr} bytes, delivered one byte at a time`, () => {
          const { ini, res } = dir.make({ garbage: randomBytes(gi) }, { garbage: randomBytes(gr) });
          const h = handshake(ini, res, 1);
          assert.ok(readyOf(h.iniEvents)?.equals(readyOf(h.resEvents)!));
          stream(ini, res, 3);
          stream(res, ini, 3);
          if (ini instanceof IndependentV2Peer) assert.equal(ini.receivedGarbage?.length, gr);
          if (res instanceof IndependentV2Peer) assert.equal(res.receivedGarbage?.length, gi);
        });
      }

      it('decoys before the version packet on both sides (the first one carries the garbage as AAD), non-empty version contents ignored', () => {
        const decoys = Array.from({ length: 10 }, (_, n) => randomBytes(1 + n * 11));
        const iniVersion = Buffer.from('future feature');
        const resVersion = randomBytes(200);
        const { ini, res } = dir.make(
          { garbage: randomBytes(33), decoys, versionContents: iniVersion },
          { garbage: randomBytes(44), decoys: decoys.slice(0, 3), versionContents: resVersion },
        );
        const h = handshake(ini, res, 7);
        assert.ok(readyOf(h.iniEvents)?.equals(readyOf(h.resEvents)!));
        assert.deepEqual(contentsOf([...h.iniEvents, ...h.resEvents]), [], 'version contents never surface');
        if (ini instanceof IndependentV2Peer) {
          assert.equal(ini.decoysReceived, 3);
          assert.ok(Buffer.from(ini.receivedVersionContents!).equals(resVersion));
        }
        if (res instanceof IndependentV2Peer) {
          assert.equal(res.decoysReceived, 10);
          assert.ok(Buffer.from(res.receivedVersionContents!).equals(iniVersion));
        }
        stream(ini, res, 5);
        stream(res, ini, 5);
      });

      it(`rekeys in step: ${5 * REKEY_INTERVAL + 17} packets each way with decoys in between, random splits`, () => {
        const { ini, res } = dir.make();
        handshake(ini, res);
        stream(ini, res, 5 * REKEY_INTERVAL + 17, 3);
        stream(res, ini, 5 * REKEY_INTERVAL + 17, 5);
        // and interleaved: a few hundred more in alternation
        for (let k = 0; k < 4; k++) {
          stream(ini, res, 150, 4);
          stream(res, ini, 150, 2);
        }
      });

      it('packets of 4,000,013 bytes of contents (the limit) both ways, and one byte more is refused by the receiver', () => {
        const { ini, res } = dir.make();
        handshake(ini, res);
        const big = randomBytes(MAX_CONTENTS);
        assert.equal(MAX_CONTENTS, 4_000_013);
        for (const [from, to] of [
          [ini, res],
          [res, ini],
        ] as const) {
          const got = contentsOf(deliver(to, from.encrypt([big.subarray(0, 1_000_000), big.subarray(1_000_000)]), 1 << 20));
          assert.equal(got.length, 1);
          assert.ok(got[0].equals(big));
        }
        const tooBig = ini.encrypt([Buffer.alloc(MAX_CONTENTS + 1)]);
        if (res instanceof IndependentV2Peer) failsWith(() => res.receive(tooBig.subarray(0, 3)), 'too-large');
        else oursFailsWith(() => res.receive(tooBig.subarray(0, 3)), 'ERR_V2_TOO_LARGE');
      });

      it('a flipped bit anywhere in a packet is refused by the receiver', () => {
        for (const pos of [0, 3, 4, 10, -1]) {
          const { ini, res } = dir.make();
          handshake(ini, res);
          const pkt = Buffer.from(ini.encrypt([Buffer.from('payload bytes')]));
          pkt[pos < 0 ? pkt.length + pos : pos] ^= 0x04;
          if (res instanceof IndependentV2Peer) {
            assert.throws(
              () => res.receive(pkt),
              (e: unknown) => e instanceof PeerError && (e.reason === 'bad-tag' || e.reason === 'too-large'),
            );
          } else {
            assert.throws(
              () => res.receive(pkt),
              (e: unknown) => isProxyError(e, 'ERR_V2_BAD_TAG') || isProxyError(e, 'ERR_V2_TOO_LARGE'),
            );
          }
        }
      });

      it('4095 bytes of garbage pass, 4096 are refused (no terminator within 4095 + 16 bytes)', () => {
        for (const len of [4095, 4096]) {
          const { ini, res } = dir.make({ garbage: randomBytes(len) });
          res.start();
          const head = sent(ini.start());
          const tail = sent(ini.receive(sent(res.receive(head))));
          if (len === 4095) assert.ok(readyOf(res.receive(tail)));
          else if (res instanceof IndependentV2Peer) failsWith(() => res.receive(tail), 'no-terminator');
          else oursFailsWith(() => res.receive(tail), 'ERR_V2_NO_TERMINATOR');
        }
      });

      it('garbage changed in transit fails the first packet, even when that packet is a decoy', () => {
        for (const decoys of [[], [Buffer.alloc(5)]]) {
          const { ini, res } = dir.make({ garbage: randomBytes(20), decoys });
          res.start();
          const head = Buffer.from(sent(ini.start()));
          head[70] ^= 0x01;
          const tail = sent(ini.receive(sent(res.receive(head))));
          if (res instanceof IndependentV2Peer) failsWith(() => res.receive(tail), 'bad-tag');
          else oursFailsWith(() => res.receive(tail), 'ERR_V2_BAD_TAG');
        }
      });

      it('application messages: the short ids and the long form of one side are read the same by the other', () => {
        const { ini, res } = dir.make();
        handshake(ini, res);
        const cases = [
          ['ping', randomBytes(8)],
          ['version', randomBytes(100)],
          ['addrv2', randomBytes(3)],
          ['sendaddrv2', Buffer.alloc(0)],
          ['cfcheckpt', randomBytes(2)],
        ] as const;
        for (const [from, to] of [
          [ini, res],
          [res, ini],
        ] as const) {
          const independentSends = from instanceof IndependentV2Peer;
          const wire = Buffer.concat(cases.map(([c, p]) => from.encrypt([independentSends ? encodeType(c) : contentsPrefix(c), p])));
          const got = contentsOf(to.receive(wire)).map((c) => (independentSends ? decodeContents(c) : decodeType(c)));
          assert.deepEqual(
            got.map((m) => [m.command, hex(m.payload)]),
            cases.map(([c, p]) => [c, hex(p)]),
          );
        }
      });
    });
  }

  describe('the independent responder detects v1 like Bitcoin Core', () => {
    const prefix = Buffer.concat([MAINNET, Buffer.from('version'), Buffer.alloc(5)]);
    const version = Buffer.concat([prefix, Buffer.from('66000000', 'hex'), randomBytes(4), randomBytes(102)]);

    it('a whole v1 VERSION, in one chunk or byte by byte, comes back as v1 bytes and nothing is sent', () => {
      assert.deepEqual(theirs('responder').receive(version), [{ type: 'v1', data: version }]);
      const r = theirs('responder');
      for (let k = 0; k < 15; k++) assert.deepEqual(r.receive(version.subarray(k, k + 1)), []);
      assert.deepEqual(r.receive(version.subarray(15, 20)), [{ type: 'v1', data: version.subarray(0, 20) }]);
      failsWith(() => r.receive(Buffer.of(1)), 'bad-state');
    });

    it('a v1 VERSION of another network is refused at byte 16, after the key was sent at the first differing byte', () => {
      const r = theirs('responder');
      const testnet = Buffer.concat([Buffer.from('0b110907', 'hex'), prefix.subarray(4)]);
      assert.equal(sent(r.receive(testnet.subarray(0, 1))).length >= 64, true);
      assert.deepEqual(r.receive(testnet.subarray(1, 15)), []);
      failsWith(() => r.receive(testnet.subarray(15, 16)), 'v1-wrong-network');
    });

    it('our initiator reaches it over v2 even when our key starts with 15 bytes of the v1 prefix', () => {
      // u is free in ElligatorSwift: pick one that starts with the prefix and solve for t.
      const head = Buffer.concat([prefix.subarray(0, 15), Buffer.of(0x01)]);
      const privateKey = secp256k1.utils.randomSecretKey();
      const x = pubX(privateKey);
      let ellswift: Buffer | undefined;
      while (ellswift === undefined) {
        const uBytes = Buffer.concat([head, randomBytes(16)]);
        const t = xswiftecInv(x, fromBe(uBytes), randomBytes(1)[0] & 7);
        if (t !== null) ellswift = Buffer.concat([uBytes, Buffer.from(hex32(t), 'hex')]);
      }
      const h = handshake(ours('initiator', { key: { privateKey, ellswift } }), theirs('responder'), 1);
      assert.ok(readyOf(h.iniEvents)?.equals(readyOf(h.resEvents)!));
    });
  });
});
