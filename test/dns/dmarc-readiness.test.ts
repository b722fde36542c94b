// SPF and DMARC records explained in plain words: pure, records passed in.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readiness, type ReadinessInput } from '../../src/dns/dmarc-readiness.ts';
import { countSpfLookups, spfTerms } from '../../src/dns/spf.ts';

function input(spf: string | null, dmarc: string | null, extra: Partial<ReadinessInput> = {}): ReadinessInput {
  return {
    domain: 'example.com',
    domainTxt: spf === null ? ['google-site-verification=x'] : [spf],
    dmarc: { name: '_dmarc.example.com', txt: dmarc === null ? [] : [dmarc] },
    spfIncludes: new Map(),
    ...extra,
  };
}
const codes = (i: ReadinessInput) => readiness(i).findings.map((f) => f.code);
const find = (i: ReadinessInput, code: string) => readiness(i).findings.find((f) => f.code === code);

describe('DMARC readiness', () => {
  test('no DMARC record: receivers apply no policy; start with p=none and rua=', () => {
    const f = find(input('v=spf1 mx -all', null), 'dmarc-missing')!;
    assert.match(f.message, /receivers apply no policy/);
    assert.match(f.fix!, /publish p=none with rua= to start collecting reports/);
  });

  test('p=none: reports only; move to quarantine when reports are clean', () => {
    const f = find(input('v=spf1 -all', 'v=DMARC1; p=none; rua=mailto:d@example.com'), 'dmarc-none')!;
    assert.match(f.message, /reports only/);
    assert.match(f.fix!, /quarantine/);
    assert.deepEqual(codes(input('v=spf1 -all', 'v=DMARC1; p=none; rua=mailto:d@example.com')), ['dmarc-none']);
  });

  test('quarantine with pct below 100, and reject at 100', () => {
    assert.match(find(input('v=spf1 -all', 'v=DMARC1; p=quarantine; pct=25; rua=mailto:d@example.com'), 'dmarc-pct')!.message, /25% of failing mail/);
    assert.deepEqual(codes(input('v=spf1 -all', 'v=DMARC1; p=reject; rua=mailto:d@example.com')), ['dmarc-enforced']);
  });

  test('no rua=', () => {
    assert.deepEqual(codes(input('v=spf1 -all', 'v=DMARC1; p=reject')), ['dmarc-enforced', 'dmarc-no-rua']);
  });

  test('adkim=s while subdomains are signed by the parent', () => {
    assert.match(
      find(input('v=spf1 -all', 'v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.com'), 'dmarc-adkim-strict')!.message,
      /mail\.example\.com.*d=example\.com/,
    );
    assert.equal(find(input('v=spf1 -all', 'v=DMARC1; p=reject; adkim=r; rua=mailto:d@example.com'), 'dmarc-adkim-strict'), undefined);
  });

  test('a subdomain takes sp= from its organisational domain', () => {
    const i = input('v=spf1 -all', 'v=DMARC1; p=reject; sp=none; rua=mailto:d@example.com', { domain: 'mail.example.com' });
    assert.match(find(i, 'dmarc-none')!.message, /from _dmarc\.example\.com/);
  });

  test('two DMARC records, or one without a valid p=', () => {
    assert.deepEqual(codes({ ...input('v=spf1 -all', null), dmarc: { name: '_dmarc.example.com', txt: ['v=DMARC1; p=none', 'v=DMARC1; p=reject'] } }), [
      'dmarc-multiple',
    ]);
    assert.deepEqual(codes(input('v=spf1 -all', 'v=DMARC1; p=maybe')), ['dmarc-policy']);
  });

  test('SPF: none, two, +all, no -all/~all, ?all, redirect', () => {
    assert.ok(codes(input(null, 'v=DMARC1; p=none; rua=mailto:a@b.c')).includes('spf-missing'));
    assert.ok(codes({ ...input(null, null), domainTxt: ['v=spf1 -all', 'v=spf1 mx -all'] }).includes('spf-multiple'));
    assert.ok(codes(input('v=spf1 +all', null)).includes('spf-plus-all'));
    assert.ok(codes(input('v=spf1 all', null)).includes('spf-plus-all'));
    assert.ok(codes(input('v=spf1 mx', null)).includes('spf-no-all'));
    assert.ok(codes(input('v=spf1 mx ?all', null)).includes('spf-no-all'));
    assert.ok(!codes(input('v=spf1 mx ~all', null)).some((c) => c.startsWith('spf-')));
    assert.ok(!codes(input('v=spf1 redirect=_spf.example.net', null)).some((c) => c.startsWith('spf-')));
  });

  test('SPF: more than 10 lookups, counted through includes', () => {
    const spfIncludes = new Map([
      ['a.example.net', 'v=spf1 include:b.example.net a mx -all'],
      ['b.example.net', 'v=spf1 a mx ptr exists:%{i}.x.example.net include:a.example.net -all'],
    ]);
    const record = 'v=spf1 a mx include:a.example.net include:c.example.net -all';
    // 4 here + 3 in a + 5 in b (the loop back to a is not followed twice) = 12
    assert.equal(countSpfLookups(record, spfIncludes), 12);
    const f = find({ ...input(record, null), spfIncludes }, 'spf-lookups')!;
    assert.match(f.message, /12 DNS lookups/);
    assert.equal(find(input(record, null), 'spf-lookups'), undefined); // 4 without the includes' own terms
  });

  test('spfTerms reads qualifiers and modifiers', () => {
    assert.deepEqual(spfTerms('v=spf1 ip4:192.0.2.0/24 include:_spf.example.net redirect=x.example.org -all'), {
      all: '-',
      includes: ['_spf.example.net'],
      redirect: 'x.example.org',
      lookups: 2,
    });
  });
});
