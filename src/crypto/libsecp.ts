/**
 * libsecp256k1 as WebAssembly (the tiny-secp256k1 package), for ellswift.ts's two scalar
 * multiplications, with what the package leaves behind cleaned up after each call:
 *
 * - The package zeroes its input and output buffers in WebAssembly memory, but not the stack that
 *   libsecp256k1's C code ran on, which keeps limbs of the scalar and of the product until a later
 *   call overwrites them (found by scanning the daemon's memory). So after each call the top
 *   STACK_WIPE bytes of the WebAssembly stack are zeroed. The stack's top is the initial value of
 *   the module's stack pointer, read from the .wasm file's global section; the memory is the
 *   package's own (its loader module, imported by URL, is the same module instance).
 * - Results come back as arrays of up to 65 bytes, which V8 keeps inside its own heap; taking
 *   `.buffer` of one would copy the bytes out and leave the original behind. The ECDH's x is copied
 *   byte by byte into a buffer of its own outside that heap, and the product is zeroed.
 *
 * Null where any of this cannot be set up (no WebAssembly under `node --jitless`, a package
 * laid out differently): the caller then uses OpenSSL.
 */
import { readFileSync } from 'node:fs';

/** Bytes below the stack's top zeroed after each call: libsecp256k1's two calls here use about 9 KiB. */
export const STACK_WIPE = 32 * 1024;

export interface Libsecp {
  /** x of d·G, 32 bytes (public). */
  baseMulX(privateKey: Uint8Array): Buffer;
  /** x of d·P for P = 02 ‖ x, 32 bytes in a buffer of its own, the only copy left. */
  mulX(compressedPoint: Uint8Array, privateKey: Uint8Array): Buffer;
  /** The WebAssembly stack's top STACK_WIPE bytes (what is zeroed after each call); for the tests. */
  stack(): Uint8Array;
}

/** Reads an unsigned LEB128 at `at`: [value, next offset]. */
function uleb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, at];
    shift += 7;
  }
}

/**
 * The initial value of the first global a module defines: LLVM's `__stack_pointer`, where the
 * stack starts (it grows down). Undefined when the module does not look like that.
 */
export function stackTopOf(wasm: Uint8Array): number | undefined {
  let at = 8; // magic and version
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = uleb(wasm, at + 1);
    if (id === 6) {
      const [count, first] = uleb(wasm, body);
      // i32, mutable, init `i32.const N; end` (N below 2^28 fits a four-byte LEB; larger never occurs here)
      if (count < 1 || wasm[first] !== 0x7f || wasm[first + 1] !== 0x01 || wasm[first + 2] !== 0x41) return undefined;
      const [top, end] = uleb(wasm, first + 3);
      return wasm[end] === 0x0b ? top : undefined;
    }
    at = body + size;
  }
  return undefined;
}

const ONE = Uint8Array.from({ length: 32 }, (_, i) => (i === 31 ? 1 : 0));

/**
 * Whether `call` (with public inputs) runs on `region`: it writes into it, near its top, and
 * leaves the rest below as it was. Checked once at load, so that a package whose module is laid out
 * otherwise is not used (zeroing some other part of its memory after each call would break it).
 */
export function runsOn(region: Uint8Array, call: () => unknown): boolean {
  region.fill(0xaa);
  call();
  const deepest = region.findIndex((b) => b !== 0xaa);
  region.fill(0);
  return deepest > region.length / 2;
}

async function load(): Promise<Libsecp | null> {
  try {
    const entry = import.meta.resolve('tiny-secp256k1');
    const tiny = (await import(entry)) as typeof import('tiny-secp256k1');
    const loader = (await import(new URL('./wasm_loader.js', entry).href)) as { default: { memory: WebAssembly.Memory } };
    const memory = loader.default.memory.buffer;
    const top = stackTopOf(readFileSync(new URL('./secp256k1.wasm', entry)));
    if (top === undefined) return null;
    const stack = new Uint8Array(memory, top - STACK_WIPE, STACK_WIPE); // a RangeError if it is not inside the memory
    if (!runsOn(stack, () => tiny.pointFromScalar(ONE, true))) return null;
    return {
      baseMulX(privateKey) {
        try {
          return Buffer.from(tiny.pointFromScalar(privateKey, true)!.subarray(1));
        } finally {
          stack.fill(0);
        }
      },
      mulX(compressedPoint, privateKey) {
        let product: Uint8Array | null = null;
        try {
          product = tiny.pointMultiply(compressedPoint, privateKey, true)!;
          const x = Buffer.from(new ArrayBuffer(32));
          for (let i = 0; i < 32; i++) x[i] = product[i + 1];
          return x;
        } finally {
          product?.fill(0);
          stack.fill(0);
        }
      },
      stack: () => stack,
    };
  } catch {
    return null;
  }
}

export const libsecp: Libsecp | null = await load();
