// Publishing through a program of one's own, for DNS providers with an API
// and a command-line client: the program gets the changes as JSON on stdin,
//
//   {"zone": "example.com", "changes": [{"action": "add", "name": …, "type": "TXT", "ttl": 3600, "value": …, "strings": […]}]}
//
// and exits 0 once every change is applied. It runs without a shell (argv as
// configured), with a time limit; the caller tries again later on failure.
import { spawn } from 'node:child_process';
import type { Publisher, PublishResult, RecordChange } from './change.ts';

export interface CommandOptions {
  /** Program and its arguments; no shell is involved. */
  argv: readonly string[];
  timeoutMs: number;
}

/** Enough stderr to hold its last line; a chatty program cannot fill our memory. */
const KEEP_STDERR = 16 * 1024;

export function commandPublisher(options: CommandOptions): Publisher {
  const [program = '', ...args] = options.argv;
  return {
    method: 'command',
    publish(zone: string, changes: readonly RecordChange[]): Promise<PublishResult> {
      const input = JSON.stringify({
        zone,
        changes: changes.map(({ action, name, type, ttl, value, strings }) => ({ action, name, type, ttl, value, strings })),
      });
      const fail = (why: string): PublishResult => ({ status: 'failed', reason: `${program} for zone ${zone} failed: ${why}` });
      if (!program) return Promise.resolve(fail('no program given — set dns.publish[].command'));
      return new Promise((resolve) => {
        let stderr = '';
        let done = false;
        const finish = (result: PublishResult) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve(result);
        };
        // Its own process group, so a timeout stops what it started too (a shell script's children
        // would otherwise keep running and hold its stderr open).
        const child = spawn(program, args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            child.kill('SIGKILL');
          }
          child.stderr.destroy();
          finish(fail(`no result within ${options.timeoutMs / 1000}s (stopped) — raise dns.publish[].timeoutSeconds or look at the program`));
        }, options.timeoutMs);
        child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-KEEP_STDERR)));
        // A program that exits without reading its input closes the pipe: its exit status tells.
        child.stdin.on('error', () => {});
        child.stdin.end(input);
        child.on('error', (err: NodeJS.ErrnoException) => {
          finish(fail(err.code === 'ENOENT' ? 'no such program — check dns.publish[].command' : (err.code ?? err.message)));
        });
        child.on('close', (code, signal) => {
          const last = lastLine(stderr);
          if (code === 0) finish({ status: 'published' });
          else finish(fail(`${code === null ? `killed by ${signal}` : `exit status ${code}`}${last ? `: ${last}` : ''}`));
        });
      });
    },
  };
}

function lastLine(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return (lines.at(-1) ?? '').slice(0, 300);
}
