// A pino JSON line as one line a person reads in a terminal or journalctl:
//   2026-12-06T01:02:03.456Z INFO  relay listening host=127.0.0.1 plain=2525
// Fields keep their names; a value with spaces, quotes or '=' is quoted as
// JSON, so the line still splits back into its fields.

/** Fields every line has, shown in their own places or not at all. */
const PLACED = new Set(['time', 'level', 'msg', 'service']);

export function textLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = String(entry.level ?? '')
    .toUpperCase()
    .padEnd(5);
  const fields = Object.entries(entry)
    .filter(([key, value]) => !PLACED.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${fieldValue(value)}`);
  return `${[entry.time, level, entry.msg ?? '', ...fields].filter((part) => part !== undefined).join(' ')}\n`;
}

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}
