/**
 * test/helpers/tmp.ts: the directories it makes are gone once the test process exits, also when it
 * exits with a failure, and not before.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const helper = fileURLToPath(new URL('./helpers/tmp.js', import.meta.url));

/** Run a node process that makes a directory with a file in it, says whether both exist, then exits with `code`. */
function child(code: number): { dir: string; existedWhileRunning: boolean } {
  const script = `
    import { writeFileSync, existsSync } from 'node:fs';
    const { tempDir } = await import(${JSON.stringify(helper)});
    const dir = tempDir('bip324-tmphelper-');
    writeFileSync(dir + '/file', 'x');
    console.log(JSON.stringify({ dir, existedWhileRunning: existsSync(dir + '/file') }));
    process.exitCode = ${code};`;
  let out: string;
  try {
    out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  } catch (err) {
    out = (err as { stdout: string }).stdout;
  }
  return JSON.parse(out) as { dir: string; existedWhileRunning: boolean };
}

describe('test helper tempDir', () => {
  for (const code of [0, 1]) {
    it(`removes its directories, files and all, when the process exits (exit code ${code})`, () => {
      const { dir, existedWhileRunning } = child(code);
      assert.match(dir, /bip324-tmphelper-/);
      assert.equal(existedWhileRunning, true);
      assert.equal(existsSync(dir), false);
    });
  }
});
