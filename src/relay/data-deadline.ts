// While a message is read (DATA), its lines are not commands: the command
// watch rests, and the whole message has listen.dataTimeoutSeconds instead,
// so a sender that trickles its DATA cannot hold a session forever.
import type { Readable } from 'node:stream';
import type { CommandWatch } from './command-watch.ts';

/** Calls `onTimeout` if `stream` has not ended, failed or closed within `timeoutMs`. */
export function limitData(stream: Readable, watch: CommandWatch | undefined, timeoutMs: number, onTimeout: () => void): void {
  watch?.pause();
  for (const event of ['end', 'close', 'error']) stream.once(event, () => watch?.resume());
  const deadline = setTimeout(onTimeout, timeoutMs);
  stream.once('end', () => clearTimeout(deadline));
  stream.once('error', () => clearTimeout(deadline));
  stream.once('close', () => clearTimeout(deadline));
}
