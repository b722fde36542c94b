// What the DNS publisher must change so DNS serves what a key's state says,
// at the name receivers look up (in delegated mode: the CNAME's target in
// the relay's zone). Derived from the state alone, and safe to apply again
// (RFC 2136 §3.4.2: adding a record that exists, or deleting one that does
// not, changes nothing), so a change that failed is simply retried.
//
//   pending, active, retiring   add the record with the public key
//   revoked                     replace it by its empty-p= form, in one update
//   removed                     delete both forms
import type { Delegation } from '../dns/delegation.ts';
import { delegatedTxtRecord } from '../dns/delegation.ts';
import { addRecord, deleteRecord, replaceRecord, type RecordChange } from '../dns/publish/change.ts';
import { txtRecord, type RecordSource, type TxtRecord } from '../keys/record.ts';

/** The key's TXT record as its state says, where it is published. */
export function keyRecord(key: RecordSource, delegation: Delegation | undefined): TxtRecord {
  return delegation ? delegatedTxtRecord(key, delegation) : txtRecord(key);
}

export function changesFor(key: RecordSource, delegation: Delegation | undefined): RecordChange[] {
  const live = keyRecord({ ...key, state: 'active' }, delegation);
  const revoked = keyRecord({ ...key, state: 'revoked' }, delegation);
  switch (key.state) {
    case 'revoked':
      return replaceRecord(live, revoked);
    case 'removed':
      return [deleteRecord(live), deleteRecord(revoked)];
    default:
      return [addRecord(live)];
  }
}
