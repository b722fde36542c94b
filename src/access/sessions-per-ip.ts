// Concurrent connections per client address, shared by every listener (plain
// and implicit TLS), so one address cannot hold more than its share. A
// connection counts from the moment it is accepted, TLS handshake included.
export class SessionsPerIp {
  private readonly limit: number;
  private readonly open = new Map<string, number>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Counts a connection in and returns its release (idempotent), or null when its address is at the limit. */
  admit(address: string): (() => void) | null {
    const open = this.open.get(address) ?? 0;
    if (open >= this.limit) return null;
    this.open.set(address, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(address) ?? 1) - 1;
      if (left > 0) this.open.set(address, left);
      else this.open.delete(address);
    };
  }
}
