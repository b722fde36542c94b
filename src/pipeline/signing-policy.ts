// The signing options for one domain: the global settings with the
// domain's own overrides on top.
import { durationSeconds } from '../config/duration.ts';
import type { SigningConfig } from '../config/schema.ts';
import type { Canonicalization, SignOptions } from '../signing/signer.ts';

export function signOptionsFor(config: SigningConfig, domain: string): SignOptions {
  const own = config.domains[domain] ?? {};
  const [header, body] = (own.canonicalization ?? config.canonicalization).split('/') as [Canonicalization, Canonicalization?];
  return {
    headerCanonicalization: header,
    // RFC 6376 §3.5: "c=relaxed" alone means relaxed headers, simple body.
    bodyCanonicalization: body ?? 'simple',
    headers: own.headers ?? config.headers,
    oversign: own.oversign ?? config.oversign,
    expiresInSeconds: config.expireAfter ? durationSeconds(config.expireAfter) : undefined,
    bodyLength: config.bodyLength,
  };
}
