// Asks the smart host what it takes: connect, EHLO, STARTTLS when offered or
// required (the EHLO after STARTTLS is the one that counts, RFC 3207 §4.2),
// read the extensions, QUIT. No login, no mail.
import type { ConnectionOptions } from 'node:tls';
import { announcedExtensions, SMTPConnection } from '../smtp/nodemailer-internals.ts';

export interface ProbeTarget {
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  name?: string;
  tls: ConnectionOptions;
  timeoutMs: number;
}

/** The EHLO keywords the upstream announced; rejects with nodemailer's error when it could not tell. */
export function probeExtensions(target: ProbeTarget): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const connection = new SMTPConnection({
      host: target.host,
      port: target.port,
      secure: target.secure,
      requireTLS: target.requireTLS,
      name: target.name,
      tls: target.tls,
      connectionTimeout: target.timeoutMs,
      greetingTimeout: target.timeoutMs,
      socketTimeout: target.timeoutMs,
      logger: false,
    });
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      connection.close();
      reject(err);
    };
    connection.on('error', fail);
    connection.connect((err) => {
      if (err) return fail(err);
      if (settled) return;
      settled = true;
      const extensions = announcedExtensions(connection);
      connection.quit();
      resolve(extensions);
    });
  });
}
