// Fault cases: the key store becomes unreadable (see cases/key-store.ts).
import { test } from 'node:test';
import { canRun, casesOf, runCase } from './support/namespace.ts';

for (const c of casesOf('key-store')) test(c.fault, { skip: canRun === true ? false : canRun }, (t) => runCase(c.id, t));
