// The load: Postfix's smtp-source when installed (a real, independent SMTP
// client; it does not pipeline, its manual says so), otherwise or when a pace
// is asked for the bundled pipelining generator (bench/load-node.ts). Either
// runs as its own process, bounded in count and in time.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RECIPIENT, SENDER } from './message.ts';
import { now } from './stats.ts';

export const SMTP_SOURCE = '/usr/sbin/smtp-source';
const NODE = process.execPath;
const LOAD_NODE = join(import.meta.dirname, 'load-node.ts');

export type LoadTool = 'smtp-source' | 'node';

export interface LoadRequest {
  port: number;
  sessions: number;
  count: number;
  /** The message, CRLF line ends. */
  message: Buffer;
  /** A folder for the message file. */
  dir: string;
  /** Hard limit: the load is stopped after this long. */
  seconds: number;
  /** Messages a second in all; 0 or absent: as fast as the server takes them. */
  rate?: number;
  tool?: LoadTool;
}

export interface LoadResult {
  tool: LoadTool;
  startedAt: number;
  endedAt: number;
  /** The load did not finish within its time and was stopped. */
  stopped: boolean;
  /** What the generator said about itself (the last lines of its output). */
  output: string;
}

export const defaultTool = (): LoadTool => (existsSync(SMTP_SOURCE) ? 'smtp-source' : 'node');

export async function runLoad(request: LoadRequest): Promise<LoadResult> {
  const tool = request.rate ? 'node' : (request.tool ?? defaultTool());
  const file = join(request.dir, `load-${request.message.length}.${tool}.eml`);
  let command: string;
  let args: string[];
  if (tool === 'smtp-source') {
    // smtp-source appends CRLF to each line of the file itself.
    writeFileSync(file, request.message.toString('latin1').replaceAll('\r\n', '\n'), 'latin1');
    command = SMTP_SOURCE;
    args = [
      '-s',
      String(request.sessions),
      '-m',
      String(request.count),
      '-d',
      '-f',
      SENDER,
      '-t',
      RECIPIENT,
      '-M',
      'load.bench',
      '-F',
      file,
      `127.0.0.1:${request.port}`,
    ];
  } else {
    writeFileSync(file, request.message);
    command = NODE;
    const options = { port: request.port, sessions: request.sessions, count: request.count, file, seconds: request.seconds, rate: request.rate ?? 0 };
    args = [LOAD_NODE, JSON.stringify(options)];
  }
  const startedAt = now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let stopped = false;
  const timer = setTimeout(
    () => {
      stopped = true;
      child.kill('SIGTERM');
    },
    request.seconds * 1000 + 5000,
  );
  await new Promise<void>((resolve) => child.once('close', () => resolve()));
  clearTimeout(timer);
  return { tool, startedAt, endedAt: now(), stopped, output: output.trim() };
}
