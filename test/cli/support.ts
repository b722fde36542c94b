// Runs the real dkim-relay binary in a subprocess.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE = join(ROOT, 'node_modules', '.bin', 'node');
export const BIN = join(ROOT, 'bin', 'dkim-relay.js');

// V8's code cache only makes the many start-ups quicker; behaviour is unchanged.
const compileCache = tempDir('dkim-relay-ncc-');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/dkim-relay.js …args` in `cwd`, with no configuration leaking in from the environment. */
export function dkimRelay(args: string[], cwd: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', NODE_COMPILE_CACHE: compileCache };
  return new Promise((resolve, reject) => {
    const child = execFile(NODE, [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
    child.stdin?.end();
  });
}
