import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { dkimVerify } from 'mailauth';
import { toCrlf } from '../../src/message/lines.ts';
import { signMessage, type Canonicalization, type SignOptions } from '../../src/signing/signer.ts';
import type { ActiveKey } from '../../src/keys/key-store.ts';
import { FOLD_AT } from '../../src/message/mime/fold.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/independent-verify.ts';
import { ed25519Key, linesOf, recordsOf, resolverFor, rsaKey, type TestKey } from './support.ts';

const rsa1024 = rsaKey('rsa1024', 1024);
const rsa2048 = rsaKey('rsa2048', 2048);
const ed = ed25519Key('ed');
const RECORDS = recordsOf([rsa1024, rsa2048, ed]);

// 8-bit UTF-8 in headers and body, folded headers, repeated To, lines starting
// with dots, trailing whitespace and trailing blank lines.
const MESSAGE = toCrlf(
  Buffer.from(
    [
      'From: "Jörg Müller" <joerg@example.com>',
      'To: a@example.org',
      'To: b@example.org,',
      '\tc@example.org',
      'Subject: Grüße aus Köln — a rather long subject that',
      '  is folded over   two lines',
      'Date: Tue, 1 Jul 2025 10:00:00 +0000',
      'Message-ID: <1@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Hallo Jörg,  ',
      '.',
      '..two dots',
      '.leading dot',
      '\tindented\t line ',
      '',
      'Tschüß 😀',
      '',
      '',
    ].join('\n'),
    'utf8',
  ),
);

const HEADERS = ['From', 'To', 'Cc', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Reply-To'];
const OVERSIGN = ['From', 'Subject', 'Reply-To'];

function options(header: Canonicalization, body: Canonicalization, extra: Partial<SignOptions> = {}): SignOptions {
  return { headerCanonicalization: header, bodyCanonicalization: body, headers: HEADERS, oversign: OVERSIGN, ...extra };
}

function sign(message: Buffer, keys: TestKey[], opts: SignOptions): Buffer {
  const fields = signMessage(
    message,
    keys.map((k) => k.key),
    opts,
  );
  return Buffer.concat([Buffer.from(fields, 'latin1'), message]);
}

async function mailauthResults(message: Buffer): Promise<string[]> {
  const res = await dkimVerify(message, { resolver: resolverFor(RECORDS) });
  return res.results.map((r) => String(r.status.result));
}

function signatureFields(signed: Buffer): string[] {
  const header = signed.toString('latin1').split('\r\n\r\n')[0]!;
  return header.split(/\r\n(?![ \t])/).filter((f) => f.startsWith('DKIM-Signature:'));
}

const MODES: [Canonicalization, Canonicalization][] = [
  ['relaxed', 'relaxed'],
  ['simple', 'simple'],
  ['relaxed', 'simple'],
  ['simple', 'relaxed'],
];
const KEYSETS: [string, TestKey[]][] = [
  ['RSA-1024', [rsa1024]],
  ['RSA-2048', [rsa2048]],
  ['Ed25519', [ed]],
  ['RSA-2048 + Ed25519', [rsa2048, ed]],
];

for (const [name, keys] of KEYSETS) {
  for (const [h, b] of MODES) {
    test(`${name}, ${h}/${b}: verified by dkimpy, mailauth${keys.some((k) => k.key.algorithm === 'rsa') ? ' and Mail::DKIM' : ''}`, async () => {
      const signed = sign(MESSAGE, keys, options(h, b));
      const fields = signatureFields(signed);
      assert.equal(fields.length, keys.length);
      fields.forEach((f, i) => {
        assert.match(f, new RegExp(`a=${keys[i]!.key.algorithm}-sha256;`));
        assert.match(f, new RegExp(`c=${h}/${b};`));
        for (const line of linesOf(f)) assert.ok(line.length <= FOLD_AT, `line of ${line.length} octets`);
      });

      const [dkimpy, mailauth, perl] = await Promise.all([verifyWithDkimpy(signed, RECORDS), mailauthResults(signed), verifyWithMailDkim(signed, RECORDS)]);
      assert.deepEqual(
        dkimpy,
        keys.map(() => true),
        'dkimpy',
      );
      assert.deepEqual(
        mailauth,
        keys.map(() => 'pass'),
        'mailauth',
      );
      // Debian 12's Mail::DKIM has no Ed25519: only RSA results are meaningful.
      keys.forEach((k, i) => {
        if (k.key.algorithm === 'rsa') assert.equal(perl[i], 'pass', 'Mail::DKIM');
      });
    });
  }
}

test('Mail::DKIM on Debian 12 does not verify Ed25519 (documented limitation, not a pass)', async () => {
  const perl = await verifyWithMailDkim(sign(MESSAGE, [ed], options('relaxed', 'relaxed')), RECORDS);
  assert.equal(perl.length, 1);
  assert.notEqual(perl[0], 'pass');
});

test('dual signing: one t=, one bh=, one h= for both keys', () => {
  const fields = signatureFields(sign(MESSAGE, [rsa2048, ed], options('relaxed', 'relaxed')));
  const tag = (f: string, t: string) =>
    f
      .replace(/\r\n /g, '')
      .match(new RegExp(`[; ]${t}=([^;]*)`))?.[1]
      ?.replace(/ /g, '');
  for (const t of ['t', 'bh', 'h']) assert.equal(tag(fields[0]!, t), tag(fields[1]!, t), t);
  assert.ok(tag(fields[0]!, 'h')!.startsWith('From:From:To:To:'));
});

test('oversigning: h= lists From twice for one From, and absent Reply-To once', () => {
  const field = signatureFields(sign(MESSAGE, [rsa2048], options('relaxed', 'relaxed')))[0]!;
  const h = field
    .replace(/\r\n /g, '')
    .replace(/ /g, '')
    .match(/;h=([^;]*)/)![1];
  assert.equal(h, 'From:From:To:To:Subject:Subject:Date:Message-ID:MIME-Version:Content-Type:Content-Transfer-Encoding:Reply-To');
});

test('t= is signTime and x= is t + expiresInSeconds; l= only when asked', async () => {
  const signTime = new Date('2025-07-01T10:00:00.900Z');
  const opts = options('relaxed', 'relaxed', { signTime, expiresInSeconds: 3600 });
  const field = signatureFields(sign(MESSAGE, [rsa2048], opts))[0]!;
  assert.match(field, / t=1751364000;/);
  assert.match(field, / x=1751367600;/);
  assert.doesNotMatch(field, / l=/);
  // x= in the past: the verifiers would reject, so only check the shape there, and l= separately.
  const withL = sign(MESSAGE, [rsa2048], options('relaxed', 'relaxed', { bodyLength: true }));
  assert.match(signatureFields(withL)[0]!, / l=\d+;/);
  assert.deepEqual(await verifyWithDkimpy(withL, RECORDS), [true]);
});

test('a tampered body fails', async () => {
  for (const [h, b] of MODES) {
    const signed = sign(MESSAGE, [rsa2048, ed], options(h, b));
    const at = signed.indexOf('Tschüß');
    const tampered = Buffer.from(signed);
    tampered[at] = 'X'.charCodeAt(0);
    assert.deepEqual(await verifyWithDkimpy(tampered, RECORDS), [false, false], `${h}/${b}`);
    // mailauth reports a body hash mismatch as "neutral": anything but a pass will do.
    for (const r of await mailauthResults(tampered)) assert.notEqual(r, 'pass', `${h}/${b} mailauth`);
  }
});

function withExtraFrom(signed: Buffer): { top: Buffer; bottom: Buffer } {
  const text = signed.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return {
    top: Buffer.concat([Buffer.from('From: evil@example.net\r\n'), signed]),
    bottom: Buffer.from(text.slice(0, end) + '\r\nFrom: evil@example.net' + text.slice(end), 'latin1'),
  };
}

test('a second From added after signing fails when From is oversigned', async () => {
  const signed = sign(MESSAGE, [rsa2048, ed], options('relaxed', 'relaxed'));
  assert.deepEqual(await verifyWithDkimpy(signed, RECORDS), [true, true], 'the untampered control passes');
  // Prepended at the top and appended at the bottom of the header block: both must fail.
  for (const [where, tampered] of Object.entries(withExtraFrom(signed))) {
    assert.deepEqual(await verifyWithDkimpy(tampered, RECORDS), [false, false], `dkimpy, ${where}`);
    assert.deepEqual(await mailauthResults(tampered), ['fail', 'fail'], `mailauth, ${where}`);
    assert.equal((await verifyWithMailDkim(tampered, RECORDS))[0], 'fail', `Mail::DKIM, ${where}`);
  }
});

test('control: without oversigning, a From prepended at the top passes mailauth', async () => {
  // This is the attack oversigning prevents (h= takes From bottom-up, so the
  // new top one is unsigned). dkimpy alone would not show it: it always adds
  // one extra "from" to h= when verifying (its bug#644046 fix).
  const signed = sign(MESSAGE, [rsa2048], options('relaxed', 'relaxed', { oversign: [] }));
  const { top } = withExtraFrom(signed);
  assert.deepEqual(await mailauthResults(top), ['pass']);
  assert.deepEqual(await verifyWithMailDkim(top, RECORDS), ['pass']);
  assert.deepEqual(await verifyWithDkimpy(top, RECORDS), [false]);
});

test('a message without a body (no blank line) is signed and verifies', async () => {
  const message = Buffer.from('From: a@example.com\r\nSubject: no body\r\n');
  for (const [h, b] of MODES) {
    const signed = sign(message, [rsa2048, ed], options(h, b));
    assert.deepEqual(await verifyWithDkimpy(signed, RECORDS), [true, true], `${h}/${b} dkimpy`);
    assert.deepEqual(await mailauthResults(signed), ['pass', 'pass'], `${h}/${b} mailauth`);
  }
});

test('a 25 MB message is signed and verified by dkimpy', async () => {
  const line = 'Lorem ipsum  dolor sit amet,\tconsectetur adipiscing elit. 0123456789 \n';
  const body = line.repeat(Math.floor((25 * 1024 * 1024) / line.length));
  const message = toCrlf(Buffer.from(`From: a@example.com\nSubject: big\n\n${body}`));
  // Its speed is measured by `npm run bench`, not here.
  const signed = sign(message, [rsa2048], options('relaxed', 'relaxed'));
  // One key only: dkimpy needs about 4 s per signature on a body this size.
  assert.deepEqual(await verifyWithDkimpy(signed, RECORDS), [true]);
});

test('clear errors: no From, no keys, mismatched or weak key', () => {
  const opts = options('relaxed', 'relaxed');
  assert.throws(() => signMessage(Buffer.from('Subject: x\r\n\r\nbody\r\n'), [rsa2048.key], opts), /without a From header/);
  assert.throws(() => signMessage(MESSAGE, [], opts), /at least one key/);
  const wrong: ActiveKey = { ...ed.key, algorithm: 'rsa' };
  assert.throws(() => signMessage(MESSAGE, [wrong], opts), /declared rsa but is ed25519/);
  const weak = generateKeyPairSync('rsa', { modulusLength: 512 });
  assert.throws(() => signMessage(MESSAGE, [{ ...rsa2048.key, privateKey: weak.privateKey }], opts), /512 bits/);
  assert.throws(() => signMessage(MESSAGE, [{ ...rsa2048.key, privateKey: weak.publicKey }], opts), /not a private key/);
  assert.throws(() => signMessage(MESSAGE, [rsa2048.key], { ...opts, expiresInSeconds: 0 }), /expiresInSeconds/);
});
