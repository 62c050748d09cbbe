/**
 * Metrics and the /connections endpoint, end to end on loopback: a proxy with a Metrics observer,
 * v1 clients through SOCKS5 to a v2 test node, and the Prometheus text parsed back from /metrics.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { Writable } from 'node:stream';

import { type ConnectionRecord, newRecord } from '../src/engine/record.js';
import { createLogger } from '../src/log.js';
import {
  HANDSHAKE_BUCKETS_SECONDS,
  Metrics,
  describeConnection,
  hostAllowed,
  startMetricsServer,
  type ConnectionInfo,
  type MetricsServer,
} from '../src/metrics.js';
import { networkByName } from '../src/networks.js';
import { MessageChannel, handshakeV1, socks5Connect, startTestNode, type TestNode, versionPayload } from './helpers/node.js';
import { startProxy, type TestProxy } from './helpers/proxy.js';

const main = networkByName('main')!;

const quietLog = createLogger({ level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) });

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The sample lines of the Prometheus text format (comments skipped); enough for prom-client's output. */
function parseProm(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`; undefined if none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(labels)} matches ${hits.length} samples`);
  return hits[0]?.value;
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function scrape(port: number): Promise<Sample[]> {
  const res = await get(port, '/metrics');
  assert.equal(res.status, 200);
  return parseProm(res.body);
}

async function until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sum = (records: ConnectionRecord[], key: 'bytesToPeer' | 'bytesFromPeer' | 'msgsToPeer' | 'msgsFromPeer'): number =>
  records.reduce((acc, r) => acc + r[key], 0);

const P = 'bip324_proxy_';

describe('metrics: live counters of a running proxy', function () {
  let node: TestNode;
  let proxy: TestProxy;
  let metrics: Metrics;
  let server: MetricsServer;

  afterEach(async () => {
    await server?.close();
    await proxy?.stop();
    await node?.stop();
  });

  async function start(mode: 'v2' | 'v1-close' = 'v2', overrides: Parameters<typeof startProxy>[0] = {}): Promise<void> {
    node = await startTestNode(main.magic, mode);
    metrics = new Metrics({ collectDefault: false });
    proxy = await startProxy(overrides, { observer: metrics });
    server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => proxy.server.connections, quietLog);
  }

  it('counts two SOCKS5 v2 connections mid-connection and after close, bytes and messages equal to the records, never twice', async () => {
    await start();
    const clients: MessageChannel[] = [];
    for (let i = 0; i < 2; i++) {
      const { socket, rep } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
      assert.equal(rep, 0);
      const ch = new MessageChannel(socket, main.magic);
      await handshakeV1(ch);
      ch.send('ping', Buffer.alloc(8, i));
      assert.deepEqual((await ch.next('pong')).payload, Buffer.alloc(8, i));
      clients.push(ch);
    }
    // Once the pong is back nothing moves any more, so the records and a scrape agree exactly.
    const records = proxy.server.connections;
    assert.equal(records.length, 2);
    let s = await scrape(server.address.port);
    assert.equal(value(s, `${P}connections_opened_total`, { frontend: 'socks5' }), 2);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'socks5', transport: 'v2' }), 2);
    assert.equal(value(s, `${P}handshake_duration_seconds_count`), 2);
    assert.equal(value(s, `${P}handshake_duration_seconds_bucket`, { le: '+Inf' }), 2);
    const live = {
      bytesTo: sum(records, 'bytesToPeer'),
      bytesFrom: sum(records, 'bytesFromPeer'),
      msgsTo: sum(records, 'msgsToPeer'),
      msgsFrom: sum(records, 'msgsFromPeer'),
    };
    // version, verack, ping each way per connection (version+verack+pong back)
    assert.equal(live.msgsTo, 2 * 3);
    assert.equal(live.msgsFrom, 2 * 3);
    assert.ok(live.bytesTo > 0 && live.bytesFrom > 0);
    assert.equal(value(s, `${P}bytes_total`, { direction: 'to_peer' }), live.bytesTo);
    assert.equal(value(s, `${P}bytes_total`, { direction: 'from_peer' }), live.bytesFrom);
    assert.equal(value(s, `${P}messages_total`, { direction: 'to_peer' }), live.msgsTo);
    assert.equal(value(s, `${P}messages_total`, { direction: 'from_peer' }), live.msgsFrom);
    assert.equal(value(s, `${P}connections_closed_total`), undefined);

    // A second scrape of the same state gives the same numbers: collect() must not accumulate.
    const again = await scrape(server.address.port);
    assert.equal(value(again, `${P}bytes_total`, { direction: 'to_peer' }), live.bytesTo);
    assert.equal(value(again, `${P}messages_total`, { direction: 'from_peer' }), live.msgsFrom);

    // /connections shows the session ids the node computed.
    const res = await get(server.address.port, '/connections');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const list = JSON.parse(res.body) as ConnectionInfo[];
    assert.equal(list.length, 2);
    const nodeSessions = node.channels.map((c) => c.sessionId!.toString('hex')).sort();
    assert.deepEqual(list.map((c) => c.session_id).sort(), nodeSessions);
    for (const c of list) {
      const r = records.find((x) => x.id === c.id)!;
      assert.equal(c.frontend, 'socks5');
      assert.equal(c.transport, 'v2');
      assert.equal(c.peer, `127.0.0.1:${node.port}`);
      assert.equal(c.client, r.client);
      assert.equal(c.established, true);
      assert.deepEqual([c.bytes_to_peer, c.bytes_from_peer, c.msgs_to_peer, c.msgs_from_peer], [r.bytesToPeer, r.bytesFromPeer, r.msgsToPeer, r.msgsFromPeer]);
      assert.ok(c.age_seconds >= 0 && c.age_seconds < 60);
    }

    for (const ch of clients) ch.socket.destroy();
    await until(() => proxy.server.connections.length === 0, 'the proxy to close both connections');
    s = await scrape(server.address.port);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'socks5', transport: 'v2' }), 0);
    assert.equal(value(s, `${P}connections_opened_total`, { frontend: 'socks5' }), 2);
    assert.equal(value(s, `${P}connections_closed_total`, { frontend: 'socks5', transport: 'v2', reason: 'normal' }), 2);
    assert.equal(value(s, `${P}bytes_total`, { direction: 'to_peer' }), sum(records, 'bytesToPeer'));
    assert.equal(value(s, `${P}bytes_total`, { direction: 'from_peer' }), sum(records, 'bytesFromPeer'));
    assert.equal(value(s, `${P}messages_total`, { direction: 'to_peer' }), sum(records, 'msgsToPeer'));
    assert.equal(value(s, `${P}messages_total`, { direction: 'from_peer' }), sum(records, 'msgsFromPeer'));
    assert.equal(value(s, `${P}connections_refused_total`), undefined);
    assert.deepEqual(JSON.parse((await get(server.address.port, '/connections')).body), []);
  });

  it('a bad first byte counts as refused{code="ERR_UNKNOWN_PROTOCOL"} and closed as frontend "unknown", transport "pending"', async () => {
    await start();
    const socket = net.connect(proxy.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.write('GET / HTTP/1.1\r\n\r\n');
    await new Promise((r) => socket.once('close', r));
    await until(() => proxy.server.connections.length === 0, 'the refusal');
    const s = await scrape(server.address.port);
    assert.equal(value(s, `${P}connections_refused_total`, { code: 'ERR_UNKNOWN_PROTOCOL' }), 1);
    assert.equal(value(s, `${P}connections_closed_total`, { frontend: 'unknown', transport: 'pending', reason: 'ERR_UNKNOWN_PROTOCOL' }), 1);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'unknown', transport: 'pending' }), undefined);
    assert.equal(value(s, `${P}handshake_duration_seconds_count`), 0);
  });

  it('a v1-only peer counts as a fallback{allowed="true"} and the connection as v1-fallback, with no handshake observed', async () => {
    await start('v1-close', { timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 400, idleMs: 60_000 } });
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    const ch = new MessageChannel(socket, main.magic);
    await handshakeV1(ch);
    const s = await scrape(server.address.port);
    assert.equal(value(s, `${P}v1_fallbacks_total`, { allowed: 'true' }), 1);
    assert.equal(value(s, `${P}v1_fallbacks_total`, { allowed: 'false' }), undefined);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'socks5', transport: 'v1-fallback' }), 1);
    assert.equal(value(s, `${P}handshake_duration_seconds_count`), 0);
    socket.destroy();
  });

  it('--v2-only and a v1-only peer count as fallback{allowed="false"} and refused{code="ERR_V2_ONLY"}', async () => {
    await start('v1-close', { downgradeGuard: 'all', timeouts: { socksMs: 5000, connectMs: 3000, handshakeMs: 400, idleMs: 60_000 } });
    const { socket } = await socks5Connect(proxy.port, '127.0.0.1', node.port);
    new MessageChannel(socket, main.magic).send('version', versionPayload());
    await new Promise((r) => socket.once('close', r));
    await until(() => proxy.server.connections.length === 0, 'the refusal');
    const s = await scrape(server.address.port);
    assert.equal(value(s, `${P}v1_fallbacks_total`, { allowed: 'false' }), 1);
    assert.equal(value(s, `${P}connections_refused_total`, { code: 'ERR_V2_ONLY' }), 1);
    assert.equal(value(s, `${P}connections_closed_total`, { reason: 'ERR_V2_ONLY' }), 1);
  });
});

describe('metrics: observer bookkeeping', function () {
  function record(id: number, over: Partial<ConnectionRecord> = {}): ConnectionRecord {
    return { ...newRecord(id, 'socks5', '127.0.0.1:5000'), ...over };
  }
  async function samples(m: Metrics): Promise<Sample[]> {
    return parseProm(await m.registry.metrics());
  }

  it('a record closed twice is counted once', async () => {
    const m = new Metrics({ collectDefault: false });
    const r = record(1, { bytesToPeer: 100, bytesFromPeer: 50, msgsToPeer: 2, msgsFromPeer: 1 });
    m.opened(r);
    m.closed(r, 'done', undefined);
    m.closed(r, 'done again', 'ERR_IDLE_TIMEOUT');
    const s = await samples(m);
    assert.equal(value(s, `${P}bytes_total`, { direction: 'to_peer' }), 100);
    assert.equal(value(s, `${P}messages_total`, { direction: 'from_peer' }), 1);
    assert.equal(value(s, `${P}connections_closed_total`, { reason: 'normal' }), 1);
    assert.equal(value(s, `${P}connections_closed_total`, { reason: 'ERR_IDLE_TIMEOUT' }), undefined);
  });

  it('counters of a live record are read at scrape time, then kept after close', async () => {
    const m = new Metrics({ collectDefault: false });
    const r = record(1);
    m.opened(r);
    r.bytesToPeer = 10;
    assert.equal(value(await samples(m), `${P}bytes_total`, { direction: 'to_peer' }), 10);
    r.bytesToPeer = 25;
    assert.equal(value(await samples(m), `${P}bytes_total`, { direction: 'to_peer' }), 25);
    m.closed(r, 'done', undefined);
    r.bytesToPeer = 999; // a closed record is no longer read
    const other = record(2, { bytesToPeer: 5 });
    m.opened(other);
    assert.equal(value(await samples(m), `${P}bytes_total`, { direction: 'to_peer' }), 30);
  });

  it('the active gauge follows a record whose front end and transport change after opened (socks5 -> legacy, pending -> v2)', async () => {
    const m = new Metrics({ collectDefault: false });
    const r = record(1);
    m.opened(r);
    let s = await samples(m);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'socks5', transport: 'pending' }), 1);
    r.frontEnd = 'legacy';
    r.transport = 'v2';
    r.establishedAt = Date.now();
    m.established(r, 12);
    s = await samples(m);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'socks5', transport: 'pending' }), 0);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'legacy', transport: 'v2' }), 1);
    assert.equal(value(s, `${P}handshake_duration_seconds_sum`), 0.012);
    assert.equal(value(s, `${P}handshake_duration_seconds_bucket`, { le: '0.01' }), 0);
    assert.equal(value(s, `${P}handshake_duration_seconds_bucket`, { le: '0.025' }), 1);
    m.closed(r, 'done', 'ERR_IDLE_TIMEOUT');
    s = await samples(m);
    assert.equal(value(s, `${P}connections_active`, { frontend: 'legacy', transport: 'v2' }), 0);
    // Closed on an error after establishment: a close with a reason, not a refusal.
    assert.equal(value(s, `${P}connections_closed_total`, { frontend: 'legacy', transport: 'v2', reason: 'ERR_IDLE_TIMEOUT' }), 1);
    assert.equal(value(s, `${P}connections_refused_total`), undefined);
  });

  it('a handshake duration is observed for v2 sessions only (outbound and inbound)', async () => {
    const cases: [ConnectionRecord['transport'], number | undefined, number][] = [
      ['v2', 12, 1],
      ['inbound-v2', 7, 1],
      ['v1-fallback', 400, 0],
      ['inbound-v1', 5, 0],
      ['passthrough', undefined, 0],
      ['v2', undefined, 0],
    ];
    for (const [transport, ms, count] of cases) {
      const m = new Metrics({ collectDefault: false });
      const r = record(1, { transport, establishedAt: Date.now() });
      m.opened(r);
      m.established(r, ms);
      assert.equal(value(await samples(m), `${P}handshake_duration_seconds_count`), count, `${transport} after ${ms} ms`);
    }
  });

  it('counts dropped messages and downgrades by their label, and refusals only for a close on an error before establishment', async () => {
    const m = new Metrics({ collectDefault: false });
    const r = record(1);
    m.opened(r);
    m.dropped(r, 'ERR_V1_BAD_CHECKSUM');
    m.dropped(r, 'ERR_V1_BAD_CHECKSUM');
    m.dropped(r, 'ERR_V2_UNKNOWN_SHORT_ID');
    m.downgrade(r, 'refused');
    m.downgrade(r, 'detected');
    m.downgrade(r, 'detected');
    // Closed without an error before it was established (the client went away): not a refusal.
    m.closed(r, 'client closed', undefined);
    const s = await samples(m);
    assert.equal(value(s, `${P}messages_dropped_total`, { code: 'ERR_V1_BAD_CHECKSUM' }), 2);
    assert.equal(value(s, `${P}messages_dropped_total`, { code: 'ERR_V2_UNKNOWN_SHORT_ID' }), 1);
    assert.equal(value(s, `${P}downgrades_total`, { outcome: 'refused' }), 1);
    assert.equal(value(s, `${P}downgrades_total`, { outcome: 'detected' }), 2);
    assert.equal(value(s, `${P}connections_refused_total`), undefined);
    assert.equal(value(s, `${P}connections_closed_total`, { frontend: 'socks5', transport: 'pending', reason: 'normal' }), 1);
  });

  it('decoy packets and bytes add the closed connections to the live ones', async () => {
    const m = new Metrics({ collectDefault: false });
    const closed = record(1, { decoysToPeer: 5, decoyBytesToPeer: 2000 });
    const live = record(2, { decoysToPeer: 3, decoyBytesToPeer: 700 });
    m.opened(closed);
    m.opened(live);
    m.closed(closed, 'done', undefined);
    const s = await samples(m);
    assert.equal(value(s, `${P}decoy_packets_total`), 8);
    assert.equal(value(s, `${P}decoy_bytes_total`), 2700);
  });

  it('describes a connection for /connections: age from its start, never negative, and whether it is established', () => {
    const r = record(7, { startedAt: 1_000_000, transport: 'v2', shaping: 'pad' });
    assert.deepEqual(describeConnection(r, 1_006_500), {
      id: 7,
      frontend: 'socks5',
      client: '127.0.0.1:5000',
      peer: null,
      transport: 'v2',
      session_id: null,
      bytes_to_peer: 0,
      bytes_from_peer: 0,
      msgs_to_peer: 0,
      msgs_from_peer: 0,
      shaping: 'pad',
      decoys_to_peer: 0,
      decoy_bytes_to_peer: 0,
      age_seconds: 6.5,
      established: false,
    });
    // The clock stepped back since the connection started.
    assert.equal(describeConnection(r, 999_000).age_seconds, 0);
    assert.equal(describeConnection({ ...r, establishedAt: 1_000_100 }, 1_006_500).established, true);
  });

  it('handshake buckets span 1 ms to 10 s', () => {
    assert.equal(HANDSHAKE_BUCKETS_SECONDS[0], 0.001);
    assert.equal(HANDSHAKE_BUCKETS_SECONDS[HANDSHAKE_BUCKETS_SECONDS.length - 1], 10);
  });

  it('a raw transport (passthrough) is established without a handshake observation', async () => {
    const m = new Metrics({ collectDefault: false });
    const r = record(1, { transport: 'passthrough', establishedAt: Date.now() });
    m.opened(r);
    m.established(r, undefined);
    assert.equal(value(await samples(m), `${P}handshake_duration_seconds_count`), 0);
  });

  it('includes the standard process metrics by default and only ours with collectDefault: false', async () => {
    const withDefault = await new Metrics().registry.metrics();
    assert.match(withDefault, /^process_cpu_user_seconds_total /m);
    assert.match(withDefault, /^nodejs_heap_size_used_bytes /m);
    const without = await samples(new Metrics({ collectDefault: false }));
    assert.ok(
      without.every((x) => x.name.startsWith(P)),
      'only bip324_proxy_ metrics',
    );
  });

  it('two Metrics objects do not share a registry (and do not collide on names)', async () => {
    const a = new Metrics({ collectDefault: false });
    const b = new Metrics({ collectDefault: false });
    a.opened(record(1));
    assert.equal(value(await samples(a), `${P}connections_opened_total`, { frontend: 'socks5' }), 1);
    assert.equal(value(await samples(b), `${P}connections_opened_total`, { frontend: 'socks5' }), undefined);
  });
});

describe('metrics: HTTP endpoint', function () {
  let server: MetricsServer;
  let metrics: Metrics;
  beforeEach(async () => {
    metrics = new Metrics({ collectDefault: false });
    server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => [], quietLog);
  });
  afterEach(async () => server.close());

  it('binds port 0 to a real port and serves /metrics as Prometheus text', async () => {
    assert.ok(server.address.port > 0);
    assert.equal(server.address.host, '127.0.0.1');
    const res = await get(server.address.port, '/metrics');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], metrics.registry.contentType);
    assert.match(res.body, /^# TYPE bip324_proxy_connections_opened_total counter$/m);
    assert.match(res.body, /^# TYPE bip324_proxy_handshake_duration_seconds histogram$/m);
    assert.equal(value(parseProm(res.body), `${P}bytes_total`, { direction: 'to_peer' }), 0);
  });

  it('ignores a query string', async () => {
    assert.equal((await get(server.address.port, '/metrics?name[]=x')).status, 200);
    assert.equal((await get(server.address.port, '/connections?x=1')).body, '[]\n');
  });

  it('answers 404 for other paths and 405 for methods other than GET/HEAD', async () => {
    assert.equal((await get(server.address.port, '/')).status, 404);
    assert.equal((await get(server.address.port, '/metrics/')).status, 404);
    const post = await get(server.address.port, '/metrics', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal((await get(server.address.port, '/connections', 'DELETE')).status, 405);
    const head = await get(server.address.port, '/connections', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('/connections lists the connections by id', async () => {
    const records = [3, 1, 2].map((id) => newRecord(id, 'socks5', `127.0.0.1:${5000 + id}`));
    const sorted = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => records, quietLog);
    try {
      const list = JSON.parse((await get(sorted.address.port, '/connections')).body) as ConnectionInfo[];
      assert.deepEqual(
        list.map((c) => [c.id, c.client]),
        [
          [1, '127.0.0.1:5001'],
          [2, '127.0.0.1:5002'],
          [3, '127.0.0.1:5003'],
        ],
      );
    } finally {
      await sorted.close();
    }
  });

  it('a request that fails inside answers 500 and logs a warning with the path and the reason; the endpoint keeps serving', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', stream: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });
    const failing = await startMetricsServer(
      { host: '127.0.0.1', port: 0 },
      metrics,
      () => {
        throw new Error('broken');
      },
      log,
    );
    try {
      assert.match(lines.join(''), new RegExp(`INFO {2}listening address=127\\.0\\.0\\.1:${failing.address.port} mode=metrics\\n$`));
      const res = await get(failing.address.port, '/connections?x=1');
      assert.equal(res.status, 500);
      assert.equal(res.body, 'internal error\n');
      assert.match(lines.join(''), /WARN {2}metrics request failed path="\/connections\?x=1" reason=broken\n$/);
      assert.equal((await get(failing.address.port, '/metrics')).status, 200);
    } finally {
      await failing.close();
    }
  });

  it('rejects with EADDRINUSE when the port is taken', async () => {
    await assert.rejects(
      startMetricsServer({ host: '127.0.0.1', port: server.address.port }, metrics, () => [], quietLog),
      { code: 'EADDRINUSE' },
    );
  });

  it('close() does not wait for a client stopped in the middle of its request', async () => {
    // Node's server.close() closes idle keep-alive connections by itself; one whose request headers
    // are half sent is not idle, and only closeAllConnections() ends it: without it close() waits
    // for the headers timeout, which Node checks every 30 s.
    const client = net.connect(server.address.port, '127.0.0.1');
    const clientClosed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.on('error', () => undefined);
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    client.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // The half request has reached the server when a full one sent after it on another connection is answered.
    await new Promise<void>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: server.address.port, path: '/info', agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject),
    );
    const closing = server.close();
    const outcome = await Promise.race([closing.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 8000, 'still waiting after 8 s'))]);
    // When it failed, end the half request ourselves, so that the server closes and the run goes on.
    client.destroy();
    await closing;
    assert.equal(outcome, 'closed');
    await clientClosed;
    server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, metrics, () => [], quietLog);
  });
});

describe('metrics: hostAllowed (the Host header check against DNS rebinding)', () => {
  it('splits the header like every other host:port: an IPv6 address only in brackets, as HTTP writes it', () => {
    assert.equal(hostAllowed('[::1]:9324', '::1'), true);
    assert.equal(hostAllowed('[::1]', '::1'), true);
    assert.equal(hostAllowed('127.0.0.1:9324', '127.0.0.1'), true);
    assert.equal(hostAllowed('LocalHost.:9324', '127.0.0.1'), true);
    assert.equal(hostAllowed('metrics.example:9324', 'metrics.example'), true);
    // Its own splitter used to take everything before the last ':' as the host, so this passed.
    assert.equal(hostAllowed('::1:9324', '::1'), false);
    assert.equal(hostAllowed('[::1', '::1'), false);
    assert.equal(hostAllowed('[::1]x', '::1'), false);
    assert.equal(hostAllowed('127.0.0.1:port', '127.0.0.1'), false);
    assert.equal(hostAllowed('evil.example:9324', '127.0.0.1'), false);
  });

  it('answers a request without a Host header (HTTP/1.0) and any IP literal, whatever host the endpoint was configured with', () => {
    assert.equal(hostAllowed(undefined, '127.0.0.1'), true);
    assert.equal(hostAllowed('[::1]:9324', '127.0.0.1'), true);
    assert.equal(hostAllowed('[2001:db8::5]', 'localhost'), true);
    assert.equal(hostAllowed('192.0.2.1:9324', 'localhost'), true);
    assert.equal(hostAllowed(' LOCALHOST:9324 ', '127.0.0.1'), true);
  });
});
