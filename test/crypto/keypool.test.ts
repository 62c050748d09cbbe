/**
 * The ephemeral key pool (src/crypto/keypool.ts): every key handed out once and never again,
 * refilled in the background up to its size, wiped by V2Transport after the ECDH.
 */
import { strict as assert } from 'node:assert';
import { inspect } from 'node:util';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { type EllSwiftKey, ellswiftCreate, ellswiftDecode } from '../../src/crypto/ellswift.js';
import { DEFAULT_KEY_POOL_SIZE, EphemeralKeyPool, ephemeralKeys } from '../../src/crypto/keypool.js';
import { networkByName } from '../../src/networks.js';
import { V2Transport, type V2Event } from '../../src/v2/transport.js';

const MAGIC = networkByName('main')!.magic;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Lets `n` setImmediate turns run (one pool refill each). */
async function turns(n: number): Promise<void> {
  for (let k = 0; k < n; k++) await new Promise((r) => setImmediate(r));
}

/** A pool whose create() records every key it makes. */
function recordingPool(size: number): { pool: EphemeralKeyPool; made: EllSwiftKey[] } {
  const made: EllSwiftKey[] = [];
  const pool = new EphemeralKeyPool(size, () => {
    const k = ellswiftCreate();
    made.push(k);
    return k;
  });
  return { pool, made };
}

function sent(events: V2Event[]): Buffer {
  return Buffer.concat(events.flatMap((e) => (e.type === 'send' ? [e.data] : [])));
}

describe('EphemeralKeyPool', () => {
  it('hands out every key once: 60 takes through a pool of 8 give 60 distinct keys, each made once', async () => {
    const { pool, made } = recordingPool(8);
    pool.fill();
    await turns(10);
    assert.equal(pool.available, 8);
    const taken: EllSwiftKey[] = [];
    for (let k = 0; k < 60; k++) {
      taken.push(pool.take());
      if (k % 5 === 0) await turns(3); // partial refills in between
    }
    assert.equal(new Set(taken).size, 60, 'the same key object was handed out twice');
    assert.equal(new Set(taken.map((k) => hex(k.privateKey))).size, 60, 'two keys share a private key');
    assert.equal(new Set(taken.map((k) => hex(k.ellswift))).size, 60, 'two keys share an encoding');
    // Each key handed out was made exactly once, and none of them is still in the pool.
    for (const k of taken) assert.equal(made.filter((m) => m === k).length, 1);
    const left = made.filter((m) => !taken.includes(m));
    assert.equal(left.length, pool.available);
    pool.clear();
  });

  it('a key still in the pool is never one already handed out', async () => {
    const { pool } = recordingPool(4);
    pool.fill();
    await turns(6);
    const first = pool.take();
    await turns(6);
    const rest = [pool.take(), pool.take(), pool.take(), pool.take()];
    assert.ok(!rest.includes(first));
    assert.equal(new Set(rest).size, 4);
    pool.clear();
  });

  it('gives valid keys: the encoding decodes to x(priv·G)', async () => {
    const pool = new EphemeralKeyPool(3);
    pool.fill();
    await turns(5);
    for (let k = 0; k < 5; k++) {
      const key = pool.take();
      assert.equal(hex(ellswiftDecode(key.ellswift)), hex(secp256k1.getPublicKey(key.privateKey, true).subarray(1)));
    }
    pool.clear();
  });

  it('refills in the background one key per turn up to its size, and no further', async () => {
    const { pool, made } = recordingPool(5);
    assert.equal(pool.available, 0);
    pool.fill();
    assert.equal(pool.available, 0, 'fill() itself makes nothing on the spot');
    await turns(1);
    assert.equal(pool.available, 1);
    await turns(10);
    assert.equal(pool.available, 5);
    assert.equal(made.length, 5);
    pool.take();
    assert.equal(pool.available, 4);
    await turns(3);
    assert.equal(pool.available, 5);
    assert.equal(made.length, 6);
    pool.clear();
  });

  it('refills while the event loop is otherwise idle (waiting on a timer, no I/O)', async () => {
    let made = 0;
    const pool = new EphemeralKeyPool(3, () => {
      made++;
      return { privateKey: new Uint8Array(32).fill(made), ellswift: Buffer.alloc(64, made) };
    });
    pool.fill();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(pool.available, 3, 'the refill did not run while the loop waited');
    pool.clear();
  });

  it('makes a key on the spot when empty and counts it as a miss', () => {
    const { pool, made } = recordingPool(4);
    const key = pool.take();
    assert.equal(made.length, 1);
    assert.equal(made[0], key);
    assert.equal(pool.misses, 1);
    pool.clear();
  });

  it('size 0 holds nothing: every take makes a fresh key', async () => {
    const { pool, made } = recordingPool(0);
    const a = pool.take();
    const b = pool.take();
    await turns(3);
    assert.notEqual(a, b);
    assert.equal(made.length, 2);
    assert.equal(pool.available, 0);
    assert.throws(() => new EphemeralKeyPool(-1), RangeError);
    assert.throws(() => new EphemeralKeyPool(1.5), RangeError);
  });

  it('leaves nothing scheduled once full: a full pool costs the event loop nothing', async () => {
    const immediates = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length;
    const before = immediates();
    const { pool, made } = recordingPool(3);
    pool.fill();
    assert.equal(immediates(), before + 1, 'fill() schedules one refill');
    await turns(10);
    assert.equal(made.length, 3);
    assert.equal(immediates(), before, 'a refill is still scheduled with the pool full');
    pool.fill();
    assert.equal(immediates(), before, 'fill() on a full pool schedules a refill');
    pool.clear();
  });

  it('clear() wipes the keys it held and stops the refill, even one already scheduled', async () => {
    const { pool, made } = recordingPool(3);
    pool.fill();
    await turns(2);
    assert.equal(made.length, 2, 'two keys made, the third refill scheduled');
    pool.clear();
    assert.equal(pool.available, 0);
    for (const k of made)
      assert.ok(
        k.privateKey.every((b) => b === 0),
        'a held key was not wiped',
      );
    await turns(3);
    assert.equal(made.length, 2, 'refilled after clear()');
    assert.equal(pool.available, 0);
  });

  it('prints its counts only, never a key', async () => {
    const pool = new EphemeralKeyPool(2);
    pool.fill();
    await turns(3);
    const shown = inspect(pool) + JSON.stringify(pool);
    assert.ok(shown.includes('available: 2'), shown);
    assert.ok(!/[0-9a-f]{64}/.test(shown), shown);
    pool.clear();
  });

  it('the process-wide pool has the default size', () => {
    assert.equal(ephemeralKeys.size, DEFAULT_KEY_POOL_SIZE);
    assert.ok(DEFAULT_KEY_POOL_SIZE >= 8 && DEFAULT_KEY_POOL_SIZE <= 32);
  });
});

describe('V2Transport keys from a pool', () => {
  it('each side takes one key from its pool, sends that key, and wipes its private key after the ECDH', async () => {
    const iPool = recordingPool(2);
    const rPool = recordingPool(2);
    iPool.pool.fill();
    rPool.pool.fill();
    await turns(4);
    const i = new V2Transport({ role: 'initiator', magic: MAGIC, keyPool: iPool.pool, garbage: new Uint8Array(0) });
    const r = new V2Transport({ role: 'responder', magic: MAGIC, keyPool: rPool.pool, garbage: new Uint8Array(0) });
    const iHead = sent(i.start());
    assert.equal(iPool.pool.available, 1);
    const iKey = iPool.made.find((k) => k.ellswift.equals(iHead.subarray(0, 64)));
    assert.ok(iKey !== undefined, 'the initiator did not send a key from its pool');
    assert.ok(iKey.privateKey.some((b) => b !== 0));

    r.start();
    assert.equal(rPool.pool.available, 2, 'the responder takes its key only once it sees a v2 peer');
    const rOut = sent(r.receive(iHead));
    assert.equal(rPool.pool.available, 1);
    const rKey = rPool.made.find((k) => k.ellswift.equals(rOut.subarray(0, 64)));
    assert.ok(rKey !== undefined, 'the responder did not send a key from its pool');
    assert.ok(
      rKey.privateKey.every((b) => b === 0),
      'responder key not wiped after its ECDH',
    );

    const iEvents = i.receive(rOut);
    assert.ok(iEvents.some((e) => e.type === 'ready'));
    assert.ok(
      iKey.privateKey.every((b) => b === 0),
      'initiator key not wiped after its ECDH',
    );
    assert.ok(r.receive(sent(iEvents)).some((e) => e.type === 'ready'));
    iPool.pool.clear();
    rPool.pool.clear();
  });

  it('by default takes from the process-wide pool', async () => {
    ephemeralKeys.fill();
    await turns(DEFAULT_KEY_POOL_SIZE + 2);
    const before = ephemeralKeys.available;
    assert.equal(before, DEFAULT_KEY_POOL_SIZE);
    new V2Transport({ role: 'initiator', magic: MAGIC }).start();
    assert.equal(ephemeralKeys.available, before - 1);
  });
});
