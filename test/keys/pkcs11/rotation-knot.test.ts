// Scheduled rotation with keys.pkcs11.newKeys: the scheduler of a real relay
// generates the next key in a SoftHSM token, waits for knotd to serve it,
// switches, revokes and removes the old key, whose objects leave the token.
// An injected clock moves lifecycle time; mail before and after each switch
// is verified over DNS by dkimpy and OpenDKIM.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema } from '../../../src/config/schema.ts';
import { startRelay, type RunningRelay } from '../../../src/daemon/daemon.ts';
import { txtRecord } from '../../../src/keys/record.ts';
import type { StoredKey } from '../../../src/keys/store.ts';
import { LiveDnsObserver } from '../../../src/rotation/dns-observer.ts';
import { verifyWithDkimpyDns } from '../../helpers/dns-verify.ts';
import { freeDnsPort, startKnot, type Knot } from '../../helpers/knot.ts';
import { verifyWithOpenDkimDns } from '../../helpers/opendkim-verify.ts';
import { dkimFields, send, startSink, type Sink } from '../../helpers/relay-harness.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { MODULE, PIN, setup } from './support.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ZONE = 'hsm.test';

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

describe(
  'scheduled rotation with keys in a PKCS#11 token, against knotd',
  { skip: skipWithout('softhsm2-util', 'knotd', 'knotc', 'dkimpy', 'opendkim') },
  () => {
    const s = setup();
    let authoritative: Knot;
    let resolver: Knot;
    let sink: Sink;
    let relay: RunningRelay;
    let now = Date.now();
    let serial = 1;
    const logs: Record<string, unknown>[] = [];

    before(async () => {
      process.env.SOFTHSM2_CONF = s.env.SOFTHSM2_CONF; // the relay runs in this process
      sink = await startSink();
      const port = await freeDnsPort('127.0.0.2');
      authoritative = await startKnot(zone(serial, []), { host: '127.0.0.2', port });
      resolver = await startKnot(zone(serial, []));
      const config = configSchema.parse({
        keys: { dir: join(s.dir, 'keys'), pkcs11: { module: MODULE, token: 'dkim', pinFile: s.pinFile, newKeys: true } },
        listen: { port: 0, hostname: 'relay.test' },
        delivery: { mode: 'sync', upstream: { type: 'smtp', host: '127.0.0.1', port: sink.port } },
        dns: { resolvers: [resolver.address], timeoutSeconds: 1 },
        rotation: {
          interval: '90d',
          publishFor: '48h',
          retireAfter: '7d',
          removeAfter: '30d',
          stuckAfter: '3d',
          check: '0 0 1 1 *',
          revealPrivateKeys: join(s.dir, 'revealed'),
        },
      });
      const { openKeyStore } = await import('../../../src/keys/open-store.ts');
      const store = await openKeyStore(config.keys);
      const first = await store.generate({ domain: ZONE, selector: 'first', algorithm: 'rsa', bits: 2048, activate: true });
      await store.close();
      await publish([first]);
      const lines = new Writable({
        write(chunk, _enc, done) {
          logs.push(JSON.parse(String(chunk)));
          done();
        },
      });
      relay = await startRelay({ config, path: 'test' }, pino({ level: 'info' }, lines), {
        rotation: { now: () => now, observer: () => new LiveDnsObserver({ resolvers: [resolver.address], timeoutMs: 1000, authoritativePort: port }) },
      });
    });

    after(async () => {
      await relay?.stop();
      await sink?.close();
      await authoritative?.stop();
      await resolver?.stop();
    });

    async function publish(keys: StoredKey[]): Promise<void> {
      serial++;
      for (const knot of [authoritative, resolver]) if (knot) await knot.update(zone(serial, keys));
    }

    const key = (selector: string) => relay.store.list(ZONE).find((k) => k.selector === selector)!;
    const pass = async () => {
      const result = await relay.rotation.runOnce();
      assert.ok(result.ran);
      return result.applied.map((a) => a.kind);
    };

    async function relayed(subject: string): Promise<{ raw: Buffer; selector: string }> {
      const before = sink.received.length;
      const raw = `From: Alice <alice@${ZONE}>\r\nTo: bob@example.net\r\nSubject: ${subject}\r\n\r\nSigned in the token.\r\n`;
      const reply = await send({ port: relay.ports.plain, from: `alice@${ZONE}`, to: ['bob@example.net'], raw });
      assert.ok(reply.ok, `relay refused: ${reply.response}`);
      const got = sink.received[before]!.raw;
      const fields = dkimFields(got);
      assert.equal(fields.length, 1);
      return { raw: got, selector: /\bs=([^;\s]+)/.exec(fields[0]!)![1]! };
    }

    async function verdicts(raw: Buffer): Promise<string[]> {
      const dkimpy = await verifyWithDkimpyDns(raw, resolver.address);
      const opendkim = await verifyWithOpenDkimDns(raw, resolver.address, [ZONE]);
      return [...dkimpy, ...opendkim].map((v) => v.result);
    }

    function tokenObjects(): string {
      return execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', 'dkim', '--login', '--pin', PIN, '-O'], {
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
      });
    }

    test(
      'the next key is made in the token, activated once DNS serves it, the old one revoked and its objects destroyed at removal',
      { timeout: 180_000 },
      async () => {
        const early = await relayed('before the rotation');
        assert.equal(early.selector, 'first');
        assert.deepEqual(await verdicts(early.raw), ['pass', 'pass']);

        now += 91 * DAY;
        assert.deepEqual(await pass(), ['create']);
        const second = relay.store.list(ZONE).find((k) => k.state === 'pending')!;
        assert.deepEqual([second.material, second.algorithm, second.bits], ['pkcs11', 'rsa', 2048], 'the scheduler made it in the token');
        assert.match(tokenObjects(), new RegExp(`dkim ${second.selector}\\._domainkey\\.${ZONE.replace('.', '\\.')}`));

        await publish([key('first'), second]);
        now += HOUR;
        assert.deepEqual(await pass(), []);
        now += 48 * HOUR;
        assert.deepEqual(await pass(), ['activate']);
        assert.equal(key('first').state, 'retiring');

        const late = await relayed('after the switch');
        assert.equal(late.selector, second.selector);
        assert.deepEqual(await verdicts(late.raw), ['pass', 'pass']);
        assert.deepEqual(await verdicts(early.raw), ['pass', 'pass'], 'mail in flight signed with the retiring key');

        now += 7 * DAY;
        assert.deepEqual(await pass(), ['revoke']);
        await publish([key('first'), key(second.selector)]);
        assert.deepEqual(await verdicts(early.raw), ['fail', 'fail'], 'a revoked key no longer verifies');
        assert.ok(tokenObjects().includes(`dkim first._domainkey.${ZONE}`), 'revoked, not yet removed: still in the token');

        now += 30 * DAY;
        assert.deepEqual(await pass(), ['remove']);
        assert.equal(key('first').state, 'removed');
        const objects = tokenObjects();
        assert.ok(!objects.includes(`first._domainkey.${ZONE}`), `the removed key's objects are still in the token:\n${objects}`);
        assert.ok(objects.includes(`${second.selector}._domainkey.${ZONE}`));
        await publish([key(second.selector)]);
        assert.deepEqual(await verdicts((await relayed('after the removal')).raw), ['pass', 'pass']);

        // Nothing private outside the token, nothing revealed (a token key cannot be), and no error about it.
        assert.deepEqual(
          readdirSync(join(s.dir, 'keys')).filter((f) => f.endsWith('.pem')),
          [],
        );
        assert.deepEqual(
          logs.filter((l) => l.rotation === 'reveal'),
          [],
        );
      },
    );
  },
);
