// `passwd`: turn a password into the scrypt hash that access.users takes.
import type { Argv } from 'yargs';
import { UserError } from '../errors.ts';
import { hashPassword } from '../relay/passwords.ts';
import { print, readStdin, type GlobalArgs } from './context.ts';

export function passwdCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs & { user: string }>(
    'passwd <user>',
    'hash a password read from stdin for an SMTP AUTH account, printed as a config snippet',
    (y) =>
      y
        .positional('user', { type: 'string', demandOption: true, describe: 'the account name the client logs in with' })
        .example("printf '%s' 'secret' | $0 passwd exchange", 'prints the access.users entry to paste'),
    async (args) => {
      const password = (await readStdin()).toString('utf8').replace(/\r?\n$/, '');
      if (password.length < 8) throw new UserError('the password is shorter than 8 characters', 'choose a longer one');
      print(`# paste under access.users in the configuration\n- name: ${args.user}\n  password: "${await hashPassword(password)}"`);
    },
  );
}
