// `passwd`: turn a password into the scrypt hash that access.users takes.
import type { Argv } from 'yargs';
import { stringify } from 'yaml';
import { UserError } from '../common/errors.ts';
import { hashPassword } from '../access/passwords.ts';
import { print, printJson, readStdin, type GlobalArgs } from './context.ts';
import { InputAborted, readHiddenLine } from './hidden-input.ts';

export function passwdCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs & { user?: string }>(
    'passwd [user]',
    'hash a password for an SMTP AUTH account (asked twice without echo on a terminal, else read from stdin), printed as a config snippet (--json: as an object)',
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
      const password = process.stdin.isTTY ? await askTwice(user) : (await readStdin()).toString('utf8').replace(/\r?\n$/, '');
      if (password.length < 8) throw new UserError('the password is shorter than 8 characters', 'choose a longer one');
      const entry = { name: user, password: await hashPassword(password) };
      if (args.json) return printJson(entry);
      // Quoted whatever the name holds ("scan: printer", "#x", "yes"), so the pasted entry reads back as written.
      print(
        `# paste under access.users in the configuration\n${stringify([entry], { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0 })}`,
      );
    },
  );
}

/** On a terminal: typed without echo, and twice, so a typo is not what gets hashed. */
async function askTwice(user: string): Promise<string> {
  try {
    const first = await readHiddenLine(`Password for ${user}: `);
    if (first.length < 8) return first; // refused below with its own line, before a second prompt
    const second = await readHiddenLine('Again: ');
    if (first !== second) throw new UserError('the two passwords differ', 'run dkim-relay passwd again and type the same password twice');
    return first;
  } catch (err) {
    if (err instanceof InputAborted) throw new UserError('no password given (interrupted)', 'run dkim-relay passwd again, or pipe the password in');
    throw err;
  }
}
