// PostgreSQL URLs as the configuration gives them (keys.database), without
// loading the client: checking a configuration needs no database driver.

/** True for a URL that names PostgreSQL. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

/** The URL with any password taken out, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '';
    return parsed.toString();
  } catch {
    return 'the configured PostgreSQL URL';
  }
}
