import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { saveModel } from '../src/weights/index.js';
import { jsonLines, runXfer } from './helpers/cli.js';

// These run the built CLI (bin/xfer.js → dist/): `npm test` builds first.

let dir: string;
before(async () => {
  await initBackend();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xfer-cli-bench-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('xfer benchmark', () => {
  test('--json prints one line with the throughput and the setup', async () => {
    const result = await runXfer([
      'benchmark',
      'mobilenet_v2',
      '--no-top',
      '--image-size',
      '32',
      '--batch-size',
      '2',
      '--images',
      '4',
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const [line] = jsonLines(result.stdout);
    assert.ok(line, result.stdout);
    assert.equal(line.engine, 'onnxruntime');
    assert.equal(line.batchSize, 2);
    assert.deepEqual(line.imageSize, [32, 32]);
    assert.equal(line.images, 4);
    assert.equal(typeof line.backend, 'string');
    assert.ok(line.imagesPerSecond > 0 && Number.isFinite(line.imagesPerSecond));
    // Progress on stderr (plain lines, not a terminal): the warm-up batch and the two timed ones.
    assert.match(result.stderr, /benchmark MobileNetV2: 0\/3 batches\n/);
    assert.match(result.stderr, /benchmark MobileNetV2: 3\/3 batches\n/);
  });

  test('an unknown engine is a usage error', async () => {
    const result = await runXfer(['benchmark', 'vgg16', '--engine', 'torch']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /expected onnxruntime or tfjs, got 'torch'/);
  });
});

describe('xfer export --format onnx', () => {
  test('writes a file ONNX Runtime runs to the same outputs as tfjs', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          filters: 4,
          kernelSize: 3,
          strides: 2,
          padding: 'same',
          inputShape: [9, 9, 3],
          activation: 'relu',
        }),
        tf.layers.batchNormalization(),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 2, activation: 'softmax' }),
      ],
    });
    const modelDir = path.join(dir, 'model');
    await saveModel(model, modelDir);
    const output = path.join(dir, 'out', 'model.onnx');
    const result = await runXfer(['export', modelDir, '--format', 'onnx', '-o', output, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const [line] = jsonLines(result.stdout);
    assert.equal(line!.path, output);
    assert.equal(line!.foldedBatchNorms, 0); // a ReLU sits between the conv and the BN

    const session = await ort.InferenceSession.create(output);
    const x = tf.randomUniform([3, 9, 9, 3], -1, 1, 'float32', 9);
    const feed = {
      [session.inputNames[0]!]: new ort.Tensor(
        'float32',
        x.dataSync() as Float32Array,
        [3, 9, 9, 3],
      ),
    };
    const got = (await session.run(feed))[session.outputNames[0]!]!;
    const want = model.predict(x) as tf.Tensor;
    assert.deepEqual(got.dims, [3, 2]);
    const wantData = want.dataSync();
    (got.data as Float32Array).forEach((v, i) => {
      assert.ok(Math.abs(v - wantData[i]!) < 1e-5, `${v} vs ${wantData[i]}`);
    });
    await session.release();
    tf.dispose([x, want]);
  });

  test('an unknown format names the known ones', async () => {
    const result = await runXfer(['export', dir, '--format', 'tflite']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /unknown export format 'tflite'\. Known formats: onnx/);
  });
});
