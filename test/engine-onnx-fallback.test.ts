import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { ortRunnerFor } from '../src/training/accelerate.js';
import { compile } from '../src/training/compile.js';
import { evaluate } from '../src/training/evaluate.js';
import { predict } from '../src/training/predict.js';
import { withoutAcceleration } from './helpers/accelerate.js';

/** A layer class the ONNX exporter deliberately does not know: `x * |x|`, shape unchanged. */
class SignedSquare extends tf.layers.Layer {
  static className = 'XferTestSignedSquare';
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      return tf.mul(x, tf.abs(x));
    });
  }
  override computeOutputShape(shape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return shape;
  }
}
tf.serialization.registerClass(SignedSquare);

const conv = (name: string, filters = 6) =>
  tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', name });

/** The stderr lines written while `fn` runs. */
async function stderrOf(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return lines;
}

/** Predicts on the split path and on plain tfjs; asserts they agree; returns the runner. */
async function assertSplitEqualsTfjs(model: tf.LayersModel, x: tf.Tensor, cutLayer: string) {
  const runner = await ortRunnerFor(model, x);
  assert.ok(runner, 'part of the model runs on onnxruntime');
  assert.equal(runner.cutLayer, cutLayer);
  const fast = await predict(model, x, { batchSize: 3 });
  const slow = await withoutAcceleration(() => predict(model, x, { batchSize: 3 }));
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(fast, slow))).dataSync()[0]!);
  const scale = tf.tidy(() => tf.max(tf.abs(slow)).dataSync()[0]!);
  const spread = tf.tidy(() => tf.sub(tf.max(slow), tf.min(slow)).dataSync()[0]!);
  tf.dispose([fast, slow]);
  assert.ok(spread > 1e-3, `outputs vary across samples and classes (${spread})`);
  assert.ok(diff <= 1e-5 * scale, `max |split - tfjs| = ${diff} for a scale of ${scale}`);
}

before(async () => {
  await initBackend();
});

describe('a layer ONNX cannot express: ORT runs the prefix, tfjs the rest', () => {
  test('Sequential: predict and evaluate equal tfjs; one warning names the layer', async () => {
    const model = tf.sequential({
      name: 'fallback_sequential',
      layers: [
        tf.layers.conv2d({
          filters: 6,
          kernelSize: 3,
          activation: 'relu',
          inputShape: [12, 12, 3],
          name: 'conv_a',
        }),
        tf.layers.batchNormalization({ name: 'bn_a' }),
        conv('conv_b'),
        new SignedSquare({ name: 'odd_one' }),
        conv('conv_c'),
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 3, activation: 'softmax', name: 'probs' }),
      ],
    });
    compile(model, { optimizer: 'sgd', loss: 'categorical_crossentropy', metrics: ['accuracy'] });
    const x = tf.randomUniform([7, 12, 12, 3], -1, 1, 'float32', 1);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0], 'int32'), 3);
    const lines = await stderrOf(async () => {
      await assertSplitEqualsTfjs(model, x, 'conv_b');
      const fast = await evaluate(model, { x, y }, { batchSize: 4, verbose: 0 });
      const slow = await withoutAcceleration(() =>
        evaluate(model, { x, y }, { batchSize: 4, verbose: 0 }),
      );
      assert.ok(Math.abs(fast.loss! - slow.loss!) < 1e-5, `${fast.loss} vs ${slow.loss}`);
      assert.equal(fast.accuracy, slow.accuracy);
    });
    const warnings = lines.filter((l) => l.includes('fallback_sequential'));
    assert.equal(warnings.length, 1, `one warning, got: ${lines.join('')}`);
    assert.match(
      warnings[0]!,
      /runs on onnxruntime up to layer 'conv_b' and on tfjs from layer 'odd_one' \(XferTestSignedSquare\) on/,
    );
    tf.dispose([x, y]);
    model.dispose();
  });

  test('functional: the cut is the last single tensor before the layer', async () => {
    // conv_1 feeds a residual pair; odd_one follows their sum, so the sum is the cut.
    const input = tf.input({ shape: [10, 10, 3] });
    const c1 = conv('conv_1').apply(input) as tf.SymbolicTensor;
    const c2 = conv('conv_2').apply(c1) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([c1, c2]) as tf.SymbolicTensor;
    const odd = new SignedSquare({ name: 'odd_one' }).apply(sum) as tf.SymbolicTensor;
    const c3 = conv('conv_3').apply(odd) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c3);
    const out = tf.layers.dense({ units: 4, name: 'logits' }).apply(gap) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out, name: 'fallback_functional' });
    const x = tf.randomUniform([5, 10, 10, 3], -1, 1, 'float32', 2);
    await stderrOf(() => assertSplitEqualsTfjs(model, x, 'sum'));

    // The layer on a skip branch: nothing after conv_1's output is a single-tensor cut.
    const d1 = conv('conv_1').apply(input) as tf.SymbolicTensor;
    const skip = new SignedSquare({ name: 'odd_skip' }).apply(d1) as tf.SymbolicTensor;
    const d2 = conv('conv_2').apply(d1) as tf.SymbolicTensor;
    const d3 = conv('conv_3').apply(d2) as tf.SymbolicTensor;
    const merged = tf.layers.add({ name: 'merged' }).apply([skip, d3]) as tf.SymbolicTensor;
    const pooled = tf.layers.globalMaxPooling2d({ name: 'gmp' }).apply(merged);
    const skipOut = tf.layers.dense({ units: 4, name: 'logits' }).apply(pooled);
    const skipModel = tf.model({
      inputs: input,
      outputs: skipOut as tf.SymbolicTensor,
      name: 'fallback_skip',
    });
    await stderrOf(() => assertSplitEqualsTfjs(skipModel, x, 'conv_1'));
    x.dispose();
    model.dispose();
    skipModel.dispose();
  });

  test('a nested backbone: ORT runs all of it, tfjs the unsupported head', async () => {
    const input = tf.input({ shape: [12, 12, 3] });
    const a = conv('conv_a').apply(input) as tf.SymbolicTensor;
    const b = conv('conv_b').apply(a) as tf.SymbolicTensor;
    const backbone = tf.model({ inputs: input, outputs: b, name: 'backbone' });
    backbone.trainable = false;
    const model = tf.sequential({
      name: 'fallback_nested',
      layers: [
        backbone,
        new SignedSquare({ name: 'odd_one' }),
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 2, activation: 'softmax', name: 'probs' }),
      ],
    });
    const x = tf.randomUniform([4, 12, 12, 3], -1, 1, 'float32', 3);
    await stderrOf(() => assertSplitEqualsTfjs(model, x, 'conv_b'));
    x.dispose();
    model.dispose();
  });

  test('the layer first: everything on tfjs, said once', async () => {
    const model = tf.sequential({
      name: 'fallback_first',
      layers: [
        new SignedSquare({ name: 'odd_one', inputShape: [8, 8, 3] }),
        conv('conv_a'),
        tf.layers.flatten({ name: 'flat' }),
      ],
    });
    const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 4);
    const lines = await stderrOf(async () => {
      assert.equal(await ortRunnerFor(model, x), null);
      const fast = await predict(model, x);
      const slow = await withoutAcceleration(() => predict(model, x));
      assert.deepEqual(await fast.data(), await slow.data());
      tf.dispose([fast, slow]);
    });
    const warnings = lines.filter((l) => l.includes('fallback_first'));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /runs on tfjs, not onnxruntime: cannot export layer 'odd_one'/);
    x.dispose();
    model.dispose();
  });
});
