import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import h5wasm, { type Dataset, type Group } from 'h5wasm/node';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import { loadWeights, saveWeights } from '../src/weights/index.js';
import {
  buildTestModel,
  captureStderr,
  KERAS_LAYERS,
  kerasFixtureModel,
  kerasFixtureOutput,
  randomizeWeights,
  weightValues,
  writeH5pyFixture,
  writeKerasLayoutByHand,
} from './helpers/weights-fixtures.js';

let dir: string;
before(async () => {
  await initBackend();
  await h5wasm.ready;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-weights-h5-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const input = (): tf.Tensor =>
  tf.tensor4d(
    Float32Array.from({ length: 2 * 6 * 6 * 3 }, (_, i) => Math.sin(i)),
    [2, 6, 6, 3],
  );

function predict(model: tf.LayersModel): number[] {
  return tf.tidy(() => Array.from((model.predict(input()) as tf.Tensor).dataSync()));
}

/** Attributes and datasets of a written file, read with h5wasm directly. */
function readRaw(file: string, read: (h5: InstanceType<typeof h5wasm.File>) => void): void {
  const h5 = new h5wasm.File(file, 'r');
  try {
    read(h5);
  } finally {
    h5.close();
  }
}

/** A model holding fc, conv1, bn1 with fc first in its layer order (its branch is deeper). */
function reorderedModel(fcUnits = 2): tf.LayersModel {
  const features = tf.input({ shape: [3], name: 'features' });
  let head = tf.layers.dense({ units: fcUnits, name: 'fc' }).apply(features) as tf.SymbolicTensor;
  for (const name of ['a1', 'a2', 'a3']) {
    head = tf.layers.activation({ activation: 'relu', name }).apply(head) as tf.SymbolicTensor;
  }
  const image = tf.input({ shape: [6, 6, 3], name: 'image' });
  let x = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv1' })
    .apply(image) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: [features, image], outputs: [head, x] });
}

describe('saveWeights / loadWeights round trip', () => {
  let saved: tf.LayersModel;
  let file: string;
  before(async () => {
    saved = buildTestModel();
    randomizeWeights(saved, 1);
    file = path.join(dir, 'model.weights.h5');
    await saveWeights(saved, file);
  });

  test('a fresh model (random init) predicts exactly as the saved one', async () => {
    const fresh = buildTestModel();
    assert.notDeepEqual(predict(fresh), predict(saved));
    await loadWeights(fresh, file);
    assert.deepEqual(predict(fresh), predict(saved));
  });

  test("the file has Keras's layout: layer_names, sorted groups, weight_names, datasets at their paths", () => {
    readRaw(file, (h5) => {
      assert.deepEqual(h5.attrs.layer_names!.value, [
        'image',
        'conv1',
        'bn1',
        'dw1',
        'inner',
        'gap',
        'fc',
      ]);
      assert.equal(h5.attrs.backend!.value, 'tensorflow');
      assert.equal(typeof h5.attrs.keras_version!.value, 'string');
      // Fixed-length strings, as numpy's 'S' arrays (h5py 2 readers return bytes for them).
      assert.equal(h5.attrs.layer_names!.metadata.vlen, false);
      assert.deepEqual((h5.get('bn1') as Group).attrs.weight_names!.value, [
        'bn1/gamma:0',
        'bn1/beta:0',
        'bn1/moving_mean:0',
        'bn1/moving_variance:0',
      ]);
      assert.deepEqual((h5.get('dw1/dw1/depthwise_kernel:0') as Dataset).shape, [3, 3, 4, 1]);
      // A layer without weights: Keras stores [] as an empty float64 array.
      assert.equal(((h5.get('gap') as Group).attrs.weight_names!.value as Float64Array).length, 0);
      assert.ok(h5.keys().includes('top_level_model_weights'));
      const kernel = (h5.get('fc/fc/kernel:0') as Dataset).value as Float32Array;
      assert.deepEqual(Array.from(kernel), weightValues(saved, 'fc')[0]);
    });
  });

  test("a nested model's weights follow Keras's _legacy_weights order, trainable or frozen", async () => {
    // Trainable: every trainable weight of the nested model, then the non-trainable ones.
    readRaw(file, (h5) => {
      assert.deepEqual((h5.get('inner') as Group).attrs.weight_names!.value, [
        'inner_conv/kernel:0',
        'inner_conv/bias:0',
        'inner_bn/gamma:0',
        'inner_bn/beta:0',
        'inner_conv2/kernel:0',
        'inner_conv2/bias:0',
        'inner_bn/moving_mean:0',
        'inner_bn/moving_variance:0',
      ]);
    });
    // Frozen: all weights are non-trainable, gathered layer by layer.
    const frozen = buildTestModel();
    randomizeWeights(frozen, 2);
    (frozen.getLayer('inner') as tf.LayersModel).trainable = false;
    const frozenFile = path.join(dir, 'frozen.h5');
    await saveWeights(frozen, frozenFile);
    readRaw(frozenFile, (h5) => {
      assert.deepEqual((h5.get('inner') as Group).attrs.weight_names!.value, [
        'inner_conv/kernel:0',
        'inner_conv/bias:0',
        'inner_bn/gamma:0',
        'inner_bn/beta:0',
        'inner_bn/moving_mean:0',
        'inner_bn/moving_variance:0',
        'inner_conv2/kernel:0',
        'inner_conv2/bias:0',
      ]);
    });
    // Loading into a trainable model pairs the nested weights by name, not by that order.
    const fresh = buildTestModel();
    await loadWeights(fresh, frozenFile);
    assert.deepEqual(predict(fresh), predict(frozen));
  });

  test('by name into a model whose layers come in another order', async () => {
    const other = reorderedModel();
    const names = other.layers.map((l) => l.name);
    assert.ok(names.indexOf('fc') < names.indexOf('conv1'), 'fc must come first for this test');
    await loadWeights(other, file, { byName: true });
    for (const layer of ['fc', 'conv1', 'bn1'])
      assert.deepEqual(weightValues(other, layer), weightValues(saved, layer));
  });

  test('in order, that model is refused, naming the first layer that differs, and keeps its weights', async () => {
    const other = reorderedModel();
    const before = weightValues(other, 'conv1');
    await assert.rejects(
      loadWeights(other, file),
      (error: XferError) =>
        error.code === 'WEIGHTS_MISMATCH' &&
        /the first layer that differs is #1 with weights, 'fc' \(file layer 'conv1'\): it has weight 'kernel' of shape \[3, 2\], but the file's 'conv1\/kernel:0' has shape \[3, 3, 3, 4\]\. To load only the layers whose names match, pass \{ byName: true \}/.test(
          error.message,
        ),
    );
    assert.deepEqual(weightValues(other, 'conv1'), before);
  });

  test('by name, a layer whose shapes differ is an error, or skipped with a warning under skipMismatch', async () => {
    const other = reorderedModel(5);
    await assert.rejects(loadWeights(other, file, { byName: true }), {
      code: 'WEIGHTS_MISMATCH',
      message:
        /the first layer that differs is 'fc': it has weight 'kernel' of shape \[3, 5\], but the file's 'fc\/kernel:0' has shape \[3, 2\]\.$/,
    });
    const fcBefore = weightValues(other, 'fc');
    const { stderr } = await captureStderr(() =>
      loadWeights(other, file, { byName: true, skipMismatch: true }),
    );
    assert.match(
      stderr,
      /warning: skipping layer 'fc' while loading weights from .*model\.weights\.h5: it has weight 'kernel' of shape \[3, 5\]/,
    );
    assert.equal(stderr.trim().split('\n').length, 1);
    assert.deepEqual(weightValues(other, 'fc'), fcBefore);
    assert.deepEqual(weightValues(other, 'conv1'), weightValues(saved, 'conv1'));
    assert.deepEqual(weightValues(other, 'bn1'), weightValues(saved, 'bn1'));
  });

  test('a weight count that differs is named with both lists', async () => {
    const other = reorderedModel();
    const bare = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [6, 6, 3],
          filters: 4,
          kernelSize: 3,
          useBias: false,
          name: 'conv1',
        }),
      ],
    });
    await assert.rejects(loadWeights(bare, file, { byName: true }), {
      code: 'WEIGHTS_MISMATCH',
      message:
        /'conv1': it expects 1 weight\(s\) \(kernel \[3, 3, 3, 4\]\) but the file has 2 \(conv1\/kernel:0 \[3, 3, 3, 4\], conv1\/bias:0 \[4\]\)/,
    });
    other.dispose();
  });

  test('a model with fewer layers than the file: the first file layer without counterpart is named', async () => {
    const image = tf.input({ shape: [6, 6, 3] });
    const x = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c' })
      .apply(image) as tf.SymbolicTensor;
    const y = tf.layers.batchNormalization({ name: 'b' }).apply(x) as tf.SymbolicTensor;
    const partial = tf.model({ inputs: image, outputs: y });
    await assert.rejects(loadWeights(partial, file), {
      code: 'WEIGHTS_MISMATCH',
      message:
        /the file's layer #3 with weights, 'dw1', has no counterpart: the model has 2 layer\(s\) with weights, the file has 5\./,
    });
  });

  test('by name with no name in common is an error, not a silent no-op', async () => {
    await assert.rejects(loadWeights(kerasFixtureModel(), file, { byName: true }), {
      code: 'WEIGHTS_MISMATCH',
      message:
        /no layer of the file has the name of a layer of the model, so nothing would be loaded\. File layers: conv1, bn1, dw1, inner, fc\./,
    });
  });

  test("by name, a nested model's group fills the same layers held directly, and back", async () => {
    const flat = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [6, 6, 4],
          filters: 4,
          kernelSize: 3,
          padding: 'same',
          name: 'inner_conv',
        }),
        tf.layers.batchNormalization({ name: 'inner_bn' }),
        tf.layers.conv2d({ filters: 3, kernelSize: 1, name: 'inner_conv2' }),
      ],
    });
    await loadWeights(flat, file, { byName: true });
    const inner = saved.getLayer('inner') as tf.LayersModel;
    for (const name of ['inner_conv', 'inner_bn', 'inner_conv2']) {
      assert.deepEqual(weightValues(flat, name), weightValues(inner, name));
    }
    // A backbone's own file loads by name into a model that holds the backbone as one layer.
    randomizeWeights(flat, 3);
    const flatFile = path.join(dir, 'flat.h5');
    await saveWeights(flat, flatFile);
    const holder = buildTestModel();
    await loadWeights(holder, flatFile, { byName: true });
    const held = holder.getLayer('inner') as tf.LayersModel;
    for (const name of ['inner_conv', 'inner_bn', 'inner_conv2']) {
      assert.deepEqual(weightValues(held, name), weightValues(flat, name));
    }
  });

  test('saving over an existing file replaces it atomically, leaving no temp files', async () => {
    const target = path.join(dir, 'replace', 'w.h5');
    await saveWeights(saved, target);
    const other = buildTestModel();
    randomizeWeights(other, 9);
    await saveWeights(other, target);
    assert.deepEqual(await fsp.readdir(path.dirname(target)), ['w.h5']);
    const fresh = buildTestModel();
    await loadWeights(fresh, target);
    assert.deepEqual(predict(fresh), predict(other));
  });

  test('a list attribute over 64512 bytes is split into name0, name1... as Keras does', async () => {
    const long = (i: number) => `${'x'.repeat(25_000)}${i}`;
    const model = tf.sequential({
      layers: [0, 1, 2].map((i) =>
        tf.layers.dense({ units: 2, name: long(i), ...(i === 0 ? { inputShape: [2] } : {}) }),
      ),
    });
    randomizeWeights(model, 4);
    const target = path.join(dir, 'long.h5');
    await saveWeights(model, target);
    readRaw(target, (h5) => {
      const names = Object.keys(h5.attrs).sort();
      assert.deepEqual(names, ['backend', 'keras_version', 'layer_names0', 'layer_names1']);
      // numpy.array_split of 3 items into 2 chunks: 2 then 1.
      assert.equal((h5.attrs.layer_names0!.value as string[]).length, 2);
    });
    const fresh = tf.sequential({
      layers: [0, 1, 2].map((i) =>
        tf.layers.dense({ units: 2, ...(i === 0 ? { inputShape: [2] } : {}) }),
      ),
    });
    await loadWeights(fresh, target);
    assert.deepEqual(
      fresh.getWeights().map((w) => Array.from(w.dataSync())),
      model.getWeights().map((w) => Array.from(w.dataSync())),
    );
  });
});

describe('files written by Keras (h5py) and by hand in its layout', () => {
  const x = [1, 2, 3];
  const expected = kerasFixtureOutput(x);

  async function check(
    file: string,
    opts: { byName?: boolean } = {},
    model = kerasFixtureModel(),
  ): Promise<void> {
    await loadWeights(model, file, opts);
    const output = tf.tidy(() => (model.predict(tf.tensor2d([x])) as tf.Tensor).dataSync()[0]!);
    assert.ok(Math.abs(output - expected) < 1e-5, `${output} vs ${expected}`);
  }

  test('the hand-computed output the fixtures must give', () => {
    // dense: [-1.15, 3.175]; BN: 1.5 * -1.35 / sqrt(4.001) + 0.25 and 0.5 * 3.575 / sqrt(0.251) - 0.5.
    const z0 = (1.5 * -1.35) / Math.sqrt(4.001) + 0.25;
    const z1 = (0.5 * 3.575) / Math.sqrt(0.251) - 0.5;
    assert.ok(Math.abs(expected - (2 * z0 - 3 * z1 + 0.5)) < 1e-12);
    assert.ok(Math.abs(expected - -10.2284) < 1e-4);
  });

  test('save_weights file from h5py 3 (variable-length strings), in order into tfjs-named layers', async () => {
    const file = path.join(dir, 'h5py3.h5');
    await writeH5pyFixture('save_weights', file);
    await check(file);
  });

  test('whole-model file from h5py 2 (fixed-length NULL-padded strings, weights under model_weights)', async () => {
    const file = path.join(dir, 'h5py2-model.h5');
    await writeH5pyFixture('model_save', file);
    await check(file);
  });

  test('by name into layers named the Keras way', async () => {
    const file = path.join(dir, 'h5py3-by-name.h5');
    await writeH5pyFixture('save_weights', file);
    const named = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 2, name: 'dense' }),
        tf.layers.batchNormalization({ name: 'batch_normalization' }),
        tf.layers.dense({ units: 1, name: 'dense_1' }),
      ],
    });
    await check(file, { byName: true }, named);
  });

  test('written by hand with h5wasm, on the root and under model_weights', async () => {
    const plain = path.join(dir, 'by-hand.h5');
    await writeKerasLayoutByHand(plain);
    await check(plain);
    const full = path.join(dir, 'by-hand-model.h5');
    await writeKerasLayoutByHand(full, { underModelWeights: true });
    await check(full);
  });

  test('layer_names split into layer_names0, layer_names1 is read whole', async () => {
    const file = path.join(dir, 'chunked.h5');
    await writeKerasLayoutByHand(file);
    const h5 = new h5wasm.File(file, 'a');
    const names = KERAS_LAYERS.map((l) => l.name);
    h5.delete_attribute('layer_names');
    h5.create_attribute('layer_names0', names.slice(0, 2), [2], 'A19');
    h5.create_attribute('layer_names1', names.slice(2), [2], 'A19');
    h5.close();
    await check(file);
  });
});

describe('files that are not what they claim', () => {
  test('a missing file is NOT_FOUND, naming the path', async () => {
    const file = path.join(dir, 'nope.h5');
    await assert.rejects(loadWeights(kerasFixtureModel(), file), (error: XferError) => {
      assert.equal(error.code, 'NOT_FOUND');
      assert.ok(error.message.includes(file));
      return true;
    });
  });

  test('garbage is CORRUPT_FILE', async () => {
    const file = path.join(dir, 'garbage.h5');
    await fsp.writeFile(file, 'this is not an HDF5 file at all');
    await assert.rejects(loadWeights(kerasFixtureModel(), file), {
      code: 'CORRUPT_FILE',
      message: /garbage\.h5 is neither an HDF5 file \(no HDF5 signature\) nor a tfjs model\.json/,
    });
  });

  test('a truncated file is CORRUPT_FILE', async () => {
    const source = path.join(dir, 'whole.h5');
    const model = buildTestModel();
    await saveWeights(model, source);
    const bytes = await fsp.readFile(source);
    const file = path.join(dir, 'truncated.h5');
    await fsp.writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(loadWeights(buildTestModel(), file), { code: 'CORRUPT_FILE' });
  });

  test('a zip that is not a Keras archive is CORRUPT_FILE', async () => {
    const file = path.join(dir, 'model.keras');
    await fsp.writeFile(
      file,
      Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(60)]),
    );
    await assert.rejects(loadWeights(kerasFixtureModel(), file), {
      code: 'CORRUPT_FILE',
      message: /not a readable \.keras archive/,
    });
  });

  test('an empty Keras 3 .weights.h5 layout, or any other HDF5 file, says so', async () => {
    const file = path.join(dir, 'keras3.weights.h5');
    const h5 = new h5wasm.File(file, 'w');
    h5.create_group('layers');
    h5.create_group('vars');
    h5.close();
    await assert.rejects(loadWeights(kerasFixtureModel(), file), {
      code: 'WEIGHTS_MISMATCH',
      message: /the file holds no layer weights at all/,
    });
    const other = path.join(dir, 'other.h5');
    const h5b = new h5wasm.File(other, 'w');
    h5b.create_group('data');
    h5b.close();
    await assert.rejects(loadWeights(kerasFixtureModel(), other), {
      code: 'CORRUPT_FILE',
      message: /has no 'layer_names' attribute/,
    });
  });

  test('soft and external links are refused, never followed', async () => {
    const real = path.join(dir, 'by-hand-target.h5');
    await writeKerasLayoutByHand(real);
    // A layer group that is a soft link to a group holding the weights.
    const soft = path.join(dir, 'soft-link.h5');
    await writeKerasLayoutByHand(soft);
    let h5 = new h5wasm.File(soft, 'a');
    h5.create_group('elsewhere');
    h5.create_soft_link('/dense', '/elsewhere/dense');
    h5.delete_attribute('layer_names');
    h5.create_attribute(
      'layer_names',
      ['input_1', 'elsewhere/dense', 'batch_normalization', 'dense_1'],
      [4],
      'A19',
    );
    h5.close();
    await assert.rejects(loadWeights(kerasFixtureModel(), soft), {
      code: 'CORRUPT_FILE',
      message:
        /'\/elsewhere\/dense' is a link \(to \/dense\); xfer does not follow links in weight files/,
    });
    // A weight dataset that is an external link into another file.
    const external = path.join(dir, 'external-link.h5');
    h5 = new h5wasm.File(external, 'w');
    h5.create_attribute('layer_names', ['dense'], [1], 'A5');
    const group = h5.create_group('dense');
    group.create_attribute('weight_names', ['dense/kernel:0'], [1], 'A14');
    group.create_group('dense');
    group.create_external_link(real, '/dense/dense/kernel:0', 'dense/kernel:0');
    h5.close();
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [3], units: 2, useBias: false })],
    });
    await assert.rejects(loadWeights(model, external), {
      code: 'CORRUPT_FILE',
      message:
        /'\/dense\/dense\/kernel:0' is a link \(to .*by-hand-target\.h5:\/dense\/dense\/kernel:0\)/,
    });
  });

  test('saveWeights wants an .h5 path and a model', async () => {
    await assert.rejects(saveWeights(buildTestModel(), path.join(dir, 'w.json')), {
      code: 'INVALID_ARGUMENT',
      message:
        /Expected a path ending in '\.h5' or '\.hdf5' .*use saveModel for a tfjs model folder\) for file but received '.*w\.json'/,
    });
    await assert.rejects(loadWeights({} as tf.LayersModel, 'x.h5'), {
      code: 'INVALID_ARGUMENT',
      message: /for model/,
    });
  });
});
