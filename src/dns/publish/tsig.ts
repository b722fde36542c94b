// TSIG (RFC 8945): the shared-secret HMAC that authenticates a dynamic update
// to the primary server and its answer to us. dns-packet decodes a TSIG
// record only as opaque bytes and computes no MAC, so both live here.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { UserError } from '../../common/errors.ts';
import { encodeName, lastRecordStart, readName } from './wire.ts';

export type TsigAlgorithm = 'hmac-sha256' | 'hmac-sha512';

export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

/** Seconds of clock difference allowed between us and the server (RFC 8945 §5.2.3 recommends 300). */
export const FUDGE = 300;
const TYPE_TSIG = 250;
const CLASS_ANY = 255;

/**
 * The secret of a TSIG key from its file: a bare base64 secret, or the key as
 * `keymgr -t NAME` (Knot, `secret: …`) or `tsig-keygen NAME` (BIND,
 * `secret "…";`) writes it. Like a private key, the file must be readable by
 * us alone. Throws a UserError saying how to mend it.
 */
export function readTsigKey(config: { name: string; algorithm: TsigAlgorithm; secretFile: string }): TsigKey {
  const file = config.secretFile;
  const where = `TSIG secret file ${file} of key ${config.name}`;
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode & 0o777;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new UserError(
        `${where} is missing`,
        `create it with: keymgr -t ${config.name} ${config.algorithm} > ${file} && chmod 600 ${file}, and give the server the same key`,
      );
    throw new UserError(
      `${where} cannot be read (${code ?? 'error'})`,
      `make it readable by the user dkim-relay runs as, and by no one else (chmod 600 ${file})`,
    );
  }
  if (mode & 0o077) {
    throw new UserError(
      `${where} is readable by others (mode ${mode.toString(8).padStart(4, '0')})`,
      `run: chmod 600 ${file} — and replace the key on the server too if others could read it`,
    );
  }
  // Line by line: a pattern anchored at every line start (m flag) with \s* runs backtracks quadratically.
  const lines = text.split('\n').map((l) => l.trim());
  const declared = firstMatch(lines, /^algorithm\s*(?::\s*)?"?([a-z0-9-]+)/i)?.toLowerCase();
  if (declared !== undefined && declared !== config.algorithm) {
    throw new UserError(`${where} is a ${declared} key, the configuration says ${config.algorithm}`, `set dns.publish[].tsig.algorithm: ${declared}`);
  }
  const quoted = firstMatch(lines, /^secret\s*(?::\s*)?"?([A-Za-z0-9+/]+={0,2})"?\s*;?$/i);
  const bare = lines.filter((l) => l && !l.startsWith('#'));
  const encoded = quoted ?? (bare.length === 1 ? bare[0] : undefined);
  if (encoded === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    throw new UserError(
      `${where} holds no base64 secret`,
      `write the key as keymgr -t ${config.name} ${config.algorithm} prints it, or the base64 secret alone`,
    );
  }
  return { name: config.name.replace(/\.$/, '').toLowerCase(), algorithm: config.algorithm, secret: Buffer.from(encoded, 'base64') };
}

interface TsigFields {
  keyName: string;
  algorithm: string;
  /** Seconds since 1970, 48 bits on the wire. */
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  /** 0, or BADSIG 16, BADKEY 17, BADTIME 18, BADTRUNC 22 (RFC 8945 §3). */
  error: number;
  other: Buffer;
}

/** The message with a TSIG record appended (RFC 8945 §5.1), and its MAC, which signs the answer too. */
export function signRequest(message: Buffer, key: TsigKey, now: Date): { signed: Buffer; mac: Buffer } {
  const fields: Omit<TsigFields, 'mac'> = {
    keyName: key.name,
    algorithm: key.algorithm,
    timeSigned: Math.floor(now.getTime() / 1000),
    fudge: FUDGE,
    originalId: message.readUInt16BE(0),
    error: 0,
    other: Buffer.alloc(0),
  };
  // RFC 8945 §4.3.1: the request's MAC covers the message and the TSIG variables.
  const mac = hmac(key, [message, variables(fields)]);
  const signed = Buffer.concat([message, tsigRecord({ ...fields, mac })]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, mac };
}

/** `tsigError`: the error the server reported in its TSIG record, when it did. */
export type ResponseCheck = { ok: true } | { ok: false; tsigError?: number; reason: string };

/**
 * Checks the TSIG of an answer to a request signed with `requestMac`
 * (RFC 8945 §5.3, §5.4): the same key, a MAC over the request MAC, the
 * answer without its TSIG record and the TSIG variables, and a time within
 * the fudge of ours. An answer without TSIG fails: anyone can forge it.
 */
export function checkResponse(response: Buffer, key: TsigKey, requestMac: Buffer, now: Date): ResponseCheck {
  let start: number;
  let fields: TsigFields;
  try {
    // RFC 8945 §5.3: the TSIG record is the last one of the additional section.
    const last = dnsPacket.decode(response).additionals?.at(-1);
    if (last?.type !== 'TSIG') return { ok: false, reason: 'the answer is not signed with TSIG' };
    fields = parseTsig(last.name.toLowerCase(), last.data);
    start = lastRecordStart(response);
  } catch (err) {
    return { ok: false, reason: `the answer's TSIG cannot be read (${(err as Error).message})` };
  }
  if (fields.error !== 0) return { ok: false, tsigError: fields.error, reason: `the server answered TSIG error ${tsigErrorName(fields.error)}` };
  if (fields.keyName !== key.name || fields.algorithm !== key.algorithm) {
    return { ok: false, reason: `the answer is signed with key ${fields.keyName} (${fields.algorithm}), not ${key.name} (${key.algorithm})` };
  }
  const unsigned = Buffer.from(response.subarray(0, start));
  unsigned.writeUInt16BE(fields.originalId, 0);
  unsigned.writeUInt16BE(unsigned.readUInt16BE(10) - 1, 10);
  const size = Buffer.alloc(2);
  size.writeUInt16BE(requestMac.length);
  const expected = hmac(key, [size, requestMac, unsigned, variables(fields)]);
  if (fields.mac.length !== expected.length || !timingSafeEqual(fields.mac, expected)) {
    return { ok: false, reason: 'the MAC of the answer is wrong: the server does not hold our secret, or the answer was forged' };
  }
  if (Math.abs(Math.floor(now.getTime() / 1000) - fields.timeSigned) > fields.fudge) {
    return { ok: false, reason: 'the answer was signed at a time too far from our clock' };
  }
  return { ok: true };
}

export function tsigErrorName(code: number): string {
  return ({ 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' } as Record<number, string>)[code] ?? `${code}`;
}

function hmac(key: TsigKey, parts: Buffer[]): Buffer {
  const h = createHmac(key.algorithm === 'hmac-sha256' ? 'sha256' : 'sha512', key.secret);
  for (const part of parts) h.update(part);
  return h.digest();
}

/** RFC 8945 §4.3.3: the TSIG variables, names in canonical form. */
function variables(f: Omit<TsigFields, 'mac' | 'originalId'>): Buffer {
  const fixed = Buffer.alloc(6);
  fixed.writeUInt16BE(CLASS_ANY, 0);
  fixed.writeUInt32BE(0, 2); // TTL
  const tail = Buffer.alloc(12);
  writeTime(tail, 0, f.timeSigned);
  tail.writeUInt16BE(f.fudge, 6);
  tail.writeUInt16BE(f.error, 8);
  tail.writeUInt16BE(f.other.length, 10);
  return Buffer.concat([encodeName(f.keyName), fixed, encodeName(f.algorithm), tail, f.other]);
}

/** RFC 8945 §4.2: NAME = key name, TYPE TSIG, CLASS ANY, TTL 0, then the RDATA. */
function tsigRecord(f: TsigFields): Buffer {
  const timing = Buffer.alloc(10);
  writeTime(timing, 0, f.timeSigned);
  timing.writeUInt16BE(f.fudge, 6);
  timing.writeUInt16BE(f.mac.length, 8);
  const trailer = Buffer.alloc(6);
  trailer.writeUInt16BE(f.originalId, 0);
  trailer.writeUInt16BE(f.error, 2);
  trailer.writeUInt16BE(f.other.length, 4);
  const rdata = Buffer.concat([encodeName(f.algorithm), timing, f.mac, trailer, f.other]);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPE_TSIG, 0);
  fixed.writeUInt16BE(CLASS_ANY, 2);
  fixed.writeUInt32BE(0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(f.keyName), fixed, rdata]);
}

function parseTsig(keyName: string, rdata: Buffer): TsigFields {
  const algorithm = readName(rdata, 0);
  let at = algorithm.end;
  const timeSigned = rdata.readUInt16BE(at) * 2 ** 32 + rdata.readUInt32BE(at + 2);
  const fudge = rdata.readUInt16BE(at + 6);
  const macSize = rdata.readUInt16BE(at + 8);
  at += 10;
  const mac = rdata.subarray(at, at + macSize);
  at += macSize;
  const otherLength = rdata.readUInt16BE(at + 4);
  if (at + 6 + otherLength > rdata.length) throw new Error('TSIG RDATA runs past its length');
  return {
    keyName,
    algorithm: algorithm.name,
    timeSigned,
    fudge,
    mac,
    originalId: rdata.readUInt16BE(at),
    error: rdata.readUInt16BE(at + 2),
    other: rdata.subarray(at + 6, at + 6 + otherLength),
  };
}

/** A 48-bit count of seconds (RFC 8945 §4.2, Time Signed). */
function writeTime(buf: Buffer, at: number, seconds: number): void {
  buf.writeUInt16BE(Math.floor(seconds / 2 ** 32), at);
  buf.writeUInt32BE(seconds % 2 ** 32, at + 2);
}

/** The first group of the first line that matches. */
function firstMatch(lines: string[], pattern: RegExp): string | undefined {
  for (const line of lines) {
    const match = pattern.exec(line);
    if (match) return match[1];
  }
  return undefined;
}
