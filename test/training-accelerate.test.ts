import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { getApplication } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { ortRunnerFor } from '../src/training/accelerate.js';
import { frozenSplit } from '../src/training/accelerate-fit.js';
import { Adam, compile, evaluate, fit, predict, predictImage } from '../src/training/index.js';
import { trainableVariables } from '../src/training/steps.js';
import { trainedScaleWeights, withoutAcceleration } from './helpers/accelerate.js';

/** The seed's model shape at 32x32: frozen MobileNetV2 backbone, GAP, a softmax head. */
async function seedModel(units = 3): Promise<tf.Sequential> {
  const backbone = await getApplication('mobilenet_v2').build({
    includeTop: false,
    weights: null,
    inputShape: [32, 32, 3],
  });
  backbone.trainable = false;
  const model = tf.sequential({
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units, activation: units === 1 ? 'sigmoid' : 'softmax', name: 'head' }),
    ],
  });
  trainedScaleWeights(model, 11);
  return model;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

let dir: string;
before(async () => {
  await initBackend();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xfer-accelerate-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('predict, evaluate and predictImage on onnxruntime', () => {
  test('equal the tfjs path', async () => {
    const model = await seedModel(3);
    compile(model, {
      optimizer: Adam(1e-3),
      loss: 'categorical_crossentropy',
      metrics: ['accuracy'],
    });
    const x = tf.randomUniform([10, 32, 32, 3], -1, 1, 'float32', 1);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'), 3);
    assert.ok(await ortRunnerFor(model, x), 'the model is exported and run on ORT');

    const fast = await predict(model, x, { batchSize: 4 });
    const slow = await withoutAcceleration(() => predict(model, x, { batchSize: 4 }));
    // float32 sums in another order through 50 layers: the bound, 1e-4 of the output scale.
    assert.ok(maxAbsDiff(fast, slow) < 1e-4, `predict differs by ${maxAbsDiff(fast, slow)}`);
    assert.ok(
      maxAbsDiff(slow, tf.scalar(1 / 3)) > 1e-3,
      'outputs are not uniform (the test can fail)',
    );

    const fastEval = await evaluate(model, { x, y }, { batchSize: 4, verbose: 0 });
    const slowEval = await withoutAcceleration(() =>
      evaluate(model, { x, y }, { batchSize: 4, verbose: 0 }),
    );
    assert.ok(
      Math.abs(fastEval.loss! - slowEval.loss!) < 1e-4,
      `${fastEval.loss} vs ${slowEval.loss}`,
    );
    assert.equal(fastEval.accuracy, slowEval.accuracy);

    const file = path.join(dir, 'img.png');
    const pixels = Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 37) % 256));
    await sharp(pixels, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(file);
    const preprocess = (t: tf.Tensor) => tf.sub(tf.div(t, 127.5), 1);
    const one = await predictImage(file, model, preprocess, { classNames: ['a', 'b', 'c'] });
    const oneSlow = await withoutAcceleration(() =>
      predictImage(file, model, preprocess, { classNames: ['a', 'b', 'c'] }),
    );
    assert.equal(one.classIndex, oneSlow.classIndex);
    assert.ok(Math.abs(one.probability - oneSlow.probability) < 1e-4);

    // New weights, new export: predict follows setWeights.
    trainedScaleWeights(model, 12);
    const after = await predict(model, x, { batchSize: 4 });
    const afterSlow = await withoutAcceleration(() => predict(model, x, { batchSize: 4 }));
    assert.ok(maxAbsDiff(after, afterSlow) < 1e-4);
    assert.ok(maxAbsDiff(after, fast) > 1e-4, 'the new weights changed the outputs');
    tf.dispose([x, y, fast, slow, after, afterSlow]);
    model.dispose();
  });

  test('a layer without an ONNX converter falls back to tfjs, with one warning', async () => {
    const model = tf.sequential({
      layers: [
        // An unsupported layer first: nothing can run on onnxruntime, so the whole model stays
        // on tfjs (exact equality). Splits around an unsupported layer: engine-onnx-fallback.
        tf.layers.upSampling2d({ size: [2, 2], inputShape: [8, 8, 1], name: 'norm' }),
        tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'conv' }),
        tf.layers.flatten(),
      ],
    });
    const writes: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => {
      writes.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    const x = tf.randomUniform([2, 8, 8, 1], 0, 1, 'float32', 2);
    let outputs: tf.Tensor[];
    try {
      outputs = [await predict(model, x), await predict(model, x)];
    } finally {
      process.stderr.write = write;
    }
    const expected = model.predict(x) as tf.Tensor;
    assert.equal(maxAbsDiff(outputs[0]!, expected), 0);
    const warnings = writes.filter((w) =>
      /runs on tfjs, not onnxruntime.*'norm' \(UpSampling2D\)/.test(w),
    );
    assert.equal(warnings.length, 1, writes.join(''));
    tf.dispose([x, expected, ...outputs]);
  });
});

describe('fit with the frozen prefix on onnxruntime', () => {
  test('trains the head like tfjs does, and computes each image’s features once', async () => {
    const x = tf.randomUniform([12, 32, 32, 3], -1, 1, 'float32', 4);
    const y = tf.tensor2d([1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1], [12, 1]);
    const run = async () => {
      const model = await seedModel(1);
      compile(model, { optimizer: Adam(1e-2), loss: 'binary_crossentropy', metrics: ['accuracy'] });
      const history = await fit(
        model,
        { x, y },
        { epochs: 3, batchSize: 5, shuffle: true, seed: 3, verbose: 0, validationData: [x, y] },
      );
      return { model, history };
    };
    const fast = await run();
    const slow = await withoutAcceleration(run);

    const split = await frozenSplit(fast.model, trainableVariables(fast.model), [32, 32, 3], true);
    assert.ok(split, 'the model was split');
    assert.equal(split.prefixLayers, 2); // the frozen backbone and the GAP; the dense head trains
    // 12 images once each in epoch 1 (the validation pass reuses them), then only hits.
    assert.equal(split.cache!.misses, 12);
    assert.equal(split.cache!.hits, 12 * 3 * 2 - 12);

    for (const key of ['loss', 'accuracy', 'val_loss'] as const) {
      const a = fast.history.history[key]!;
      const b = slow.history.history[key]!;
      a.forEach((v, i) => {
        assert.ok(Math.abs(v - (b[i] as number)) < 1e-4, `${key}[${i}]: ${v} vs ${b[i]}`);
      });
    }
    const losses = slow.history.history.loss! as number[];
    assert.ok(
      losses[2]! < losses[0]!,
      'the head learned (the comparison is not between constants)',
    );
    const wa = fast.model.getLayer('head').getWeights();
    const wb = slow.model.getLayer('head').getWeights();
    wa.forEach((w, i) => {
      assert.ok(maxAbsDiff(w, wb[i]!) < 1e-4);
    });
    tf.dispose([x, y]);
    fast.model.dispose();
    slow.model.dispose();
  });
});
