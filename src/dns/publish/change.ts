// A change to one DNS record, and what publishes a list of them to one zone.
//
//   const result = await publisher.publish('dkim.relay.example.net', [deleteRecord(old), addRecord(revoked)]);
//   if (result.status === 'failed') log(result.reason);   // one line; try again later
//
// Changes name exact records: a delete withdraws that record and nothing
// else, so a record someone published by hand at the same name is left alone.
// A publisher applies all of a list or none of it (RFC 2136 §3.4: one UPDATE
// message is atomic), in order, so [delete old, add new] replaces a record.
import type { TxtRecord } from '../../keys/record.ts';

export interface RecordChange {
  action: 'add' | 'delete';
  /** Owner name, without the final dot. */
  name: string;
  type: 'TXT' | 'CNAME';
  ttl: number;
  /** TXT: the whole value; CNAME: the target name, without the final dot. */
  value: string;
  /** TXT: the value in character-strings of at most 255 octets (RFC 6376 §3.6.2.2); CNAME: [value]. */
  strings: string[];
}

/** A record as the changes take it: a key's TXT record (src/keys/record.ts) or a CNAME (src/dns/delegation.ts). */
export type PublishableRecord = Pick<TxtRecord, 'name' | 'ttl' | 'value' | 'strings'> & { type: 'TXT' | 'CNAME' };

export type PublishResult =
  | { status: 'published' }
  /** Nothing was sent: a person publishes the records (the scheduler prints and notifies them). */
  | { status: 'manual' }
  /** Nothing was changed; `reason` is one line. The caller tries again later. */
  | { status: 'failed'; reason: string };

export interface Publisher {
  readonly method: 'manual' | 'rfc2136' | 'command';
  /** Applies every change, to records of `zone` only; never throws. */
  publish(zone: string, changes: readonly RecordChange[]): Promise<PublishResult>;
}

export function addRecord(record: PublishableRecord): RecordChange {
  return change('add', record);
}

export function deleteRecord(record: PublishableRecord): RecordChange {
  return change('delete', record);
}

/** Withdraws `old` and adds `next` in one step: a revocation republishes a key's record with an empty p=. */
export function replaceRecord(old: PublishableRecord, next: PublishableRecord): RecordChange[] {
  return [deleteRecord(old), addRecord(next)];
}

function change(action: RecordChange['action'], record: PublishableRecord): RecordChange {
  const strings = record.type === 'CNAME' ? [record.value] : [...record.strings];
  return { action, name: bare(record.name), type: record.type, ttl: record.ttl, value: record.type === 'CNAME' ? bare(record.value) : record.value, strings };
}

/** Lower case, without the final dot: how names are compared and stored here. */
export function bare(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}
