// The pure decision: a key from the store and what a server answered →
// status and lint findings.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import type { DnsAnswer } from '../../src/dns/dns-client.ts';
import { judgeKey, type ExpectedKey } from '../../src/dns/key-status.ts';
import { generateKey } from '../../src/keys/key-material.ts';
import { splitValue, txtValue } from '../../src/keys/record.ts';

const rsa = generateKey('rsa', 2048);
const rsa1024 = generateKey('rsa', 1024);
const ed = generateKey('ed25519');
const other = generateKey('rsa', 2048);
const rsa512 = generateKeyPairSync('rsa', { modulusLength: 512 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

const key = (material: { algorithm: 'rsa' | 'ed25519'; publicData: string }, state: ExpectedKey['state'] = 'active'): ExpectedKey => ({
  algorithm: material.algorithm,
  publicData: material.publicData,
  state,
});
const value = (k: ExpectedKey) => txtValue({ domain: 'example.com', selector: 's1', ...k });

function answer(records: string[][], extra: { transport?: 'udp' | 'tcp'; ttl?: number } = {}): DnsAnswer {
  return {
    ok: true,
    server: '192.0.2.53:53',
    chain: ['s1._domainkey.example.com'],
    rcode: records.length ? 'NOERROR' : 'NXDOMAIN',
    transport: extra.transport ?? 'udp',
    authorities: [],
    additionals: [],
    records: records.map((strings) => ({ type: 'TXT', name: 's1._domainkey.example.com', ttl: extra.ttl ?? 3600, strings })),
  };
}
const codes = (j: { findings: { code: string }[] }) => j.findings.map((f) => f.code);

describe('judgeKey', () => {
  test('match: the split strings join to the key, no findings', () => {
    const k = key(rsa);
    const j = judgeKey(k, answer([splitValue(value(k))]));
    assert.deepEqual(j, { status: 'match', findings: [] });
  });

  test('missing: nothing, or only TXT that is no DKIM record', () => {
    assert.equal(judgeKey(key(rsa), answer([])).status, 'missing');
    assert.equal(judgeKey(key(rsa), answer([['google-site-verification=abc']])).status, 'missing');
  });

  test('mismatch: another key', () => {
    const j = judgeKey(key(rsa), answer([splitValue(value(key(other)))]));
    assert.equal(j.status, 'mismatch');
    assert.deepEqual(codes(j), ['p-differs']);
  });

  test('malformed: p= truncated at 255 characters, with the fix', () => {
    const j = judgeKey(key(rsa), answer([[value(key(rsa)).slice(0, 255)]]));
    assert.equal(j.status, 'malformed');
    const f = j.findings.find((x) => x.code === 'p-truncated')!;
    assert.match(f.message, /cut off after \d+ of 392/);
    assert.match(f.fix!, /several strings/);
  });

  test('malformed: no p=, a broken tag list, v= not first', () => {
    assert.equal(judgeKey(key(rsa), answer([['v=DKIM1; k=rsa']])).status, 'malformed');
    assert.equal(judgeKey(key(rsa), answer([['v=DKIM1; k=rsa; garbage; p=' + rsa.publicData]])).status, 'malformed');
    assert.equal(judgeKey(key(rsa), answer([['k=rsa; v=DKIM1; p=' + rsa.publicData]])).status, 'malformed');
  });

  test('revoked: a revoked key published with empty p= as it should be', () => {
    const k = key(rsa, 'revoked');
    assert.deepEqual(judgeKey(k, answer([splitValue(value(k))])), { status: 'revoked', findings: [] });
  });

  test('stale: a revoked key whose public key DNS still serves', () => {
    const j = judgeKey(key(rsa, 'revoked'), answer([splitValue(value(key(rsa)))]));
    assert.equal(j.status, 'stale');
  });

  test('removed keys: stale while DNS serves them, match once withdrawn', () => {
    assert.equal(judgeKey(key(rsa, 'removed'), answer([splitValue(value(key(rsa)))])).status, 'stale');
    assert.equal(judgeKey(key(rsa, 'removed'), answer([])).status, 'match');
  });

  test('mismatch: an active key published as revoked', () => {
    const j = judgeKey(key(rsa), answer([['v=DKIM1; k=rsa; p=']]));
    assert.equal(j.status, 'mismatch');
    assert.deepEqual(codes(j), ['revoked-in-dns']);
  });

  test('whitespace inserted where two strings meet inside p= (still the key)', () => {
    const strings = splitValue(value(key(rsa)));
    strings[1] = strings[1] + ' ';
    const j = judgeKey(key(rsa), answer([strings]));
    assert.equal(j.status, 'match');
    assert.deepEqual(codes(j), ['join-whitespace']);
    // the space after "k=rsa; " in our own first string is between tags, not a finding
    assert.deepEqual(codes(judgeKey(key(rsa), answer([splitValue(value(key(rsa)))]))), []);
  });

  test('t=y left on', () => {
    const j = judgeKey(key(rsa), answer([[`v=DKIM1; k=rsa; t=y; p=${rsa.publicData}`]]));
    assert.equal(j.status, 'match');
    assert.deepEqual(codes(j), ['t-y']);
  });

  test('h=sha1 refuses our signatures; h=sha1:sha256 only warns', () => {
    const only = judgeKey(key(rsa), answer([[`v=DKIM1; k=rsa; h=sha1; p=${rsa.publicData}`]]));
    assert.equal(only.status, 'mismatch');
    assert.deepEqual(codes(only), ['h-sha1']);
    const both = judgeKey(key(rsa), answer([[`v=DKIM1; k=rsa; h=sha1:sha256; p=${rsa.publicData}`]]));
    assert.equal(both.status, 'match');
    assert.deepEqual(codes(both), ['h-sha1']);
  });

  test('k= that does not match the key', () => {
    const j = judgeKey(key(ed), answer([[`v=DKIM1; k=rsa; p=${ed.publicData}`]]));
    assert.equal(j.status, 'mismatch');
    assert.deepEqual(codes(j), ['k-mismatch']);
    assert.equal(judgeKey(key(ed), answer([[value(key(ed))]])).status, 'match');
  });

  test('RSA under 2048 bits is advice, under 1024 a failure', () => {
    const j = judgeKey(key(rsa1024), answer([[value(key(rsa1024))]]));
    assert.equal(j.status, 'match');
    assert.equal(j.findings[0]!.level, 'advice');
    assert.deepEqual(codes(j), ['rsa-short']);
    const weak = judgeKey({ algorithm: 'rsa', publicData: rsa512, state: 'active' }, answer([[`v=DKIM1; k=rsa; p=${rsa512}`]]));
    assert.equal(weak.findings.find((f) => f.code === 'rsa-weak')?.level, 'fail');
  });

  test('two TXT records at one name', () => {
    const j = judgeKey(key(rsa), answer([splitValue(value(key(rsa))), ['v=spf1 -all']]));
    assert.equal(j.status, 'match');
    assert.deepEqual(codes(j), ['two-records']);
    assert.equal(judgeKey(key(rsa), answer([splitValue(value(key(rsa))), splitValue(value(key(other)))])).status, 'malformed');
  });

  test('an answer that only arrives over TCP, and a TTL longer than a day', () => {
    assert.deepEqual(codes(judgeKey(key(rsa), answer([splitValue(value(key(rsa)))], { transport: 'tcp' }))), ['tcp-only']);
    assert.deepEqual(codes(judgeKey(key(rsa), answer([splitValue(value(key(rsa)))], { ttl: 86401 }))), ['long-ttl']);
    assert.deepEqual(codes(judgeKey(key(rsa), answer([splitValue(value(key(rsa)))], { ttl: 86400 }))), []);
  });

  test('temperror: the reason of the failed lookup, one line', () => {
    const j = judgeKey(key(rsa), { ok: false, server: '192.0.2.53:53', reason: 'timeout after 3 s at 192.0.2.53:53' });
    assert.equal(j.status, 'temperror');
    assert.equal(j.findings[0]!.message, 'timeout after 3 s at 192.0.2.53:53');
  });
});
