/**
 * The documented defaults, written here as literals (never imported from src/), checked against
 * the code (what loadConfig gives with no arguments, as the daemon starts) and against what each
 * document states: the man page's "Default:" lines, the --help text of the real executable, and
 * the commented-out settings of the sample configuration. Changing a default in one place only
 * turns this red.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { type Config, loadConfig } from '../src/config/index.js';
import { READ_SIZE } from '../src/transient-reads.js';

/** dist/test/defaults.test.js -> the repository root. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Documented {
  option: string;
  /** How the man page, --help and the sample configuration spell the default. */
  man: string;
  help: string | undefined;
  sample: string;
  /** What the code must hold with no arguments. */
  code: (c: Config) => unknown;
  value: unknown;
}

const DEFAULTS: Documented[] = [
  {
    option: 'listen',
    man: '127.0.0.1:1324',
    help: '127.0.0.1:1324',
    sample: '127.0.0.1:1324',
    code: (c) => c.listen,
    value: [{ host: '127.0.0.1', port: 1324 }],
  },
  { option: 'max-connections', man: '1024', help: '1024', sample: '1024', code: (c) => c.maxConnections, value: 1024 },
  { option: 'max-inbound', man: '125', help: '125', sample: '125', code: (c) => c.inboundLimits.max, value: 125 },
  { option: 'max-inbound-per-ip', man: '4', help: '4', sample: '4', code: (c) => c.inboundLimits.perIp, value: 4 },
  { option: 'max-inbound-handshakes', man: '32', help: '32', sample: '32', code: (c) => c.inboundLimits.handshakes, value: 32 },
  { option: 'inbound-handshake-rate', man: '20', help: '20', sample: '20', code: (c) => c.inboundLimits.handshakeRate, value: 20 },
  { option: 'socks-timeout', man: '10', help: '10', sample: '10', code: (c) => c.timeouts.socksMs, value: 10_000 },
  { option: 'connect-timeout', man: '15', help: '15', sample: '15', code: (c) => c.timeouts.connectMs, value: 15_000 },
  { option: 'handshake-timeout', man: '10', help: '10', sample: '10', code: (c) => c.timeouts.handshakeMs, value: 10_000 },
  { option: 'idle-timeout', man: '1200', help: '1200', sample: '1200', code: (c) => c.timeouts.idleMs, value: 1_200_000 },
  { option: 'shape', man: 'off', help: 'off', sample: 'off', code: (c) => c.shaping?.mode ?? 'off', value: 'off' },
  // The rate only lives in a Config with shaping on: the default as --shape cover reads it.
  { option: 'shape-rate', man: '1024', help: '1024', sample: '1024', code: () => loadConfig(['--shape', 'cover'], {}).config.shaping?.rate, value: 1024 },
  { option: 'log-level', man: 'info', help: 'info', sample: 'info', code: (c) => c.logLevel, value: 'info' },
  // --help words these two as a behaviour ("fall back, like Bitcoin Core"), not as a value.
  { option: 'downgrade-guard', man: 'known', help: 'known', sample: 'known', code: (c) => c.downgradeGuard, value: 'known' },
  { option: 'v2-only', man: 'off', help: undefined, sample: '0', code: (c) => c.downgradeGuard === 'all', value: false },
  { option: 'allow-remote', man: 'off', help: undefined, sample: '0', code: (c) => c.allowRemote, value: false },
];

/** roff -> text: "\-" is a dash, "\fB"... are font changes. */
function unroff(text: string): string {
  return text
    .replace(/\\f[BIRP]/g, '')
    .replace(/\\-/g, '-')
    .replace(/\\(.)/g, '$1');
}

/** The man page's OPTIONS entry for --option: from the .B/.BI line after its .TP to the next .TP or section. */
function manEntry(man: string, option: string): string {
  const lines = man.split('\n');
  const start = lines.findIndex((l, i) => lines[i - 1] === '.TP' && /^\.BI? /.test(l) && unroff(l).split(/\s+/)[1]?.replace(/"/g, '') === `--${option}`);
  assert.ok(start >= 0, `--${option} has no entry in the man page`);
  const end = lines.findIndex((l, i) => i > start && (l.startsWith('.TP') || l.startsWith('.SH')));
  return unroff(lines.slice(start, end < 0 ? undefined : end).join('\n'));
}

/** The --help block for --option: its line and the indented description under it, as one line. */
function helpEntry(help: string, option: string): string {
  const lines = help.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^  (?:-\\w, )?--${option}(?: |$)`).test(l));
  assert.ok(start >= 0, `--${option} is not in --help`);
  const block = [lines[start]];
  for (let i = start + 1; i < lines.length && /^ {8}\S/.test(lines[i]); i++) block.push(lines[i].trim());
  return block.join(' ');
}

describe('documented defaults', function () {
  let man = '';
  let help = '';
  let sample = '';
  let config: Config;
  before(() => {
    man = readFileSync(join(ROOT, 'man', 'bip324-proxy.1'), 'utf8');
    sample = readFileSync(join(ROOT, 'conf', 'bip324-proxy.conf'), 'utf8');
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), '--help'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    help = r.stdout;
    const parsed = loadConfig([], {});
    assert.equal(parsed.command, 'run');
    config = parsed.config;
  });

  for (const d of DEFAULTS) {
    describe(`--${d.option}`, () => {
      it(`the code defaults to ${JSON.stringify(d.value)}`, () => {
        assert.deepEqual(d.code(config), d.value);
      });

      it(`the man page says "Default: ${d.man}"`, () => {
        const entry = manEntry(man, d.option);
        const m = /^Default: (\S+?)[.,]?(?:\s|$)/m.exec(entry);
        assert.ok(m !== null, `no "Default:" line for --${d.option} in the man page:\n${entry}`);
        assert.equal(m[1], d.man);
      });

      if (d.help !== undefined) {
        const expected = d.help;
        it(`--help says "(default ${expected}"`, () => {
          const entry = helpEntry(help, d.option);
          const m = /\(default:? ([^,)\s]+)/.exec(entry);
          assert.ok(m !== null, `no "(default ...)" for --${d.option} in --help: ${entry}`);
          assert.equal(m[1], expected);
        });
      }

      it(`the sample configuration shows #${d.option}=${d.sample}`, () => {
        const lines = [...sample.matchAll(new RegExp(`^#${d.option}=(.*)$`, 'gm'))].map((m) => m[1]);
        assert.deepEqual(lines, [d.sample]);
      });
    });
  }

  it("the man page gives the largest read a connection can hold before the remote's key as READ_SIZE", () => {
    // "... and the one read that crossed that mark (at most N KiB)."
    const m = /the one read that crossed that mark \(at most (\d+) KiB\)/.exec(man.replace(/\n/g, ' '));
    assert.ok(m, 'the sentence is in the man page');
    assert.equal(Number(m[1]) * 1024, READ_SIZE);
  });

  it('the sample configuration, loaded as shipped with every setting uncommented, gives the same config as no configuration', () => {
    // Uncommenting a shown default must change nothing; the lines that are examples, not defaults, are left out.
    // log-timestamps' default depends on where standard error goes (the journal or not); v2-peers-file is a path.
    const examples = new Set(['network', 'magic', 'upstream-proxy', 'onion-proxy', 'inbound', 'metrics', 'log-file', 'log-timestamps', 'v2-peers-file']);
    const settings: string[] = [];
    for (const m of sample.matchAll(/^#([a-z0-9-]+)=(.*)$/gm)) if (!examples.has(m[1])) settings.push(`${m[1]}=${m[2]}`);
    assert.equal(settings.length, DEFAULTS.length, settings.join(' '));
    const dir = mkdtempSync(join(tmpdir(), 'bip324-defaults-'));
    try {
      const file = join(dir, 'defaults.conf');
      writeFileSync(file, `${settings.join('\n')}\n`);
      assert.deepEqual(loadConfig(['--config', file], {}).config, config);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
