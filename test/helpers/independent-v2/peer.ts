/**
 * An independent BIP324 v2 endpoint for the tests, written from the BIP's "Transport layer
 * specification" and the shape of its reference code (initialize_v2_transport,
 * initiate_v2_handshake, respond_v2_handshake, complete_handshake, v2_enc_packet,
 * v2_receive_packet). It shares no code with src/: its role is to catch a handshake or packet
 * mistake that our V2Transport would otherwise make the same way on both ends of every test.
 *
 * The BIP writes the handshake as straight-line code around a blocking receive(peer, n). This
 * keeps that shape: the protocol is a generator that yields how many bytes it needs next, and
 * push() feeds it whatever arrived. It is slow and copies freely; it is meant to be easy to check
 * against the BIP, line by line.
 */
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { FSChaCha20, FSChaCha20Poly1305 } from './ciphers.js';
import { type EllswiftKeyPair, ellswiftCreate, v2Ecdh } from './ellswift.js';

export const MAX_GARBAGE_LEN = 4095;
export const GARBAGE_TERMINATOR_LEN = 16;
export const LENGTH_FIELD_LEN = 3;
export const HEADER_LEN = 1;
export const IGNORE_BIT_POS = 7;
export const CHACHA20POLY1305_EXPANSION = 16;
/** Bitcoin Core's receive limit: the v1 payload cap plus the longest message type encoding. */
export const MAX_CONTENTS = 1 + 12 + 4_000_000;
const VERSION_CMD = concatBytes(utf8ToBytes('version'), new Uint8Array(5));
const EMPTY = new Uint8Array(0);

export type Role = 'initiator' | 'responder';

/** Why the peer disconnected: stable strings for the tests to assert. */
export type PeerFailure = 'no-terminator' | 'bad-tag' | 'too-large' | 'v1-wrong-network' | 'bad-state';

export class PeerError extends Error {
  constructor(
    readonly reason: PeerFailure,
    message: string,
  ) {
    super(`independent-v2: ${reason}: ${message}`);
  }
}

export interface SessionState {
  /** The raw HKDF outputs, kept for the vector tests. */
  initiatorL: Uint8Array;
  initiatorP: Uint8Array;
  responderL: Uint8Array;
  responderP: Uint8Array;
  sessionId: Uint8Array;
  sendGarbageTerminator: Uint8Array;
  recvGarbageTerminator: Uint8Array;
  sendL: FSChaCha20;
  sendP: FSChaCha20Poly1305;
  recvL: FSChaCha20;
  recvP: FSChaCha20Poly1305;
}

/** initialize_v2_transport: ECDH, HKDF with salt "bitcoin_v2_shared_secret" || magic, the six outputs. */
export function initializeV2Transport(
  magic: Uint8Array,
  privkeyOurs: Uint8Array,
  ellswiftOurs: Uint8Array,
  ellswiftTheirs: Uint8Array,
  initiating: boolean,
): SessionState {
  const ecdhSecret = v2Ecdh(privkeyOurs, ellswiftTheirs, ellswiftOurs, initiating);
  const prk = extract(sha256, ecdhSecret, concatBytes(utf8ToBytes('bitcoin_v2_shared_secret'), magic));
  const out = (info: string): Uint8Array => expand(sha256, prk, utf8ToBytes(info), 32);
  const initiatorL = out('initiator_L');
  const initiatorP = out('initiator_P');
  const responderL = out('responder_L');
  const responderP = out('responder_P');
  const garbageTerminators = out('garbage_terminators');
  const sessionId = out('session_id');
  const first = garbageTerminators.subarray(0, GARBAGE_TERMINATOR_LEN);
  const second = garbageTerminators.subarray(GARBAGE_TERMINATOR_LEN);
  return {
    initiatorL,
    initiatorP,
    responderL,
    responderP,
    sessionId,
    sendGarbageTerminator: initiating ? first : second,
    recvGarbageTerminator: initiating ? second : first,
    sendL: new FSChaCha20(initiating ? initiatorL : responderL),
    sendP: new FSChaCha20Poly1305(initiating ? initiatorP : responderP),
    recvL: new FSChaCha20(initiating ? responderL : initiatorL),
    recvP: new FSChaCha20Poly1305(initiating ? responderP : initiatorP),
  };
}

/** v2_enc_packet: LE24 length under L, then header || contents under P with this AAD. */
export function v2EncPacket(s: Pick<SessionState, 'sendL' | 'sendP'>, contents: Uint8Array, aad: Uint8Array = EMPTY, ignore = false): Uint8Array {
  if (contents.length > 2 ** 24 - 1) throw new RangeError('contents too long for the 3-byte length');
  const header = Uint8Array.of(ignore ? 1 << IGNORE_BIT_POS : 0);
  const plaintext = concatBytes(header, contents);
  const aeadCiphertext = s.sendP.encrypt(aad, plaintext);
  const len = contents.length;
  const encContentsLen = s.sendL.crypt(Uint8Array.of(len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff));
  return concatBytes(encContentsLen, aeadCiphertext);
}

export interface PeerOptions {
  role: Role;
  /** The network magic: HKDF salt and, for a responder, the v1 prefix it detects. */
  magic: Uint8Array;
  /** Default: random bytes of a random length 0..4095. Any length is sent as given (to misbehave). */
  garbage?: Uint8Array;
  /** Contents of decoy packets sent after the terminator, before the version packet. */
  decoys?: readonly Uint8Array[];
  /** Default empty, as the BIP specifies for now. */
  versionContents?: Uint8Array;
  /** Receive limit on a packet's contents. Default 4,000,013. */
  maxContents?: number;
  /** Default: ellswift_create(). */
  key?: EllswiftKeyPair;
  /** Decoy contents to send just before application packet number n (0-based), e.g. to interleave decoys. */
  appDecoys?: (n: number) => readonly Uint8Array[];
  /** Responder: disconnect a v1 VERSION of another network (bytes 4..15 of the key), as Bitcoin Core does. Default true. */
  rejectForeignV1?: boolean;
  /** Told of every packet decrypted, decoy or not, in the order they arrive (tests of where decoys are placed). */
  onPacket?: (decoy: boolean) => void;
}

export type PeerEvent =
  { type: 'send'; data: Buffer } | { type: 'v1'; data: Buffer } | { type: 'ready'; sessionId: Buffer } | { type: 'message'; contents: Buffer };

/** The protocol as straight-line code: `yield n` is the BIP's receive(peer, n). */
type Protocol = Generator<number, void, Uint8Array>;

export class IndependentV2Peer {
  readonly role: Role;
  private readonly magic: Uint8Array;
  private readonly v1Prefix: Uint8Array;
  private readonly sentGarbage: Uint8Array;
  private readonly decoys: readonly Uint8Array[];
  private readonly versionContents: Uint8Array;
  private readonly maxContents: number;
  private readonly appDecoys: ((n: number) => readonly Uint8Array[]) | undefined;
  private readonly rejectForeignV1: boolean;
  private readonly onPacket: ((decoy: boolean) => void) | undefined;
  private key: EllswiftKeyPair | undefined;
  private session: SessionState | undefined;
  private started = false;
  private handshakeSent = false;
  private failure: PeerError | undefined;
  private v1 = false;
  private appSent = 0;

  /** Bytes received but not yet handed to the protocol. */
  private inbox: Uint8Array[] = [];
  private inboxLen = 0;
  private protocol: Protocol | undefined;
  private want = 0;
  private events: PeerEvent[] = [];

  /** What the peer sent: kept for tests to inspect. */
  receivedGarbage: Uint8Array | undefined;
  receivedVersionContents: Uint8Array | undefined;
  decoysReceived = 0;
  /** Wire bytes of the decoys received (length field, header, contents, tag). */
  decoyBytesReceived = 0;
  packetsReceived = 0;
  sessionId: Buffer | undefined;

  constructor(options: PeerOptions) {
    if (options.magic.length !== 4) throw new RangeError('magic must be 4 bytes');
    this.role = options.role;
    this.magic = Uint8Array.from(options.magic);
    this.v1Prefix = concatBytes(this.magic, VERSION_CMD);
    this.sentGarbage = options.garbage ?? randomGarbage();
    this.decoys = options.decoys ?? [];
    this.versionContents = options.versionContents ?? EMPTY;
    this.maxContents = options.maxContents ?? MAX_CONTENTS;
    this.appDecoys = options.appDecoys;
    this.rejectForeignV1 = options.rejectForeignV1 ?? true;
    this.onPacket = options.onPacket;
    this.key = options.key;
  }

  /** initiate_v2_handshake for an initiator (sends key || garbage at once); nothing for a responder. */
  start(): PeerEvent[] {
    if (this.started) throw new PeerError('bad-state', 'start() called twice');
    this.started = true;
    this.protocol = this.role === 'initiator' ? this.initiator() : this.responder();
    return this.run();
  }

  /** Feed received bytes; returns what to send and what arrived. Throws PeerError on a protocol violation. */
  receive(chunk: Uint8Array): PeerEvent[] {
    if (this.failure !== undefined) throw new PeerError('bad-state', `used after ${this.failure.reason}`);
    if (this.v1) throw new PeerError('bad-state', 'receive() after the v1 fallback');
    if (!this.started) {
      if (this.role === 'initiator') throw new PeerError('bad-state', 'receive() before start() on an initiator');
      this.start();
    }
    if (chunk.length > 0) {
      this.inbox.push(Uint8Array.from(chunk));
      this.inboxLen += chunk.length;
    }
    return this.run();
  }

  /** True once our terminator and version packet went out, so application packets may follow. */
  get canSend(): boolean {
    return this.handshakeSent && this.failure === undefined;
  }

  get garbage(): Uint8Array {
    return this.sentGarbage;
  }

  /** The derived secrets (for vector tests); undefined before the peer's key arrived. */
  get state(): SessionState | undefined {
    return this.session;
  }

  /** An application packet (pieces concatenated), preceded by any decoys appDecoys asks for. */
  encrypt(pieces: readonly Uint8Array[], ignore = false): Buffer {
    const s = this.sendState();
    const out: Uint8Array[] = [];
    if (!ignore) for (const d of this.appDecoys?.(this.appSent++) ?? []) out.push(v2EncPacket(s, d, EMPTY, true));
    out.push(v2EncPacket(s, concatBytes(...pieces), EMPTY, ignore));
    return Buffer.from(concatBytes(...out));
  }

  /** A decoy packet (header 0x80) with these contents. */
  decoy(contents: Uint8Array): Buffer {
    return Buffer.from(v2EncPacket(this.sendState(), contents, EMPTY, true));
  }

  private sendState(): SessionState {
    if (!this.canSend || this.session === undefined) throw new PeerError('bad-state', 'cannot send before the handshake allows it');
    return this.session;
  }

  /** Start or resume the protocol while enough bytes are buffered for what it waits for. */
  private run(): PeerEvent[] {
    const protocol = this.protocol!;
    try {
      if (this.want === 0) this.step(protocol.next(EMPTY));
      while (this.want > 0 && this.inboxLen >= this.want) this.step(protocol.next(this.take(this.want)));
    } catch (err) {
      this.failure = err instanceof PeerError ? err : new PeerError('bad-state', (err as Error).message);
      this.session = undefined;
      throw this.failure;
    }
    return this.events.splice(0);
  }

  private step(r: IteratorResult<number, void>): void {
    this.want = r.done ? -1 : r.value;
  }

  /** The first n buffered bytes (a copy), touching only the chunks they come from. */
  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const head = this.inbox[0];
      const k = Math.min(head.length, n - got);
      out.set(head.subarray(0, k), got);
      got += k;
      if (k === head.length) this.inbox.shift();
      else this.inbox[0] = head.subarray(k);
    }
    this.inboxLen -= n;
    return out;
  }

  private emitSend(data: Uint8Array): void {
    this.events.push({ type: 'send', data: Buffer.from(data) });
  }

  private *initiator(): Protocol {
    // initiate_v2_handshake
    this.key ??= ellswiftCreate();
    this.emitSend(concatBytes(this.key.ellswift, this.sentGarbage));
    yield* this.completeHandshake(EMPTY);
  }

  private *responder(): Protocol {
    // respond_v2_handshake: compare byte by byte with magic || "version" || 00x5; v2 at the first difference.
    let receivedPrefix = EMPTY;
    while (receivedPrefix.length < this.v1Prefix.length) {
      const byte = yield 1;
      receivedPrefix = concatBytes(receivedPrefix, byte);
      if (receivedPrefix[receivedPrefix.length - 1] !== this.v1Prefix[receivedPrefix.length - 1]) {
        this.key ??= ellswiftCreate();
        this.emitSend(concatBytes(this.key.ellswift, this.sentGarbage));
        yield* this.completeHandshake(receivedPrefix);
        return;
      }
    }
    // use_v1_protocol(): all 16 bytes matched; they and anything after them belong to a v1 parser.
    this.v1 = true;
    const rest = this.take(this.inboxLen);
    this.events.push({ type: 'v1', data: Buffer.from(concatBytes(receivedPrefix, rest)) });
  }

  private *completeHandshake(receivedPrefix: Uint8Array): Protocol {
    const key = this.key!;
    const initiating = this.role === 'initiator';
    let ellswiftTheirs = receivedPrefix;
    if (!initiating && this.rejectForeignV1) {
      // A v1 VERSION of another network: the command field shows it at byte 16, as Core checks it.
      ellswiftTheirs = concatBytes(ellswiftTheirs, yield 16 - ellswiftTheirs.length);
      if (equal(ellswiftTheirs.subarray(4, 16), VERSION_CMD)) throw new PeerError('v1-wrong-network', 'a v1 VERSION with another network magic');
    }
    ellswiftTheirs = concatBytes(ellswiftTheirs, yield 64 - ellswiftTheirs.length);
    const s = initializeV2Transport(this.magic, key.privateKey, key.ellswift, ellswiftTheirs, initiating);
    this.session = s;
    // Send the terminator, the decoys and the version packet; the first packet carries our garbage as AAD.
    const out: Uint8Array[] = [s.sendGarbageTerminator];
    this.decoys.forEach((d, i) => out.push(v2EncPacket(s, d, i === 0 ? this.sentGarbage : EMPTY, true)));
    out.push(v2EncPacket(s, this.versionContents, this.decoys.length === 0 ? this.sentGarbage : EMPTY));
    this.emitSend(concatBytes(...out));
    this.handshakeSent = true;

    // Receive, then drop, the garbage: the terminator must end within 4095 + 16 bytes.
    let receivedGarbage = yield GARBAGE_TERMINATOR_LEN;
    while (!equal(receivedGarbage.subarray(-GARBAGE_TERMINATOR_LEN), s.recvGarbageTerminator)) {
      if (receivedGarbage.length >= MAX_GARBAGE_LEN + GARBAGE_TERMINATOR_LEN) {
        throw new PeerError('no-terminator', `no terminator in ${receivedGarbage.length} bytes`);
      }
      receivedGarbage = concatBytes(receivedGarbage, yield 1);
    }
    this.receivedGarbage = receivedGarbage.subarray(0, -GARBAGE_TERMINATOR_LEN);

    // The version packet: skip decoys; only the first packet decrypted uses the garbage as AAD.
    let aad = this.receivedGarbage;
    for (;;) {
      const contents = yield* this.v2ReceivePacket(aad);
      aad = EMPTY;
      if (contents !== undefined) {
        this.receivedVersionContents = contents; // ignored, as the BIP requires
        break;
      }
    }
    this.sessionId = Buffer.from(s.sessionId);
    this.events.push({ type: 'ready', sessionId: this.sessionId });
    for (;;) {
      const contents = yield* this.v2ReceivePacket(EMPTY);
      if (contents !== undefined) this.events.push({ type: 'message', contents: Buffer.from(contents) });
    }
  }

  /** v2_receive_packet for one packet: its contents, or undefined for a decoy. */
  private *v2ReceivePacket(aad: Uint8Array): Generator<number, Uint8Array | undefined, Uint8Array> {
    const s = this.session!;
    const lenBytes = s.recvL.crypt(yield LENGTH_FIELD_LEN);
    const contentsLen = lenBytes[0] | (lenBytes[1] << 8) | (lenBytes[2] << 16);
    if (contentsLen > this.maxContents) throw new PeerError('too-large', `packet of ${contentsLen} bytes of contents`);
    const aeadCiphertext = yield HEADER_LEN + contentsLen + CHACHA20POLY1305_EXPANSION;
    let plaintext: Uint8Array;
    try {
      plaintext = s.recvP.decrypt(aad, aeadCiphertext);
    } catch (err) {
      throw new PeerError('bad-tag', (err as Error).message);
    }
    this.packetsReceived++;
    this.onPacket?.((plaintext[0] & (1 << IGNORE_BIT_POS)) !== 0);
    if ((plaintext[0] & (1 << IGNORE_BIT_POS)) !== 0) {
      this.decoysReceived++;
      this.decoyBytesReceived += LENGTH_FIELD_LEN + aeadCiphertext.length;
      return undefined;
    }
    return plaintext.subarray(HEADER_LEN);
  }
}

/** Random bytes of a uniformly random length 0..4095. */
function randomGarbage(): Uint8Array {
  const [hi, lo] = randomBytes(2) as unknown as [number, number];
  return randomBytes(((hi << 8) | lo) & MAX_GARBAGE_LEN);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Options for the end-to-end tests: random garbage (the default), 0..10 decoys of 1..100 random
 * bytes before the version packet (as Bitcoin Core's test framework sends), and a decoy before
 * every third application packet, so the proxy has to skip decoys at every stage.
 */
export function noisyPeerOptions(): Partial<PeerOptions> {
  const small = (): Uint8Array => randomBytes(1 + (randomBytes(1)[0] % 100));
  return {
    decoys: Array.from({ length: randomBytes(1)[0] % 11 }, small),
    appDecoys: (n) => (n % 3 === 1 ? [small()] : []),
  };
}
