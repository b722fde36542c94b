// What every command needs: the configuration, and (for most) the key store.
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import { requireUsableFiles } from '../config/file-check.ts';
import { openKeyStore } from '../keys/open-store.ts';
import type { KeyStore } from '../keys/key-store.ts';

export interface GlobalArgs {
  config?: string;
  json?: boolean;
}

/** The configuration, validated; the files it names are not read (see checkedConfig). */
export function configFrom(args: GlobalArgs): LoadedConfig {
  return loadConfig(args.config);
}

/** The configuration and every file it names, checked: for `serve`, its reload and `config check`. */
export function checkedConfig(args: GlobalArgs): LoadedConfig {
  const loaded = loadConfig(args.config);
  requireUsableFiles(loaded);
  return loaded;
}

/**
 * Opens the store named by the configuration, runs `use`, and closes it again.
 * Only commands that add keys pass `create`: any other, run from the wrong
 * directory, would otherwise start an empty store where the relay never looks.
 */
export async function withStore<T>(
  args: GlobalArgs,
  use: (store: KeyStore, loaded: LoadedConfig) => T | Promise<T>,
  options: { create?: boolean } = {},
): Promise<T> {
  const loaded = configFrom(args);
  // A command runs once: it never needs to look for other relays' changes.
  const store = await openKeyStore(loaded.config.keys, { create: options.create ?? false, refreshMs: 0 });
  warnIfWasExposed(store, loaded.config.keys.dir);
  try {
    return await use(store, loaded);
  } finally {
    await store.close();
  }
}

/**
 * Opening the store made its directory 0700: said on stderr, as serve logs it,
 * when key files were there to read (a fresh, empty keys/ is no news).
 */
export function warnIfWasExposed(store: KeyStore, dir: string): void {
  if (store.exposedKeyFiles > 0)
    process.stderr.write(
      `dkim-relay: warning: key store directory ${dir} was readable by others while it held ${store.exposedKeyFiles} key file(s); now 0700 — if others could log in here, rotate those keys\n`,
    );
}

/** A check failed (verification, self-check): exit 1, as the exit-status table in docs/operations-and-monitoring.md says. */
export class CheckFailed extends Error {}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Columns padded to the widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
