// A disk that cannot take mail now (full, read-only, no permission), told
// apart from a bug: the listener answers 452 4.3.1 and the client retries.
/** What a disk full or an unwritable spool means; the listener answers 452 4.3.1 (RFC 3463: mail system full). */
export class SpoolUnavailableError extends Error {
  readonly reason: 'full' | 'unwritable';
  /** The errno (ENOSPC, EROFS, …) or SQLite code that caused it. */
  readonly code: string;
  constructor(reason: 'full' | 'unwritable', code: string, detail: string) {
    super(reason === 'full' ? `spool disk is full (${code}): ${detail}` : `spool is not writable (${code}): ${detail}`);
    this.name = 'SpoolUnavailableError';
    this.reason = reason;
    this.code = code;
  }
}

/** Which failures mean the spool cannot take mail now, rather than a bug. */
function unavailability(code: string): 'full' | 'unwritable' | undefined {
  if (code === 'ENOSPC' || code === 'EDQUOT' || code.startsWith('SQLITE_FULL')) return 'full';
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM' || /^SQLITE_(READONLY|CANTOPEN|IOERR)/.test(code)) return 'unwritable';
  return undefined;
}

/** Turns a disk-full or permission error into SpoolUnavailableError; other errors pass through. */
export function spoolError(err: unknown): unknown {
  if (err instanceof SpoolUnavailableError) return err;
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  const reason = unavailability(code);
  return reason ? new SpoolUnavailableError(reason, code, err instanceof Error ? err.message : String(err)) : err;
}
