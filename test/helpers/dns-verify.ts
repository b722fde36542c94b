// Third-party DKIM verifiers that fetch keys over real DNS (UDP) from a
// nameserver given as "127.0.0.1:PORT" — e.g. the loopback server of
// dns-server.ts loaded from the zone the CLI prints (zone.ts). This checks
// what the records table of independent-verify.ts cannot: that the record
// as published, split into character-strings, is the key receivers get.
//
// Both throw when the verifier cannot run or prints nothing parseable: a
// missing verifier must fail the test, never pass it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseVerdicts, run, withTempDir, type SignatureVerdict } from './verifier-process.ts';

export type { SignatureVerdict };

const HERE = import.meta.dirname;

/**
 * A key lookup that timed out proves nothing about the signature: on a busy
 * machine even the loopback server can be late. Such a run is repeated (at
 * most three runs); a signature that fails is never retried.
 */
async function untilKeysArrive(verify: () => Promise<SignatureVerdict[]>): Promise<SignatureVerdict[]> {
  let verdicts = await verify();
  for (let run = 1; run < 3 && verdicts.some((v) => v.result === 'temperror'); run++) verdicts = await verify();
  return verdicts;
}

/**
 * dkimpy (Debian python3-dkim) with a dnsfunc that asks `nameserver` through
 * dnspython: one verdict per DKIM-Signature, top to bottom. A message dkimpy
 * cannot parse gives "error" for each signature in it.
 */
export async function verifyWithDkimpyDns(message: Buffer, nameserver: string): Promise<SignatureVerdict[]> {
  // The message goes on stdin: argv cannot carry 25 MB.
  return untilKeysArrive(async () => parseVerdicts(await run('/usr/bin/python3', [join(HERE, 'dkimpy_dns_verify.py'), nameserver], message), 'dkimpy'));
}

/**
 * Perl Mail::DKIM with Mail::DKIM::DNS::resolver set to a Net::DNS resolver
 * for `nameserver`. Debian 12's Mail::DKIM cannot verify Ed25519 (those come
 * out "invalid"): use it for RSA signatures.
 */
export async function verifyWithMailDkimDns(message: Buffer, nameserver: string): Promise<SignatureVerdict[]> {
  return withTempDir(async (dir) => {
    const file = join(dir, 'message.eml');
    await writeFile(file, message);
    return untilKeysArrive(async () => parseVerdicts(await run('/usr/bin/perl', [join(HERE, 'maildkim_verify.pl'), `dns:${nameserver}`, file]), 'Mail::DKIM'));
  });
}
