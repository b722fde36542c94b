// A bad value or a bad --config path is one line and exit 2 from every
// command that reads the configuration, and a reload names the key at fault
// too: values that fail their own format and then meet a rule comparing two
// fields, a directory or an unreadable file given as the configuration, a
// TSIG secret file that serve would refuse. Through the real CLI.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { dkimRelay, NODE, serve, type Run } from '../cli/support.ts';
import { tempDir } from '../helpers/tmp.ts';

const DURATION = /must be a duration above zero such as "90s"/;

function shown(run: Run): string {
  return `exit ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

/** Exit 2, one line on stderr matching `line`, saying how to mend it; on stdout nothing but serve's log lines. */
function oneLine(run: Run, line: RegExp): void {
  assert.equal(run.code, 2, shown(run));
  assert.ok(
    run.stdout.split('\n').every((l) => l === '' || l.startsWith('{"level":')),
    shown(run),
  );
  assert.match(run.stderr, /^dkim-relay: [^\n]+\n$/, shown(run));
  assert.match(run.stderr, line, shown(run));
  assert.match(run.stderr, / — \S/, 'says how to mend it');
}

/** The commands that read the configuration: checking it, serving with it, and a read-only one. */
const COMMANDS = [['config', 'check'], ['serve'], ['keys', 'list']];

describe('a value that fails its format and a rule between fields: the key named, exit 2', () => {
  const dir = tempDir('dkim-relay-config-faults-');
  const cases: [string, string, string][] = [
    ['queue: {retryAfter: 5 minutes}', 'queue.retryAfter', 'the queue retry rule'],
    ['queue: {maxRetryInterval: hourly}', 'queue.maxRetryInterval', 'the queue retry rule'],
    ['queue: {delayWarning: 4h, maxAge: a week}', 'queue.maxAge', 'the delay warning rule'],
    ['signing: {expireAfter: soon}', 'signing.expireAfter', 'the signature and queue rules'],
    ['signing: {expireAfter: 30d}\nqueue: {maxAge: soon}', 'queue.maxAge', 'the signature outlasts the queue rule'],
    ['signing: {expireAfter: 30d}\nrotation: {retireAfter: never}', 'rotation.retireAfter', 'the retirement outlasts signatures rule'],
  ];
  for (const [yaml, key, rule] of cases) {
    test(`${key} in ${JSON.stringify(yaml)} (${rule})`, async () => {
      const file = join(dir, `${key}-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(file, `keys: {dir: ${join(dir, 'keys')}}\nlisten: {port: 0}\nmetrics: {listen: "127.0.0.1:0"}\n${yaml}\n`);
      for (const command of COMMANDS) {
        oneLine(await dkimRelay([...command, '--config', file], dir), new RegExp(`^dkim-relay: ${file}: ${key.replace('.', '\\.')}: ${DURATION.source}`));
      }
    });
  }

  test('a reload with such a value is refused, its log line names the key, and the relay runs on', async () => {
    const file = join(dir, 'reload.yaml');
    const good = `keys: {dir: ${join(dir, 'keys')}}\nlisten: {port: 0}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\n`;
    writeFileSync(file, good);
    const relay = await serve(['--config', file], dir);
    try {
      for (const [bad, key] of [
        ['queue: {retryAfter: 5 minutes}', 'queue.retryAfter'],
        ['signing: {expireAfter: soon}', 'signing.expireAfter'],
      ] as const) {
        const since = relay.output().length;
        writeFileSync(file, `${good}${bad}\n`);
        relay.child.kill('SIGHUP');
        await relay.waitFor('"reload refused', 20_000, since);
        const line = relay
          .output()
          .slice(since)
          .split('\n')
          .find((l) => l.includes('reload refused'))!;
        assert.match((JSON.parse(line) as { err: string }).err, new RegExp(`^${file}: ${key.replace('.', '\\.')}: ${DURATION.source}`), line);
      }
      assert.equal(relay.child.exitCode, null, relay.output());
      relay.child.kill('SIGTERM');
      assert.deepEqual(await relay.exited, { code: 0, signal: null }, relay.output());
    } finally {
      relay.kill();
    }
  });
});

describe('--config naming something that is no readable file: one line, exit 2', () => {
  const dir = tempDir('dkim-relay-config-paths-');
  mkdirSync(join(dir, 'etc'));

  test('a directory', async () => {
    for (const command of COMMANDS) {
      oneLine(
        await dkimRelay([...command, '--config', join(dir, 'etc')], dir),
        new RegExp(`configuration file ${join(dir, 'etc')} is a directory — .*name the file itself`),
      );
    }
  });

  test('a directory through DKIM_RELAY_CONFIG', async () => {
    // dkimRelay passes no environment of the caller's: a wrapper sets it.
    const wrapper = join(dir, 'node-with-config');
    writeFileSync(wrapper, `#!/bin/sh\nDKIM_RELAY_CONFIG=${join(dir, 'etc')} exec ${JSON.stringify(NODE)} "$@"\n`);
    chmodSync(wrapper, 0o755);
    oneLine(
      await dkimRelay(['keys', 'list'], dir, { node: wrapper }),
      /configuration file \S+etc is a directory — check the --config path or DKIM_RELAY_CONFIG/,
    );
  });

  test('a file that does not exist, and a path through a file', async () => {
    oneLine(await dkimRelay(['config', 'check', '--config', join(dir, 'absent.yaml')], dir), /configuration file \S+absent\.yaml does not exist — /);
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    oneLine(await dkimRelay(['config', 'check', '--config', join(file, 'relay.yaml')], dir), /configuration file \S+plain\/relay\.yaml does not exist — /);
  });

  test('a file the user cannot read (run as nobody)', { skip: process.getuid?.() === 0 ? false : 'needs root to run as another user' }, async () => {
    const open = tempDir('dkim-relay-config-unreadable-');
    chmodSync(open, 0o755);
    const file = join(open, 'relay.yaml');
    writeFileSync(file, 'rotation: {check: "off"}\n', { mode: 0o600 });
    const wrapper = join(open, 'node-as-nobody');
    writeFileSync(wrapper, `#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups ${JSON.stringify(NODE)} "$@"\n`);
    chmodSync(wrapper, 0o755);
    oneLine(
      await dkimRelay(['config', 'check', '--config', file], open, { node: wrapper }),
      new RegExp(`configuration file ${file} cannot be read: permission denied — `),
    );
  });

  test('YAML that does not parse, and YAML that holds no mapping', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'queue: [\n');
    oneLine(await dkimRelay(['serve', '--config', broken], dir), /broken\.yaml: YAML syntax error at line \d+, column \d+/);
    const list = join(dir, 'list.yaml');
    writeFileSync(list, '- queue\n- keys\n');
    oneLine(await dkimRelay(['serve', '--config', list], dir), /list\.yaml: \(top level\): must be a map of keys, not a list — /);
  });
});

test('config check refuses a TSIG secret file that serve would refuse', async () => {
  const dir = tempDir('dkim-relay-config-tsig-');
  const secret = join(dir, 'tsig.key');
  const file = join(dir, 'relay.yaml');
  writeFileSync(
    file,
    `keys: {dir: ${join(dir, 'keys')}}\ndns: {publish: [{zone: example.com, method: rfc2136, server: 127.0.0.1, tsig: {name: dkim-relay, secretFile: ${secret}}}]}\n`,
  );
  for (const command of [['config', 'check'], ['serve']]) {
    oneLine(
      await dkimRelay([...command, '--config', file], dir),
      new RegExp(`TSIG secret file ${secret} of key dkim-relay is missing — create it with: keymgr`),
    );
  }
  writeFileSync(secret, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o644 });
  chmodSync(secret, 0o644);
  oneLine(await dkimRelay(['config', 'check', '--config', file], dir), /is readable by others \(mode 0644\) — run: chmod 600/);
  chmodSync(secret, 0o600);
  const run = await dkimRelay(['config', 'check', '--config', file], dir);
  assert.equal(run.code, 0, shown(run));
});
