// The metric functions the relay, the queue and the rotation call, on a
// registry of their own, read back through the exposition text.
import { smtpReply } from '../../src/smtp/reply.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finding } from '../../src/dns/finding.ts';
import { RelayMetrics } from '../../src/observability/metrics.ts';
import { RecentCounts } from '../../src/observability/recent-counts.ts';
import { refusalReason } from '../../src/observability/refusal-reason.ts';
import { statusReport } from '../../src/observability/status-report.ts';
import type { PlanKey } from '../../src/rotation/plan.ts';
import { parseExposition, value } from './support.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = Date.parse('2026-11-28T03:15:00.000Z');

async function samples(m: RelayMetrics) {
  return parseExposition(await m.text());
}

test('handled(): received, signatures by domain and selector, self-check failures, refusals by reason', async () => {
  const m = new RelayMetrics({ now: () => NOW });
  const signatures = [
    { domain: 'example.com', selector: 's1' },
    { domain: 'example.com', selector: 's2' },
  ];
  m.handled({ action: 'deliver', signatures, selfCheck: 'pass', fromDomain: 'example.com' });
  m.handled({
    action: 'refuse',
    reply: smtpReply(451, '4.7.5 DKIM self-check failed (body hash), try again later'),
    signatures,
    selfCheck: 'fail',
    fromDomain: 'example.com',
  });
  m.handled({
    action: 'refuse',
    reply: smtpReply(550, '5.7.1 no active DKIM key for spam.example'),
    signatures: [],
    selfCheck: 'unsigned',
    fromDomain: 'spam.example',
  });
  const s = await samples(m);
  assert.equal(value(s, 'dkim_relay_messages_received_total'), 3);
  assert.equal(value(s, 'dkim_relay_messages_signed_total', { domain: 'example.com', selector: 's1' }), 2);
  assert.equal(value(s, 'dkim_relay_messages_signed_total', { domain: 'example.com', selector: 's2' }), 2);
  assert.equal(value(s, 'dkim_relay_self_check_failures_total', { domain: 'example.com' }), 1);
  assert.equal(value(s, 'dkim_relay_messages_refused_total', { reason: 'self-check' }), 1);
  assert.equal(value(s, 'dkim_relay_messages_refused_total', { reason: 'no-key' }), 1);
  assert.equal(value(s, 'dkim_relay_messages_refused_total', { reason: 'other' }), 0);
  assert.ok(!s.some((x) => Object.values(x.labels).includes('spam.example')), 'the From: domain of a refused message is never a label');
  assert.deepEqual(
    m.recentRefusals().map((r) => [r.reason, r.fromDomain]),
    [
      ['no-key', 'spam.example'],
      ['self-check', 'example.com'],
    ],
  );
  const hour = m.recent.totals(60);
  assert.deepEqual([hour.received, hour.signed, hour.selfCheckPassed, hour.selfCheckFailed, hour.refused], [3, 2, 1, 1, 2]);
});

test('delivered(), deferred(), bounced() by signing domain, unsigned mail as (none), and the latency histogram', async () => {
  const m = new RelayMetrics({ now: () => NOW });
  m.delivered('example.com', 0.3);
  m.delivered(null, 12);
  m.deferred('example.com');
  m.deferred('example.com');
  m.bounced('example.org');
  m.deliveryAnswered('example.com', 250, 1);
  m.deliveryAnswered('example.com', 451, 1);
  m.deliveryAnswered('example.com', 550, 1);
  const s = await samples(m);
  assert.equal(value(s, 'dkim_relay_messages_delivered_total', { domain: 'example.com' }), 2);
  assert.equal(value(s, 'dkim_relay_messages_delivered_total', { domain: '(none)' }), 1);
  assert.equal(value(s, 'dkim_relay_messages_deferred_total', { domain: 'example.com' }), 3);
  assert.equal(value(s, 'dkim_relay_messages_bounced_total', { domain: 'example.org' }), 1);
  assert.equal(value(s, 'dkim_relay_messages_bounced_total', { domain: 'example.com' }), 1);
  assert.equal(value(s, 'dkim_relay_delivery_seconds_count'), 3);
  assert.equal(value(s, 'dkim_relay_delivery_seconds_bucket', { le: '0.5' }), 1);
  assert.equal(value(s, 'dkim_relay_delivery_seconds_bucket', { le: '30' }), 3);
  const day = m.recent.totals(24 * 60);
  assert.deepEqual([day.delivered, day.deferred, day.bounced], [3, 3, 2]);
});

test('a caller passing unbounded domains is capped: past 1000 distinct values they count as (other)', async () => {
  const m = new RelayMetrics({ now: () => NOW });
  for (let i = 0; i < 1005; i++) m.delivered(`d${i}.example`);
  const s = await samples(m);
  const series = s.filter((x) => x.name === 'dkim_relay_messages_delivered_total');
  assert.equal(series.length, 1001);
  assert.equal(value(s, 'dkim_relay_messages_delivered_total', { domain: '(other)' }), 5);
});

test('watchQueue(): depth and oldest age asked at each scrape; 0 without a queue; unwatching leaves a newer source alone', async () => {
  const m = new RelayMetrics({ now: () => NOW });
  assert.equal(value(await samples(m), 'dkim_relay_queue_messages'), 0);
  let depth = { messages: 3, oldestAgeSeconds: 420 };
  const unwatchOld = m.watchQueue(() => depth);
  let s = await samples(m);
  assert.equal(value(s, 'dkim_relay_queue_messages'), 3);
  assert.equal(value(s, 'dkim_relay_queue_oldest_message_age_seconds'), 420);
  depth = { messages: 0, oldestAgeSeconds: 0 };
  assert.equal(value(await samples(m), 'dkim_relay_queue_messages'), 0);
  const unwatchNew = m.watchQueue(() => ({ messages: 7, oldestAgeSeconds: 1 }));
  unwatchOld();
  assert.equal(value(await samples(m), 'dkim_relay_queue_messages'), 7, 'the old relay stopping after a reload does not remove the new source');
  unwatchNew();
  assert.equal(value(await samples(m), 'dkim_relay_queue_messages'), 0);
});

test("watchQueue(): queue.db's used and free octets, absent without a queue", async () => {
  const m = new RelayMetrics({ now: () => NOW });
  assert.equal((await samples(m)).filter((x) => x.name === 'dkim_relay_queue_db_bytes').length, 0);
  const unwatch = m.watchQueue(() => ({ messages: 2, oldestAgeSeconds: 1, database: { usedBytes: 409_600, freeBytes: 8_192 } }));
  const s = await samples(m);
  assert.equal(value(s, 'dkim_relay_queue_db_bytes', { pages: 'used' }), 409_600);
  assert.equal(value(s, 'dkim_relay_queue_db_bytes', { pages: 'free' }), 8_192);
  unwatch();
  assert.equal((await samples(m)).filter((x) => x.name === 'dkim_relay_queue_db_bytes').length, 0);
});

test('watchKeys(): key states, ages, next steps, DNS states and attention from the status report', async () => {
  let clock = NOW;
  const m = new RelayMetrics({ now: () => clock });
  const iso = (ms: number) => new Date(ms).toISOString();
  const key = (id: number, selector: string, state: PlanKey['state'], times: Partial<PlanKey>): PlanKey => ({
    id,
    domain: 'example.com',
    selector,
    algorithm: 'rsa',
    bits: 2048,
    state,
    publicData: `pub${id}`,
    createdAt: iso(NOW - 100 * DAY),
    activatedAt: null,
    retiredAt: null,
    revokedAt: null,
    removedAt: null,
    ...times,
  });
  const keys = [key(1, 'old', 'active', { activatedAt: iso(NOW - 89 * DAY) }), key(2, 'new', 'pending', { createdAt: iso(NOW - 8 * DAY) })];
  const observations = [
    { keyId: 2, server: '192.0.2.53:53', firstSeenMatching: null, lastChecked: iso(NOW - HOUR), lastState: 'missing' as const, detail: 'no record' },
  ];
  const policy = { interval: 90 * DAY, publishFor: 48 * HOUR, retireAfter: 7 * DAY, removeAfter: 30 * DAY, stuckAfter: 7 * DAY };
  m.watchKeys(() => statusReport({ now: new Date(clock), keys, observations, policy: () => policy, servers: () => ['192.0.2.53:53'], readiness: new Map() }));
  const s = await samples(m);
  assert.equal(value(s, 'dkim_relay_key_state', { selector: 'old', state: 'active' }), 1);
  assert.equal(value(s, 'dkim_relay_key_state', { selector: 'old', state: 'retiring' }), 0);
  assert.equal(value(s, 'dkim_relay_key_state', { selector: 'new', state: 'pending' }), 1);
  assert.equal(value(s, 'dkim_relay_key_age_seconds', { selector: 'old', state: 'active' }), (89 * DAY) / 1000);
  // A pending key newer than the active one holds the rotation back; it waits for DNS, so it has no time.
  assert.equal(value(s, 'dkim_relay_key_next_step_seconds', { selector: 'new' }), undefined);
  assert.equal(value(s, 'dkim_relay_dns_state', { selector: 'new', server: '192.0.2.53:53', state: 'missing' }), 1);
  assert.equal(value(s, 'dkim_relay_dns_state', { selector: 'new', server: '192.0.2.53:53', state: 'match' }), 0);
  assert.equal(value(s, 'dkim_relay_dns_last_check_timestamp_seconds', { selector: 'new' }), (NOW - HOUR) / 1000);
  assert.equal(value(s, 'dkim_relay_attention', { domain: 'example.com', code: 'stuck-pending' }), 1);

  // Without the pending key, the active key's rotation is a day away; then due.
  keys.pop();
  clock += 2000;
  const soon = await samples(m);
  assert.equal(value(soon, 'dkim_relay_key_next_step_seconds', { selector: 'old', step: 'rotate' }), DAY / 1000 - 2);
  assert.equal(value(soon, 'dkim_relay_attention', { domain: 'example.com', code: 'stuck-pending' }), 0);
  assert.equal(value(soon, 'dkim_relay_key_state', { selector: 'new', state: 'pending' }), undefined, 'a key gone from the store leaves no series');
  clock += 2 * DAY;
  assert.equal(value(await samples(m), 'dkim_relay_key_next_step_seconds', { selector: 'old', step: 'rotate' }), 0, 'a due step shows 0');
});

test('readinessChecked(): the DMARC state of the last lookup, with its time; no lookup, no series', async () => {
  const m = new RelayMetrics({ now: () => NOW });
  assert.equal((await samples(m)).filter((x) => x.name === 'dkim_relay_dmarc_state').length, 0);
  m.readinessChecked(
    new Map([
      ['example.com', { status: 'checked', server: 'ns', spf: null, dmarc: 'v=DMARC1; p=reject', findings: [finding('info', 'dmarc-enforced', 'p=reject')] }],
      ['example.org', { status: 'checked', server: 'ns', spf: null, dmarc: null, findings: [finding('warn', 'dmarc-missing', 'none')] }],
      ['example.net', { status: 'failed', server: 'ns', reason: 'timed out' }],
    ]),
  );
  const s = await samples(m);
  assert.equal(value(s, 'dkim_relay_dmarc_state', { domain: 'example.com', state: 'enforced' }), 1);
  assert.equal(value(s, 'dkim_relay_dmarc_state', { domain: 'example.com', state: 'none' }), 0);
  assert.equal(value(s, 'dkim_relay_dmarc_state', { domain: 'example.org', state: 'missing' }), 1);
  assert.equal(value(s, 'dkim_relay_dmarc_state', { domain: 'example.net', state: 'lookup-failed' }), 1);
  assert.equal(value(s, 'dkim_relay_dmarc_last_check_timestamp_seconds', { domain: 'example.com' }), NOW / 1000);
  assert.equal(m.lastReadiness().get('example.org')?.status, 'checked');

  // The next round no longer has example.org (its keys were removed): its series go, not stay as they were.
  m.readinessChecked(
    new Map([['example.com', { status: 'checked', server: 'ns', spf: null, dmarc: 'v=DMARC1; p=none', findings: [finding('info', 'dmarc-none', 'p=none')] }]]),
  );
  const next = await samples(m);
  assert.equal(value(next, 'dkim_relay_dmarc_state', { domain: 'example.com', state: 'none' }), 1);
  assert.deepEqual([...new Set(next.filter((x) => x.name.startsWith('dkim_relay_dmarc')).map((x) => x.labels.domain))], ['example.com']);
  assert.equal(m.lastReadiness().has('example.org'), false);
});

test('refusal reasons: each refusal the pipeline makes has its word; an unknown text is "other"', () => {
  const cases: [number, string, string][] = [
    [552, '5.3.4 Header too large: 2000000 octets, at most 1048576', 'too-large'],
    [552, '5.3.4 Too many header fields: 2000, at most 1000', 'too-large'],
    [554, '5.4.6 Mail loop: the message has passed 101 mail systems (Received: fields), at most 100', 'mail-loop'],
    [554, '5.6.0 Malformed header: line 3 has no colon', 'malformed-header'],
    [550, '5.6.0 Cannot sign: the message has no From: header', 'unusable-from'],
    [550, '5.6.0 The message has 2 Subject: headers; RFC 5322 allows one, and a second copy can forge a signed message', 'duplicate-header'],
    [550, '5.7.1 scanner may not send as example.com', 'sender-not-allowed'],
    [550, '5.7.1 no active DKIM key for example.org', 'no-key'],
    [451, '4.7.1 no active DKIM key for example.org, try again later', 'no-key'],
    [451, '4.3.0 The DKIM key of example.com is unavailable, try again later', 'key-unavailable'],
    [451, '4.7.5 DKIM self-check failed (x), try again later', 'self-check'],
    [554, '5.7.5 DKIM self-check failed (x)', 'self-check'],
    [554, '5.6.3 The part 1 needs re-encoding (8-bit) but normalize.longLines is reject', 'content'],
    [451, '4.3.0 Whether the upstream takes SMTPUTF8 is not known yet, try again later', 'content'],
    [451, '4.3.0 Could not prepare the message for signing (x), try again later', 'content'],
    [554, 'something new', 'other'],
  ];
  for (const [code, text, reason] of cases) assert.equal(refusalReason(code, text), reason, text);
});

test('recent counts: a ring of minutes, summed over the last hour and day, forgetting what is older', () => {
  let clock = NOW;
  const recent = new RecentCounts(() => clock);
  recent.add('delivered');
  clock += 30 * MINUTE;
  recent.add('delivered', 2);
  clock += 45 * MINUTE; // the first is now 75 minutes old
  recent.add('bounced');
  assert.equal(recent.totals(60).delivered, 2);
  assert.equal(recent.totals(24 * 60).delivered, 3);
  assert.equal(recent.totals(60).bounced, 1);
  clock += DAY - 70 * MINUTE; // the first is 24h 5m old, the second 23h 35m
  assert.equal(recent.totals(24 * 60).delivered, 2);
  clock += DAY;
  recent.add('received');
  assert.deepEqual([recent.totals(24 * 60).delivered, recent.totals(24 * 60).received], [0, 1]);
});
