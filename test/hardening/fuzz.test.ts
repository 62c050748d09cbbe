/**
 * Fuzz over real loopback sockets, bounded for CI (a few hundred cases): random and mutated bytes
 * into the shared port (SOCKS5, legacy VERSION), into a v1 stream after a SOCKS5 connect, into the
 * BIP324 initiator (a fake remote) and the responder (--inbound), plus byte-boundary splits of the
 * first bytes, where the proxy decides what a connection speaks.
 *
 * After every batch: the proxy still carries good connections end to end, no socket or timer is
 * left behind, every refusal in the log has code=ERR_... and reason=, and every case's connection
 * logged exactly the code its input calls for (see the targets in test/helpers/fuzz/targets.ts).
 * FUZZ_SEED=<n> runs other cases; `npm run fuzz` runs the same targets without the bound.
 */
import assert from 'node:assert/strict';
import { ellswiftFromPrivate } from '../../src/crypto/ellswift.js';
import { type FuzzEnv, checkHealthy, startFuzzEnv } from '../helpers/fuzz/env.js';
import { MAIN } from '../helpers/fuzz/inputs.js';
import { logProblems } from '../helpers/fuzz/log-index.js';
import { connectTo } from '../helpers/fuzz/sockets.js';
import { type CaseReport, type FuzzTarget, fuzzTarget, runBatch, tally } from '../helpers/fuzz/targets.js';
import { tapWrites } from '../helpers/fuzz/write-tap.js';
import { expectNoLeaks, settle } from '../helpers/leaks.js';
import { MessageChannel, handshakeV1, socks5Connect, versionPayload } from '../helpers/node.js';
import { serializeV1 } from '../../src/v1/framing.js';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';

const SEED = Number(process.env.FUZZ_SEED ?? 0x324);

describe('hardening: fuzz over real sockets', function () {
  this.timeout(120_000);
  let env: FuzzEnv;

  before(async () => {
    env = await startFuzzEnv();
    await checkHealthy(env);
  });
  after(async () => env?.stop());

  /** One batch with every after-batch check; returns the reports for coverage assertions. */
  async function batch(target: FuzzTarget, count: number, seedOffset: number): Promise<CaseReport[]> {
    const before = await settle();
    const logStart = [env.direct.logs.length, env.viaSink.logs.length];
    const reports = await runBatch(env, target, { count, seed: SEED + seedOffset, concurrency: 12 });
    const problems = reports.flatMap((r) => r.problems);
    await checkHealthy(env);
    problems.push(...logProblems(env.direct.logs.slice(logStart[0])), ...logProblems(env.viaSink.logs.slice(logStart[1])));
    problems.push(
      ...env.logsOf(env.direct).duplicateEnds.map((l) => `two end lines: ${l}`),
      ...env.logsOf(env.viaSink).duplicateEnds.map((l) => `two end lines: ${l}`),
    );
    assert.deepEqual(problems, [], `seed ${SEED + seedOffset}`);
    await expectNoLeaks(before);
    return reports;
  }

  function covers(reports: CaseReport[], outcomes: string[]): void {
    const seen = tally(reports);
    for (const o of outcomes) assert.ok(seen.has(o), `no case ended with ${o}; outcomes: ${JSON.stringify([...seen])}`);
  }

  it('shared port: random first bytes (noise, SOCKS5, SOCKS4, magics, HTTP) end with a logged code, never a crash or a hang', async () => {
    const reports = await batch(fuzzTarget('shared-random'), 60, 1);
    covers(reports, ['ERR_UNKNOWN_PROTOCOL', 'ERR_SOCKS4']);
  });

  it('shared port: a SOCKS5 negotiation cut at every byte gets exactly the replies to its complete messages, then ERR_CLIENT_CLOSED', async () => {
    const t = fuzzTarget('shared-socks5');
    const reports = await batch(t, t.exhaustive(env), 2);
    assert.ok(reports.length >= 90);
    assert.deepEqual([...tally(reports).keys()], ['ERR_CLIENT_CLOSED']);
  });

  it('shared port: mutated SOCKS5 negotiations (flipped bits, NMETHODS/ULEN/PLEN/DST.ADDR lengths, bad VER/CMD/ATYP/RSV) get the matching code and REP', async () => {
    const t = fuzzTarget('shared-socks5');
    const reports = await runMutated(t, 60, 3);
    covers(reports, ['ERR_SOCKS_BAD_COMMAND', 'ERR_SOCKS_BAD_ATYP', 'ERR_CLIENT_CLOSED']);
  });

  it('shared port: a legacy VERSION cut at every byte is refused with ERR_CLIENT_CLOSED and no reply', async () => {
    const t = fuzzTarget('shared-legacy');
    const reports = await batch(t, t.exhaustive(env), 4);
    assert.deepEqual([...tally(reports).keys()], ['ERR_CLIENT_CLOSED']);
  });

  it('shared port: mutated legacy VERSIONs (bad checksum, oversize length, wrong command, addr_recv zero/port 0/random/self) get the matching code', async () => {
    const reports = await runMutated(fuzzTarget('shared-legacy'), 70, 5);
    covers(reports, ['ERR_V1_BAD_CHECKSUM', 'ERR_V1_TOO_LARGE', 'ERR_LEGACY_BAD_ADDR', 'ERR_DIAL_REFUSED', 'ERR_DIAL_NOT_ALLOWED']);
  });

  it('after a SOCKS5 connect to a v2 node: a mutated v1 stream is closed with the matching code; a bad checksum drops only that message', async () => {
    const reports = await batch(fuzzTarget('socks5-v1-stream'), 36, 6);
    covers(reports, ['ERR_V1_TOO_LARGE', 'ERR_V1_BAD_MAGIC', 'ERR_V1_BAD_COMMAND', 'clean']);
  });

  it('initiator: a remote answering noise, a key with endless garbage, or a bit-flipped or cut responder transcript is closed with the code for where it broke', async () => {
    const reports = await batch(fuzzTarget('initiator-remote'), 45, 7);
    covers(reports, ['ERR_V2_PEER_CLOSED', 'ERR_V2_NO_TERMINATOR', 'ERR_V2_HANDSHAKE_TIMEOUT', 'ERR_V2_BAD_TAG']);
  });

  it('responder (--inbound): noise, a v1 VERSION of another network, bit-flipped or cut initiator transcripts are closed with the code for where they broke', async () => {
    const reports = await batch(fuzzTarget('responder-inbound'), 45, 8);
    covers(reports, ['ERR_V2_PEER_CLOSED', 'ERR_V1_WRONG_NETWORK', 'ERR_V2_BAD_TAG', 'clean']);
  });

  /** The random (non-exhaustive) cases of a target: indexes past its exhaustive ones. */
  async function runMutated(target: FuzzTarget, count: number, seedOffset: number): Promise<CaseReport[]> {
    const from = target.exhaustive(env);
    const shifted: FuzzTarget = { name: target.name, exhaustive: () => 0, run: (e, rng, i) => target.run(e, rng, from + i) };
    return batch(shifted, count, seedOffset);
  }

  describe('byte-boundary splits where the proxy decides what a connection speaks', () => {
    it('responder: an initiator key starting with the magic byte, split right after it, still completes the handshake', async () => {
      // Detection compares the first bytes with magic || "version"; the bytes that matched belong to the key.
      let key = ellswiftFromPrivate(randomBytes(32));
      while (key.ellswift[0] !== MAIN.magic[0]) key = ellswiftFromPrivate(key.privateKey);
      for (const at of [1, 2, 4, 16, 64]) {
        const socket = await connectTo(env.inboundPort);
        try {
          tapWrites(socket, { kind: 'split', at: [at] });
          const ch = new MessageChannel(socket, MAIN.magic, { v2: 'initiator', transportOptions: { key } });
          await handshakeV1(ch, undefined, 5000).catch((err: Error) => assert.fail(`split at ${at}: ${err.message}`));
        } finally {
          socket.destroy();
        }
      }
    });

    it('responder: a v1 VERSION split at every byte of its first 24 is relayed to the v1 node', async () => {
      for (let at = 1; at <= 24; at++) {
        const socket = await connectTo(env.inboundPort);
        try {
          tapWrites(socket, { kind: 'split', at: [at] });
          const ch = new MessageChannel(socket, MAIN.magic);
          await handshakeV1(ch, undefined, 5000).catch((err: Error) => assert.fail(`split at ${at}: ${err.message}`));
        } finally {
          socket.destroy();
        }
      }
    });

    it('SOCKS5: the client VERSION after the reply, split at every byte of its first 17, is translated to v2', async () => {
      for (let at = 1; at <= 17; at++) {
        const { socket, rep } = await socks5Connect(env.direct.port, '127.0.0.1', env.node.port);
        try {
          assert.equal(rep, 0);
          tapWrites(socket, { kind: 'split', at: [at] });
          const ch = new MessageChannel(socket, MAIN.magic);
          await handshakeV1(ch, undefined, 5000).catch((err: Error) => assert.fail(`split at ${at}: ${err.message}`));
        } finally {
          socket.destroy();
        }
      }
      assert.ok(env.node.channels.slice(-17).every((c) => c.isV2));
    });

    it('legacy: a VERSION split at every byte of its header reaches the node over v2', async () => {
      const version = serializeV1(MAIN.magic, 'version', versionPayload({ host: '127.0.0.1', port: env.node.port }));
      for (let at = 1; at <= 24; at++) {
        const socket = await connectTo(env.direct.port);
        try {
          const got = new MessageChannel(socket, MAIN.magic);
          socket.write(version.subarray(0, at));
          await new Promise((r) => setTimeout(r, 5));
          socket.write(version.subarray(at));
          await got.next('version', 5000);
          await got.next('verack', 5000);
        } finally {
          socket.destroy();
        }
      }
    });

    it('SOCKS5: a negotiation sent one byte per segment still connects', async () => {
      const socket = net.connect(env.direct.port, '127.0.0.1');
      socket.setNoDelay(true);
      await new Promise((r) => socket.once('connect', r));
      try {
        const all = Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, env.node.port >> 8, env.node.port & 0xff])]);
        const got: Buffer[] = [];
        socket.on('data', (d) => got.push(d));
        for (const b of all) {
          socket.write(Buffer.from([b]));
          await new Promise((r) => setTimeout(r, 2));
        }
        const deadline = Date.now() + 5000;
        while (Buffer.concat(got).length < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        assert.equal(Buffer.concat(got).toString('hex'), '0500' + '05000001000000000000');
      } finally {
        socket.destroy();
      }
    });
  });
});
