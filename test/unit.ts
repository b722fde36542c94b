// `npm run test:unit`: the test files that need nothing from the machine: no
// child process (no `serve`, no Debian tool), no socket, no browser; pure
// decisions and in-process work on temporary files. A file qualifies when
// neither it nor any module it imports from test/ or bench/ (transitively)
// uses one of the modules or calls below. The list is worked out afresh on
// each run, so a new test file is placed without anyone keeping a list.
// `npm test` still runs every file. `node test/unit.ts --list` prints the
// selection instead of running it.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const TEST = join(ROOT, 'test');
/** Where imports are followed; src/ is the code under test, judged by what the test does with it. */
const FOLLOWED = [TEST, join(ROOT, 'bench')].map((dir) => dir + '/');

/** What makes a test need the machine: processes, sockets, a browser, a system binary, or the real daemon. */
const NEEDS_MACHINE = [
  /from 'node:(child_process|net|dgram|tls|http|https)'/,
  /from '(smtp-server|nodemailer|playwright-core|pg)'/,
  /\/usr\/s?bin\//,
  /\bstartTestRelay\b|\bstartRelay\b/,
];

/** Test files that pass the rule above but take long (seconds of CPU each, measured): left to `npm test`. */
const SLOW = new Set([
  'test/access/auth-limiter.test.ts', // scrypt, on purpose, hundreds of times
  'test/normalize/large-messages.test.ts', // 25 MB messages
  'test/normalize/multipart.test.ts', // a random mutation fuzz
]);

const importsOf = (file: string, text: string): string[] =>
  [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)]
    .map((m) => resolve(dirname(file), m[1]!))
    .filter((p) => FOLLOWED.some((dir) => p.startsWith(dir)) && p.endsWith('.ts'));

const verdicts = new Map<string, boolean>();

/** Whether `file` and what it imports from test/ need nothing from the machine. */
function pure(file: string, seen = new Set<string>()): boolean {
  const known = verdicts.get(file);
  if (known !== undefined) return known;
  if (seen.has(file)) return true; // a cycle: decided where it began
  seen.add(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return false;
  }
  const verdict = !NEEDS_MACHINE.some((re) => re.test(text)) && importsOf(file, text).every((dep) => pure(dep, seen));
  verdicts.set(file, verdict);
  return verdict;
}

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

const unit = testFiles(TEST)
  .filter((f) => pure(f) && !SLOW.has(relative(ROOT, f)))
  .map((f) => relative(ROOT, f))
  .sort();

if (process.argv.includes('--list')) {
  console.log(unit.join('\n'));
} else {
  // One process for them all: starting a process per file took longer than the tests themselves.
  const run = spawnSync(process.execPath, ['--test', '--test-isolation=none', ...unit], { cwd: ROOT, stdio: 'inherit' });
  process.exitCode = run.status ?? 1;
}
