import test from 'ava';
import { ops } from '../lib';
import { reference } from '../lib/testing';
import { opCases } from './cases';
import { checkFiniteDifferences, compareImplementations } from './harness';

for (const c of opCases) {
  test(`${c.name}: optimized matches reference, forward and backward`, (t) => {
    compareImplementations(t, c, ops, reference);
  });
  if (c.finiteDifference) {
    test(`${c.name}: gradients match central finite differences`, (t) => {
      checkFiniteDifferences(t, c, ops);
    });
  }
}
