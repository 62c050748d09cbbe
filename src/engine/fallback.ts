/**
 * When a v2 attempt fails, may we reconnect with v1? Bitcoin Core's rule (net.cpp
 * V2Transport::ShouldReconnectV1): only an outbound connection whose remote closed, reset or
 * stayed silent before sending a single byte is taken for a v1-only peer. A remote that sent
 * anything spoke v2 (or garbage); falling back after a crypto failure would hand any on-path
 * attacker a downgrade.
 */

/** How the remote went away during the handshake. */
export interface RemoteGone {
  how: 'closed' | 'reset' | 'silent';
  detail: string;
}

export type FallbackDecision = 'fallback' | 'refuse' | 'none';

/**
 * 'none': not a v1-only peer (the caller closes as usual); 'fallback': reconnect with v1;
 * 'refuse': it looks like a v1-only peer, but the policy forbids plaintext.
 */
export function fallbackDecision(f: { initiator: boolean; handshaking: boolean; bytesReceived: number; v2Only: boolean }): FallbackDecision {
  if (!f.initiator || !f.handshaking || f.bytesReceived > 0) return 'none';
  return f.v2Only ? 'refuse' : 'fallback';
}
