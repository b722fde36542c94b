// OpenDKIM (Debian `opendkim`) as a third verifier that fetches keys over
// real DNS: `opendkim -t FILE` verifies a message with the filter's own
// library and configuration, and its resolver (libunbound) is pointed at the
// test's authoritative server by an Unbound stub zone for each domain.
//
// OpenDKIM reports one signature per message (the one it chose), so each
// DKIM-Signature is verified in a copy of the message that carries it alone.
// A missing verifier or an answer it cannot give fails the test, never passes it.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withTempDir, type SignatureVerdict } from './verifier-process.ts';

const OPENDKIM = '/usr/sbin/opendkim';

/** One verdict per DKIM-Signature of `message`, top to bottom; `domains` are the zones `nameserver` ("HOST:PORT") serves. */
export async function verifyWithOpenDkimDns(message: Buffer, nameserver: string, domains: readonly string[]): Promise<SignatureVerdict[]> {
  const [host, port] = nameserver.split(':');
  return withTempDir(async (dir) => {
    const unbound = join(dir, 'unbound.conf');
    await writeFile(
      unbound,
      [
        'server:',
        '    do-not-query-localhost: no',
        // Unbound answers special-use names (RFC 6761: .test, .example, …) itself unless told otherwise.
        ...domains.map((d) => `    local-zone: "${d}." transparent`),
        ...domains.flatMap((d) => ['stub-zone:', `    name: "${d}"`, `    stub-addr: ${host}@${port}`]),
        '',
      ].join('\n'),
    );
    const conf = join(dir, 'opendkim.conf');
    await writeFile(conf, `Mode v\nSyslog no\nResolverConfiguration ${unbound}\n`);
    const verdicts: SignatureVerdict[] = [];
    for (const [i, alone] of eachSignatureAlone(message).entries()) {
      const file = join(dir, `message-${i}.eml`);
      await writeFile(file, alone);
      verdicts.push(verdictOf(await opendkim(['-x', conf, '-t', file])));
    }
    return verdicts;
  });
}

/** "…: verification (s=S, d=D, 2048-bit key) succeeded" or "… failed: why"; anything else is an error. */
function verdictOf(out: string): SignatureVerdict {
  const line = out.split('\n').find((l) => l.includes(': verification ('));
  if (!line) throw new Error(`opendkim printed no verification result: ${JSON.stringify(out.slice(0, 300))}`);
  const domain = /\bd=([^,\s)]+)/.exec(line)?.[1] ?? '';
  if (/\) succeeded$/.test(line)) return { result: 'pass', detail: '', domain, algorithm: '' };
  return { result: 'fail', detail: line.slice(line.indexOf('failed') + 'failed'.length).replace(/^: /, ''), domain, algorithm: '' };
}

function opendkim(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(OPENDKIM, args, { timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`opendkim ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

/** Copies of the message, each with one of its DKIM-Signature fields (folded lines included) and no other. */
function eachSignatureAlone(message: Buffer): Buffer[] {
  const text = message.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const fields = text.slice(0, end + 2).match(/[^\r\n]+\r\n(?:[ \t][^\r\n]*\r\n)*/g) ?? [];
  const isSignature = (f: string) => /^dkim-signature[ \t]*:/i.test(f);
  const body = text.slice(end + 2);
  return fields.filter(isSignature).map((signature) => Buffer.from(fields.filter((f) => !isSignature(f) || f === signature).join('') + body, 'latin1'));
}
