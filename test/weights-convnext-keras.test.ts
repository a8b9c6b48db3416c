/**
 * Keras's own ConvNeXt weight files into xfer's ConvNeXt, and back. Keras's graph
 * (`keras/src/applications/convnext.py`) nests the stem and each downsampling step in a
 * `Sequential` (`convnext_tiny_stem`, `convnext_tiny_downsampling_block_0`...) and makes the block
 * convolution a grouped `Conv2D` (kernel [7, 7, 1, C]); xfer's graph is flat with a
 * `DepthwiseConv2D` (kernel [7, 7, C, 1]). The file here is written by hand with h5wasm in the
 * layout Keras 2's `save_weights` gives that graph: groups in `layer_names` order (weightless
 * layers included), `weight_names` per group, datasets at `<group>/<layer>/<weight>:0`, and the
 * `Variable:0` name Keras 2.10's LayerScale gave its gamma.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import h5wasm from 'h5wasm/node';
import { ConvNeXtTiny } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { Random } from '../src/util/random.js';
import { h5Ready, readKerasH5 } from '../src/weights/h5.js';
import { loadWeights, saveWeights } from '../src/weights/index.js';
import { writeKerasLayoutByHand } from './helpers/weights-fixtures.js';

interface KerasWeight {
  name: string;
  shape: number[];
  values: Float32Array;
}
interface KerasLayer {
  name: string;
  weights: KerasWeight[];
}

const DEPTHS = [3, 3, 9, 3];
const DIMS = [96, 192, 384, 768];
const P = 'convnext_tiny';

/** Keras's ConvNeXtTiny(include_top=False) layers, in `model.layers` order, with seeded values. */
function kerasConvNeXtTiny(seed: number): KerasLayer[] {
  const random = new Random(seed);
  const w = (layer: string, weight: string, shape: number[], low = -0.1, high = 0.1) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = random.uniform(low, high);
    return { name: `${layer}/${weight}:0`, shape, values };
  };
  const norm = (name: string, c: number) => [w(name, 'gamma', [c], 0.5, 1.5), w(name, 'beta', [c])];
  const conv = (name: string, k: number, cin: number, cout: number) => [
    w(name, 'kernel', [k, k, cin, cout]),
    w(name, 'bias', [cout]),
  ];
  const layers: KerasLayer[] = [{ name: 'input_1', weights: [] }];
  // Normalization given its mean and variance makes no weights (Keras 2 and 3 alike).
  layers.push({ name: `${P}_prestem_normalization`, weights: [] });
  layers.push({
    name: `${P}_stem`,
    weights: [...conv(`${P}_stem_conv`, 4, 3, DIMS[0]!), ...norm(`${P}_stem_layernorm`, DIMS[0]!)],
  });
  let add = 0;
  for (let i = 0; i < 4; i++) {
    const c = DIMS[i]!;
    if (i > 0) {
      layers.push({
        name: `${P}_downsampling_block_${i - 1}`,
        weights: [
          ...norm(`${P}_downsampling_layernorm_${i - 1}`, DIMS[i - 1]!),
          ...conv(`${P}_downsampling_conv_${i - 1}`, 2, DIMS[i - 1]!, c),
        ],
      });
    }
    for (let j = 0; j < DEPTHS[i]!; j++) {
      const b = `${P}_stage_${i}_block_${j}`;
      layers.push(
        // Conv2D(groups=C): kernel [7, 7, C / groups, C].
        { name: `${b}_depthwise_conv`, weights: conv(`${b}_depthwise_conv`, 7, 1, c) },
        { name: `${b}_layernorm`, weights: norm(`${b}_layernorm`, c) },
        {
          name: `${b}_pointwise_conv_1`,
          weights: [
            w(`${b}_pointwise_conv_1`, 'kernel', [c, 4 * c]),
            w(`${b}_pointwise_conv_1`, 'bias', [4 * c]),
          ],
        },
        { name: `${b}_gelu`, weights: [] },
        {
          name: `${b}_pointwise_conv_2`,
          weights: [
            w(`${b}_pointwise_conv_2`, 'kernel', [4 * c, c]),
            w(`${b}_pointwise_conv_2`, 'bias', [c]),
          ],
        },
        // Keras 2.10's LayerScale made its gamma with tf.Variable: no name of its own.
        { name: `${b}_layer_scale`, weights: [w(`${b}_layer_scale`, 'Variable', [c], 0.5, 1.5)] },
        { name: `${b}_identity`, weights: [] },
        { name: `tf.__operators__.add${add === 0 ? '' : `_${add}`}`, weights: [] },
      );
      add++;
    }
  }
  layers.push({ name: 'layer_normalization', weights: norm('layer_normalization', DIMS[3]!) });
  return layers;
}

/** Sets xfer's layers directly from the Keras list: the reference the loader must reproduce. */
function setDirectly(model: tf.LayersModel, layers: KerasLayer[]): void {
  const byLayer = new Map<string, KerasWeight[]>();
  for (const layer of layers) {
    for (const weight of layer.weights) {
      const owner = weight.name.split('/')[0]!;
      byLayer.set(owner, [...(byLayer.get(owner) ?? []), weight]);
    }
  }
  for (const layer of model.layers) {
    const stored = byLayer.get(layer.name);
    if (!stored) {
      assert.equal(layer.weights.length, 0, `no Keras weights for ${layer.name}`);
      continue;
    }
    layer.setWeights(
      layer.weights.map((v, i) => tf.tensor(stored[i]!.values, v.shape as number[], v.dtype)),
    );
  }
}

let dir: string;
let kerasFile: string;
let keras: KerasLayer[];
const INPUT_SHAPE: [number, number, number] = [32, 32, 3];

before(async () => {
  await initBackend();
  await h5wasm.ready;
  await h5Ready();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-convnext-'));
  kerasFile = path.join(dir, 'convnext_tiny_notop.h5');
  keras = kerasConvNeXtTiny(3);
  await writeKerasLayoutByHand(kerasFile, { layers: keras, kerasVersion: '2.10.0' });
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test("Keras's ConvNeXt .h5 layout (nested stem and downsampling, grouped Conv2D kernels) loads into xfer's ConvNeXt", async () => {
  const x = tf.randomUniform([2, ...INPUT_SHAPE], 0, 255, 'float32', 5);
  const loaded = await ConvNeXtTiny({ includeTop: false, weights: null, inputShape: INPUT_SHAPE });
  const before = loaded.predict(x) as tf.Tensor;
  await loadWeights(loaded, kerasFile);
  const reference = await ConvNeXtTiny({
    includeTop: false,
    weights: null,
    inputShape: INPUT_SHAPE,
  });
  setDirectly(reference, keras);
  const got = loaded.predict(x) as tf.Tensor;
  const want = reference.predict(x) as tf.Tensor;
  assert.deepEqual(got.shape, [2, 1, 1, 768]);
  assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()));
  // The load changed the outputs: the model did not already agree by chance.
  assert.ok(tf.max(tf.abs(tf.sub(got, before))).dataSync()[0]! > 1e-3);

  // saveWeights writes Keras's layout back: the same groups, names, shapes and values.
  const saved = path.join(dir, 'saved.weights.h5');
  await saveWeights(loaded, saved);
  readKerasH5(saved, (contents) => {
    const written = contents.layers.filter((l) => l.weights.length > 0);
    const expected = keras.filter((l) => l.weights.length > 0);
    assert.deepEqual(
      written.map((l) => l.name),
      expected.map((l) => l.name),
    );
    written.forEach((layer, i) => {
      const want = expected[i]!;
      assert.deepEqual(
        layer.weights.map((w) => [
          w.name.replace(/_layer_scale\/gamma:0$/, '_layer_scale/Variable:0'),
          ...w.shape,
        ]),
        want.weights.map((w) => [w.name, ...w.shape]),
        layer.name,
      );
    });
    // Values too, for the layers the two graphs shape differently.
    for (const name of [
      `${P}_stem`,
      `${P}_stage_0_block_0_depthwise_conv`,
      `${P}_downsampling_block_2`,
    ]) {
      const layer = written.find((l) => l.name === name)!;
      const want = expected.find((l) => l.name === name)!;
      layer.weights.forEach((w, k) => {
        assert.deepEqual(Array.from(w.read()), Array.from(want.weights[k]!.values), w.name);
      });
    }
  });
  tf.dispose([x, before, got, want]);
  loaded.dispose();
  reference.dispose();
});
