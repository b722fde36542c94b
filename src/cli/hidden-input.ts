// A line typed at the terminal without echo, as passwd(1) and ssh-keygen
// read a passphrase: the terminal is put in raw mode for the one line and
// restored whatever happens. The prompt goes to stderr, so stdout carries
// only the command's result.
import type { ReadStream } from 'node:tty';

/** What ended the line, when it was not Enter. */
export class InputAborted extends Error {}

const ENTER = new Set(['\r', '\n']);
const ERASE = new Set(['\x7f', '\b']);
const CTRL_C = '\x03';
const CTRL_D = '\x04';
const CTRL_U = '\x15';

/**
 * One keystroke applied to the line typed so far: the line, or 'done' on
 * Enter, or 'abort' on Ctrl-C (and Ctrl-D on an empty line, as EOF).
 */
export function applyKey(line: string, key: string): string | 'done' | 'abort' {
  if (ENTER.has(key)) return 'done';
  if (key === CTRL_C || (key === CTRL_D && line === '')) return 'abort';
  if (ERASE.has(key)) return [...line].slice(0, -1).join('');
  if (key === CTRL_U) return '';
  if (key < ' ') return line; // other control keys are not part of a password
  return line + key;
}

export function readHiddenLine(
  prompt: string,
  input: ReadStream = process.stdin as ReadStream,
  output: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  // Raw before the prompt shows: a reply typed at once is not echoed either.
  input.setRawMode(true);
  output.write(prompt);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (err?: Error) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: string) => {
      // A paste arrives as one chunk: each character is a keystroke.
      for (const key of chunk) {
        const next = applyKey(line, key);
        if (next === 'done') return finish();
        if (next === 'abort') return finish(new InputAborted('interrupted'));
        line = next;
      }
    };
    input.on('data', onData);
  });
}
