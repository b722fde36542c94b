// What every step of one normalize() call shares.
import type { NormalizeOptions } from './options.ts';
import type { ByteSource } from '../../message/mime/source.ts';

export interface Walk {
  options: NormalizeOptions;
  /** The message being normalized. */
  source: ByteSource;
  /** One human line per change, in the order made. */
  changes: string[];
}
