/**
 * `npm run mutate` (scripts/mutate.ts) scopes StrykerJS to the lines a change touches: the line
 * ranges it reads from `git diff -U0`, checked on literal diffs and on a real repository's diff.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changedRanges, mutateArgument, plan } from '../scripts/mutate.js';

describe('npm run mutate: the changed lines', () => {
  it('takes the new-side line ranges of hunks in src/ TypeScript, and nothing else', () => {
    const diff = [
      'diff --git a/src/engine/bridge.ts b/src/engine/bridge.ts',
      '--- a/src/engine/bridge.ts',
      '+++ b/src/engine/bridge.ts',
      '@@ -10,2 +10,3 @@ class Bridge {', // 3 lines from 10
      '@@ -40 +41 @@', // one line, count left out
      '@@ -60,4 +61,0 @@', // lines deleted: nothing left to mutate
      'diff --git a/src/new.ts b/src/new.ts',
      '--- /dev/null',
      '+++ b/src/new.ts',
      '@@ -0,0 +1,25 @@',
      'diff --git a/src/gone.ts b/src/gone.ts',
      '--- a/src/gone.ts',
      '+++ /dev/null',
      '@@ -1,9 +0,0 @@',
      '--- a/src/cli.ts',
      '+++ b/src/cli.ts',
      '@@ -5 +5 @@',
      '--- a/test/x.test.ts',
      '+++ b/test/x.test.ts',
      '@@ -1 +1,2 @@',
      '--- a/src/README.md',
      '+++ b/src/README.md',
      '@@ -1 +1 @@',
      '--- a/src/v1/framing.ts',
      '+++ b/src/v1/framing.ts',
      '@@ -100,0 +101,2 @@',
    ].join('\n');
    const ranges = changedRanges(diff);
    assert.deepEqual(ranges, [
      { file: 'src/engine/bridge.ts', start: 10, end: 12 },
      { file: 'src/engine/bridge.ts', start: 41, end: 41 },
      { file: 'src/new.ts', start: 1, end: 25 },
      { file: 'src/v1/framing.ts', start: 101, end: 102 },
    ]);
    assert.equal(mutateArgument(ranges), 'src/engine/bridge.ts:10-12,src/engine/bridge.ts:41-41,src/new.ts:1-25,src/v1/framing.ts:101-102');
    assert.deepEqual(changedRanges(''), []);
  });

  it('reads the ranges of a real git diff -U0 (a changed line, an added block, a removed line)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mutate-'));
    try {
      const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, encoding: 'utf8' });
      git('init', '-q');
      mkdirSync(join(dir, 'src'));
      const lines = Array.from({ length: 20 }, (_, i) => `const a${i + 1} = ${i + 1};`);
      writeFileSync(join(dir, 'src', 'a.ts'), lines.join('\n') + '\n');
      git('add', '.');
      git('commit', '-q', '-m', 'base');
      const changed = [...lines];
      changed[2] = 'const a3 = 33;'; // line 3 changed
      changed.splice(9, 0, 'const b1 = 1;', 'const b2 = 2;'); // two lines added after line 9: new lines 10-11
      changed.splice(17, 1); // old line 16 (new line 18) removed
      writeFileSync(join(dir, 'src', 'a.ts'), changed.join('\n') + '\n');
      assert.deepEqual(changedRanges(git('diff', '-U0', '--no-color', 'HEAD', '--', 'src')), [
        { file: 'src/a.ts', start: 3, end: 3 },
        { file: 'src/a.ts', start: 10, end: 11 },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("turns its arguments into Stryker's: changed lines by default, --base, --all, a scope of one's own", () => {
    const diff = '--- a/src/a.ts\n+++ b/src/a.ts\n@@ -3 +3,2 @@';
    const asked: string[] = [];
    const since = (base: string): string => {
      asked.push(base);
      return base === 'empty' ? '' : diff;
    };
    const fallback = (): string => 'abc123';
    assert.deepEqual(plan(['--concurrency', '1'], since, fallback), {
      args: ['stryker', 'run', '--concurrency', '1', '--mutate', 'src/a.ts:3-4'],
      note: 'mutate: 1 changed range(s) since abc123',
    });
    assert.deepEqual(plan(['--base', 'v1', '--concurrency', '1'], since, fallback), {
      args: ['stryker', 'run', '--concurrency', '1', '--mutate', 'src/a.ts:3-4'],
      note: 'mutate: 1 changed range(s) since v1',
    });
    assert.deepEqual(asked, ['abc123', 'v1']);
    assert.deepEqual(plan(['--all', '--concurrency', '1'], since, fallback), { args: ['stryker', 'run', '--concurrency', '1'] });
    assert.deepEqual(plan(['--mutate', 'src/x.ts'], since, fallback), { args: ['stryker', 'run', '--mutate', 'src/x.ts'] });
    assert.deepEqual(plan(['-m', 'src/x.ts'], since, fallback), { args: ['stryker', 'run', '-m', 'src/x.ts'] });
    assert.deepEqual(asked, ['abc123', 'v1'], 'a diff was read for a run that keeps its own scope');
    const nothing = plan(['--base', 'empty'], since, fallback);
    assert.ok('exit' in nothing && nothing.exit === 0 && /no added or changed lines in src\/ since empty/.test(nothing.message));
    const noBase = plan(['--base'], since, fallback);
    assert.ok('exit' in noBase && noBase.exit === 2);
  });
});
