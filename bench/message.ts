// The benchmark's messages: plain text from payroll@example.com, the domain
// every signer under test holds a key for, of a given total size.

export const SENDER = 'payroll@example.com';
export const RECIPIENT = 'alice@example.net';
export const DOMAIN = 'example.com';

const LINE = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';

/** A message of about `size` octets in all, CRLF line ends, no line starting with "." (no dot-stuffing needed). */
export function benchMessage(size: number, extraHeaders = ''): Buffer {
  const head =
    `From: Payroll <${SENDER}>\r\nTo: ${RECIPIENT}\r\nSubject: Payslip\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n` +
    `Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n${extraHeaders}\r\n`;
  // Whole lines only, so the size is met to within one line (73 octets).
  return Buffer.from(head + LINE.repeat(Math.max(1, Math.round((size - head.length) / LINE.length))));
}
