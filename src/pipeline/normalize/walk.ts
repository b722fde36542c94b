// What every step of one normalize() call shares.
import type { NormalizeOptions } from './index.ts';

export interface Walk {
  options: NormalizeOptions;
  /** One human line per change, in the order made. */
  changes: string[];
}
