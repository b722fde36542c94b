// The DMARC gauge of a running relay: each signing domain's SPF and DMARC are
// looked up at a loopback DNS server when the relay starts and at every
// rotation.check, and /metrics (read back by python3-prometheus-client's
// parser) and the status page show the result of the last lookup.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';
import { get, parseExposition, value, type Sample } from './support.ts';

const scrape = async (port: number): Promise<Sample[]> => parseExposition((await get(port, '/metrics')).body);
const dmarc = (samples: Sample[], state: string) => value(samples, 'dkim_relay_dmarc_state', { domain: 'example.com', state });

describe('DMARC readiness of a running relay, in /metrics', () => {
  let dns: DnsServer;
  let relay: TestRelay;
  let port = 0;

  before(async () => {
    dns = await startDnsServer(
      new Map([
        ['example.com', [['v=spf1 -all']]],
        ['_dmarc.example.com', [['v=DMARC1; p=none; rua=mailto:dmarc@example.com']]],
      ]),
    );
    relay = await startTestRelay(
      // A check on New Year's midnight only: the one lookup at start, and those the test asks for.
      { rotation: { check: '0 0 1 1 *' }, dns: { resolvers: [dns.address], timeoutSeconds: 1 } },
      (store) => void store.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true }),
    );
    port = relay.relay.ports.metrics!;
  });
  after(async () => {
    await relay.close();
    await dns.close();
  });

  test('looked up at start: p=none shows as state "none", with the time of the lookup', async () => {
    let samples: Sample[] = [];
    for (let i = 0; i < 100 && dmarc(samples, 'none') !== 1; i++) {
      samples = await scrape(port);
      if (dmarc(samples, 'none') !== 1) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(dmarc(samples, 'none'), 1, 'the start-up lookup reached the gauge');
    for (const state of ['enforced', 'partial', 'missing', 'invalid', 'lookup-failed']) assert.equal(dmarc(samples, state), 0, state);
    const at = value(samples, 'dkim_relay_dmarc_last_check_timestamp_seconds', { domain: 'example.com' })!;
    assert.ok(Math.abs(at - Date.now() / 1000) < 120, `a recent lookup time: ${at}`);
    assert.match((await get(port, '/')).body, /DMARC none<\/span> <span class="muted">as 127\.0\.0\.1:\d+ sees it/);
  });

  test('the next lookup replaces it: p=reject is "enforced"; a server refusing to answer is "lookup-failed"', async () => {
    dns.records.set('_dmarc.example.com', [['v=DMARC1; p=reject; rua=mailto:dmarc@example.com']]);
    const results = await relay.relay.readiness.checkNow();
    assert.equal(results.get('example.com')?.status, 'checked');
    let samples = await scrape(port);
    assert.equal(dmarc(samples, 'enforced'), 1);
    assert.equal(dmarc(samples, 'none'), 0);
    assert.match((await get(port, '/')).body, /DMARC enforced/);

    dns.mode = 'refuse';
    await relay.relay.readiness.checkNow();
    samples = await scrape(port);
    assert.equal(dmarc(samples, 'lookup-failed'), 1);
    assert.equal(dmarc(samples, 'enforced'), 0);
    assert.match((await get(port, '/')).body, /lookup failed<\/span> REFUSED from 127\.0\.0\.1:\d+/);
  });
});
