// The Debian packages the benchmark's peers and load generator come from,
// installed when missing: as root only, and after saying so. Postfix is
// installed with debconf's "No configuration", so no system-wide Postfix is
// set up or started; a master that the package scripts started anyway is
// stopped by its PID.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export const POSTFIX = '/usr/sbin/postfix';
export const OPENDKIM = '/usr/sbin/opendkim';

/** Installs postfix and opendkim when missing; returns why not when it cannot. */
export function ensurePackages(say: (line: string) => void): string | undefined {
  if (existsSync(POSTFIX) && existsSync(OPENDKIM)) return undefined;
  if (process.getuid?.() !== 0)
    return 'postfix/opendkim are not installed and this is not root: run `apt-get install postfix opendkim` (Postfix with "No configuration") and rerun';
  if (!existsSync('/usr/bin/apt-get')) return 'postfix/opendkim are not installed and there is no apt-get';
  say('Installing the Debian packages postfix (with "No configuration": no system-wide Postfix is set up) and opendkim, for the peers and smtp-source…');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('/usr/bin/debconf-set-selections', { input: 'postfix postfix/main_mailer_type select No configuration\n', env });
    spawnSync('/usr/bin/apt-get', ['update', '-qq'], { env, stdio: 'ignore', timeout: 300_000 });
    execFileSync('/usr/bin/apt-get', ['install', '-y', '-qq', 'postfix', 'opendkim'], { env, stdio: 'ignore', timeout: 600_000 });
  } catch (err) {
    return `apt-get install postfix opendkim failed: ${(err as Error).message.split('\n')[0]}`;
  }
  stopStarted('/var/spool/postfix/pid/master.pid', 'master', 'Postfix master', say);
  stopStarted('/run/opendkim/opendkim.pid', 'opendkim', 'OpenDKIM', say);
  return existsSync(POSTFIX) && existsSync(OPENDKIM) ? undefined : 'apt-get install postfix opendkim left them missing';
}

/** A system-wide daemon that the package scripts may have started, by the PID in its pid file. */
function stopStarted(pidFile: string, comm: string, name: string, say: (line: string) => void): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== comm) return;
    process.kill(pid, 'SIGTERM');
    say(`Stopped the ${name} (PID ${pid}) that installing the package started.`);
  } catch {
    // no pid file, or not running
  }
}
