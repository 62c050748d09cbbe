/**
 * When a failed v2 attempt may become a v1 connection (src/engine/fallback.ts), as a table: Bitcoin
 * Core's rule (an outbound remote gone before its first byte) under each --downgrade-guard; the
 * evidence line of a refused downgrade; and the two ends a connection's log lines name (record.ts).
 */
import assert from 'node:assert/strict';
import { describeEvidence, fallbackDecision, type DowngradeGuard, DOWNGRADE_GUARDS } from '../../src/engine/fallback.js';
import { endpoints, newRecord } from '../../src/engine/record.js';
import type { V2PeerEntry } from '../../src/engine/v2-peers.js';

const known: V2PeerEntry = { source: 'session', seen: 0, expires: 1, from: 'itself' };

describe('fallbackDecision', () => {
  const looksV1 = { initiator: true, handshaking: true, bytesReceived: 0 };
  const table: [string, Parameters<typeof fallbackDecision>[0], string][] = [
    ['an outbound remote gone before its first byte, guard off', { ...looksV1, guard: 'off', known: undefined }, 'fallback'],
    ['the same, known to speak v2, guard off (Core never refuses)', { ...looksV1, guard: 'off', known }, 'fallback'],
    ['the same, not known, guard known', { ...looksV1, guard: 'known', known: undefined }, 'fallback'],
    ['the same, known to speak v2, guard known', { ...looksV1, guard: 'known', known }, 'downgrade'],
    ['the same, not known, guard all (--v2-only)', { ...looksV1, guard: 'all', known: undefined }, 'refuse'],
    ['the same, known, guard all', { ...looksV1, guard: 'all', known }, 'refuse'],
    ['a remote that sent one byte', { ...looksV1, bytesReceived: 1, guard: 'off', known: undefined }, 'none'],
    ['a remote that sent one byte, guard all', { ...looksV1, bytesReceived: 1, guard: 'all', known: undefined }, 'none'],
    ['an inbound connection (we are the responder)', { ...looksV1, initiator: false, guard: 'off', known: undefined }, 'none'],
    ['a session already up (the handshake was over)', { ...looksV1, handshaking: false, guard: 'off', known: undefined }, 'none'],
    ['a session already up, guard all', { ...looksV1, handshaking: false, guard: 'all', known }, 'none'],
  ];
  for (const [what, input, decision] of table) it(`${what}: ${decision}`, () => assert.equal(fallbackDecision(input), decision));

  it('knows the three guards, in the order --help lists them and the error for another value names them', () => {
    assert.deepEqual<readonly DowngradeGuard[]>(DOWNGRADE_GUARDS, ['off', 'known', 'all']);
  });
});

describe('describeEvidence', () => {
  const now = 1_800_000_000_000;
  it('says which evidence, and how long ago in whole minutes (rounded; never negative)', () => {
    assert.equal(describeEvidence({ ...known, seen: now - 90 * 60_000 }, now), 'we completed a v2 handshake with it 90 min ago');
    assert.equal(describeEvidence({ ...known, source: 'version', seen: now - 29_999 }, now), 'its own VERSION advertised NODE_P2P_V2 0 min ago');
    assert.equal(
      describeEvidence({ ...known, source: 'gossip', from: '[2001:db8::1]:8333', seen: now - 30_000 }, now),
      '[2001:db8::1]:8333 announced it with NODE_P2P_V2 1 min ago',
    );
    // A clock that went back since: not "-5 min ago".
    assert.equal(describeEvidence({ ...known, seen: now + 5 * 60_000 }, now), 'we completed a v2 handshake with it 0 min ago');
  });
});

describe('connection records', () => {
  it('a new record: who, through which front end, when, every counter at zero', () => {
    const before = Date.now();
    const r = newRecord(7, 'legacy', '127.0.0.1:50000');
    const after = Date.now();
    assert.ok(r.startedAt >= before && r.startedAt <= after);
    assert.deepEqual(r, {
      id: 7,
      frontEnd: 'legacy',
      client: '127.0.0.1:50000',
      startedAt: r.startedAt,
      bytesToPeer: 0,
      bytesFromPeer: 0,
      msgsToPeer: 0,
      msgsFromPeer: 0,
      decoysToPeer: 0,
      decoyBytesToPeer: 0,
    });
  });

  it('log lines name the client and the peer, or for inbound the peer that connected and the node behind us', () => {
    const out = { ...newRecord(1, 'socks5', '127.0.0.1:50000'), peer: '203.0.113.7:8333' };
    assert.deepEqual(endpoints(out), { client: '127.0.0.1:50000', peer: '203.0.113.7:8333' });
    const inbound = { ...newRecord(2, 'inbound', '198.51.100.1:40000'), node: '127.0.0.1:8333' };
    assert.deepEqual(endpoints(inbound), { peer: '198.51.100.1:40000', node: '127.0.0.1:8333' });
  });
});
