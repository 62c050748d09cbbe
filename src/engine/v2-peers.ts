/**
 * Which peers are known to speak BIP324, like a browser's HSTS list: the downgrade guard
 * (fallback.ts) refuses to fall back to plaintext v1 for them, since for such a peer a v2 attempt
 * that dies before its first byte is far more likely an on-path attacker than a v1-only node.
 *
 * Evidence, strongest first, each with how long it is trusted:
 * - 'session': we completed a v2 handshake with it (7 days);
 * - 'version': after a fallback, its own v1 VERSION advertised NODE_P2P_V2 (7 days);
 * - 'gossip': another peer announced it with NODE_P2P_V2 in addr/addrv2 (24 hours). Any peer can
 *   gossip false bits, and a false entry makes the proxy refuse plaintext to a v1-only peer, so
 *   hearsay is trusted for a day only, and never shortens or replaces first-hand evidence.
 *
 * Bounded: at most MAX_V2_PEERS entries, least recently noted evicted first; expired entries are
 * dropped when looked up. Optionally kept in a file (--v2-peers-file): written atomically (a temporary
 * file renamed over it), read with validation and a size limit; a file that fails is ignored with
 * a clear error and replaced at the next save, and the proxy starts without it.
 */
import { readFileSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { canonicalIP, formatHostPort, makeDestination } from '../address.js';

export type V2Evidence = 'session' | 'version' | 'gossip';

export interface V2PeerEntry {
  source: V2Evidence;
  /** When it was last seen (ms since the epoch). */
  seen: number;
  expires: number;
  /** Who told us: the peer that gossiped it, or the peer itself. */
  from: string;
}

export const MAX_V2_PEERS = 16_384;
export const FIRST_HAND_TTL_MS = 7 * 24 * 3600_000;
export const GOSSIP_TTL_MS = 24 * 3600_000;
/** A full table is about 1.5 MB as JSON; anything much larger is not ours. */
export const MAX_V2_PEERS_FILE_BYTES = 4 * 1024 * 1024;
const FILE_FORMAT = 'bip324-proxy v2 peers 1';

/**
 * The key a destination is known under: "host:port" with the host as a SOCKS client would ask
 * for it (canonicalIP: IPv4 dotted, IPv4-mapped IPv6 as that IPv4, other IPv6 in canonical RFC 5952
 * form; names lower-case without a trailing dot).
 */
export function peerKey(host: string, port: number): string {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return formatHostPort({ host: canonicalIP(h) ?? h.toLowerCase().replace(/\.$/, ''), port });
}

export class V2PeerTable {
  /** Insertion order is recency order: noting an entry moves it to the end. */
  private readonly entries = new Map<string, V2PeerEntry>();
  private changed = false;
  /** The last save queued: the next one starts when it has settled. */
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly max: number = MAX_V2_PEERS,
    private readonly now: () => number = () => Date.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Whether there is something to save. */
  get dirty(): boolean {
    return this.changed;
  }

  /** Record evidence that host:port speaks v2. */
  note(host: string, port: number, source: V2Evidence, from: string): void {
    const key = peerKey(host, port);
    const t = this.now();
    const old = this.entries.get(key);
    if (source === 'gossip' && old !== undefined && old.source !== 'gossip' && old.expires > t) return;
    this.entries.delete(key);
    this.entries.set(key, { source, seen: t, expires: t + (source === 'gossip' ? GOSSIP_TTL_MS : FIRST_HAND_TTL_MS), from });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
    this.changed = true;
  }

  /** What we know of host:port, if anything still valid. */
  lookup(host: string, port: number): V2PeerEntry | undefined {
    const key = peerKey(host, port);
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      this.changed = true;
      return undefined;
    }
    return e;
  }

  /** First-hand evidence that host:port does not (or no longer) speak v2: its VERSION without the bit. */
  forget(host: string, port: number): void {
    if (this.entries.delete(peerKey(host, port))) this.changed = true;
  }

  /** The table as the file holds it. */
  serialize(): string {
    const t = this.now();
    const peers = [...this.entries].filter(([, e]) => e.expires > t).map(([peer, e]) => ({ peer, ...e }));
    return `${JSON.stringify({ format: FILE_FORMAT, peers })}\n`;
  }

  /** Replace the table with a file's content. Throws Error with the reason when it is not a valid file. */
  load(text: string): number {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new Error(`not JSON (${(err as Error).message})`, { cause: err });
    }
    const d = doc as { format?: unknown; peers?: unknown };
    if (d === null || typeof d !== 'object' || d.format !== FILE_FORMAT || !Array.isArray(d.peers)) {
      throw new Error(`not a "${FILE_FORMAT}" file`);
    }
    if (d.peers.length > this.max) throw new Error(`${d.peers.length} entries, more than the ${this.max} the table holds`);
    const t = this.now();
    const valid: [string, V2PeerEntry][] = [];
    d.peers.forEach((raw: unknown, i: number) => {
      const e = raw as Partial<V2PeerEntry> & { peer?: unknown };
      const where = `entry ${i + 1}`;
      if (e === null || typeof e !== 'object' || typeof e.peer !== 'string') throw new Error(`${where}: no peer`);
      const colon = e.peer.lastIndexOf(':');
      const port = Number(e.peer.slice(colon + 1));
      try {
        makeDestination(e.peer.slice(0, colon), port);
      } catch {
        throw new Error(`${where}: ${JSON.stringify(e.peer.slice(0, 80))} is not host:port`);
      }
      if (e.source !== 'session' && e.source !== 'version' && e.source !== 'gossip') throw new Error(`${where}: unknown source`);
      const ttl = e.source === 'gossip' ? GOSSIP_TTL_MS : FIRST_HAND_TTL_MS;
      if (typeof e.seen !== 'number' || typeof e.expires !== 'number' || !(e.expires <= e.seen + ttl) || e.seen > t + 60_000) {
        throw new Error(`${where}: times out of range`);
      }
      if (typeof e.from !== 'string' || e.from.length > 300) throw new Error(`${where}: bad "from"`);
      if (e.expires > t) valid.push([peerKey(e.peer.slice(0, colon), port), { source: e.source, seen: e.seen, expires: e.expires, from: e.from }]);
    });
    this.entries.clear();
    valid.sort((a, b) => a[1].seen - b[1].seen);
    // A peer listed twice (a hand-edited file) is kept once, as last seen.
    for (const [k, v] of valid) {
      this.entries.delete(k);
      this.entries.set(k, v);
    }
    this.changed = false;
    return this.entries.size;
  }

  /** Read a peers file. Throws Error naming the file and the reason; a missing file is an empty table. */
  loadFile(file: string): number {
    let size: number;
    try {
      size = statSync(file).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw new Error(`${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    if (size > MAX_V2_PEERS_FILE_BYTES) throw new Error(`${file}: ${size} bytes, more than the ${MAX_V2_PEERS_FILE_BYTES} a peers file may have`);
    try {
      return this.load(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Write the table to `file` atomically: a reader sees the old file or the new one, never half of one.
   * Saves take turns (a timed save may still be writing when the one at shutdown starts, and both use
   * the same temporary file): each writes the table as it is when its turn comes, and resolves once
   * written. With `onlyIfDirty`, a turn that finds nothing changed since the last save writes nothing.
   */
  saveFile(file: string, onlyIfDirty = false): Promise<void> {
    const turn = this.saving.then(() => (onlyIfDirty && !this.changed ? undefined : this.write(file)));
    this.saving = turn.catch(() => undefined);
    return turn;
  }

  private async write(file: string): Promise<void> {
    const text = this.serialize();
    this.changed = false;
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      this.changed = true;
      throw err;
    }
  }
}
