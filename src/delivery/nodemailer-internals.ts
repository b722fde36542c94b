// The one place that reaches into nodemailer beyond its documented transport
// API: its SMTP client class, and the EHLO extensions it parsed (a private
// field). An upgrade of nodemailer that moves these breaks only this file.
import type { Transporter } from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';

export { SMTPConnection };

interface WithExtensions {
  /** Filled from the last EHLO reply (after STARTTLS, when TLS was started). */
  _supportedExtensions?: string[];
}

interface PoolResource {
  connection?: SMTPConnection;
  _connected?: boolean;
}

/** The extensions (8BITMIME, SMTPUTF8, …) a connected SMTPConnection saw announced. */
export function announcedExtensions(connection: SMTPConnection): string[] {
  return [...((connection as unknown as WithExtensions)._supportedExtensions ?? [])];
}

/** The established connections of a pooled transport. */
export function pooledConnections(transport: Transporter): SMTPConnection[] {
  const pool = (transport as unknown as { transporter?: { _connections?: PoolResource[] } }).transporter;
  return (pool?._connections ?? []).filter((r) => r._connected && r.connection).map((r) => r.connection!);
}
