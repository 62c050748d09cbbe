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
import { DEFAULT_METRICS_PORT, formatStatus, humanAge, humanBytes, runStatus } from '../src/status.js';
import { MessageChannel, socks5Connect, startTestNode, type TestNode, versionPayload } from './helpers/node.js';
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

/** A port on which nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function httpServer(handler: http.RequestListener, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
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
      const row = full.out.split('\n')[1]!;
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

  it('a port that does not speak HTTP (the proxy\'s own port, say) names --metrics and a right value, not a parser code alone', async () => {
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

  it('an endpoint that never answers returns 1 after the 3 s timeout', async function () {
    this.timeout(10_000);
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
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
      silent.close();
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

describe('status: formatting', function () {
  it('human bytes use decimal units with one decimal below 10', () => {
    assert.equal(humanBytes(0), '0 B');
    assert.equal(humanBytes(999), '999 B');
    assert.equal(humanBytes(1000), '1.0 kB');
    assert.equal(humanBytes(45_300), '45 kB');
    assert.equal(humanBytes(1_234_567), '1.2 MB');
    assert.equal(humanBytes(999_600), '1.0 MB');
    assert.equal(humanBytes(12_000_000_000), '12 GB');
  });

  it('ages show two units at most', () => {
    assert.equal(humanAge(0), '0s');
    assert.equal(humanAge(42.9), '42s');
    assert.equal(humanAge(307), '5m07s');
    assert.equal(humanAge(3720), '1h02m');
    assert.equal(humanAge(3 * 86400 + 4 * 3600 + 59), '3d04h');
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
    assert.deepEqual(table.slice(1).map((l) => l.trim().split(/\s+/)[0]), ['3', '4', '12']);
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
});
