/**
 * Signals of the real executable (man page, SIGNALS): SIGINT/SIGTERM stop listening, close every
 * connection and exit 0; a second signal exits at once with status 1. For the second rule the
 * daemon is started with test/helpers/hold-shutdown.js preloaded, which makes the graceful shutdown
 * unable to finish, so the outcome is deterministic: the process is still running after the first
 * signal, however long we wait, and only the second one ends it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type * as net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { networkByName } from '../src/networks.js';
import { MessageChannel, handshakeV1, socks5Connect, startTestNode, type TestNode } from './helpers/node.js';

/** dist/test/cli-signals.test.js -> the repository root. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const HOLD = pathToFileURL(join(ROOT, 'dist', 'test', 'helpers', 'hold-shutdown.js')).href;
const main = networkByName('main')!;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class Daemon {
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], preload?: string) {
    const env = { ...process.env };
    delete env.BIP324_PROXY_CONFIG;
    const node = preload === undefined ? [] : ['--import', preload];
    this.child = spawn(process.execPath, [...node, CLI, ...args], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitFor(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stderr.match(re);
      if (m !== null) return m;
      if (!this.running) throw new Error(`exited before ${re}; stderr:\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; stderr:\n${this.stderr}`);
      await sleep(20);
    }
  }

  async exit(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running ${timeoutMs} ms later; stderr:\n${this.stderr}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

describe('cli: signals', function () {
  this.timeout(30_000);
  let node: TestNode;
  const daemons: Daemon[] = [];
  const sockets: net.Socket[] = [];
  before(async () => {
    node = await startTestNode(main.magic);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const d of daemons.splice(0)) d.kill();
  });
  after(async () => node.stop());

  /** A daemon on a free port with one established v2 session through it, held open. */
  async function daemonWithSession(preload?: string): Promise<{ d: Daemon; client: MessageChannel }> {
    // --metrics off: the metrics endpoint is on by default, on a fixed port other tests would share.
    const d = new Daemon(['--listen', '127.0.0.1:0', '--metrics', 'off', '--log-level', 'debug'], preload);
    daemons.push(d);
    const port = Number((await d.waitFor(/INFO {2}listening address=127\.0\.0\.1:(\d+) mode=socks5\+legacy/))[1]);
    const { socket, rep } = await socks5Connect(port, '127.0.0.1', node.port);
    sockets.push(socket);
    assert.equal(rep, 0);
    const client = new MessageChannel(socket, main.magic);
    await handshakeV1(client);
    await d.waitFor(/established .*transport=v2/);
    return { d, client };
  }

  it('one SIGTERM with a session open: the session is closed, "stopped" is logged, exit 0', async () => {
    const { d, client } = await daemonWithSession();
    d.child.kill('SIGTERM');
    assert.deepEqual(await d.exit(), { code: 0, signal: null });
    await client.waitClosed(5000);
    assert.match(d.stderr, /INFO {2}shutting down signal=SIGTERM/);
    assert.match(d.stderr, /closed reason="proxy shutting down"/);
    assert.match(d.stderr, /INFO {2}stopped\n$/);
  });

  it('the hold-shutdown preload really holds: after one SIGTERM the daemon is still running 1 s later', async () => {
    const { d } = await daemonWithSession(HOLD);
    d.child.kill('SIGTERM');
    await d.waitFor(/INFO {2}shutting down signal=SIGTERM/);
    await sleep(1000);
    assert.ok(d.running, `exited on its own: ${d.stderr}`);
    assert.doesNotMatch(d.stderr, /stopped/);
  });

  for (const [first, second] of [
    ['SIGTERM', 'SIGTERM'],
    ['SIGINT', 'SIGINT'],
    ['SIGTERM', 'SIGINT'],
  ] as const) {
    it(`${first} then ${second} while the shutdown cannot finish: the second one exits at once with status 1`, async () => {
      const { d } = await daemonWithSession(HOLD);
      d.child.kill(first);
      await d.waitFor(new RegExp(`INFO  shutting down signal=${first}`));
      // The shutdown is stuck (hold-shutdown): nothing but the second signal can end the process.
      await sleep(300);
      assert.ok(d.running, `exited before the second signal: ${d.stderr}`);
      d.child.kill(second);
      assert.deepEqual(await d.exit(), { code: 1, signal: null });
      assert.match(d.stderr, new RegExp(`WARN  second signal, exiting now signal=${second}\\n$`));
      assert.doesNotMatch(d.stderr, /INFO {2}stopped/);
      assert.equal(d.stderr.match(/INFO {2}shutting down/g)?.length, 1);
    });
  }
});
