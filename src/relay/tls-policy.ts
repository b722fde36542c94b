// What TLS the listeners speak (both implicit TLS and STARTTLS): TLS 1.2 or
// newer; on TLS 1.2 only forward-secret AEAD suites (RFC 7525 §4.2, as
// Mozilla's "intermediate" profile), so no static-RSA key exchange and no CBC
// or SHA-1 suites. TLS 1.3 suites are all AEAD and forward-secret: OpenSSL's
// defaults stay, since `ciphers` below names none of them.
import type { SecureVersion } from 'node:tls';

export const DEFAULT_MIN_VERSION: SecureVersion = 'TLSv1.2';

export const DEFAULT_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
