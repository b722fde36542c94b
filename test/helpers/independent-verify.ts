// Third-party DKIM verifiers run as child processes, so tests check our
// signer against implementations that share no code with it.
//
// Both throw when the verifier cannot run or prints nothing parseable: a
// missing verifier must fail the test, never pass it.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseList, parseVerdicts, run, withTempDir } from './verifier-process.ts';

const HERE = import.meta.dirname;

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
    return parseVerdicts(out, 'Mail::DKIM').map((v) => v.result);
  });
}
