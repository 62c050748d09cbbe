/**
 * What src/crypto/libsecp.ts cleans up after tiny-secp256k1: the WebAssembly stack, where
 * libsecp256k1 leaves limbs of the scalar and of the product (found by scanning the daemon's memory
 * for a session's shared x). References: tiny-secp256k1's own calls, made here without the wipe,
 * and literal values.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as tiny from 'tiny-secp256k1';
import { STACK_WIPE, libsecp, runsOn, stackTopOf } from '../../src/crypto/libsecp.js';

const wasmFile = new URL('./secp256k1.wasm', import.meta.resolve('tiny-secp256k1'));

/** A module with one section: `id` and its body. */
const moduleWith = (id: number, body: number[]): Uint8Array => Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0, 0, 0, id, body.length, ...body]);

/** Whether `needle` occurs anywhere in `hay`. */
const holds = (hay: Uint8Array, needle: Uint8Array): boolean => Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(needle) >= 0;

function randomKey(): Buffer {
  let k: Buffer;
  do k = randomBytes(32);
  while (!tiny.isPrivate(k));
  return k;
}

/** A random private key and a random point (compressed). */
const inputs = (): { priv: Buffer; point: Uint8Array } => ({ priv: randomKey(), point: tiny.pointFromScalar(randomKey(), true)! });

describe('libsecp256k1 (tiny-secp256k1) and its WebAssembly stack', () => {
  it('loads here, and finds the stack of the shipped module at 0xA0000', () => {
    assert.notEqual(libsecp, null);
    assert.equal(stackTopOf(readFileSync(wasmFile)), 0xa0000);
  });

  it('reads the first global of a module only when it is a mutable i32 set by i32.const', () => {
    // count 1; i32 (7f), mutable (01), i32.const (41) 1 MiB as LEB128 (80 80 c0 00), end (0b)
    assert.equal(stackTopOf(moduleWith(6, [1, 0x7f, 0x01, 0x41, 0x80, 0x80, 0xc0, 0x00, 0x0b])), 1 << 20);
    assert.equal(stackTopOf(moduleWith(6, [1, 0x7f, 0x01, 0x41, 0x10, 0x0b])), 16);
    assert.equal(stackTopOf(moduleWith(6, [1, 0x7f, 0x00, 0x41, 0x10, 0x0b])), undefined, 'immutable');
    assert.equal(stackTopOf(moduleWith(6, [1, 0x7e, 0x01, 0x42, 0x10, 0x0b])), undefined, 'i64');
    assert.equal(stackTopOf(moduleWith(6, [1, 0x7f, 0x01, 0x23, 0x00, 0x0b])), undefined, 'global.get');
    assert.equal(stackTopOf(moduleWith(6, [1, 0x7f, 0x01, 0x41, 0x10, 0x00])), undefined, 'no end');
    assert.equal(stackTopOf(moduleWith(6, [0])), undefined, 'no globals');
    assert.equal(stackTopOf(moduleWith(1, [0])), undefined, 'no global section');
    // A section before it is skipped by its size.
    const two = Uint8Array.from([...moduleWith(1, [0, 0, 0]), 6, 6, 1, 0x7f, 0x01, 0x41, 0x20, 0x0b]);
    assert.equal(stackTopOf(two), 32);
    // ... also one of 127 bytes, whose size is the one-byte LEB128 0x7f.
    const long = Uint8Array.from([...moduleWith(0, new Array<number>(127).fill(0)), 6, 6, 1, 0x7f, 0x01, 0x41, 0x20, 0x0b]);
    assert.equal(stackTopOf(long), 32);
  });

  it("the region it wipes is the live stack: unwiped calls leave the key's and the product's limbs there, within it", () => {
    const stack = libsecp!.stack();
    assert.equal(stack.length, STACK_WIPE);
    const { priv, point } = inputs();
    stack.fill(0xaa);
    const product = tiny.pointMultiply(point, priv, true)!;
    const used = STACK_WIPE - stack.findIndex((b) => b !== 0xaa);
    assert.ok(used > 1024 && used < STACK_WIPE / 2, `pointMultiply used ${used} bytes of stack`);
    // Little-endian limbs: the 32 bytes reversed.
    assert.ok(holds(stack, Buffer.from(priv).reverse()), 'the scalar is left on the stack');
    assert.ok(holds(stack, Buffer.from(product.subarray(1)).reverse()), 'x of the product is left on the stack');
    stack.fill(0xaa);
    tiny.pointFromScalar(priv, true);
    assert.ok(holds(stack, Buffer.from(priv).reverse()), 'pointFromScalar leaves the scalar too');
    assert.ok(STACK_WIPE - stack.findIndex((b) => b !== 0xaa) < STACK_WIPE / 2);
  });

  it('is used only if a call with a public key writes into the top half of the region to wipe', () => {
    const stack = libsecp!.stack();
    assert.equal(
      runsOn(stack, () => tiny.pointFromScalar(Buffer.from('00'.repeat(31) + '01', 'hex'), true)),
      true,
    );
    assert.ok(
      stack.every((b) => b === 0),
      'and zeroes it after',
    );
    const elsewhere = new Uint8Array(STACK_WIPE);
    assert.equal(
      runsOn(elsewhere, () => tiny.pointFromScalar(Buffer.from('00'.repeat(31) + '01', 'hex'), true)),
      false,
    );
    // Written deep down only: not a stack whose top this is.
    assert.equal(
      runsOn(elsewhere, () => elsewhere.fill(1, 0, 100)),
      false,
    );
    assert.equal(
      runsOn(elsewhere, () => elsewhere.fill(1, STACK_WIPE - 100)),
      true,
    );
  });

  it('mulX gives x of the product and leaves no trace of the scalar or of x on the stack', () => {
    for (let i = 0; i < 5; i++) {
      const { priv, point } = inputs();
      const stack = libsecp!.stack();
      stack.fill(0xaa);
      const x = libsecp!.mulX(point, priv);
      const expected = Buffer.from(tiny.pointMultiply(point, priv, true)!.subarray(1));
      assert.deepEqual(x, expected);
      // The reference call above left its residue; wipe it to look at mulX's own.
      stack.fill(0xaa);
      libsecp!.mulX(point, priv);
      assert.ok(stack.every((b) => b === 0));
    }
  });

  it('baseMulX gives x of d·G and leaves no trace of the scalar on the stack', () => {
    const { priv } = inputs();
    const stack = libsecp!.stack();
    stack.fill(0xaa);
    const x = libsecp!.baseMulX(priv);
    assert.ok(stack.every((b) => b === 0));
    assert.deepEqual(x, Buffer.from(tiny.pointFromScalar(priv, true)!.subarray(1)));
    // 1·G: the generator's x, a literal.
    assert.equal(
      libsecp!.baseMulX(Buffer.from('00'.repeat(31) + '01', 'hex')).toString('hex'),
      '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
    );
  });
});
