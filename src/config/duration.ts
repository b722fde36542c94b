// "90s", "30m", "12h", "7d", "2w" → seconds.

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

export function durationSeconds(text: string): number {
  const match = /^(\d+)([smhdw])$/.exec(text);
  if (!match) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * UNIT_SECONDS[match[2]!]!;
}
