import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { LayerScale } from '../src/applications/convnext.js';
import { listApplications } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import { exportOnnx, OnnxExportError } from '../src/engine/onnx/export.js';
import { OrtModel, runOnnx } from '../src/engine/ort.js';
import * as tf from '../src/engine/tf.js';
import { trainedScaleWeights } from './helpers/accelerate.js';

async function compare(
  model: tf.LayersModel,
  x: tf.Tensor,
  options = {},
): Promise<{ diff: number; scale: number }> {
  const ref = model.predict(x) as tf.Tensor;
  const out = await runOnnx(model, x, options);
  try {
    assert.deepEqual(out.shape, ref.shape);
    const diff = tf.max(tf.abs(tf.sub(ref, out))).dataSync()[0]!;
    const scale = tf.max(tf.abs(ref)).dataSync()[0]!;
    return { diff, scale };
  } finally {
    tf.dispose([ref, out]);
  }
}

before(async () => {
  await initBackend();
});

function maxDiff(a: tf.Tensor, b: tf.Tensor): { diff: number; scale: number } {
  return {
    diff: tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!),
    scale: tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]!),
  };
}

// One build per application (with top, at its minimum size): the whole model, and the feature
// extractor as the prefix up to the spec's feature layer (what includeTop: false builds).
// Deeper variants (resnet101, densenet169...) repeat their family's layers; all of them run with
// XFER_TEST_ALL_APPLICATIONS=1 (minutes on 2 cores).
const ALL = process.env.XFER_TEST_ALL_APPLICATIONS === '1';
const FAMILY_REPRESENTATIVES = new Set([
  'vgg16',
  'resnet50',
  'resnet50v2',
  'mobilenet',
  'mobilenet_v2',
  'densenet121',
  'inception_v3',
  'xception',
  'efficientnetb0',
  'mobilenet_v3_small',
  'efficientnetv2-b0',
  'convnext_tiny',
  'nasnet_mobile',
]);

/**
 * Random weights make deep squeeze-and-excitation stacks chaotic when every branch keeps its full
 * scale (trained networks shrink their last BN's gamma): with gammas in [0.6, 1.4],
 * EfficientNetV2-B3's output moves by 19% for an input change of 1e-5 (EfficientNetV2-S 42%), and
 * no two float32 engines agree. Gammas in [0.3, 0.7] keep the family well conditioned (3e-7).
 */
function gammaRange(name: string): [number, number] | undefined {
  return name.startsWith('efficientnet') ? [0.3, 0.7] : undefined;
}

describe('ONNX export of every registered application matches tfjs', () => {
  for (const spec of listApplications()) {
    const skip =
      ALL || FAMILY_REPRESENTATIVES.has(spec.name)
        ? false
        : 'its family is tested; XFER_TEST_ALL_APPLICATIONS=1 runs it';
    test(spec.name, { skip }, async (t) => {
      const size = spec.minInputSize;
      const model = await spec.build({
        includeTop: true,
        weights: null,
        inputShape: [size, size, 3],
        classifierActivation: null,
        classes: 10,
      });
      try {
        trainedScaleWeights(model, 7, gammaRange(spec.name));
        const x = tf.randomUniform([1, size, size, 3], -1, 1, 'float32', 3);
        const whole = await compare(model, x);
        t.diagnostic(`with top: max |ort - tfjs| / max |tfjs| = ${whole.diff / whole.scale}`);
        assert.ok(whole.scale > 1e-3, `outputs at a usable scale (max |y| = ${whole.scale})`);
        assert.ok(
          whole.diff <= 1e-4 * whole.scale,
          `with top: max |ort - tfjs| = ${whole.diff} for an output scale of ${whole.scale}`,
        );

        // ConvNeXt's feature layer (its final LayerNormalization) exists only without top.
        if (!model.layers.some((l) => l.name === spec.featureLayer)) return;
        const features = tf.model({
          inputs: model.inputs,
          outputs: model.getLayer(spec.featureLayer).output as tf.SymbolicTensor,
        });
        const want = features.predict(x) as tf.Tensor;
        const got = await runOnnx(model, x, { upTo: spec.featureLayer });
        const prefix = maxDiff(want, got);
        t.diagnostic(`features: max |ort - tfjs| / max |tfjs| = ${prefix.diff / prefix.scale}`);
        tf.dispose([x, want, got]);
        assert.ok(prefix.scale > 1e-3, `features at a usable scale (${prefix.scale})`);
        assert.ok(
          prefix.diff <= 1e-4 * prefix.scale,
          `features: max |ort - tfjs| = ${prefix.diff} for a scale of ${prefix.scale}`,
        );
      } finally {
        model.dispose();
      }
    });
  }
});

describe('exportOnnx', () => {
  function toyModel(inputShape: [number | null, number | null, number]): tf.LayersModel {
    const input = tf.input({ shape: inputShape });
    const a = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'c1' })
      .apply(input);
    const b = tf.layers.batchNormalization({ name: 'bn1' }).apply(a);
    const c = tf.layers.leakyReLU({ alpha: 0.1, name: 'lrelu' }).apply(b);
    const p = tf.layers
      .maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'mp' })
      .apply(c);
    const q = tf.layers
      .averagePooling2d({ poolSize: 2, strides: 1, padding: 'same', name: 'ap' })
      .apply(c);
    const s = tf.layers
      .separableConv2d({
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        strides: 2,
        name: 'sep',
        activation: 'relu6',
      })
      .apply(c);
    const cat = tf.layers
      .concatenate({ name: 'cat' })
      .apply([p as tf.SymbolicTensor, s as tf.SymbolicTensor]);
    const mul = tf.layers
      .multiply({ name: 'mul' })
      .apply([p as tf.SymbolicTensor, s as tf.SymbolicTensor]);
    const d = tf.layers
      .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'valid', name: 'dw' })
      .apply(q);
    const gm = tf.layers.globalMaxPooling2d({ name: 'gmp' }).apply(d);
    const f = tf.layers.flatten({ name: 'flat' }).apply(cat);
    const r = tf.layers.dense({ units: 5, activation: 'tanh', name: 'd1' }).apply(f);
    const m = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(mul);
    const all = tf.layers
      .concatenate({ name: 'cat2' })
      .apply([r as tf.SymbolicTensor, m as tf.SymbolicTensor, gm as tf.SymbolicTensor]);
    const drop = tf.layers.dropout({ rate: 0.5, name: 'drop' }).apply(all);
    const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(drop);
    return tf.model({ inputs: input, outputs: out as tf.SymbolicTensor, name: 'toy' });
  }

  test('odd sizes: TF puts the extra padding pixel at the end, for conv and pooling', async () => {
    const model = toyModel([9, 11, 3]);
    trainedScaleWeights(model, 1);
    const x = tf.randomUniform([3, 9, 11, 3], -1, 1, 'float32', 5);
    const { diff, scale } = await compare(model, x);
    x.dispose();
    assert.ok(diff <= 1e-5 * Math.max(scale, 1), `diff ${diff}`);
  });

  test('a model of open image size exports at a given size', async () => {
    const input = tf.input({ shape: [null, null, 3] });
    const conv = tf.layers
      .conv2d({ filters: 3, kernelSize: 3, strides: 2, padding: 'same' })
      .apply(input);
    const gap = tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor;
    const open = tf.model({ inputs: input, outputs: gap });
    assert.throws(() => exportOnnx(open), /pass imageSize: \[height, width\]/);
    trainedScaleWeights(open, 2);
    const x = tf.randomUniform([2, 13, 8, 3], -1, 1, 'float32', 6);
    const { diff, scale } = await compare(open, x);
    x.dispose();
    assert.ok(diff <= 1e-5 * Math.max(scale, 1), `diff ${diff}`);
  });

  test('a prefix, up to a layer inside a nested model, and BN folding', async () => {
    const backbone = await listApplications()
      .find((s) => s.name === 'mobilenet_v2')!
      .build({ includeTop: false, weights: null, inputShape: [32, 32, 3] });
    trainedScaleWeights(backbone, 3);
    backbone.trainable = false;
    const model = tf.sequential({
      layers: [
        backbone,
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 1, activation: 'sigmoid' }),
      ],
    });
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 8);
    const whole = await compare(model, x);
    assert.ok(
      whole.diff <= 1e-4 * whole.scale,
      `whole model diff ${whole.diff} for ${whole.scale}`,
    );

    const prefix = exportOnnx(model, { upTo: 'block_3_expand_relu' });
    assert.deepEqual(prefix.output.shape, [null, 8, 8, 144]);
    // bn_Conv1, expanded_conv (2), block_1 and block_2 (3 each), block_3_expand_BN.
    assert.equal(prefix.foldedBatchNorms, 10);
    const runner = await OrtModel.fromBytes(prefix.bytes, prefix);
    const got = await runner.run(x);
    await runner.release();
    const sub = tf.model({
      inputs: backbone.inputs,
      outputs: backbone.getLayer('block_3_expand_relu').output as tf.SymbolicTensor,
    });
    const want = sub.predict(x) as tf.Tensor;
    const diff = tf.max(tf.abs(tf.sub(want, got))).dataSync()[0]!;
    const scale = tf.max(tf.abs(want)).dataSync()[0]!;
    assert.ok(diff <= 1e-4 * scale, `prefix diff ${diff} scale ${scale}`);
    tf.dispose([x, got, want]);
    assert.throws(() => exportOnnx(model, { upTo: 'nope' }), /has no layer named 'nope'/);
  });

  test('ConvNeXt, MobileNetV3 and NASNet layers: LayerNormalization, LayerScale, hard-swish, Cropping2D, per-channel Rescaling', async () => {
    const input = tf.input({ shape: [9, 11, 3] });
    // Rescaling with per-channel lists (tfjs broadcasts them over the last axis).
    const rescale = tf.layers.rescaling({
      scale: [0.5, -1.5, 2] as unknown as number,
      offset: [0.1, 0, -0.3] as unknown as number,
      name: 'rescale',
    });
    let x = rescale.apply(input) as tf.SymbolicTensor;
    // A Dense on the image itself (tfjs layout in the graph: MatMul), then on a feature map
    // (NCHW in the graph: a 1x1 convolution).
    x = tf.layers.dense({ units: 4, name: 'dense_in' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'conv' })
      .apply(x) as tf.SymbolicTensor;
    const skip = x;
    x = tf.layers.layerNormalization({ epsilon: 1e-6, name: 'ln' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .dense({ units: 12, name: 'pw1', activation: 'gelu' as 'linear' })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: 8, name: 'pw2' }).apply(x) as tf.SymbolicTensor;
    x = new LayerScale({ initValues: 1e-6, projectionDim: 8, name: 'scale' }).apply(
      x,
    ) as tf.SymbolicTensor;
    x = tf.layers.add({ name: 'res' }).apply([skip, x]) as tf.SymbolicTensor;
    x = tf.layers
      .activation({ activation: 'hardSilu' as 'linear', name: 'hswish' })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .cropping2D({
        cropping: [
          [1, 0],
          [2, 1],
        ],
        name: 'crop',
      })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.layerNormalization({ name: 'ln_head' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: 5, name: 'head' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: x, name: 'newer_layers' });
    trainedScaleWeights(model, 4);
    const inputs = tf.randomUniform([3, 9, 11, 3], -2, 2, 'float32', 9);
    const { diff, scale } = await compare(model, inputs);
    assert.ok(scale > 1e-2, `outputs at a usable scale (${scale})`);
    assert.ok(diff <= 1e-5 * scale, `diff ${diff} for a scale of ${scale}`);
    // The crop's shape and values on their own (no averaging after it to hide an off-by-one).
    const cropped = await compare(
      tf.model({ inputs: input, outputs: model.getLayer('crop').output as tf.SymbolicTensor }),
      inputs,
    );
    assert.ok(cropped.diff <= 1e-5 * cropped.scale, `crop diff ${cropped.diff}`);
    inputs.dispose();
    model.dispose();
  });

  test('an unsupported layer is named in the error, unless it lies after the exported prefix', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3], name: 'first' }),
        tf.layers.repeatVector({ n: 2, name: 'repeat' }),
        tf.layers.flatten({ name: 'flat' }),
        tf.layers.dense({ units: 2, name: 'last' }),
      ],
    });
    assert.throws(
      () => exportOnnx(model),
      (error: unknown) =>
        error instanceof OnnxExportError &&
        /cannot export layer 'repeat' \(RepeatVector\)/.test(error.message),
    );
    const prefix = exportOnnx(model, { upTo: 'first' });
    assert.deepEqual(prefix.output.shape, [null, 4]);
  });
});
