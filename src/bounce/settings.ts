// The bounce settings as a notice needs them, with run-time defaults.
import type { Config } from '../config/schema.ts';

/** bounce.from, else mailer-daemon (the customary sender name of notices) at our own host name. */
export function bounceFromAddress(bounce: Config['bounce'], hostname: string): string {
  return bounce.from ?? `mailer-daemon@${hostname.replace(/\.$/, '')}`;
}
