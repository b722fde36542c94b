// Where each key lives, and a token that fails, as `status`, the status page,
// /readyz and the metrics show them, with the real `serve` and a SoftHSM token.
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { serve, type Served } from '../../cli/support.ts';
import { Pkcs11Token, probeDue, TOKEN_PROBE_MS, TOKEN_RETRY_MS } from '../../../src/keys/pkcs11-token.ts';
import { until } from '../../helpers/until.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { cli, MODULE, ok, outbox, PIN, relay, setup, stop, type Setup } from './support.ts';

interface JsonKey {
  selector: string;
  home?: { kind: string; path?: string; token?: string; uri?: string };
}
interface JsonReport {
  domains: { domain: string; keys: JsonKey[]; attention: { code: string; message: string }[] }[];
  background?: { task: string; state: string; since: string; cause: string }[];
}

async function statusJson(s: Setup): Promise<JsonReport> {
  const run = await cli(s, ['status', '--no-dns', '--json']);
  return JSON.parse(run.stdout) as JsonReport;
}

function metricsPort(running: Served): number {
  const line = running
    .output()
    .split('\n')
    .find((l) => l.includes('"metrics listening"'))!;
  return Number((JSON.parse(line) as { listen: string }).listen.split(':').at(-1));
}

async function get(running: Served, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${metricsPort(running)}${path}`);
  return { status: res.status, body: await res.text() };
}

function tokenUp(metrics: string): string | undefined {
  return /^dkim_relay_key_token_up\{token="dkim"\} (\d)$/m.exec(metrics)?.[1];
}

describe('a PKCS#11 token as status, /readyz and the metrics show it', { skip: skipWithout('softhsm2-util') }, () => {
  test('status and status --json say where each key lives: its file, or the token label and key URI (never the PIN)', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'infile', '--algorithm', 'ed25519', '--activate']);
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'intoken', '--in-token', '--activate']);
    const report = await statusJson(s);
    const keys = new Map(report.domains[0]!.keys.map((k) => [k.selector, k.home]));
    assert.deepEqual(keys.get('infile'), { kind: 'file', path: join(s.dir, 'keys', 'infile._domainkey.example.com.pem') });
    const token = keys.get('intoken')!;
    assert.equal(token.kind, 'pkcs11');
    assert.equal(token.token, 'dkim');
    assert.match(token.uri!, /^pkcs11:token=dkim;id=(%[0-9a-f]{2}){16}$/);
    const human = await ok(s, ['status', '--no-dns']);
    assert.ok(human.includes(`key:  file ${join(s.dir, 'keys', 'infile._domainkey.example.com.pem')}`), human);
    assert.ok(human.includes(`key:  PKCS#11 token dkim (${token.uri})`), human);
    assert.ok(!human.includes(PIN) && !JSON.stringify(report).includes(PIN), 'the PIN is shown');
  });

  test('a token that goes away: /readyz names it and since when, the metric is 0, status shows it failing; back, all of it clears', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsm', '--in-token', '--activate']);
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      assert.ok((await relay(running.port())).ok);
      assert.equal(tokenUp((await get(running, '/metrics')).body), '1');
      assert.equal((await get(running, '/readyz')).body, 'ready\n');

      renameSync(s.tokens, `${s.tokens}.away`);
      const refused = await relay(running.port());
      assert.equal((refused as { code?: number }).code, 451, refused.response);
      const ready = await get(running, '/readyz');
      assert.equal(ready.status, 200, 'a failing token defers its domains only: the relay stays ready');
      assert.match(ready.body, /^ready\nPKCS#11 token dkim failing for \d+s \(mail of the domains whose keys it holds is deferred, 451\): token dkim .* — /);
      assert.equal(tokenUp((await get(running, '/metrics')).body), '0');
      const page = (await get(running, '/')).body;
      assert.match(page, /data-task="key-token" data-state="failing"/);
      assert.match(page, /data-home="pkcs11">key: PKCS#11 token dkim \(pkcs11:token=dkim;id=(%[0-9a-f]{2}){16}\)</, 'the status page says where the key lives');
      const failing = (await statusJson(s)).background?.find((t) => t.task === 'key-token');
      assert.equal(failing?.state, 'failing', JSON.stringify(failing));
      assert.ok(Date.parse(failing.since) <= Date.now(), failing.since);

      renameSync(`${s.tokens}.away`, s.tokens);
      // The token is looked at again TOKEN_RETRY_MS after it failed; each try is a real message.
      await until('signing through the token again', async () => (await relay(running.port())).ok, { timeoutMs: 20_000, everyMs: 250 });
      assert.equal((await get(running, '/readyz')).body, 'ready\n');
      assert.equal(tokenUp((await get(running, '/metrics')).body), '1');
      assert.equal((await statusJson(s)).background?.find((t) => t.task === 'key-token')?.state, 'recovered');
    } finally {
      await stop(running);
    }
  });
});

describe('when the running relay looks at its token', () => {
  const at = 1_000_000;
  test('a token in use: once nothing has shown it working for TOKEN_PROBE_MS, not while signatures are under way', () => {
    const up = { state: 'up' as const, inFlight: 0, workedAt: at, downAt: -Infinity };
    assert.equal(probeDue(up, at + TOKEN_PROBE_MS - 1), false);
    assert.equal(probeDue(up, at + TOKEN_PROBE_MS), true);
    assert.equal(probeDue({ ...up, inFlight: 1 }, at + 10 * TOKEN_PROBE_MS), false);
  });

  test('a down token: the look is the retry, TOKEN_RETRY_MS after it last failed; a token not used yet is left alone', () => {
    const down = { state: 'down' as const, inFlight: 0, workedAt: -Infinity, downAt: at };
    assert.equal(probeDue(down, at + TOKEN_RETRY_MS - 1), false);
    assert.equal(probeDue(down, at + TOKEN_RETRY_MS), true);
    assert.equal(probeDue({ ...down, inFlight: 2 }, at + TOKEN_RETRY_MS), false);
    assert.equal(probeDue({ state: 'unknown', inFlight: 0, workedAt: -Infinity, downAt: -Infinity }, at), false);
  });
});

describe('a PKCS#11 token noticed while no mail flows', { skip: skipWithout('softhsm2-util') }, () => {
  test('probe() on its own clock: a look once nothing has shown the token working for TOKEN_PROBE_MS, the retry TOKEN_RETRY_MS after a failure', async () => {
    const s = setup();
    process.env.SOFTHSM2_CONF = s.env.SOFTHSM2_CONF;
    let now = 1_000_000;
    const changes: (string | null)[] = [];
    const token = Pkcs11Token.connectLater(
      { module: MODULE, token: 'dkim', pinFile: s.pinFile, newKeys: true },
      { now: () => now, onChange: (problem) => changes.push(problem && problem.toLine()) },
    );
    try {
      token.probe();
      assert.equal(token.health().state, 'unknown', 'a token not used yet is left alone');
      const { ref } = await token.generate('ed25519', 256, 'probe');
      now += TOKEN_PROBE_MS - 1;
      await token.signingKey(ref, 'ed25519', 256, 'probe').sign(Buffer.alloc(32));
      renameSync(s.tokens, `${s.tokens}.away`);
      now += TOKEN_PROBE_MS - 1;
      token.probe();
      assert.equal(token.health().state, 'up', 'the signature showed it working less than TOKEN_PROBE_MS ago');
      now += 1;
      token.probe();
      assert.equal(token.health().state, 'down');
      assert.equal(token.health().downSince, now);
      assert.match(changes.at(-1) ?? '', /^token dkim cannot sign for its keys \(CKR_/);

      renameSync(`${s.tokens}.away`, s.tokens);
      now += TOKEN_RETRY_MS - 1;
      token.probe();
      assert.equal(token.health().state, 'down', 'tried again only TOKEN_RETRY_MS after the failure');
      now += 1;
      token.probe();
      assert.equal(token.health().state, 'up');
      assert.equal(changes.at(-1), null);
      assert.equal((await token.signingKey(ref, 'ed25519', 256, 'probe').sign(Buffer.alloc(32))).length, 64);
    } finally {
      token.close();
    }
  });

  const failing = /^ready\nPKCS#11 token dkim failing for \d+s \(mail of the domains whose keys it holds is deferred, 451\): token dkim .* — /;
  // Only /readyz is asked while waiting: it reads the token's state and never uses its keys, so only the relay's own look can change it.
  const readyz = async (running: Served) => (await get(running, '/readyz')).body;

  test('a token that goes away while idle: /readyz names it and the metric is 0 without a message; back, both clear without one', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsm', '--in-token', '--activate']);
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      assert.equal(await readyz(running), 'ready\n');
      assert.equal(tokenUp((await get(running, '/metrics')).body), '1', 'connected at start to check the active keys');

      renameSync(s.tokens, `${s.tokens}.away`);
      await until('/readyz naming the failing token', async () => failing.test(await readyz(running)), { timeoutMs: 30_000, everyMs: 250 });
      await until('one log line saying so', () => running.output().includes('mail from example.com is deferred (451): token dkim'), { timeoutMs: 5000 });
      assert.equal(tokenUp((await get(running, '/metrics')).body), '0');
      assert.equal((await statusJson(s)).background?.find((t) => t.task === 'key-token')?.state, 'failing');

      renameSync(`${s.tokens}.away`, s.tokens);
      await until('/readyz clear again', async () => (await readyz(running)) === 'ready\n', { timeoutMs: 30_000, everyMs: 250 });
      assert.equal(tokenUp((await get(running, '/metrics')).body), '1');
      assert.equal((await statusJson(s)).background?.find((t) => t.task === 'key-token')?.state, 'recovered');
      assert.equal(outbox(s).length, 0, 'no message was relayed');
      assert.ok((await relay(running.port())).ok, 'and it signs');
    } finally {
      await stop(running);
    }
  });

  test('a token absent at start is connected once it is there, without a message asking for its keys', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsm', '--in-token', '--activate']);
    renameSync(s.tokens, `${s.tokens}.away`);
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      assert.match(await readyz(running), failing);
      renameSync(`${s.tokens}.away`, s.tokens);
      await until('/readyz clear once the token is back', async () => (await readyz(running)) === 'ready\n', { timeoutMs: 30_000, everyMs: 250 });
      assert.equal(tokenUp((await get(running, '/metrics')).body), '1');
      assert.equal(outbox(s).length, 0, 'no message was relayed');
    } finally {
      await stop(running);
    }
  });
});
