// A full collection for memory measurements. One call to gc() can leave the
// ArrayBuffers that died during the measured work still counted in
// process.memoryUsage().arrayBuffers (measured: 8 MB after normalizing a
// 30 MB message, gone after a second collection); two calls settle it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/** Collects garbage twice; enables gc() at run time when node was started without --expose-gc. */
export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
  gc();
}
