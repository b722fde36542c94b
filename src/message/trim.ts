// Trimming a set of characters off the ends of a string, with a loop. The
// regular expression /[ \t]+$/ looks like the same thing but is quadratic:
// tried at every position of a long run that something else follows, it
// walks the rest of the run each time (100 KB of spaces after a header name
// took seconds).

/** `text` without the characters of `set` at its end. */
export function trimEndOf(text: string, set: string): string {
  let end = text.length;
  while (end > 0 && holds(set, text.charCodeAt(end - 1))) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** `text` without the characters of `set` at its start. */
export function trimStartOf(text: string, set: string): string {
  let start = 0;
  while (start < text.length && holds(set, text.charCodeAt(start))) start++;
  return start === 0 ? text : text.slice(start);
}

/** `text` without the characters of `set` at either end. */
export function trimOf(text: string, set: string): string {
  return trimStartOf(trimEndOf(text, set), set);
}

/** Whether `set` holds the UTF-16 unit `code`: compared as numbers, a string per character would cost more than the scan. */
function holds(set: string, code: number): boolean {
  for (let i = 0; i < set.length; i++) if (set.charCodeAt(i) === code) return true;
  return false;
}
