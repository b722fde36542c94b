#!/usr/bin/env node
// Runs the CLI on the Node.js the project installs (node_modules/.bin/node,
// Node 24), whatever `node` comes first on PATH.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'src', 'cli', 'main.ts');
const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  process.argv.splice(1, 1, main);
  await import(main);
} else {
  const node = join(root, 'node_modules', '.bin', 'node');
  if (!existsSync(node)) {
    process.stderr.write(`dkim-relay: needs Node.js 24 or newer (this is ${process.version}) — run npm ci in ${root}\n`);
    process.exit(2);
  }
  // Signals go on to the child, so SIGTERM stops the relay, not just this wrapper. A terminal's
  // Ctrl-C reaches the child a second time through the process group: `serve` takes that as one.
  const child = spawn(node, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
}
