// A message that cannot be made safe for transit. Thrown deep in the MIME walk
// and turned into an SMTP reply by normalize(); never leaves this folder.

export class Refusal extends Error {
  readonly code: number;
  constructor(code: number, text: string) {
    super(text);
    this.name = 'Refusal';
    this.code = code;
  }
}

/** "part 1.2", or "" for the message itself: where a change or a problem is. */
export function inPart(path: string): string {
  return path ? ` in part ${path}` : '';
}

/** A field name as quoted in a reply or a change line; hostile ones can be long. */
export function fieldLabel(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}...` : name;
}
