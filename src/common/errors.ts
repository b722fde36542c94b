// Errors meant for the person at the keyboard: what is wrong, and how to mend it.
// The CLI prints them as one line and exits 2; anything else is a bug.

export class UserError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'UserError';
    this.hint = hint;
  }

  /** "what is wrong — how to mend it" */
  toLine(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}
