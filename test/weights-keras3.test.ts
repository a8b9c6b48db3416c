/**
 * Keras 3 weight files: `.weights.h5` (layers under class-and-position keys, variables as
 * `vars/0..n`) and `.keras` archives (a zip with config.json naming those layers). Fixtures are
 * written by hand with h5wasm and fflate in Keras 3's layout, keys spelled out as Keras names them.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { zipSync } from 'fflate';
import h5wasm, { type Group } from 'h5wasm/node';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import { loadWeights } from '../src/weights/index.js';
import { toSnakeCase } from '../src/weights/keras3.js';
import { buildTestModel, randomizeWeights } from './helpers/weights-fixtures.js';

/**
 * Keras 3's keys for `buildTestModel`'s layers, by hand: snake-cased class names numbered per class
 * in layer order; the nested Sequential's layers under its own `layers/`.
 */
const KEYS: Record<string, string> = {
  conv1: 'layers/conv2d',
  bn1: 'layers/batch_normalization',
  dw1: 'layers/depthwise_conv2d',
  inner_conv: 'layers/sequential/layers/conv2d',
  inner_bn: 'layers/sequential/layers/batch_normalization',
  inner_conv2: 'layers/sequential/layers/conv2d_1',
  fc: 'layers/dense',
};

let dir: string;
let source: tf.LayersModel;
before(async () => {
  await initBackend();
  await h5wasm.ready;
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-weights-keras3-'));
  source = buildTestModel();
  randomizeWeights(source, 1);
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

function leaf(model: tf.LayersModel, name: string): tf.layers.Layer {
  try {
    return model.getLayer(name);
  } catch {
    return (model.getLayer('inner') as tf.LayersModel).getLayer(name);
  }
}

/** Writes `model`'s weights as Keras 3's `save_weights` lays them out. */
async function writeKeras3(
  file: string,
  model: tf.LayersModel,
  keys: Record<string, string> = KEYS,
): Promise<void> {
  const h5 = new h5wasm.File(file, 'w');
  try {
    h5.create_group('vars');
    h5.create_group('optimizer').create_group('vars');
    const groups = new Map<string, Group>();
    const group = (p: string): Group => {
      let g = groups.get(p);
      if (g) return g;
      const parent = p.includes('/') ? group(p.slice(0, p.lastIndexOf('/'))) : (h5 as Group);
      g = parent.create_group(p.slice(p.lastIndexOf('/') + 1));
      groups.set(p, g);
      return g;
    };
    // Layers without weights are saved too, with an empty vars group.
    group('layers/input_layer').create_group('vars');
    group('layers/global_average_pooling2d').create_group('vars');
    for (const [name, key] of Object.entries(keys)) {
      const vars = group(key).create_group('vars');
      leaf(model, name)
        .getWeights()
        .forEach((w, i) => {
          vars.create_dataset({
            name: String(i),
            data: Float32Array.from(w.dataSync()),
            shape: w.shape,
          });
        });
    }
  } finally {
    h5.close();
  }
}

/** config.json for `buildTestModel`, as Keras 3 serializes a Functional (names and classes). */
function configJson(extra: object[] = []): object {
  const layer = (class_name: string, name: string, more: object = {}) => ({
    module: 'keras.layers',
    class_name,
    config: {
      name,
      trainable: true,
      dtype: { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' } },
      ...more,
    },
    registered_name: null,
  });
  return {
    module: 'keras.src.models.functional',
    class_name: 'Functional',
    config: {
      name: 'test_model',
      layers: [
        layer('InputLayer', 'image', { batch_shape: [null, 6, 6, 3] }),
        layer('Conv2D', 'conv1'),
        layer('BatchNormalization', 'bn1'),
        layer('DepthwiseConv2D', 'dw1'),
        layer('Sequential', 'inner', {
          layers: [
            layer('InputLayer', 'inner_input'),
            layer('Conv2D', 'inner_conv'),
            layer('BatchNormalization', 'inner_bn'),
            layer('Conv2D', 'inner_conv2'),
          ],
        }),
        ...extra,
        layer('GlobalAveragePooling2D', 'gap'),
        layer('Dense', 'fc'),
      ],
    },
  };
}

async function writeArchive(
  file: string,
  members: Record<string, Uint8Array>,
  level: 0 | 6 = 6,
): Promise<void> {
  await fsp.writeFile(file, zipSync(members, { level }));
}

async function kerasArchive(file: string, config: object = configJson()): Promise<void> {
  const weights = path.join(dir, `${path.basename(file)}.weights.h5`);
  await writeKeras3(weights, source);
  await writeArchive(file, {
    'config.json': Buffer.from(JSON.stringify(config)),
    'metadata.json': Buffer.from(JSON.stringify({ keras_version: '3.6.0' })),
    'model.weights.h5': await fsp.readFile(weights),
  });
}

describe('Keras 3 .weights.h5', () => {
  test("toSnakeCase is Keras's naming.to_snake_case", () => {
    assert.equal(toSnakeCase('Conv2D'), 'conv2d');
    assert.equal(toSnakeCase('BatchNormalization'), 'batch_normalization');
    assert.equal(toSnakeCase('DepthwiseConv2D'), 'depthwise_conv2d');
    assert.equal(toSnakeCase('ReLU'), 're_lu');
    assert.equal(toSnakeCase('GlobalAveragePooling2D'), 'global_average_pooling2d');
  });

  test('loads into the same architecture and reproduces its outputs', async () => {
    const file = path.join(dir, 'model.weights.h5');
    await writeKeras3(file, source);
    const model = buildTestModel();
    randomizeWeights(model, 2);
    assert.notDeepEqual(predict(model), predict(source));
    await loadWeights(model, file);
    assert.deepEqual(predict(model), predict(source));
    model.dispose();
  });

  test('a key the model lacks is a WEIGHTS_MISMATCH naming it', async () => {
    const file = path.join(dir, 'extra.weights.h5');
    await writeKeras3(file, source, { ...KEYS, fc: 'layers/dense_1' });
    const model = buildTestModel();
    await assert.rejects(loadWeights(model, file), (error: XferError) => {
      assert.equal(error.code, 'WEIGHTS_MISMATCH');
      assert.match(error.message, /'layers\/dense_1', which this model does not have/);
      return true;
    });
    model.dispose();
  });

  test('a truncated file is CORRUPT_FILE', async () => {
    const file = path.join(dir, 'model.weights.h5');
    const cut = path.join(dir, 'cut.weights.h5');
    const bytes = await fsp.readFile(file);
    await fsp.writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const model = buildTestModel();
    await assert.rejects(loadWeights(model, cut), (error: XferError) => {
      assert.equal(error.code, 'CORRUPT_FILE');
      return true;
    });
    model.dispose();
  });
});

describe('Keras 3 .keras archive', () => {
  test('loads by layer name from config.json, into a model with other layers too', async () => {
    const file = path.join(dir, 'model.keras');
    await kerasArchive(file);
    const model = buildTestModel();
    randomizeWeights(model, 3);
    await loadWeights(model, file);
    assert.deepEqual(predict(model), predict(source));
    model.dispose();
  });

  test('names come from the config: a layer inserted before the head shifts keys, not names', async () => {
    // With an extra Dense named 'extra' before 'fc', Keras keys fc as 'layers/dense_1'.
    const file = path.join(dir, 'shifted.keras');
    const weights = path.join(dir, 'shifted.weights.h5');
    await writeKeras3(weights, source, { ...KEYS, fc: 'layers/dense_1' });
    const h5 = new h5wasm.File(weights, 'a');
    const extra = h5.create_group('layers/dense').create_group('vars');
    extra.create_dataset({ name: '0', data: new Float32Array(3 * 2), shape: [3, 2] });
    h5.close();
    const config = configJson([
      {
        class_name: 'Dense',
        config: { name: 'extra', function: 'os.system("never run")' },
      },
    ]);
    await writeArchive(file, {
      'config.json': Buffer.from(JSON.stringify(config)),
      'model.weights.h5': await fsp.readFile(weights),
    });
    const model = buildTestModel();
    randomizeWeights(model, 4);
    await loadWeights(model, file, { skipMismatch: true });
    assert.deepEqual(predict(model), predict(source));
    model.dispose();
  });

  test('hostile archives are refused with typed errors', async () => {
    const model = buildTestModel();
    const h5 = await fsp.readFile(path.join(dir, 'model.weights.h5'));
    const config = Buffer.from(JSON.stringify(configJson()));
    const cases: Array<[string, Record<string, Uint8Array>, string, RegExp]> = [
      [
        'climbing member',
        { 'config.json': config, 'model.weights.h5': h5, '../evil.sh': Buffer.from('x') },
        'CORRUPT_FILE',
        /'..\/evil.sh', a path outside the archive/,
      ],
      [
        'absolute member',
        { 'config.json': config, 'model.weights.h5': h5, '/etc/passwd': Buffer.from('x') },
        'CORRUPT_FILE',
        /outside the archive/,
      ],
      ['no weights', { 'config.json': config }, 'CORRUPT_FILE', /no 'model.weights.h5'/],
      [
        'config not JSON',
        { 'config.json': Buffer.from('{nope'), 'model.weights.h5': h5 },
        'CORRUPT_FILE',
        /config.json is not valid JSON/,
      ],
      [
        'zip bomb',
        { 'config.json': config, 'model.weights.h5': new Uint8Array(64 * 1024 * 1024) },
        'CORRUPT_FILE',
        /a ratio over 200/,
      ],
      [
        'PyTorch zip',
        { 'archive/data.pkl': Buffer.from([0x80, 2]), 'archive/version': Buffer.from('3') },
        'UNSUPPORTED',
        /PyTorch pickle file.*safetensors/,
      ],
    ];
    for (const [label, members, code, message] of cases) {
      const file = path.join(dir, `${label.replace(/\W/g, '_')}.keras`);
      await writeArchive(file, members);
      await assert.rejects(
        loadWeights(model, file),
        (error: XferError) => {
          assert.equal(error.code, code, label);
          assert.match(error.message, message, label);
          return true;
        },
        label,
      );
    }
    model.dispose();
  });

  test('truncated and mutated archives give XferErrors, never other errors', async () => {
    const file = path.join(dir, 'model.keras');
    const bytes = await fsp.readFile(file);
    const model = buildTestModel();
    const bad = path.join(dir, 'bad.keras');
    for (const length of [10, 100, bytes.length >> 1, bytes.length - 30]) {
      await fsp.writeFile(bad, bytes.subarray(0, length));
      await assert.rejects(
        loadWeights(model, bad),
        (error: XferError) => error.name === 'XferError',
      );
    }
    let seed = 7;
    let failures = 0;
    for (let i = 0; i < 20; i++) {
      const copy = Buffer.from(bytes);
      for (let j = 0; j < 8; j++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        copy[seed % copy.length] = seed & 0xff;
      }
      await fsp.writeFile(bad, copy);
      try {
        await loadWeights(model, bad);
      } catch (error) {
        failures++;
        assert.equal((error as Error).name, 'XferError', String(error));
      }
    }
    assert.ok(failures > 0);
    model.dispose();
  });
});
