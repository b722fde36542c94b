// Concurrent sessions per client address, shared by every listener (plain
// and implicit TLS), so one address cannot hold more than its share.
import type { SMTPServerSession } from 'smtp-server';

export class SessionsPerIp {
  private readonly limit: number;
  private readonly open = new Map<string, number>();
  private readonly admitted = new Set<string>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Counts the session in, or returns false when its address is at the limit. */
  admit(session: SMTPServerSession): boolean {
    const open = this.open.get(session.remoteAddress) ?? 0;
    if (open >= this.limit) return false;
    this.open.set(session.remoteAddress, open + 1);
    this.admitted.add(session.id);
    return true;
  }

  /** Counts a closed session out (sessions refused at admission were never counted). */
  release(session: SMTPServerSession): void {
    if (!this.admitted.delete(session.id)) return;
    const open = (this.open.get(session.remoteAddress) ?? 1) - 1;
    if (open > 0) this.open.set(session.remoteAddress, open);
    else this.open.delete(session.remoteAddress);
  }
}
