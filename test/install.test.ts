/**
 * Installing the package the ways an operator would, each into its own temporary npm prefix
 * (`npm install -g --prefix DIR`, so nothing outside the test's directory changes): from a
 * checkout, from an `npm pack` tarball, through npx, and from a git URL. Slow (npm, the registry
 * or its cache, and three TypeScript builds): 40-90 s on a 2-core machine, with its load.
 *
 * The sources are a copy of this working tree (tracked and new files, not ignored ones), so
 * uncommitted changes are what gets installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const TARBALL = `${PACKAGE.name}-${PACKAGE.version}.tgz`;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** npm and git without the settings `npm test` exported (npm_config_*), and without a config file for the proxy. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(npm_|BIP324_PROXY_CONFIG$|_PACOTE_)/i.test(key)) env[key] = value;
  env.XDG_CONFIG_HOME = join(tmpdir(), 'bip324-no-such-config-dir');
  return env;
}

function run(command: string, args: string[], cwd: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', (err) => resolve({ status: null, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** --prefer-offline: the packages are in npm's cache after `npm ci`; skip asking the registry again. */
const NPM_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline'];

/**
 * npm 12 (Node.js 22.22 and later only) differs: it fetches git URLs only with --allow-git,
 * blocks a linked folder's `prepare` (allowScripts; --allow-scripts did not lift it in 12.2.2),
 * links no man pages, and prints `npm pack --json` as an object keyed by package name.
 */
const NPM_MAJOR = Number(spawnSync('npm', ['--version'], { encoding: 'utf8', env: cleanEnv() }).stdout.split('.')[0]);

function ok(r: Result, what: string): void {
  assert.equal(r.status, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
}

/** Runs the installed command's --help and checks it is this package, with its sample config in place. */
async function checkInstalled(prefix: string, expectSampleUnder: string): Promise<void> {
  const bin = join(prefix, 'bin', 'bip324-proxy');
  const help = await run(bin, ['--help'], prefix);
  ok(help, `${bin} --help`);
  assert.match(help.stdout, /^Usage: bip324-proxy \[options\]/);
  const sample = /^ {2}(\/\S+\/conf\/bip324-proxy\.conf)$/m.exec(help.stdout);
  assert.ok(sample !== null, help.stdout);
  assert.ok(existsSync(sample[1]), `--help names ${sample[1]}, which is not there`);
  assert.ok(realpathSync(sample[1]).startsWith(realpathSync(expectSampleUnder)), `${sample[1]} is not under ${expectSampleUnder}`);
  const version = await run(bin, ['--version'], prefix);
  assert.equal(version.stdout, `bip324-proxy ${PACKAGE.version}\n`);
}

/** The working tree's files (tracked and new, not ignored), or undefined without git or npm. */
function workingTreeFiles(): string[] | undefined {
  const files = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' });
  const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
  if (files.status !== 0 || npm.status !== 0) return undefined;
  return files.stdout.split('\0').filter((f) => f !== '' && existsSync(join(ROOT, f)));
}

describe('install (slow: npm installs into temporary prefixes)', function () {
  this.timeout(300_000);
  this.slow(90_000);
  const files = workingTreeFiles();
  if (files === undefined) {
    it('SKIPPED: needs git (to copy the working tree) and npm');
    return;
  }
  let dir = '';
  let source = '';
  let gitPack: Promise<{ url: string; packed: Result; out: string }> | undefined;
  const gitFlags = NPM_MAJOR >= 12 ? ['--allow-git=all'] : [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bip324-install-'));
    source = join(dir, 'checkout');
    for (const file of files) {
      mkdirSync(dirname(join(source, file)), { recursive: true });
      cpSync(join(ROOT, file), join(source, file));
    }
    // A git repository of the same files. npm clones its URL, installs the clone's
    // devDependencies, runs `prepare` (the build) and packs the result: the slowest install,
    // so it starts now and runs next to the others.
    const repo = join(dir, 'repo');
    const out = join(dir, 'from-git-tarball');
    const url = `git+file://${repo}`;
    cpSync(source, repo, { recursive: true });
    mkdirSync(out);
    const git = (args: string[]): Promise<Result> =>
      run('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', '-c', 'init.defaultBranch=main', ...args], repo);
    gitPack = (async () => {
      for (const args of [
        ['init', '-q'],
        ['add', '-A'],
        ['commit', '-q', '-m', 'test'],
      ]) {
        const r = await git(args);
        if (r.status !== 0) return { url, packed: r, out };
      }
      return { url, packed: await run('npm', ['pack', url, '--pack-destination', out, ...NPM_FLAGS, ...gitFlags], dir), out };
    })();
  });
  after(async () => {
    if (dir === '') return;
    await gitPack; // never leave npm running in a directory about to go
    // npx installed the tarball under npm's cache (<cache>/_npx/<hash>/): remove that too.
    const cache = spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', env: cleanEnv() }).stdout.trim();
    const npxDir = join(cache, '_npx');
    if (cache !== '' && existsSync(npxDir)) {
      for (const entry of readdirSync(npxDir)) {
        const manifest = join(npxDir, entry, 'package.json');
        if (existsSync(manifest) && readFileSync(manifest, 'utf8').includes(dir)) rmSync(join(npxDir, entry), { recursive: true, force: true });
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('npm install -g <checkout>: a fresh clone, no node_modules, no build, one command', async function () {
    // npm links a folder instead of copying it, so the command runs from the checkout itself.
    // npm 12 will not run the folder's build step there: build it first, as the README says.
    if (NPM_MAJOR >= 12) ok(await run('npm', ['ci', ...NPM_FLAGS], source), 'npm ci in the checkout');
    const prefix = join(dir, 'from-checkout');
    ok(await run('npm', ['install', '-g', '--prefix', prefix, source, ...NPM_FLAGS], dir), 'npm install -g <checkout>');
    await checkInstalled(prefix, source);
  });

  it('npm pack makes a tarball with the compiled code, the docs and contrib/, and no source maps', async function () {
    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir, ...NPM_FLAGS], source);
    ok(packed, 'npm pack');
    // The JSON comes last; before it, a build's own output if this checkout had to install first.
    const json = JSON.parse(packed.stdout.slice(packed.stdout.search(/^[[{]$/m))) as unknown;
    const entry = (Array.isArray(json) ? json[0] : Object.values(json as object)[0]) as { files: { path: string }[] };
    const files = entry.files.map((f) => f.path);
    for (const f of [
      'LICENSE',
      'README.md',
      'package.json',
      'dist/src/cli.js',
      'man/bip324-proxy.1',
      'conf/bip324-proxy.conf',
      'contrib/systemd/bip324-proxy.service',
      'contrib/grafana/bip324-proxy.json',
    ]) {
      assert.ok(files.includes(f), `${f} missing from the package`);
    }
    assert.deepEqual(
      files.filter((f) => f.endsWith('.map') || f.endsWith('.ts') || f.startsWith('dist/test') || f.startsWith('test/')),
      [],
    );
    assert.ok(existsSync(join(dir, TARBALL)));
  });

  it('npm install -g <tarball> and npx <tarball>: no build, man page installed', async function () {
    if (!existsSync(join(dir, TARBALL))) this.skip(); // the pack test failed
    const prefix = join(dir, 'from-tarball');
    ok(await run('npm', ['install', '-g', '--prefix', prefix, join(dir, TARBALL), ...NPM_FLAGS], dir), 'npm install -g <tarball>');
    await checkInstalled(prefix, join(prefix, 'lib', 'node_modules', PACKAGE.name));
    assert.ok(existsSync(join(prefix, 'lib', 'node_modules', PACKAGE.name, 'man', 'bip324-proxy.1')));
    if (NPM_MAJOR < 12) assert.ok(existsSync(join(prefix, 'share', 'man', 'man1', 'bip324-proxy.1')), 'man page not linked into share/man');

    const npx = await run('npx', ['--yes', `./${TARBALL}`, '--help'], dir);
    ok(npx, 'npx <tarball> --help');
    assert.match(npx.stdout, /^Usage: bip324-proxy \[options\]/);
  });

  it('from a git URL: npm pack <git URL> builds it, npm install -g takes the tarball', async function () {
    // Started in before(), next to the other installs, as it is the slowest.
    const { url, packed, out } = await gitPack!;
    ok(packed, 'npm pack <git URL>');
    const prefix = join(dir, 'from-git');
    ok(await run('npm', ['install', '-g', '--prefix', prefix, join(out, TARBALL), ...NPM_FLAGS], dir), 'npm install -g <tarball from git>');
    await checkInstalled(prefix, join(prefix, 'lib', 'node_modules', PACKAGE.name));

    // In one step, npm 11 and older break every package with a build step (npm/cli#8440):
    // the package must then fail loudly with the two commands above, not install a dead link.
    const direct = join(dir, 'from-git-direct');
    const r = await run('npm', ['install', '-g', '--prefix', direct, url, ...NPM_FLAGS, ...gitFlags], dir);
    if (NPM_MAJOR >= 12) {
      ok(r, 'npm install -g <git URL>');
      await checkInstalled(direct, join(direct, 'lib', 'node_modules', PACKAGE.name));
    } else {
      assert.notEqual(r.status, 0, 'npm 11 cannot install a git URL globally; this should have failed');
      assert.match(r.stderr, /cannot install a git URL globally/);
      assert.ok(r.stderr.includes(`npm install -g ./${TARBALL}`), r.stderr);
      assert.ok(!existsSync(join(direct, 'bin', 'bip324-proxy')), 'a bip324-proxy command was left behind');
    }
  });
});
