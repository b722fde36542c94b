// Signing keys in a real PKCS#11 token (SoftHSM, a token of each test's own):
// generated or imported there, used by the real `serve`, verified by dkimpy
// and Mail::DKIM, never present as private material outside the token.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { serve } from '../../cli/support.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../../helpers/independent-verify.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { cli, MODULE, ok, outbox, PIN, records, relay, setup, stop, storeFiles } from './support.ts';

describe('signing keys in a PKCS#11 token', { skip: skipWithout('softhsm2-util', 'dkimpy', 'Mail::DKIM') }, () => {
  test('RSA and Ed25519 keys generated in the token sign mail that dkimpy and Mail::DKIM verify; no private key exists outside it', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsmrsa', '--in-token', '--activate']);
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsmed', '--algorithm', 'ed25519', '--in-token', '--activate']);
    const list = await ok(s, ['keys', 'list']);
    assert.match(list, /hsmrsa\s+rsa\s+2048\s+active\s+pkcs11/);
    assert.match(list, /hsmed\s+ed25519\s+256\s+active\s+pkcs11/);

    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      const reply = await relay(running.port());
      assert.ok(reply.ok, reply.response);
    } finally {
      await stop(running);
    }
    const [signed] = outbox(s);
    assert.ok(signed, 'nothing delivered');
    const txt = await records(s);
    assert.deepEqual(await verifyWithDkimpy(signed, txt), [true, true]);
    const perl = await verifyWithMailDkim(signed, txt);
    assert.equal(perl.filter((r) => r === 'pass').length, 1, `Mail::DKIM: ${perl.join(', ')} (it verifies the RSA signature)`);

    // Nothing private under keys.dir: no PEM private key, no key files at all besides the database.
    for (const file of storeFiles(s)) assert.ok(!file.includes('PRIVATE KEY'), 'a PEM private key under keys.dir');
    assert.deepEqual(
      readdirSync(join(s.dir, 'keys')).filter((f) => f.endsWith('.pem')),
      [],
    );
    // The token refuses to give the private halves out.
    const { Pkcs11Token } = await import('../../../src/keys/pkcs11-token.ts');
    const { parseTokenUri } = await import('../../../src/keys/pkcs11-objects.ts');
    const { SqliteKeyStore } = await import('../../../src/keys/store.ts');
    process.env.SOFTHSM2_CONF = s.env.SOFTHSM2_CONF;
    const token = Pkcs11Token.connectLater({ module: MODULE, token: 'dkim', pinFile: s.pinFile, newKeys: false });
    const store = SqliteKeyStore.open(join(s.dir, 'keys'), { create: false });
    try {
      const rsa = store.get('example.com', 'hsmrsa');
      const ed = store.get('example.com', 'hsmed');
      assert.equal(rsa.material, 'pkcs11');
      assert.throws(() => token.readPrivateAttribute(parseTokenUri(rsa.file), 0x123 /* CKA_PRIVATE_EXPONENT */), /CKR_ATTRIBUTE_SENSITIVE/);
      assert.throws(() => token.readPrivateAttribute(parseTokenUri(ed.file), 0x11 /* CKA_VALUE */), /CKR_ATTRIBUTE_SENSITIVE/);
      assert.deepEqual(token.readPrivateAttribute(parseTokenUri(rsa.file), 0x162 /* CKA_EXTRACTABLE */), Buffer.from([0]));
      assert.throws(() => store.privatePem(rsa), /cannot leave it/);
    } finally {
      store.close();
      token.close();
    }
  });

  test('a wrong PIN defers the mail (451) with one log line, never sends it unsigned; once the PIN file is mended, signing resumes without a restart', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsm', '--in-token', '--activate']);
    writeFileSync(s.pinFile, '999999\n', { mode: 0o600 });
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      for (let i = 0; i < 3; i++) {
        const reply = await relay(running.port());
        assert.equal(reply.ok, false);
        assert.equal((reply as { code?: number }).code, 451, reply.response);
        assert.match(reply.response, /4\.3\.0/);
      }
      const lines = running
        .output()
        .split('\n')
        .filter((l) => l.includes('refused the PIN'));
      assert.equal(lines.length, 1, running.output());
      assert.ok(!running.output().includes('999999'), 'the PIN is in the log');
      assert.equal(outbox(s).length, 0, 'a message left unsigned');

      // The PIN file mended: the relay logs in again by itself.
      writeFileSync(s.pinFile, `${PIN}\n`, { mode: 0o600 });
      let back = false;
      for (let i = 0; i < 40 && !back; i++) {
        const reply = await relay(running.port());
        back = reply.ok;
        if (!back) await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(back, `signing did not resume with the right PIN:\n${running.output()}`);
    } finally {
      await stop(running);
    }
    assert.equal(outbox(s).length, 1);
    assert.deepEqual(await verifyWithDkimpy(outbox(s)[0]!, await records(s)), [true]);
  });

  test('a token that disappears defers mail (451); when it returns, signing resumes without a restart', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsm', '--in-token', '--activate']);
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      assert.ok((await relay(running.port())).ok);
      renameSync(s.tokens, `${s.tokens}.away`);
      const refused = await relay(running.port());
      assert.equal((refused as { code?: number }).code, 451, refused.response);
      renameSync(`${s.tokens}.away`, s.tokens);
      // The token is looked at again a couple of seconds after it failed: bounded retries, each a real message.
      let back = false;
      for (let i = 0; i < 40 && !back; i++) {
        const reply = await relay(running.port());
        back = reply.ok;
        if (!back) {
          assert.equal((reply as { code?: number }).code, 451, reply.response);
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      assert.ok(back, `signing did not resume:\n${running.output()}`);
    } finally {
      await stop(running);
    }
    const delivered = outbox(s);
    assert.equal(delivered.length, 2);
    for (const message of delivered) assert.deepEqual(await verifyWithDkimpy(message, await records(s)), [true]);
  });

  test('keys import --to-token moves a PEM key into the token: same selector, the published record still verifies', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'moved', '--activate']);
    const before = await records(s);
    const pem = join(s.dir, 'keys', 'moved._domainkey.example.com.pem');
    assert.ok(existsSync(pem));
    await ok(s, ['keys', 'import', '--domain', 'example.com', '--selector', 'moved', '--to-token', '--remove-file']);
    assert.equal(existsSync(pem), false, '--remove-file left the PEM file');
    assert.deepEqual(await records(s), before, 'the DNS record changed');
    assert.match(await ok(s, ['keys', 'list']), /moved\s+rsa\s+2048\s+active\s+pkcs11/);
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      assert.ok((await relay(running.port())).ok);
    } finally {
      await stop(running);
    }
    assert.deepEqual(await verifyWithDkimpy(outbox(s)[0]!, before), [true]);
    for (const file of storeFiles(s)) assert.ok(!file.includes('PRIVATE KEY'));
  });

  test('config check refuses a PIN file others can read, naming the setting and never the PIN', async () => {
    const s = setup();
    writeFileSync(s.pinFile, `${PIN}\n`);
    execFileSync('chmod', ['644', s.pinFile]);
    const run = await cli(s, ['config', 'check']);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /keys\.pkcs11\.pinFile: the PIN file .* is readable by others \(mode 0644\) — run: chmod 600/);
    assert.ok(!(run.stdout + run.stderr).includes(PIN), 'the PIN was printed');
  });

  test('with keys.pkcs11.newKeys, keys generate and keys rotate make the key in the token without --in-token', async () => {
    const s = setup();
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('pinFile: ', 'newKeys: true, pinFile: '));
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'first', '--activate']);
    await ok(s, ['keys', 'rotate', '--domain', 'example.com']);
    const list = await ok(s, ['keys', 'list']);
    assert.match(list, /first\s+rsa\s+2048\s+active\s+pkcs11/);
    assert.equal(list.split('\n').filter((l) => /\spkcs11\s/.test(l)).length, 2, list);
    assert.deepEqual(
      readdirSync(join(s.dir, 'keys')).filter((f) => f.endsWith('.pem')),
      [],
    );
  });

  test('RSA-3072 in the token; sizes not offered and exporting a token key are refused in one line (exit 2)', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'big', '--bits', '3072', '--in-token']);
    assert.match(await ok(s, ['keys', 'list']), /big\s+rsa\s+3072\s+pending\s+pkcs11/);
    const odd = await cli(s, ['keys', 'generate', '--domain', 'example.com', '--bits', '1000', '--in-token']);
    assert.equal(odd.code, 2, odd.stderr);
    assert.match(odd.stderr, /RSA keys of 1000 bits are not offered/);
    const exported = await cli(s, ['keys', 'export', '--domain', 'example.com', '--selector', 'big', '--private']);
    assert.equal(exported.code, 2, exported.stderr);
    assert.match(exported.stderr, /is in a PKCS#11 token and cannot leave it/);
    assert.equal(exported.stdout, '');
  });

  test('keys remove destroys the key objects in the token', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'gone', '--in-token']);
    const objects = () =>
      execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', 'dkim', '--login', '--pin', PIN, '-O'], {
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
      });
    // Generated before the selector is chosen, then named after its record: found again with pkcs11-tool -O.
    assert.equal(
      objects()
        .split('\n')
        .filter((l) => l.includes('label:') && l.includes('dkim gone._domainkey.example.com')).length,
      2,
      objects(),
    );
    const out = await ok(s, ['keys', 'remove', '--domain', 'example.com', '--selector', 'gone']);
    assert.match(out, /key objects in the token are destroyed/);
    assert.ok(!objects().includes('gone._domainkey'), objects());
  });
});
