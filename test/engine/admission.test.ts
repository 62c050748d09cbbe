/**
 * Who gets a connection slot (src/engine/admission.ts), without sockets: the two pools, the
 * per-source caps, the handshake caps and the handshake rate, each at its boundary, with the clock
 * injected; and the log throttle that keeps a flood of refusals from filling the disk.
 */
import assert from 'node:assert/strict';
import { Admission, type AdmissionLimits, LogThrottle, type Refusal, type Ticket, isRefusal } from '../../src/engine/admission.js';

/** Limits far from every boundary but the one a test sets. */
const roomy: AdmissionLimits = { maxClients: 1000, maxInbound: 1000, maxInboundPerSource: 0, maxInboundHandshakes: 1000, inboundHandshakeRate: 1e6 };

function ticket(x: Ticket | Refusal): Ticket {
  assert.ok(!isRefusal(x), `refused: ${(x as Refusal).reason}`);
  return x;
}

function refusal(x: Ticket | Refusal): Refusal {
  assert.ok(isRefusal(x), 'admitted');
  return x;
}

describe('Admission', () => {
  let now = 0;
  const clock = (): number => now;
  beforeEach(() => {
    now = 1_000;
  });
  const admission = (limits: Partial<AdmissionLimits>): Admission => new Admission({ ...roomy, ...limits }, clock);

  it('local clients: --max-connections of them, the next refused with ERR_MAX_CONNECTIONS until one is released', () => {
    const a = admission({ maxClients: 2 });
    const first = ticket(a.admitClient('127.0.0.1'));
    assert.deepEqual(first, { inbound: false, source: '127.0.0.1', handshaking: false, released: false });
    ticket(a.admitClient('127.0.0.1'));
    assert.deepEqual(refusal(a.admitClient('127.0.0.1')), { code: 'ERR_MAX_CONNECTIONS', reason: '--max-connections 2 reached' });
    a.release(first);
    assert.equal(first.released, true);
    // Releasing twice frees one slot, not two.
    a.release(first);
    ticket(a.admitClient('127.0.0.1'));
    refusal(a.admitClient('127.0.0.1'));
    assert.deepEqual(a.counts, { clients: 2, inbound: 0, handshakes: 0, sources: 0 });
  });

  it("keeps local clients and inbound peers in separate pools: neither can take the other's slots", () => {
    const a = admission({ maxClients: 1, maxInbound: 1 });
    ticket(a.admitClient('127.0.0.1'));
    ticket(a.admitInbound('203.0.113.1'));
    assert.equal(refusal(a.admitClient('127.0.0.1')).code, 'ERR_MAX_CONNECTIONS');
    assert.deepEqual(refusal(a.admitInbound('203.0.113.2')), { code: 'ERR_MAX_INBOUND', reason: '--max-inbound 1 reached' });
  });

  it('inbound: a connection slot and a handshake slot, the handshake given back once settled and both at release', () => {
    const a = admission({ maxInbound: 2, maxInboundHandshakes: 1 });
    const t = ticket(a.admitInbound('203.0.113.1'));
    assert.deepEqual(t, { inbound: true, source: '203.0.113.1', handshaking: true, released: false });
    assert.deepEqual(a.counts, { clients: 0, inbound: 1, handshakes: 1, sources: 1 });
    assert.deepEqual(refusal(a.admitInbound('203.0.113.2')), {
      code: 'ERR_HANDSHAKE_BUSY',
      reason: '1 inbound handshakes in progress (--max-inbound-handshakes 1)',
    });
    a.settled(t);
    assert.equal(t.handshaking, false);
    // Settling again, or releasing a settled ticket, does not give the handshake slot back twice.
    a.settled(t);
    assert.deepEqual(a.counts, { clients: 0, inbound: 1, handshakes: 0, sources: 1 });
    const u = ticket(a.admitInbound('203.0.113.2'));
    assert.equal(refusal(a.admitInbound('203.0.113.3')).code, 'ERR_MAX_INBOUND');
    a.release(t);
    a.release(t);
    assert.deepEqual(a.counts, { clients: 0, inbound: 1, handshakes: 1, sources: 1 });
    // A ticket released while still in its handshake gives both back; settling it afterwards does nothing.
    a.release(u);
    a.settled(u);
    assert.deepEqual(a.counts, { clients: 0, inbound: 0, handshakes: 0, sources: 0 });
    assert.equal(u.handshaking, false);
  });

  it("settling a local client's ticket does nothing (it never held a handshake slot)", () => {
    const a = admission({ maxInboundHandshakes: 1 });
    const c = ticket(a.admitClient('127.0.0.1'));
    const t = ticket(a.admitInbound('203.0.113.1'));
    a.settled(c);
    assert.deepEqual(a.counts, { clients: 1, inbound: 1, handshakes: 1, sources: 1 });
    assert.equal(refusal(a.admitInbound('203.0.113.2')).code, 'ERR_HANDSHAKE_BUSY');
    a.settled(t);
    ticket(a.admitInbound('203.0.113.2'));
  });

  it('per source: --max-inbound-per-ip connections from one IPv4 address or one IPv6 /64, then ERR_INBOUND_PER_IP', () => {
    const a = admission({ maxInboundPerSource: 2 });
    for (const t of [ticket(a.admitInbound('203.0.113.1')), ticket(a.admitInbound('::ffff:203.0.113.1'))]) a.settled(t);
    assert.deepEqual(refusal(a.admitInbound('203.0.113.1')), {
      code: 'ERR_INBOUND_PER_IP',
      reason: '203.0.113.1 already has 2 connections (--max-inbound-per-ip 2)',
    });
    ticket(a.admitInbound('203.0.113.2'));
    for (const t of [ticket(a.admitInbound('2001:db8:1:2::1')), ticket(a.admitInbound('2001:db8:1:2:ffff::9'))]) a.settled(t);
    assert.equal(refusal(a.admitInbound('2001:db8:1:2:aaaa::1')).code, 'ERR_INBOUND_PER_IP');
    ticket(a.admitInbound('2001:db8:1:3::1'));
  });

  it('per source: at most 2 handshakes in progress from one source, whatever --max-inbound-per-ip allows', () => {
    const a = admission({ maxInboundPerSource: 10 });
    const first = ticket(a.admitInbound('203.0.113.1'));
    ticket(a.admitInbound('203.0.113.1'));
    assert.deepEqual(refusal(a.admitInbound('203.0.113.1')), { code: 'ERR_HANDSHAKE_BUSY', reason: '203.0.113.1 already has 2 handshakes in progress' });
    ticket(a.admitInbound('203.0.113.9'));
    a.settled(first);
    ticket(a.admitInbound('203.0.113.1'));
  });

  it('--max-inbound-per-ip 0 turns every per-source cap off (all peers behind a Tor onion service come from 127.0.0.1)', () => {
    const a = admission({ maxInboundPerSource: 0 });
    for (let i = 0; i < 20; i++) ticket(a.admitInbound('127.0.0.1'));
    assert.deepEqual(a.counts, { clients: 0, inbound: 20, handshakes: 20, sources: 1 });
  });

  it('forgets a source once its last connection is released, so the table follows the connections', () => {
    const a = admission({ maxInboundPerSource: 3 });
    const tickets = Array.from({ length: 50 }, (_, i) => ticket(a.admitInbound(`198.51.100.${i}`)));
    const twice = ticket(a.admitInbound('198.51.100.0'));
    assert.equal(a.counts.sources, 50);
    for (const t of tickets) a.release(t);
    assert.equal(a.counts.sources, 1);
    a.release(twice);
    assert.deepEqual(a.counts, { clients: 0, inbound: 0, handshakes: 0, sources: 0 });
  });

  it('new handshakes at --inbound-handshake-rate per second, in bursts of twice that, tokens refilled by the clock', () => {
    const a = admission({ inboundHandshakeRate: 5 });
    for (let i = 0; i < 10; i++) ticket(a.admitInbound(`198.51.100.${i}`));
    assert.deepEqual(refusal(a.admitInbound('198.51.100.10')), {
      code: 'ERR_HANDSHAKE_BUSY',
      reason: 'new inbound handshakes above --inbound-handshake-rate 5/s',
    });
    now += 199;
    refusal(a.admitInbound('198.51.100.10'));
    now += 1;
    // 200 ms at 5/s is one token; the refusals before it did not spend any.
    ticket(a.admitInbound('198.51.100.10'));
    refusal(a.admitInbound('198.51.100.11'));
    // A long quiet spell fills the bucket to the burst, no further.
    now += 60_000;
    for (let i = 0; i < 10; i++) ticket(a.admitInbound(`198.51.101.${i}`));
    refusal(a.admitInbound('198.51.101.10'));
  });

  it('a rate below 0.5/s still lets one handshake through at a time (a burst of at least 1)', () => {
    const a = admission({ inboundHandshakeRate: 0.25 });
    ticket(a.admitInbound('198.51.100.1'));
    refusal(a.admitInbound('198.51.100.2'));
    now += 3_999;
    refusal(a.admitInbound('198.51.100.2'));
    now += 1;
    ticket(a.admitInbound('198.51.100.2'));
    now += 3_600_000;
    ticket(a.admitInbound('198.51.100.3'));
    refusal(a.admitInbound('198.51.100.4'));
  });

  it('a connection refused by a cap spends no rate token', () => {
    const a = admission({ inboundHandshakeRate: 1, maxInbound: 1 });
    const t = ticket(a.admitInbound('198.51.100.1'));
    for (let i = 0; i < 5; i++) assert.equal(refusal(a.admitInbound('198.51.100.2')).code, 'ERR_MAX_INBOUND');
    a.release(t);
    // The burst of 2 had one token left, untouched by the five refusals.
    ticket(a.admitInbound('198.51.100.2'));
  });

  it('counts a connection without an address (a socket already gone) under one source', () => {
    const a = admission({ maxInboundPerSource: 1 });
    assert.equal(ticket(a.admitInbound(undefined)).source, '?');
    assert.equal(refusal(a.admitInbound(undefined)).code, 'ERR_INBOUND_PER_IP');
  });
});

describe('LogThrottle', () => {
  let now = 0;
  const clock = (): number => now;

  it('shows the first lines of a kind in each window, counts the rest, and reports the count with the next line shown', () => {
    now = 5_000;
    const t = new LogThrottle(3, 1_000, clock);
    for (let i = 0; i < 3; i++) assert.deepEqual(t.allow('refused'), { show: true, suppressed: 0 });
    assert.deepEqual(t.allow('refused'), { show: false, suppressed: 0 });
    now += 999;
    assert.deepEqual(t.allow('refused'), { show: false, suppressed: 0 });
    // Another kind has its own window.
    assert.deepEqual(t.allow('bad key'), { show: true, suppressed: 0 });
    now += 1;
    assert.deepEqual(t.allow('refused'), { show: true, suppressed: 2 });
    // A new window: its own lines, and nothing left over to report.
    assert.deepEqual(t.allow('refused'), { show: true, suppressed: 0 });
    assert.deepEqual(t.allow('refused'), { show: true, suppressed: 0 });
    assert.deepEqual(t.allow('refused'), { show: false, suppressed: 0 });
    now += 10_000;
    assert.deepEqual(t.allow('refused'), { show: true, suppressed: 1 });
  });

  it('defaults to 10 lines per 10 s window', () => {
    now = 0;
    const t = new LogThrottle(undefined, undefined, clock);
    for (let i = 0; i < 10; i++) assert.equal(t.allow('k').show, true);
    assert.equal(t.allow('k').show, false);
    now = 9_999;
    assert.equal(t.allow('k').show, false);
    now = 10_000;
    assert.deepEqual(t.allow('k'), { show: true, suppressed: 2 });
  });
});
