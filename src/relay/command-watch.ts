// Watches the command lines of one SMTP session as they arrive:
// - each line must end within `timeoutMs` of its first byte. smtp-server's
//   socketTimeout is an idle timer that every byte restarts, so a client
//   trickling one byte at a time would hold its session for ever;
// - a client that has not authenticated may send at most `maxCommands` lines.
//   smtp-server's maxAllowedUnauthenticatedCommands counts only when
//   authOptional is false and AUTH is on offer, neither of which holds here
//   (networks relay without AUTH; AUTH is hidden until STARTTLS).
// The message itself (DATA) is not watched: listen.dataTimeoutSeconds bounds it.
import type { Socket } from 'node:net';

export interface CommandWatchOptions {
  timeoutMs: number;
  /** Lines allowed before authenticated() is called; Infinity for clients that need no AUTH. */
  maxCommands: number;
  onTimeout(): void;
  onTooMany(): void;
}

export class CommandWatch {
  private readonly options: CommandWatchOptions;
  private socket?: Socket;
  private timer?: NodeJS.Timeout;
  private lines = 0;
  private counting: boolean;
  private paused = false;
  private stopped = false;
  private readonly onData = (chunk: Buffer) => this.data(chunk);

  constructor(options: CommandWatchOptions) {
    this.options = options;
    this.counting = Number.isFinite(options.maxCommands);
  }

  /** Watches `socket` (a new one after STARTTLS) instead of the previous one. */
  attach(socket: Socket): void {
    this.socket?.off('data', this.onData);
    this.clear();
    this.socket = socket;
    socket.on('data', this.onData);
  }

  /** The client authenticated: its lines are no longer counted. */
  authenticated(): void {
    this.counting = false;
  }

  /** A message is being received: its lines are not commands. */
  pause(): void {
    this.paused = true;
    this.clear();
  }

  resume(): void {
    this.paused = false;
  }

  stop(): void {
    this.stopped = true;
    this.socket?.off('data', this.onData);
    this.clear();
  }

  private data(chunk: Buffer): void {
    if (this.paused || this.stopped) return;
    const last = chunk.lastIndexOf(0x0a);
    if (last >= 0) {
      this.clear();
      if (this.counting) {
        for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) this.lines++;
        if (this.lines > this.options.maxCommands) {
          this.stop();
          return this.options.onTooMany();
        }
      }
    }
    // A line is under way (begun in this chunk or an earlier one): its clock runs from its first byte.
    if (last < chunk.length - 1 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.paused || this.stopped) return;
        this.stop();
        this.options.onTimeout();
      }, this.options.timeoutMs);
    }
  }

  private clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
