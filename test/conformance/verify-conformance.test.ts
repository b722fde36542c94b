// `verify` against other implementations' published suites, with every key
// record served by a real DNS server (Knot): each message's verdict must be
// the suite's, or a deliberate difference listed once below with its RFC
// reason. Plus the strictness cases no old suite has, signed by dkimpy here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dkimSign } from 'mailauth';
import { mailauthResolver } from '../../src/dns/resolver.ts';
import { messageProblem, verifyMessage, type Verification } from '../../src/signing/verify.ts';
import { BIN, NODE } from '../cli/support.ts';
import { startKnot, type Knot } from '../helpers/knot.ts';
import { tempDir } from '../helpers/tmp.ts';
import { DKIMPY, HERE, MAIL_DKIM, readCase, suiteRecords, type Expected } from './suite.ts';
import { skipWithout } from '../helpers/tools.ts';

// Where this verifier knowingly differs from an older suite, and why. Each reason once.
const PRE_STANDARD =
  'RFC 6376 §3.5: v=1 is required and anything else is PERMFAIL (incompatible version); these signatures follow pre-standard drafts (no v=, or v=0.5)';
const RSA_SHA1 =
  'RFC 8301 §3.1: rsa-sha1 MUST NOT be used for verifying (the suite predates it), and that is reported before the problem the message was made to show';
const DOMAINKEYS = 'RFC 4870 DomainKeys is historic (RFC 6376 obsoletes it): a DomainKey-Signature is not a DKIM signature, so the message is unsigned';
const CHECK_ORDER =
  'the suite altered the body of these key-error messages; this verifier compares the body hash before it looks up the key (both are PERMFAIL under RFC 6376 §6.1) and reports the altered body';

const DIFFERENCES: Record<string, { ours: Expected; why: string }> = {};
const differ = (why: string, ours: Expected, ...files: string[]) => {
  for (const file of files) DIFFERENCES[file] = { ours, why };
};
differ(
  PRE_STANDARD,
  'invalid',
  'mine_ietf01_1.txt',
  'mine_ietf01_2.txt',
  'mine_ietf01_3.txt',
  'mine_ietf01_4.txt',
  'mine_ietf05_1.txt',
  'good_ietf01_1.txt',
  'good_ietf01_2.txt',
  'multiple_1.txt',
  'bad_ietf01_1.txt',
  'bad_ietf01_2.txt',
  'bad_ietf01_3.txt',
  'bad_1.txt',
  'no_body_1.txt',
  'no_body_2.txt',
  'no_body_3.txt',
);
differ(
  RSA_SHA1,
  'fail',
  'good_rfc4871_3.txt',
  'good_rfc4871_4.txt',
  'good_1878523.txt',
  'good_83176.txt',
  'multiple_2.txt',
  'good_qp_1.txt',
  'good_qp_2.txt',
  'good_qp_3.txt',
  'goodkey_1.txt',
  'goodkey_2.txt',
  'goodkey_3.txt',
  'goodkey_4.txt',
  'ignore_7.txt',
  'badkey_8.txt',
  'badkey_9.txt',
  'badkey_10.txt',
  'badkey_12.txt',
  'badkey_13.txt',
);
differ(
  DOMAINKEYS,
  'none',
  'good_dk_gmail.txt',
  'good_dk_yahoo.txt',
  'good_dk_1.txt',
  'good_dk_2.txt',
  'good_dk_3.txt',
  'good_dk_4.txt',
  'good_dk_5.txt',
  'good_dk_6.txt',
  'good_dk_7.txt',
  'dk_headers_1.txt',
  'dk_headers_2.txt',
  'bad_dk_1.txt',
  'bad_dk_2.txt',
  'bad_dk_4.txt',
  'bad_dk_5.txt',
  'dk_multiple_1.txt',
);
differ(CHECK_ORDER, 'fail', 'badkey_14.txt', 'badkey_15.txt', 'badkey1_ed25519.txt', 'badkey4_ed25519.txt', 'badkey5_ed25519.txt');

/** A receiver's reading of a message: the best of its signatures (RFC 6376 §6.1: any valid signature will do). */
function bestVerdict(v: Verification): Expected {
  if (messageProblem(v) !== undefined) return 'fail';
  const results = v.signatures.map((s) => s.result);
  if (results.length === 0) return 'none';
  if (results.includes('pass')) return 'pass';
  if (results.includes('fail')) return 'fail';
  return 'invalid';
}

function zones(): Record<string, string> {
  const { txt, failing } = suiteRecords();
  const byZone = new Map<string, string[]>();
  for (const [name, value] of txt) {
    const zone = name.slice(name.indexOf('._domainkey.') + '._domainkey.'.length);
    const strings = value === '' ? ['""'] : (value.match(/[\s\S]{1,255}/g) ?? []).map((s) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
    byZone.set(zone, [...(byZone.get(zone) ?? []), `${name}. 60 IN TXT ( ${strings.join(' ')} )`]);
  }
  const out: Record<string, string> = {};
  for (const [zone, records] of byZone) {
    out[zone] = [
      `$ORIGIN ${zone}.`,
      `@ 60 IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 60`,
      `@ 60 IN NS ns.${zone}.`,
      'ns 60 IN A 127.0.0.1',
      ...records,
      '',
    ].join('\n');
  }
  // The suite's "query timed out" and "SERVFAIL" names: zones that do not load, which Knot answers with SERVFAIL.
  for (const name of failing) out[name.slice(name.indexOf('._domainkey.') + '._domainkey.'.length)] = 'this is not a zone file\n';
  return out;
}

describe('verify against published suites, keys served by Knot', { skip: skipWithout('knotd', 'knotc') }, () => {
  let knot: Knot;
  before(async () => {
    knot = await startKnot(zones());
  });
  after(async () => {
    await knot?.stop();
  });

  test("every message of Mail::DKIM t/corpus and dkimpy gets its suite's verdict or a listed difference", async () => {
    const resolver = mailauthResolver(knot.address);
    const wrong: string[] = [];
    const cases = [...MAIL_DKIM.map((c) => ({ ...c, suite: 'mail-dkim' as const })), ...DKIMPY.map((c) => ({ ...c, suite: 'dkimpy' as const }))];
    for (const c of cases) {
      const verification = await verifyMessage(readCase(c.suite, c.file), resolver);
      const ours = bestVerdict(verification);
      const want = DIFFERENCES[c.file]?.ours ?? c.expected;
      if (ours !== want)
        wrong.push(
          `${c.file} (${c.about || c.expected}): ${ours}, want ${want}: ${verification.signatures.map((s) => `${s.result}/${s.reason}: ${s.comment}`).join(' | ')}`,
        );
      // Reasons are sentences, never a library's raw error string.
      for (const s of verification.signatures) assert.doesNotMatch(s.comment, /routines|error:[0-9a-f]{8}|DECODER|ERR_/i, `${c.file}: ${s.comment}`);
    }
    assert.deepEqual(wrong, []);
    assert.equal(cases.length, 74);
  });

  test('each listed difference is still a difference', () => {
    for (const [file, { ours }] of Object.entries(DIFFERENCES)) {
      const c = MAIL_DKIM.find((m) => m.file === file);
      assert.ok(c, `${file} is in the suite`);
      assert.notEqual(c.expected, ours, `${file}: the suite agrees now; drop it from the differences`);
    }
  });

  test('the reasons name what is wrong: rsa-sha1, v=, a=, q=, the key record h=', async () => {
    const resolver = mailauthResolver(knot.address);
    const reason = async (file: string) => (await verifyMessage(readCase('mail-dkim', file), resolver)).signatures.map((s) => `${s.result}/${s.reason}`);
    assert.deepEqual(await reason('good_1878523.txt'), ['fail/rsa-sha1']);
    assert.deepEqual(await reason('mine_ietf01_3.txt'), ['permerror/missing-tag']);
    assert.deepEqual(await reason('no_body_1.txt'), ['permerror/version']);
    assert.deepEqual(await reason('ignore_1.txt'), ['permerror/version']);
    assert.deepEqual(await reason('ignore_2.txt'), ['neutral/algorithm']);
    assert.deepEqual(await reason('ignore_5.txt'), ['permerror/query-method']);
    assert.deepEqual(await reason('ignore_7.txt'), ['fail/rsa-sha1']);
    assert.deepEqual(await reason('badkey_1.txt'), ['permerror/version']);
    assert.deepEqual(await reason('badkey_11.txt'), ['permerror/key-record']);
    assert.deepEqual(await reason('goodkey_ed25519.txt'), ['pass/pass']);
    assert.deepEqual(await reason('badkey3_ed25519.txt'), ['fail/body-hash']);
  });
});

/** dkimpy signs here: a fresh RSA-2048 key, our own zone, the cases the old suites lack. */
describe('strictness cases signed by dkimpy, keys served by Knot', { skip: skipWithout('knotd', 'knotc', 'dkimpy') }, () => {
  const dir = tempDir('dkim-relay-conformance-');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');
  const short = generateKeyPairSync('rsa', { modulusLength: 768 });
  const rsaKey = join(dir, 'rsa.pem');
  writeFileSync(rsaKey, rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const p = (key: typeof rsa.publicKey) => key.export({ type: 'spki', format: 'der' }).toString('base64');
  const zone = 'strict.example';
  const record = (value: string) => `( ${(value.match(/.{1,255}/g) ?? []).map((s) => `"${s}"`).join(' ')} )`;
  let knot: Knot;
  const message = Buffer.from(
    [
      'From: Payroll <payroll@strict.example>',
      'To: a@example.net',
      'Subject: Pay slip',
      'Date: Mon, 07 Dec 2026 09:00:00 +0000',
      'Message-ID: <1@strict.example>',
      '',
      'Your pay slip is attached.',
      '',
    ].join('\r\n'),
  );

  before(async () => {
    knot = await startKnot({
      [zone]: [
        `$ORIGIN ${zone}.`,
        `@ 60 IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 60`,
        `@ 60 IN NS ns.${zone}.`,
        'ns 60 IN A 127.0.0.1',
        `rsa._domainkey 60 IN TXT ${record(`v=DKIM1; k=rsa; p=${p(rsa.publicKey)}`)}`,
        `strict._domainkey 60 IN TXT ${record(`v=DKIM1; k=rsa; t=s; p=${p(rsa.publicKey)}`)}`,
        `mismatch._domainkey 60 IN TXT ${record(`v=DKIM1; k=ed25519; p=${p(ed.publicKey).slice(-44)}`)}`,
        'revoked._domainkey 60 IN TXT "v=DKIM1; k=rsa; p="',
        `short._domainkey 60 IN TXT ${record(`v=DKIM1; k=rsa; p=${p(short.publicKey)}`)}`,
        '',
      ].join('\n'),
      // A zone that does not load: Knot answers SERVFAIL for it.
      'broken.example': 'this is not a zone file\n',
    });
  });
  after(async () => {
    await knot?.stop();
  });

  async function signed(selector: string, options: { algorithm?: string; identity?: string } = {}): Promise<Buffer> {
    const script = join(HERE, 'dkimpy_sign.py');
    return new Promise((resolve, reject) => {
      const child = execFile(
        '/usr/bin/python3',
        [script, rsaKey, zone, selector, options.algorithm ?? 'rsa-sha256', options.identity ?? ''],
        { encoding: 'buffer' },
        (err, stdout, stderr) => (err ? reject(new Error(`dkimpy could not sign: ${stderr.toString()}`)) : resolve(Buffer.concat([stdout, message]))),
      );
      child.stdin!.end(message);
    });
  }
  const verify = async (m: Buffer) => verifyMessage(m, mailauthResolver(knot.address));

  test('control: a dkimpy rsa-sha256 signature passes', async () => {
    assert.deepEqual(
      (await verify(await signed('rsa'))).signatures.map((s) => s.result),
      ['pass'],
    );
  });

  test('rsa-sha1 fails with RFC 8301 named', async () => {
    const [s] = (await verify(await signed('rsa', { algorithm: 'rsa-sha1' }))).signatures;
    assert.equal(s!.result, 'fail');
    assert.match(s!.comment, /rsa-sha1 .*RFC 8301/);
  });

  test('no v= tag, and v=0.5: permerror', async () => {
    const good = (await signed('rsa')).toString('latin1');
    for (const [text, want] of [
      [good.replace('v=1; ', ''), /no v= tag/],
      [good.replace('v=1; ', 'v=0.5; '), /v=0\.5: the only DKIM version is v=1/],
    ] as const) {
      const [s] = (await verify(Buffer.from(text, 'latin1'))).signatures;
      assert.equal(s!.result, 'permerror');
      assert.match(s!.comment, want);
    }
  });

  test('key t=s and i= in a subdomain: fail', async () => {
    const [s] = (await verify(await signed('strict', { identity: '@mail.strict.example' }))).signatures;
    assert.equal(s!.result, 'fail');
    assert.match(s!.comment, /t=s/);
  });

  test('an RSA signature whose key record is Ed25519: permerror in a sentence, no library error string', async () => {
    const [s] = (await verify(await signed('mismatch'))).signatures;
    assert.equal(s!.result, 'permerror');
    assert.equal(s!.reason, 'key-type');
  });

  /** Signed by mailauth's signer (independent of ours), for what dkimpy cannot write: x=, a short key, another domain. */
  async function mailauthSigned(options: { selector: string; domain?: string; key?: string; expires?: Date; signTime?: Date }): Promise<Buffer> {
    const { signatures } = await dkimSign(message, {
      signTime: options.signTime ?? new Date(),
      expires: options.expires,
      signatureData: [
        {
          signingDomain: options.domain ?? zone,
          selector: options.selector,
          privateKey: options.key ?? rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        },
      ],
    } as unknown as Parameters<typeof dkimSign>[1]);
    return Buffer.concat([Buffer.from(signatures), message]);
  }

  test('x= in the past: fail, expired', async () => {
    const [s] = (await verify(await mailauthSigned({ selector: 'rsa', signTime: new Date(Date.now() - 2 * 86400e3), expires: new Date(Date.now() - 86400e3) })))
      .signatures;
    assert.deepEqual([s!.result, s!.reason], ['fail', 'expired']);
  });

  test('a 768-bit key: fail, RFC 8301 named', async () => {
    const [s] = (await verify(await mailauthSigned({ selector: 'short', key: short.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() })))
      .signatures;
    assert.deepEqual([s!.result, s!.reason], ['fail', 'weak-key']);
    assert.match(s!.comment, /1024 bits.*RFC 8301/);
  });

  test('no key record at the selector: permerror, no key', async () => {
    const [s] = (await verify(await mailauthSigned({ selector: 'absent' }))).signatures;
    assert.deepEqual([s!.result, s!.reason], ['permerror', 'no-key']);
    assert.match(s!.comment, /no key record at absent\._domainkey\.strict\.example/);
  });

  test('a revoked key (empty p=): permerror, revoked', async () => {
    const [s] = (await verify(await mailauthSigned({ selector: 'revoked' }))).signatures;
    assert.deepEqual([s!.result, s!.reason], ['permerror', 'revoked']);
  });

  test('a key record that cannot be looked up (SERVFAIL): temperror naming the record', async () => {
    const [s] = (await verify(await mailauthSigned({ selector: 'rsa', domain: 'broken.example' }))).signatures;
    assert.deepEqual([s!.result, s!.reason], ['temperror', 'dns']);
    assert.match(s!.comment, /rsa\._domainkey\.broken\.example/);
  });

  test('a From: added after signing fails verify with exit 1, saying which From: h= covers', async () => {
    const good = await signed('rsa');
    const text = good.toString('latin1');
    const at = text.indexOf('From: Payroll');
    const forged = Buffer.from(`${text.slice(0, at)}From: CEO <ceo@strict.example>\r\n${text.slice(at)}`, 'latin1');
    const v = await verify(forged);
    assert.equal(v.fromFields, 2);
    // dkimpy lists From once in h=: the bottom one is covered, the one added on top is not.
    assert.deepEqual(v.signatures[0]!.fromCovered, [false, true]);
    assert.match(messageProblem(v)!, /2 From: fields.*"CEO <ceo@strict\.example>"/);

    const cwd = tempDir('dkim-relay-verify-cli-');
    const run = await dkimRelayWithStdin(['verify', '--dns', '--nameserver', knot.address], cwd, forged);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /^fail: the message has 2 From: fields/m);
    const json = JSON.parse((await dkimRelayWithStdin(['verify', '--json', '--dns', '--nameserver', knot.address], cwd, forged)).stdout) as {
      verdict: string;
      signatures: { result: string; reason: string; domain: string; selector: string; algorithm: string; signedHeaders: string[]; fromCovered: boolean[] }[];
    };
    assert.equal(json.verdict, 'fail');
    assert.deepEqual(
      json.signatures.map((s) => [s.result, s.domain, s.selector, s.algorithm, s.signedHeaders.includes('from'), s.fromCovered]),
      [['pass', zone, 'rsa', 'rsa-sha256', true, [false, true]]],
    );
  });

  test('a message whose only signature is malformed is reported, not called unsigned', async () => {
    const text = (await signed('rsa')).toString('latin1').replace(/ d=strict\.example;/, '');
    const cwd = tempDir('dkim-relay-verify-cli-');
    const run = await dkimRelayWithStdin(['verify', '--dns', '--nameserver', knot.address], cwd, Buffer.from(text, 'latin1'));
    assert.equal(run.code, 1);
    assert.doesNotMatch(run.stdout, /carries no DKIM signature/);
    assert.match(run.stdout, /^(permerror|neutral) d=\(none\) s=rsa a=rsa-sha256 .*: the signature has no d= tag/m);
  });
});

function dkimRelayWithStdin(args: string[], cwd: string, input: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      NODE,
      [BIN, ...args],
      { cwd, env: { PATH: process.env.PATH, HOME: process.env.HOME }, encoding: 'utf8', timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: child.exitCode, stdout, stderr });
      },
    );
    child.stdin!.end(input);
  });
}
