// The suite's own runner settings lose no verdict: `npm test`'s node --test
// flags, run on files with thousands of quick tests each and a handle that
// keeps each process alive, report every test. Without the report-pipe.ts
// preload, --test-force-exit drops some of the last ones of a file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const FILES = 4;
const TESTS = 2500;

/** The node --test options of the package's test script, without its file pattern. */
function runnerFlags(): string[] {
  const script = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { test: string } }).scripts.test;
  const command = script
    .split('&&')
    .map((c) => c.trim())
    .find((c) => c.startsWith('node --test'));
  assert.ok(command, `no "node --test" command in the test script: ${script}`);
  return command
    .split(/\s+/)
    .slice(1)
    .filter((word) => word.startsWith('--'));
}

test('every verdict of every file reaches the runner under the test script’s flags', async () => {
  const flags = runnerFlags();
  assert.ok(flags.includes('--test-force-exit'), 'this test guards --test-force-exit; without it, remove the test and the preload');
  const dir = tempDir();
  const files = Array.from({ length: FILES }, (_, f) => {
    const file = join(dir, `many-${f}.test.mjs`);
    writeFileSync(
      file,
      `import { test } from 'node:test';\nsetInterval(() => {}, 60_000);\nfor (let i = 0; i < ${TESTS}; i++) test('test ' + i + ' ${'x'.repeat(200)}', () => {});\n`,
    );
    return file;
  });
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // else the nested runner reports to this one as a child does
  // The runner's own report goes to a file: to a pipe, the runner's last lines can be lost when it
  // force-exits (its reporter stream not yet drained), which is not what this test is about.
  const report = join(dir, 'report.tap');
  const fd = openSync(report, 'w');
  const child = spawn(process.execPath, [...flags, '--test-reporter=tap', ...files], { cwd: ROOT, env, stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const out = readFileSync(report, 'utf8');
  assert.equal(code, 0, out.slice(-2000));
  assert.match(out, new RegExp(`^# tests ${FILES * TESTS}$`, 'm'));
  assert.match(out, new RegExp(`^# pass ${FILES * TESTS}$`, 'm'));
});
