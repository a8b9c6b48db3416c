import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { loadModel, loadWeights, saveModel } from '../src/weights/index.js';
import { replaceModelFolder } from '../src/weights/model-folder.js';
import { buildTestModel, randomizeWeights, weightValues } from './helpers/weights-fixtures.js';

let dir: string;
let saved: tf.LayersModel;
let modelDir: string;

before(async () => {
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-weights-tfjs-'));
  saved = buildTestModel();
  randomizeWeights(saved, 11);
  modelDir = path.join(dir, 'model');
  await saveModel(saved, modelDir);
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function predict(model: tf.LayersModel): number[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(
      Float32Array.from({ length: 6 * 6 * 3 }, (_, i) => Math.cos(i)),
      [1, 6, 6, 3],
    );
    return Array.from((model.predict(x) as tf.Tensor).dataSync());
  });
}

/** A copy of the saved model folder to damage. */
async function copyModel(name: string): Promise<string> {
  const target = path.join(dir, name);
  await fsp.cp(modelDir, target, { recursive: true });
  return target;
}

async function editModelJson(folder: string, edit: (json: any) => void): Promise<void> {
  const file = path.join(folder, 'model.json');
  const json = JSON.parse(await fsp.readFile(file, 'utf8'));
  edit(json);
  await fsp.writeFile(file, JSON.stringify(json));
}

/** conv1 + bn1 + gap + fc, 355 float32 weights by hand: 112 + 16 + 40 + (148 + 16 + 15) + 8. */
const WEIGHT_BYTES =
  (3 * 3 * 3 * 4 +
    4 +
    4 * 4 +
    (3 * 3 * 4 + 4) +
    (3 * 3 * 4 * 4 + 4) +
    4 * 4 +
    (4 * 3 + 3) +
    (3 * 2 + 2)) *
  4;

describe('saveModel / loadModel', () => {
  test('writes model.json and weights.bin only, and loads back predicting exactly the same', async () => {
    assert.deepEqual((await fsp.readdir(modelDir)).sort(), ['model.json', 'weights.bin']);
    assert.equal((await fsp.stat(path.join(modelDir, 'weights.bin'))).size, WEIGHT_BYTES);
    const json = JSON.parse(await fsp.readFile(path.join(modelDir, 'model.json'), 'utf8'));
    assert.equal(json.format, 'layers-model');
    assert.deepEqual(json.weightsManifest[0].paths, ['weights.bin']);
    const loaded = await loadModel(modelDir);
    assert.deepEqual(predict(loaded), predict(saved));
    const viaJson = await loadModel(path.join(modelDir, 'model.json'));
    assert.deepEqual(predict(viaJson), predict(saved));
  });

  test('a missing folder, a folder without model.json, a missing weights file: each named', async () => {
    const missing = path.join(dir, 'nowhere');
    await assert.rejects(loadModel(missing), {
      code: 'NOT_FOUND',
      message: new RegExp(`^no model at ${missing}: it does not exist\\.`),
    });
    const empty = path.join(dir, 'empty');
    await fsp.mkdir(empty);
    await assert.rejects(loadModel(empty), {
      code: 'NOT_FOUND',
      message:
        /the model folder .*empty has no model\.json; saveModel writes model\.json and weights\.bin there\./,
    });
    const noWeights = await copyModel('no-weights');
    await fsp.rm(path.join(noWeights, 'weights.bin'));
    await assert.rejects(loadModel(noWeights), {
      code: 'NOT_FOUND',
      message:
        /the model in .*no-weights is incomplete: .*model\.json lists the weight file 'weights\.bin', which does not exist/,
    });
  });

  test('a weights file of the wrong size is CORRUPT_FILE with both byte counts', async () => {
    const short = await copyModel('short');
    const bin = path.join(short, 'weights.bin');
    await fsp.truncate(bin, WEIGHT_BYTES - 8);
    await assert.rejects(loadModel(short), {
      code: 'CORRUPT_FILE',
      message: new RegExp(
        `model\\.json describes ${WEIGHT_BYTES} bytes of weights but weights\\.bin hold ${WEIGHT_BYTES - 8}\\.`,
      ),
    });
  });

  test('weight paths outside the folder are refused', async () => {
    for (const shard of [
      '../model/weights.bin',
      path.join(modelDir, 'weights.bin'),
      'sub/../../x.bin',
    ]) {
      const folder = await copyModel(`escape-${Math.random().toString(36).slice(2)}`);
      await editModelJson(folder, (json) => {
        json.weightsManifest[0].paths = [shard];
      });
      await assert.rejects(loadModel(folder), {
        code: 'CORRUPT_FILE',
        message: /which is outside the model's folder; weight files must sit beside model\.json/,
      });
    }
  });

  test('broken JSON and an unregistered layer class are named', async () => {
    const broken = await copyModel('broken');
    await fsp.writeFile(path.join(broken, 'model.json'), '{"modelTopology": ');
    await assert.rejects(loadModel(broken), {
      code: 'CORRUPT_FILE',
      message: /model\.json is not valid JSON/,
    });
    const unknown = await copyModel('unknown-class');
    await editModelJson(unknown, (json) => {
      const layers = json.modelTopology.config.layers;
      layers.find((l: any) => l.config.name === 'gap').class_name = 'NoSuchLayer';
    });
    const graph = await copyModel('graph-model');
    await editModelJson(graph, (json) => {
      json.format = 'graph-model';
    });
    await assert.rejects(loadModel(graph), {
      code: 'UNSUPPORTED',
      message: /is a tfjs graph model/,
    });
    await assert.rejects(loadModel(unknown), {
      code: 'UNSUPPORTED',
      message:
        /uses the layer class 'NoSuchLayer', which is not registered\. Import the module that defines it/,
    });
  });

  test('a custom layer registered with tf.serialization.registerClass round-trips', async () => {
    class TimesTwo extends tf.layers.Layer {
      static className = 'XferTestTimesTwo';
      override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
        return tf.mul(Array.isArray(inputs) ? inputs[0]! : inputs, 2);
      }
    }
    tf.serialization.registerClass(TimesTwo);
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [2], units: 2 }), new TimesTwo({})],
    });
    const folder = path.join(dir, 'custom');
    await saveModel(model, folder);
    const loaded = await loadModel(folder);
    const x = tf.tensor2d([[1, -2]]);
    assert.deepEqual(
      Array.from((loaded.predict(x) as tf.Tensor).dataSync()),
      Array.from((model.predict(x) as tf.Tensor).dataSync()),
    );
    assert.equal(loaded.layers[1]!.getClassName(), 'XferTestTimesTwo');
  });

  test('saveModel refuses a path that is a file', async () => {
    const file = path.join(dir, 'a-file');
    await fsp.writeFile(file, 'x');
    await assert.rejects(saveModel(saved, file), {
      code: 'INVALID_ARGUMENT',
      message: /saveModel writes a folder, but .*a-file is a file/,
    });
  });
});

describe('loadWeights from a tfjs model folder (by name)', () => {
  test('into a fresh model of the same architecture, nested model included', async () => {
    const fresh = buildTestModel();
    await loadWeights(fresh, modelDir);
    assert.deepEqual(predict(fresh), predict(saved));
  });

  test('into a model holding some of the layers in another order', async () => {
    const image = tf.input({ shape: [6, 6, 3] });
    let x = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv1' })
      .apply(image) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: 3, name: 'other_head' }).apply(x) as tf.SymbolicTensor;
    const partial = tf.model({ inputs: image, outputs: x });
    await loadWeights(partial, path.join(modelDir, 'model.json'));
    assert.deepEqual(weightValues(partial, 'conv1'), weightValues(saved, 'conv1'));
  });
});

test('replaceModelFolder swaps a saved model for another: one weights file, the new values', async () => {
  const target = await copyModel('replaced');
  const other = buildTestModel();
  randomizeWeights(other, 12);
  for (let round = 0; round < 2; round++) {
    await replaceModelFolder(round === 0 ? other : saved, target);
    const json = JSON.parse(await fsp.readFile(path.join(target, 'model.json'), 'utf8'));
    const shards = json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths);
    assert.equal(shards.length, 1);
    assert.match(shards[0], /^weights\.[0-9a-f]{12}\.bin$/);
    // The old weights (saveModel's weights.bin, then the first shard) are gone; nothing else left.
    assert.deepEqual((await fsp.readdir(target)).sort(), [shards[0], 'model.json'].sort());
    const loaded = await loadModel(target);
    assert.deepEqual(predict(loaded), predict(round === 0 ? other : saved));
    loaded.dispose();
  }
  other.dispose();
});
