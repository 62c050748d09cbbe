/**
 * The table of peers known to speak v2: bounded, expiring, first-hand evidence outranking gossip,
 * one key per address however it is spelled, and a file that is validated before it is believed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { V2PeerTable, peerKey } from '../../src/engine/v2-peers.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

describe('V2PeerTable', () => {
  let now = 1_800_000_000_000;
  const clock = (): number => now;
  beforeEach(() => {
    now = 1_800_000_000_000;
  });

  it('keys an address the same however it is spelled', () => {
    assert.equal(peerKey('2001:DB8:0:0::1', 8333), '[2001:db8::1]:8333');
    assert.equal(peerKey('[2001:db8::1]', 8333), '[2001:db8::1]:8333');
    assert.equal(peerKey('::ffff:1.2.3.4', 8333), '1.2.3.4:8333');
    assert.equal(peerKey('Seed.Example.', 8333), 'seed.example:8333');
  });

  it('keeps at most its bound, evicting the least recently noted', () => {
    const t = new V2PeerTable(3, clock);
    for (const h of ['1.0.0.1', '1.0.0.2', '1.0.0.3']) t.note(h, 8333, 'session', 'itself');
    t.note('1.0.0.1', 8333, 'session', 'itself'); // seen again: now the most recent
    t.note('1.0.0.4', 8333, 'session', 'itself');
    assert.equal(t.size, 3);
    assert.equal(t.lookup('1.0.0.2', 8333), undefined, 'the least recently noted went');
    assert.ok(t.lookup('1.0.0.1', 8333));
    assert.ok(t.lookup('1.0.0.4', 8333));
  });

  it('trusts first-hand evidence for 7 days and gossip for 24 hours', () => {
    const t = new V2PeerTable(100, clock);
    t.note('1.0.0.1', 8333, 'session', 'itself');
    t.note('1.0.0.2', 8333, 'version', 'itself');
    t.note('1.0.0.3', 8333, 'gossip', '9.9.9.9:8333');
    now += DAY - 1;
    assert.ok(t.lookup('1.0.0.3', 8333), 'gossip just under a day old');
    now += 2;
    assert.equal(t.lookup('1.0.0.3', 8333), undefined, 'gossip a day old is gone');
    now += 6 * DAY - 2;
    assert.ok(t.lookup('1.0.0.1', 8333));
    assert.ok(t.lookup('1.0.0.2', 8333));
    now += 2;
    assert.equal(t.lookup('1.0.0.1', 8333), undefined);
    assert.equal(t.lookup('1.0.0.2', 8333), undefined);
  });

  it('never lets gossip replace or shorten first-hand evidence, and forgets a peer whose own VERSION lacks the bit', () => {
    const t = new V2PeerTable(100, clock);
    t.note('1.0.0.1', 8333, 'session', 'itself');
    now += HOUR;
    t.note('1.0.0.1', 8333, 'gossip', '9.9.9.9:8333');
    assert.equal(t.lookup('1.0.0.1', 8333)?.source, 'session');
    now += 2 * DAY;
    assert.ok(t.lookup('1.0.0.1', 8333), 'still trusted for the first-hand 7 days');
    t.forget('1.0.0.1', 8333);
    assert.equal(t.lookup('1.0.0.1', 8333), undefined);
  });

  describe('the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bip324-v2peers-'));
    const path = (name: string): string => join(dir, name);

    it('round-trips through a file written atomically (no temporary file left behind)', async () => {
      const t = new V2PeerTable(100, clock);
      t.note('1.0.0.1', 8333, 'session', 'itself');
      t.note('abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion', 8333, 'gossip', '[2001:db8::1]:8333');
      await t.saveFile(path('peers.json'));
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.startsWith('peers.json')),
        ['peers.json'],
      );
      const u = new V2PeerTable(100, clock);
      assert.equal(u.loadFile(path('peers.json')), 2);
      assert.equal(u.lookup('1.0.0.1', 8333)?.source, 'session');
      assert.equal(u.lookup('abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion', 8333)?.from, '[2001:db8::1]:8333');
    });

    it('drops entries that expired while it was on disk', async () => {
      const t = new V2PeerTable(100, clock);
      t.note('1.0.0.1', 8333, 'gossip', 'x');
      t.note('1.0.0.2', 8333, 'session', 'itself');
      await t.saveFile(path('aged.json'));
      now += 2 * DAY;
      const u = new V2PeerTable(100, clock);
      assert.equal(u.loadFile(path('aged.json')), 1);
    });

    it('treats a missing file as an empty table', () => {
      assert.equal(new V2PeerTable(100, clock).loadFile(path('none.json')), 0);
    });

    for (const [what, text] of [
      ['not JSON', '{"format": "bip324-proxy v2 peers 1", "peers": ['],
      ['another format', JSON.stringify({ format: 'something else', peers: [] })],
      [
        'an entry that is not host:port',
        JSON.stringify({ format: 'bip324-proxy v2 peers 1', peers: [{ peer: 'no port', source: 'session', seen: 1, expires: 2, from: '' }] }),
      ],
      [
        'an unknown source',
        JSON.stringify({ format: 'bip324-proxy v2 peers 1', peers: [{ peer: '1.2.3.4:8333', source: 'rumour', seen: 1, expires: 2, from: '' }] }),
      ],
      [
        'a gossip entry trusted longer than gossip may be',
        JSON.stringify({
          format: 'bip324-proxy v2 peers 1',
          peers: [{ peer: '1.2.3.4:8333', source: 'gossip', seen: 1_800_000_000_000, expires: 1_800_000_000_000 + 30 * DAY, from: '' }],
        }),
      ],
      [
        'more entries than the table holds',
        JSON.stringify({
          format: 'bip324-proxy v2 peers 1',
          peers: Array.from({ length: 101 }, (_, i) => ({ peer: `1.0.0.${i % 250}:8333`, source: 'session', seen: 1, expires: 2, from: '' })),
        }),
      ],
    ] as const) {
      it(`refuses a file with ${what}, naming the file and the reason, and keeps the table as it was`, () => {
        writeFileSync(path('bad.json'), text);
        const t = new V2PeerTable(100, clock);
        t.note('7.7.7.7', 8333, 'session', 'itself');
        assert.throws(
          () => t.loadFile(path('bad.json')),
          (e: Error) => e.message.startsWith(path('bad.json')),
        );
        assert.ok(t.lookup('7.7.7.7', 8333));
      });
    }

    it('refuses a file above 4 MiB without reading it', () => {
      writeFileSync(path('huge.json'), Buffer.alloc(4 * 1024 * 1024 + 1, 0x20));
      assert.throws(() => new V2PeerTable(100, clock).loadFile(path('huge.json')), /more than the 4194304 a peers file may have/);
      assert.ok(existsSync(path('huge.json')));
      assert.ok(readFileSync(path('huge.json')).length > 4 * 1024 * 1024);
    });
  });
});
