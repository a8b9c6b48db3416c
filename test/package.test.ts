import assert from 'node:assert/strict';
import { test } from 'node:test';

test('the package imports by its own name and exposes tf and the backend', async () => {
  // Self-reference through package.json's exports map: what a user's `import ... from 'xfer'` gets.
  const xfer = await import('xfer');
  assert.equal(typeof xfer.tf.layers.dense, 'function');
  assert.equal(typeof xfer.tf.tensor, 'function');
  const backend = await xfer.initBackend();
  assert.equal(backend, process.env.XFER_BACKEND || 'wasm');
  assert.equal(xfer.tf.getBackend(), backend);
});
