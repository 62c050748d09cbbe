/**
 * `npm run mutate`: StrykerJS on the lines a change touches, so that the question "would a test
 * notice if I broke what I just wrote?" is answered in minutes, not the hours all of src/ takes on
 * the 2-core VM (README "Mutation testing" has the per-folder wall times).
 *
 *   npm run mutate                      # lines changed since the branch left main (on main: the last commit), uncommitted ones too
 *   npm run mutate -- --base v0.3.0     # lines changed since a given commit
 *   npm run mutate -- --all             # every file stryker.config.mjs names (hours)
 *   npm run mutate -- --mutate 'src/socks5/*.ts'      # a scope of your own, as Stryker takes it
 *
 * Any other argument goes to `stryker run` (e.g. `--concurrency 1`). Stryker still runs every test
 * that covers a mutant (stryker.config.mjs), so a narrowed scope never weakens the verdict on the
 * lines it keeps; it only leaves the rest out. Deleted lines have nothing left to mutate.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

export interface LineRange {
  file: string;
  start: number;
  end: number;
}

/** What Stryker mutates: TypeScript under src/, except the executable's entry point (stryker.config.mjs says why). */
function mutable(file: string): boolean {
  return /^src\/.+\.ts$/.test(file) && file !== 'src/cli.ts';
}

/** The lines added or changed in mutable files, from `git diff -U0` output (new-file line numbers). */
export function changedRanges(diff: string): LineRange[] {
  const ranges: LineRange[] = [];
  let file: string | undefined;
  for (const line of diff.split('\n')) {
    if (line.startsWith('+++ ')) {
      // "+++ b/path" for a file that exists after the change, "+++ /dev/null" for a deleted one.
      const path = line.startsWith('+++ b/') ? line.slice(6) : undefined;
      file = path !== undefined && mutable(path) ? path : undefined;
      continue;
    }
    if (file === undefined || !line.startsWith('@@ ')) continue;
    const hunk = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (hunk === null) continue;
    const start = Number(hunk[1]);
    const count = hunk[2] === undefined ? 1 : Number(hunk[2]);
    if (count > 0) ranges.push({ file, start, end: start + count - 1 });
  }
  return ranges;
}

/** Stryker's --mutate value: one `file:start-end` pattern per range, comma separated. */
export function mutateArgument(ranges: readonly LineRange[]): string {
  return ranges.map((r) => `${r.file}:${r.start}-${r.end}`).join(',');
}

function git(args: string[]): string {
  return execFileSync('git', args, { encoding: 'utf8' }).trim();
}

function tryGit(args: string[]): string | undefined {
  try {
    return git(args);
  } catch {
    return undefined;
  }
}

/** Where the change starts: where HEAD left main (origin/main first), or HEAD~1 when HEAD is on main. */
function defaultBase(): string {
  const head = git(['rev-parse', 'HEAD']);
  for (const main of ['origin/main', 'main']) {
    const base = tryGit(['merge-base', 'HEAD', main]);
    if (base !== undefined && base !== head) return base;
  }
  return 'HEAD~1';
}

/** What to run: Stryker's arguments, or a message and an exit code when there is nothing to run. */
export type Plan = { args: string[]; note?: string } | { exit: number; message: string };

/**
 * Turns this script's arguments into Stryker's: --all and a --mutate/-m of one's own keep Stryker's
 * scope; otherwise the lines changed since --base (default: `defaultBase()`), read from
 * `diffSince(base)`, become the --mutate patterns. Everything else is passed through.
 */
export function plan(argv: readonly string[], diffSince: (base: string) => string, defaultBase: () => string): Plan {
  const rest = [...argv];
  const all = rest.indexOf('--all');
  if (all >= 0) rest.splice(all, 1);
  const at = rest.indexOf('--base');
  let base: string | undefined;
  if (at >= 0) {
    base = rest[at + 1];
    if (base === undefined) return { exit: 2, message: 'mutate: --base needs a commit' };
    rest.splice(at, 2);
  }
  const args = ['stryker', 'run', ...rest];
  // A scope given to Stryker itself (--mutate/-m) is taken as it is.
  if (all >= 0 || rest.includes('--mutate') || rest.includes('-m')) return { args };
  base ??= defaultBase();
  const ranges = changedRanges(diffSince(base));
  if (ranges.length === 0) {
    return { exit: 0, message: `mutate: no added or changed lines in src/ since ${base}; nothing to do (--all for everything, --base REV for another start)` };
  }
  return { args: [...args, '--mutate', mutateArgument(ranges)], note: `mutate: ${ranges.length} changed range(s) since ${base}` };
}

function main(argv: string[]): number {
  const p = plan(argv, (base) => git(['diff', '-U0', '--no-color', '--no-ext-diff', base, '--', 'src']), defaultBase);
  if ('exit' in p) {
    (p.exit === 0 ? console.log : console.error)(p.message);
    return p.exit;
  }
  if (p.note !== undefined) console.log(`${p.note}: ${p.args[p.args.length - 1]}`);
  return spawnSync('npx', p.args, { stdio: 'inherit' }).status ?? 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exit(main(process.argv.slice(2)));
