// Full collections for memory measurements. One call to gc() can leave the
// ArrayBuffers that died during the measured work still counted in
// process.memoryUsage().arrayBuffers (measured: 8 MB after normalizing a
// 30 MB message, gone after a second collection); two calls settle it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let found: (() => void) | null | undefined;

/** global.gc, from --expose-gc or enabled at run time; null when neither works. */
export function gcFunction(): (() => void) | null {
  if (found !== undefined) return found;
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return (found = existing);
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    found = typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    found = null;
  }
  return found;
}

/** Collects garbage twice. */
export function collectGarbage(): void {
  const gc = gcFunction();
  if (!gc) throw new Error('gc() could not be enabled (node --expose-gc)');
  gc();
  gc();
}
