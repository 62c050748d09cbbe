/**
 * BIP324 key derivation: HKDF-SHA256 with the network magic in the salt.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { NETWORKS } from '../../src/networks.js';
import { deriveSessionKeys, type SessionKeys } from '../../src/crypto/keys.js';

const all = (k: SessionKeys) => [k.initiatorL, k.initiatorP, k.responderL, k.responderP, k.sendTerminator, k.recvTerminator, k.sessionId];

describe('session key derivation', () => {
  const secret = randomBytes(32);
  const magic = NETWORKS[0].magic;

  it('gives the initiator send keys that are the responder receive keys, and the reverse', () => {
    const i = deriveSessionKeys(secret, magic, true);
    const r = deriveSessionKeys(secret, magic, false);
    assert.ok(i.sendL.equals(r.recvL) && i.sendP.equals(r.recvP));
    assert.ok(i.recvL.equals(r.sendL) && i.recvP.equals(r.sendP));
    assert.ok(i.sendL.equals(i.initiatorL) && i.sendP.equals(i.initiatorP));
    assert.ok(r.sendL.equals(r.responderL) && r.sendP.equals(r.responderP));
    assert.ok(i.sendTerminator.equals(r.recvTerminator) && i.recvTerminator.equals(r.sendTerminator));
    assert.ok(i.sessionId.equals(r.sessionId));
  });

  it('derives distinct values for every label, with 32-byte keys and 16-byte terminators', () => {
    const k = deriveSessionKeys(secret, magic, true);
    for (const key of [k.initiatorL, k.initiatorP, k.responderL, k.responderP, k.sessionId]) assert.equal(key.length, 32);
    assert.equal(k.sendTerminator.length, 16);
    assert.equal(k.recvTerminator.length, 16);
    assert.equal(new Set(all(k).map((b) => b.toString('hex'))).size, 7);
  });

  it('derives entirely different keys for a different network magic, for every pair of known networks', () => {
    for (const a of NETWORKS) {
      for (const b of NETWORKS) {
        if (a === b) continue;
        const ka = all(deriveSessionKeys(secret, a.magic, true));
        const kb = all(deriveSessionKeys(secret, b.magic, true));
        ka.forEach((v, j) => assert.ok(!v.equals(kb[j]), `${a.name} vs ${b.name}, output ${j}`));
      }
    }
  });

  it('is deterministic for the same secret and magic', () => {
    const a = all(deriveSessionKeys(secret, magic, false));
    const b = all(deriveSessionKeys(Buffer.from(secret), Buffer.from(magic), false));
    a.forEach((v, j) => assert.ok(v.equals(b[j])));
  });

  it('rejects a magic that is not 4 bytes and a secret that is not 32 bytes', () => {
    assert.throws(() => deriveSessionKeys(secret, Buffer.alloc(3), true), RangeError);
    assert.throws(() => deriveSessionKeys(Buffer.alloc(31), magic, true), RangeError);
  });
});
