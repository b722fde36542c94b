// reports.imap.passwordFile: read by the report poller at each connection,
// and checked with the other files the configuration names (file-check.ts).
import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../common/errors.ts';

/** The password from reports.imap.passwordFile, which no one but its owner may read. */
export function readPasswordFile(file: string, what = 'reports.imap.passwordFile'): string {
  const where = `${what} ${file}`;
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode & 0o777;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(
      `${where} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      `write the IMAP password into it and run: chmod 600 ${file}`,
    );
  }
  if (mode & 0o077)
    throw new UserError(
      `${where} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
      `run: chmod 600 ${file} — and change the IMAP password if others could read it`,
    );
  const password = text.split('\n')[0]!.replace(/\r$/, '');
  if (password === '') throw new UserError(`${where} is empty`, 'write the IMAP password on its first line');
  return password;
}
