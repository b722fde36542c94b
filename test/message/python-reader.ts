// One long-lived Python process that reads address fields with the email
// package (policy.default), an independent RFC 5322 parser. Fields go in one
// JSON line each, answers come back in order.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export type PythonReading = { ok: true; mailboxes: [string, string][]; groups: number } | { ok: false; error: string };

export class PythonAddressReader {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting: { resolve(r: PythonReading): void; reject(e: Error): void }[] = [];
  private failure: Error | null = null;

  constructor() {
    this.child = spawn('/usr/bin/python3', [join(import.meta.dirname, 'python_addresses.py')], { stdio: 'pipe' });
    let stderr = '';
    this.child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const next = this.waiting.shift();
      if (!next) return;
      try {
        next.resolve(JSON.parse(line) as PythonReading);
      } catch {
        next.reject(new Error(`python printed no JSON: ${line.slice(0, 200)}`));
      }
    });
    this.child.on('exit', (code) => {
      this.failure = new Error(`python exited (${code}): ${stderr.slice(0, 500)}`);
      for (const w of this.waiting.splice(0)) w.reject(this.failure);
    });
    this.child.stdin.on('error', () => {});
  }

  read(value: string): Promise<PythonReading> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(JSON.stringify(value) + '\n');
    });
  }

  close(): void {
    this.child.stdin.end();
  }
}
