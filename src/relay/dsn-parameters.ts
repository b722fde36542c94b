// RFC 3461 parameters of MAIL FROM and RCPT TO, after smtp-server has decoded
// their xtext and checked NOTIFY's keywords and RET's value: what it leaves
// to us is the lengths and characters the RFC sets, since these values are
// stored and later written into a notice.

/** Why the parameters cannot be taken, or null. Names are matched in any case. */
export function dsnProblem(args: Record<string, unknown>): string | null {
  for (const [name, value] of Object.entries(args)) {
    const key = name.toUpperCase();
    if (key === 'RET' && !(typeof value === 'string' && /^(FULL|HDRS)$/i.test(value))) return 'RET must be FULL or HDRS (RFC 3461 §4.3)';
    if (key === 'ENVID') {
      // RFC 3461 §4.4: at most 100 characters, printable ASCII once decoded.
      if (typeof value !== 'string' || value === '' || value.length > 100 || !/^[\x21-\x7e]+$/.test(value)) {
        return 'ENVID must be 1 to 100 printable ASCII characters (RFC 3461 §4.4)';
      }
    }
    if (key === 'ORCPT') {
      // RFC 3461 §4.2: addr-type ";" address, at most 500 characters.
      if (typeof value !== 'string' || value.length > 500 || !/^[A-Za-z0-9-]+;[^\x00-\x1f\x7f]+$/.test(value)) {
        return 'ORCPT must be addr-type;address, at most 500 characters (RFC 3461 §4.2)';
      }
    }
    if (key === 'NOTIFY') {
      const values = typeof value === 'string' ? value.toUpperCase().split(',') : [];
      const known = values.length > 0 && values.every((v) => ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'].includes(v));
      if (!known || (values.includes('NEVER') && values.length > 1)) return 'NOTIFY must be NEVER, or some of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1)';
    }
  }
  return null;
}
