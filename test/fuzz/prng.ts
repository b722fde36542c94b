// A small deterministic PRNG (sfc32) for the fuzzer. Every case gets its own
// stream derived from (run seed, case index), so one case replays alone:
// FUZZ_SEED=<seed> FUZZ_ONLY=<case> reproduces exactly what case <case> sent
// (as far as the server's replies are the same, since sessions react to them).

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    // splitmix32 expands one 32-bit seed into sfc32's four words.
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (n <= 0) return 0;
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi], both included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** Small numbers are likelier: lengths that stay mostly short but sometimes get long. */
  skewed(max: number): number {
    const f = this.float();
    return Math.floor(f * f * f * (max + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** Picks by weight: [[weight, value], …]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((sum, [w]) => sum + w, 0);
    let x = this.float() * total;
    for (const [w, value] of items) {
      x -= w;
      if (x < 0) return value;
    }
    return items[items.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** Printable ASCII without spaces, for names and tokens. */
  token(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(0x21 + this.int(94));
    return s;
  }

  /** Lower-case letters and digits. */
  alnum(n: number): string {
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
    let s = '';
    for (let i = 0; i < n; i++) s += chars[this.int(chars.length)];
    return s;
  }
}

/** The seed of case `index` in a run seeded with `seed`. */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seed from text: a decimal number is taken as is, anything else is hashed. */
export function parseSeed(text: string): number {
  if (/^\d+$/.test(text)) return Number(BigInt(text) & 0xffffffffn);
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

export interface FuzzSettings {
  seed: number;
  cases: number;
  /** FUZZ_ONLY: run just these case indexes (comma separated), to replay a failure. */
  only?: number[];
}

/** FUZZ_SEED (default: random, printed), FUZZ_CASES (default `defaultCases`), FUZZ_ONLY. */
export function settingsFromEnv(defaultCases: number, env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const seed = env.FUZZ_SEED ? parseSeed(env.FUZZ_SEED) : (Math.random() * 4294967296) >>> 0;
  const cases = env.FUZZ_CASES ? Number.parseInt(env.FUZZ_CASES, 10) : defaultCases;
  if (!Number.isSafeInteger(cases) || cases < 0) throw new Error(`FUZZ_CASES must be a whole number, got ${env.FUZZ_CASES}`);
  const only = env.FUZZ_ONLY
    ? env.FUZZ_ONLY.split(',')
        .map((s) => Number.parseInt(s.trim(), 10))
        .filter((n) => Number.isSafeInteger(n) && n >= 0)
    : undefined;
  return { seed, cases, only: only && only.length > 0 ? only : undefined };
}
