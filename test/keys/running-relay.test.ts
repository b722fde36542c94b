// A running `dkim-relay serve` whose key files go bad under it: the domain of
// the bad key gets 451 and every other domain keeps signing; each problem is
// logged once at error level, saying how to mend it; mended, the key signs
// again, all without a restart.
//
// Tests run as root, who reads any file. So that "cannot be read" is real, the
// relay runs as the unprivileged user nobody (setpriv) and the key file is
// handed to root; run as an ordinary user, the key file is chmodded 000.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyWithDkimpy } from '../helpers/independent-verify.ts';
import { dkimFields, send } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import { BIN, NODE } from '../cli/support.ts';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const setprivWorks = isRoot && spawnSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'true']).status === 0;
/** How the relay and the CLI are started: as nobody when we are root. */
const prefix = setprivWorks ? ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups'] : [];

function command(args: string[]): [string, string[]] {
  const all = [...prefix, NODE, BIN, ...args];
  return [all[0]!, all.slice(1)];
}

interface LogLine {
  /** The level's name, as serve writes it. */
  level: string;
  msg: string;
  [field: string]: unknown;
}

describe(
  'key files going bad under a running relay',
  { skip: isRoot && !setprivWorks ? 'running as root without setpriv: no honest way to make a file unreadable' : false },
  () => {
    const base = tempDir();
    const dir = join(base, 'keys');
    const config = join(base, 'relay.yaml');
    const domains = ['good.example', 'unreadable.example', 'open.example'];
    let relay: ChildProcess;
    let port = 0;
    const log: LogLine[] = [];
    const files = new Map<string, string>();

    /** The CLI as the relay's own user, on the same configuration. */
    function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
      const [cmd, argv] = command(['--config', config, ...args]);
      const run = spawnSync(cmd, argv, { cwd: base, encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
      return { status: run.status, stdout: run.stdout, stderr: run.stderr };
    }

    let changes = 0;
    /** Any change to the key store from outside, as an operator's `keys generate` makes: the relay reloads. */
    function changeStore(): void {
      const run = cli(['keys', 'generate', '--domain', `other${++changes}.example`, '--algorithm', 'ed25519']);
      assert.equal(run.status, 0, run.stderr);
    }

    function mail(domain: string) {
      return send({
        port,
        from: `app@${domain}`,
        to: ['someone@example.net'],
        raw: `From: <app@${domain}>\r\nTo: <someone@example.net>\r\nSubject: test\r\n\r\nhello\r\n`,
      });
    }

    async function assertSigned(domain: string): Promise<void> {
      const result = await mail(domain);
      assert.ok(result.ok, `${domain}: ${result.response}`);
      const file = /written to (\S+\.eml)/.exec(result.response)?.[1];
      assert.ok(file, result.response);
      const message = readFileSync(file);
      assert.match(dkimFields(message).join('\n'), new RegExp(`d=${domain.replace('.', '\\.')};`));
      assert.deepEqual(await verifyWithDkimpy(message, records), [true], `${domain}: dkimpy does not verify the signature`);
    }

    async function assertDeferred(domain: string): Promise<void> {
      const result = await mail(domain);
      assert.ok(!result.ok, `${domain} was accepted: ${result.response}`);
      assert.equal(result.code, 451, result.response);
      assert.match(result.response, new RegExp(`^451 4\\.3\\.0 The DKIM key of ${domain.replace('.', '\\.')} is unavailable, try again later`));
      assert.ok(!result.response.includes(dir) && !result.response.includes('.pem'), `the reply names a key file: ${result.response}`);
    }

    const errors = () => log.filter((l) => l.level === 'error' || l.level === 'fatal');
    let records: Record<string, string> = {};

    before(async () => {
      const store = SqliteKeyStore.open(dir);
      for (const domain of domains) files.set(domain, join(dir, store.generate({ domain, selector: 's1', algorithm: 'rsa', bits: 1024, activate: true }).file));
      store.close();
      writeFileSync(
        config,
        `keys:\n  dir: ${dir}\nlisten:\n  port: 0\nmetrics:\n  listen: 127.0.0.1:0\ndelivery:\n  mode: sync\n  upstream:\n    type: file\n    dir: ${join(base, 'outbox')}\nrotation:\n  check: "off"\n`,
      );
      if (setprivWorks) spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, base]);
      const dns = cli(['keys', 'dns', '--json']);
      records = Object.fromEntries((JSON.parse(dns.stdout) as { name: string; value: string }[]).map((r) => [r.name, r.value]));

      const [cmd, argv] = command(['serve', '--config', config]);
      relay = spawn(cmd, argv, { cwd: base, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
      let pending = '';
      let stderr = '';
      relay.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the relay did not start:\n${stderr}`)), 20_000);
        relay.once('exit', (code) => reject(new Error(`the relay exited ${code}:\n${stderr}`)));
        relay.stdout!.on('data', (chunk: Buffer) => {
          pending += chunk.toString();
          for (let at = pending.indexOf('\n'); at >= 0; at = pending.indexOf('\n')) {
            const line = JSON.parse(pending.slice(0, at)) as LogLine;
            pending = pending.slice(at + 1);
            log.push(line);
            if (line.msg === 'relay listening') {
              clearTimeout(timer);
              resolve(line.plain as number);
            }
          }
        });
      });
    });
    after(() => {
      if (relay?.exitCode === null) relay.kill('SIGTERM');
    });

    test('every domain signs while its key is fine', async () => {
      assert.deepEqual(errors(), []);
      for (const domain of domains) await assertSigned(domain);
    });

    test('a key that cannot be read and one opened to others: only their domains get 451, each logged once with its mend', async () => {
      const unreadable = files.get('unreadable.example')!;
      const open = files.get('open.example')!;
      if (setprivWorks) chownSync(unreadable, 0, 0);
      else chmodSync(unreadable, 0o000);
      chmodSync(open, 0o644);
      changeStore();

      for (let i = 0; i < 3; i++) {
        await assertDeferred('unreadable.example');
        await assertDeferred('open.example');
      }
      await assertSigned('good.example');

      const logged = errors();
      assert.equal(logged.length, 2, `expected one error line per broken key:\n${logged.map((l) => l.msg).join('\n')}`);
      const byDomain = new Map(logged.map((l) => [l.domain, l]));
      const user = setprivWorks ? 'nobody' : userInfo().username;
      assert.equal(byDomain.get('unreadable.example')?.problem, 'unreadable');
      assert.ok(byDomain.get('unreadable.example')!.msg.includes(`chown ${user} ${unreadable}`), byDomain.get('unreadable.example')!.msg);
      assert.equal(byDomain.get('open.example')?.problem, 'readable by others');
      assert.ok(byDomain.get('open.example')!.msg.includes(`chmod 600 ${open}`), byDomain.get('open.example')!.msg);
      // Every deferred message has its own warn line; the error is not repeated per message.
      assert.equal(log.filter((l) => l.msg === 'message' && /^451 4\.3\.0/.test(String(l.reply))).length, 6);
    });

    test('mended, both keys sign again without a restart', async () => {
      const unreadable = files.get('unreadable.example')!;
      if (setprivWorks) chownSync(unreadable, NOBODY, NOBODY);
      else chmodSync(unreadable, 0o600);
      chmodSync(files.get('open.example')!, 0o600);
      changeStore();
      for (const domain of domains) await assertSigned(domain);
      assert.equal(errors().length, 2, 'new error lines after the keys were mended');
    });
  },
);
