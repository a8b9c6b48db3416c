import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import { OrtModel } from '../src/engine/ort.js';
import * as tf from '../src/engine/tf.js';

test('a batch larger than maxBatch runs in chunks with the same result as one run', async () => {
  await initBackend();
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ filters: 4, kernelSize: 3, inputShape: [8, 8, 3], name: 'conv' }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
    ],
  });
  const x = tf.randomUniform([11, 8, 8, 3], 0, 1, 'float32', 3);
  const whole = await OrtModel.fromLayersModel(model, { imageSize: [8, 8], maxBatch: 64 });
  // 11 images in chunks of 4: 4 + 4 + 3, the last chunk partial.
  const chunked = await OrtModel.fromLayersModel(model, { imageSize: [8, 8], maxBatch: 4 });
  const a = await whole.run(x);
  const b = await chunked.run(x);
  assert.deepEqual(b.shape, [11, 4]);
  const chunkDiff = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
  assert.ok(chunkDiff < 1e-6, `chunked vs whole differ by ${chunkDiff}`);
  const reference = model.predict(x) as tf.Tensor;
  const diff = tf.max(tf.abs(tf.sub(b, reference))).dataSync()[0]!;
  assert.ok(diff < 1e-5, `ORT vs tfjs differ by ${diff}`);
  await assert.rejects(
    OrtModel.fromLayersModel(model, { imageSize: [8, 8], maxBatch: 0 }),
    /maxBatch/,
  );
  await Promise.all([whole.release(), chunked.release()]);
  tf.dispose([x, a, b, reference]);
});
