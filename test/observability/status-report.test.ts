// The status report, built from keys, DNS observations and readiness with an
// injected clock: what each key shows, what is planned next, and what is
// counted as needing a person.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finding } from '../../src/dns/finding.ts';
import type { ReadinessResult } from '../../src/dns/readiness-lookup.ts';
import { renderStatus, statusReport, type StatusInput } from '../../src/observability/status-report.ts';
import type { DnsObservation } from '../../src/rotation/observation.ts';
import type { PlanKey } from '../../src/rotation/plan.ts';
import type { RotationPolicy } from '../../src/rotation/policy.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = new Date('2026-11-28T03:15:00.000Z');
const POLICY: RotationPolicy = { interval: 90 * DAY, publishFor: 48 * HOUR, retireAfter: 7 * DAY, removeAfter: 30 * DAY, stuckAfter: 7 * DAY };

const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();

let lastId = 0;
function key(
  domain: string,
  selector: string,
  state: PlanKey['state'],
  times: Partial<Pick<PlanKey, 'createdAt' | 'activatedAt' | 'retiredAt' | 'revokedAt'>>,
  algorithm: 'rsa' | 'ed25519' = 'rsa',
): PlanKey {
  const id = ++lastId;
  return {
    id,
    domain,
    selector,
    algorithm,
    bits: algorithm === 'rsa' ? 2048 : 256,
    state,
    publicData: `pub${id}`,
    createdAt: times.createdAt ?? ago(100 * DAY),
    activatedAt: times.activatedAt ?? null,
    retiredAt: times.retiredAt ?? null,
    revokedAt: times.revokedAt ?? null,
    removedAt: null,
  };
}

function observation(
  k: PlanKey,
  server: string,
  state: DnsObservation['lastState'],
  firstSeenMatching: string | null,
  lastChecked: string,
  detail = '',
): DnsObservation {
  return { keyId: k.id, server, firstSeenMatching, lastChecked, lastState: state, detail };
}

function input(keys: PlanKey[], more: Partial<StatusInput> = {}): StatusInput {
  return { now: NOW, keys, observations: [], policy: () => POLICY, servers: () => ['ns1'], readiness: new Map(), ...more };
}

test('keys in every state: shown in lifecycle order with their age and next step; removed keys are not shown', () => {
  const active = key('example.com', 'act', 'active', { createdAt: ago(40 * DAY), activatedAt: ago(30 * DAY) });
  const pending = key('example.com', 'pen', 'pending', { createdAt: ago(2 * DAY) }, 'ed25519');
  const retiring = key('example.com', 'ret', 'retiring', { createdAt: ago(130 * DAY), activatedAt: ago(120 * DAY), retiredAt: ago(2 * DAY) });
  const revoked = key('example.com', 'rev', 'revoked', { retiredAt: ago(20 * DAY), revokedAt: ago(DAY) });
  const removed = key('example.com', 'gone', 'removed', {});
  const observations = [observation(pending, 'ns1', 'match', ago(DAY), ago(HOUR))];

  const report = statusReport(input([revoked, removed, retiring, pending, active], { observations }));
  assert.equal(report.generatedAt, NOW.toISOString());
  assert.equal(report.ok, true);
  assert.equal(report.domains.length, 1);
  const [domain] = report.domains;
  assert.deepEqual(
    domain!.keys.map((k) => [k.state, k.selector]),
    [
      ['active', 'act'],
      ['pending', 'pen'],
      ['retiring', 'ret'],
      ['revoked', 'rev'],
    ],
  );
  const byName = new Map(domain!.keys.map((k) => [k.selector, k]));

  const a = byName.get('act')!;
  assert.equal(a.since, active.activatedAt, 'an active key counts its age from its activation');
  assert.equal(a.ageSeconds, (30 * DAY) / 1000);
  assert.deepEqual(a.next, { step: 'rotate', at: ago(-60 * DAY), due: false, text: 'rotates 2027-01-27 03:15 UTC' });

  const p = byName.get('pen')!;
  assert.equal(p.since, pending.createdAt);
  assert.equal(p.ageSeconds, (2 * DAY) / 1000);
  // Served since a day ago: publishFor (48h) runs out a day from now.
  assert.deepEqual(p.next, { step: 'activate', at: ago(-DAY), due: false, text: 'activates 2026-11-29 03:15 UTC if DNS keeps serving it' });
  assert.deepEqual(p.dns, {
    lastChecked: ago(HOUR),
    servers: [{ server: 'ns1', state: 'match', detail: '', lastChecked: ago(HOUR), firstSeenMatching: ago(DAY) }],
  });

  const r = byName.get('ret')!;
  assert.equal(r.since, retiring.retiredAt);
  assert.equal(p.algorithm, 'ed25519');
  assert.equal(p.bits, 256);
  assert.deepEqual(r.next, { step: 'revoke', at: ago(-5 * DAY), due: false, text: 'revoked 2026-12-03 03:15 UTC' });

  const v = byName.get('rev')!;
  assert.equal(v.since, revoked.revokedAt);
  assert.deepEqual(v.next, { step: 'remove', at: ago(-29 * DAY), due: false, text: 'removed 2026-12-27 03:15 UTC' });
  assert.deepEqual(v.dns, { lastChecked: null, servers: [] });
  assert.equal(domain!.readiness.status, 'not-checked');
});

test('an active key without a rotation interval has no next step', () => {
  const active = key('example.com', 'act', 'active', { activatedAt: ago(DAY) });
  const report = statusReport(input([active], { policy: () => ({ ...POLICY, interval: null }) }));
  assert.equal(report.domains[0]!.keys[0]!.next, null);
});

test('steps due now are shown as due, with the reason the scheduler will give', () => {
  const old = key('example.com', 'old', 'active', { createdAt: ago(200 * DAY), activatedAt: ago(100 * DAY) });
  const ready = key('example.com', 'new', 'pending', { createdAt: ago(3 * DAY) });
  const retiring = key('example.org', 'ret', 'retiring', { retiredAt: ago(8 * DAY) });
  const observations = [observation(ready, 'ns1', 'match', ago(3 * DAY), ago(MINUTE))];
  const report = statusReport(input([old, ready, retiring], { observations }));
  const next = new Map(report.domains.flatMap((d) => d.keys).map((k) => [k.selector, k.next]));
  assert.deepEqual(next.get('new'), {
    step: 'activate',
    at: NOW.toISOString(),
    due: true,
    text: 'activate due: every DNS server asked (1) has served its record for 2d',
  });
  assert.deepEqual(next.get('ret'), {
    step: 'revoke',
    at: NOW.toISOString(),
    due: true,
    text: 'revoke due: retired 2026-11-20 03:15 UTC, 1w ago, and no queued mail is signed with it',
  });
  // The old key's rotation is not due: a newer key is about to replace it.
  assert.equal(next.get('old'), null);
  assert.equal(report.ok, true);

  const alone = statusReport(input([old]));
  assert.equal(alone.domains[0]!.keys[0]!.next!.due, true);
  assert.equal(alone.domains[0]!.keys[0]!.next!.step, 'rotate');
  assert.match(alone.domains[0]!.keys[0]!.next!.text, /^rotation due: old has signed since .*, longer than 90d$/);
});

test('a key stuck in pending and a record DNS no longer serves need a person', () => {
  const active = key('example.com', 'act', 'active', { activatedAt: ago(10 * DAY) });
  const stuck = key('example.com', 'stuck', 'pending', { createdAt: ago(8 * DAY) });
  const fresh = key('example.org', 'fresh', 'pending', { createdAt: ago(6 * DAY) });
  const observations = [
    observation(active, 'ns1', 'missing', null, ago(HOUR), 'NXDOMAIN'),
    observation(stuck, 'ns1', 'mismatch', null, ago(HOUR), 'p= differs'),
    observation(fresh, 'ns1', 'missing', null, ago(HOUR), 'NXDOMAIN'),
  ];
  const report = statusReport(input([active, stuck, fresh], { observations }));
  assert.equal(report.ok, false);
  const [com, org] = report.domains;
  assert.deepEqual(
    com!.attention.map((a) => [a.code, a.selector]),
    [
      ['record-lost', 'act'],
      ['stuck-pending', 'stuck'],
    ],
  );
  assert.match(
    com!.attention[0]!.message,
    /^act\._domainkey\.example\.com \(active\) is not served by ns1 \(missing: NXDOMAIN\); receivers cannot verify what it signs: publish it$/,
  );
  assert.match(
    com!.attention[1]!.message,
    /^stuck\._domainkey\.example\.com has waited for DNS since 2026-11-20 03:15 UTC: waits for DNS: served by 0 of 1 servers \(ns1: mismatch\)$/,
  );
  assert.deepEqual(org!.attention, [], 'six days pending is not stuck yet (stuckAfter 7d)');
  assert.match(com!.keys.find((k) => k.selector === 'stuck')!.next!.text, /served by 0 of 1 servers/);

  const text = renderStatus(report);
  assert.match(text, /^  ! act\._domainkey\.example\.com \(active\) is not served/m);
  assert.match(text, /^  ! stuck\._domainkey\.example\.com has waited for DNS/m);
  assert.match(text, /^2 things need attention \(marked !\)$/m);
  assert.match(text, /^\s+DNS:  ns1 missing \(NXDOMAIN\); last checked 2026-11-28 02:15 UTC$/m);
});

test('an active key whose file cannot be used needs a person', () => {
  const active = key('example.com', 'act', 'active', { activatedAt: ago(DAY) });
  const report = statusReport(
    input([active], { keyProblems: [{ domain: 'example.com', selector: 'act', line: 'key file keys/x.pem is missing — restore it' }] }),
  );
  assert.equal(report.ok, false);
  assert.deepEqual(report.domains[0]!.attention, [
    { code: 'key-unusable', domain: 'example.com', selector: 'act', message: 'key file keys/x.pem is missing — restore it' },
  ]);
});

test('DMARC readiness: not checked, a failed lookup, and findings shown as advice that needs no person, as in dns check', () => {
  const k = (d: string) => key(d, 's1', 'active', { activatedAt: ago(DAY) });
  const readiness = new Map<string, ReadinessResult>([
    ['b.test', { status: 'failed', server: '127.0.0.1:53', reason: 'SERVFAIL from 127.0.0.1:53 for b.test TXT' }],
    [
      'c.test',
      {
        status: 'checked',
        server: '127.0.0.1:53',
        spf: 'v=spf1 -all',
        dmarc: 'v=DMARC1; p=reject',
        findings: [
          finding('info', 'dmarc-enforced', 'p=reject: receivers refuse mail that fails DMARC'),
          finding('warn', 'dmarc-no-rua', 'no rua= at _dmarc.c.test: you receive no aggregate reports, so you cannot see what fails', 'add rua='),
        ],
      },
    ],
    [
      'd.test',
      {
        status: 'checked',
        server: '127.0.0.1:53',
        spf: null,
        dmarc: null,
        findings: [
          finding('fail', 'spf-multiple', 'd.test has 2 SPF records', 'merge them into one record'),
          finding('warn', 'dmarc-missing', 'no DMARC record: receivers apply no policy', 'publish p=none'),
        ],
      },
    ],
  ]);
  const report = statusReport(input([k('a.test'), k('b.test'), k('c.test'), k('d.test')], { readiness }));
  const byDomain = new Map(report.domains.map((d) => [d.domain, d]));
  assert.deepEqual(byDomain.get('a.test')!.readiness, { status: 'not-checked' });
  assert.deepEqual(byDomain.get('b.test')!.readiness, readiness.get('b.test'));
  assert.deepEqual(byDomain.get('d.test')!.readiness, readiness.get('d.test'));
  for (const d of report.domains) assert.deepEqual(d.attention, [], `${d.domain}: readiness needs no person`);
  assert.equal(report.ok, true);

  const text = renderStatus(report);
  assert.match(text, /^a\.test\n(.*\n)*  DMARC  not checked \(--no-dns\)$/m);
  assert.match(text, /^  DMARC  DNS lookup failed: SERVFAIL from 127\.0\.0\.1:53 for b\.test TXT$/m);
  assert.match(
    text,
    /^  DMARC  p=reject: receivers refuse mail that fails DMARC  \(as 127\.0\.0\.1:53 sees it\)\n {9}warn dmarc-no-rua: no rua= at _dmarc\.c\.test/m,
  );
  assert.match(
    text,
    /^  DMARC  no DMARC record: receivers apply no policy  \(as 127\.0\.0\.1:53 sees it\)\n {9}fail spf-multiple: d\.test has 2 SPF records$/m,
  );
  assert.match(text, /^nothing needs attention$/m);
});

test('the human output: one aligned block per domain', () => {
  const active = key('example.com', 's202608a', 'active', { createdAt: ago(31 * DAY), activatedAt: ago(30 * DAY + 5 * HOUR) });
  const pending = key('example.com', 'p1', 'pending', { createdAt: ago(90 * MINUTE) }, 'ed25519');
  const lone = key('example.net', 's1', 'pending', { createdAt: ago(2 * HOUR) });
  const observations = [observation(active, 'ns1', 'match', ago(30 * DAY), ago(15 * MINUTE))];
  const text = renderStatus(statusReport(input([active, pending, lone], { observations })));
  assert.equal(
    text,
    [
      'example.com',
      '  active   s202608a  rsa 2048  since 2026-10-28 22:15 UTC (30d 5h)',
      '           next: rotates 2027-01-26 22:15 UTC',
      '           DNS:  ns1 match; last checked 2026-11-28 03:00 UTC',
      '  pending  p1        ed25519   since 2026-11-28 01:45 UTC (1h 30m)',
      '           next: waits for DNS: served by 0 of 1 servers (ns1: not asked yet)',
      '           DNS:  never checked',
      '  DMARC  not checked (--no-dns)',
      '',
      'example.net',
      '  no active key: nothing signs for this domain yet',
      '  pending  s1  rsa 2048  since 2026-11-28 01:15 UTC (2h)',
      '           next: waits for DNS: served by 0 of 1 servers (ns1: not asked yet)',
      '           DNS:  never checked',
      '  DMARC  not checked (--no-dns)',
      '',
      'nothing needs attention',
    ].join('\n'),
  );
});

test('an empty store says how to begin', () => {
  const report = statusReport(input([]));
  assert.deepEqual(report, { generatedAt: NOW.toISOString(), ok: true, domains: [] });
  assert.equal(renderStatus(report), 'no keys yet: dkim-relay keys generate --domain example.com');
});
