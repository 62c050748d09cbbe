/**
 * npm's `prepare` step: compile src/ into dist/src/ wherever the package is installed from source.
 *
 * npm runs `prepare` for `npm install` / `npm ci` in a checkout, for `npm pack` and `npm publish`,
 * for a git URL (after installing the clone's devDependencies), and for `npm install -g <folder>`.
 * A tarball made by `npm pack` already holds the compiled files, and installing it never runs this.
 *
 * Two cases need more than `tsc`:
 * - `npm install -g <folder>` links the folder instead of copying it and installs none of its
 *   dependencies, so a fresh clone has no TypeScript to build with and nothing to run with. Then,
 *   and only then, this installs the locked dependencies into the folder first (dev ones included,
 *   scripts off so that this step does not run itself again).
 * - `npm install -g <git URL>` is broken in npm 11 and older for every package with a `prepare`
 *   script (npm/cli#4148, #8440; fixed by pacote#494, in npm 12): to prepare the clone, npm runs
 *   `npm install` in it, which inherits npm_config_global=true and links the temporary clone into
 *   the global prefix, so the installed package vanishes with the clone. Failing here, with the
 *   way around it, beats a `bip324-proxy` command that points at nothing.
 *
 * The old dist/src is removed before compiling, so a module deleted from src/ cannot linger in a package.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function fail(message) {
  process.stderr.write(`bip324-proxy: ${message}\n`);
  process.exit(1);
}

function run(args, env = process.env) {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// pacote sets _PACOTE_NO_PREPARE_ for the `npm install` it runs in a git clone; npm 12 adds
// --global=false there, which wins over the environment, so npm_config_global is then unset.
if (process.env._PACOTE_NO_PREPARE_ !== undefined && process.env.npm_config_global === 'true') {
  fail(
    'this npm cannot install a git URL globally (npm/cli#8440, fixed in npm 12). Build a tarball and install that:\n' +
      `  npm pack <git URL>    # writes ${pkg.name}-${pkg.version}.tgz\n` +
      `  npm install -g ./${pkg.name}-${pkg.version}.tgz`,
  );
}

if (!existsSync(tsc)) {
  const npm = process.env.npm_execpath;
  if (npm === undefined || npm === '') fail('TypeScript is not installed in this folder; run `npm install` here first');
  // The outer npm passes its settings down as npm_config_*; those that make it a global install
  // must not reach this one, which installs into this folder.
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^npm_config_(global|global_prefix|globalconfig|prefix|location|local_prefix|allow_scripts)$/i.test(key)) delete env[key];
  }
  process.stderr.write('bip324-proxy: installing the build dependencies into this folder (npm ci)\n');
  run([npm, 'ci', '--include=dev', '--ignore-scripts', '--no-audit', '--no-fund'], env);
}

rmSync(join(root, 'dist', 'src'), { recursive: true, force: true });
run([tsc, '-p', join(root, 'tsconfig.build.json')]);
