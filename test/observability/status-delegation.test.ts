// With delegated selectors (dns.delegation), the running relay's status page
// and `dkim-relay status --json` plan each key's next step alike, and as the
// rotation scheduler does: a rotation that is due waits for a free delegated
// selector instead of creating a key under a fresh one.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { StatusReport } from '../../src/observability/status-report.ts';
import { dkimRelay } from '../cli/support.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';
import { get } from './support.ts';

const DAY = 86_400_000;
const settings = {
  dns: { resolvers: ['192.0.2.53:53'], delegation: { zone: 'dkim.relay.example.net', selectors: ['sel1', 'sel2'], domains: ['example.com'] } },
  rotation: { check: 'off', interval: '90d' },
};

let relay: TestRelay;

before(async () => {
  relay = await startTestRelay(settings, (store) => {
    // sel1 signs past its interval; sel2, the other delegated selector, is still held by a revoked key.
    store.generate({ domain: 'example.com', selector: 'sel1', algorithm: 'ed25519', activate: true, step: { at: new Date(Date.now() - 400 * DAY) } });
    store.generate({ domain: 'example.com', selector: 'sel2', algorithm: 'ed25519' });
    store.revoke('example.com', 'sel2');
  });
});
after(() => relay.close());

const unescape = (html: string) =>
  html
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');

test('the status page and `status --json` show the same next steps for a domain with delegated selectors', async () => {
  const config = join(relay.dir, 'relay.yaml');
  writeFileSync(config, JSON.stringify({ ...settings, keys: { dir: join(relay.dir, 'keys') }, queue: { dir: join(relay.dir, 'spool') } }));
  const run = await dkimRelay(['--config', config, 'status', '--json', '--no-dns'], relay.dir);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as StatusReport;
  const keys = report.domains.find((d) => d.domain === 'example.com')!.keys;
  const active = keys.find((k) => k.selector === 'sel1')!;
  assert.equal(active.next?.step, 'rotate');
  assert.match(active.next!.text, /waits until a delegated selector is free \(sel1 is active, sel2 is revoked\)/);

  const page = await get(relay.relay.ports.metrics!, '/');
  assert.equal(page.status, 200);
  const shown = unescape(page.body);
  for (const key of keys) {
    assert.ok(key.next, `${key.selector} has a next step`);
    assert.ok(shown.includes(`next: ${key.next.text}`), `the page shows ${key.selector}'s next step "${key.next.text}"`);
  }
  assert.doesNotMatch(shown, /rotation due: sel1 has signed since/, 'the page plans no rotation under a fresh selector');
});
