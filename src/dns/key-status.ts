// What DNS serves for one key, judged against the key store: a status and
// the lint findings, each with its fix. Pure: the lookup is done elsewhere.
import { createPublicKey } from 'node:crypto';
import type { Algorithm } from '../keys/key-material.ts';
import type { KeyState } from '../keys/store.ts';
import type { DnsAnswer } from './dns-client.ts';
import { finding, type Finding } from './finding.ts';
import { parseTagList } from './tag-list.ts';

export type RecordStatus = 'match' | 'missing' | 'mismatch' | 'malformed' | 'revoked' | 'stale' | 'temperror';

/** Statuses that mean a record that must be published is not (exit 1). */
export const FAILING: readonly RecordStatus[] = ['missing', 'mismatch', 'malformed', 'temperror'];

export interface ExpectedKey {
  algorithm: Algorithm;
  /** `removed` is the lifecycle's last step: nothing must be published any more. */
  state: KeyState | 'removed';
  /** The p= value the store publishes (base64). */
  publicData: string;
}

export interface KeyJudgement {
  status: RecordStatus;
  findings: Finding[];
}

/** Longer TTLs make a rotation wait: a new or withdrawn record is seen only when caches expire. */
export const MAX_TTL = 86400;

const DKIM_RECORD = /^\s*v\s*=\s*DKIM1\b|(^|;)\s*p\s*=/i;

export function judgeKey(key: ExpectedKey, answer: DnsAnswer): KeyJudgement {
  if (!answer.ok)
    return {
      status: 'temperror',
      findings: [
        finding('fail', 'temperror', answer.reason, 'check that the server answers (or name another with --nameserver); receivers see a temporary error too'),
      ],
    };
  const findings: Finding[] = [];
  const records = answer.records.filter((r) => r.type === 'TXT');
  const dkim = records.filter((r) => DKIM_RECORD.test(r.strings.join('')));

  if (key.state === 'removed') {
    // Nothing must be published for a removed key; anything still served keeps old signatures verifiable.
    if (dkim.length === 0) return { status: 'match', findings };
    return { status: 'stale', findings: [finding('warn', 'stale', 'DNS still serves a record for a key the store has removed', 'delete the TXT record')] };
  }
  if (records.length > 1) {
    findings.push(
      finding(
        'fail',
        'two-records',
        `${records.length} TXT records at one name: verifiers need exactly one and may pick either`,
        'delete all but the record `dkim-relay keys dns` prints',
      ),
    );
  }
  if (dkim.length === 0) {
    return {
      status: 'missing',
      findings: [...findings, finding('fail', 'missing', 'DNS serves no DKIM record here', 'publish the record `dkim-relay keys dns` prints')],
    };
  }
  if (dkim.length > 1) return { status: 'malformed', findings };

  const record = dkim[0]!;
  const value = record.strings.join(''); // RFC 6376 §3.6.2.2: strings are joined with nothing between them
  findings.push(...transportFindings(answer.transport, record.ttl));
  const whitespace = joinWhitespace(record.strings);
  if (whitespace) findings.push(whitespace);

  const parsed = parseTagList(value);
  if (!parsed.ok)
    return {
      status: 'malformed',
      findings: [...findings, finding('fail', 'syntax', `the record does not parse: ${parsed.problem}`, 'publish the record `dkim-relay keys dns` prints')],
    };
  const tags = parsed.tags;
  if (tags.has('v') && (parsed.order[0] !== 'v' || tags.get('v') !== 'DKIM1')) {
    return {
      status: 'malformed',
      findings: [...findings, finding('fail', 'version', 'v= must come first and be DKIM1 (RFC 6376 §3.6.1)', 'start the record with "v=DKIM1;"')],
    };
  }
  const p = tags.get('p');
  if (p === undefined)
    return {
      status: 'malformed',
      findings: [...findings, finding('fail', 'no-p', 'the record has no p= tag', 'publish the record `dkim-relay keys dns` prints')],
    };

  const flags = (tags.get('t') ?? '').split(':').map((f) => f.trim());
  if (flags.includes('y'))
    findings.push(
      finding(
        'warn',
        't-y',
        't=y (testing mode) is still on: receivers may treat failing mail as if unsigned',
        'remove t=y from the record once mail verifies',
      ),
    );
  const hashes = tags.has('h')
    ? tags
        .get('h')!
        .split(':')
        .map((h) => h.trim().toLowerCase())
    : undefined;
  if (hashes?.includes('sha1'))
    findings.push(finding('warn', 'h-sha1', 'h= allows sha1, which receivers no longer accept (RFC 8301)', 'remove h= from the record, or make it h=sha256'));

  const k = (tags.get('k') ?? 'rsa').toLowerCase();
  if (k !== key.algorithm) {
    return {
      status: 'mismatch',
      findings: [
        ...findings,
        finding('fail', 'k-mismatch', `k=${k} but the key is ${key.algorithm}`, `set k=${key.algorithm}, as \`dkim-relay keys dns\` prints`),
      ],
    };
  }
  const published = p.replace(/\s+/g, ''); // FWS inside p= is allowed (RFC 6376 §3.6.1)
  if (published === '') {
    if (key.state === 'revoked') return { status: 'revoked', findings };
    return {
      status: 'mismatch',
      findings: [
        ...findings,
        finding(
          'fail',
          'revoked-in-dns',
          `DNS publishes the key as revoked (empty p=) but it is ${key.state}`,
          'publish the record `dkim-relay keys dns` prints',
        ),
      ],
    };
  }
  if (key.state === 'revoked') {
    return {
      status: 'stale',
      findings: [
        ...findings,
        finding(
          'warn',
          'stale',
          'DNS still serves a public key for a revoked key, so old signatures still verify',
          'publish the record with an empty p=, as `dkim-relay keys dns` prints',
        ),
      ],
    };
  }

  const bits = keyBits(k, published);
  if (bits === null) {
    const truncated = key.publicData.startsWith(published);
    return {
      status: 'malformed',
      findings: [
        ...findings,
        truncated
          ? finding(
              'fail',
              'p-truncated',
              `p= is cut off after ${published.length} of ${key.publicData.length} characters (a DNS panel that stops at 255?)`,
              'publish the whole value, as several strings of at most 255 characters (`keys dns --format zone`)',
            )
          : finding('fail', 'p-invalid', `p= is not a valid ${k} public key`, 'publish the record `dkim-relay keys dns` prints'),
      ],
    };
  }
  if (k === 'rsa' && bits < 1024)
    findings.push(
      finding('fail', 'rsa-weak', `RSA key of ${bits} bits: receivers ignore keys under 1024 bits (RFC 8301)`, 'generate a 2048-bit key and rotate to it'),
    );
  else if (k === 'rsa' && bits < 2048)
    findings.push(finding('advice', 'rsa-short', `RSA key of ${bits} bits: 2048 is the usual size now`, 'generate a 2048-bit key and rotate to it'));

  if (published !== key.publicData) {
    return {
      status: 'mismatch',
      findings: [
        ...findings,
        finding('fail', 'p-differs', 'p= is a different key from the one in the key store', 'publish the record `dkim-relay keys dns` prints'),
      ],
    };
  }
  if (hashes && !hashes.includes('sha256')) {
    return {
      status: 'mismatch',
      findings: [
        ...findings.filter((f) => f.code !== 'h-sha1'),
        finding('fail', 'h-sha1', `h=${hashes.join(':')} refuses the sha256 signatures the relay makes`, 'remove h= from the record, or make it h=sha256'),
      ],
    };
  }
  return { status: 'match', findings };
}

function transportFindings(transport: 'udp' | 'tcp', ttl: number): Finding[] {
  const out: Finding[] = [];
  if (transport === 'tcp') {
    out.push(
      finding(
        'warn',
        'tcp-only',
        'the answer is too large for UDP and arrives only over TCP; verifiers that do not retry over TCP give a temporary error',
        'use a 2048-bit RSA key, or make sure the servers support EDNS',
      ),
    );
  }
  if (ttl > MAX_TTL) {
    out.push(
      finding(
        'advice',
        'long-ttl',
        `TTL ${ttl} s: a rotation has to wait that long for caches to see a change`,
        `lower the TTL to ${MAX_TTL} s (one day) or less`,
      ),
    );
  }
  return out;
}

/**
 * Whitespace where two strings meet, inside a tag value: the mark of a DNS
 * panel that split the value itself and put a space at the split. Whitespace
 * next to ";" is ordinary separation between tags.
 */
function joinWhitespace(strings: string[]): Finding | null {
  let at = 0;
  for (let i = 0; i < strings.length - 1; i++) {
    at += strings[i]!.length;
    const joined = strings.join('');
    let start = at;
    let end = at;
    while (start > 0 && /\s/.test(joined[start - 1]!)) start--;
    while (end < joined.length && /\s/.test(joined[end]!)) end++;
    if (start === end || start === 0 || end === joined.length) continue;
    if (joined[start - 1] === ';' || joined[end] === ';') continue;
    return finding(
      'warn',
      'join-whitespace',
      `whitespace where strings ${i + 1} and ${i + 2} meet, inside a tag value; strings are joined with nothing between them (RFC 6376 §3.6.2.2)`,
      'remove the space at the split, or paste the value as separate quoted strings',
    );
  }
  return null;
}

/** Modulus size of an RSA p=, 256 for a 32-byte Ed25519 key, null when p= is no such key. */
function keyBits(k: string, p: string): number | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p)) return null;
  const bytes = Buffer.from(p, 'base64');
  if (k === 'ed25519') return bytes.length === 32 ? 256 : null;
  if (k !== 'rsa') return null;
  try {
    const key = createPublicKey({ key: bytes, format: 'der', type: 'spki' });
    return key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails!.modulusLength! : null;
  } catch {
    return null;
  }
}
