// Fault cases: the smart host misbehaves (see cases/smart-host.ts).
import { test } from 'node:test';
import { canRun, casesOf, runCase } from './support/namespace.ts';

for (const c of casesOf('smart-host')) test(c.fault, { skip: canRun === true ? false : canRun }, (t) => runCase(c.id, t));
