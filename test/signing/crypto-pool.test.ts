import assert from 'node:assert/strict';
import { replyText } from '../../src/smtp/reply.ts';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { dkimVerify } from 'mailauth';
import { configSchema } from '../../src/config/schema.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { processMessage } from '../../src/pipeline/pipeline.ts';
import { acquireCryptoPool, CryptoPool, CryptoUnavailable, defaultPoolSize } from '../../src/signing/crypto-pool.ts';
import { signDigest, verifyDigest } from '../../src/signing/digest-signature.ts';
import { signMessageAsync, type SignOptions } from '../../src/signing/signer.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { tempDir } from '../helpers/relay-harness.ts';
import { ed25519Key, recordsOf, resolverFor, rsaKey } from './support.ts';

const rsa = rsaKey('pool-rsa', 2048);
const ed = ed25519Key('pool-ed');
const RECORDS = recordsOf([rsa, ed]);
const OPTIONS: SignOptions = { headerCanonicalization: 'relaxed', bodyCanonicalization: 'relaxed', headers: ['From', 'To', 'Subject'], oversign: ['From'] };
const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);
const digests = (n: number) => Array.from({ length: n }, () => createHash('sha256').update(randomBytes(16)).digest());

function message(n: number): Buffer {
  return Buffer.from(`From: a@example.com\r\nTo: b@example.org\r\nSubject: pool ${n}\r\n\r\nBody ${n}  with  spaces \r\n\r\n\r\n`);
}

/** Rejects if `promise` takes longer than `ms`: a hang fails the test instead of stalling the run. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('crypto pool', () => {
  test('by default one thread fewer than the cores, at least one and at most two', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 64].map((cores) => defaultPoolSize(cores)),
      [1, 1, 2, 2, 2],
    );
  });

  test('messages signed through the pool verify with python3-dkim and mailauth, RSA and Ed25519', async () => {
    const pool = new CryptoPool({ size: 2 });
    try {
      assert.equal(pool.inThread, false);
      const signed = await Promise.all(
        Array.from({ length: 6 }, async (_, n) => {
          const fields = await signMessageAsync(message(n), [rsa.key, ed.key], OPTIONS, { crypto: pool });
          return Buffer.concat([Buffer.from(fields, 'latin1'), message(n)]);
        }),
      );
      for (const m of signed) {
        assert.deepEqual(await verifyWithDkimpy(m, RECORDS), [true, true]);
        const { results } = await dkimVerify(m, { resolver: resolverFor(RECORDS) });
        assert.deepEqual(
          results.map((r) => r.status.result),
          ['pass', 'pass'],
        );
      }
    } finally {
      await pool.close();
    }
  });

  test('verifies (Ed25519 in the threads, RSA in this one): a good signature passes, a wrong digest or signature fails', async () => {
    const pool = new CryptoPool({ size: 2 });
    try {
      for (const k of [rsa, ed]) {
        const publicKey = (await import('node:crypto')).createPublicKey(k.key.privateKey);
        const [digest, other] = digests(2) as [Buffer, Buffer];
        const signature = await pool.sign(k.key.algorithm, digest, k.key.privateKey);
        assert.equal(await pool.verify(k.key.algorithm, digest, publicKey, signature), true);
        assert.equal(await pool.verify(k.key.algorithm, other, publicKey, signature), false);
        signature[10]! ^= 1;
        assert.equal(await pool.verify(k.key.algorithm, digest, publicKey, signature), false);
      }
    } finally {
      await pool.close();
    }
  });

  test('a thread killed mid-job: its jobs are signed again elsewhere, every signature right', async () => {
    const problems: string[] = [];
    const pool = new CryptoPool({ size: 2, onProblem: (line) => problems.push(line) });
    try {
      await pool.sign('rsa', digests(1)[0]!, rsa.key.privateKey); // both threads up
      const batch = digests(300);
      const jobs = batch.map((d) => pool.sign('rsa', d, rsa.key.privateKey));
      await pool.threads[0]!.terminate();
      const signatures = await within(Promise.all(jobs), 60_000, 'signing after a thread died');
      // RSASSA-PKCS1-v1_5 is deterministic: each signature must be exactly the in-thread one.
      signatures.forEach((s, i) => assert.deepEqual(s, signDigest('rsa', batch[i]!, rsa.key.privateKey), `job ${i}`));
      assert.ok(pool.retried > 0, 'some jobs were in flight on the killed thread');
      assert.equal(pool.threads.length, 2, 'the thread was replaced');
      assert.match(problems.join('\n'), /a signing thread stopped/);
    } finally {
      await pool.close();
    }
  });

  test('an RSA verification never waits for a thread; an Ed25519 one does', async () => {
    // Threads that die on every job: only work done in this thread can succeed.
    const pool = new CryptoPool({ size: 1, workerUrl: fixture('dying-crypto-worker.ts') });
    try {
      const digest = digests(1)[0]!;
      const crypto = await import('node:crypto');
      const rsaSignature = signDigest('rsa', digest, rsa.key.privateKey);
      assert.equal(await within(pool.verify('rsa', digest, crypto.createPublicKey(rsa.key.privateKey), rsaSignature), 30_000, 'RSA'), true);
      const edSignature = signDigest('ed25519', digest, ed.key.privateKey);
      const edPublic = crypto.createPublicKey(ed.key.privateKey);
      await assert.rejects(within(pool.verify('ed25519', digest, edPublic, edSignature), 30_000, 'Ed25519'), CryptoUnavailable);
    } finally {
      await pool.close();
    }
  });

  test('a thread that dies on every job: the job fails as temporary, and the pipeline answers 451', async () => {
    const pool = new CryptoPool({ size: 2, workerUrl: fixture('dying-crypto-worker.ts') });
    try {
      await assert.rejects(within(pool.sign('rsa', digests(1)[0]!, rsa.key.privateKey), 30_000, 'a doomed job'), CryptoUnavailable);
    } finally {
      await pool.close();
    }

    const dir = tempDir();
    const store = SqliteKeyStore.open(dir.path);
    const shared = acquireCryptoPool({ size: 1, workerUrl: fixture('dying-crypto-worker.ts') });
    try {
      store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
      const ctx = { store, config: configSchema.parse({}), upstream: { dualSign: false, eightBitMime: true }, hostname: 'relay.test' };
      const outcome = await within(processMessage(message(1), ctx), 30_000, 'the pipeline');
      assert.equal(outcome.action, 'refuse');
      assert.equal(outcome.action === 'refuse' && outcome.reply.code, 451);
      assert.deepEqual(outcome.signatures, []);
    } finally {
      await shared.release();
      store.close();
      dir.remove();
    }
  });

  test('threads that cannot start: the pool signs in this thread instead', async () => {
    const problems: string[] = [];
    const pool = new CryptoPool({ size: 2, workerUrl: fixture('unloadable-crypto-worker.ts'), onProblem: (line) => problems.push(line) });
    try {
      const digest = digests(1)[0]!;
      const signature = await within(pool.sign('ed25519', digest, ed.key.privateKey), 30_000, 'signing without threads');
      assert.equal(verifyDigest('ed25519', digest, (await import('node:crypto')).createPublicKey(ed.key.privateKey), signature), true);
      assert.equal(pool.inThread, true);
      assert.match(problems.join('\n'), /signing in the main thread instead/);
    } finally {
      await pool.close();
    }
  });

  test('close() ends the threads with jobs in flight, without hanging; later jobs fail as temporary', async () => {
    const pool = new CryptoPool({ size: 2 });
    const jobs = digests(200).map((d) =>
      pool.sign('rsa', d, rsa.key.privateKey).then(
        () => 'signed',
        (err: unknown) => err,
      ),
    );
    await within(pool.close(), 10_000, 'close()');
    const outcomes = await within(Promise.all(jobs), 10_000, 'jobs after close()');
    assert.ok(outcomes.every((o) => o === 'signed' || o instanceof CryptoUnavailable));
    assert.equal(pool.threads.length, 0);
    await assert.rejects(pool.sign('rsa', digests(1)[0]!, rsa.key.privateKey), CryptoUnavailable);
  });

  test('a full queue refuses more work as temporary', async () => {
    const pool = new CryptoPool({ size: 1, maxQueue: 4 });
    try {
      const jobs = digests(5).map((d) =>
        pool.sign('rsa', d, rsa.key.privateKey).then(
          () => 'signed',
          (err: unknown) => err,
        ),
      );
      const outcomes = await within(Promise.all(jobs), 30_000, 'a full queue');
      assert.deepEqual(outcomes.slice(0, 4), ['signed', 'signed', 'signed', 'signed']);
      assert.ok(outcomes[4] instanceof CryptoUnavailable);
    } finally {
      await pool.close();
    }
  });
});
