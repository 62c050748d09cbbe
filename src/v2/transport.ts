/**
 * The BIP324 v2 transport as a sans-I/O state machine: the handshake for both roles, then the
 * encrypted packet stream. Bytes go in through receive(), events (bytes to send, the v1 fallback,
 * 'ready', application packets) come out; sockets and timers belong to the session engine.
 *
 * Implements BIP324 "Handshake" and "Packet encryption" (packet format, AAD = garbage on the first
 * packet only; initiator and responder steps, v1 prefix detection, the garbage terminator scan),
 * matching Bitcoin Core's
 * V2Transport (net.cpp: ProcessReceivedMaybeV1Bytes, ProcessReceivedKeyBytes,
 * ProcessReceivedGarbageBytes, ProcessReceivedPacketBytes).
 *
 * Phases: detect (responder only, comparing with the v1 VERSION prefix) -> key (the peer's 64-byte
 * ElligatorSwift key) -> garbage (scan for the peer's terminator) -> version (decoys, then the
 * peer's version packet) -> app; or v1 (responder: a v1 peer; the transport is done) / failed.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { ByteQueue, ownCopy } from '../byte-queue.js';
import { ProxyError } from '../errors.js';
import { VERSION_COMMAND_FIELD, v1VersionPrefix } from '../networks.js';
import { ELLSWIFT_LEN, GARBAGE_TERMINATOR_LEN, MAX_GARBAGE_LEN, MAX_V2_CONTENTS, V1_PREFIX_LEN, V2_LENGTH_LEN, V2_TAG_LEN } from '../limits.js';
import { type EllSwiftKey, ellswiftCreate, v2SharedSecret } from '../crypto/ellswift.js';
import { ephemeralKeys } from '../crypto/keypool.js';
import { type SessionKeys, deriveSessionKeys } from '../crypto/keys.js';
import { PacketDecryptor, PacketEncryptor } from '../crypto/packet.js';

export type Role = 'initiator' | 'responder';

export interface V2TransportOptions {
  role: Role;
  /** Network magic: the HKDF salt and the v1 VERSION prefix the responder detects. */
  magic: Uint8Array;
  /**
   * Default: crypto-random bytes, length uniform in 0..4095. Longer garbage is sent as given (tests
   * use it to play a misbehaving peer); a conforming receiver disconnects it.
   */
  garbage?: Uint8Array;
  /** Decoy packet contents sent right after the terminator, before the version packet (tests). */
  decoys?: readonly Uint8Array[];
  /** Default empty, as Bitcoin Core sends. */
  versionContents?: Uint8Array;
  /** Default MAX_V2_CONTENTS. */
  maxContents?: number;
  /** Default: a fresh key from `keyPool`. An injected key belongs to the caller: it is never wiped here. */
  key?: EllSwiftKey;
  /** Where our key comes from when `key` is not given: default the process-wide pool (crypto/keypool.ts). Such a key is ours and is wiped after the ECDH. */
  keyPool?: { take(): EllSwiftKey };
  /**
   * Responder only: the networks (magics) a peer may be on, `magic` among them; default just
   * `magic`. With several, the peer's network is told by which network's garbage terminator it
   * sends (the magic is part of the key derivation), or by a v1 VERSION's magic; our own terminator
   * and version packet then wait for the peer's terminator. That costs the initiator one round trip
   * before its 'ready', but no deadlock: an initiator sends its terminator on our key alone.
   */
  networks?: readonly Uint8Array[];
}

export type V2Event =
  { type: 'send'; data: Buffer } | { type: 'v1'; data: Buffer } | { type: 'ready'; sessionId: Buffer } | { type: 'message'; contents: Buffer };

type Phase = 'detect' | 'key' | 'garbage' | 'version' | 'app' | 'v1' | 'failed';

/** Garbage (at most 4095 bytes) plus the terminator must show up within this many bytes after the key. */
const GARBAGE_SCAN_LIMIT = MAX_GARBAGE_LEN + GARBAGE_TERMINATOR_LEN;

/**
 * Whether the first 16 bytes of what an initiator sends would read as the start of a v1 VERSION
 * message, for `magic` or for any other network. Every v1 VERSION prefix (ours, a network in
 * NETWORKS, a custom signet's) has "version" || 00x5 at bytes 4..15, and Bitcoin Core's responder
 * disconnects on those 12 bytes alone (a v1 peer of another network), so they decide by themselves.
 */
export function startsLikeV1Version(bytes: Uint8Array, magic: Uint8Array): boolean {
  if (bytes.length < V1_PREFIX_LEN) return false;
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, V1_PREFIX_LEN);
  return head.equals(v1VersionPrefix(magic)) || head.subarray(4).equals(VERSION_COMMAND_FIELD);
}

function defaultGarbage(): Buffer {
  // randomInt's upper bound is exclusive: 0..4095 inclusive, as Core's GenerateRandomGarbage.
  return randomBytes(randomInt(MAX_GARBAGE_LEN + 1));
}

export class V2Transport {
  private readonly role: Role;
  /** The network: the only one, or (a responder with several) the one the peer turned out to be on. */
  private magicInUse: Buffer;
  /** Responder: the networks the peer may be on, in order of preference. */
  private readonly candidates: Buffer[];
  /** detect: the first (up to 16) bytes received, compared with each candidate's v1 VERSION prefix. */
  private readonly detectBytes = Buffer.alloc(V1_PREFIX_LEN);
  private readonly maxContents: number;
  private readonly decoys: readonly Uint8Array[];
  private readonly versionContents: Uint8Array;
  private readonly ownsKey: boolean;
  private readonly keyPool: { take(): EllSwiftKey };
  private ourKey: EllSwiftKey | undefined;
  /** Whether ourKey's private key is ours to wipe (an injected key belongs to the caller). */
  private keyOwned = false;
  private readonly ourGarbage: Buffer;

  private phase: Phase;
  private started = false;
  private received = 0;
  private failure: unknown;

  /** detect: the chunks received so far (all fully matching the prefix), for the v1 event. */
  private detectChunks: Buffer[] = [];
  private detected = 0;

  private readonly peerKey = Buffer.alloc(ELLSWIFT_LEN);
  private peerKeyLen = 0;

  /** garbage: a fixed window of what followed the key, searched incrementally for the terminator. */
  private garbageBuf: Buffer | undefined;
  private garbageLen = 0;
  private recvTerminator: Buffer | undefined;
  /** Several candidate networks: each one's keys, until the peer's terminator tells which. */
  private pendingNetworks: { magic: Buffer; keys: SessionKeys }[] | undefined;
  /** The received garbage: the AAD of the first packet we decrypt, then dropped. */
  private firstAad: Buffer | undefined;

  private encryptor: PacketEncryptor | undefined;
  private decryptor: PacketDecryptor | undefined;
  private pendingSessionId: Buffer | undefined;
  private readySessionId: Buffer | undefined;

  /** Packet push parser: received bytes not yet consumed (bounded memory whatever the read pattern). */
  private readonly queue = new ByteQueue();
  /** Decrypted length of the packet whose body we are waiting for; -1 when none (decrypted once). */
  private pendingLen = -1;

  constructor(options: V2TransportOptions) {
    if (options.magic.length !== 4) throw new RangeError('V2Transport: magic must be 4 bytes');
    this.role = options.role;
    this.magicInUse = Buffer.from(options.magic);
    const networks = options.networks ?? [options.magic];
    if (networks.some((m) => m.length !== 4)) throw new RangeError('V2Transport: every network magic must be 4 bytes');
    if (options.role === 'initiator' && networks.length !== 1) throw new RangeError('V2Transport: an initiator knows its network');
    if (networks.length === 0) throw new RangeError('V2Transport: a responder needs at least one network');
    this.candidates = networks.map((m) => Buffer.from(m));
    this.maxContents = options.maxContents ?? MAX_V2_CONTENTS;
    this.decoys = options.decoys ?? [];
    this.versionContents = options.versionContents ?? new Uint8Array(0);
    this.ownsKey = options.key === undefined;
    this.ourKey = options.key;
    this.keyPool = options.keyPool ?? ephemeralKeys;
    this.ourGarbage = options.garbage === undefined ? defaultGarbage() : Buffer.from(options.garbage);
    this.phase = this.role === 'initiator' ? 'key' : 'detect';
  }

  /** Initiator: [{send: key||garbage}] at once. Responder: [] (it waits for the first bytes). Call once. */
  start(): V2Event[] {
    this.checkAlive();
    if (this.started) throw new ProxyError('ERR_V2_BAD_STATE', 'V2Transport.start() called twice');
    this.started = true;
    if (this.role === 'responder') return [];
    // A responder would take such a key for a v1 VERSION (ours or another network's) and fall back
    // or disconnect; the chance is 2^-96, but regenerating costs nothing when it does not happen.
    let key = this.ourKey ?? this.keyPool.take();
    let owned = this.ownsKey;
    while (startsLikeV1Version(key.ellswift, this.magicInUse)) {
      if (owned) key.privateKey.fill(0);
      key = ellswiftCreate();
      owned = true;
    }
    this.ourKey = key;
    this.keyOwned = owned;
    return [{ type: 'send', data: Buffer.concat([key.ellswift, this.ourGarbage]) }];
  }

  /**
   * Feed bytes from the peer; returns events in order. Throws ProxyError (fatal) on a protocol
   * error; after a throw the transport is dead and every later call throws ERR_V2_BAD_STATE (with
   * the original error as `cause`). Events of the same call before the error are lost with it: the
   * connection is closing anyway. Misuse (bytes after the v1 fallback, an initiator fed before
   * start()) throws ERR_V2_BAD_STATE without changing the state. The transport keeps views of
   * `chunk`: the caller must not modify it afterwards. Unless `transient`: `chunk` is then valid
   * during this call only (a view of a shared read buffer, transient-reads.ts), and what is kept
   * past it is copied. Events never refer to `chunk` (their buffers are the transport's own).
   */
  receive(chunk: Buffer, transient = false): V2Event[] {
    this.checkAlive();
    if (this.phase === 'v1') throw new ProxyError('ERR_V2_BAD_STATE', 'V2Transport.receive() after the v1 fallback');
    if (!this.started) {
      // The responder's start() only marks it started; the initiator must have sent its key first.
      if (this.role === 'initiator') {
        throw new ProxyError('ERR_V2_BAD_STATE', 'V2Transport.receive() before start() on an initiator');
      }
      this.started = true;
    }
    const events: V2Event[] = [];
    if (chunk.length === 0) return events;
    this.received += chunk.length;
    try {
      this.feed(chunk, events);
      if (transient) this.ownViewsOf(chunk.buffer);
    } catch (err) {
      this.fail(err);
      throw err;
    }
    return events;
  }

  /** True once we have the peer's key and sent our terminator + version packet. */
  get canSend(): boolean {
    return this.encryptor !== undefined && this.phase !== 'failed';
  }

  /** One application packet (contents as pieces, e.g. [shortId, payload]). Throws ERR_V2_BAD_STATE before canSend. */
  encrypt(contents: readonly Uint8Array[], ignore = false): Buffer {
    this.checkAlive();
    if (this.encryptor === undefined) {
      throw new ProxyError('ERR_V2_BAD_STATE', `V2Transport.encrypt() before the handshake allows it (state ${this.phase})`, {
        fatal: false,
      });
    }
    return this.encryptor.encrypt(contents, { ignore });
  }

  /** encrypt(), as pieces to write in order (large packets are not copied into one buffer). */
  encryptPieces(contents: readonly Uint8Array[], ignore = false): Buffer[] {
    this.checkAlive();
    if (this.encryptor === undefined) {
      throw new ProxyError('ERR_V2_BAD_STATE', `V2Transport.encryptPieces() before the handshake allows it (state ${this.phase})`, {
        fatal: false,
      });
    }
    return this.encryptor.encryptPieces(contents, { ignore });
  }

  /** Set once 'ready' was emitted. */
  get sessionId(): Buffer | undefined {
    return this.readySessionId;
  }

  /** The network magic in use: the only one, or the one the peer turned out to be on (undefined while a responder does not know yet). */
  get magic(): Buffer | undefined {
    return this.candidates.length === 1 || this.phase === 'v1' || this.encryptor !== undefined ? this.magicInUse : undefined;
  }

  /** Whether bytes of a packet not yet complete are held: a stream that ends now was cut short. */
  get midPacket(): boolean {
    return (this.phase === 'version' || this.phase === 'app') && (this.queue.length > 0 || this.pendingLen >= 0);
  }

  get bytesReceived(): number {
    return this.received;
  }

  /** Memory held for received bytes not yet a complete packet (see ByteQueue.footprint). */
  get footprint(): number {
    return this.queue.footprint + (this.garbageBuf?.length ?? 0);
  }

  get state(): string {
    return this.phase;
  }

  private checkAlive(): void {
    if (this.phase === 'failed') {
      const code = this.failure instanceof ProxyError ? this.failure.code : 'an error';
      throw new ProxyError('ERR_V2_BAD_STATE', `V2Transport used after it failed with ${code}`, { cause: this.failure });
    }
  }

  private fail(err: unknown): void {
    this.phase = 'failed';
    this.failure = err;
    this.queue.clear();
    this.detectChunks = [];
    this.garbageBuf = undefined;
    for (const n of this.pendingNetworks ?? []) for (const k of [n.keys.initiatorL, n.keys.initiatorP, n.keys.responderL, n.keys.responderP]) k.fill(0);
    this.pendingNetworks = undefined;
    this.firstAad = undefined;
    this.encryptor = undefined;
    this.decryptor = undefined;
    this.dropOurKey();
  }

  /**
   * What this call keeps of a transient chunk: the bytes of a packet not yet complete (the queue)
   * and, while v1 detection is undecided, the chunks seen so far. The key, the garbage window and the
   * detection prefix are copied as they come in.
   */
  private ownViewsOf(memory: ArrayBufferLike): void {
    this.queue.ownViewsOf(memory);
    // Empty once detection is over: no new array per packet read on the session's hot path.
    if (this.detectChunks.length > 0) this.detectChunks = this.detectChunks.map((c) => (c.buffer === memory ? ownCopy(c) : c));
  }

  private feed(chunk: Buffer, events: V2Event[]): void {
    let rest = chunk;
    if (this.phase === 'detect') {
      const earlier = this.detect(rest, events);
      if (earlier === undefined) return;
      // The bytes that matched the prefix are the start of the peer's key (fewer than 16 of them).
      for (const c of earlier) this.receiveKeyBytes(c, events);
    }
    while (rest.length > 0) {
      switch (this.phase) {
        case 'key':
          rest = this.receiveKeyBytes(rest, events);
          break;
        case 'garbage':
          rest = this.receiveGarbageBytes(rest, events);
          break;
        case 'version':
        case 'app':
          this.queue.push(rest);
          this.receivePackets(events);
          return;
        default:
          throw new ProxyError('ERR_V2_BAD_STATE', `V2Transport cannot take bytes in state ${this.phase}`);
      }
    }
  }

  /**
   * Responder: compare with magic || "version" || 00x5 as Core does, for each network the peer may
   * be on. At the first byte no network's prefix allows, the peer is v2: returns the earlier chunks
   * (which matched, so they start the peer's key; `chunk` itself is then parsed by the caller).
   * Undefined while undecided or after the v1 fallback.
   */
  private detect(chunk: Buffer, events: V2Event[]): Buffer[] | undefined {
    const n = Math.min(V1_PREFIX_LEN - this.detected, chunk.length);
    chunk.copy(this.detectBytes, this.detected, 0, n);
    const seen = this.detectBytes.subarray(0, this.detected + n);
    const matching = this.candidates.find((m) => v1VersionPrefix(m).subarray(0, seen.length).equals(seen));
    if (matching !== undefined) {
      this.detected += n;
      this.detectChunks.push(chunk);
      if (this.detected < V1_PREFIX_LEN) return undefined;
      // Everything received, including bytes past the prefix in this chunk, belongs to the v1 parser.
      const data = Buffer.concat(this.detectChunks);
      this.detectChunks = [];
      this.magicInUse = matching;
      this.phase = 'v1';
      this.dropOurKey();
      events.push({ type: 'v1', data });
      return undefined;
    }
    const earlier = this.detectChunks;
    this.detectChunks = [];
    this.phase = 'key';
    this.sendKeyAndGarbage(events);
    return earlier;
  }

  private sendKeyAndGarbage(events: V2Event[]): void {
    const key = this.ourKey ?? this.keyPool.take();
    this.ourKey = key;
    this.keyOwned = this.ownsKey;
    events.push({ type: 'send', data: Buffer.concat([key.ellswift, this.ourGarbage]) });
  }

  private receiveKeyBytes(chunk: Buffer, events: V2Event[]): Buffer {
    const before = this.peerKeyLen;
    const take = Math.min(ELLSWIFT_LEN - before, chunk.length);
    chunk.copy(this.peerKey, before, 0, take);
    this.peerKeyLen += take;
    if (this.role === 'responder' && before < V1_PREFIX_LEN && this.peerKeyLen >= V1_PREFIX_LEN) {
      // The magic differed (else detect() would have fallen back to v1), but the command field is
      // a v1 VERSION's: a v1 node of another network. Core disconnects it the same way.
      if (this.peerKey.subarray(4, V1_PREFIX_LEN).equals(VERSION_COMMAND_FIELD)) {
        throw new ProxyError(
          'ERR_V1_WRONG_NETWORK',
          `v1 VERSION with magic ${this.peerKey.subarray(0, 4).toString('hex')}, expected ${this.candidates.map((m) => m.toString('hex')).join(' or ')}`,
        );
      }
    }
    if (this.peerKeyLen === ELLSWIFT_LEN) this.onPeerKey(events);
    return chunk.subarray(take);
  }

  /**
   * Derive the keys and send terminator || decoys || version without waiting for the peer (1.5 RTT);
   * a responder with several candidate networks derives each one's keys and sends once the peer's
   * terminator has said which.
   */
  private onPeerKey(events: V2Event[]): void {
    const key = this.ourKey;
    if (key === undefined) throw new ProxyError('ERR_V2_BAD_STATE', 'V2Transport has no key of its own');
    const initiator = this.role === 'initiator';
    const secret = v2SharedSecret(key.privateKey, this.peerKey, key.ellswift, initiator);
    const networks = this.candidates.map((magic) => ({ magic, keys: deriveSessionKeys(secret, magic, initiator) }));
    secret.fill(0);
    this.dropOurKey();
    this.garbageBuf = Buffer.allocUnsafe(GARBAGE_SCAN_LIMIT);
    this.garbageLen = 0;
    this.phase = 'garbage';
    if (networks.length === 1) this.useNetwork(networks[0], events);
    else this.pendingNetworks = networks;
  }

  /** The peer's network is known: set up the ciphers, wipe every other key, send terminator || decoys || version. */
  private useNetwork(chosen: { magic: Buffer; keys: SessionKeys }, events: V2Event[]): void {
    const keys = chosen.keys;
    this.magicInUse = chosen.magic;
    this.encryptor = new PacketEncryptor(keys.sendL, keys.sendP);
    this.decryptor = new PacketDecryptor(keys.recvL, keys.recvP, this.maxContents);
    // The ciphers hold their own copies; BIP324 asks to wipe the derived keys once they exist.
    for (const n of this.pendingNetworks ?? [chosen]) {
      for (const k of [n.keys.initiatorL, n.keys.initiatorP, n.keys.responderL, n.keys.responderP]) k.fill(0);
    }
    this.pendingNetworks = undefined;
    this.recvTerminator = keys.recvTerminator;
    this.pendingSessionId = keys.sessionId;

    const parts: Buffer[] = [keys.sendTerminator];
    // Our garbage authenticates with the first packet after the terminator, decoy or version.
    let aad: Uint8Array | undefined = this.ourGarbage;
    for (const decoy of this.decoys) {
      parts.push(this.encryptor.encrypt([decoy], { aad, ignore: true }));
      aad = undefined;
    }
    parts.push(this.encryptor.encrypt([this.versionContents], { aad }));
    events.push({ type: 'send', data: Buffer.concat(parts) });
  }

  private dropOurKey(): void {
    if (this.ourKey !== undefined && this.keyOwned) this.ourKey.privateKey.fill(0);
    this.ourKey = undefined;
  }

  /**
   * §11a: the terminator must end within 4111 bytes after the key. Only the new bytes plus the 15
   * before them are searched, so a terminator split across chunks is found without rescanning.
   */
  private receiveGarbageBytes(chunk: Buffer, events: V2Event[]): Buffer {
    const buf = this.garbageBuf;
    const terminators = this.pendingNetworks?.map((n) => n.keys.recvTerminator) ?? (this.recvTerminator === undefined ? [] : [this.recvTerminator]);
    if (buf === undefined || terminators.length === 0) throw new ProxyError('ERR_V2_BAD_STATE', 'garbage scan without keys');
    const old = this.garbageLen;
    const take = Math.min(GARBAGE_SCAN_LIMIT - old, chunk.length);
    chunk.copy(buf, old, 0, take);
    const filled = old + take;
    const window = buf.subarray(0, filled);
    const from = Math.max(0, old - (GARBAGE_TERMINATOR_LEN - 1));
    let at = -1;
    let which = 0;
    terminators.forEach((term, i) => {
      const found = window.indexOf(term, from);
      if (found >= 0 && (at < 0 || found < at)) {
        at = found;
        which = i;
      }
    });
    if (at >= 0) {
      if (this.pendingNetworks !== undefined) this.useNetwork(this.pendingNetworks[which], events);
      this.firstAad = buf.subarray(0, at);
      this.garbageBuf = undefined;
      this.recvTerminator = undefined;
      this.phase = 'version';
      // Bytes after the terminator in this chunk are packets, parsed right away.
      return chunk.subarray(at + GARBAGE_TERMINATOR_LEN - old);
    }
    this.garbageLen = filled;
    if (filled >= GARBAGE_SCAN_LIMIT) {
      throw new ProxyError('ERR_V2_NO_TERMINATOR', `no garbage terminator within ${GARBAGE_SCAN_LIMIT} bytes after the key`);
    }
    return chunk.subarray(take);
  }

  private receivePackets(events: V2Event[]): void {
    const decryptor = this.decryptor;
    if (decryptor === undefined) throw new ProxyError('ERR_V2_BAD_STATE', 'packets without keys');
    for (;;) {
      if (this.pendingLen < 0) {
        if (this.queue.length < V2_LENGTH_LEN) return;
        // The limit is checked here, before a byte of the body is buffered.
        this.pendingLen = decryptor.decryptLength(this.queue.take(V2_LENGTH_LEN));
      }
      const need = 1 + this.pendingLen + V2_TAG_LEN;
      if (this.queue.length < need) return;
      const body = this.queue.take(need);
      this.pendingLen = -1;
      const aad = this.firstAad;
      const { ignore, contents } = decryptor.decrypt(body, aad);
      this.firstAad = undefined;
      if (ignore) continue;
      if (this.phase === 'version') {
        // Contents ignored: future versions may negotiate features there.
        this.phase = 'app';
        this.readySessionId = this.pendingSessionId;
        this.pendingSessionId = undefined;
        events.push({ type: 'ready', sessionId: this.readySessionId as Buffer });
      } else {
        events.push({ type: 'message', contents });
      }
    }
  }
}
