// The rotation scheduler inside a real relay, against real authoritative DNS
// (two Knot DNS servers on loopback: the zone's authoritative server, found
// through its NS record, and a second one standing for dns.resolvers), with
// an injected clock so lifecycle time passes without sleeping. Mail is
// signed by the relay before and after each switch and checked by dkimpy,
// which fetches the keys over DNS as a receiver would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { txtRecord } from '../../src/keys/record.ts';
import type { StoredKey } from '../../src/keys/store.ts';
import { startRelay, type RunningRelay } from '../../src/daemon/daemon.ts';
import { LiveDnsObserver } from '../../src/rotation/dns-observer.ts';
import { dkimFields, send, startSink, type Sink } from '../helpers/relay-harness.ts';
import { verifyWithDkimpyDns } from '../helpers/dns-verify.ts';
import { freeDnsPort, startKnot, type Knot } from '../helpers/knot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { PRIVATE_ARMOUR } from '../keys/support.ts';
import { skipWithout } from '../helpers/tools.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ZONE = 'rot.test';

/** The zone as an administrator would keep it: SOA, NS (ns1 at 127.0.0.2) and the DKIM records given. */
function zone(serial: number, keys: StoredKey[]): Record<string, string> {
  const records = keys.map((k) => {
    const r = txtRecord(k);
    return `${r.name}. 300 IN TXT ${r.strings.map((s) => `"${s}"`).join(' ')}`;
  });
  return {
    [ZONE]: [
      `$ORIGIN ${ZONE}.`,
      '$TTL 300',
      `@ SOA ns1.${ZONE}. hostmaster.${ZONE}. ${serial} 3600 600 86400 300`,
      `@ NS ns1.${ZONE}.`,
      'ns1 A 127.0.0.2',
      ...records,
      '',
    ].join('\n'),
  };
}

const MESSAGE = (subject: string) => `From: Alice <alice@${ZONE}>\r\nTo: bob@example.net\r\nSubject: ${subject}\r\n\r\nHello through the rotation.\r\n`;

describe('key rotation, unattended, against knotd', { skip: skipWithout('knotd', 'knotc') }, () => {
  const dir = tempDir('dkim-relay-rotation-');
  const reveal = join(dir, 'revealed');
  let authoritative: Knot;
  let resolver: Knot;
  let sink: Sink;
  let relay: RunningRelay;
  let now = Date.now();
  let serial = 1;
  const logs: Record<string, unknown>[] = [];

  before(async () => {
    sink = await startSink();
    const port = await freeDnsPort('127.0.0.2');
    authoritative = await startKnot(zone(serial, []), { host: '127.0.0.2', port });
    resolver = await startKnot(zone(serial, []));
    const config = configSchema.parse({
      keys: { dir: join(dir, 'keys') },
      listen: { port: 0, hostname: 'relay.test' },
      metrics: { listen: '127.0.0.1:0' },
      delivery: { mode: 'sync', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
      dns: { resolvers: [resolver.address], timeoutSeconds: 1 },
      rotation: {
        interval: '90d',
        publishFor: '48h',
        retireAfter: '7d',
        removeAfter: '30d',
        stuckAfter: '3d',
        check: '0 0 1 1 *',
        notify: `postmaster@${ZONE}`,
        revealPrivateKeys: reveal,
      },
    });
    const { SqliteKeyStore } = await import('../../src/keys/store.ts');
    const store = SqliteKeyStore.open(config.keys.dir);
    const first = store.generate({ domain: ZONE, selector: 'first', algorithm: 'rsa', bits: 2048, activate: true });
    store.close();
    await publish([first]);
    const lines = new Writable({
      write(chunk, _enc, done) {
        logs.push(JSON.parse(String(chunk)));
        done();
      },
    });
    relay = await startRelay({ config, path: 'test' }, pino({ level: 'info' }, lines), {
      rotation: {
        now: () => now,
        // Real DNS: the zone's authoritative server is asked on its test port instead of 53.
        observer: () => new LiveDnsObserver({ resolvers: [resolver.address], timeoutMs: 1000, authoritativePort: port }),
      },
    });
  });

  after(async () => {
    await relay?.stop();
    await sink?.close();
    await authoritative?.stop();
    await resolver?.stop();
  });

  /** Serves these keys' records (as the key store would publish them now) at the servers named. */
  async function publish(keys: StoredKey[], at: Knot[] = [authoritative, resolver]): Promise<void> {
    serial++;
    for (const knot of at) if (knot) await knot.update(zone(serial, keys));
  }

  const key = (selector: string) => relay.store.list(ZONE).find((k) => k.selector === selector)!;
  const pass = async () => {
    const result = await relay.rotation.runOnce();
    assert.ok(result.ran, 'the only scheduler holds the lease');
    return result.applied.map((a) => a.kind);
  };

  /** Sends through the relay; returns the message as the upstream got it and the selector that signed it. */
  async function relayed(subject: string): Promise<{ raw: Buffer; selector: string }> {
    const before = sink.received.length;
    const reply = await send({ port: relay.ports.plain, from: `alice@${ZONE}`, to: ['bob@example.net'], raw: MESSAGE(subject) });
    assert.ok(reply.ok, `relay refused: ${reply.response}`);
    const raw = sink.received[before]!.raw;
    const fields = dkimFields(raw);
    assert.equal(fields.length, 1, 'one RSA signature');
    return { raw, selector: /\bs=([^;\s]+)/.exec(fields[0]!)![1]! };
  }

  async function verdict(raw: Buffer): Promise<string> {
    const verdicts = await verifyWithDkimpyDns(raw, resolver.address);
    assert.equal(verdicts.length, 1);
    return verdicts[0]!.result;
  }

  /** The notices the relay mailed to rotation.notify since `from`, each signed and verifying over DNS. */
  async function notices(from: number): Promise<string[]> {
    const mails = sink.received.slice(from).filter((m) => m.to.includes(`postmaster@${ZONE}`));
    for (const m of mails) {
      assert.equal(m.from, '', 'notices go with the null sender');
      assert.equal(await verdict(m.raw), 'pass', 'a notice leaves signed like any message');
      assert.ok(!m.raw.toString().includes(PRIVATE_ARMOUR));
    }
    return mails.map((m) => m.raw.toString('utf8'));
  }

  test('generate → pending → active (old retiring) → revoked → removed, gated on what DNS serves', async () => {
    // Before the rotation: the first key signs, DNS serves it.
    const early = await relayed('before the rotation');
    assert.equal(early.selector, 'first');
    assert.equal(await verdict(early.raw), 'pass');
    assert.deepEqual(await pass(), [], 'nothing is due');

    // 91 days later the rotation starts: a new pending key like the first, and a notice saying what to publish.
    now += 91 * DAY;
    let mark = sink.received.length;
    assert.deepEqual(await pass(), ['create']);
    const second = relay.store.list(ZONE).find((k) => k.state === 'pending')!;
    assert.deepEqual([second.algorithm, second.bits], ['rsa', 2048]);
    const [publishMail] = await notices(mark);
    assert.match(publishMail!, /Subject: \[dkim-relay\] publish [a-z0-9]+\._domainkey\.rot\.test/);
    assert.ok(publishMail!.includes(`${second.selector}._domainkey.${ZONE}. 3600 IN TXT ( "v=DKIM1; k=rsa; "`), 'zone form');
    assert.ok(publishMail!.includes(`"value": "v=DKIM1; k=rsa; p=${second.publicData.slice(0, 40)}`), 'JSON form');
    assert.equal((await relayed('still the first key')).selector, 'first');

    // DNS does not serve it: it stays pending; after stuckAfter (3d) a person is told, once.
    now += 2 * DAY;
    assert.deepEqual(await pass(), []);
    now += 1 * DAY + HOUR;
    mark = sink.received.length;
    assert.deepEqual(await pass(), ['notify']);
    const [stuck] = await notices(mark);
    assert.match(stuck!, /has waited for DNS since .*: waits for DNS: served by 0 of 2 servers \(127\.0\.0\.2:\d+: missing, 127\.0\.0\.1:\d+: missing\)/);
    assert.deepEqual(await pass(), [], 'a notice is sent once');

    // Served by the authoritative server only: still pending, however long.
    await publish([key('first'), second], [authoritative]);
    now += HOUR;
    assert.deepEqual(await pass(), []);
    now += 3 * DAY;
    assert.deepEqual(await pass(), []);
    assert.equal(key(second.selector).state, 'pending');

    // Served everywhere: activated once every server has served it for publishFor (48h), not before.
    await publish([key('first'), second]);
    now += HOUR;
    assert.deepEqual(await pass(), []);
    now += 47 * HOUR;
    assert.deepEqual(await pass(), []);
    assert.equal(key(second.selector).state, 'pending');
    now += HOUR;
    assert.deepEqual(await pass(), ['activate']);
    assert.equal(key(second.selector).state, 'active');
    assert.equal(key('first').state, 'retiring');

    // Mail now carries the new selector and verifies; mail signed with the old key still verifies while it is retiring.
    const late = await relayed('after the switch');
    assert.equal(late.selector, second.selector);
    assert.equal(await verdict(late.raw), 'pass');
    assert.equal(await verdict(early.raw), 'pass', 'mail in flight signed with the retiring key');

    // retireAfter (7d) later the old key is revoked: republish with an empty p=, its private key revealed.
    now += 7 * DAY;
    mark = sink.received.length;
    assert.deepEqual(await pass(), ['revoke']);
    assert.equal(key('first').state, 'revoked');
    const [revokeMail] = await notices(mark);
    assert.match(revokeMail!, /first\._domainkey\.rot\.test\. 3600 IN TXT \( "v=DKIM1; k=rsa; "\r\n\t"p=" \)/);
    const revealed = join(reveal, `first._domainkey.${ZONE}.pem`);
    assert.equal(statSync(revealed).mode & 0o777, 0o644, 'published on purpose');
    assert.equal(readFileSync(revealed, 'utf8'), readFileSync(join(dir, 'keys', `first._domainkey.${ZONE}.pem`), 'utf8'));
    await publish([key('first'), key(second.selector)]);
    assert.equal(await verdict(early.raw), 'fail', 'a revoked key no longer verifies');
    assert.equal(await verdict((await relayed('after the revocation')).raw), 'pass');

    // removeAfter (30d) later it is removed: file deleted, record to withdraw, row kept.
    now += 30 * DAY;
    mark = sink.received.length;
    assert.deepEqual(await pass(), ['remove']);
    assert.equal(key('first').state, 'removed');
    assert.ok(!existsSync(join(dir, 'keys', `first._domainkey.${ZONE}.pem`)));
    const [withdrawMail] = await notices(mark);
    assert.match(withdrawMail!, /Subject: \[dkim-relay\] delete first\._domainkey\.rot\.test/);
    await publish([key(second.selector)]);
    assert.deepEqual(await pass(), []);

    // Every step is in the audit trail, by the scheduler, with its reason.
    assert.deepEqual(
      relay.store.history(ZONE).map((e) => [e.selector === 'first' ? 'first' : 'second', e.from, e.to, e.by]),
      [
        ['first', null, 'active', 'cli'],
        ['second', null, 'pending', 'scheduler'],
        ['first', 'active', 'retiring', 'scheduler'],
        ['second', 'pending', 'active', 'scheduler'],
        ['first', 'retiring', 'revoked', 'scheduler'],
        ['first', 'revoked', 'removed', 'scheduler'],
      ],
    );
    // One JSON log line per step.
    const steps = logs.filter((l) => typeof l.rotation === 'string' && /^rotation step: /.test(String(l.msg))).map((l) => l.rotation);
    assert.deepEqual(steps, ['create', 'notify', 'activate', 'revoke', 'remove']);
  });
});
