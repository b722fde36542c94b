// The files a configuration names (TSIG secrets, the listener's TLS files, the
// report mailbox's password) are
// checked by one step: `config check` and `serve` refuse a bad one with the
// same line and exit 2, and a SIGHUP reload that meets it keeps the running
// configuration, its listener untouched. Through the real CLI and real signals.
import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { rawSession } from '../helpers/raw-smtp.ts';
import { selfSignedCert } from '../helpers/relay-harness.ts';
import { tempDir } from '../helpers/tmp.ts';
import { dkimRelay, serve } from './support.ts';

interface Case {
  name: string;
  /** The settings with the file in place and usable. */
  good: (dir: string) => string;
  /** Breaks the file (or the setting naming it); returns what the line must say. */
  breakIt: (dir: string, write: (yaml: string) => void) => RegExp;
}

const tsig = (dir: string) =>
  `listen: {port: 0}\ndns: {publish: [{zone: example.com, method: rfc2136, server: "127.0.0.1:53", tsig: {name: dkim-relay, secretFile: ${join(dir, 'tsig.key')}}}]}\n`;
const writeSecret = (dir: string) => {
  const file = join(dir, 'tsig.key');
  writeFileSync(file, `${Buffer.alloc(32, 7).toString('base64')}\n`);
  chmodSync(file, 0o600);
};

const CASES: Case[] = [
  {
    name: 'a missing TSIG secret file',
    good: (dir) => (writeSecret(dir), tsig(dir)),
    breakIt: (dir) => {
      rmSync(join(dir, 'tsig.key'));
      return /: dns\.publish\.0\.tsig\.secretFile: TSIG secret file \S+tsig\.key of key dkim-relay is missing — create it with: keymgr/;
    },
  },
  {
    name: 'a TSIG secret file others can read',
    good: (dir) => (writeSecret(dir), tsig(dir)),
    breakIt: (dir) => {
      chmodSync(join(dir, 'tsig.key'), 0o644);
      return /: dns\.publish\.0\.tsig\.secretFile: TSIG secret file \S+tsig\.key of key dkim-relay is readable by others \(mode 0644\) — run: chmod 600/;
    },
  },
  {
    name: 'an IMAP password file others can read',
    // The poller's connections to a closed loopback port fail and are retried: the relay runs on.
    good: (dir) => {
      const file = join(dir, 'imap.pass');
      writeFileSync(file, 'secret\n');
      chmodSync(file, 0o600);
      return `listen: {port: 0}\nreports: {imap: {host: 127.0.0.1, port: 1, tls: none, user: dmarc, passwordFile: ${file}}}\n`;
    },
    breakIt: (dir) => {
      chmodSync(join(dir, 'imap.pass'), 0o644);
      return /: reports\.imap\.passwordFile: the IMAP password file \S+imap\.pass is readable by others \(mode 0644\) — run: chmod 600/;
    },
  },
  {
    name: 'a missing TLS certificate',
    good: (dir) => {
      const { key, cert } = selfSignedCert(dir);
      return `listen: {port: 0, tls: {key: ${key}, cert: ${cert}}}\n`;
    },
    breakIt: (dir, write) => {
      write(`listen: {port: 0, tls: {key: ${join(dir, 'tls.key')}, cert: ${join(dir, 'absent.crt')}}}\n`);
      return /: listen\.tls\.cert: \S+absent\.crt does not exist — /;
    },
  },
];

describe('a file the configuration names, unusable', () => {
  for (const c of CASES) {
    test(`${c.name}: config check and serve refuse it alike (exit 2), and a reload keeps the running configuration`, async () => {
      const dir = tempDir();
      const config = join(dir, 'relay.yaml');
      const write = (more: string) =>
        writeFileSync(
          config,
          `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\ndelivery: {mode: sync, upstream: {type: file, dir: ${join(dir, 'outbox')}}}\n${more}`,
        );
      write(c.good(dir));
      const relay = await serve(['--config', config], dir);
      try {
        const port = relay.port();
        const what = c.breakIt(dir, write);

        const checked = await dkimRelay(['config', 'check', '--config', config], dir);
        const served = await dkimRelay(['serve', '--config', config], dir);
        for (const [command, run] of [
          ['config check', checked],
          ['serve', served],
        ] as const) {
          assert.equal(run.code, 2, `${command}: ${run.stdout}${run.stderr}`);
          assert.equal(run.stderr.split('\n').length, 2, `${command}: one line:\n${run.stderr}`);
          assert.match(run.stderr, what, command);
        }
        assert.equal(served.stderr, checked.stderr, 'the same line from both');
        const line = checked.stderr.replace(/^dkim-relay: /, '').trimEnd();

        const mark = relay.output().length;
        relay.child.kill('SIGHUP');
        await relay.waitFor('reload refused', 20_000, mark);
        const after = relay.output().slice(mark);
        const refused = JSON.parse(after.split('\n').find((l) => l.includes('reload refused'))!) as { err: string };
        assert.equal(refused.err, line, 'the reload logs the same line');
        // Refused before anything was stopped: the running listener was never closed nor started again.
        assert.doesNotMatch(after, /"msg":"stopping|"msg":"relay listening"|reload failed/, after);

        const session = await rawSession(port);
        assert.match((await session.reply(1)) ?? '', /^220 /, 'the old listener still answers');
        session.write('QUIT\r\n');
        await session.closed;

        relay.child.kill('SIGTERM');
        assert.equal((await relay.exited).code, 0, relay.output());
      } finally {
        relay.kill();
      }
    });
  }
});
