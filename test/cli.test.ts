import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { OPTIONS, loadConfig } from '../src/config.js';
import { ERROR_CODES } from '../src/errors.js';

/** dist/test/cli.test.js -> the repository root. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** The environment without a config file variable that would change what the CLI reads. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.BIP324_PROXY_CONFIG;
  return env;
}

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: cleanEnv(), timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A running daemon whose stderr is collected; resolves waits on log lines as they arrive. */
class Daemon {
  readonly child: ChildProcess;
  stderr = '';
  private readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      for (const w of this.waiters) w();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** Resolves with the first match of `re` in stderr, failing when the process exits first. */
  waitFor(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = this.stderr.match(re);
        if (m !== null) {
          cleanup();
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${re}; stderr so far:\n${this.stderr}`));
      }, timeoutMs);
      const onExit = (): void => {
        setImmediate(() => {
          check();
          cleanup();
          reject(new Error(`exited before ${re}; stderr:\n${this.stderr}`));
        });
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        this.child.off('exit', onExit);
      };
      this.waiters.push(check);
      this.child.once('exit', onExit);
      check();
    });
  }

  exit(timeoutMs = 10_000): Promise<number | null> {
    return Promise.race([
      this.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit; stderr:\n${this.stderr}`)), timeoutMs).unref()),
    ]);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

describe('cli', () => {
  describe('one-shot commands', () => {
    it('--help prints the usage and every option to stdout and exits 0', () => {
      const r = runCli(['--help']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^Usage: bip324-proxy \[options\]/);
      for (const name of Object.keys(OPTIONS)) assert.ok(r.stdout.includes(`--${name}`), `--${name} missing`);
    });

    it('--version prints the package.json version and exits 0', () => {
      const r = runCli(['--version']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `bip324-proxy ${PACKAGE.version}\n`);
    });

    it('an unknown option prints "bip324-proxy: <message>" to stderr and exits 2', () => {
      const r = runCli(['--bogus']);
      assert.equal(r.status, 2);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, 'bip324-proxy: unknown option --bogus (see --help)\n');
    });

    it('a refused value exits 2 with the reason, before listening on anything', () => {
      const r = runCli(['--connect-timeout', '25']);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^bip324-proxy: --connect-timeout 25: must be below 20 seconds/);
      const remote = runCli(['--listen', '0.0.0.0:0']);
      assert.equal(remote.status, 2);
      assert.match(remote.stderr, /--allow-remote/);
    });

    it('a log file that cannot be opened exits 2 naming --log-file', () => {
      const r = runCli(['--listen', '127.0.0.1:0', '--log-file', '/nonexistent-dir/x.log']);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^bip324-proxy: --log-file: cannot open \/nonexistent-dir\/x\.log \(ENOENT\)\n$/);
    });
  });

  describe('daemon', function () {
    this.timeout(30_000);
    let dir: string;
    let daemons: Daemon[] = [];
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'bip324-cli-'));
    });
    afterEach(() => {
      for (const d of daemons) d.kill();
      daemons = [];
      rmSync(dir, { recursive: true, force: true });
    });
    function start(args: string[]): Daemon {
      const d = new Daemon(args);
      daemons.push(d);
      return d;
    }

    it('logs one line per listen address, accepts connections, and exits 0 on SIGTERM', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--listen', '[::1]:0']);
      const v4 = await d.waitFor(/INFO  listening address=127\.0\.0\.1:(\d+)/);
      await d.waitFor(/INFO  listening address=\[::1\]:(\d+)/);
      assert.equal(d.stderr.match(/ listening /g)?.length, 2);
      const socket = await connect(Number(v4[1]));
      socket.destroy();
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      assert.match(d.stderr, /INFO  shutting down signal=SIGTERM/);
      assert.match(d.stderr, /INFO  stopped\n$/);
    });

    it('serves metrics on --metrics once the proxy listens, and stops them on shutdown', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
      const m = await d.waitFor(/INFO  listening address=127\.0\.0\.1:(\d+) mode=metrics/);
      const res = await fetch(`http://127.0.0.1:${m[1]}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^bip324_proxy_/m);
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      await assert.rejects(fetch(`http://127.0.0.1:${m[1]}/metrics`));
    });

    it('exits 0 on SIGINT too', async () => {
      const d = start(['--listen', '127.0.0.1:0']);
      await d.waitFor(/listening address=/);
      d.child.kill('SIGINT');
      assert.equal(await d.exit(), 0);
    });

    it('logs a clear line and exits 1 when the listen address is in use', async () => {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        const d = start(['--listen', `127.0.0.1:${port}`]);
        assert.equal(await d.exit(), 1);
        assert.match(d.stderr, new RegExp(`ERROR cannot listen address=127\\.0\\.0\\.1:${port} code=EADDRINUSE reason="another process is listening there"`));
      } finally {
        blocker.close();
      }
    });

    it('reopens the log file on SIGHUP, so a rotated log continues in a new file', async () => {
      const log = join(dir, 'proxy.log');
      const d = start(['--listen', '127.0.0.1:0', '--log-file', log]);
      // The daemon logs only to the file; wait for the listening line there.
      for (let i = 0; i < 200 && !/listening/.test(readSafe(log)); i++) await sleep(25);
      assert.match(readSafe(log), /INFO  listening address=127\.0\.0\.1:\d+/);
      renameSync(log, `${log}.1`);
      d.child.kill('SIGHUP');
      for (let i = 0; i < 200 && !/reopened/.test(readSafe(log)); i++) await sleep(25);
      assert.match(readSafe(log), /^\S+ INFO  log file reopened signal=SIGHUP\n$/);
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      assert.match(readSafe(log), /INFO  stopped\n$/);
      assert.doesNotMatch(readSafe(`${log}.1`), /reopened|stopped/);
      assert.equal(d.stderr, '');
    });

    // The second signal's forced exit: test/cli-signals.test.ts (with a shutdown that cannot finish).
  });

  describe('documentation', () => {
    let man = '';
    let sample = '';
    before(() => {
      man = readFileSync(join(ROOT, 'man', 'bip324-proxy.1'), 'utf8');
      sample = readFileSync(join(ROOT, 'conf', 'bip324-proxy.conf'), 'utf8');
    });

    it('the man page documents every option', () => {
      for (const name of Object.keys(OPTIONS)) {
        // roff writes a dash as \- (or \-\-); match the option name after them.
        assert.match(man, new RegExp(`\\.B(?:I|R)? \\\\-\\\\-${name.replace(/-/g, '\\\\-')}\\b`), `--${name} missing from the man page OPTIONS`);
      }
    });

    it('the man page lists exactly the error codes of src/errors.ts, each with its meaning', () => {
      const section = man.slice(man.indexOf('.SH "ERROR CODES"'), man.indexOf('.SH SIGNALS'));
      const listed = [...section.matchAll(/^\.TP\n\.B (ERR_[A-Z0-9_]+)\n(.*)$/gm)].map((m) => [m[1]!, m[2]!.replace(/\\-/g, '-').replace(/\\(.)/g, '$1')]);
      assert.deepEqual(
        listed.map(([code]) => code),
        Object.keys(ERROR_CODES),
      );
      for (const [code, meaning] of listed) assert.equal(meaning, ERROR_CODES[code as keyof typeof ERROR_CODES], code);
    });

    it('the sample configuration names every file key, and loads as shipped', () => {
      for (const [name, spec] of Object.entries(OPTIONS)) {
        if ('cliOnly' in spec) continue;
        assert.match(sample, new RegExp(`^#${name}=`, 'm'), `${name} missing from the sample configuration`);
      }
      const path = join(ROOT, 'conf', 'bip324-proxy.conf');
      assert.equal(loadConfig(['--config', path], {}).command, 'run');
    });

    it('every commented key=value in the sample configuration is a valid setting', () => {
      for (const line of sample.split('\n')) {
        const m = /^#([a-z0-9-]+)=(.*)$/.exec(line);
        if (m === null) continue;
        const tmp = mkdtempSync(join(tmpdir(), 'bip324-sample-'));
        try {
          const file = join(tmp, 'one.conf');
          // allow-remote so sample remote addresses are judged on syntax alone
          const text = m[1] === 'allow-remote' ? `${m[1]}=${m[2]}\n` : `${m[1]}=${m[2]}\nallow-remote=1\n`;
          writeFileSync(file, text);
          assert.doesNotThrow(() => loadConfig(['--config', file], {}), line);
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
      }
    });
  });
});

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
