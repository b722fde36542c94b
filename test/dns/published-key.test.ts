// What DNS serves versus the key store, through a real resolver query to a
// DNS server on loopback; and `keys activate` refusing an unpublished key.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { checkPublished } from '../../src/dns/published-key.ts';
import { txtRecord } from '../../src/keys/record.ts';
import { SqliteKeyStore, type StoredKey } from '../../src/keys/store.ts';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { tempDir } from '../helpers/relay-harness.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describe('checkPublished', () => {
  const dir = tempDir();
  let dns: DnsServer;
  let store: SqliteKeyStore;
  let key: StoredKey;

  before(async () => {
    dns = await startDnsServer();
    store = SqliteKeyStore.open(join(dir.path, 'keys'));
    key = store.generate({ domain: 'example.com', algorithm: 'rsa' });
  });
  after(async () => {
    store.close();
    await dns.close();
    dir.remove();
  });

  const name = () => txtRecord(key).name;

  test('missing when nothing is published', async () => {
    dns.records.delete(name());
    assert.equal((await checkPublished(key, dns.address)).state, 'missing');
  });

  test('match when the split strings join to the value', async () => {
    dns.records.set(name(), [txtRecord(key).strings]);
    assert.equal((await checkPublished(key, dns.address)).state, 'match');
  });

  test('mismatch with a hint when a panel truncated p= at 255 characters', async () => {
    dns.records.set(name(), [[txtRecord(key).value.slice(0, 255)]]);
    const check = await checkPublished(key, dns.address);
    assert.equal(check.state, 'mismatch');
    assert.match(check.detail, /truncated/);
  });

  test('malformed when two DKIM records sit at one name', async () => {
    dns.records.set(name(), [txtRecord(key).strings, txtRecord(key).strings]);
    assert.equal((await checkPublished(key, dns.address)).state, 'malformed');
  });
});

describe('keys activate', () => {
  const dir = tempDir();
  let dns: DnsServer;
  const cli = (...args: string[]) =>
    run(join(ROOT, 'node_modules', '.bin', 'node'), [join(ROOT, 'bin', 'dkim-relay.js'), ...args], {
      cwd: dir.path,
      timeout: 20_000,
      encoding: 'utf8',
      env: { ...process.env, DKIM_RELAY_CONFIG: '' },
    });

  before(async () => {
    dns = await startDnsServer();
  });
  after(async () => {
    await dns.close();
    dir.remove();
  });

  test('refuses while DNS does not serve the record, activates once it does', async () => {
    const generated = JSON.parse((await cli('keys', 'generate', '--domain', 'example.org', '--selector', 'sel1', '--json')).stdout) as {
      record: { name: string; strings: string[] };
    };
    const refused = await cli('keys', 'activate', '--domain', 'example.org', '--selector', 'sel1', '--nameserver', dns.address).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal((refused as { code: number }).code, 2);
    assert.match(
      (refused as { stderr: string }).stderr,
      /^dkim-relay: not activated: DNS serves no DKIM record at sel1\._domainkey\.example\.org — publish the record/,
    );

    dns.records.set(generated.record.name, [generated.record.strings]);
    const done = await cli('keys', 'activate', '--domain', 'example.org', '--selector', 'sel1', '--nameserver', dns.address);
    assert.match(done.stdout, /sel1: rsa 2048 bits, active/);
  });
});
