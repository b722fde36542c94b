// Unattended rotation with publishing configured: the scheduler inside a real
// relay publishes every record itself by RFC 2136 (TSIG) to a real Knot DNS
// primary, and reads DNS back before each step, with an injected clock. No
// step needs a person, so no notice asks one to publish anything. Then the
// same with delegated selectors: the relay publishes in its own zone, but a
// key activates only once the domain owner's CNAME leads receivers to it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema, type Config } from '../../src/config/schema.ts';
import { delegatedCnames, delegatedName, delegationFor } from '../../src/dns/delegation.ts';
import { addRecord } from '../../src/dns/publish/change.ts';
import { createPublishers } from '../../src/dns/publish/factory.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { txtRecord } from '../../src/keys/record.ts';
import { startRelay, type RunningRelay } from '../../src/daemon/daemon.ts';
import { LiveDnsObserver } from '../../src/rotation/dns-observer.ts';
import { verifyWithDkimpyDns } from '../helpers/dns-verify.ts';
import { startKnotPrimary, type KnotPrimary } from '../helpers/knot-primary.ts';
import { dkimFields, send, startSink, type Sink } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { skipWithout } from '../helpers/tools.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Setup {
  knot: KnotPrimary;
  sink: Sink;
  relay: RunningRelay;
  config: Config;
  secretFile: string;
  logs: Record<string, unknown>[];
  clock: { now: number };
}

/** A relay whose zones in `publish` are updated by RFC 2136 at `knot`, asking `knot` as its only DNS server. */
async function setUp(
  knot: KnotPrimary,
  domain: string,
  publish: string[],
  extra: Record<string, unknown>,
  seed: (store: SqliteKeyStore) => void,
): Promise<Setup> {
  const dir = tempDir('dkim-relay-publish-');
  const secretFile = join(dir, 'tsig.key');
  writeFileSync(secretFile, knot.tsig.secret, { mode: 0o600 });
  const sink = await startSink();
  const config = configSchema.parse({
    keys: { dir: join(dir, 'keys') },
    listen: { port: 0, hostname: 'relay.test' },
    metrics: { listen: '127.0.0.1:0' },
    delivery: { mode: 'sync', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
    dns: {
      resolvers: [knot.address],
      timeoutSeconds: 1,
      publish: publish.map((zone) => ({ zone, method: 'rfc2136', server: knot.address, tsig: { name: knot.tsig.name, secretFile } })),
      ...extra,
    },
    rotation: { interval: '90d', publishFor: '48h', retireAfter: '7d', removeAfter: '30d', stuckAfter: '30d', check: 'off', notify: `postmaster@${domain}` },
  });
  const store = SqliteKeyStore.open(config.keys.dir);
  seed(store);
  store.close();
  const logs: Record<string, unknown>[] = [];
  const lines = new Writable({
    write(chunk, _enc, done) {
      logs.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const clock = { now: Date.now() };
  // No publisher is injected: the relay builds it from dns.publish, as `serve` does.
  const relay = await startRelay({ config, path: 'test' }, pino({ level: 'info' }, lines), {
    rotation: {
      now: () => clock.now,
      // Real DNS: the zones' authoritative server (ns.<zone> is 127.0.0.1) is asked on knotd's port instead of 53.
      observer: () =>
        new LiveDnsObserver({
          resolvers: [knot.address],
          timeoutMs: 1000,
          authoritativePort: knot.port,
          delegation: (d) => delegationFor(config.dns.delegation, d),
        }),
    },
  });
  return { knot, sink, relay, config, secretFile, logs, clock };
}

async function pass(relay: RunningRelay): Promise<string[]> {
  const result = await relay.rotation.runOnce();
  assert.ok(result.ran, 'the only scheduler holds the lease');
  return result.applied.map((a) => a.kind);
}

/** Sends one message through the relay; the selector that signed it, and whether dkimpy verifies it over DNS. */
async function relayed(s: Setup, domain: string): Promise<{ selector: string; result: string }> {
  const before = s.sink.received.length;
  const reply = await send({
    port: s.relay.ports.plain,
    from: `alice@${domain}`,
    to: ['bob@example.net'],
    raw: `From: Alice <alice@${domain}>\r\nTo: bob@example.net\r\nSubject: rotation\r\n\r\nHello.\r\n`,
  });
  assert.ok(reply.ok, `relay refused: ${reply.response}`);
  const raw = s.sink.received[before]!.raw;
  const [field] = dkimFields(raw);
  const verdicts = await verifyWithDkimpyDns(raw, s.knot.address);
  return { selector: /\bs=([^;\s]+)/.exec(field!)![1]!, result: verdicts[0]!.result };
}

/** What asked a person to act: mail to rotation.notify, and log lines asking for work by hand. */
function askedForAPerson(s: Setup, domain: string): string[] {
  const mails = s.sink.received.filter((m) => m.to.includes(`postmaster@${domain}`)).map((m) => /^Subject: (.*)$/m.exec(m.raw.toString())?.[1] ?? '?');
  const lines = s.logs.filter((l) => /by hand|needs a person/.test(String(l.msg))).map((l) => String(l.msg));
  return [...mails, ...lines];
}

describe('unattended rotation, published by RFC 2136 to knotd', { skip: skipWithout('knotd', 'knotc') }, () => {
  const DOMAIN = 'pub.test';
  let s: Setup;

  before(async () => {
    const first = { value: '' };
    const knot = await startKnotPrimary({ [DOMAIN]: [] });
    s = await setUp(knot, DOMAIN, [DOMAIN], {}, (store) => {
      const key = store.generate({ domain: DOMAIN, selector: 'first', algorithm: 'rsa', bits: 2048, activate: true });
      first.value = txtRecord(key).value;
    });
    // The first key was published by hand before the relay took over.
    const [published] = await createPublishers(s.config.dns.publish).publish([addRecord(txtRecord(s.relay.store.get(DOMAIN, 'first')))]);
    assert.equal(published!.result.status, 'published');
    assert.deepEqual(await knot.txt(`first._domainkey.${DOMAIN}`), [first.value]);
  });

  after(async () => {
    await s?.relay.stop();
    await s?.sink.close();
    await s?.knot.stop();
  });

  test('create, publish, activate, revoke, withdraw: every record published by the relay, nobody asked', async () => {
    const { relay, knot, clock } = s;
    const key = (selector: string) => relay.store.list(DOMAIN).find((k) => k.selector === selector)!;
    const served = (selector: string) => knot.txt(`${selector}._domainkey.${DOMAIN}`);
    assert.deepEqual(await pass(relay), [], 'nothing is due');

    clock.now += 91 * DAY;
    assert.deepEqual(await pass(relay), ['create']);
    const second = relay.store.list(DOMAIN).find((k) => k.state === 'pending')!;
    assert.deepEqual(await served(second.selector), [txtRecord(second).value], 'the new record is in the zone, read back by a real query');
    assert.ok(s.logs.some((l) => l.rotation === 'publish' && l.selector === second.selector && l.msg === 'DNS record published'));

    // DNS-gated as ever: first seen at the next check, active publishFor (48h) later.
    clock.now += HOUR;
    assert.deepEqual(await pass(relay), []);
    clock.now += 47 * HOUR;
    assert.deepEqual(await pass(relay), []);
    clock.now += HOUR;
    assert.deepEqual(await pass(relay), ['activate']);
    assert.equal(key(second.selector).state, 'active');
    assert.equal(key('first').state, 'retiring');
    assert.deepEqual(await relayed(s, DOMAIN), { selector: second.selector, result: 'pass' });

    // The revocation cannot be published (the TSIG secret is wrong for a while): one log line, and the next pass retries it.
    writeFileSync(s.secretFile, Buffer.alloc(32, 7).toString('base64'), { mode: 0o600 });
    clock.now += 7 * DAY;
    const mark = s.logs.length;
    assert.deepEqual(await pass(relay), ['revoke']);
    assert.equal(key('first').state, 'revoked');
    const failed = s.logs.slice(mark).filter((l) => l.rotation === 'publish' && l.level === 50);
    assert.equal(failed.length, 1, 'one line for the failed update');
    assert.match(String(failed[0]!.err), /TSIG key refused by the server.*\[BADSIG\]/);
    assert.ok(!String(failed[0]!.err).includes('\n'));
    assert.equal((await served('first'))[0]?.endsWith('p='), false, 'not revoked in DNS yet');
    writeFileSync(s.secretFile, knot.tsig.secret, { mode: 0o600 });
    clock.now += HOUR;
    assert.deepEqual(await pass(relay), []);
    assert.ok(s.logs.some((l) => l.msg === 'DNS change applied at a later try' && l.selector === 'first'));
    assert.deepEqual(await served('first'), ['v=DKIM1; k=rsa; p='], 'replaced by its empty-p= form: one record, not two');
    assert.deepEqual(await pass(relay), [], 'applied once: nothing left to retry');

    clock.now += 30 * DAY;
    assert.deepEqual(await pass(relay), ['remove']);
    assert.deepEqual(await served('first'), [], 'withdrawn');
    assert.deepEqual(await served(second.selector), [txtRecord(key(second.selector)).value], 'the signing key is untouched');
    assert.deepEqual(await relayed(s, DOMAIN), { selector: second.selector, result: 'pass' });

    assert.deepEqual(askedForAPerson(s, DOMAIN), [], 'no notice, no "by hand" line: nothing needed a person');
    const steps = s.logs.filter((l) => typeof l.rotation === 'string' && /^rotation step: /.test(String(l.msg))).map((l) => l.rotation);
    assert.deepEqual(steps, ['create', 'activate', 'revoke', 'remove']);
  });
});

describe('unattended rotation with delegated selectors, CNAMEs served by knotd', { skip: skipWithout('knotd', 'knotc') }, () => {
  const DOMAIN = 'cust.test';
  const ZONE = 'dkim.relay.test';
  let s: Setup;

  before(async () => {
    const knot = await startKnotPrimary({ [DOMAIN]: [], [ZONE]: [] });
    s = await setUp(knot, DOMAIN, [ZONE], { delegation: { zone: ZONE } }, (store) => {
      store.generate({ domain: DOMAIN, selector: 'sel1', algorithm: 'rsa', bits: 2048, activate: true });
    });
    const delegation = delegationFor(s.config.dns.delegation, DOMAIN)!;
    const first = s.relay.store.get(DOMAIN, 'sel1');
    // The owner published sel1's CNAME only; the relay's zone serves sel1's key.
    const [sel1] = delegatedCnames(DOMAIN, delegation);
    const owner = createPublishers([{ ...s.config.dns.publish[0]!, zone: DOMAIN }]);
    assert.equal((await owner.publish([addRecord({ ...sel1!, strings: [sel1!.value] })]))[0]!.result.status, 'published');
    const relayZone = createPublishers(s.config.dns.publish);
    assert.equal((await relayZone.publish([addRecord({ ...txtRecord(first), name: delegatedName('sel1', DOMAIN, ZONE) })]))[0]!.result.status, 'published');
  });

  after(async () => {
    await s?.relay.stop();
    await s?.sink.close();
    await s?.knot.stop();
  });

  test('the key is published in the relay zone, and activates only once the owner serves its CNAME', async () => {
    const { relay, knot, clock } = s;
    const delegation = delegationFor(s.config.dns.delegation, DOMAIN)!;
    assert.deepEqual(await relayed(s, DOMAIN), { selector: 'sel1', result: 'pass' });

    clock.now += 91 * DAY;
    assert.deepEqual(await pass(relay), ['create']);
    const second = relay.store.get(DOMAIN, 'sel2');
    assert.equal(second.state, 'pending');
    assert.deepEqual(await knot.txt(delegatedName('sel2', DOMAIN, ZONE)), [txtRecord(second).value], 'published at the target, in the relay zone');
    assert.equal(await knot.cname(`sel2._domainkey.${DOMAIN}`), undefined, "the owner's zone is not the relay's to change");

    // The target serves the key, but receivers ask the owner's name, which leads nowhere: it stays pending.
    clock.now += HOUR;
    assert.deepEqual(await pass(relay), []);
    clock.now += 3 * DAY;
    assert.deepEqual(await pass(relay), []);
    assert.equal(relay.store.get(DOMAIN, 'sel2').state, 'pending');

    // The owner publishes the CNAME: activated publishFor later.
    const [, sel2] = delegatedCnames(DOMAIN, delegation);
    const owner = createPublishers([{ ...s.config.dns.publish[0]!, zone: DOMAIN }]);
    assert.equal((await owner.publish([addRecord({ ...sel2!, strings: [sel2!.value] })]))[0]!.result.status, 'published');
    clock.now += HOUR;
    assert.deepEqual(await pass(relay), []);
    clock.now += 48 * HOUR;
    assert.deepEqual(await pass(relay), ['activate']);
    assert.deepEqual(await relayed(s, DOMAIN), { selector: 'sel2', result: 'pass' });

    clock.now += 7 * DAY;
    assert.deepEqual(await pass(relay), ['revoke']);
    assert.deepEqual(await knot.txt(delegatedName('sel1', DOMAIN, ZONE)), ['v=DKIM1; k=rsa; p=']);
    clock.now += 30 * DAY;
    assert.deepEqual(await pass(relay), ['remove']);
    assert.deepEqual(await knot.txt(delegatedName('sel1', DOMAIN, ZONE)), [], 'withdrawn from the relay zone');
    assert.equal(await knot.cname(`sel1._domainkey.${DOMAIN}`), delegatedName('sel1', DOMAIN, ZONE), "the owner's CNAME stays, for the next rotation");
    assert.deepEqual(askedForAPerson(s, DOMAIN), []);
  });
});
