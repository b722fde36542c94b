// A private Postfix instance on loopback: its own configuration folder, queue
// and data folders under a temporary folder, started with `postfix -c DIR
// start` and stopped by its master's PID; the system-wide Postfix (if any) is
// never touched. It relays everything through the OpenDKIM milter to the sink.
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../stats.ts';
import { POSTFIX } from './install.ts';
import { alive, stopByPid, waitForPort } from './process.ts';

export interface PostfixSetup {
  dir: string;
  port: number;
  milterPort: number;
  sinkPort: number;
}

export interface RunningPostfix {
  masterPid: number;
  stop(): Promise<void>;
}

function mainCf({ dir, milterPort, sinkPort }: PostfixSetup): string {
  return `# A private Postfix for the benchmark: loopback only, no local delivery, everything to the sink.
compatibility_level = 3.6
queue_directory = ${join(dir, 'queue')}
data_directory = ${join(dir, 'data')}
mail_owner = postfix
setgid_group = postdrop
myhostname = peer.bench
mydestination =
local_recipient_maps =
local_transport = error:no local delivery
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:${sinkPort}
smtpd_milters = inet:127.0.0.1:${milterPort}
non_smtpd_milters =
milter_default_action = tempfail
message_size_limit = 67108864
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
append_dot_mydomain = no
maillog_file = ${join(dir, 'maillog')}
maillog_file_prefixes = ${dir}
`;
}

/** The services of Debian's master.cf that relaying needs, none chrooted, smtpd on our own port. */
function masterCf({ port }: PostfixSetup): string {
  const services = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  return `${services.join('\n')}\n`;
}

function postfixIds(): [number, number] {
  return [Number(execFileSync('id', ['-u', 'postfix'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postfix'], { encoding: 'utf8' }))];
}

function lastLines(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no maillog written)';
  }
}

export async function startPostfix(setup: PostfixSetup): Promise<RunningPostfix> {
  const etc = join(setup.dir, 'etc');
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'main.cf'), mainCf(setup));
  writeFileSync(join(etc, 'master.cf'), masterCf(setup));
  mkdirSync(join(setup.dir, 'queue'));
  mkdirSync(join(setup.dir, 'data'));
  chownSync(join(setup.dir, 'data'), ...postfixIds());
  // `check` creates the queue's subfolders with their owners; `start` starts this instance's master only.
  // Postfix logs to maillog, not to the terminal, so that is what a failure shows.
  const postfix = (command: string) => {
    try {
      execFileSync(POSTFIX, ['-c', etc, command], { stdio: 'pipe', timeout: 60_000 });
    } catch {
      throw new Error(`postfix -c ${etc} ${command} failed: ${lastLines(join(setup.dir, 'maillog'))}`);
    }
  };
  postfix('check');
  postfix('start');
  const pidFile = join(setup.dir, 'queue', 'pid', 'master.pid');
  let masterPid = NaN;
  for (let i = 0; i < 100 && !(masterPid > 0); i++) {
    try {
      masterPid = Number(readFileSync(pidFile, 'utf8').trim());
    } catch {
      await sleep(100);
    }
  }
  if (!(masterPid > 0) || !alive(masterPid)) throw new Error(`postfix -c ${etc} start left no master running: ${lastLines(join(setup.dir, 'maillog'))}`);
  try {
    await waitForPort(setup.port);
  } catch (err) {
    await stopByPid(masterPid);
    throw err;
  }
  return { masterPid, stop: () => stopByPid(masterPid) };
}
