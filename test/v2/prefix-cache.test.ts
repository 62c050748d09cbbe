/**
 * contentsPrefix() caches the long-form prefix of at most 256 command names besides the 28 short
 * ids (src/v2/messages.ts): command names come from the peer, and a client cycling through made-up
 * names must not grow the cache without bound. The cache is module state, so each test loads its
 * own fresh instance of the module (a distinct import URL is a distinct ES module) and observes the
 * cache through object identity: a cached prefix is the same Buffer on every call, an uncached one
 * is a new Buffer each time.
 */
import assert from 'node:assert/strict';

type Messages = typeof import('../../src/v2/messages.js');

const CAP = 256;
let instances = 0;

async function freshMessages(): Promise<Messages> {
  const url = new URL('../../src/v2/messages.js', import.meta.url);
  url.searchParams.set('instance', String(++instances));
  return (await import(url.href)) as Messages;
}

/** Long-form names (none has a short id), distinct per call. */
function names(n: number, tag: string): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}${i.toString(36)}`.slice(0, 12));
}

const cached = (m: Messages, name: string): boolean => m.contentsPrefix(name) === m.contentsPrefix(name);

describe('v2 messages: the long-form prefix cache is capped', function () {
  it(`keeps the first ${CAP} long-form names, and no more`, async () => {
    const m = await freshMessages();
    const list = names(CAP + 50, 'x');
    assert.equal(new Set(list).size, list.length);
    const identical = list.map((name) => cached(m, name));
    assert.deepEqual(identical.slice(0, CAP), Array(CAP).fill(true), `the first ${CAP} names are cached`);
    assert.deepEqual(identical.slice(CAP), Array(50).fill(false), `names past the first ${CAP} are not`);
  });

  it('a full cache still encodes new names correctly (a fresh buffer each time), and keeps what it had', async () => {
    const m = await freshMessages();
    const first = names(CAP, 'k');
    for (const name of first) m.contentsPrefix(name);
    const extra = m.contentsPrefix('overflow');
    assert.deepEqual(extra, Buffer.concat([Buffer.from([0]), Buffer.from('overflow'), Buffer.alloc(4)]));
    assert.notEqual(m.contentsPrefix('overflow'), extra);
    assert.ok(first.every((name) => cached(m, name)));
  });

  it('the 28 short ids are cached apart from the cap: a full cache still returns their one-byte prefix', async () => {
    const m = await freshMessages();
    for (const name of names(CAP + 10, 'f')) m.contentsPrefix(name);
    for (const command of ['addr', 'ping', 'pong', 'tx', 'addrv2']) {
      assert.ok(cached(m, command), command);
      assert.equal(m.contentsPrefix(command).length, 1, command);
      assert.equal(m.contentsPrefix(command)[0], m.shortIdFor(command));
    }
  });

  it('names that fail to encode take no place in the cache', async () => {
    const m = await freshMessages();
    for (let i = 0; i < 100; i++) assert.throws(() => m.contentsPrefix(`bad\u00e9${i}`));
    assert.ok(names(CAP, 'g').every((name) => cached(m, name)));
  });
});
