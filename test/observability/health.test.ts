// /healthz and /readyz decisions from their facts, and which domains must sign.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideHealth, publicHealth, readyAnswer, signingDomains, type HealthFacts } from '../../src/observability/health.ts';

const HEALTHY: HealthFacts = {
  listening: true,
  spool: { exists: true, writable: true, freeBytes: 10 * 1048576, neededBytes: 1048576 },
  keyStore: { ok: true },
  domains: [{ domain: 'example.com', usableKeys: 1 }],
};

test('healthy when every check passes; a missing spool directory is no failure', () => {
  assert.deepEqual(decideHealth(HEALTHY).failed, []);
  assert.equal(decideHealth({ ...HEALTHY, spool: { exists: false } }).ok, true);
});

test('each failing check is named, with its reason', () => {
  const cases: [Partial<HealthFacts>, string, RegExp][] = [
    [{ listening: false }, 'listener', /not accepting/],
    [{ spool: { exists: true, writable: false, code: 'EROFS', error: 'spool /var/spool/dkim-relay is not writable (EROFS)' } }, 'spool', /EROFS/],
    [
      { spool: { exists: true, writable: true, freeBytes: 512 * 1024, neededBytes: 1048576 } },
      'spool',
      /disk is full: 0\.5 MiB free, less than one message of listen\.maxMessageSize \(1\.0 MiB\)/,
    ],
    [
      { domains: [{ domain: 'example.com', usableKeys: 0, problem: 'key file k.pem for s1._domainkey.example.com is missing' }] },
      'signing-keys',
      /k\.pem .* is missing/,
    ],
    [
      {
        domains: [
          { domain: 'example.com', usableKeys: 1 },
          { domain: 'example.org', usableKeys: 0 },
        ],
      },
      'signing-keys',
      /example\.org has no active key/,
    ],
  ];
  for (const [facts, name, detail] of cases) {
    const health = decideHealth({ ...HEALTHY, ...facts });
    assert.equal(health.ok, false, name);
    assert.deepEqual(health.failed, [name]);
    assert.match(health.checks.find((c) => c.name === name)!.detail, detail);
  }
  const noStore = decideHealth({ ...HEALTHY, keyStore: { ok: false, error: 'key store keys/keys.db does not open: unable to open database file' } });
  assert.deepEqual(noStore.failed, ['key-store', 'signing-keys']);
});

test('signing domains: named in the configuration, or with an active or retiring key; not pending-only or revoked-only ones', () => {
  const keys = [
    { domain: 'active.example', state: 'active' },
    { domain: 'retiring.example', state: 'retiring' },
    { domain: 'new.example', state: 'pending' },
    { domain: 'gone.example', state: 'revoked' },
  ];
  assert.deepEqual(signingDomains(['Configured.example.'], keys), ['active.example', 'configured.example', 'retiring.example']);
});

test('ready only once started and until the relay stops', () => {
  assert.deepEqual(readyAnswer('starting'), { status: 503, body: 'starting\n' });
  assert.deepEqual(readyAnswer('ready'), { status: 200, body: 'ready\n' });
  assert.deepEqual(readyAnswer('draining'), { status: 503, body: 'draining\n' });
});

test('a shared key store away: ready, saying for how long, while keys are held; not ready before any were loaded', () => {
  assert.deepEqual(readyAnswer('ready', undefined, { unreachableSeconds: 0, loaded: true }), { status: 200, body: 'ready\n' });
  assert.deepEqual(readyAnswer('ready', undefined, { unreachableSeconds: 95, loaded: true }), {
    status: 200,
    body: 'ready\nkey store unreachable for 95s (signing with the keys held; rotation paused)\n',
  });
  assert.deepEqual(readyAnswer('ready', undefined, { unreachableSeconds: 600, loaded: false }), {
    status: 503,
    body: 'no keys loaded yet: key store unreachable for 10m; mail is deferred (451)\n',
  });
});

test('the public view gives each check its short reason, never a path, domain or selector', () => {
  const health = decideHealth({
    ...HEALTHY,
    spool: { exists: true, writable: false, code: 'EACCES', error: 'spool /srv/relay/spool is not writable (EACCES)' },
    keyStore: { ok: true },
    domains: [
      { domain: 'example.com', usableKeys: 0, problem: 'key file /srv/relay/keys/k.pem for s2026._domainkey.example.com is missing' },
      { domain: 'example.org', usableKeys: 1 },
    ],
  });
  const shown = JSON.stringify(publicHealth(health));
  assert.deepEqual(publicHealth(health).failed, ['spool', 'signing-keys']);
  assert.deepEqual(
    publicHealth(health).checks.map((c) => c.reason),
    ['accepting SMTP connections', 'not writable (EACCES)', 'opens', '1 signing domain of 2 cannot sign'],
  );
  for (const secret of ['/srv', 'k.pem', 's2026', 'example.com', 'example.org', '_domainkey']) assert.ok(!shown.includes(secret), `${secret} in ${shown}`);
  const noStore = publicHealth(
    decideHealth({ ...HEALTHY, keyStore: { ok: false, error: 'key store /srv/relay/keys/keys.db does not open: SQLITE_CANTOPEN' } }),
  );
  assert.ok(!JSON.stringify(noStore).includes('/srv'));
});

test('/readyz names a failing PKCS#11 token and for how long, still 200; a token up or not used yet adds nothing', () => {
  const now = Date.parse('2026-12-06T08:00:00Z');
  const down = { token: 'dkim', state: 'down' as const, downSince: now - 125_000, problem: 'token dkim refused the PIN in /etc/pin — write the user PIN', now };
  assert.deepEqual(readyAnswer('ready', undefined, undefined, down), {
    status: 200,
    body: 'ready\nPKCS#11 token dkim failing for 2m (mail of the domains whose keys it holds is deferred, 451): token dkim refused the PIN in /etc/pin — write the user PIN\n',
  });
  assert.deepEqual(readyAnswer('ready', undefined, undefined, { token: 'dkim', state: 'up', downSince: null, problem: null, now }), {
    status: 200,
    body: 'ready\n',
  });
  assert.deepEqual(readyAnswer('ready', undefined, undefined, { token: 'dkim', state: 'unknown', downSince: null, problem: null, now }), {
    status: 200,
    body: 'ready\n',
  });
  assert.equal(readyAnswer('draining', undefined, undefined, down).status, 503);
});
