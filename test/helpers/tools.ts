// What a test needs from the machine: a Debian tool. In CI (CI set, as .ci/run
// sets it) a missing tool fails the test with a line naming the package to
// install, so CI never passes by skipping; elsewhere the test is skipped with
// that same line as its reason, so a developer without, say, knot can still
// run everything else.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test, type TestContext } from 'node:test';

/** A command looked up on PATH (and the sbin folders root has), or a probe that must exit 0 (the system interpreters the tests run, not a PATH one such as pyenv's). */
type Probe = { command: string } | { argv: string[] };

/** Each tool the tests use, with the Debian package that provides it. */
const TOOLS = {
  knotd: { pkg: 'knot', probe: { command: 'knotd' } },
  knotc: { pkg: 'knot', probe: { command: 'knotc' } },
  dkimpy: { pkg: 'python3-dkim', probe: { argv: ['/usr/bin/python3', '-c', 'import dkim'] } },
  'Mail::DKIM': { pkg: 'libmail-dkim-perl', probe: { argv: ['/usr/bin/perl', '-MMail::DKIM::Verifier', '-e', '1'] } },
  'prometheus-client': { pkg: 'python3-prometheus-client', probe: { argv: ['/usr/bin/python3', '-c', 'import prometheus_client'] } },
  python3: { pkg: 'python3', probe: { command: 'python3' } },
  swaks: { pkg: 'swaks', probe: { command: 'swaks' } },
  openssl: { pkg: 'openssl', probe: { command: 'openssl' } },
  'named-checkzone': { pkg: 'bind9-utils', probe: { command: 'named-checkzone' } },
  unshare: { pkg: 'util-linux', probe: { command: 'unshare' } },
  nsenter: { pkg: 'util-linux', probe: { command: 'nsenter' } },
  ip: { pkg: 'iproute2', probe: { command: 'ip' } },
  chromium: { pkg: 'chromium', probe: { command: 'chromium' } },
  lintian: { pkg: 'lintian', probe: { command: 'lintian' } },
  'dpkg-deb': { pkg: 'dpkg', probe: { command: 'dpkg-deb' } },
  'dpkg-shlibdeps': { pkg: 'dpkg-dev', probe: { command: 'dpkg-shlibdeps' } },
  man: { pkg: 'man-db', probe: { command: 'man' } },
  'softhsm2-util': { pkg: 'softhsm2', probe: { command: 'softhsm2-util' } },
  opendkim: { pkg: 'opendkim', probe: { command: 'opendkim' } },
} as const satisfies Record<string, { pkg: string; probe: Probe }>;

export type Tool = keyof typeof TOOLS;

const SEARCH = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);
const known = new Map<Tool, boolean>();

function onPath(command: string): boolean {
  return SEARCH.some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function present(tool: Tool): boolean {
  let found = known.get(tool);
  if (found === undefined) {
    const probe: Probe = TOOLS[tool].probe;
    found = 'command' in probe ? onPath(probe.command) : spawnSync(probe.argv[0]!, probe.argv.slice(1), { stdio: 'ignore', timeout: 20_000 }).status === 0;
    known.set(tool, found);
  }
  return found;
}

/** The line that says what is missing and which package brings it. */
function missingLine(tools: Tool[]): string | undefined {
  const missing = tools.filter((tool) => !present(tool));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((tool) => TOOLS[tool].pkg))];
  return `${missing.join(', ')} missing: apt-get install ${packages.join(' ')}`;
}

const inCi = () => Boolean(process.env.CI);

/**
 * Inside a test: true when every tool is there. Otherwise, in CI the test
 * fails with the package to install; elsewhere it is skipped saying so, and
 * the caller returns.
 */
export function requireTool(t: TestContext, ...tools: Tool[]): boolean {
  const line = missingLine(tools);
  if (line === undefined) return true;
  if (inCi()) assert.fail(line);
  t.skip(line);
  return false;
}

/**
 * For the `skip` option of a describe() or test() whose every test needs the
 * tools: false when they are there. Otherwise the reason to skip, and in CI
 * a test of its own that fails with the package to install, so that the run
 * fails rather than passes by skipping.
 */
export function skipWithout(...tools: Tool[]): string | false {
  const line = missingLine(tools);
  if (line === undefined) return false;
  if (inCi()) test(`needs ${tools.join(', ')}`, () => assert.fail(line));
  return line;
}
