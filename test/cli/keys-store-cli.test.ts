// Where the key store is and who owns it, through the real CLI: commands
// that only read never create a store (a relative keys.dir run from another
// directory would start an empty one the relay never reads), and key
// commands run as root keep the owner of a store that belongs to the
// relay's user on every file they create, so the relay can still use them.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay, NODE, type Run } from './support.ts';

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout.slice(0, 3000)}\n--- stderr\n${run.stderr.slice(0, 3000)}`;
}

const MESSAGE = 'From: a@example.com\r\nTo: b@example.net\r\nSubject: owner\r\n\r\nbody\r\n';

/** Commands that only read the store, each with what it needs to run. */
const READERS: string[][] = [
  ['keys', 'list'],
  ['keys', 'dns'],
  ['keys', 'history'],
  ['keys', 'export', '--domain', 'example.com', '--selector', 's1'],
  ['keys', 'activate', '--domain', 'example.com', '--selector', 's1', '--force'],
  ['keys', 'rotate', '--domain', 'example.com'],
  ['status', '--no-dns'],
  ['dns', 'check', '--nameserver', '127.0.0.1:1'],
  ['sign'],
];

describe('a store that does not exist', () => {
  test('read-only commands say where it was looked for and how to mend it, exit 2, and create nothing', async () => {
    const relayDir = tempDir('dkim-relay-store-');
    const elsewhere = tempDir('dkim-relay-elsewhere-');
    const config = join(relayDir, 'relay.yaml');
    writeFileSync(config, 'keys: {dir: keys}\n'); // relative: the relay's working directory
    for (const command of READERS) {
      const run = await dkimRelay([...command, '--config', config], elsewhere);
      assert.equal(run.code, 2, `${command.join(' ')}\n${shown(run)}`);
      assert.equal(
        run.stderr,
        `dkim-relay: no key store at ${join(elsewhere, 'keys')} (keys.dir keys, relative to the current directory) — run the command from the directory the relay runs in, or set keys.dir to the store's absolute path; \`dkim-relay keys generate\` creates a new store\n`,
        `${command.join(' ')}\n${shown(run)}`,
      );
      assert.deepEqual(readdirSync(elsewhere), [], `${command.join(' ')} created something`);
    }
  });

  test('an absolute keys.dir is named as it is; a directory without keys.db is no store either', async () => {
    const dir = tempDir('dkim-relay-store-');
    mkdirSync(join(dir, 'keys'), { mode: 0o755 }); // a fresh checkout's keys/ with nothing in it
    writeFileSync(join(dir, 'relay.yaml'), `keys: {dir: ${join(dir, 'keys')}}\n`);
    const run = await dkimRelay(['keys', 'list', '--config', join(dir, 'relay.yaml')], dir);
    assert.equal(run.code, 2, shown(run));
    assert.match(run.stderr, new RegExp(`^dkim-relay: no key store at ${join(dir, 'keys')} — `));
    assert.deepEqual(readdirSync(join(dir, 'keys')), []);
  });

  test('keys generate creates it, and then the readers read it; verify --dns needs none', async () => {
    const dir = tempDir('dkim-relay-store-');
    writeFileSync(join(dir, 'relay.yaml'), 'keys: {dir: keys}\n');
    const config = ['--config', join(dir, 'relay.yaml')];
    const generated = await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--selector', 's1', ...config], dir);
    assert.equal(generated.code, 0, shown(generated));
    assert.ok(existsSync(join(dir, 'keys', 'keys.db')));
    const listed = await dkimRelay(['keys', 'list', ...config], dir);
    assert.equal(listed.code, 0, shown(listed));
    assert.match(listed.stdout, /example\.com {2}s1 /);
    const elsewhere = tempDir('dkim-relay-elsewhere-');
    const verified = await dkimRelay(['verify', '--dns', '--nameserver', '127.0.0.1:1', '--config', join(dir, 'relay.yaml')], elsewhere);
    assert.equal(verified.code, 1, shown(verified)); // the message carries no signature
    assert.match(verified.stdout, /^none: /);
    assert.deepEqual(readdirSync(elsewhere), []);
  });
});

describe("key commands run as root in a store owned by the relay's user", { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
  /** A folder the relay's user (here nobody) owns, with a configuration naming keys/ inside it. */
  function setup(): { dir: string; config: string[]; asRelayUser: string } {
    const dir = tempDir('dkim-relay-owner-');
    chmodSync(dir, 0o755);
    chownSync(dir, 65534, 65534);
    writeFileSync(join(dir, 'relay.yaml'), `keys: {dir: ${join(dir, 'keys')}}\n`);
    const asRelayUser = join(dir, 'node-as-nobody');
    writeFileSync(asRelayUser, `#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups ${JSON.stringify(NODE)} "$@"\n`);
    chmodSync(asRelayUser, 0o755);
    return { dir, config: ['--config', join(dir, 'relay.yaml')], asRelayUser };
  }

  function owners(dir: string): string[] {
    return [dir, ...readdirSync(dir).map((f) => join(dir, f))].map((p) => `${p.slice(dir.length) || '.'} ${statSync(p).uid}:${statSync(p).gid}`);
  }

  test('the store, its database and key files get the owner of the directory they are made in; the relay user signs with them', async () => {
    const { dir, config, asRelayUser } = setup();
    const keys = join(dir, 'keys');
    const generated = await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--selector', 's1', '--activate', ...config], dir);
    assert.equal(generated.code, 0, shown(generated));
    const pem = join(dir, 'brought.pem');
    writeFileSync(pem, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const imported = await dkimRelay(['keys', 'import', '--domain', 'example.org', '--selector', 's1', '--file', pem, ...config], dir);
    assert.equal(imported.code, 0, shown(imported));
    const rotated = await dkimRelay(['keys', 'rotate', '--domain', 'example.com', ...config], dir);
    assert.equal(rotated.code, 0, shown(rotated));
    assert.equal(readdirSync(keys).filter((f) => f.endsWith('.pem')).length, 3);
    for (const line of owners(keys)) assert.match(line, / 65534:65534$/, owners(keys).join('\n'));
    // The relay's own user uses what root made: it signs with it, and changes the store.
    const signed = await dkimRelay(['sign', ...config], dir, { node: asRelayUser, input: MESSAGE });
    assert.equal(signed.code, 0, shown(signed));
    assert.match(signed.stderr, /^signed d=example\.com s=s1 a=rsa-sha256; self-check pass\n$/);
    const retired = await dkimRelay(['keys', 'retire', '--domain', 'example.com', '--selector', 's1', ...config], dir, { node: asRelayUser });
    assert.equal(retired.code, 0, shown(retired));
  });
});
