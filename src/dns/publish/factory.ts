// The publishers of the configured zones (dns.publish), and the way a list
// of changes reaches them: grouped by zone, the longest configured zone that
// contains a record's name; a name in no configured zone is published by hand.
//
//   const publishers = createPublishers(config.dns.publish);   // throws a UserError on a bad TSIG secret file
//   for (const { zone, changes, result } of await publishers.publish(changes)) …
import type { Publisher, PublishResult, RecordChange } from './change.ts';
import { commandPublisher } from './command.ts';
import { manualPublisher } from './manual.ts';
import { rfc2136Publisher } from './rfc2136.ts';
import { parseHostPort } from '../../common/host-port.ts';
import { DNS_SERVER_ADDRESS } from '../nameserver.ts';
import type { TsigAlgorithm } from './tsig.ts';

/** One zone of the dns.publish setting, as the configuration's schema checks it. */
export type PublishSetting =
  | { zone: string; method: 'manual' }
  | { zone: string; method: 'rfc2136'; server: string; tsig: { name: string; algorithm: TsigAlgorithm; secretFile: string }; timeoutSeconds: number }
  | { zone: string; method: 'command'; command: readonly string[]; timeoutSeconds: number };
import { readTsigKey } from './tsig.ts';
import { byZone, zoneOf } from './zones.ts';

export interface ZoneResult {
  /** undefined: the names are in no configured zone (published by hand). */
  zone: string | undefined;
  changes: RecordChange[];
  result: PublishResult;
}

export interface Publishers {
  /** The zone a record name belongs to and the publisher of that zone. */
  forName(name: string): { zone: string | undefined; publisher: Publisher };
  /** Every change, one publish per zone, in the order the zones first occur. Never throws. */
  publish(changes: readonly RecordChange[]): Promise<ZoneResult[]>;
}

export function createPublishers(config: readonly PublishSetting[], options: { now?: () => number } = {}): Publishers {
  const zones = config.map((c) => c.zone);
  const byName = new Map(config.map((c) => [c.zone, publisherOf(c, options.now)]));
  const publisherFor = (zone: string | undefined) => (zone === undefined ? manualPublisher : byName.get(zone)!);
  return {
    forName(name) {
      const zone = zoneOf(name, zones);
      return { zone, publisher: publisherFor(zone) };
    },
    async publish(changes) {
      const results: ZoneResult[] = [];
      for (const [zone, group] of byZone(changes, zones)) {
        const result = zone === undefined ? await manualPublisher.publish('', group) : await publisherFor(zone).publish(zone, group);
        results.push({ zone, changes: group, result });
      }
      return results;
    },
  };
}

function publisherOf(config: PublishSetting, now: (() => number) | undefined): Publisher {
  switch (config.method) {
    case 'manual':
      return manualPublisher;
    case 'rfc2136':
      // Read once now so a missing or too open secret file stops the start with one line;
      // the publisher reads it again on every update, so a new secret needs no restart.
      readTsigKey(config.tsig);
      return rfc2136Publisher({
        server: parseHostPort(config.server, DNS_SERVER_ADDRESS)!,
        tsig: config.tsig,
        timeoutMs: config.timeoutSeconds * 1000,
        ...(now ? { now } : {}),
      });
    case 'command':
      return commandPublisher({ argv: config.command, timeoutMs: config.timeoutSeconds * 1000 });
  }
}
