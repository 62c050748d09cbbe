/**
 * A FIFO of received bytes for the push parsers (v1 framing, v2 packets) and the session engine,
 * whose memory stays proportional to the bytes it holds, whatever the read pattern.
 *
 * Every socket read arrives as its own Buffer with its own ArrayBuffer, which costs a few hundred
 * bytes of bookkeeping beyond its contents. A queue that kept each read would let a peer that
 * announces a 4 MB message and sends it one byte per TCP segment make us hold ~400 bytes per byte
 * received, and a handful of such peers would exhaust the heap. So:
 * - a read of MERGE_BELOW bytes or more is kept as it is (bookkeeping under 10% of its size, and
 *   bulk data is never copied on the way in);
 * - a smaller read is kept only while it is the newest one: the next push copies what is left of
 *   it into an owned buffer that later small reads are appended to. That buffer starts at
 *   MIN_TAIL bytes and doubles while small reads keep coming, up to MAX_TAIL.
 * The common case, a read that holds whole messages and is consumed before the next one arrives,
 * is therefore never copied. Memory held is at most twice the bytes queued, plus MIN_TAIL and one
 * small raw read, plus the part already read of the oldest buffer (a read is kept whole until all
 * of it is read): at most one socket read or one merge buffer, 64 KiB. A read into the shared buffer
 * of transient-reads.ts (the sockets the proxy dials directly or accepts) can be up to 512 KiB but is
 * a view of that buffer: what is left of it unread when the parser returns is copied (ownViewsOf),
 * without the part already read.
 *
 * take(n) hands out a view when one buffer holds the n bytes, else one copy of exactly n bytes.
 */

/** Reads at least this large are queued as they are. */
export const MERGE_BELOW = 4096;
/** Size of the first owned buffer small reads are merged into, and the cap it doubles up to. */
const MIN_TAIL = 4096;
const MAX_TAIL = 64 * 1024;

const EMPTY = Buffer.alloc(0);

/** An owned copy of `view`, in memory of its own (never a slice of Node's shared pool, which it would pin). */
export function ownCopy(view: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(view.length);
  out.set(view);
  return out;
}

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** chunks[head] is the oldest buffer still holding unread bytes, from `offset` on. */
  private head = 0;
  private offset = 0;
  private bytes = 0;
  /** The owned buffer small reads are being merged into; its filled part is the last element of chunks. */
  private tail: Buffer | undefined;
  private tailLen = 0;
  /** Whether the last element of chunks is a small raw read, to be merged when the next read comes. */
  private lastIsSmallRaw = false;

  /** Bytes queued and not yet taken. */
  get length(): number {
    return this.bytes;
  }

  /** Buffers held (each costs a few hundred bytes of bookkeeping on top of its contents). */
  get buffers(): number {
    return this.chunks.length - this.head;
  }

  /**
   * Bytes of memory held by the buffers in the queue: the whole ArrayBuffer behind each, spare
   * capacity included (a socket read is its own ArrayBuffer of exactly the bytes read).
   */
  get footprint(): number {
    let n = 0;
    for (let i = this.head; i < this.chunks.length; i++) n += this.chunks[i].buffer.byteLength;
    return n;
  }

  /** Queue `chunk`; the queue keeps a reference to it, so the caller must not modify it afterwards. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.lastIsSmallRaw) this.mergeLast();
    this.bytes += chunk.length;
    this.chunks.push(chunk);
    this.lastIsSmallRaw = chunk.length < MERGE_BELOW;
    if (!this.lastIsSmallRaw) {
      // A large read after the tail ends it: small reads that follow start a new one.
      this.tail = undefined;
      this.tailLen = 0;
    }
  }

  /** The next n bytes (0 < n <= length): a view when one buffer holds them, else one exact copy. */
  take(n: number): Buffer {
    if (n <= 0) return EMPTY;
    if (n > this.bytes) throw new RangeError(`ByteQueue.take(${n}) with ${this.bytes} bytes queued`);
    this.bytes -= n;
    const first = this.chunks[this.head];
    const end = this.offset + n;
    if (end <= first.length) {
      const view = first.subarray(this.offset, end);
      this.offset = end;
      if (end === first.length) this.dropHead();
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head];
      const k = Math.min(c.length - this.offset, n - filled);
      c.copy(out, filled, this.offset, this.offset + k);
      filled += k;
      this.offset += k;
      if (this.offset === c.length) this.dropHead();
    }
    return out;
  }

  /** Discard the next n bytes (0 <= n <= length) without copying them. */
  skip(n: number): void {
    if (n > this.bytes) throw new RangeError(`ByteQueue.skip(${n}) with ${this.bytes} bytes queued`);
    this.bytes -= n;
    let left = n;
    while (left > 0) {
      const c = this.chunks[this.head];
      const k = Math.min(c.length - this.offset, left);
      this.offset += k;
      left -= k;
      if (this.offset === c.length) this.dropHead();
    }
  }

  /** Everything queued, as buffers in order (views; no copy), leaving the queue empty. */
  drain(): Buffer[] {
    const out: Buffer[] = [];
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      out.push(i === this.head && this.offset > 0 ? c.subarray(this.offset) : c);
    }
    this.clear();
    return out;
  }

  /**
   * Replace every queued view into `memory` by an owned copy of its unread bytes: for a read buffer
   * about to be reused (transient-reads.ts). Buffers of other memory are left as they are.
   */
  ownViewsOf(memory: ArrayBufferLike): void {
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      if (c.buffer !== memory) continue;
      this.chunks[i] = ownCopy(i === this.head ? c.subarray(this.offset) : c);
      if (i === this.head) this.offset = 0;
    }
  }

  /** Drop everything. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.bytes = 0;
    this.tail = undefined;
    this.tailLen = 0;
    this.lastIsSmallRaw = false;
  }

  /** Copy the unread part of the newest (small, raw) read into the tail, so the read itself can be freed. */
  private mergeLast(): void {
    this.lastIsSmallRaw = false;
    const last = this.chunks.length - 1;
    const raw = this.chunks.pop()!;
    const rest = last === this.head ? raw.subarray(this.offset) : raw;
    if (last === this.head) this.offset = 0;
    this.bytes -= rest.length;
    this.append(rest);
  }

  /** Append bytes to the owned tail buffer (the last element of chunks), growing it as needed. */
  private append(data: Buffer): void {
    let pos = 0;
    while (pos < data.length) {
      let tail = this.tail;
      if (tail === undefined || !this.tailIsLast() || this.tailLen === tail.length) {
        // Doubling while small reads keep coming keeps the number of buffers logarithmic in the bytes.
        const size = tail === undefined ? MIN_TAIL : Math.min(MAX_TAIL, tail.length * 2);
        // allocUnsafeSlow: never a slice of Node's shared pool, which a long-lived tail would pin.
        tail = Buffer.allocUnsafeSlow(size);
        this.tail = tail;
        this.tailLen = 0;
        this.chunks.push(tail.subarray(0, 0));
      }
      const k = Math.min(tail.length - this.tailLen, data.length - pos);
      data.copy(tail, this.tailLen, pos, pos + k);
      this.tailLen += k;
      pos += k;
      this.bytes += k;
      // The tail's element grows in place: a longer view of the same memory, same start.
      this.chunks[this.chunks.length - 1] = tail.subarray(0, this.tailLen);
    }
  }

  /** Whether the tail is open and its view is the last unread element (it may have been read up meanwhile). */
  private tailIsLast(): boolean {
    const last = this.chunks.length - 1;
    return this.tail !== undefined && last >= this.head && this.chunks[last].buffer === this.tail.buffer;
  }

  private dropHead(): void {
    // Release the consumed buffer now; the slot itself is reclaimed below, amortised.
    this.chunks[this.head] = EMPTY;
    this.offset = 0;
    this.head++;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
      this.tail = undefined;
      this.tailLen = 0;
      this.lastIsSmallRaw = false;
    } else if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}
