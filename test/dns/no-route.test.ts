// DNS with no route, as on a host whose resolver is an IPv6 address and that
// has no IPv6, or before the network is up: the real CLI and the real `serve`
// run in a network namespace with only loopback. Every lookup fails at once
// (ENETUNREACH, or connection refused for a resolver on 127.0.0.x); each must
// be a temperror line naming the server, and the relay must keep running and
// delivering mail through its readiness lookups and rotation passes.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { dkimRelay, serve, type Run, type Served } from '../cli/support.ts';
import { inNetworkOf, isolatedNode, NEEDS_ROOT } from '../helpers/no-route.ts';
import { tempDir } from '../helpers/tmp.ts';

const UNROUTED = '[2001:db8::53]:53';

/** A stack trace's frames, or Node's report of an uncaught error. */
const CRASH = /\n\s+at |ERR_SOCKET_BAD_PORT|unexpected error|Node\.js v\d/;

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

/** A folder with a configuration: the demo domain example.com, `resolvers` as dns.resolvers, and `more` lines. */
function setup(resolvers: string[], more: string[] = []): { dir: string; config: string } {
  const dir = tempDir('dkim-relay-noroute-');
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    [
      'demo: {domain: example.com}',
      `keys: {dir: ${join(dir, 'keys')}}`,
      'listen: {port: 0}',
      'metrics: {listen: "127.0.0.1:0"}',
      `queue: {dir: ${join(dir, 'spool')}}`,
      `delivery: {upstream: {type: file, dir: ${join(dir, 'outbox')}}}`,
      `dns: {timeoutSeconds: 1, resolvers: ${JSON.stringify(resolvers)}}`,
      ...more,
    ].join('\n'),
  );
  return { dir, config };
}

/** One message through the relay from inside its namespace; the final reply. */
async function sendOne(relay: Served): Promise<string> {
  const script = [
    'import smtplib, sys',
    `s = smtplib.SMTP("127.0.0.1", ${relay.port()}, timeout=20)`,
    's.ehlo("client.test")',
    's.mail("a@example.com")',
    's.rcpt("b@example.net")',
    'code, text = s.data(b"From: a@example.com\\r\\nTo: b@example.net\\r\\nSubject: no route\\r\\n\\r\\nstill delivered\\r\\n")',
    'print(code, text.decode())',
    's.quit()',
  ].join('\n');
  const run = await inNetworkOf(relay.child.pid!, ['python3', '-c', script]);
  assert.equal(run.code, 0, shown(run));
  return run.stdout.trim();
}

describe('no route to any DNS server', { skip: NEEDS_ROOT }, () => {
  const node = isolatedNode();

  test('dns check: a temperror line for each record, exit 1, no stack trace', async () => {
    const { dir, config } = setup([]);
    // The demo key exists only once serve made it: give the store a key of its own.
    const generated = await dkimRelay(['keys', 'generate', '--config', config, '--domain', 'example.com', '--selector', 'sel1'], dir);
    assert.equal(generated.code, 0, shown(generated));
    for (const args of [[], ['--nameserver', UNROUTED]]) {
      const run = await dkimRelay(['dns', 'check', '--config', config, ...args], dir, { node });
      assert.doesNotMatch(run.stdout + run.stderr, CRASH, shown(run));
      assert.equal(run.code, 1, shown(run));
      assert.match(
        run.stdout,
        /sel1\._domainkey\.example\.com {2}pending {2}temperror\n {4}fail {4}temperror: cannot reach \S+ over UDP: (no route to its network \(ENETUNREACH\)|connection refused)/,
        shown(run),
      );
      assert.match(run.stdout, /DMARC readiness .*\n {4}fail {4}temperror: cannot reach/, shown(run));
      if (args.length > 0)
        assert.match(run.stdout, /temperror: cannot reach \[2001:db8::53\]:53 over UDP: no route to its network \(ENETUNREACH\)/, shown(run));
      assert.match(run.stderr, /^dkim-relay: 1 record\(s\) not published as they must be: sel1\._domainkey\.example\.com temperror\n$/, shown(run));
    }
  });

  test('status: the failed DMARC lookup is one line naming the server, no stack trace', async () => {
    const { dir, config } = setup([UNROUTED]);
    const generated = await dkimRelay(['keys', 'generate', '--config', config, '--domain', 'example.com', '--selector', 'sel1'], dir);
    assert.equal(generated.code, 0, shown(generated));
    const run = await dkimRelay(['status', '--config', config], dir, { node });
    assert.doesNotMatch(run.stdout + run.stderr, CRASH, shown(run));
    assert.equal(run.code, 0, shown(run)); // a new pending key needs nobody yet; the failed lookup is shown, not judged
    assert.match(run.stdout, /DMARC {2}DNS lookup failed: cannot reach \[2001:db8::53\]:53 over UDP: no route to its network \(ENETUNREACH\)/, shown(run));
  });

  for (const [what, resolvers] of [
    ['the system resolver', []],
    [`dns.resolvers ${UNROUTED}`, [UNROUTED]],
  ] as const) {
    test(`serve with ${what}: readiness lookups and rotation passes fail, the relay runs on and delivers`, async () => {
      const { dir, config } = setup([...resolvers], ['log: {level: debug}', 'rotation: {check: "* * * * * *"}']);
      const relay = await serve(['--config', config], dir, { node });
      try {
        await relay.waitFor('"DMARC readiness looked up"');
        for (let pass = 0; pass < 3; pass++) await relay.waitFor('"rotation pass done"', 20_000, relay.output().length);
        assert.match(await sendOne(relay), /^250 /);
        await relay.waitFor('"recipient delivered"');
        const delivered = readdirSync(join(dir, 'outbox')).filter((f) => f.endsWith('.eml'));
        assert.equal(delivered.length, 1);
        assert.match(readFileSync(join(dir, 'outbox', delivered[0]!), 'utf8'), /^DKIM-Signature: .*d=example\.com/m);
        assert.equal(relay.child.exitCode, null, relay.output());
        assert.doesNotMatch(relay.output(), CRASH, relay.output());
        relay.child.kill('SIGTERM');
        assert.deepEqual(await relay.exited, { code: 0, signal: null }, relay.output());
      } finally {
        relay.kill();
      }
    });
  }
});
