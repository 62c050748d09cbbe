/**
 * The table of peers known to speak v2: bounded, expiring, first-hand evidence outranking gossip,
 * one key per address however it is spelled, and a file that is validated before it is believed.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { V2PeerTable, peerKey } from '../../src/engine/v2-peers.js';
import { tempDir } from '../helpers/tmp.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
/** The clock at the start of every test. */
const T0 = 1_800_000_000_000;

/** A peers file with these entries, and one valid entry to vary. */
const peersFile = (...peers: unknown[]): string => JSON.stringify({ format: 'bip324-proxy v2 peers 1', peers });
const entry = (change: Record<string, unknown> = {}): Record<string, unknown> => ({
  peer: '1.2.3.4:8333',
  source: 'session',
  seen: T0,
  expires: T0 + 7 * DAY,
  from: 'itself',
  ...change,
});

describe('V2PeerTable', () => {
  let now = T0;
  const clock = (): number => now;
  beforeEach(() => {
    now = T0;
  });

  it('keys an address the same however it is spelled', () => {
    assert.equal(peerKey('2001:DB8:0:0::1', 8333), '[2001:db8::1]:8333');
    assert.equal(peerKey('[2001:db8::1]', 8333), '[2001:db8::1]:8333');
    assert.equal(peerKey('[2001:DB8:0:0::1]', 8333), '[2001:db8::1]:8333');
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
    now += 1;
    assert.equal(t.lookup('1.0.0.3', 8333), undefined, 'gossip exactly a day old is gone');
    now += 6 * DAY - 1;
    assert.ok(t.lookup('1.0.0.1', 8333));
    assert.ok(t.lookup('1.0.0.2', 8333));
    now += 1;
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

  for (const [what, first, gossipAt, want] of [
    [
      'gossip refreshes gossip, with its new source',
      'gossip',
      23 * HOUR,
      { source: 'gossip', seen: T0 + 23 * HOUR, expires: T0 + 47 * HOUR, from: '9.9.9.9:8333' },
    ],
    [
      'gossip leaves first-hand evidence alone until the last millisecond',
      'session',
      7 * DAY - 1,
      { source: 'session', seen: T0, expires: T0 + 7 * DAY, from: 'itself' },
    ],
    [
      'gossip replaces first-hand evidence that expires that very millisecond',
      'version',
      7 * DAY,
      { source: 'gossip', seen: T0 + 7 * DAY, expires: T0 + 8 * DAY, from: '9.9.9.9:8333' },
    ],
    [
      'gossip replaces first-hand evidence that expired unnoticed',
      'session',
      7 * DAY + HOUR,
      { source: 'gossip', seen: T0 + 7 * DAY + HOUR, expires: T0 + 8 * DAY + HOUR, from: '9.9.9.9:8333' },
    ],
  ] as const) {
    it(what, () => {
      const t = new V2PeerTable(100, clock);
      t.note('1.0.0.1', 8333, first, first === 'gossip' ? '8.8.8.8:8333' : 'itself');
      now += gossipAt;
      t.note('1.0.0.1', 8333, 'gossip', '9.9.9.9:8333');
      assert.deepEqual(t.lookup('1.0.0.1', 8333), want);
    });
  }

  describe('the file', () => {
    // A new directory for every run, not one made when the file is loaded: a runner that runs the
    // suite many times in one process (Stryker) must not find the files of an earlier run.
    let dir = '';
    before(() => {
      dir = tempDir('bip324-v2peers-');
    });
    const path = (name: string): string => join(dir, name);

    it('round-trips through a file written atomically and private to its owner (no temporary file left behind)', async () => {
      const t = new V2PeerTable(100, clock);
      t.note('1.0.0.1', 8333, 'session', 'itself');
      t.note('abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion', 8333, 'gossip', '[2001:db8::1]:8333');
      await t.saveFile(path('peers.json'));
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.startsWith('peers.json')),
        ['peers.json'],
      );
      // Which peers we talk to is nobody else's business.
      assert.equal(statSync(path('peers.json')).mode & 0o777, 0o600);
      const u = new V2PeerTable(100, clock);
      assert.equal(u.loadFile(path('peers.json')), 2);
      assert.equal(u.lookup('1.0.0.1', 8333)?.source, 'session');
      assert.equal(u.lookup('abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion', 8333)?.from, '[2001:db8::1]:8333');
    });

    it('writes the entries still valid, and only those', async () => {
      const t = new V2PeerTable(100, clock);
      t.note('1.0.0.1', 8333, 'gossip', '9.9.9.9:8333');
      t.note('1.0.0.2', 8333, 'session', 'itself');
      now += DAY; // the gossip expires this very millisecond; nothing looked it up
      await t.saveFile(path('valid.json'));
      assert.deepEqual(JSON.parse(readFileSync(path('valid.json'), 'utf8')), {
        format: 'bip324-proxy v2 peers 1',
        peers: [{ peer: '1.0.0.2:8333', source: 'session', seen: 1_800_000_000_000, expires: 1_800_604_800_000, from: 'itself' }],
      });
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

    it('keeps the order entries were seen in, whatever the order in the file: the least recently seen is evicted first', () => {
      // 1.0.0.n was seen n hours ago.
      const seen = (n: number): Record<string, unknown> => entry({ peer: `1.0.0.${n}:8333`, seen: T0 - n * HOUR, expires: T0 - n * HOUR + 7 * DAY });
      writeFileSync(path('order.json'), peersFile(seen(1), seen(3), seen(2)));
      const t = new V2PeerTable(3, clock);
      assert.equal(t.loadFile(path('order.json')), 3);
      t.note('1.0.0.4', 8333, 'session', 'itself');
      t.note('1.0.0.5', 8333, 'session', 'itself');
      assert.deepEqual(
        ['1.0.0.1', '1.0.0.2', '1.0.0.3', '1.0.0.4', '1.0.0.5'].map((h) => t.lookup(h, 8333) !== undefined),
        [true, false, false, true, true],
      );
    });

    it('treats a missing file as an empty table', () => {
      assert.equal(new V2PeerTable(100, clock).loadFile(path('none.json')), 0);
    });

    it('is dirty exactly when the table changed since it was last read or written', async () => {
      const t = new V2PeerTable(100, clock);
      const steps: [string, () => unknown, boolean][] = [
        ['new', () => undefined, false],
        ['a peer it does not hold forgotten', () => t.forget('1.0.0.9', 8333), false],
        ['a peer noted', () => t.note('1.0.0.1', 8333, 'session', 'itself'), true],
        ['written', () => t.saveFile(path('dirty.json')), false],
        ['a valid entry looked up', () => t.lookup('1.0.0.1', 8333), false],
        ['a peer forgotten', () => t.forget('1.0.0.1', 8333), true],
        ['written', () => t.saveFile(path('dirty.json')), false],
        ['a peer gossiped', () => t.note('1.0.0.2', 8333, 'gossip', '9.9.9.9:8333'), true],
        ['written', () => t.saveFile(path('dirty.json')), false],
        ['an expired entry looked up (and dropped)', () => ((now += DAY), t.lookup('1.0.0.2', 8333)), true],
        ['a write that failed (no such directory)', () => assert.rejects(t.saveFile(path('no-such-dir/peers.json'))), true],
        ['read', () => t.loadFile(path('dirty.json')), false],
      ];
      for (const [what, step, dirty] of steps) {
        await step();
        assert.equal(t.dirty, dirty, what);
      }
    });

    it('keeps a peer listed twice once, as it was last seen, and counts it once', () => {
      writeFileSync(
        path('twice.json'),
        peersFile(
          entry({ source: 'gossip', seen: T0 - HOUR, expires: T0 - HOUR + DAY, from: '9.9.9.9:8333' }),
          entry({ peer: '1.0.0.2:8333', seen: T0 - 2 * HOUR, expires: T0 - 2 * HOUR + 7 * DAY }),
          entry({ source: 'version', seen: T0 - 3 * HOUR, expires: T0 - 3 * HOUR + 7 * DAY }),
        ),
      );
      const t = new V2PeerTable(3, clock);
      assert.equal(t.loadFile(path('twice.json')), 2);
      assert.equal(t.size, 2);
      assert.deepEqual(t.lookup('1.2.3.4', 8333), { source: 'gossip', seen: T0 - HOUR, expires: T0 - HOUR + DAY, from: '9.9.9.9:8333' });
      // Its place in the eviction order is that of its last sighting too: after 1.0.0.2, seen between the two.
      t.note('1.0.0.3', 8333, 'session', 'itself');
      t.note('1.0.0.4', 8333, 'session', 'itself');
      assert.equal(t.lookup('1.0.0.2', 8333), undefined);
      assert.equal(t.lookup('1.2.3.4', 8333)?.source, 'gossip');
    });

    it('takes turns when saves overlap: each resolves, the last writes the table as it is then, no temporary file is left', async () => {
      const t = new V2PeerTable(100, clock);
      t.note('1.0.0.1', 8333, 'session', 'itself');
      const first = t.saveFile(path('turns.json'));
      t.note('1.0.0.2', 8333, 'session', 'itself');
      const second = t.saveFile(path('turns.json'));
      await Promise.all([first, second]);
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.startsWith('turns.json')),
        ['turns.json'],
      );
      assert.equal(new V2PeerTable(100, clock).loadFile(path('turns.json')), 2);
    });

    it('with onlyIfDirty, writes nothing when nothing changed, but first waits for a save still writing', async () => {
      const t = new V2PeerTable(100, clock);
      await t.saveFile(path('clean.json'), true);
      assert.equal(existsSync(path('clean.json')), false);
      t.note('1.0.0.1', 8333, 'session', 'itself');
      await t.saveFile(path('clean.json'), true);
      assert.equal(new V2PeerTable(100, clock).loadFile(path('clean.json')), 1);
      // A timed save in flight when the one at shutdown comes: the shutdown save, finding the table
      // clean, resolves only once the file holds the timed save's table.
      t.note('1.0.0.2', 8333, 'session', 'itself');
      void t.saveFile(path('clean.json'));
      await t.saveFile(path('clean.json'), true);
      assert.equal(new V2PeerTable(100, clock).loadFile(path('clean.json')), 2);
    });

    for (const [what, text, count] of [
      ['as many entries as the table holds', peersFile(entry({ peer: '1.0.0.1:8333' }), entry({ peer: '1.0.0.2:8333' }), entry({ peer: '1.0.0.3:8333' })), 3],
      ['a "version" entry', peersFile(entry({ source: 'version' })), 1],
      ['a gossip entry trusted exactly a day', peersFile(entry({ source: 'gossip', expires: T0 + DAY })), 1],
      ['an entry seen exactly a minute ahead of our clock', peersFile(entry({ seen: T0 + 60_000, expires: T0 + 60_000 + DAY })), 1],
      ['a "from" of exactly 300 characters', peersFile(entry({ from: 'x'.repeat(300) })), 1],
      [
        'an entry that expires this very millisecond (dropped, not refused)',
        peersFile(entry({ seen: T0 - 7 * DAY, expires: T0 }), entry({ peer: '1.0.0.2:8333' })),
        1,
      ],
    ] as const) {
      it(`reads a file with ${what}`, () => {
        writeFileSync(path('edge.json'), text);
        assert.equal(new V2PeerTable(3, clock).loadFile(path('edge.json')), count);
      });
    }

    for (const [what, text, name = 'bad.json'] of [
      ['not JSON', '{"format": "bip324-proxy v2 peers 1", "peers": ['],
      ['null', 'null'],
      ['a JSON document that is not an object', '"bip324-proxy v2 peers 1"'],
      ['another format', JSON.stringify({ format: 'something else', peers: [] })],
      ['peers that are not an array', JSON.stringify({ format: 'bip324-proxy v2 peers 1', peers: { 0: entry() } })],
      ['an entry that is null', peersFile(null)],
      ['an entry that is not an object', peersFile('1.2.3.4:8333')],
      ['an entry whose peer is not a string', peersFile(entry({ peer: 1234 }))],
      ['an entry that is not host:port', peersFile(entry({ peer: 'no port' }))],
      ['an unknown source', peersFile(entry({ source: 'rumour' }))],
      ['a gossip entry trusted a millisecond longer than a day', peersFile(entry({ source: 'gossip', expires: T0 + DAY + 1 }))],
      ['a first-hand entry trusted a millisecond longer than 7 days', peersFile(entry({ expires: T0 + 7 * DAY + 1 }))],
      ['a "seen" that is not a number', peersFile(entry({ seen: String(T0) }))],
      ['an "expires" that is not a number', peersFile(entry({ expires: String(T0 + DAY) }))],
      ['an entry seen more than a minute ahead of our clock', peersFile(entry({ seen: T0 + 60_001, expires: T0 + 60_001 + DAY }))],
      ['a "from" that is not a string', peersFile(entry({ from: 1234 }))],
      ['a "from" longer than 300 characters', peersFile(entry({ from: 'x'.repeat(301) }))],
      ['more entries than the table holds', peersFile(...Array.from({ length: 101 }, (_, i) => entry({ peer: `1.0.0.${i + 1}:8333` })))],
      ['a path through a file (ENOTDIR is not a missing file)', '', 'bad.json/peers.json'],
    ] as const) {
      it(`refuses ${what}, naming the file and the reason, and keeps the table as it was`, () => {
        writeFileSync(path('bad.json'), text);
        const t = new V2PeerTable(100, clock);
        t.note('7.7.7.7', 8333, 'session', 'itself');
        assert.throws(
          () => t.loadFile(path(name)),
          // Refused by a rule, not by a TypeError on a shape the validator let through.
          (e: Error) => e.message.startsWith(path(name)) && e.cause instanceof Error && !(e.cause instanceof TypeError),
        );
        assert.ok(t.lookup('7.7.7.7', 8333));
      });
    }

    it('refuses a file above 4 MiB without reading it, and reads one of exactly 4 MiB', () => {
      writeFileSync(path('huge.json'), Buffer.alloc(4 * 1024 * 1024 + 1, 0x20));
      assert.throws(() => new V2PeerTable(100, clock).loadFile(path('huge.json')), /more than the 4194304 a peers file may have/);
      assert.ok(existsSync(path('huge.json')));
      assert.ok(readFileSync(path('huge.json')).length > 4 * 1024 * 1024);
      writeFileSync(path('4mib.json'), peersFile(entry()).padEnd(4 * 1024 * 1024, ' '));
      assert.equal(new V2PeerTable(100, clock).loadFile(path('4mib.json')), 1);
    });
  });
});
