// Running a third-party verifier as a child process: a temp folder for its
// input, a bounded run, and its one JSON line of output checked for shape.
// A verifier that cannot run, or prints nothing parseable, throws: it must
// fail the test, never pass it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TIMEOUT_MS = 180_000;
const MAX_OUTPUT = 4 * 1024 * 1024;

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'dkim-verify-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function run(file: string, args: string[], stdin?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: TIMEOUT_MS, maxBuffer: MAX_OUTPUT, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args[0] ?? ''} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    // An early exit closes stdin; the callback above reports why.
    child.stdin?.on('error', () => {});
    child.stdin?.end(stdin ?? Buffer.alloc(0));
  });
}

export function parseList<T>(out: string, who: string, isItem: (v: unknown) => v is T): T[] {
  let value: unknown;
  try {
    value = JSON.parse(out.trim().split('\n').pop() ?? '');
  } catch {
    throw new Error(`${who} printed no result: ${JSON.stringify(out.slice(0, 200))}`);
  }
  if (!Array.isArray(value) || !value.every(isItem)) throw new Error(`${who} printed an unexpected result: ${out}`);
  return value;
}

/** One DKIM-Signature as a verifier judged it. */
export interface SignatureVerdict {
  /** pass, fail, temperror, invalid, error (the verifier raised), … */
  result: string;
  detail: string;
  /** d= and a= as the verifier read them ('' when it could not). */
  domain: string;
  algorithm: string;
}

/** A verifier's list of per-signature verdicts. */
export function parseVerdicts(out: string, who: string): SignatureVerdict[] {
  const isVerdict = (v: unknown): v is SignatureVerdict =>
    typeof v === 'object' && v !== null && ['result', 'detail', 'domain', 'algorithm'].every((k) => typeof (v as Record<string, unknown>)[k] === 'string');
  return parseList(out, who, isVerdict);
}
