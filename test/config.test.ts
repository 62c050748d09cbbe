import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  CONFIG_ENV,
  HELP_TEXT,
  OPTIONS,
  SAMPLE_CONFIG_FILE,
  SYSTEM_CONFIG_FILE,
  defaultConfig,
  defaultConfigFiles,
  describeProxy,
  loadConfig,
} from '../src/config/index.js';
import type { Config } from '../src/config/index.js';
import { formatHostPort } from '../src/address.js';
import { isProxyError } from '../src/errors.js';

const NO_ENV = {};

function config(argv: string[], env: NodeJS.ProcessEnv = NO_ENV): Config {
  return loadConfig(argv, env).config;
}

/** Asserts ERR_CONFIG and that the message matches every pattern; returns the message. */
function configError(argv: string[], ...patterns: RegExp[]): string {
  let message = '';
  assert.throws(
    () => loadConfig(argv, NO_ENV),
    (err: unknown) => {
      assert.ok(isProxyError(err, 'ERR_CONFIG'), `expected ERR_CONFIG, got ${String(err)}`);
      message = err.message;
      for (const p of patterns) assert.match(err.message, p);
      return true;
    },
  );
  return message;
}

describe('config', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bip324-config-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  function file(text: string): string {
    const path = join(dir, `conf-${Math.random().toString(16).slice(2)}.conf`);
    writeFileSync(path, text);
    return path;
  }

  describe('defaults', () => {
    // The documented values as literals (test/defaults.test.ts also checks the man page, --help and the sample config).
    it('with no arguments runs on 127.0.0.1:1324 with the documented defaults', () => {
      const parsed = loadConfig([], NO_ENV);
      assert.equal(parsed.command, 'run');
      assert.equal(parsed.configFile, undefined);
      assert.deepEqual(parsed.config, {
        listen: [{ host: '127.0.0.1', port: 1324 }],
        downgradeGuard: 'known',
        allowRemote: false,
        logLevel: 'info',
        maxConnections: 1024,
        // Literals, as documented: the man page, --help and the sample config say the same.
        inboundLimits: { max: 125, perIp: 4, handshakes: 32, handshakeRate: 20 },
        metrics: { host: '127.0.0.1', port: 9324 },
        timeouts: {
          socksMs: 10_000,
          connectMs: 15_000,
          handshakeMs: 10_000,
          idleMs: 1_200_000,
        },
        inbound: [],
      });
      assert.deepEqual(parsed.config, defaultConfig());
    });

    it('leaves the network undefined so any known magic is accepted', () => {
      assert.equal(config([]).network, undefined);
    });

    it('hands out a fresh default listen list each time', () => {
      const a = config([]);
      a.listen.push({ host: '127.0.0.2', port: 1 });
      assert.equal(config([]).listen.length, 1);
    });
  });

  describe('commands', () => {
    it('parses --help and -h as the help command, even next to a bad value', () => {
      assert.equal(loadConfig(['--help'], NO_ENV).command, 'help');
      assert.equal(loadConfig(['-h'], NO_ENV).command, 'help');
      assert.equal(loadConfig(['--connect-timeout', '99', '--help'], NO_ENV).command, 'help');
    });

    it('parses --version as the version command', () => {
      assert.equal(loadConfig(['--version'], NO_ENV).command, 'version');
    });

    it('parses "status" with its --metrics address, options before or after it', () => {
      const a = loadConfig(['status', '--metrics', '127.0.0.1:9324'], NO_ENV);
      assert.equal(a.command, 'status');
      assert.deepEqual(a.config.metrics, { host: '127.0.0.1', port: 9324 });
      assert.equal(loadConfig(['--metrics', '127.0.0.1:9324', 'status'], NO_ENV).command, 'status');
    });

    it('lets status dial a remote metrics address, since it listens on nothing', () => {
      assert.deepEqual(loadConfig(['status', '--metrics', '192.0.2.7:9324'], NO_ENV).config.metrics, { host: '192.0.2.7', port: 9324 });
    });

    it('refuses an unknown command and extra arguments', () => {
      configError(['start'], /unknown command 'start'/);
      configError(['status', 'now'], /unexpected argument 'now'/);
    });

    it('refuses an unknown option, naming it', () => {
      const msg = configError(['--bogus'], /unknown option --bogus/);
      assert.doesNotMatch(msg, /positional/);
    });

    it('refuses --no- before a string option as only for on/off options, and --no-UNKNOWN as unknown', () => {
      const msg = configError(['--no-listen'], /^--no-listen: only on\/off options can be negated$/);
      assert.doesNotMatch(msg, /positional/);
      configError(['--no-bogus'], /^unknown option --no-bogus \(see --help\)$/);
      configError(['--bogus-no-listen'], /^unknown option --bogus-no-listen \(see --help\)$/);
    });

    it('lets a programming error in parsing the command line through as itself, not as ERR_CONFIG', () => {
      assert.throws(
        () => loadConfig('--listen' as unknown as string[], NO_ENV),
        (err: unknown) => err instanceof TypeError && (err as { code?: unknown }).code === 'ERR_INVALID_ARG_TYPE',
      );
    });

    it('refuses an option without its value and a flag with one', () => {
      configError(['--listen'], /--listen needs a value/);
      configError(['--v2-only=yes'], /--v2-only does not take a value/);
    });
  });

  describe('--listen', () => {
    it('takes IPv4, bracketed IPv6 and host names', () => {
      assert.deepEqual(config(['--listen', '127.0.0.1:1325']).listen, [{ host: '127.0.0.1', port: 1325 }]);
      assert.deepEqual(config(['--listen', '[::1]:1324']).listen, [{ host: '::1', port: 1324 }]);
      assert.deepEqual(config(['--listen', 'localhost:1324']).listen, [{ host: 'localhost', port: 1324 }]);
    });

    it('is repeatable and replaces the default', () => {
      assert.deepEqual(config(['--listen', '127.0.0.1:1324', '--listen', '[::1]:1324']).listen, [
        { host: '127.0.0.1', port: 1324 },
        { host: '::1', port: 1324 },
      ]);
    });

    it('defaults the port to 1324 and allows port 0 (any free port)', () => {
      assert.deepEqual(config(['--listen', '127.0.0.2']).listen, [{ host: '127.0.0.2', port: 1324 }]);
      assert.deepEqual(config(['--listen', '[::1]']).listen, [{ host: '::1', port: 1324 }]);
      assert.deepEqual(config(['--listen', '127.0.0.1:0']).listen, [{ host: '127.0.0.1', port: 0 }]);
    });

    it('refuses a non-loopback address without --allow-remote, saying to use it', () => {
      for (const addr of ['0.0.0.0:1324', '192.168.1.2:1324', '[::]:1324', '[2001:db8::1]:1324', 'example.org:1324']) {
        configError(['--listen', addr], /--listen/, /not a loopback address/, /--allow-remote/);
      }
      // only the second one is remote: still refused
      configError(['--listen', '127.0.0.1:1324', '--listen', '0.0.0.0:1325'], /0\.0\.0\.0:1325/);
    });

    it('accepts a non-loopback address with --allow-remote', () => {
      const c = config(['--listen', '0.0.0.0:1324', '--allow-remote']);
      assert.equal(c.allowRemote, true);
      assert.deepEqual(c.listen, [{ host: '0.0.0.0', port: 1324 }]);
    });

    it('refuses bad addresses with the reason', () => {
      configError(['--listen', '::1:1324'], /--listen/, /brackets/);
      configError(['--listen', '127.0.0.1:65536'], /port '65536'/);
      configError(['--listen', '127.0.0.1:-1'], /port '-1'/);
      configError(['--listen', '127.0.0.1:12ab'], /port '12ab'/);
      configError(['--listen', '127.0.0.1:'], /port ''/);
      configError(['--listen', '300.0.0.1:1324'], /not an IPv4 address/);
      configError(['--listen', '[127.0.0.1]:1324'], /not an IPv6 address/);
      configError(['--listen', '[::1:1324'], /missing the '\]'/);
      configError(['--listen', ':1324'], /no host/);
      configError(['--listen', 'bad host:1324'], /not a host name/);
    });
  });

  describe('--network and --magic', () => {
    it('selects each network by name and by its aliases', () => {
      const expected: [string, string, string, number][] = [
        ['main', 'main', 'f9beb4d9', 8333],
        ['mainnet', 'main', 'f9beb4d9', 8333],
        ['testnet3', 'testnet3', '0b110907', 18333],
        ['testnet', 'testnet3', '0b110907', 18333],
        ['testnet4', 'testnet4', '1c163f28', 48333],
        ['signet', 'signet', '0a03cf40', 38333],
        ['regtest', 'regtest', 'fabfb5da', 18444],
        ['REGTEST', 'regtest', 'fabfb5da', 18444],
      ];
      for (const [arg, name, magic, port] of expected) {
        const net = config(['--network', arg]).network;
        assert.equal(net?.name, name, arg);
        assert.equal(net?.magic.toString('hex'), magic, arg);
        assert.equal(net?.port, port, arg);
      }
    });

    it('refuses an unknown network, listing the known ones', () => {
      configError(['--network', 'litecoin'], /--network/, /unknown network 'litecoin'/, /main, testnet3, testnet4, signet, regtest/);
    });

    it('takes a custom signet magic as 8 hex digits, with or without 0x', () => {
      for (const arg of ['4a0b1c2d', '0x4A0B1C2D']) {
        const net = config(['--magic', arg]).network;
        assert.equal(net?.magic.toString('hex'), '4a0b1c2d');
        assert.equal(net?.port, 38333);
      }
    });

    it('maps a known magic to its network', () => {
      assert.equal(config(['--magic', 'fabfb5da']).network?.name, 'regtest');
    });

    it('lets --magic win over --network', () => {
      assert.equal(config(['--network', 'main', '--magic', '4a0b1c2d']).network?.magic.toString('hex'), '4a0b1c2d');
    });

    it('refuses a magic that is not exactly 8 hex digits', () => {
      // '0x' is only a prefix: one in the middle is not dropped to leave 8 hex digits
      for (const bad of ['4a0b1c2', '4a0b1c2d0', 'zzzzzzzz', '', '0x', '4a0x0b1c2d']) {
        configError(['--magic', bad], /--magic/, /8 hex digits/);
      }
    });
  });

  describe('flags', () => {
    it('--v2-only and --allow-remote default off and switch on', () => {
      assert.equal(config([]).downgradeGuard, 'known');
      assert.equal(config([]).allowRemote, false);
      assert.equal(config(['--v2-only']).downgradeGuard, 'all');
      assert.equal(config(['--allow-remote']).allowRemote, true);
      assert.equal(config(['--v2-only', '--no-v2-only']).downgradeGuard, 'known');
      assert.equal(config(['--allow-remote', '--no-allow-remote']).allowRemote, false);
    });

    it('takes --downgrade-guard off, known or all, and --v2-only only with all', () => {
      assert.equal(config(['--downgrade-guard', 'off']).downgradeGuard, 'off');
      assert.equal(config(['--downgrade-guard', 'all']).downgradeGuard, 'all');
      configError(['--downgrade-guard', 'bogus'], /^--downgrade-guard: 'bogus' is not one of off, known, all/);
      assert.equal(config(['--v2-only', '--downgrade-guard', 'all']).downgradeGuard, 'all');
      configError(['--v2-only', '--downgrade-guard', 'known'], /^--v2-only is --downgrade-guard all; it contradicts --downgrade-guard known$/);
      configError(['--v2-only', '--downgrade-guard', 'off'], /it contradicts --downgrade-guard off$/);
    });
  });

  describe('proxies', () => {
    it('parses --upstream-proxy and uses it for onion destinations too by default', () => {
      const c = config(['--upstream-proxy', 'socks5://127.0.0.1:9050']);
      assert.equal(c.upstreamProxy?.host, '127.0.0.1');
      assert.equal(c.upstreamProxy?.port, 9050);
      assert.deepEqual(c.onionProxy, c.upstreamProxy);
    });

    it('keeps credentials from the URL', () => {
      const c = config(['--upstream-proxy', 'socks5://alice:s3cret@127.0.0.1:9050']);
      assert.equal(c.upstreamProxy?.username, 'alice');
      assert.equal(c.upstreamProxy?.password, 's3cret');
    });

    it('takes a separate --onion-proxy, leaving clearnet direct', () => {
      const c = config(['--onion-proxy', 'socks5://127.0.0.1:9150']);
      assert.equal(c.upstreamProxy, undefined);
      assert.equal(c.onionProxy?.port, 9150);
    });

    it('lets --onion-proxy override the upstream proxy for onions', () => {
      const c = config(['--upstream-proxy', 'socks5://127.0.0.1:9050', '--onion-proxy', 'socks5://[::1]:9150']);
      assert.equal(c.upstreamProxy?.port, 9050);
      assert.equal(c.onionProxy?.host, '::1');
      assert.equal(c.onionProxy?.port, 9150);
    });

    it('refuses a bad proxy URL, naming the option', () => {
      configError(['--upstream-proxy', 'http://127.0.0.1:8080'], /^--upstream-proxy: /);
      configError(['--onion-proxy', 'socks5://'], /^--onion-proxy: /);
      configError(['--upstream-proxy', 'not a url'], /^--upstream-proxy: /);
    });

    it('never puts a proxy password in an error message', () => {
      const secrets = ['hunter2-isolation', 'p%40ss%3Aw0rd', 'p@ss:w0rd'];
      const urls = [
        'socks5://user:hunter2-isolation@:9050',
        'socks5://user:hunter2-isolation@127.0.0.1:99999',
        'socks5://user:hunter2-isolation@127.0.0.1',
        'http://user:hunter2-isolation@127.0.0.1:9050',
        'socks5://user:p%40ss%3Aw0rd@[::1:9050',
        'socks4://user:hunter2-isolation@127.0.0.1:9050',
      ];
      for (const url of urls) {
        for (const option of ['--upstream-proxy', '--onion-proxy']) {
          const msg = configError([option, url], new RegExp(`^${option}`));
          for (const s of secrets) assert.ok(!msg.includes(s), `${msg} leaks ${s}`);
        }
      }
      const path = file('upstream-proxy=socks5://user:hunter2-isolation@127.0.0.1:0x\n');
      const msg = configError(['--config', path], /upstream-proxy \(in /);
      assert.ok(!msg.includes('hunter2-isolation'), msg);
    });

    it('describes a proxy for logs without its password', () => {
      const c = config(['--upstream-proxy', 'socks5://alice:s3cret@[::1]:9050']);
      assert.equal(describeProxy(c.upstreamProxy!), 'socks5://alice:***@[::1]:9050');
      assert.equal(describeProxy({ host: '127.0.0.1', port: 9050 }), 'socks5://127.0.0.1:9050');
    });
  });

  describe('numbers and timeouts', () => {
    it('takes --max-connections as a whole number of at least 1', () => {
      assert.equal(config(['--max-connections', '8']).maxConnections, 8);
      for (const bad of ['0', '-1', '1.5', 'many', '']) configError(['--max-connections', bad], /--max-connections/);
    });

    it('takes only plain digits for counts, and the minimum itself', () => {
      for (const bad of ['1e3', '0x10', '10.0', 'x5', '+5']) {
        assert.equal(configError(['--max-connections', bad]), `--max-connections: '${bad}' is not a whole number of at least 1; e.g. 1024`);
      }
      assert.equal(config(['--max-connections', '1']).maxConnections, 1);
      assert.equal(config(['--max-inbound-per-ip', '0']).inboundLimits.perIp, 0);
      configError(['--max-inbound', '0'], /^--max-inbound: '0' is not a whole number of at least 1/);
    });

    it('takes each timeout in seconds, fractions allowed, and stores milliseconds', () => {
      const c = config(['--socks-timeout', '3', '--connect-timeout', '19.5', '--handshake-timeout', '0.25', '--idle-timeout', '600']);
      assert.deepEqual(c.timeouts, { socksMs: 3000, connectMs: 19500, handshakeMs: 250, idleMs: 600_000 });
    });

    it("refuses --connect-timeout 20 and above, giving Bitcoin Core's 20 s SOCKS limit as the reason", () => {
      configError(['--connect-timeout', '25'], /--connect-timeout 25/, /below 20 seconds/, /Bitcoin Core/);
      configError(['--connect-timeout', '20'], /below 20 seconds/);
    });

    it('refuses zero, negative and non-numeric timeouts', () => {
      for (const opt of ['--socks-timeout', '--connect-timeout', '--handshake-timeout', '--idle-timeout']) {
        configError([opt, '0'], new RegExp(opt), /more than 0/);
        configError([`${opt}=-5`], new RegExp(opt));
        configError([opt, '5s'], new RegExp(opt), /not a number of seconds/);
        configError([opt, '1e1'], new RegExp(`^${opt}: '1e1' is not a number of seconds$`));
        configError([opt, 'x5'], new RegExp(`^${opt}: 'x5' is not a number of seconds$`));
      }
    });

    it('refuses a timeout too long for a Node timer instead of letting it fire at once', () => {
      configError(['--idle-timeout', '3000000'], /--idle-timeout/, /at most 2147483 seconds/);
      assert.equal(config(['--idle-timeout', '2147483']).timeouts.idleMs, 2_147_483_000);
    });
  });

  describe('--inbound', () => {
    it('parses LISTEN=TARGET and repeats', () => {
      const c = config(['--inbound', '127.0.0.1:8335=127.0.0.1:8334', '--inbound', '[::1]:8335=[::1]:8334']);
      assert.deepEqual(c.inbound, [
        { listen: { host: '127.0.0.1', port: 8335 }, target: { host: '127.0.0.1', port: 8334 } },
        { listen: { host: '::1', port: 8335 }, target: { host: '::1', port: 8334 } },
      ]);
    });

    it('defaults missing ports to the network P2P port when a network is set', () => {
      const c = config(['--network', 'regtest', '--inbound', '127.0.0.1=127.0.0.2']);
      assert.deepEqual(c.inbound, [{ listen: { host: '127.0.0.1', port: 18444 }, target: { host: '127.0.0.2', port: 18444 } }]);
      configError(['--inbound', '127.0.0.1=127.0.0.2'], /--inbound/, /no port/);
    });

    it('refuses a non-loopback inbound listener without --allow-remote, and takes it with', () => {
      configError(['--inbound', '0.0.0.0:8333=127.0.0.1:8334'], /--inbound 0\.0\.0\.0:8333/, /--allow-remote/);
      assert.equal(config(['--inbound', '0.0.0.0:8333=127.0.0.1:8334', '--allow-remote']).inbound[0]?.listen.host, '0.0.0.0');
    });

    it('allows a remote target without --allow-remote (it is dialed, not listened on)', () => {
      assert.equal(config(['--inbound', '127.0.0.1:8333=192.0.2.1:8333']).inbound[0]?.target.host, '192.0.2.1');
    });

    it('refuses a rule without "=" and a target port 0', () => {
      configError(['--inbound', '127.0.0.1:8333'], /LISTEN=TARGET/);
      configError(['--inbound', '127.0.0.1:8333=127.0.0.1:0'], /target needs a port/);
    });

    it('refuses a target that cannot be dialed or is an onion service, at start-up', () => {
      configError(
        ['--inbound', '127.0.0.1:8334=[fe80::1%eth0]:8333'],
        /^--inbound: '127\.0\.0\.1:8334=\[fe80::1%eth0\]:8333': the target cannot be dialed: /,
        /%scope/,
      );
      configError(['--inbound', '127.0.0.1:8334=foo.onion:8333'], /^--inbound: '127\.0\.0\.1:8334=foo\.onion:8333': the target cannot be dialed: /);
      // "Any address" is for listening; Linux would dial it as this host, others refuse it.
      for (const target of ['0.0.0.0:8333', '[::]:8333', '[0:0::0]:8333', '[::ffff:0.0.0.0]:8333']) {
        configError(['--inbound', `127.0.0.1:8334=${target}`], /: the target (0\.0\.0\.0|::) is "any address", not one to dial/);
      }
      assert.equal(config(['--inbound', '127.0.0.1:8334=10.0.0.0:8333']).inbound[0]?.target.host, '10.0.0.0');
      assert.equal(config(['--inbound', '127.0.0.1:8334=[::1]:8333']).inbound[0]?.target.host, '::1');
      const onion = '2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion';
      configError(
        ['--inbound', `127.0.0.1:8334=${onion}:8333`],
        /: the target must be the node's own address, not an onion service; e\.g\. 0\.0\.0\.0:8333=127\.0\.0\.1:8334$/,
      );
    });
  });

  describe('--metrics and logging', () => {
    it('serves metrics on 127.0.0.1:9324 by default, and not at all with --metrics off or metrics=off', () => {
      assert.deepEqual(config([]).metrics, { host: '127.0.0.1', port: 9324 });
      assert.equal(config(['--metrics', 'off']).metrics, undefined);
      assert.equal('metrics' in config(['--metrics', 'off']), false);
      assert.equal(config(['--config', file('metrics=off\n')]).metrics, undefined);
      // the command line wins over the file, both ways
      assert.deepEqual(config(['--config', file('metrics=off\n'), '--metrics', '127.0.0.1:9400']).metrics, { host: '127.0.0.1', port: 9400 });
      assert.equal(config(['--config', file('metrics=127.0.0.1:9400\n'), '--metrics', 'off']).metrics, undefined);
    });

    it('--log-timestamps is unset (automatic) by default, on or off when given, the command line winning', () => {
      assert.equal(config([]).logTimestamps, undefined);
      assert.equal(config(['--log-timestamps']).logTimestamps, true);
      assert.equal(config(['--no-log-timestamps']).logTimestamps, false);
      assert.equal(config(['--config', file('log-timestamps=0\n')]).logTimestamps, false);
      assert.equal(config(['--config', file('log-timestamps=0\n'), '--log-timestamps']).logTimestamps, true);
    });

    it('parses --metrics, port 0 allowed, loopback only without --allow-remote', () => {
      assert.deepEqual(config(['--metrics', '127.0.0.1:9324']).metrics, { host: '127.0.0.1', port: 9324 });
      assert.deepEqual(config(['--metrics', '[::1]:0']).metrics, { host: '::1', port: 0 });
      configError(['--metrics', '0.0.0.0:9324'], /--metrics/, /--allow-remote/);
      configError(['--metrics', '127.0.0.1'], /--metrics/, /no port/);
      assert.deepEqual(config(['--metrics', '0.0.0.0:9324', '--allow-remote']).metrics, { host: '0.0.0.0', port: 9324 });
    });

    it('--full is for status only, and never read from the file', () => {
      assert.equal(loadConfig(['status', '--full'], NO_ENV).full, true);
      assert.equal(loadConfig(['status'], NO_ENV).full, undefined);
      configError(['--full'], /--full only applies to status/);
      configError(['--config', file('full=1\n')], /full is only a command-line option/);
    });

    it('parses --log-level and --log-file', () => {
      for (const level of ['error', 'warn', 'info', 'debug'] as const) assert.equal(config(['--log-level', level]).logLevel, level);
      assert.equal(config(['--log-file', '/var/log/bip324-proxy.log']).logFile, '/var/log/bip324-proxy.log');
      configError(['--log-level', 'trace'], /--log-level/, /'trace' is not one of error, warn, info, debug/);
    });
  });

  describe('configuration file', () => {
    it('reads every option as key=value, with comments', () => {
      const path = file(
        [
          '# sample',
          '; also a comment',
          'listen=127.0.0.1:2000',
          'network=signet',
          'v2-only=1',
          'upstream-proxy=socks5://127.0.0.1:9050',
          'onion-proxy=socks5://127.0.0.1:9150',
          'max-connections=10',
          'socks-timeout=4',
          'connect-timeout=5',
          'handshake-timeout=6',
          'idle-timeout=7',
          'inbound=127.0.0.1:8335=127.0.0.1:8334',
          'metrics=127.0.0.1:9324',
          'log-level=debug',
          'log-file=/tmp/x.log',
          'allow-remote=0',
        ].join('\n'),
      );
      const parsed = loadConfig(['--config', path], NO_ENV);
      assert.equal(parsed.configFile, path);
      const c = parsed.config;
      assert.deepEqual(c.listen, [{ host: '127.0.0.1', port: 2000 }]);
      assert.equal(c.network?.name, 'signet');
      assert.equal(c.downgradeGuard, 'all');
      assert.equal(c.upstreamProxy?.port, 9050);
      assert.equal(c.onionProxy?.port, 9150);
      assert.equal(c.maxConnections, 10);
      assert.deepEqual(c.timeouts, { socksMs: 4000, connectMs: 5000, handshakeMs: 6000, idleMs: 7000 });
      assert.deepEqual(c.inbound, [{ listen: { host: '127.0.0.1', port: 8335 }, target: { host: '127.0.0.1', port: 8334 } }]);
      assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9324 });
      assert.equal(c.logLevel, 'debug');
      assert.equal(c.logFile, '/tmp/x.log');
      assert.equal(c.allowRemote, false);
    });

    it('accepts the magic key', () => {
      assert.equal(config(['--config', file('magic=4a0b1c2d\n')]).network?.magic.toString('hex'), '4a0b1c2d');
    });

    it('lets the command line win over the file', () => {
      const path = file('listen=127.0.0.1:2000\nnetwork=signet\nlog-level=debug\nconnect-timeout=5\nupstream-proxy=socks5://127.0.0.1:9050\n');
      const c = config(['--config', path, '--network', 'main', '--log-level', 'warn', '--listen', '127.0.0.1:3000']);
      assert.equal(c.network?.name, 'main');
      assert.equal(c.logLevel, 'warn');
      assert.deepEqual(c.listen, [{ host: '127.0.0.1', port: 3000 }]);
      // not given on the command line: the file's value stays
      assert.equal(c.timeouts.connectMs, 5000);
      assert.equal(c.upstreamProxy?.port, 9050);
    });

    it('lets --no-v2-only turn off v2-only=1 from the file', () => {
      const path = file('v2-only=1\n');
      assert.equal(config(['--config', path]).downgradeGuard, 'all');
      assert.equal(config(['--config', path, '--no-v2-only']).downgradeGuard, 'known');
    });

    it('reads the file wherever --config appears on the command line', () => {
      const path = file('network=regtest\n');
      assert.equal(config(['--log-level', 'info', '--config', path]).network?.name, 'regtest');
    });

    it('takes repeated keys and key[]= for repeatable options, in file order', () => {
      const c = config(['--config', file('listen=127.0.0.1:1\nlisten=[::1]:2\nlisten[]=127.0.0.3:3\ninbound[]=127.0.0.1:4=127.0.0.1:5\n')]);
      assert.deepEqual(c.listen.map(formatHostPort), ['127.0.0.1:1', '[::1]:2', '127.0.0.3:3']);
      assert.equal(c.inbound.length, 1);
    });

    it('reads flags as 1/0, true/false, yes/no, on/off or a bare key', () => {
      for (const on of ['v2-only=1', 'v2-only=true', 'v2-only=yes', 'v2-only=on', 'v2-only']) {
        assert.equal(config(['--config', file(`${on}\n`)]).downgradeGuard, 'all', on);
      }
      for (const off of ['v2-only=0', 'v2-only=false', 'v2-only=no', 'v2-only=off']) {
        assert.equal(config(['--config', file(`${off}\n`)]).downgradeGuard, 'known', off);
      }
      configError(['--config', file('v2-only=maybe\n')], /v2-only \(in .*\) must be 1 or 0/);
    });

    it('refuses an unknown key, naming it', () => {
      configError(['--config', file('listen=127.0.0.1:1324\nlisten-port=1324\n')], /unknown key 'listen-port'/, /config file /);
    });

    it('refuses command-line-only keys and sections', () => {
      configError(['--config', file('config=/etc/other.conf\n')], /config is only a command-line option/);
      configError(['--config', file('help=1\n')], /help is only a command-line option/);
      configError(['--config', file('[main]\nlisten=127.0.0.1:1\n')], /sections like \[main\] are not supported/);
    });

    it('refuses a single-valued key given twice', () => {
      configError(['--config', file('network=main\nnetwork=signet\n')], /network \(in .*\) is given more than once/);
      configError(['--config', file('v2-only=1\nv2-only=1\n')], /v2-only \(in .*\) is given more than once/);
      configError(['--config', file('v2-only\nv2-only=0\n')], /v2-only \(in .*\) is given more than once/);
    });

    it('refuses a string key without a value', () => {
      configError(['--config', file('listen\n')], /listen \(in .*\) needs a value \(listen=HOST:PORT\)$/);
      configError(['--config', file('network=\n')], /network \(in .*\) needs a value/);
      // a blank then # after the "=" starts a comment, as the man page says, not a value "#/var/log/x"
      configError(['--config', file('log-file= #/var/log/x\n')], /log-file \(in .*\) needs a value/);
    });

    it('names the file and key when a value from the file is bad', () => {
      const path = file('connect-timeout=25\n');
      configError(['--config', path], new RegExp(`connect-timeout \\(in ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) 25: must be below 20`));
      // From the file, the way out is the file's own key, not a command-line switch.
      const path2 = file('listen=0.0.0.0:1324\n');
      const msg = configError(['--config', path2], /listen \(in .*\) 0\.0\.0\.0:1324: not a loopback address/, /e\.g\. 127\.0\.0\.1:1324/);
      assert.ok(msg.includes(`allow-remote=1 in ${path2}`), msg);
      assert.doesNotMatch(msg, /--allow-remote/);
    });

    it('allows a remote listen address from the file with allow-remote=1 in the file', () => {
      assert.equal(config(['--config', file('listen=0.0.0.0:1324\nallow-remote=1\n')]).listen[0]?.host, '0.0.0.0');
    });

    it('refuses a missing file, naming --config', () => {
      configError(['--config', join(dir, 'nope.conf')], /--config: cannot read .*nope\.conf \(ENOENT\)/);
    });

    it(`reads the file named by ${CONFIG_ENV} when --config is absent, and --config wins over it`, () => {
      const fromEnv = file('network=testnet4\n');
      const fromCli = file('network=regtest\n');
      assert.equal(loadConfig([], { [CONFIG_ENV]: fromEnv }).config.network?.name, 'testnet4');
      assert.equal(loadConfig(['--config', fromCli], { [CONFIG_ENV]: fromEnv }).config.network?.name, 'regtest');
      assert.throws(
        () => loadConfig([], { [CONFIG_ENV]: join(dir, 'missing.conf') }),
        (e: unknown) => isProxyError(e, 'ERR_CONFIG') && e.message.startsWith(`${CONFIG_ENV}:`),
      );
    });

    it('accepts a value quoted or with an escaped # in it', () => {
      const c = config(['--config', file('log-file="/tmp/a #1.log"\n')]);
      assert.equal(c.logFile, '/tmp/a #1.log');
      assert.equal(config(['--config', file('log-file=/tmp/b\\#2.log # comment\n')]).logFile, '/tmp/b#2.log');
    });
  });

  describe('where the configuration file is looked for', () => {
    // Each place gets a file with its own network, so the result names the file that was read.
    let home: string;
    let xdg: string;
    let system: string;
    let fromEnv: string;
    beforeEach(() => {
      home = join(dir, 'home');
      xdg = join(dir, 'xdg');
      system = join(dir, 'etc', 'bip324-proxy.conf');
      fromEnv = file('network=main\n');
      mkdirSync(join(home, '.config', 'bip324-proxy'), { recursive: true });
      mkdirSync(join(xdg, 'bip324-proxy'), { recursive: true });
      mkdirSync(join(dir, 'etc'));
      writeFileSync(join(home, '.config', 'bip324-proxy', 'bip324-proxy.conf'), 'network=testnet4\n');
      writeFileSync(join(xdg, 'bip324-proxy', 'bip324-proxy.conf'), 'network=signet\n');
      writeFileSync(system, 'network=regtest\n');
    });
    function read(argv: string[], env: NodeJS.ProcessEnv): { network: string | undefined; file: string | undefined } {
      const parsed = loadConfig(argv, env, system);
      return { network: parsed.config.network?.name, file: parsed.configFile };
    }

    it(`takes --config, then $${CONFIG_ENV}, then $XDG_CONFIG_HOME, then ~/.config, then /etc, and reports which`, () => {
      const env = { [CONFIG_ENV]: fromEnv, XDG_CONFIG_HOME: xdg, HOME: home };
      const cli = file('network=testnet3\n');
      assert.deepEqual(read(['--config', cli], env), { network: 'testnet3', file: cli });
      assert.deepEqual(read([], env), { network: 'main', file: fromEnv });
      assert.deepEqual(read([], { XDG_CONFIG_HOME: xdg, HOME: home }), { network: 'signet', file: join(xdg, 'bip324-proxy', 'bip324-proxy.conf') });
      assert.deepEqual(read([], { HOME: home }), { network: 'testnet4', file: join(home, '.config', 'bip324-proxy', 'bip324-proxy.conf') });
      assert.deepEqual(read([], {}), { network: 'regtest', file: system });
    });

    it('skips a place with no file and reads none when there is none anywhere', () => {
      rmSync(join(xdg, 'bip324-proxy', 'bip324-proxy.conf'));
      // XDG_CONFIG_HOME replaces ~/.config rather than coming before it
      assert.deepEqual(read([], { XDG_CONFIG_HOME: xdg, HOME: home }), { network: 'regtest', file: system });
      rmSync(join(home, '.config', 'bip324-proxy', 'bip324-proxy.conf'));
      assert.deepEqual(read([], { HOME: home }), { network: 'regtest', file: system });
      rmSync(system);
      assert.deepEqual(read([], { XDG_CONFIG_HOME: join(dir, 'empty') }), { network: undefined, file: undefined });
    });

    it('ignores a relative XDG_CONFIG_HOME, as the XDG specification says, and uses ~/.config', () => {
      assert.equal(read([], { XDG_CONFIG_HOME: 'xdg', HOME: home }).network, 'testnet4');
      assert.equal(read([], { XDG_CONFIG_HOME: '', HOME: home }).network, 'testnet4');
    });

    function configError2(argv: string[], systemFile: string, pattern: RegExp): void {
      assert.throws(
        () => loadConfig(argv, {}, systemFile),
        (e: unknown) => isProxyError(e, 'ERR_CONFIG') && pattern.test(e.message),
      );
    }

    it('refuses a file found there that cannot be read (here a directory), naming it', () => {
      rmSync(system);
      mkdirSync(system);
      configError2([], system, /configuration file: cannot read .*bip324-proxy\.conf \(EISDIR\)/);
    });

    it('lists the places in order, the system file last', () => {
      assert.deepEqual(defaultConfigFiles({ XDG_CONFIG_HOME: '/x', HOME: '/h' }), ['/x/bip324-proxy/bip324-proxy.conf', '/etc/bip324-proxy/bip324-proxy.conf']);
      assert.deepEqual(defaultConfigFiles({ HOME: '/h' }), ['/h/.config/bip324-proxy/bip324-proxy.conf', '/etc/bip324-proxy/bip324-proxy.conf']);
      assert.deepEqual(defaultConfigFiles({}), ['/etc/bip324-proxy/bip324-proxy.conf']);
      assert.equal(SYSTEM_CONFIG_FILE, '/etc/bip324-proxy/bip324-proxy.conf');
    });
  });

  describe('error messages name the option, what is wrong, and a right value', () => {
    // Each input is one an operator tried (issue 11); the assertions are on the option and the example.
    it('--max-connections -5 (a value that looks like an option)', () => {
      const msg = configError(['--max-connections', '-5'], /^--max-connections: '-5' looks like an option/, /e\.g\. --max-connections 1024/);
      assert.doesNotMatch(msg, /\n|ambiguous/);
      configError(['--max-connections=-5'], /^--max-connections: '-5' is not a whole number/, /e\.g\. 1024/);
    });

    it('--metrics 9324 (a port without a host)', () => {
      configError(['--metrics', '9324'], /^--metrics: '9324' is a port without a host/, /e\.g\. 127\.0\.0\.1:9324, or off/);
      configError(['--listen', '1324'], /^--listen: '1324' is a port without a host/, /e\.g\. 127\.0\.0\.1:1324/);
    });

    it('--inbound =127.0.0.1:8334 and --inbound 127.0.0.1:8333= (an empty side)', () => {
      configError(
        ['--inbound', '=127.0.0.1:8334'],
        /^--inbound: '=127\.0\.0\.1:8334' has no LISTEN address before the '='/,
        /e\.g\. 0\.0\.0\.0:8333=127\.0\.0\.1:8334/,
      );
      configError(
        ['--inbound', '127.0.0.1:8333='],
        /^--inbound: '127\.0\.0\.1:8333=' has no TARGET address after the '='/,
        /e\.g\. 0\.0\.0\.0:8333=127\.0\.0\.1:8334/,
      );
    });

    it('--log-file= and --config= (an empty file name)', () => {
      configError(['--log-file='], /^--log-file: the file name is empty/, /e\.g\. \/var\/log\/bip324-proxy\.log/);
      configError(['--config='], /^--config: the file name is empty/, /e\.g\. \/etc\/bip324-proxy\/bip324-proxy\.conf/);
    });

    it('a remote address from the command line points at --allow-remote and a loopback example', () => {
      configError(['--listen', '0.0.0.0:1324'], /^--listen 0\.0\.0\.0:1324: not a loopback address/, /e\.g\. 127\.0\.0\.1:1324/, /or --allow-remote if/);
      configError(['--metrics', '0.0.0.0:9324'], /^--metrics 0\.0\.0\.0:9324/, /e\.g\. 127\.0\.0\.1:9324/, /--allow-remote/);
    });
  });

  describe('help text', () => {
    it('says where the configuration file is looked for and where the sample is, and the sample is there', () => {
      const flat = HELP_TEXT.replace(/\s+/g, ' ');
      assert.ok(flat.includes(`$${CONFIG_ENV}, else $XDG_CONFIG_HOME/bip324-proxy/bip324-proxy.conf`), flat);
      assert.ok(flat.includes('else /etc/bip324-proxy/bip324-proxy.conf, else none'), flat);
      assert.ok(HELP_TEXT.includes(`\n  ${SAMPLE_CONFIG_FILE}\n`));
      assert.ok(existsSync(SAMPLE_CONFIG_FILE), SAMPLE_CONFIG_FILE);
    });

    it('documents socks5h:// and a URL without a scheme, which the proxy options accept', () => {
      const flat = HELP_TEXT.replace(/\s+/g, ' ');
      assert.match(flat, /socks5h:\/\/ means the same/);
      assert.match(flat, /the scheme may be left out/);
      assert.deepEqual(config(['--upstream-proxy', 'socks5h://127.0.0.1:9050']).upstreamProxy, config(['--upstream-proxy', '127.0.0.1:9050']).upstreamProxy);
      assert.deepEqual(config(['--upstream-proxy', '127.0.0.1:9050']).upstreamProxy, config(['--upstream-proxy', 'socks5://127.0.0.1:9050']).upstreamProxy);
    });

    it('lists every option with its argument', () => {
      for (const [name, spec] of Object.entries(OPTIONS)) {
        const arg = 'arg' in spec ? ` ${spec.arg}` : '';
        assert.ok(HELP_TEXT.includes(`--${name}${arg}\n`), `--${name}${arg} missing from HELP_TEXT`);
      }
      assert.match(HELP_TEXT, /^Usage: bip324-proxy \[options\]\n/);
      assert.match(HELP_TEXT, /bip324-proxy status/);
    });

    it('fits an 80-column terminal', () => {
      // The sample's path is where the package was installed, which no wrapping can shorten.
      for (const line of HELP_TEXT.split('\n')) if (line !== `  ${SAMPLE_CONFIG_FILE}`) assert.ok(line.length <= 80, `too long: ${line}`);
    });
  });
});
