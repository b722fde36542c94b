// Shared by the observability tests: HTTP requests to the metrics listener and
// the exposition text read back by an independent parser.
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET (or another method) to 127.0.0.1:port, with optional basic auth; bounded by a 10 s timeout. */
export function get(port: number, path: string, options: { auth?: string; method?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = options.auth ? { Authorization: `Basic ${Buffer.from(options.auth).toString('base64')}` } : {};
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface Sample {
  family: string;
  type: string;
  name: string;
  labels: Record<string, string>;
  /** null for NaN */
  value: number | null;
}

/** The samples of an exposition text as python3-prometheus-client parses it; rejects when it does not parse. */
export function parseExposition(text: string): Promise<Sample[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      [join(import.meta.dirname, 'parse_exposition.py')],
      { timeout: 20_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`the exposition text does not parse: ${stderr || err.message}`));
        else resolve(JSON.parse(stdout) as Sample[]);
      },
    );
    child.stdin!.end(text);
  });
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when there is none. */
export function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | null | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}
