// Finding, reading and validating the configuration file.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { UserError } from '../common/errors.ts';
import { configSchema, type Config } from './schema.ts';

export const DEFAULT_CONFIG_PATH = 'config/dkim-relay.yaml';

/** The embedded default: what `npm start` runs with no configuration of one's own. */
export const EMBEDDED_DEFAULT = { demo: { domain: 'example.com' } };

export interface LoadedConfig {
  config: Config;
  /** The file read, or null for the embedded default. */
  path: string | null;
}

/** --config, else $DKIM_RELAY_CONFIG, else config/dkim-relay.yaml, else the embedded default. */
export function loadConfig(explicitPath?: string): LoadedConfig {
  const path = explicitPath ?? process.env.DKIM_RELAY_CONFIG;
  if (path) return { config: parseConfig(readConfigFile(path), path), path };
  if (existsSync(DEFAULT_CONFIG_PATH)) {
    return { config: parseConfig(readConfigFile(DEFAULT_CONFIG_PATH), DEFAULT_CONFIG_PATH), path: DEFAULT_CONFIG_PATH };
  }
  return { config: validate(EMBEDDED_DEFAULT, 'embedded default'), path: null };
}

/** The file's text, or one line saying why it cannot be had. */
function readConfigFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const fix = 'check the --config path or DKIM_RELAY_CONFIG';
    switch (code) {
      case 'ENOENT':
      case 'ENOTDIR':
        throw new UserError(`configuration file ${path} does not exist`, fix);
      case 'EISDIR':
        throw new UserError(`configuration file ${path} is a directory`, `${fix}: name the file itself, e.g. ${join(path, 'dkim-relay.yaml')}`);
      case 'EACCES':
      case 'EPERM':
        throw new UserError(
          `configuration file ${path} cannot be read: permission denied`,
          'run as a user that may read it (and every directory above it), or change its mode',
        );
      default:
        throw new UserError(`configuration file ${path} cannot be read: ${code ?? (err as Error).message}`, fix);
    }
  }
}

/** Parses YAML text; an empty file means "all defaults". */
export function parseConfig(text: string, source: string): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem) {
    const where = problem.linePos?.[0] ? `line ${problem.linePos[0].line}, column ${problem.linePos[0].col}` : 'somewhere';
    throw new UserError(
      `${source}: YAML syntax error at ${where}: ${problem.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      'fix the YAML (indent with spaces, quote values containing ":" or "#")',
    );
  }
  return validate(doc.toJS() ?? {}, source);
}

function validate(raw: unknown, source: string): Config {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const others = result.error.issues.length - 1;
  // Rules in rules.ts carry their own way to mend the value.
  const hint = issue.code === 'custom' && typeof issue.params?.hint === 'string' ? issue.params.hint : 'see config/dkim-relay.example.yaml for every key';
  const more = others > 0 ? ` (and ${others} more problem${others === 1 ? '' : 's'} after it)` : '';
  throw new UserError(`${source}: ${describeIssue(issue, raw)}${more}`, hint);
}

const TYPE_NAMES: Partial<Record<string, string>> = { number: 'a number', string: 'text', boolean: 'true or false', array: 'a list', object: 'a map of keys' };

/** The value at `path` in the file as written. */
function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), raw);
}

/** A value as YAML showed it, for "not …": the text itself, shortened. */
function shown(value: unknown): string {
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'empty';
  if (typeof value === 'object') return 'a map of keys';
  return String(value);
}

/** One schema issue in an administrator's words: the key, what it must be, and what the file says. */
function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  const value = valueAt(raw, issue.path);
  // A rule's own message already says what to write; only the schema library's generic ones are reworded.
  if (issue.code !== 'unrecognized_keys' && !/^(Invalid input|Invalid option|Too big|Too small)\b/.test(issue.message)) return `${key}: ${issue.message}`;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const prefix = issue.path.length ? `${key}.` : '';
      return `unknown key ${issue.keys.map((k) => prefix + k).join(', ')}`;
    }
    case 'invalid_type': {
      const wanted = TYPE_NAMES[issue.expected] ?? issue.expected;
      return value === undefined ? `${key} is missing: it must be ${wanted}` : `${key}: must be ${wanted}, not ${shown(value)}`;
    }
    case 'invalid_value':
      return `${key}: ${shown(value)} is not one of ${issue.values.map(String).join(', ')}`;
    case 'too_big':
    case 'too_small': {
      if (issue.origin !== 'number') break;
      const bound = issue.code === 'too_big' ? issue.maximum : issue.minimum;
      const word = issue.code === 'too_big' ? (issue.inclusive ? 'at most' : 'below') : issue.inclusive ? 'at least' : 'above';
      return `${key}: must be ${word} ${String(bound)}, not ${shown(value)}`;
    }
  }
  return `${key}: ${issue.message}`;
}
