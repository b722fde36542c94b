// Several servers asked the same question: do they serve the same thing?
// They differ while a change propagates, or when a secondary was not updated.

export interface ServerView {
  server: string;
  status: string;
  /** The joined TXT values served, or null when the server gave no answer. */
  values: string[] | null;
}

/** One line naming who serves what, or null when every server serves the same. */
export function disagreement(views: ServerView[]): string | null {
  const key = (v: ServerView) => (v.values === null ? '(no answer)' : JSON.stringify([...v.values].sort()));
  if (new Set(views.map(key)).size <= 1) return null;
  const described = views.map((v) => `${v.server} ${v.status}${v.values === null ? '' : ` (${summary(v.values)})`}`);
  return `servers disagree: ${described.join(', ')} — a change still propagating, or a server that was not updated`;
}

function summary(values: string[]): string {
  if (values.length === 0) return 'no record';
  return values
    .map((v) => {
      const p = /(?:^|;)\s*p\s*=\s*([^;]*)/.exec(v)?.[1]?.replace(/\s+/g, '');
      if (p === undefined) return v.length > 40 ? `${v.slice(0, 37)}...` : v;
      return p === '' ? 'p= empty' : `p=...${p.slice(-12)}`;
    })
    .join(' + ');
}
