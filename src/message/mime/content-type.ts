// What a MIME entity declares about its body: Content-Type (RFC 2045 §5) and
// Content-Transfer-Encoding (§6). Malformed values read as the RFC defaults.
import { parseHeaderValue } from '../../smtp/nodemailer-internals.ts';
import { fieldValue, fieldsNamed, type HeaderField } from '../header.ts';

export interface ContentInfo {
  /** Lower-case "type/subtype". */
  type: string;
  /** Parameters by lower-case name, e.g. boundary. */
  params: Record<string, string>;
  /** Whether a Content-Type field is present at all. */
  declared: boolean;
  /** Lower-case transfer encoding; "7bit" when absent. */
  encoding: string;
}

/** Reads the first Content-Type and Content-Transfer-Encoding, as most readers do. */
export function contentInfo(fields: HeaderField[], defaultType: string): ContentInfo {
  const ct = fieldsNamed(fields, 'Content-Type')[0];
  const cte = fieldsNamed(fields, 'Content-Transfer-Encoding')[0];
  let type = defaultType;
  let params: Record<string, string> = {};
  if (ct) {
    const parsed = parseHeaderValue(fieldValue(ct), { stripComments: true });
    const value = parsed.value.toLowerCase();
    // RFC 2045 §5.2: an unreadable Content-Type means text/plain.
    type = /^[!#-'*+.0-9A-Z^-~-]+\/[!#-'*+.0-9A-Z^-~-]+$/i.test(value) ? value : 'text/plain';
    params = parsed.params;
  }
  const encoding = cte ? parseHeaderValue(fieldValue(cte), { stripComments: true }).value.toLowerCase() : '';
  return { type, params, declared: ct !== undefined, encoding: encoding || '7bit' };
}

/** Encodings whose body is the content itself, octet for octet. */
export function isIdentityEncoding(encoding: string): boolean {
  return encoding === '7bit' || encoding === '8bit' || encoding === 'binary';
}
