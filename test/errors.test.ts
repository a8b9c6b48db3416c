import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closestName, invalidParameterError, unknownNameError, XferError } from '../src/errors.js';

test('invalidParameterError follows the one message template', () => {
  const error = invalidParameterError('batchSize', 'positive integer', 1.5);
  assert.ok(error instanceof XferError);
  assert.equal(error.code, 'INVALID_ARGUMENT');
  assert.equal(error.name, 'XferError');
  assert.equal(
    error.message,
    'Expected positive integer for batchSize but received 1.5 of type number',
  );
});

test('unknownNameError suggests the closest known name and lists all', () => {
  const error = unknownNameError('backbone', 'vgg17', ['vgg16', 'vgg19', 'resnet50']);
  assert.match(
    error.message,
    /^unknown backbone 'vgg17'; did you mean 'vgg16'\? Known: vgg16, vgg19, resnet50$/,
  );
  assert.equal(closestName('xyzzy-long-name', ['vgg16']), undefined);
});
