// Fault cases: resolvers without a route, silent, or answering garbage (see cases/dns.ts).
import { test } from 'node:test';
import { canRun, casesOf, runCase } from './support/namespace.ts';

for (const c of casesOf('dns')) test(c.fault, { skip: canRun === true ? false : canRun }, (t) => runCase(c.id, t));
