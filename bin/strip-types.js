// Loaded with --import when dkim-relay is installed under node_modules
// (npm install -g, or as a dependency): Node.js strips the types of
// TypeScript files itself everywhere but there, so this hook strips those
// of our own sources, in every thread (workers inherit --import).
// "strip" mode replaces types with blanks: line and column numbers stay.
import { readFileSync } from 'node:fs';
import { registerHooks, stripTypeScriptTypes } from 'node:module';

const sources = new URL('../src/', import.meta.url).href;

registerHooks({
  load(url, context, nextLoad) {
    if (!url.startsWith(sources) || !url.endsWith('.ts')) return nextLoad(url, context);
    return { format: 'module', source: stripTypeScriptTypes(readFileSync(new URL(url), 'utf8')), shortCircuit: true };
  },
});
