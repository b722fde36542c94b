// Preloaded (node --import) into a run of the normalization tests: every
// import of normalize() gets the cross-checking one of cross-check.ts, so
// each message those tests normalize is also normalized from a file.
import { registerHooks } from 'node:module';

const REAL = '/src/pipeline/normalize/index.ts';
const WRAPPER = new URL('./cross-check.ts', import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    if (resolved.url.endsWith(REAL) && context.parentURL !== WRAPPER) return { ...resolved, url: WRAPPER };
    return resolved;
  },
});
