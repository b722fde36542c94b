// Publishing by RFC 2136 dynamic update, signed with TSIG (RFC 8945), sent
// over TCP to the zone's primary server.
//
// Why not spawn `nsupdate`: it is one more package on every relay host (and
// an executable the hardened unit must allow), it reports failures as text
// that changes between versions, and it needs the changes as a script on
// stdin. Speaking the protocol takes one small module over dns-packet and
// node:crypto, tells the exact RCODE and TSIG error apart, and checks the
// server's signed answer, so a forged "NOERROR" is never taken for success.
import { randomInt } from 'node:crypto';
import { UserError } from '../../common/errors.ts';
import type { Publisher, PublishResult, RecordChange } from './change.ts';
import { zoneOf } from './zones.ts';
import type { HostPort } from '../../common/host-port.ts';
import { exchangeTcp } from '../tcp-exchange.ts';
import { checkResponse, readTsigKey, signRequest, tsigErrorName, type TsigAlgorithm } from './tsig.ts';
import { updateMessage } from './update-message.ts';

export interface Rfc2136Options {
  server: HostPort;
  tsig: { name: string; algorithm: TsigAlgorithm; secretFile: string };
  timeoutMs: number;
  /** The clock TSIG signs with, in milliseconds since the epoch like Date.now; tests move it. */
  now?: () => number;
}

const TSIG_REFUSED =
  'TSIG key refused by the server: check dns.publish[].tsig (the server must know a key of this name, algorithm and secret, and let it update the zone)';

/** RFC 2136 §2.2 and RFC 8945 §3: what each RCODE of an answer to an update means for us. */
const RCODES: Record<number, string> = {
  1: 'the server could not parse the update (FORMERR)',
  2: 'the server failed to apply the update (SERVFAIL): look at its log',
  4: 'the server does not support dynamic updates (NOTIMP)',
  5: 'the server does not allow updates for this zone from us (REFUSED): allow the TSIG key to update the zone in its ACL',
  // RFC 2136 §2.2: not authoritative for the zone; RFC 8945 §5.2: a TSIG failure, whose error the TSIG record tells.
  9: 'the server is not authoritative for this zone or refused our TSIG key (NOTAUTH): check dns.publish[].zone, .server and .tsig',
  10: 'a record is outside the zone (NOTZONE): check dns.publish[].zone',
};

export function rfc2136Publisher(options: Rfc2136Options): Publisher {
  const now = (): Date => new Date((options.now ?? Date.now)());
  const where = `${options.server.host}:${options.server.port}`;
  return {
    method: 'rfc2136',
    async publish(zone: string, changes: readonly RecordChange[]): Promise<PublishResult> {
      const fail = (why: string): PublishResult => ({ status: 'failed', reason: `update of zone ${zone} at ${where} failed: ${why}` });
      if (changes.length === 0) return { status: 'published' };
      const outside = changes.find((c) => zoneOf(c.name, [zone]) === undefined);
      if (outside) return fail(`${outside.name} is not in zone ${zone}`);
      try {
        const key = readTsigKey(options.tsig);
        const id = randomInt(0x10000);
        const { signed, mac } = signRequest(updateMessage(id, zone, changes), key, now());
        const answer = await exchangeTcp(options.server, signed, options.timeoutMs);
        if (answer.length < 12 || answer.readUInt16BE(0) !== id || !(answer.readUInt16BE(2) & 0x8000))
          return fail('the server sent something that is not the answer to our update');
        const rcode = answer.readUInt16BE(2) & 0xf;
        const check = checkResponse(answer, key, mac, now());
        if (rcode !== 0 || (check.ok === false && check.tsigError !== undefined)) {
          if (check.ok === false && check.tsigError !== undefined) return fail(`${TSIG_REFUSED} [${tsigErrorName(check.tsigError)}]`);
          return fail(RCODES[rcode] ?? `the server answered RCODE ${rcode}`);
        }
        // A success counts only when signed with our key (RFC 8945 §5.3): anyone can forge an unsigned NOERROR.
        if (check.ok === false) return fail(check.reason);
        return { status: 'published' };
      } catch (err) {
        return fail(err instanceof UserError ? err.toLine() : (err as Error).message);
      }
    },
  };
}
