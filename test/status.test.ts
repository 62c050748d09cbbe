/**
 * `bip324-proxy status` against a live proxy's metrics endpoint on loopback, against a closed port,
 * and against endpoints that hang or answer something else; plus the table's formatting rules.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { Writable } from 'node:stream';

import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { Metrics, startMetricsServer, type ConnectionInfo, type MetricsServer } from '../src/metrics.js';
import { networkByName } from '../src/networks.js';
import { DEFAULT_METRICS_PORT, STATUS_TIMEOUT_MS, formatStatus, humanAge, humanBytes, runStatus } from '../src/status.js';
import { MessageChannel, closedPort, socks5Connect, startTestNode, type TestNode, versionPayload } from './helpers/node.js';
import { startProxy, testConfig, type TestProxy } from './helpers/proxy.js';
import { skipBecause } from './helpers/skip.js';

const main = networkByName('main')!;
const quietLog = createLogger({ level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) });

function collector(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

/**
 * Runs status against `address`; without one, with the configuration `bip324-proxy status` gets
 * when given no options and no configuration file; 'off' as after --metrics off.
 */
async function status(address: { host: string; port: number } | undefined | 'off', full = false): Promise<{ code: number; out: string; err: string }> {
  const out = collector();
  const err = collector();
  const config =
    address === undefined
      ? loadConfig(['status'], {}, '/nonexistent/bip324-proxy.conf').config
      : address === 'off'
        ? loadConfig(['status', '--metrics', 'off'], {}, '/nonexistent/bip324-proxy.conf').config
        : testConfig({ metrics: address });
  const code = await runStatus(config, out.stream, err.stream, { full });
  return { code, out: out.text(), err: err.text() };
}

async function httpServer(handler: http.RequestListener, port = 0, host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function info(over: Partial<ConnectionInfo>): ConnectionInfo {
  return {
    id: 1,
    frontend: 'socks5',
    client: '127.0.0.1:50000',
    peer: '203.0.113.7:8333',
    transport: 'v2',
    session_id: 'ab'.repeat(32),
    bytes_to_peer: 0,
    bytes_from_peer: 0,
    msgs_to_peer: 0,
    msgs_from_peer: 0,
    age_seconds: 0,
    established: true,
    ...over,
  };
}

describe('status: a live proxy', function () {
  let node: TestNode;
  let proxy: TestProxy;
  let server: MetricsServer;
  before(async () => {
    node = await startTestNode(main.magic);
    const metrics = new Metrics({ collectDefault: false });
    proxy = await startProxy({}, { observer: metrics });
    server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => proxy.server.connections, quietLog);
  });
  after(async () => {
    await server.close();
    await proxy.stop();
    await node.stop();
  });

  it('prints "no connections" when the proxy has none', async () => {
    const r = await status(server.address);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'no connections\n');
    assert.equal(r.err, '');
  });

  it('prints a row with the peer, the transport and the session id prefix the node computed, then a total line', async () => {
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    const ch = new MessageChannel(socket, main.magic);
    ch.send('version', versionPayload());
    await ch.next('version');
    await ch.next('verack');
    try {
      const r = await status(server.address);
      assert.equal(r.code, 0, r.err);
      const lines = r.out.trimEnd().split('\n');
      assert.equal(lines.length, 3);
      assert.match(lines[0], /^ID\s+FRONTEND\s+PEER\s+TRANSPORT\s+SESSION\s+TO PEER\s+FROM PEER\s+MSGS\s+AGE$/);
      const session = node.channels[0].sessionId!.toString('hex');
      assert.ok(lines[1].includes(`${session.slice(0, 16)}…`), lines[1]);
      assert.ok(!lines[1].includes(session.slice(0, 17)), 'only the first 16 hex digits');
      assert.ok(lines[1].includes(` 127.0.0.1:${node.port} `), lines[1]);
      assert.match(lines[1], /\bsocks5\b.*\bv2\b/);
      assert.match(lines[1], / 1\/2 /); // version to the peer; version+verack from it
      assert.equal(lines[2], '1 connection: 1 v2');

      const full = await status(server.address, true);
      assert.equal(full.code, 0, full.err);
      const row = full.out.split('\n')[1];
      assert.ok(row.includes(` ${session} `), `--full shows the whole session id: ${row}`);
      assert.ok(!row.includes('…'), row);
    } finally {
      socket.destroy();
    }
  });
});

describe('status: failures', function () {
  it('a closed port returns 1 with a message naming the address and hinting at --metrics', async () => {
    const port = await closedPort();
    const r = await status({ host: '127.0.0.1', port });
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, new RegExp(`127\\.0\\.0\\.1:${port}.*connection refused`));
    assert.match(r.err, new RegExp(`running with --metrics 127\\.0\\.0\\.1:${port}\\?`));
  });

  it('without --metrics it asks 127.0.0.1:9324, and when nothing is there asks whether the daemon runs and with which --metrics', async function () {
    let fake;
    try {
      fake = await httpServer((req, res) => res.end(req.url === '/connections' ? '[]' : 'nope'), DEFAULT_METRICS_PORT);
    } catch {
      skipBecause(this, `something else owns 127.0.0.1:${DEFAULT_METRICS_PORT} on this machine`);
    }
    try {
      const r = await status(undefined);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, 'no connections\n');
    } finally {
      await fake.close();
    }
    const r = await status(undefined);
    assert.equal(r.code, 1);
    assert.match(r.err, /127\.0\.0\.1:9324: connection refused/);
    assert.match(r.err, /It serves status on 127\.0\.0\.1:9324 unless it was started with --metrics off or another --metrics HOST:PORT/);
  });

  it('with metrics turned off it says so, with an address to pass instead', async () => {
    const r = await status('off');
    assert.equal(r.code, 1);
    assert.match(r.err, /metrics are off/);
    assert.match(r.err, /e\.g\. --metrics 127\.0\.0\.1:9324/);
  });

  it("a port that does not speak HTTP (the proxy's own port, say) names --metrics and a right value, not a parser code alone", async () => {
    // One server answers with bytes that are not HTTP (Node: HPE_INVALID_CONSTANT), the other
    // resets at once, as the proxy's SOCKS5 port does on "GET" (ERR_UNKNOWN_PROTOCOL).
    const garbage = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n'));
    const closing = net.createServer((s) => s.resetAndDestroy());
    for (const srv of [garbage, closing]) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      for (const srv of [garbage, closing]) {
        const port = (srv.address() as net.AddressInfo).port;
        const r = await status({ host: '127.0.0.1', port });
        assert.equal(r.code, 1);
        assert.match(r.err, new RegExp(`--metrics 127\\.0\\.0\\.1:${port}: no HTTP answer there`));
        assert.match(r.err, /e\.g\. --metrics 127\.0\.0\.1:9324, not its SOCKS5 or P2P port/);
      }
    } finally {
      garbage.close();
      closing.close();
    }
  });

  // The idle timeout alone would wait forever on a server that trickles a byte now and then.
  for (const [what, onConnection] of [
    ['never answers', (): void => {}],
    [
      'trickles a never-ending body',
      (s: net.Socket): void => {
        s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
        const drip = setInterval(() => s.write('1\r\n \r\n'), 500);
        s.on('close', () => clearInterval(drip));
        s.on('error', () => {});
      },
    ],
  ] as const) {
    it(`an endpoint that ${what} returns 1 after the 3 s timeout`, async function () {
      this.timeout(10_000);
      const server = net.createServer(onConnection);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as net.AddressInfo).port;
      try {
        const started = Date.now();
        const r = await status({ host: '127.0.0.1', port });
        const took = Date.now() - started;
        assert.equal(r.code, 1);
        // A timer never fires before its delay, so this bound holds on any machine (an upper bound
        // would only measure how busy the machine is; the test's own 10 s timeout is the backstop).
        assert.ok(took >= 2900, `gave up after ${took} ms, before the 3 s timeout`);
        assert.match(r.err, /no answer .* within 3 s/);
      } finally {
        // status destroyed its socket, which ends the drip.
        server.close();
      }
    });
  }

  it('an endpoint that answers without end returns 1 once it has sent more than 64 MiB, holding no more than that', async () => {
    // Bytes sent on each connection (status asks /info and /connections at once).
    const sent: number[] = [];
    const chunk = Buffer.alloc(1 << 20, 0x20);
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n[');
      const i = sent.push(0) - 1;
      const more = (): void => {
        while (!s.destroyed && sent[i] < 300 * chunk.length) {
          sent[i] += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', more);
        }
      };
      more();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const r = await status({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
      assert.equal(r.code, 1);
      assert.match(r.err, /GET \/connections answered more than 64 MiB; is that a bip324-proxy metrics endpoint/);
      // It stopped reading there: what the server got into each socket is 64 MiB and what the kernel buffers.
      for (const n of sent) assert.ok(n < 100 * chunk.length, `the server sent ${n / chunk.length} MiB on one connection`);
    } finally {
      server.close();
    }
  });

  it('reads an answer of exactly 64 MiB', async () => {
    const rows = JSON.stringify([info({})]);
    const body = Buffer.alloc(64 * 2 ** 20, 0x20);
    body.write(rows, 0);
    const server = await httpServer((req, res) => {
      if (req.url === '/connections') res.end(body);
      else res.writeHead(404).end();
    });
    try {
      const r = await status({ host: '127.0.0.1', port: server.port });
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trimEnd().split('\n').length, 3);
    } finally {
      await server.close();
    }
  });

  it('an HTTP server that is not a bip324-proxy (404, or not JSON) returns 1 and says so', async () => {
    const notFound = await httpServer((_req, res) => {
      res.statusCode = 404;
      res.end('not here');
    });
    const notJson = await httpServer((_req, res) => res.end('<html>'));
    try {
      const a = await status({ host: '127.0.0.1', port: notFound.port });
      assert.equal(a.code, 1);
      assert.match(a.err, /HTTP 404/);
      const b = await status({ host: '127.0.0.1', port: notJson.port });
      assert.equal(b.code, 1);
      assert.match(b.err, /not answer JSON/);
    } finally {
      await notFound.close();
      await notJson.close();
    }
  });
});

describe('status: what it accepts as an answer, and how it fails', function () {
  /** A fake metrics endpoint answering `bodies[path]` (200), 404 for other paths. */
  async function fake(bodies: Record<string, string>, port = 0, host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
    return httpServer(
      (req, res) => {
        const body = bodies[req.url ?? ''];
        res.statusCode = body === undefined ? 404 : 200;
        res.end(body ?? 'not found');
      },
      port,
      host,
    );
  }

  it('a body that is JSON but not a list of connections returns 1 and says so (no crash, no table of junk)', async () => {
    for (const body of ['{"id":1}', '[null]', '[1]', '[{}]', '[{"id":"7"}]']) {
      const server = await fake({ '/connections': body });
      try {
        const r = await status({ host: '127.0.0.1', port: server.port });
        assert.equal(r.code, 1, body);
        assert.equal(r.out, '', body);
        assert.match(r.err, /GET \/connections did not answer a list of connections/, body);
      } finally {
        await server.close();
      }
    }
  });

  it('an /info that is not what a bip324-proxy answers counts as no /info: no shaping shown', async () => {
    for (const info of ['null', '{}', '{"shaping":null}', '{"shaping":{"mode":"bogus","rate":1024}}', '{"shaping":{"mode":"pad","rate":"1024"}}', 'pad']) {
      const server = await fake({ '/connections': '[]', '/info': info });
      try {
        const r = await status({ host: '127.0.0.1', port: server.port });
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, 'no connections\n', info);
      } finally {
        await server.close();
      }
    }
    const server = await fake({ '/connections': '[]', '/info': '{"shaping":{"mode":"pad","rate":1024}}' });
    try {
      assert.equal((await status({ host: '127.0.0.1', port: server.port })).out, 'no connections; shaping pad\n');
    } finally {
      await server.close();
    }
  });

  it('a --metrics address other than the default gets the hint naming it, even on the default port', async function () {
    let server;
    try {
      server = await fake({}, DEFAULT_METRICS_PORT, '127.0.0.2');
    } catch {
      skipBecause(this, `127.0.0.2:${DEFAULT_METRICS_PORT} cannot be bound on this machine`);
    }
    try {
      const r = await status({ host: '127.0.0.2', port: DEFAULT_METRICS_PORT });
      assert.equal(r.code, 1);
      assert.match(r.err, /HTTP 404/);
      assert.match(r.err, /Is bip324-proxy running with --metrics 127\.0\.0\.2:9324\?/);
      assert.doesNotMatch(r.err, /It serves status on/);
    } finally {
      await server.close();
    }
  });

  it('an error Node reports with a code is named by its code', async () => {
    // Node refuses the port before connecting (ERR_SOCKET_BAD_PORT); its message would say it differently.
    const r = await status({ host: '127.0.0.1', port: 70_000 });
    assert.equal(r.code, 1);
    assert.match(r.err, /^bip324-proxy status: cannot reach 127\.0\.0\.1:70000: ERR_SOCKET_BAD_PORT\. /);
  });

  it('an output stream that throws does not leave status hanging', async () => {
    const server = await fake({ '/connections': '[]' });
    const broken = new Writable({ write: (_c, _e, done) => done() });
    broken.write = () => {
      throw new Error('EPIPE');
    };
    try {
      const config = testConfig({ metrics: { host: '127.0.0.1', port: server.port } });
      assert.equal(await runStatus(config, broken, broken), 0);
    } finally {
      await server.close();
    }
  });

  it('clears its 3 s deadline once each request is over, rather than letting it fire later', async () => {
    const server = await fake({ '/connections': '[]', '/info': '{"shaping":{"mode":"off","rate":0}}' });
    // Watch the timers status sets with its deadline: each must be cleared, none may fire.
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    const deadlines = new Map<unknown, { cleared: boolean; fired: boolean }>();
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      if (ms !== STATUS_TIMEOUT_MS) return realSet(fn, ms);
      const state = { cleared: false, fired: false };
      const handle = realSet(() => {
        state.fired = true;
        fn();
      }, ms);
      deadlines.set(handle, state);
      return handle;
    }) as typeof setTimeout;
    globalThis.clearTimeout = (handle: Parameters<typeof clearTimeout>[0]) => {
      const state = deadlines.get(handle);
      if (state !== undefined) state.cleared = true;
      realClear(handle);
    };
    try {
      assert.equal((await status({ host: '127.0.0.1', port: server.port })).code, 0);
      assert.ok(deadlines.size > 0, 'status set its deadline with setTimeout');
      // The sockets close just after the answers; wait for that, or for a deadline to fire.
      while ([...deadlines.values()].some((d) => !d.cleared && !d.fired)) await new Promise((r) => realSet(r, 10));
      assert.deepEqual(
        [...deadlines.values()].filter((d) => d.fired || !d.cleared),
        [],
      );
    } finally {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
      await server.close();
    }
  });
});

describe('status: formatting', function () {
  it('human bytes use decimal units with one decimal below 10', () => {
    assert.equal(humanBytes(0), '0 B');
    assert.equal(humanBytes(999), '999 B');
    assert.equal(humanBytes(1000), '1.0 kB');
    assert.equal(humanBytes(45_300), '45 kB');
    assert.equal(humanBytes(1_234_567), '1.2 MB');
    assert.equal(humanBytes(999_600), '1.0 MB');
    assert.equal(humanBytes(12_000_000_000), '12 GB');
    // Where a unit or the decimal changes, and the largest unit.
    assert.equal(humanBytes(9_949), '9.9 kB');
    assert.equal(humanBytes(9_950), '10 kB');
    assert.equal(humanBytes(999_499), '999 kB');
    assert.equal(humanBytes(999_500), '1.0 MB');
    assert.equal(humanBytes(1e18), '1000 PB');
  });

  it('ages show two units at most', () => {
    assert.equal(humanAge(0), '0s');
    assert.equal(humanAge(42.9), '42s');
    assert.equal(humanAge(307), '5m07s');
    assert.equal(humanAge(3720), '1h02m');
    assert.equal(humanAge(3 * 86400 + 4 * 3600 + 59), '3d04h');
    // Where the unit changes.
    assert.equal(humanAge(59), '59s');
    assert.equal(humanAge(60), '1m00s');
    assert.equal(humanAge(3599), '59m59s');
    assert.equal(humanAge(3600), '1h00m');
    assert.equal(humanAge(86_399), '23h59m');
    assert.equal(humanAge(86_400), '1d00h');
  });

  it('every column is aligned by its kind: numbers right, names left', () => {
    // Two rows whose cells differ in width in every column, so either alignment shows.
    const text = formatStatus(
      [
        info({
          id: 3,
          frontend: 'inbound',
          peer: '198.51.100.1:8333',
          transport: 'inbound-v1',
          session_id: null,
          bytes_to_peer: 5,
          bytes_from_peer: 1_234_567,
          msgs_to_peer: 1,
          msgs_from_peer: 2,
          age_seconds: 5,
        }),
        info({
          id: 12,
          peer: '[2001:db8::1]:8333',
          bytes_to_peer: 45_300,
          msgs_to_peer: 1234,
          msgs_from_peer: 5678,
          shaping: 'cover',
          decoys_to_peer: 12,
          decoy_bytes_to_peer: 4608,
          age_seconds: 3720,
        }),
      ],
      false,
      { mode: 'cover', rate: 1024 },
    );
    const [header, ...rows] = text.trimEnd().split('\n').slice(0, -1);
    // A cell is a run of text with single spaces inside; columns are two spaces or more apart.
    const cellsOf = (line: string): { text: string; start: number; end: number }[] =>
      [...line.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ text: m[0], start: m.index, end: m.index + m[0].length }));
    const expected: [string, 'left' | 'right'][] = [
      ['ID', 'right'],
      ['FRONTEND', 'left'],
      ['PEER', 'left'],
      ['TRANSPORT', 'left'],
      ['SESSION', 'left'],
      ['TO PEER', 'right'],
      ['FROM PEER', 'right'],
      ['MSGS', 'right'],
      ['DECOYS', 'right'],
      ['AGE', 'right'],
    ];
    const heads = cellsOf(header);
    assert.deepEqual(
      heads.map((h) => h.text),
      expected.map(([name]) => name),
    );
    assert.deepEqual(
      rows.map((r) => cellsOf(r).map((c) => c.text)),
      [
        ['3', 'inbound', '198.51.100.1:8333', 'inbound-v1', '-', '5 B', '1.2 MB', '1/2', '-', '5s'],
        ['12', 'socks5', '[2001:db8::1]:8333', 'v2', `${'ab'.repeat(8)}…`, '45 kB', '0 B', '1234/5678', '12 (4.6 kB)', '1h02m'],
      ],
    );
    for (const row of rows) {
      const cells = cellsOf(row);
      expected.forEach(([name, side], i) => {
        if (side === 'left') assert.equal(cells[i].start, heads[i].start, `${name} left-aligned in ${JSON.stringify(row)}`);
        else assert.equal(cells[i].end, heads[i].end, `${name} right-aligned in ${JSON.stringify(row)}`);
      });
    }
  });

  it('the DECOYS column shows when /info or any connection says shaping is on; "-" for a connection neither shaped nor sending decoys', () => {
    const v2 = (over: Partial<ConnectionInfo>): ConnectionInfo => info({ session_id: null, age_seconds: 5, ...over });
    const cases: { what: string; list: ConnectionInfo[]; shaping?: { mode: 'off' | 'pad' | 'cover'; rate: number }; decoys?: string[]; total: string }[] = [
      { what: 'no /info, nothing shaped', list: [v2({ shaping: null, decoys_to_peer: 0 })], total: '1 connection: 1 v2' },
      {
        what: 'no /info, one connection shaped with no decoys yet',
        list: [v2({ shaping: 'cover', decoys_to_peer: 0, decoy_bytes_to_peer: 0 })],
        decoys: ['0 (0 B)'],
        total: '1 connection: 1 v2; shaping: 0 decoys (0 B)',
      },
      {
        what: 'no /info, a connection that sent a decoy',
        list: [v2({ decoys_to_peer: 1, decoy_bytes_to_peer: 300 })],
        decoys: ['1 (300 B)'],
        total: '1 connection: 1 v2; shaping: 1 decoy (300 B)',
      },
      {
        what: '/info says pad, a relayed connection (never shaped)',
        list: [v2({ transport: 'passthrough', shaping: null, decoys_to_peer: 0 })],
        shaping: { mode: 'pad', rate: 1024 },
        decoys: ['-'],
        total: '1 connection: 1 passthrough; shaping pad: 0 decoys (0 B)',
      },
      {
        what: 'no /info, one shaped connection of two',
        list: [v2({ id: 1, shaping: null, decoys_to_peer: 0 }), v2({ id: 2, shaping: 'cover', decoys_to_peer: 2, decoy_bytes_to_peer: 2000 })],
        decoys: ['-', '2 (2.0 kB)'],
        total: '2 connections: 2 v2; shaping: 2 decoys (2.0 kB)',
      },
    ];
    for (const c of cases) {
      const lines = formatStatus(c.list, false, c.shaping).trimEnd().split('\n');
      const columns = (line: string): string[] => line.trim().split(/ {2,}/);
      const at = columns(lines[0]).indexOf('DECOYS');
      if (c.decoys === undefined) assert.equal(at, -1, c.what);
      else
        assert.deepEqual(
          lines.slice(1, -1).map((l) => columns(l)[at]),
          c.decoys,
          c.what,
        );
      assert.equal(lines[lines.length - 1], c.total, c.what);
    }
  });

  it('the summary counts transports it does not know after the known ones, in alphabetical order', () => {
    const text = formatStatus([
      info({ id: 1, transport: 'zeta' }),
      info({ id: 2, transport: 'alpha' }),
      info({ id: 3, transport: 'v2' }),
      info({ id: 4, transport: 'zeta' }),
    ]);
    assert.match(text, /\n4 connections: 1 v2, 1 alpha, 2 zeta\n$/);
  });

  it('columns line up whatever the cell widths, numbers right-aligned', () => {
    const text = formatStatus([
      info({ id: 12, peer: '[2001:db8::1]:8333', bytes_to_peer: 1_234_567, msgs_to_peer: 1234, age_seconds: 3720 }),
      info({ id: 3, frontend: 'inbound', peer: '198.51.100.1:8333', transport: 'inbound-v1', session_id: null, age_seconds: 5 }),
      info({ id: 4, transport: 'passthrough', session_id: null, bytes_from_peer: 12 }),
    ]);
    const lines = text.trimEnd().split('\n');
    const table = lines.slice(0, -1);
    // The last column is right-aligned, so every table line ends at the same column.
    assert.equal(new Set(table.map((l) => l.length)).size, 1, text);
    // Rows come sorted by id; every column header starts where its cells start or (right-aligned) ends where they end.
    assert.deepEqual(
      table.slice(1).map((l) => l.trim().split(/\s+/)[0]),
      ['3', '4', '12'],
    );
    const peerCol = lines[0].indexOf('PEER');
    assert.equal(table[3].indexOf('[2001:db8::1]:8333'), peerCol);
    const toEnd = lines[0].indexOf('TO PEER') + 'TO PEER'.length;
    assert.equal(table[3].indexOf('1.2 MB') + '1.2 MB'.length, toEnd);
    assert.ok(table[3].includes(`${'ab'.repeat(8)}…`));
    assert.ok(table[1].includes(' - '), 'a missing session id shows as -');
    assert.equal(lines[lines.length - 1], '3 connections: 1 v2, 1 inbound-v1, 1 passthrough');
  });

  it('a connection not yet established counts as pending', () => {
    const text = formatStatus([info({ transport: null, session_id: null, peer: null, established: false })]);
    assert.match(text, /\bpending\b/);
    assert.match(text, /1 connection: 1 pending\n$/);
  });

  it('no connections prints one line', () => {
    assert.equal(formatStatus([]), 'no connections\n');
  });

  it('with shaping on, a DECOYS column (packets and bytes per connection) and the mode and totals on the last line', () => {
    const text = formatStatus(
      [
        info({ id: 1, shaping: 'cover', decoys_to_peer: 12, decoy_bytes_to_peer: 4608 }),
        info({ id: 2, transport: 'passthrough', session_id: null, shaping: null, decoys_to_peer: 0, decoy_bytes_to_peer: 0 }),
      ],
      false,
      { mode: 'cover', rate: 1024 },
    );
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0], /^ID\s+FRONTEND\s+PEER\s+TRANSPORT\s+SESSION\s+TO PEER\s+FROM PEER\s+MSGS\s+DECOYS\s+AGE$/);
    assert.match(lines[1], / 12 \(4\.6 kB\) /);
    assert.match(lines[2], / - /);
    assert.equal(lines[3], '2 connections: 1 v2, 1 passthrough; shaping cover at 1024 B/s per connection: 12 decoys (4.6 kB)');
    assert.equal(formatStatus([], false, { mode: 'pad', rate: 1024 }), 'no connections; shaping pad\n');
    // Off: the table as before.
    assert.equal(formatStatus([info({})], false, { mode: 'off', rate: 1024 }), formatStatus([info({})]));
    assert.doesNotMatch(formatStatus([info({})], false, { mode: 'off', rate: 1024 }), /DECOYS|shaping/);
  });
});

describe('status: a proxy that shapes its traffic', function () {
  it('shows the mode from GET /info and the decoys each connection sent', async () => {
    const node = await startTestNode(main.magic);
    const metrics = new Metrics({ collectDefault: false, shaping: { mode: 'cover', rate: 20_000 } });
    const proxy = await startProxy({ shaping: { mode: 'cover', rate: 20_000 } }, { observer: metrics });
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => proxy.server.connections, quietLog);
    const empty = await status(server.address);
    assert.equal(empty.out, 'no connections; shaping cover at 20000 B/s per connection\n');
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    try {
      const ch = new MessageChannel(socket, main.magic);
      ch.send('version', versionPayload());
      await ch.next('verack');
      await new Promise((r) => setTimeout(r, 300));
      const r = await status(server.address);
      assert.equal(r.code, 0, r.err);
      const lines = r.out.trimEnd().split('\n');
      assert.match(lines[0], /\bDECOYS\b/);
      const decoys = proxy.server.connections[0].decoysToPeer;
      assert.ok(decoys > 0);
      assert.match(lines[1], / [0-9]+ \([0-9.]+ (k?B)\) /);
      assert.match(lines[2], /^1 connection: 1 v2; shaping cover at 20000 B\/s per connection: [0-9]+ decoys \(/);
    } finally {
      socket.destroy();
      await server.close();
      await proxy.stop();
      await node.stop();
    }
  });
});
