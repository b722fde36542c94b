// Tag=value lists as DKIM key records (RFC 6376 §3.2) and DMARC records
// (RFC 7489 §6.3) write them: "v=DKIM1; k=rsa; p=…".

export type TagList = { ok: true; tags: Map<string, string>; order: string[] } | { ok: false; problem: string };

/** Parses a tag list; whitespace around tags and values is not part of them (FWS, RFC 6376 §3.2). */
export function parseTagList(text: string): TagList {
  const tags = new Map<string, string>();
  const order: string[] = [];
  const parts = text.split(';');
  if (parts.length > 1 && parts.at(-1)!.trim() === '') parts.pop(); // a trailing ";" is allowed
  for (const part of parts) {
    const at = part.indexOf('=');
    const name = (at < 0 ? part : part.slice(0, at)).trim();
    if (at < 0 || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
      return { ok: false, problem: `"${part.trim()}" is not a tag=value pair` };
    }
    if (tags.has(name)) return { ok: false, problem: `the tag ${name}= appears twice` };
    tags.set(name, part.slice(at + 1).trim());
    order.push(name);
  }
  return { ok: true, tags, order };
}
