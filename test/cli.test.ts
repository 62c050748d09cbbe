import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { getCurves } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { OPTIONS, loadConfig } from '../src/config/index.js';
import { ERROR_CODES } from '../src/errors.js';

/** dist/test/cli.test.js -> the repository root. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/**
 * The environment without what would change what the CLI reads or how it logs: a config file
 * variable, the developer's own ~/.config/bip324-proxy, a journal stream inherited from a service,
 * and npm's settings when the tests run under `npm test`.
 */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(npm_|BIP324_PROXY_CONFIG$|JOURNAL_STREAM$)/.test(key)) env[key] = value;
  env.XDG_CONFIG_HOME = join(tmpdir(), 'bip324-no-such-config-dir');
  return { ...env, ...extra };
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
  private readonly detached: boolean;

  constructor(args: string[], options: { env?: NodeJS.ProcessEnv; stderr?: number; command?: string[]; detached?: boolean } = {}) {
    // The default metrics port is one per machine: tests that run at the same time would fight
    // over it, so every daemon here says where its metrics go.
    if (!args.some((a) => a === '--metrics' || a.startsWith('--metrics='))) throw new Error('pass --metrics off or --metrics 127.0.0.1:0');
    const [command, ...prefix] = options.command ?? [process.execPath, CLI];
    this.detached = options.detached ?? false;
    this.child = spawn(command, [...prefix, ...args], {
      env: options.env ?? cleanEnv(),
      stdio: ['ignore', 'pipe', options.stderr ?? 'pipe'],
      cwd: ROOT,
      detached: options.detached ?? false,
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    // null when stderr goes to a file the test reads itself
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      for (const w of this.waiters) w();
    });
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
    // A detached child leads its own process group: take down whatever it left behind too.
    if (this.child.spawnargs.length > 0 && this.detached && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    }
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
    function start(args: string[], options?: ConstructorParameters<typeof Daemon>[1]): Daemon {
      const d = new Daemon(args, options);
      daemons.push(d);
      return d;
    }

    it('logs one line per listen address, accepts connections, and exits 0 on SIGTERM', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--listen', '[::1]:0', '--metrics', 'off']);
      const v4 = await d.waitFor(/INFO {2}listening address=127\.0\.0\.1:(\d+)/);
      await d.waitFor(/INFO {2}listening address=\[::1\]:(\d+)/);
      assert.equal(d.stderr.match(/ listening /g)?.length, 2);
      const socket = await connect(Number(v4[1]));
      socket.destroy();
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      assert.match(d.stderr, /INFO {2}shutting down signal=SIGTERM/);
      assert.match(d.stderr, /INFO {2}stopped\n$/);
    });

    it('serves metrics on --metrics once the proxy listens, and stops them on shutdown', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
      const m = await d.waitFor(/INFO {2}listening address=127\.0\.0\.1:(\d+) mode=metrics/);
      const res = await fetch(`http://127.0.0.1:${m[1]}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^bip324_proxy_/m);
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      await assert.rejects(fetch(`http://127.0.0.1:${m[1]}/metrics`));
    });

    it('exits 0 on SIGINT too', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--metrics', 'off']);
      await d.waitFor(/listening address=/);
      d.child.kill('SIGINT');
      assert.equal(await d.exit(), 0);
    });

    it('logs a clear line and exits 1 when the listen address is in use', async () => {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        const d = start(['--listen', `127.0.0.1:${port}`, '--metrics', 'off']);
        assert.equal(await d.exit(), 1);
        assert.match(d.stderr, new RegExp(`ERROR cannot listen address=127\\.0\\.0\\.1:${port} code=EADDRINUSE reason="another process is listening there"`));
      } finally {
        blocker.close();
      }
    });

    it('reopens the log file on SIGHUP, so a rotated log continues in a new file', async () => {
      const log = join(dir, 'proxy.log');
      const d = start(['--listen', '127.0.0.1:0', '--metrics', 'off', '--log-file', log]);
      // The daemon logs only to the file; wait for the listening line there.
      for (let i = 0; i < 200 && !/listening/.test(readSafe(log)); i++) await sleep(25);
      assert.match(readSafe(log), /INFO {2}listening address=127\.0\.0\.1:\d+/);
      renameSync(log, `${log}.1`);
      d.child.kill('SIGHUP');
      for (let i = 0; i < 200 && !/reopened/.test(readSafe(log)); i++) await sleep(25);
      assert.match(readSafe(log), /^\S+ INFO {2}log file reopened signal=SIGHUP\n$/);
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      assert.match(readSafe(log), /INFO {2}stopped\n$/);
      assert.doesNotMatch(readSafe(`${log}.1`), /reopened|stopped/);
      assert.equal(d.stderr, '');
    });

    // The second signal's forced exit: test/cli-signals.test.ts (with a shutdown that cannot finish).

    it('names the configuration file it read in the start-up line, or none', async () => {
      const a = start(['--listen', '127.0.0.1:0', '--metrics', 'off']);
      await a.waitFor(/INFO {2}starting version=\S+ config=none /);
      const xdg = join(dir, 'xdg');
      const conf = join(xdg, 'bip324-proxy', 'bip324-proxy.conf');
      mkdirSync(join(xdg, 'bip324-proxy'), { recursive: true });
      writeFileSync(conf, 'metrics=off\n');
      const b = start(['--listen', '127.0.0.1:0', '--metrics', 'off'], { env: cleanEnv({ XDG_CONFIG_HOME: xdg }) });
      await b.waitFor(new RegExp(`INFO  starting version=\\S+ config=${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `));
    });

    it('names the curve code in the start-up line: libsecp256k1, or OpenSSL where WebAssembly is missing (--jitless)', async () => {
      const a = start(['--listen', '127.0.0.1:0', '--metrics', 'off']);
      await a.waitFor(/INFO {2}starting version=\S+ .* ecdh=libsecp256k1\n/);
      const b = start(['--listen', '127.0.0.1:0', '--metrics', 'off'], { command: [process.execPath, '--jitless', '--no-warnings', CLI] });
      await b.waitFor(new RegExp(`INFO  starting version=\\S+ .* ecdh=${getCurves().includes('secp256k1') ? 'openssl' : 'noble'}\n`));
    });

    it('ignores SIGHUP when logging to standard error: nothing to reopen, nothing logged, still running', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--metrics', 'off']);
      const m = await d.waitFor(/listening address=127\.0\.0\.1:(\d+)/);
      d.child.kill('SIGHUP');
      // Signals are handled in the order they arrive: a SIGHUP line would come before these.
      d.child.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      assert.doesNotMatch(d.stderr, /reopen/);
      assert.match(d.stderr, /INFO {2}shutting down signal=SIGTERM/);
      assert.ok(Number(m[1]) > 0);
    });

    it('writes syslog priorities and no time when standard error is the systemd journal, the time again with --log-timestamps', async () => {
      const path = join(dir, 'journal');
      writeFileSync(path, '');
      const st = statSync(path, { bigint: true });
      const env = cleanEnv({ JOURNAL_STREAM: `${st.dev}:${st.ino}` });
      const run = async (args: string[]): Promise<string> => {
        const fd = openSync(path, 'w');
        try {
          const d = start(['--listen', '127.0.0.1:0', '--metrics', 'off', ...args], { env, stderr: fd });
          for (let i = 0; i < 400 && !/listening|cannot listen/.test(readSafe(path)); i++) await sleep(25);
          d.child.kill('SIGTERM');
          await d.exit();
        } finally {
          closeSync(fd);
        }
        return readSafe(path);
      };
      const plain = await run([]);
      assert.match(plain, /^<6>INFO {2}starting version=/);
      assert.match(plain, /\n<6>INFO {2}listening address=127\.0\.0\.1:\d+ mode=socks5\+legacy\n/);
      for (const line of plain.trimEnd().split('\n')) assert.match(line, /^<[3467]>(ERROR|WARN |INFO |DEBUG) /);

      const stamped = await run(['--log-timestamps']);
      assert.match(stamped, /^<6>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}starting /);

      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      try {
        const failed = await run(['--listen', `127.0.0.1:${(blocker.address() as net.AddressInfo).port}`]);
        assert.match(failed, /\n<3>ERROR cannot listen /);
      } finally {
        blocker.close();
      }
    });

    it('keeps the usual format when JOURNAL_STREAM is inherited but standard error is not the journal', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--metrics', 'off'], { env: cleanEnv({ JOURNAL_STREAM: '8:12345' }) });
      await d.waitFor(/listening address=/);
      assert.match(d.stderr, /^\d{4}-\d\d-\d\dT\S+ INFO {2}starting /);
      assert.doesNotMatch(d.stderr, /<6>/);
    });

    it('with --log-file, a start-up failure also goes to standard error', async () => {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as net.AddressInfo).port;
      const log = join(dir, 'proxy.log');
      try {
        const d = start(['--listen', `127.0.0.1:${port}`, '--metrics', 'off', '--log-file', log]);
        assert.equal(await d.exit(), 1);
        assert.match(d.stderr, new RegExp(`^bip324-proxy: cannot listen address=127\\.0\\.0\\.1:${port} code=EADDRINUSE `));
        assert.ok(d.stderr.includes(`(log: ${log})`), d.stderr);
        assert.match(readSafe(log), new RegExp(`ERROR cannot listen address=127\\.0\\.0\\.1:${port} code=EADDRINUSE`));
      } finally {
        blocker.close();
      }
    });

    it('a metrics port in use stops the start, saying how to move the endpoint or turn it off', async () => {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        const d = start(['--listen', '127.0.0.1:0', '--metrics', `127.0.0.1:${port}`]);
        assert.equal(await d.exit(), 1);
        assert.match(d.stderr, new RegExp(`ERROR cannot listen address=127\\.0\\.0\\.1:${port} code=EADDRINUSE .*hint=.*metrics endpoint.*--metrics off`));
      } finally {
        blocker.close();
      }
    });

    it('status reads a running daemon through its metrics address', async () => {
      const d = start(['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
      const m = await d.waitFor(/listening address=127\.0\.0\.1:(\d+) mode=metrics/);
      await d.waitFor(/mode=socks5\+legacy/);
      const r = runCli(['status', '--metrics', `127.0.0.1:${m[1]}`, '--full']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'no connections\n');
    });

    it('npm start hands SIGTERM to the proxy itself, which stops and frees its port (no orphan)', async function () {
      // What a supervisor or `docker stop` does to `npm start`. --ignore-scripts skips the
      // prestart build (npm test has built already) but still runs the start script itself.
      const d = start(['--listen', '127.0.0.1:0', '--metrics', 'off'], {
        command: ['npm', 'start', '--ignore-scripts', '--silent', '--'],
        detached: true,
      });
      const m = await d.waitFor(/listening address=127\.0\.0\.1:(\d+)/, 30_000);
      d.child.kill('SIGTERM');
      await d.exit(30_000);
      // npm waits for its script before exiting, so a proxy that got the signal is gone by now;
      // an orphan would still hold the port.
      await assert.rejects(connect(Number(m[1])), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
      assert.match(d.stderr, /INFO {2}shutting down signal=SIGTERM/);
    });
  });

  describe('documentation', () => {
    let man = '';
    let sample = '';
    before(() => {
      man = readFileSync(join(ROOT, 'man', 'bip324-proxy.1'), 'utf8');
      sample = readFileSync(join(ROOT, 'conf', 'bip324-proxy.conf'), 'utf8');
    });

    it('the man page carries the version of package.json', () => {
      const th = /^\.TH BIP324\\-PROXY 1 "[^"]*" "bip324-proxy ([^"]+)"/m.exec(man);
      assert.ok(th !== null, 'no .TH line');
      assert.equal(th[1], PACKAGE.version);
    });

    it('the man page documents every option', () => {
      for (const name of Object.keys(OPTIONS)) {
        // roff writes a dash as \- (or \-\-); match the option name after them.
        assert.match(man, new RegExp(`\\.B(?:I|R)? \\\\-\\\\-${name.replace(/-/g, '\\\\-')}\\b`), `--${name} missing from the man page OPTIONS`);
      }
    });

    it('the man page lists exactly the error codes of src/errors.ts, each with its meaning', () => {
      const section = man.slice(man.indexOf('.SH "ERROR CODES"'), man.indexOf('.SH SIGNALS'));
      const listed = [...section.matchAll(/^\.TP\n\.B (ERR_[A-Z0-9_]+)\n(.*)$/gm)].map((m) => [m[1], m[2].replace(/\\-/g, '-').replace(/\\(.)/g, '$1')]);
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
