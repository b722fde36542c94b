// /healthz of a real relay: it reports a full spool disk (a small tmpfs,
// filled up) as unhealthy, and without the password it shows each check's
// short reason, never a key file's path, domain or selector.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { startTestRelay, tempDir } from '../helpers/relay-harness.ts';
import { get } from './support.ts';

interface HealthBody {
  status: string;
  failed: string[];
  checks: { name: string; ok: boolean; reason: string; detail?: string }[];
}

/** Writes 1 MiB blocks to `file` until the file system refuses one; returns the octets written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(1024 * 1024, 0x78);
  let written = 0;
  try {
    for (let i = 0; i < 1000; i++) written += writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return written;
}

describe('/healthz', () => {
  test('a full spool disk makes the relay unhealthy (503, spool failed); freed, it is healthy again', async () => {
    const dir = tempDir();
    const spool = join(dir.path, 'spool');
    mkdirSync(spool);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', spool]);
    try {
      const relay = await startTestRelay({ queue: { dir: spool }, listen: { maxMessageSize: 1024 * 1024 } }, (store) => {
        store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
      });
      try {
        const port = relay.relay.ports.metrics!;
        assert.equal((await get(port, '/healthz')).status, 200, 'healthy with room on the disk');
        const filler = join(spool, 'filler');
        assert.ok(fill(filler) > 4 * 1024 * 1024);
        const full = await get(port, '/healthz');
        assert.equal(full.status, 503, full.body);
        const body = JSON.parse(full.body) as HealthBody;
        assert.deepEqual(body.failed, ['spool']);
        assert.match(body.checks.find((c) => c.name === 'spool')!.reason, /not writable \(ENOSPC\)|disk is full/);
        rmSync(filler);
        assert.equal((await get(port, '/healthz')).status, 200, 'healthy again once space returns');
      } finally {
        await relay.close();
      }
    } finally {
      execFileSync('umount', [spool]);
      dir.remove();
    }
  });

  test('without the password it names no key file, selector or domain; with it, the details', async () => {
    const relay = await startTestRelay({ metrics: { auth: { user: 'prometheus', passwordHash: await hashPassword('scrape pw') } } }, (store) => {
      store.generate({ domain: 'secret-domain.example', algorithm: 'ed25519', activate: true });
    });
    try {
      const port = relay.relay.ports.metrics!;
      const key = relay.store.list('secret-domain.example').find((k) => k.state === 'active')!;
      const file = join(relay.store.dir, key.file);
      renameSync(file, `${file}.away`);
      mkdirSync(file);

      const anonymous = await get(port, '/healthz');
      assert.equal(anonymous.status, 503);
      const shown = JSON.parse(anonymous.body) as HealthBody;
      for (const secret of [relay.dir, key.file, key.selector, 'secret-domain', '_domainkey']) {
        assert.ok(!anonymous.body.includes(secret), `anonymous /healthz shows ${secret}: ${anonymous.body}`);
      }
      assert.deepEqual(shown.failed, ['signing-keys']);
      assert.equal(shown.checks.find((c) => c.name === 'signing-keys')!.reason, '1 signing domain of 1 cannot sign');
      assert.ok(shown.checks.every((c) => c.detail === undefined));

      const withPassword = await get(port, '/healthz', { auth: 'prometheus:scrape pw' });
      assert.equal(withPassword.status, 503);
      assert.match(
        (JSON.parse(withPassword.body) as HealthBody).checks.find((c) => c.name === 'signing-keys')!.detail!,
        new RegExp(`${key.selector}\\._domainkey\\.secret-domain\\.example`),
      );
      assert.equal((await get(port, '/healthz', { auth: 'prometheus:wrong' })).status, 401, 'a wrong password is told so');
    } finally {
      await relay.close();
    }
  });

  test("a client's own chain counts apart: a domain signed only by a client's keys is healthy, and that chain's broken key is named", async () => {
    const relay = await startTestRelay({ clients: [{ user: 'scan', domains: ['chains.example'], name: 'scanner', keys: 'own' }] }, (store) => {
      store.generate({ domain: 'chains.example', client: 'scanner', algorithm: 'ed25519', activate: true });
    });
    try {
      const port = relay.relay.ports.metrics!;
      const healthy = await get(port, '/healthz');
      assert.equal(healthy.status, 200, healthy.body);
      const key = relay.store.list('chains.example')[0]!;
      const file = join(relay.store.dir, key.file);
      renameSync(file, `${file}.away`);
      mkdirSync(file);
      const broken = await get(port, '/healthz', {});
      assert.equal(broken.status, 503, broken.body);
      assert.equal((JSON.parse(broken.body) as HealthBody).checks.find((c) => c.name === 'signing-keys')!.reason, '1 signing domain of 1 cannot sign');
    } finally {
      await relay.close();
    }
  });
});
