// Counts the scrypt runs of this process (the password checks of a relay
// started in-process), where they happen rather than by timing.
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

export interface ScryptCount {
  /** Runs started since countScrypt(). */
  count(): number;
  /** Resolves once `n` runs have started (or `ms` passed), with the count. */
  reached(n: number, ms?: number): Promise<number>;
  stop(): void;
}

export function countScrypt(): ScryptCount {
  let calls = 0;
  const original = crypto.scrypt;
  (crypto as { scrypt: unknown }).scrypt = (...args: unknown[]) => {
    calls++;
    return (original as (...a: unknown[]) => void)(...args);
  };
  syncBuiltinESMExports();
  return {
    count: () => calls,
    async reached(n, ms = 10_000) {
      const until = Date.now() + ms;
      while (calls < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      return calls;
    },
    stop: () => {
      (crypto as { scrypt: unknown }).scrypt = original;
      syncBuiltinESMExports();
    },
  };
}
