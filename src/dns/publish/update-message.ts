// The DNS UPDATE message (RFC 2136) that applies a list of record changes to
// one zone, as one atomic step (§3.4).
//
// dns-packet decodes the server's answer (rfc2136.ts) but does not build this
// message: it has no class NONE (its classes.js maps "NONE" to 0), which
// deleting one record needs (§2.5.4), and its typings expose no encoder for a
// single name or record, so the sections are written here.
import type { RecordChange } from './change.ts';
import { encodeName } from './wire.ts';

const OPCODE_UPDATE = 5;
const TYPE = { SOA: 6, TXT: 16, CNAME: 5 } as const;
const CLASS_IN = 1;
const CLASS_NONE = 254;

/**
 * Header (§2.2: opcode UPDATE, ZOCOUNT 1, PRCOUNT 0, UPCOUNT, ADCOUNT 0), zone
 * section (§2.3: the zone's name, type SOA, class IN), no prerequisites
 * (§2.4), then the update section in the order of `changes` (§3.4.2.1).
 */
export function updateMessage(id: number, zone: string, changes: readonly RecordChange[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(0, 6);
  header.writeUInt16BE(changes.length, 8);
  header.writeUInt16BE(0, 10);
  const zoneSection = Buffer.concat([encodeName(zone), u16(TYPE.SOA), u16(CLASS_IN)]);
  return Buffer.concat([header, zoneSection, ...changes.map(updateRecord)]);
}

/**
 * §2.5.1 add to an RRset: class IN, the record's TTL and data.
 * §2.5.4 delete an RR from an RRset: class NONE, TTL 0, the record's data.
 */
function updateRecord(change: RecordChange): Buffer {
  const rdata = change.type === 'TXT' ? txtData(change.strings) : encodeName(change.value);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPE[change.type], 0);
  fixed.writeUInt16BE(change.action === 'add' ? CLASS_IN : CLASS_NONE, 2);
  fixed.writeUInt32BE(change.action === 'add' ? change.ttl : 0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(change.name), fixed, rdata]);
}

/** RFC 1035 §3.3.14: one or more <character-string>s, each a length octet and at most 255 octets. */
function txtData(strings: readonly string[]): Buffer {
  if (strings.length === 0) throw new Error('a TXT record needs at least one string');
  return Buffer.concat(
    strings.flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8');
      if (bytes.length > 255) throw new Error(`a TXT string of ${bytes.length} octets, over 255`);
      return [Buffer.from([bytes.length]), bytes];
    }),
  );
}

function u16(value: number): Buffer {
  const buf = Buffer.alloc(2);
  buf.writeUInt16BE(value);
  return buf;
}
