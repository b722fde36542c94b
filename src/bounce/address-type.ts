// Addresses as a message/delivery-status part types them (RFC 3464 §2.1.2:
// address-type ";" generic-address). The part stays 7-bit, so a receiver
// without SMTPUTF8 reads it: an ASCII address is "rfc822; addr", an
// internationalized one is "utf-8; " in the 7-bit utf-8-addr-xtext form of
// RFC 6533 §3, each character outside QCHAR written as \x{HEX}. The 8-bit
// forms (utf-8-address, utf-8-addr-unitext) belong in
// message/global-delivery-status only, which needs SMTPUTF8 end to end.

/** A field line has at most 998 octets (RFC 5322 §2.1.1): longer values are cut. */
const MAX_VALUE = 900;

/** RFC 6533 §3 QCHAR: printable ASCII except "+", "=" and "\". */
const QCHAR = /^[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]$/;

/**
 * utf-8-addr-xtext: HEXPOINT is upper-case hex without leading zeros, two
 * digits at least ("\x{2B}" for "+", "\x{E9}" for "é", "\x{4E2D}").
 */
export function utf8AddrXtext(address: string): string {
  let out = '';
  for (const c of address) {
    const point = c.codePointAt(0)!;
    if (point === 0) continue; // NUL has no HEXPOINT
    const piece = QCHAR.test(c) ? c : `\\x{${point.toString(16).toUpperCase().padStart(2, '0')}}`;
    if (out.length + piece.length > MAX_VALUE) break;
    out += piece;
  }
  return out;
}

const isPrintableAscii = (s: string): boolean => /^[\x21-\x7e]+$/.test(s);

/** "rfc822; bob@example.net", or "utf-8; j\x{F6}rg@example.net". */
export function typedAddress(address: string): string {
  if (isPrintableAscii(address) && address.length <= MAX_VALUE) return `rfc822; ${address}`;
  return `utf-8; ${utf8AddrXtext(address)}`;
}

/** RFC 3461 §4.2 addr-type: an atom. */
const ADDR_TYPE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/;

/**
 * Original-Recipient from ORCPT as smtp-server gives it: "addr-type;address",
 * xtext already decoded (RFC 3461 §4.2). Its own type is kept when the
 * address fits it in 7 bits; a non-ASCII address is written as utf-8
 * (RFC 6533 §3). Undefined when there is no address to report.
 */
export function originalRecipientValue(orcpt: string | undefined): string | undefined {
  if (orcpt === undefined) return undefined;
  const semi = orcpt.indexOf(';');
  if (semi <= 0) return undefined;
  const type = orcpt.slice(0, semi).trim();
  const address = orcpt.slice(semi + 1).trim();
  if (!ADDR_TYPE.test(type) || address === '') return undefined;
  // A utf-8 ORCPT arrives in the xtext or unitext form: decode it so it is not escaped twice.
  if (type.toLowerCase() === 'utf-8') return `utf-8; ${utf8AddrXtext(decodeEmbedded(address))}`;
  if (!isPrintableAscii(address) || address.length > MAX_VALUE) return `utf-8; ${utf8AddrXtext(address)}`;
  return `${type.toLowerCase()}; ${address}`;
}

/** RFC 6533 §3 EmbeddedUnicodeChar "\x{HEX}" back to its character. */
function decodeEmbedded(value: string): string {
  return value.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (whole, hex: string) => {
    const point = parseInt(hex, 16);
    return point > 0 && point <= 0x10ffff ? String.fromCodePoint(point) : whole;
  });
}
