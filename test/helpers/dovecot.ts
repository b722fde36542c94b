// A private dovecot IMAP server for tests (Debian package dovecot-imapd):
// its own configuration, base_dir, state and maildirs in a temporary
// directory, listening on 127.0.0.1 on a free port, with one user from a
// passwd-file and plain-text login (loopback only). The system's dovecot
// service is never touched.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { tempDir } from './tmp.ts';

export const DOVECOT = '/usr/sbin/dovecot';
const NOBODY = 65534;

export interface Dovecot {
  port: number;
  user: string;
  password: string;
  dir: string;
  stop(): Promise<void>;
}

/** Why dovecot cannot be used here, or undefined when it can. */
export function dovecotMissing(): string | undefined {
  if (!existsSync(DOVECOT)) return `${DOVECOT} is not installed (Debian package dovecot-imapd)`;
  if (process.getuid?.() !== 0) return 'a private dovecot needs root here (it switches to the dovecot and dovenull users)';
  return undefined;
}

/** An IMAP client logged in to the test user's mailbox: the test logs it out. */
export async function imapClient(d: Dovecot): Promise<ImapFlow> {
  const c = new ImapFlow({ host: '127.0.0.1', port: d.port, secure: false, doSTARTTLS: false, auth: { user: d.user, pass: d.password }, logger: false });
  await c.connect();
  return c;
}

/** A port nothing listens on at this moment: bound to port 0, then released. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Capabilities of a server without IDLE (RFC 2177): what dovecot offers after login, IDLE left out. */
const WITHOUT_IDLE = 'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ NAMESPACE UIDPLUS UNSELECT CHILDREN MOVE';

/** `idle: false`: a server that does not offer IDLE, as some hosted mailboxes. */
export async function startDovecot(options: { idle?: boolean } = {}): Promise<Dovecot> {
  const dir = tempDir('dkim-relay-dovecot-');
  // The login and auth processes run as dovenull and dovecot: they need to reach base_dir.
  chmodSync(dir, 0o755);
  for (const d of ['run', 'state', 'mail']) mkdirSync(join(dir, d), { mode: 0o755 });
  // Dovecot refuses mail access as root: the mailbox belongs to nobody.
  chownSync(join(dir, 'mail'), NOBODY, NOBODY);
  const user = 'reports';
  const password = 'imap-test-password';
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${password}:${NOBODY}:${NOBODY}::${join(dir, 'mail', user)}::\n`, { mode: 0o644 });
  const port = await freePort();
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
${options.idle === false ? `imap_capability = ${WITHOUT_IDLE}\n` : ''}namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = ${dir}/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
`,
  );
  const child = spawn(DOVECOT, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
  try {
    await waitForGreeting(port, child, () => output, 15_000);
  } catch (err) {
    await stop();
    const log = existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : '';
    throw new Error(`${(err as Error).message}\n${output}\n${log}`);
  }
  return { port, user, password, dir, stop };
}

/** Bounded: a connection is tried every 100 ms until the server greets "* OK", for at most `ms`. */
async function waitForGreeting(port: number, child: ChildProcess, output: () => string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`dovecot exited (${child.exitCode}) before listening`);
    if (await greets(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dovecot did not greet on 127.0.0.1:${port} within ${ms} ms: ${output()}`);
}

function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('data', (d) => done(d.toString().startsWith('* OK')));
    socket.once('error', () => done(false));
  });
}
