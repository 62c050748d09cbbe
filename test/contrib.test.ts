/**
 * What contrib/ ships for operators: the systemd unit, checked by systemd's own analyzer, and the
 * Grafana dashboard, checked against a real /metrics scrape of the daemon.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { networkByName } from '../src/networks.js';
import { MessageChannel, socks5Connect, startTestNode, versionPayload } from './helpers/node.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UNIT = join(ROOT, 'contrib', 'systemd', 'bip324-proxy.service');
const DASHBOARD = join(ROOT, 'contrib', 'grafana', 'bip324-proxy.json');
const CLI = join(ROOT, 'dist', 'src', 'cli.js');

/** The goal for `systemd-analyze security`: "OK" or better. */
const MAX_EXPOSURE = 2.0;

/** systemd-analyze runs without systemd as PID 1 (CI containers): Debian's `systemd` package has it. */
const haveAnalyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;

/** key=value settings of the unit's [Service] section, repeated keys in order. */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (section !== 'Service' || eq < 0) continue;
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

describe('contrib/systemd/bip324-proxy.service', function () {
  this.timeout(60_000);
  const text = readFileSync(UNIT, 'utf8');
  const service = serviceSettings(text);

  it("runs bip324-proxy from systemd's search path (/usr/local/bin, /usr/bin) as a dynamic user without capabilities", () => {
    assert.deepEqual(service.get('ExecStart'), ['bip324-proxy']);
    assert.deepEqual(service.get('DynamicUser'), ['yes']);
    assert.deepEqual(service.get('CapabilityBoundingSet'), ['']);
    assert.deepEqual(service.get('NoNewPrivileges'), ['yes']);
  });

  it('allows the socket families a proxy needs: IPv4, IPv6, and Unix for name lookups', () => {
    const families = (service.get('RestrictAddressFamilies') ?? []).join(' ').split(/\s+/);
    for (const family of ['AF_INET', 'AF_INET6', 'AF_UNIX']) assert.ok(families.includes(family), `${family} missing`);
    assert.ok(!families.some((f) => f.startsWith('~')), 'an allow list, not a deny list');
  });

  it('leaves executable memory to V8: MemoryDenyWriteExecute=yes kills node at start-up', () => {
    assert.notDeepEqual(service.get('MemoryDenyWriteExecute'), ['yes']);
  });

  describe('GLIBC_TUNABLES (large messages from the heap, not fresh mappings)', function () {
    const tunables = service
      .get('Environment')
      ?.find((e) => e.startsWith('GLIBC_TUNABLES='))
      ?.slice('GLIBC_TUNABLES='.length);
    const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;

    it('npm start and the man page set the same value as the unit', () => {
      assert.equal(tunables, 'glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=33554432');
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
      assert.ok(pkg.scripts.start.includes(`GLIBC_TUNABLES="\${GLIBC_TUNABLES:-${tunables}}"`), pkg.scripts.start);
      assert.ok(readFileSync(join(ROOT, 'man', 'bip324-proxy.1'), 'utf8').includes(`GLIBC_TUNABLES=${tunables}`));
    });

    if (glibc === undefined) {
      it('glibc takes the value: SKIPPED, this node does not run on glibc');
      return;
    }

    // glibc's dynamic loader lists the tunables as this process would have them: a misspelt name
    // or a value out of range is dropped without a word and shows as 0x0 here.
    const loader = (process.report.getReport() as { sharedObjects?: string[] }).sharedObjects?.find((s) => /\/ld-linux[^/]*\.so/.test(s));
    it(`glibc ${glibc} takes the value: its loader lists mmap_threshold 4 MiB and trim_threshold 32 MiB`, function () {
      if (loader === undefined) this.skip();
      const r = spawnSync(loader, ['--list-tunables'], { encoding: 'utf8', env: { ...process.env, GLIBC_TUNABLES: tunables } });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^glibc\.malloc\.mmap_threshold: 0x400000 /m);
      assert.match(r.stdout, /^glibc\.malloc\.trim_threshold: 0x2000000 /m);
    });

    // What the value is for: four 1 MiB buffers made and freed 50 times. With a fixed 128 KiB
    // threshold (glibc's starting one) each buffer is a fresh mapping, page-faulted in every time
    // (about 51,700 faults here, the same in every run); with the unit's value they come from the
    // heap, which stays (about 2,300, node's own start-up). glibc's defaults land anywhere between
    // the two, since its threshold moves with what was freed before, so they are no oracle.
    const churn = `const before = process.resourceUsage().minorPageFault;
      for (let r = 0; r < 50; r++) {
        let held = [];
        for (let i = 0; i < 4; i++) held.push(Buffer.allocUnsafeSlow(1 << 20).fill(r));
        held = null;
        globalThis.gc();
      }
      console.log(process.resourceUsage().minorPageFault - before);`;
    const faults = (value: string): number => {
      const r = spawnSync(process.execPath, ['--expose-gc', '-e', churn], {
        encoding: 'utf8',
        env: { ...process.env, GLIBC_TUNABLES: value },
      });
      assert.equal(r.status, 0, r.stderr);
      return Number(r.stdout.trim());
    };

    it("with the unit's value, 1 MiB buffers freed and made again cost under a fifth of the page faults of fresh mappings", () => {
      const mapped = faults('glibc.malloc.mmap_threshold=131072');
      const withUnit = faults(tunables ?? '');
      assert.ok(mapped > 4 * 50 * 200, `fresh mappings should fault each 4 KiB page in: ${mapped}`);
      assert.ok(withUnit < mapped / 5, `page faults: ${withUnit} with the unit's GLIBC_TUNABLES, ${mapped} with fresh mappings`);
    });
  });

  if (!haveAnalyze) {
    // A pending test, so the summary shows what was not checked and why.
    it('systemd-analyze verify and security: SKIPPED, systemd-analyze is not installed (apt-get install systemd)');
    return;
  }

  it('passes `systemd-analyze verify` without a warning', () => {
    // verify also checks that ExecStart exists and is executable, which it does not on a test
    // machine: give it a copy of the unit whose command is a stand-in, everything else unchanged.
    const dir = mkdtempSync(join(tmpdir(), 'bip324-unit-'));
    try {
      const exe = join(dir, 'bip324-proxy');
      writeFileSync(exe, '#!/bin/sh\nexit 0\n');
      chmodSync(exe, 0o755);
      const copy = join(dir, 'bip324-proxy.service');
      const replaced = text.replace(/^ExecStart=bip324-proxy$/m, `ExecStart=${exe}`);
      assert.notEqual(replaced, text);
      writeFileSync(copy, replaced);
      // --man=no: Documentation= names a man page the test machine has not installed.
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(`${r.stdout}${r.stderr}`, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`rates an exposure of at most ${MAX_EXPOSURE.toFixed(1)} ("OK") in \`systemd-analyze security\``, () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const m = /Overall exposure level for bip324-proxy\.service: ([0-9.]+) (\S+)/.exec(r.stdout);
    assert.ok(m !== null, r.stdout);
    assert.ok(
      Number(m[1]) <= MAX_EXPOSURE,
      `exposure ${m[1]} ${m[2]}:\n${r.stdout
        .split('\n')
        .filter((l) => l.startsWith('✗'))
        .join('\n')}`,
    );
  });
});

describe('contrib/grafana/bip324-proxy.json', function () {
  this.timeout(60_000);

  /** Every PromQL expression in the dashboard: panel targets and template variable queries. */
  function expressions(dashboard: unknown): string[] {
    const out: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) {
        node.forEach(walk);
      } else if (node !== null && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if ((key === 'expr' || key === 'query' || key === 'definition') && typeof value === 'string') out.push(value);
          else walk(value);
        }
      }
    };
    walk(dashboard);
    return out;
  }

  /** The metric names an expression uses: ours, and the standard process/Node.js ones. */
  function metricNames(expr: string): string[] {
    return [...expr.matchAll(/\b(?:bip324_proxy|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]);
  }

  /** Names a Prometheus scrape exposes: each sample's name, and every declared family. */
  function scrapedNames(text: string): Set<string> {
    const names = new Set<string>();
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)/.exec(line);
      if (type !== null) {
        names.add(type[1]);
        if (type[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${type[1]}${suffix}`);
        continue;
      }
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
      if (sample !== null) names.add(sample[1]);
    }
    return names;
  }

  it('uses only metric names that a running daemon serves at /metrics', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as unknown;
    const used = new Set(expressions(dashboard).flatMap(metricNames));
    // Guard against a walk that finds nothing and so checks nothing.
    assert.ok(used.size >= 10, `only ${[...used].join(', ')}`);

    // The real daemon, with one v2 session and one refused connection behind it, so the
    // labelled series exist as samples, not only as declarations.
    const main = networkByName('main')!;
    const node = await startTestNode(main.magic);
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(tmpdir(), 'bip324-no-such-config-dir') };
    delete env.BIP324_PROXY_CONFIG;
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let stderr = '';
      const [proxyPort, metricsPort] = await new Promise<[number, number]>((resolve, reject) => {
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          stderr += chunk;
          const p = /listening address=127\.0\.0\.1:(\d+) mode=socks5/.exec(stderr);
          const m = /listening address=127\.0\.0\.1:(\d+) mode=metrics/.exec(stderr);
          if (p !== null && m !== null) resolve([Number(p[1]), Number(m[1])]);
        });
        child.once('exit', () => reject(new Error(`daemon exited:\n${stderr}`)));
      });
      const { socket } = await socks5Connect(proxyPort, '127.0.0.1', node.port);
      const ch = new MessageChannel(socket, main.magic);
      ch.send('version', versionPayload());
      await ch.next('version');
      await ch.next('verack');
      const bad = net.connect(proxyPort, '127.0.0.1');
      bad.on('error', () => undefined);
      bad.end(Buffer.from('nonsense'));
      await new Promise((resolve) => bad.once('close', resolve));

      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(res.status, 200);
      const served = scrapedNames(await res.text());
      socket.destroy();
      const missing = [...used].filter((name) => !served.has(name));
      assert.deepEqual(missing, [], `the dashboard queries metrics /metrics does not serve`);
    } finally {
      child.kill('SIGKILL');
      await node.stop();
    }
  });

  it('asks for its Prometheus data source on import and has an instance selector', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      __inputs: { name: string; pluginId: string }[];
      templating: { list: { name: string }[] };
      panels: { type: string; datasource?: { uid: string } }[];
    };
    assert.deepEqual(
      dashboard.__inputs.map((i) => [i.name, i.pluginId]),
      [['DS_PROMETHEUS', 'prometheus']],
    );
    assert.ok(dashboard.templating.list.some((v) => v.name === 'instance'));
    for (const p of dashboard.panels) if (p.type !== 'row') assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}');
  });
});
