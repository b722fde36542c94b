// `sign` and `verify` as scripts use them: stdin in, stdout out, exit status
// 0 (good), 1 (a check failed), 2 (usage); signatures checked by dkimpy too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { before, describe, test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { BIN, CLI_TIMEOUT_MS, dkimRelay, NODE } from './support.ts';

function withStdin(args: string[], cwd: string, input: string | Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME };
    const child = execFile(NODE, [BIN, ...args], { cwd, env, encoding: 'buffer', timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr: stderr.toString() });
    });
    child.stdin!.end(input);
  });
}

const MESSAGE = 'From: Payroll <payroll@example.com>\r\nTo: a@example.net\r\nSubject: payslip\r\n\r\nHello\r\n';

describe('sign and verify from the command line', () => {
  const dir = tempDir();
  let records: Record<string, string> = {};
  let signed: Buffer;

  before(async () => {
    assert.equal((await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--activate'], dir)).code, 0);
    assert.equal((await dkimRelay(['keys', 'generate', '--domain', 'example.com', '--algorithm', 'ed25519', '--activate'], dir)).code, 0);
    const dns = await dkimRelay(['keys', 'dns', '--json'], dir);
    records = Object.fromEntries((JSON.parse(dns.stdout) as { name: string; value: string }[]).map((r) => [r.name, r.value]));
  });

  test('sign: exit 0, two signatures on stdout that dkimpy verifies', async () => {
    const run = await withStdin(['sign'], dir, MESSAGE);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^signed d=example\.com s=\w+ a=rsa-sha256, d=example\.com s=\w+ a=ed25519-sha256; self-check pass/);
    signed = run.stdout;
    assert.deepEqual(await verifyWithDkimpy(signed, records), [true, true]);
  });

  test('verify: exit 0 and one pass line per signature', async () => {
    const run = await withStdin(['verify'], dir, signed);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.toString().trim().split('\n');
    assert.equal(lines.length, 2);
    for (const line of lines) assert.match(line, /^pass d=example\.com s=\w+ a=(rsa|ed25519)-sha256 aligned with From: example\.com$/);
  });

  test('verify --json: the result as an object', async () => {
    const run = await withStdin(['verify', '--json'], dir, signed);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout.toString()) as { fromDomains: string[]; signatures: { result: string; domain: string; aligned: boolean }[] };
    assert.deepEqual(result.fromDomains, ['example.com']);
    assert.deepEqual(
      result.signatures.map((s) => [s.result, s.domain, s.aligned]),
      [
        ['pass', 'example.com', true],
        ['pass', 'example.com', true],
      ],
    );
  });

  test('sign --json is refused with one usage line, the message untouched', async () => {
    const run = await withStdin(['sign', '--json'], dir, MESSAGE);
    assert.equal(run.code, 2);
    assert.equal(run.stdout.length, 0);
    assert.equal(run.stderr, 'dkim-relay: sign has no --json output — see dkim-relay sign --help\n');
  });

  test('verify: a changed body fails with exit 1', async () => {
    const run = await withStdin(['verify'], dir, Buffer.from(signed.toString('latin1').replace('Hello', 'Jello'), 'latin1'));
    assert.equal(run.code, 1);
    assert.match(run.stdout.toString(), /^fail d=example\.com/m);
  });

  test('verify: a selector the key store lacks is said to be missing from the store, not from DNS', async () => {
    const other = Buffer.from(signed.toString('latin1').replace(/\bs=(\w+); /, 's=elsewhere; '), 'latin1');
    const run = await withStdin(['verify'], dir, other);
    assert.equal(run.code, 1);
    assert.match(
      run.stdout.toString(),
      /^permerror d=example\.com s=elsewhere .*: no key elsewhere of example\.com in the key store \(--dns looks it up in DNS/m,
    );
  });

  test('verify --nameserver without --dns is a usage error, not silently the key store', async () => {
    const run = await withStdin(['verify', '--nameserver', '127.0.0.1'], dir, signed);
    assert.equal(run.code, 2, run.stdout.toString());
    assert.match(run.stderr, /nameserver -> dns — see dkim-relay verify --help/);
  });

  test('verify: an unsigned message exits 1', async () => {
    const run = await withStdin(['verify'], dir, MESSAGE);
    assert.equal(run.code, 1);
    assert.match(run.stdout.toString(), /^none: the message carries no DKIM signature/);
  });

  test('sign: a From: domain without a key writes the message unsigned and exits 1', async () => {
    const run = await withStdin(['sign'], dir, MESSAGE.replace('payroll@example.com', 'x@other.test'));
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^dkim-relay: not signed: no active DKIM key for other\.test/);
    assert.match(run.stdout.toString(), /^From: Payroll <x@other\.test>/);
  });

  test("sign: no From: exits 1 with the relay's reply", async () => {
    const run = await withStdin(['sign'], dir, 'To: a@example.net\r\n\r\nx\r\n');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /not signed: 550 5\.6\.0 Cannot sign: the message has no From: header/);
    assert.equal(run.stdout.length, 0);
  });

  test('sign --domain that does not align with From: fails the self-check, exit 1', async () => {
    const run = await withStdin(['sign', '--domain', 'example.com'], dir, MESSAGE.replace('payroll@example.com', 'x@other.test'));
    assert.equal(run.code, 1);
    assert.match(run.stderr, /DKIM self-check failed .*not aligned/);
  });
});
