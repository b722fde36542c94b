// Third-party DKIM verifiers run as child processes, so tests check our
// signer against implementations that share no code with it.
//
// Both throw when the verifier cannot run or prints nothing parseable: a
// missing verifier must fail the test, never pass it.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HERE = import.meta.dirname;
const TIMEOUT_MS = 120_000;
const MAX_OUTPUT = 1024 * 1024;

/** DNS TXT records by name, e.g. "s1._domainkey.example.com" → "v=DKIM1; k=rsa; p=…". */
export type TxtRecords = Record<string, string>;

/** dkimpy (Debian python3-dkim): one boolean per DKIM-Signature, top to bottom. */
export async function verifyWithDkimpy(message: Buffer, records: TxtRecords): Promise<boolean[]> {
  return withTempDir(async (dir) => {
    const recordsFile = join(dir, 'records.json');
    await writeFile(recordsFile, JSON.stringify(records));
    // The message goes on stdin: argv cannot carry 25 MB.
    const out = await run('/usr/bin/python3', [join(HERE, 'dkimpy_verify.py'), recordsFile], message);
    return parseList(out, 'dkimpy', (v): v is boolean => typeof v === 'boolean');
  });
}

/**
 * Perl Mail::DKIM: one result per DKIM-Signature ("pass", "fail", "invalid",
 * ...). Debian 12's Mail::DKIM cannot verify Ed25519: those signatures come
 * out "invalid", so use it for RSA only.
 */
export async function verifyWithMailDkim(message: Buffer, records: TxtRecords): Promise<string[]> {
  return withTempDir(async (dir) => {
    const recordsFile = join(dir, 'records.json');
    const messageFile = join(dir, 'message.eml');
    await writeFile(recordsFile, JSON.stringify(records));
    await writeFile(messageFile, message);
    const out = await run('/usr/bin/perl', [join(HERE, 'maildkim_verify.pl'), recordsFile, messageFile]);
    return parseList(out, 'Mail::DKIM', (v): v is string => typeof v === 'string');
  });
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'dkim-verify-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function run(file: string, args: string[], stdin?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: TIMEOUT_MS, maxBuffer: MAX_OUTPUT, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args[0] ?? ''} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    // An early exit closes stdin; the callback above reports why.
    child.stdin?.on('error', () => {});
    child.stdin?.end(stdin ?? Buffer.alloc(0));
  });
}

function parseList<T>(out: string, who: string, isItem: (v: unknown) => v is T): T[] {
  let value: unknown;
  try {
    value = JSON.parse(out.trim().split('\n').pop() ?? '');
  } catch {
    throw new Error(`${who} printed no result: ${JSON.stringify(out.slice(0, 200))}`);
  }
  if (!Array.isArray(value) || !value.every(isItem)) throw new Error(`${who} printed an unexpected result: ${out}`);
  return value;
}
