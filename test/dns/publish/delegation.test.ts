// Delegated selectors: the CNAMEs a domain owner publishes once, the TXT
// record the relay publishes at their target, and a lookup through a real
// authoritative server (Knot DNS) that follows one to the other.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import { delegatedCnames, delegatedTxtRecord, delegationFor, formatCnames } from '../../../src/dns/delegation.ts';
import { addRecord, replaceRecord } from '../../../src/dns/publish/change.ts';
import { createPublishers } from '../../../src/dns/publish/factory.ts';
import { generateKey } from '../../../src/keys/key-material.ts';
import { plan, type PlanKey } from '../../../src/rotation/plan.ts';
import { policyFor } from '../../../src/rotation/policy.ts';
import { startKnotPrimary } from '../../helpers/knot-primary.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { requireTool } from '../../helpers/tools.ts';

const DELEGATION = { zone: 'dkim.relay.example.net', selectors: ['sel1', 'sel2'] };

describe('delegated selectors', () => {
  test('the CNAMEs to publish once, in zone, value and JSON form', () => {
    const records = delegatedCnames('mail.example.com', DELEGATION);
    assert.equal(
      formatCnames(records, 'zone'),
      'sel1._domainkey.mail.example.com. 3600 IN CNAME sel1.mail-example-com.dkim.relay.example.net.\n' +
        'sel2._domainkey.mail.example.com. 3600 IN CNAME sel2.mail-example-com.dkim.relay.example.net.',
    );
    assert.equal(
      formatCnames(records, 'value'),
      'sel1._domainkey.mail.example.com\tsel1.mail-example-com.dkim.relay.example.net\nsel2._domainkey.mail.example.com\tsel2.mail-example-com.dkim.relay.example.net',
    );
    assert.deepEqual(JSON.parse(formatCnames(records, 'json')), [
      { name: 'sel1._domainkey.mail.example.com', type: 'CNAME', ttl: 3600, value: 'sel1.mail-example-com.dkim.relay.example.net' },
      { name: 'sel2._domainkey.mail.example.com', type: 'CNAME', ttl: 3600, value: 'sel2.mail-example-com.dkim.relay.example.net' },
    ]);
  });

  test("a delegated key's TXT record sits where the rotation planner says", () => {
    const key: PlanKey = {
      id: 1,
      domain: 'example.com',
      selector: 'sel1',
      algorithm: 'rsa',
      state: 'pending',
      bits: 2048,
      publicData: 'MIIB',
      createdAt: '2026-01-01T00:00:00.000Z',
      activatedAt: null,
      retiredAt: null,
      revokedAt: null,
    };
    const policy = { ...policyFor(parseConfig('', 'e').rotation, 'example.com', DELEGATION), stuckAfter: 1000 };
    const { actions } = plan({ now: new Date('2026-02-01T00:00:00Z'), keys: [key], policy: () => policy, servers: () => ['ns1'], observations: [] });
    const notice = actions.find((a) => a.kind === 'notify');
    assert.ok(notice?.kind === 'notify');
    assert.deepEqual(notice.records[0], delegatedTxtRecord(key, DELEGATION));
    assert.equal(delegatedTxtRecord(key, DELEGATION).name, 'sel1.example-com.dkim.relay.example.net');
  });

  test('dns.delegation applies to every domain, or to the domains listed', () => {
    const all = parseConfig('dns: { delegation: { zone: dkim.relay.example.net } }', 't').dns.delegation;
    assert.deepEqual(delegationFor(all, 'example.org'), DELEGATION);
    const some = parseConfig('dns: { delegation: { zone: dkim.relay.example.net, selectors: [a1, a2, e1, e2], domains: [example.com] } }', 't').dns.delegation;
    assert.deepEqual(delegationFor(some, 'example.com'), { zone: 'dkim.relay.example.net', selectors: ['a1', 'a2', 'e1', 'e2'] });
    assert.equal(delegationFor(some, 'example.org'), undefined);
    assert.equal(delegationFor(undefined, 'example.com'), undefined);
  });

  test('end to end: the customer zone serves the CNAME, the relay publishes the TXT by RFC 2136, a lookup follows one to the other', async (t) => {
    if (!requireTool(t, 'knotd', 'knotc')) return;
    const dir = tempDir();
    const cnames = formatCnames(delegatedCnames('example.com', DELEGATION), 'zone').split('\n');
    const knot = await startKnotPrimary({ 'example.com': cnames, [DELEGATION.zone]: [] });
    try {
      const secretFile = join(dir, 'tsig.key');
      writeFileSync(secretFile, knot.tsig.secret, { mode: 0o600 });
      const { dns } = parseConfig(
        `dns:\n  publish:\n    - { zone: ${DELEGATION.zone}, method: rfc2136, server: "${knot.address}", tsig: { name: ${knot.tsig.name}, secretFile: ${secretFile} } }\n  delegation: { zone: ${DELEGATION.zone} }`,
        't.yaml',
      );
      const delegation = delegationFor(dns.delegation, 'example.com')!;
      const key = { domain: 'example.com', selector: 'sel1', algorithm: 'rsa' as const, publicData: generateKey('rsa', 2048).publicData };
      const record = delegatedTxtRecord({ ...key, state: 'pending' }, delegation);
      const publishers = createPublishers(dns.publish);

      const [published] = await publishers.publish([addRecord(record)]);
      assert.deepEqual(published, { zone: DELEGATION.zone, changes: [addRecord(record)], result: { status: 'published' } });

      // What a recursive resolver does: the owner's name is a CNAME, whose target holds the key.
      const lookup = async (name: string) => {
        for (let hops = 0; hops < 8; hops++) {
          const target = await knot.cname(name);
          if (target === undefined) return knot.txt(name);
          name = target;
        }
        throw new Error('CNAME loop');
      };
      assert.equal(await knot.cname('sel1._domainkey.example.com'), record.name);
      assert.deepEqual(await lookup('sel1._domainkey.example.com'), [record.value]);
      assert.deepEqual(await lookup('sel2._domainkey.example.com'), [], 'sel2 is free until rotation uses it');

      // Revocation changes only the relay's zone; the owner's CNAME stays.
      const revoked = delegatedTxtRecord({ ...key, state: 'revoked' }, delegation);
      const [revocation] = await publishers.publish(replaceRecord(record, revoked));
      assert.deepEqual(revocation!.result, { status: 'published' });
      assert.deepEqual(await lookup('sel1._domainkey.example.com'), ['v=DKIM1; k=rsa; p=']);
      assert.equal(await knot.serial('example.com'), 1, "the customer's zone never changed");
    } finally {
      await knot.stop();
    }
  });
});
