/**
 * When a v2 attempt fails, may we reconnect with v1?
 *
 * Bitcoin Core's rule (net.cpp V2Transport::ShouldReconnectV1) says when a remote looks like a
 * v1-only peer: only an outbound connection whose remote closed, reset or stayed silent before
 * sending a single byte. A remote that sent anything spoke v2 (or garbage): falling back after a
 * crypto failure would hand any on-path attacker a downgrade.
 *
 * But a reset before the first byte is also exactly what an on-path attacker can produce at will.
 * So the downgrade guard (--downgrade-guard) decides what happens then:
 * - off: fall back, always (Core's behaviour);
 * - known (the default): fall back, unless the peer is known to speak v2 (v2-peers.ts): then refuse,
 *   and the client retries later, getting v2 once the path is clean;
 * - all (--v2-only): never fall back.
 */
import type { V2PeerEntry } from './v2-peers.js';

export type DowngradeGuard = 'off' | 'known' | 'all';
export const DOWNGRADE_GUARDS: readonly DowngradeGuard[] = ['off', 'known', 'all'];

/** How the remote went away during the handshake. */
export interface RemoteGone {
  how: 'closed' | 'reset' | 'silent';
  detail: string;
}

/**
 * 'none': not a v1-only peer (the caller closes as usual); 'fallback': reconnect with v1;
 * 'refuse': it looks like a v1-only peer but the policy forbids plaintext to anyone (ERR_V2_ONLY);
 * 'downgrade': it looks like a v1-only peer but is known to speak v2 (ERR_V2_DOWNGRADE).
 */
export type FallbackDecision = 'none' | 'fallback' | 'refuse' | 'downgrade';

export function fallbackDecision(f: {
  initiator: boolean;
  handshaking: boolean;
  bytesReceived: number;
  guard: DowngradeGuard;
  known: V2PeerEntry | undefined;
}): FallbackDecision {
  if (!f.initiator || !f.handshaking || f.bytesReceived > 0) return 'none';
  if (f.guard === 'all') return 'refuse';
  if (f.guard === 'known' && f.known !== undefined) return 'downgrade';
  return 'fallback';
}

/** Why we believe a peer speaks v2, for the log line that refuses its downgrade. */
export function describeEvidence(e: V2PeerEntry, now: number = Date.now()): string {
  const ago = `${Math.max(0, Math.round((now - e.seen) / 60_000))} min ago`;
  switch (e.source) {
    case 'session':
      return `we completed a v2 handshake with it ${ago}`;
    case 'version':
      return `its own VERSION advertised NODE_P2P_V2 ${ago}`;
    case 'gossip':
      return `${e.from} announced it with NODE_P2P_V2 ${ago}`;
  }
}
