// `passwd`: turn a password into the scrypt hash that access.users takes.
import type { Argv } from 'yargs';
import { stringify } from 'yaml';
import { UserError } from '../errors.ts';
import { hashPassword } from '../relay/passwords.ts';
import { print, printJson, readStdin, type GlobalArgs } from './context.ts';

export function passwdCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs & { user?: string }>(
    'passwd [user]',
    'hash a password read from stdin for an SMTP AUTH account, printed as a config snippet (--json: as an object)',
    (y) =>
      y
        .positional('user', { type: 'string', describe: 'the account name the client logs in with (after --, when it starts with -)' })
        .example("printf '%s' 'a long secret' | $0 passwd exchange", 'prints the access.users entry to paste'),
    async (args) => {
      // yargs leaves a name given after "--" (needed for one starting with "-") in args._.
      const user = args.user ?? (args._.length === 2 ? String(args._[1]) : undefined);
      if (user === undefined || args._.length > (args.user === undefined ? 2 : 1)) {
        throw new UserError('name one user', 'dkim-relay passwd NAME (or passwd -- NAME when it starts with "-")');
      }
      if (user === '') throw new UserError('the user name is empty', 'give the name the client logs in with');
      const password = (await readStdin()).toString('utf8').replace(/\r?\n$/, '');
      if (password.length < 8) throw new UserError('the password is shorter than 8 characters', 'choose a longer one');
      const entry = { name: user, password: await hashPassword(password) };
      if (args.json) return printJson(entry);
      // Quoted whatever the name holds ("scan: printer", "#x", "yes"), so the pasted entry reads back as written.
      print(`# paste under access.users in the configuration\n${stringify([entry], { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0 })}`);
    },
  );
}
