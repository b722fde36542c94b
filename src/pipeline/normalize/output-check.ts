// The last look at a normalized message, taken as it is written out: no line
// over 998 octets, no 8-bit octet for a 7-bit upstream, no NUL in the body.
import { isAscii } from 'node:buffer';
import { Refusal } from './refusal.ts';
import { LineScanner } from '../../message/mime/scan.ts';
import type { Output } from '../../message/mime/transfer-encoding.ts';

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class OutputCheck {
  private readonly lines = new LineScanner();
  private eightBit = false;
  private nul = false;
  /** Octets seen so far. */
  private written = 0;
  /** Until the body starts (after the first empty line): the last few octets, to find it across writes. */
  private tail: Buffer | null = Buffer.alloc(0);

  private readonly eightBitMime: boolean;
  constructor(eightBitMime: boolean) {
    this.eightBitMime = eightBitMime;
  }

  /** An Output that checks each piece before handing it on. */
  passTo(out: Output): Output {
    return (octets) => {
      this.see(octets);
      out(octets);
    };
  }

  get size(): number {
    return this.written;
  }

  see(octets: Buffer): void {
    this.lines.push(octets);
    if (!this.eightBit && !this.eightBitMime && !isAscii(octets)) this.eightBit = true;
    if (this.tail === null) {
      if (!this.nul && octets.indexOf(0) >= 0) this.nul = true;
    } else {
      this.findBody(octets);
    }
    this.written += octets.length;
  }

  /** Throws the refusal when something a hop would change is left. */
  end(): void {
    const longest = this.lines.end();
    if (longest > 0 || this.eightBit || this.nul) {
      const why = longest > 0 ? `a line of ${longest} octets is left` : this.nul ? 'a NUL octet is left' : '8-bit data is left';
      throw new Refusal(554, `5.6.0 The message could not be made safe for transit (${why})`);
    }
  }

  /** The body starts after the first CRLFCRLF, or right after a CRLF that opens the message (see splitMessage). */
  private findBody(octets: Buffer): void {
    const tail = this.tail!;
    const joined = tail.length > 0 ? Buffer.concat([tail, octets]) : octets;
    const joinedAt = this.written - tail.length;
    let body = -1;
    if (joinedAt === 0 && joined.length < 2) {
      this.tail = Buffer.from(joined);
      return;
    }
    if (joinedAt === 0 && joined[0] === 0x0d && joined[1] === 0x0a) body = 2;
    else {
      const at = joined.indexOf(CRLFCRLF);
      if (at >= 0) body = at + 4;
    }
    if (body < 0) {
      this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - 3)));
      return;
    }
    this.tail = null;
    if (joined.indexOf(0, body) >= 0) this.nul = true;
  }
}
