import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTaint, parseTaints, TaintError } from '../../src/core/taints.js';

test('the default taint is azure.com/aci:NoSchedule', () => {
  assert.deepEqual(parseTaints(undefined), [{ key: 'azure.com/aci', effect: 'NoSchedule' }]);
  assert.deepEqual(parseTaints([]), [{ key: 'azure.com/aci', effect: 'NoSchedule' }]);
});

test('none means no taint, and several taints are kept in order', () => {
  assert.deepEqual(parseTaints(['none']), []);
  assert.deepEqual(parseTaints(['a=b:NoExecute', 'example.com/x:PreferNoSchedule']), [
    { key: 'a', value: 'b', effect: 'NoExecute' },
    { key: 'example.com/x', effect: 'PreferNoSchedule' },
  ]);
});

test('malformed taints are refused with a message naming the problem', () => {
  assert.throws(
    () => parseTaint('nokey'),
    (e: unknown) => e instanceof TaintError && /key\[=value\]:Effect/.test(e.message),
  );
  assert.throws(() => parseTaint('a:Sometimes'), /effect must be one of/);
  assert.throws(() => parseTaint('bad key:NoSchedule'), /invalid key/);
  assert.throws(() => parseTaint('k=bad value:NoSchedule'), /invalid value/);
  assert.throws(() => parseTaints(['none', 'a:NoSchedule']), /cannot be combined/);
});
