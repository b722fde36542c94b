// `sign` and `verify`: one message from stdin, through the same code as the relay.
import { replyLine } from '../smtp/reply.ts';
import type { DNSResolver } from 'mailauth';
import type { Argv } from 'yargs';
import type { Config } from '../config/schema.ts';
import { hostname, tmpdir } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { mailauthResolver } from '../dns/resolver.ts';
import { storeResolver } from '../keys/resolver.ts';
import { normalizeClientName, normalizeDomain } from '../common/names.ts';
import { UserError } from '../common/errors.ts';
import { chainNamed, type ClientChain } from '../access/sender-authorization.ts';
import { octetStream } from '../message/octets.ts';
import { processMessage, type Report } from '../pipeline/pipeline.ts';
import { receiveMessage } from '../message/intake.ts';
import { messageProblem, verifyMessage } from '../signing/verify.ts';
import { CheckFailed, configFrom, print, printJson, readStdin, withStore, type GlobalArgs } from './context.ts';

export function signCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs & { domain?: string; client?: string }>(
    'sign',
    'sign one message from stdin exactly as the relay would (self-check included) and write it to stdout',
    (y) =>
      y
        .option('domain', { type: 'string', describe: 'sign as this domain instead of the From: domain' })
        .option('client', {
          type: 'string',
          describe:
            "sign as the relay signs this client's mail: with its own key chain (clients[].name with keys: own), and its whenNoKey when that has no active key",
        })
        .example('$0 sign < in.eml > out.eml', 'sign by the From: domain')
        .example('$0 sign --client scanner < in.eml > out.eml', "sign with the scanner's own chain"),
    (args) =>
      withStore(args, async (store, { config }) => {
        const chain = args.client === undefined ? undefined : ownChainNamed(config, args.client);
        // Read as the relay reads DATA: a large message goes to a temporary file, not into memory.
        const received = await receiveMessage(process.stdin, { maxSize: config.listen.maxMessageSize, maxHeader: config.headers.maxSize, dir: tmpdir() });
        if (!received.ok) throw new CheckFailed(`not signed: the message exceeds listen.maxMessageSize (${config.listen.maxMessageSize} octets)`);
        try {
          const outcome = await processMessage(received.message, {
            store,
            config,
            upstream: config.delivery.upstream,
            hostname: config.listen.hostname ?? hostname(),
            domain: args.domain === undefined ? undefined : normalizeDomain(args.domain),
            chain,
          });
          if (outcome.action === 'refuse') throw new CheckFailed(`not signed: ${replyLine(outcome.reply)}`);
          // The message goes out as the relay would send it; the exit status says whether it is signed and proven good.
          await pipeline(octetStream(outcome.message), process.stdout, { end: false });
          report(outcome);
        } finally {
          await received.message.discard();
        }
      }),
  );
}

/** The chain `--client` names, or a UserError: a name no clients[] entry signs with would silently sign with the domain's keys. */
function ownChainNamed(config: Config, client: string): ClientChain {
  const name = normalizeClientName(client);
  const chain = chainNamed(config.clients, name);
  if (!chain) {
    throw new UserError(
      `no client named ${name} signs with keys of its own`,
      `give --client the name of a clients[] entry with keys: own, or leave out --client for the domain's keys`,
    );
  }
  return chain;
}

/** The exit status says whether the message is signed and proven good. */
function report(outcome: Report): void {
  if (outcome.signatures.length === 0) throw new CheckFailed(`not signed: ${outcome.detail}`);
  if (outcome.selfCheck === 'fail') throw new CheckFailed(`self-check failed: ${outcome.detail}`);
  process.stderr.write(
    `signed ${outcome.signatures.map((s) => `d=${s.domain} s=${s.selector} a=${s.algorithm}`).join(', ')}; self-check ${outcome.selfCheck}\n`,
  );
}

export function verifyCommand(yargs: Argv<GlobalArgs>) {
  return yargs.command<GlobalArgs & { dns?: boolean; nameserver?: string }>(
    'verify',
    'verify every DKIM signature of a message from stdin and report alignment with From:',
    (y) =>
      y
        // No default: with one, yargs would count --nameserver's implied --dns as given.
        .option('dns', { type: 'boolean', describe: 'fetch keys from DNS instead of the key store' })
        .option('nameserver', { type: 'string', implies: 'dns', describe: 'with --dns: ask this resolver (IP or IP:PORT) instead of the system one' })
        .example('$0 verify < signed.eml', 'keys from the store')
        .example('$0 verify --dns < received.eml', 'keys from DNS, as a receiver would'),
    async (args) => {
      // With --dns the key store is not needed: a host without one verifies too.
      if (args.dns) return verifyWith(args, args.nameserver !== undefined ? mailauthResolver(args.nameserver) : undefined, configFrom(args).config);
      await withStore(args, (store, { config }) => verifyWith(args, storeResolver(store), config, true));
    },
  );
}

/** Verifies the signatures of the message on stdin with keys from `resolver` (DNS, through mailauth, when undefined); exit 1 unless all pass and the message has one From:. */
async function verifyWith(args: GlobalArgs, resolver: DNSResolver | undefined, config: Config, fromStore = false): Promise<void> {
  const result = await verifyMessage(await readStdin(), resolver, config.selfCheck.alignment);
  // The key store is no DNS: a key it lacks says nothing about the sender's records.
  if (fromStore)
    for (const s of result.signatures)
      if (s.reason === 'no-key') s.comment = `no key ${s.selector} of ${s.domain} in the key store (--dns looks it up in DNS, as a receiver would)`;
  const problem = messageProblem(result);
  const failed = problem !== undefined || result.signatures.length === 0 || result.signatures.some((s) => s.result !== 'pass');
  if (args.json) printJson({ verdict: failed ? 'fail' : 'pass', problem: problem ?? null, ...result });
  else {
    if (result.signatures.length === 0) print('none: the message carries no DKIM signature');
    for (const s of result.signatures) {
      const alignment = `${s.aligned ? 'aligned' : 'not-aligned'} with From: ${result.fromDomains.join(',') || '(none)'}`;
      print(
        `${s.result} d=${s.domain || '(none)'} s=${s.selector || '(none)'} a=${s.algorithm || '(none)'} ${alignment}${s.result === 'pass' ? '' : `: ${s.comment}`}`,
      );
    }
    if (problem) print(`fail: ${problem}`);
  }
  if (failed) throw new CheckFailed('');
}
