/**
 * tfjs model folders whose config is in Keras 3's dialect (`Functional`, `batch_shape`, dtype
 * policies, `module`/`registered_name`, `{args, kwargs}` call nodes): tfjs 4.22 cannot parse them;
 * loadWeights reads their weights by name, and loadModel rewrites the config (allowlisted layers
 * only) into the dialect tfjs parses.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import { loadModel, loadWeights, saveModel } from '../src/weights/index.js';
import { buildTestModel, randomizeWeights } from './helpers/weights-fixtures.js';

type Json = Record<string, any>;

const policy = {
  module: 'keras',
  class_name: 'DTypePolicy',
  config: { name: 'float32' },
  registered_name: null,
};

/** Keras 3's way of writing a tfjs (Keras 2 dialect) layer config, by hand. */
function toKeras3Layer(layer: Json): Json {
  const config: Json = { ...layer.config, dtype: policy };
  for (const [key, value] of Object.entries(config)) {
    if (value && typeof value === 'object' && 'class_name' in value) {
      config[key] = { module: 'keras.initializers', ...value, registered_name: null };
    }
  }
  if (config.batch_input_shape) {
    config.batch_shape = config.batch_input_shape;
    delete config.batch_input_shape;
  }
  const out: Json = {
    module: 'keras.layers',
    class_name: layer.class_name,
    config,
    registered_name: null,
  };
  if (layer.class_name === 'Sequential') {
    const inner = config.layers.map(toKeras3Layer);
    const shape = inner[0].config.batch_shape;
    delete inner[0].config.batch_shape;
    config.layers = [
      {
        module: 'keras.layers',
        class_name: 'InputLayer',
        config: { batch_shape: shape, dtype: 'float32', name: 'inner_input' },
        registered_name: null,
      },
      ...inner,
    ];
  }
  if (layer.name !== undefined) out.name = layer.name;
  if (layer.inbound_nodes) {
    out.inbound_nodes = layer.inbound_nodes.map((node: [string, number, number, Json][]) => {
      const tensors = node.map(([name, n, t]) => ({
        class_name: '__keras_tensor__',
        config: { shape: [null], dtype: 'float32', keras_history: [name, n, t] },
      }));
      return { args: tensors.length === 1 ? tensors : [tensors], kwargs: { training: false } };
    });
  }
  return out;
}

function toKeras3(topology: Json): Json {
  return {
    module: 'keras.src.models.functional',
    class_name: 'Functional',
    config: {
      ...topology.config,
      layers: topology.config.layers.map(toKeras3Layer),
      input_layers: topology.config.input_layers[0],
      output_layers: topology.config.output_layers[0],
    },
    registered_name: 'Functional',
  };
}

let dir: string;
let source: tf.LayersModel;
before(async () => {
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-keras3-config-'));
  source = buildTestModel();
  randomizeWeights(source, 5);
  await saveModel(source, dir);
  const file = path.join(dir, 'model.json');
  const json = JSON.parse(await fsp.readFile(file, 'utf8'));
  json.modelTopology = toKeras3(json.modelTopology);
  await fsp.writeFile(file, JSON.stringify(json));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const input = (): tf.Tensor =>
  tf.tensor4d(
    Float32Array.from({ length: 6 * 6 * 3 }, (_, i) => Math.cos(i)),
    [1, 6, 6, 3],
  );

function predict(model: tf.LayersModel): number[] {
  return tf.tidy(() => Array.from((model.predict(input()) as tf.Tensor).dataSync()));
}

describe('Keras 3 configs in tfjs model folders', () => {
  test('tfjs itself cannot load the Keras 3 config', async () => {
    const json = JSON.parse(await fsp.readFile(path.join(dir, 'model.json'), 'utf8'));
    const weights = await fsp.readFile(path.join(dir, 'weights.bin'));
    await assert.rejects(
      tf.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: json.modelTopology,
          weightSpecs: json.weightsManifest[0].weights,
          weightData: weights.buffer.slice(
            weights.byteOffset,
            weights.byteOffset + weights.byteLength,
          ),
        }),
      ),
    );
  });

  test('loadWeights reads its weights by name into a model built in code', async () => {
    const model = buildTestModel();
    randomizeWeights(model, 6);
    await loadWeights(model, path.join(dir, 'model.json'));
    assert.deepEqual(predict(model), predict(source));
    model.dispose();
  });

  test('loadModel rewrites the config and rebuilds the model', async () => {
    const model = await loadModel(dir);
    assert.deepEqual(
      model.layers.map((l) => l.name),
      source.layers.map((l) => l.name),
    );
    assert.deepEqual(predict(model), predict(source));
    model.dispose();
  });

  test('a Lambda layer (code) is refused, never run', async () => {
    const lambdaDir = path.join(dir, 'lambda');
    await fsp.mkdir(lambdaDir);
    const json = JSON.parse(await fsp.readFile(path.join(dir, 'model.json'), 'utf8'));
    json.modelTopology.config.layers.splice(5, 0, {
      module: 'keras.layers',
      class_name: 'Lambda',
      config: {
        name: 'evil',
        function: { class_name: '__lambda__', config: { code: 'b3Muc3lzdGVt' } },
      },
      registered_name: null,
      inbound_nodes: [],
    });
    await fsp.writeFile(path.join(lambdaDir, 'model.json'), JSON.stringify(json));
    await fsp.copyFile(path.join(dir, 'weights.bin'), path.join(lambdaDir, 'weights.bin'));
    await assert.rejects(loadModel(lambdaDir), (error: XferError) => {
      assert.equal(error.code, 'UNSUPPORTED');
      assert.match(
        error.message,
        /layer "evil" is a 'Lambda'; a Lambda layer is Python code, which xfer never runs/,
      );
      return true;
    });
  });
});
