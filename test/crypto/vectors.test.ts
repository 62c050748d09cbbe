/**
 * Every row of the three official BIP324 vector files (test/vectors/README.md says what each column means).
 */
import { strict as assert } from 'node:assert';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { isProxyError } from '../../src/errors.js';
import { networkByName } from '../../src/networks.js';
import { ellswiftDecode, ellswiftFromPrivate, v2SharedSecret, xOnlyEcdh, xswiftecInv } from '../../src/crypto/ellswift.js';
import { deriveSessionKeys, type SessionKeys } from '../../src/crypto/keys.js';
import { MAX_WIRE_CONTENTS, PacketDecryptor, PacketEncryptor } from '../../src/crypto/packet.js';
import { col, hexCol, loadCsv, type CsvRow } from '../helpers/vectors.js';

const MAINNET_MAGIC = networkByName('main')!.magic;

const hex32 = (v: bigint): string => v.toString(16).padStart(64, '0');
const be32 = (v: bigint): Buffer => Buffer.from(hex32(v), 'hex');

describe('BIP324 official test vectors', () => {
  describe('packet_encoding_test_vectors.csv', () => {
    const rows = loadCsv('packet_encoding_test_vectors.csv');

    it('holds the 7 rows the README lists', () => {
      assert.equal(rows.length, 7);
    });

    interface Sent {
      keys: SessionKeys;
      dummies: Buffer[];
      packet: Buffer;
      contents: Buffer;
      aad: Buffer;
      ignore: boolean;
    }
    const sentCache = new Map<number, Sent>();
    after(() => sentCache.clear());

    function deriveKeys(row: CsvRow): SessionKeys {
      const secret = v2SharedSecret(
        hexCol(row, 'in_priv_ours'),
        hexCol(row, 'in_ellswift_theirs'),
        hexCol(row, 'in_ellswift_ours'),
        col(row, 'in_initiating') === '1',
      );
      return deriveSessionKeys(secret, MAINNET_MAGIC, col(row, 'in_initiating') === '1');
    }

    /** Runs the sender side once per row: in_idx empty dummies, then the packet under test. */
    function send(i: number, row: CsvRow): Sent {
      const cached = sentCache.get(i);
      if (cached) return cached;
      const keys = deriveKeys(row);
      const enc = new PacketEncryptor(keys.sendL, keys.sendP);
      const dummies: Buffer[] = [];
      for (let k = 0; k < Number(col(row, 'in_idx')); k++) dummies.push(enc.encrypt([]));
      const piece = hexCol(row, 'in_contents');
      const multiply = Number(col(row, 'in_multiply'));
      // The large rows go in as in_multiply separate pieces, so the multi-part AEAD path is what the
      // vectors check; the concatenation is only for comparing the decrypted contents.
      const parts: Buffer[] = new Array<Buffer>(multiply).fill(piece);
      const aad = hexCol(row, 'in_aad');
      const ignore = col(row, 'in_ignore') === '1';
      const packet = enc.encrypt(parts, { aad, ignore });
      const sent = { keys, dummies, packet, contents: Buffer.concat(parts), aad, ignore };
      sentCache.set(i, sent);
      return sent;
    }

    rows.forEach((row, i) => {
      const role = col(row, 'in_initiating') === '1' ? 'initiator' : 'responder';
      const size = hexCol(row, 'in_contents').length * Number(col(row, 'in_multiply'));
      describe(`row ${i} (in_idx ${col(row, 'in_idx')}, ${role}, ${size} bytes of contents)`, () => {
        it('x(priv·G) and the decoding of in_ellswift_ours both equal mid_x_ours', () => {
          const priv = hexCol(row, 'in_priv_ours');
          assert.equal(Buffer.from(secp256k1.getPublicKey(priv, true)).subarray(1).toString('hex'), col(row, 'mid_x_ours'));
          assert.equal(ellswiftDecode(hexCol(row, 'in_ellswift_ours')).toString('hex'), col(row, 'mid_x_ours'));
          // A fresh random encoding of the same key must decode to the same x.
          assert.equal(ellswiftDecode(ellswiftFromPrivate(priv).ellswift).toString('hex'), col(row, 'mid_x_ours'));
        });

        it('decodes in_ellswift_theirs to mid_x_theirs and the x-only ECDH gives mid_x_shared', () => {
          assert.equal(ellswiftDecode(hexCol(row, 'in_ellswift_theirs')).toString('hex'), col(row, 'mid_x_theirs'));
          const xShared = xOnlyEcdh(hexCol(row, 'in_priv_ours'), hexCol(row, 'in_ellswift_theirs'));
          assert.equal(xShared.toString('hex'), col(row, 'mid_x_shared'));
        });

        it('hashes the wire encodings initiator first into mid_shared_secret', () => {
          const secret = v2SharedSecret(hexCol(row, 'in_priv_ours'), hexCol(row, 'in_ellswift_theirs'), hexCol(row, 'in_ellswift_ours'), role === 'initiator');
          assert.equal(secret.toString('hex'), col(row, 'mid_shared_secret'));
        });

        it('derives the four role keys, both garbage terminators and the session id', () => {
          const keys = deriveKeys(row);
          assert.equal(keys.initiatorL.toString('hex'), col(row, 'mid_initiator_l'));
          assert.equal(keys.initiatorP.toString('hex'), col(row, 'mid_initiator_p'));
          assert.equal(keys.responderL.toString('hex'), col(row, 'mid_responder_l'));
          assert.equal(keys.responderP.toString('hex'), col(row, 'mid_responder_p'));
          assert.equal(keys.sendTerminator.toString('hex'), col(row, 'mid_send_garbage_terminator'));
          assert.equal(keys.recvTerminator.toString('hex'), col(row, 'mid_recv_garbage_terminator'));
          assert.equal(keys.sessionId.toString('hex'), col(row, 'out_session_id'));
          const [sendL, sendP] = role === 'initiator' ? [keys.initiatorL, keys.initiatorP] : [keys.responderL, keys.responderP];
          assert.ok(keys.sendL.equals(sendL) && keys.sendP.equals(sendP));
        });

        it('encrypts packet number in_idx to the expected wire bytes', () => {
          const { packet } = send(i, row);
          assert.equal(packet.length, size + 20);
          const full = col(row, 'out_ciphertext');
          const tail = col(row, 'out_ciphertext_endswith');
          assert.ok((full === '') !== (tail === ''), 'exactly one expected-output column is set');
          if (full !== '') assert.equal(packet.toString('hex'), full);
          if (tail !== '') assert.equal(packet.subarray(packet.length - tail.length / 2).toString('hex'), tail);
        });

        it('is decrypted by the peer (length, ignore bit, contents) and a flipped tag bit is rejected', () => {
          const sent = send(i, row);
          // The peer derives its receive keys from the same secret with the other role.
          const secret = v2SharedSecret(hexCol(row, 'in_priv_ours'), hexCol(row, 'in_ellswift_theirs'), hexCol(row, 'in_ellswift_ours'), role === 'initiator');
          const peer = deriveSessionKeys(secret, MAINNET_MAGIC, role !== 'initiator');
          assert.ok(peer.recvL.equals(sent.keys.sendL) && peer.recvP.equals(sent.keys.sendP));
          assert.ok(peer.recvTerminator.equals(sent.keys.sendTerminator));
          const rx = new PacketDecryptor(peer.recvL, peer.recvP, MAX_WIRE_CONTENTS);
          for (const d of sent.dummies) {
            assert.equal(rx.decryptLength(d.subarray(0, 3)), 0);
            const out = rx.decrypt(d.subarray(3));
            assert.equal(out.ignore, false);
            assert.equal(out.contents.length, 0);
          }
          assert.equal(rx.decryptLength(sent.packet.subarray(0, 3)), size);
          const body = sent.packet.subarray(3);
          const tampered = Buffer.from(body);
          tampered[tampered.length - 1] ^= 0x01;
          assert.throws(
            () => rx.decrypt(tampered, sent.aad),
            (e: unknown) => isProxyError(e, 'ERR_V2_BAD_TAG'),
          );
          if (sent.aad.length > 0) {
            assert.throws(
              () => rx.decrypt(body),
              (e: unknown) => isProxyError(e, 'ERR_V2_BAD_TAG'),
            );
          }
          const out = rx.decrypt(body, sent.aad);
          assert.equal(out.ignore, sent.ignore);
          assert.ok(out.contents.equals(sent.contents));
        });
      });
    });
  });

  describe('xswiftec_inv_test_vectors.csv', () => {
    const rows = loadCsv('xswiftec_inv_test_vectors.csv');

    it('holds 32 rows, 98 of the 256 (row, case) pairs with a t', () => {
      assert.equal(rows.length, 32);
      let nonEmpty = 0;
      for (const row of rows) for (let c = 0; c < 8; c++) if (col(row, `case${c}_t`) !== '') nonEmpty++;
      assert.equal(nonEmpty, 98);
    });

    rows.forEach((row, i) => {
      for (let c = 0; c < 8; c++) {
        const expected = col(row, `case${c}_t`);
        const what = expected === '' ? 'has no solution' : 'gives the exact t, which decodes back to x';
        it(`row ${i} case ${c} ${what}`, () => {
          const u = BigInt('0x' + col(row, 'u'));
          const x = BigInt('0x' + col(row, 'x'));
          const t = xswiftecInv(x, u, c);
          if (expected === '') {
            assert.equal(t, null);
          } else {
            assert.notEqual(t, null);
            assert.equal(hex32(t!), expected);
            assert.equal(ellswiftDecode(Buffer.concat([be32(u), be32(t!)])).toString('hex'), col(row, 'x'));
          }
        });
      }
    });
  });

  describe('ellswift_decode_test_vectors.csv', () => {
    const rows = loadCsv('ellswift_decode_test_vectors.csv');

    it('holds 76 rows', () => {
      assert.equal(rows.length, 76);
    });

    rows.forEach((row, i) => {
      it(`row ${i} decodes to x (${col(row, 'comment')})`, () => {
        assert.equal(ellswiftDecode(hexCol(row, 'ellswift')).toString('hex'), col(row, 'x'));
      });
    });
  });
});
