/**
 * The README's Design table is the map of src/: every source file is in it (by name, or by a
 * folder's `*.ts`), and every path it names exists. A file added, moved or renamed without the
 * table fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [relative(ROOT, path)] : [];
  });
}

/** The `src/...` paths in the Design section's table, as written (a folder may be `src/x/*.ts`). */
function designTablePaths(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Design\n');
  assert.ok(start >= 0, 'README has a "## Design" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const rows = section.split('\n').filter((line) => line.startsWith('|'));
  return rows.flatMap((row) => [...row.matchAll(/`(src\/[^`]+)`/g)].map((m) => m[1]));
}

function covers(pattern: string, file: string): boolean {
  if (!pattern.endsWith('/*.ts')) return pattern === file;
  const folder = pattern.slice(0, -'*.ts'.length);
  return file.startsWith(folder) && !file.slice(folder.length).includes('/');
}

describe('README: the Design table matches the tree', () => {
  const files = sourceFiles(join(ROOT, 'src'));
  const paths = designTablePaths();

  it('names every file under src/', () => {
    assert.ok(files.length > 30, `found the sources (${files.length})`);
    const missing = files.filter((file) => !paths.some((p) => covers(p, file)));
    assert.deepEqual(missing, [], 'files under src/ that the README Design table does not name');
  });

  it('names no file or folder that does not exist', () => {
    assert.ok(paths.length > 20, `found the table (${paths.length} paths)`);
    const stale = paths.filter((p) => !files.some((file) => covers(p, file)));
    assert.deepEqual(stale, [], 'paths in the README Design table with no file behind them');
  });
});
