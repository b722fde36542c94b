// The key store's contract, one test body run against both engines: SQLite in
// keys.dir and PostgreSQL (a private cluster). What lifecycle, CLI, scheduler
// and signing rely on must hold whichever engine keeps the keys.
import assert from 'node:assert/strict';
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { KeyFileError } from '../../../src/keys/key-file.ts';
import { publicPem } from '../../../src/keys/key-material.ts';
import type { KeyStore } from '../../../src/keys/key-store.ts';
import { openKeyStore, type KeysSettings } from '../../../src/keys/open-store.ts';
import { PgKeyStore } from '../../../src/keys/pg-store.ts';
import { UserError } from '../../../src/common/errors.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { kekFile } from './support.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from './pg-cluster.ts';

const pgSkip = postgresOrSkip();

interface Engine {
  name: 'sqlite' | 'postgres';
  skip?: string;
  /** Settings of a fresh, empty store. */
  fresh(): Promise<KeysSettings>;
  /** Makes a second opener of the same store see the first's changes (PostgreSQL: the periodic look, taken now). */
  sync(store: KeyStore): Promise<void>;
}

let cluster: PgCluster | undefined;
let databases = 0;

const engines: Engine[] = [
  {
    name: 'sqlite',
    fresh: async () => ({ dir: join(tempDir(), 'keys') }),
    sync: async () => {},
  },
  {
    name: 'postgres',
    ...pgSkip,
    fresh: async () => {
      const base = tempDir();
      const url = await cluster!.createDatabase(`contract${++databases}`);
      return { dir: join(base, 'keys'), database: url, encryptionKeyFile: kekFile(base) };
    },
    sync: async (store) => (store as PgKeyStore).refresh(),
  },
];

before(async () => {
  if (!pgSkip.skip) cluster = await startPgCluster();
});
after(async () => {
  await cluster?.stop();
});

function signsAndVerifies(store: KeyStore, domain: string): void {
  const [key] = store.activeKeys(domain);
  assert.ok(key, `no active key for ${domain}`);
  const stored = store.get(domain, key.selector);
  const digest = key.algorithm === 'rsa' ? 'sha256' : null;
  const message = Buffer.from('a test message');
  const signature = sign(digest, message, key.privateKey as KeyObject);
  assert.ok(verify(digest, message, createPublicKey(publicPem(stored.algorithm, stored.publicData)), signature));
}

/** `write` fails with a UserError, thrown (SQLite) or rejected (PostgreSQL). */
async function rejectsWithUserError(write: () => unknown, what: RegExp): Promise<void> {
  await assert.rejects(
    async () => write(),
    (err: unknown) => err instanceof UserError && what.test(err.message),
  );
}

for (const engine of engines) {
  describe(`key store contract: ${engine.name}`, { skip: engine.skip }, () => {
    const open: KeyStore[] = [];
    const openStore = async (settings: KeysSettings) => {
      const store = await openKeyStore(settings, { refreshMs: 0 });
      open.push(store);
      return store;
    };
    after(async () => {
      for (const s of open) await s.close();
    });

    test('a key is generated pending, activated, signs; its record and history follow', async () => {
      const store = await openStore(await engine.fresh());
      const key = await store.generate({ domain: 'Example.COM', algorithm: 'ed25519' });
      assert.equal(key.state, 'pending');
      assert.equal(key.domain, 'example.com');
      assert.equal(key.material, engine.name === 'sqlite' ? 'file' : 'sealed');
      assert.deepEqual(store.activeKeys('example.com'), []);
      assert.equal(store.signingDomainFor('mail.example.com'), null);
      const active = await store.activate('example.com', key.selector);
      assert.equal(active.state, 'active');
      assert.equal(store.signingDomainFor('mail.example.com'), 'example.com');
      signsAndVerifies(store, 'example.com');
      assert.match(store.publishedValue(`${key.selector}._domainkey.example.com`)!, /^v=DKIM1; k=ed25519; p=/);
      assert.deepEqual(
        store.history('example.com').map((e) => [e.from, e.to, e.by]),
        [
          [null, 'pending', 'cli'],
          ['pending', 'active', 'cli'],
        ],
      );
      assert.deepEqual(
        store.checkActiveKeys().map((k) => k.selector),
        [key.selector],
      );
    });

    test('refusals: a taken selector, a second active key of one algorithm, an unknown key', async () => {
      const store = await openStore(await engine.fresh());
      const first = await store.generate({ domain: 'example.org', algorithm: 'ed25519', selector: 'one', activate: true });
      await rejectsWithUserError(
        () => store.generate({ domain: 'example.org', algorithm: 'rsa', bits: 1024, selector: 'one' }),
        /already has a key with selector one/,
      );
      await rejectsWithUserError(() => store.generate({ domain: 'example.org', algorithm: 'ed25519', activate: true }), /already has an active ed25519 key/);
      assert.throws(() => store.get('example.org', 'none'), /no key none for example.org/);
      assert.equal(store.list('example.org').length, 1);
      assert.equal(first.selector, 'one');
    });

    test('a rotation retires the old key; revoke and remove keep its history, drop its private half, free its selector', async () => {
      const store = await openStore(await engine.fresh());
      const old = await store.generate({ domain: 'example.net', algorithm: 'rsa', bits: 1024, selector: 'old', activate: true });
      const next = await store.generate({ domain: 'example.net', algorithm: 'rsa', bits: 1024, selector: 'new' });
      await store.activate('example.net', next.selector);
      assert.equal(store.get('example.net', 'old').state, 'retiring');
      assert.deepEqual(
        store.activeKeys('example.net').map((k) => k.selector),
        ['new'],
      );
      await store.revoke('example.net', 'old');
      assert.match(store.publishedValue('old._domainkey.example.net')!, /p=$/);
      const removed = await store.remove('example.net', 'old');
      assert.equal(removed.state, 'removed');
      assert.equal(store.publishedValue('old._domainkey.example.net'), undefined);
      assert.throws(() => store.privatePem(removed));
      assert.deepEqual(
        store
          .history('example.net')
          .filter((e) => e.keyId === old.id)
          .map((e) => e.to),
        ['active', 'retiring', 'revoked', 'removed'],
      );
      const reused = await store.generate({ domain: 'example.net', algorithm: 'ed25519', selector: 'old' });
      assert.equal(store.find('example.net', 'old')!.id, reused.id);
    });

    test('two openers of one store: a step taken by one is refused to the other, which then sees it', async () => {
      const settings = await engine.fresh();
      const a = await openStore(settings);
      const key = await a.generate({ domain: 'race.example', algorithm: 'ed25519', selector: 'k1', activate: true });
      const b = await openStore(settings);
      const transitions = [
        {
          keyId: key.id,
          domain: key.domain,
          selector: key.selector,
          from: 'active' as const,
          to: 'retiring' as const,
          at: new Date().toISOString(),
          by: 'scheduler' as const,
          why: 'test',
        },
      ];
      const results = await Promise.all([a.applyTransitions(transitions), b.applyTransitions(transitions)]);
      assert.deepEqual(results.toSorted(), [false, true]);
      await engine.sync(a);
      await engine.sync(b);
      for (const store of [a, b]) {
        assert.equal(store.get('race.example', 'k1').state, 'retiring');
        assert.equal(store.history('race.example').filter((e) => e.to === 'retiring').length, 1);
        assert.deepEqual(store.activeKeys('race.example'), []);
      }
    });

    test("chains: a client's keys carry its name in their selectors, activate and rotate apart from the domain's, and a revoked client key leaves the others signing", async () => {
      const settings = await engine.fresh();
      const store = await openStore(settings);
      const at = new Date('2026-12-06T10:00:00Z');
      const domainKey = await store.generate({ domain: 'chains.example', algorithm: 'ed25519', activate: true, step: { at } });
      const scanner = await store.generate({ domain: 'chains.example', client: 'Scanner', algorithm: 'ed25519', activate: true, step: { at } });
      const crm = await store.generate({ domain: 'chains.example', client: 'crm', algorithm: 'ed25519', activate: true, step: { at } });
      assert.deepEqual(
        [domainKey, scanner, crm].map((k) => [k.selector, k.client]),
        [
          ['s202612a', null],
          ['scanner-202612a', 'scanner'],
          ['crm-202612a', 'crm'],
        ],
      );
      // One active key per chain and algorithm, not per domain.
      await rejectsWithUserError(
        () => store.generate({ domain: 'chains.example', client: 'scanner', algorithm: 'ed25519', activate: true }),
        /chains\.example \(client scanner\) already has an active ed25519 key/,
      );
      assert.deepEqual(
        store.activeKeys('chains.example').map((k) => k.selector),
        ['s202612a'],
      );
      assert.deepEqual(
        store.activeKeys('chains.example', 'scanner').map((k) => k.selector),
        ['scanner-202612a'],
      );
      assert.equal(store.signingDomainFor('mail.chains.example', 'crm'), 'chains.example');
      assert.equal(store.signingDomainFor('mail.chains.example', 'nobody'), null);

      // A rotation in the scanner's chain retires the scanner's old key only.
      const next = await store.generate({ domain: 'chains.example', client: 'scanner', algorithm: 'ed25519', step: { at } });
      assert.equal(next.selector, 'scanner-202612b');
      await store.activate('chains.example', next.selector);
      assert.equal(store.get('chains.example', scanner.selector).state, 'retiring');
      assert.equal(store.get('chains.example', domainKey.selector).state, 'active');
      assert.equal(store.get('chains.example', crm.selector).state, 'active');

      // The crm's key is compromised: retired and revoked, its chain signs no more; the others sign on.
      await store.retire('chains.example', crm.selector);
      await store.revoke('chains.example', crm.selector);
      assert.deepEqual(store.activeKeys('chains.example', 'crm'), []);
      assert.equal(store.signingDomainFor('chains.example', 'crm'), null);
      assert.deepEqual(
        store.activeKeys('chains.example', 'scanner').map((k) => k.selector),
        ['scanner-202612b'],
      );
      signsAndVerifies(store, 'chains.example');

      // Another opener (the daemon beside the CLI) sees the chains as they are.
      const other = await openStore(settings);
      await engine.sync(other);
      assert.deepEqual(
        other.list('chains.example').map((k) => [k.selector, k.client, k.state]),
        [
          ['s202612a', null, 'active'],
          ['scanner-202612a', 'scanner', 'retiring'],
          ['crm-202612a', 'crm', 'revoked'],
          ['scanner-202612b', 'scanner', 'active'],
        ],
      );
    });

    test('a key made by another opener signs here once this one has looked again', async () => {
      const settings = await engine.fresh();
      const signer = await openStore(settings);
      const operator = await openStore(settings);
      assert.equal(signer.signingDomainFor('example.info'), null);
      await operator.generate({ domain: 'example.info', algorithm: 'ed25519', activate: true });
      await engine.sync(signer);
      signsAndVerifies(signer, 'example.info');
    });
  });
}

describe('PostgreSQL engine only', { skip: pgSkip.skip }, () => {
  test('a key sealed under another key-encryption key holds back its own domain (KeyFileError), not the others', async () => {
    const settings = await engines[1]!.fresh();
    const first = await openKeyStore(settings, { refreshMs: 0 });
    await first.generate({ domain: 'a.example', algorithm: 'ed25519', activate: true });
    await first.close();
    const other = { ...settings, encryptionKeyFile: kekFile(tempDir()) };
    const problems: string[] = [];
    const store = await openKeyStore(other, { refreshMs: 0, onKeyProblem: (p) => problems.push(p.line) });
    try {
      assert.throws(
        () => store.activeKeys('a.example'),
        (err: unknown) => err instanceof KeyFileError && /does not open with this key-encryption key/.test(err.message),
      );
      assert.equal(problems.length, 1);
      await store.generate({ domain: 'b.example', algorithm: 'ed25519', activate: true });
      signsAndVerifies(store, 'b.example');
    } finally {
      await store.close();
    }
  });

  test('a running relay picks up a key another relay activated, by itself, within a few looks', async () => {
    const settings = await engines[1]!.fresh();
    const errors: Error[] = [];
    const relay = await openKeyStore(settings, { refreshMs: 50, onRefreshError: (err) => errors.push(err) });
    const operator = await openKeyStore(settings, { refreshMs: 0 });
    try {
      await operator.generate({ domain: 'later.example', algorithm: 'ed25519', activate: true });
      // Bounded: 200 looks of 50 ms; no relay-side call prompts it.
      for (let i = 0; i < 200 && relay.signingDomainFor('later.example') === null; i++) await delay(50);
      signsAndVerifies(relay, 'later.example');
      assert.deepEqual(errors, []);
    } finally {
      await relay.close();
      await operator.close();
    }
  });
});
