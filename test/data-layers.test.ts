import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  CenterCrop,
  INFERENCE_IDENTITY_LAYERS,
  RandomBrightness,
  RandomContrast,
  RandomFlip,
  RandomRotation,
  RandomTranslation,
  RandomZoom,
  Resizing,
} from '../src/data/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';

/** A 3x3 single-channel image whose pixel (r, c) holds 3r + c. */
let grid3: tf.Tensor4D;

before(async () => {
  await initBackend();
  grid3 = tf.tensor4d([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 3, 3, 1]);
});

function run(layer: tf.layers.Layer, x: tf.Tensor, training = true): number[] {
  const y = layer.apply(x, { training }) as tf.Tensor;
  const out = [...y.dataSync()];
  if (y !== x) y.dispose();
  return out;
}

function assertClose(actual: number[], expected: number[], tolerance = 1e-4) {
  assert.equal(actual.length, expected.length);
  actual.forEach((v, i) => {
    assert.ok(Math.abs(v - expected[i]!) <= tolerance, `index ${i}: ${v} vs ${expected[i]}`);
  });
}

test('random layers change images only in training; in inference they pass the input through', () => {
  const layers = [
    new RandomFlip({ seed: 1 }),
    new RandomRotation({ factor: 0.2, seed: 1 }),
    new RandomZoom({ heightFactor: 0.3, seed: 1 }),
    new RandomTranslation({ heightFactor: 0.3, widthFactor: 0.3, seed: 1 }),
    new RandomContrast({ factor: 0.5, seed: 1 }),
    new RandomBrightness({ factor: 0.5, seed: 1 }),
  ];
  const x = tf.tensor4d(
    Array.from({ length: 2 * 5 * 5 * 3 }, (_, i) => (i * 37) % 251),
    [2, 5, 5, 3],
  );
  const original = [...x.dataSync()];
  for (const layer of layers) {
    assert.deepEqual(run(layer, x, false), original, `${layer.getClassName()} in inference`);
    assert.ok(INFERENCE_IDENTITY_LAYERS.includes(layer.getClassName()));
  }
  const changed = layers.filter((layer) => run(layer, x, true).some((v, i) => v !== original[i]));
  assert.equal(changed.length, layers.length, 'every layer augments in training');
  // In a model, predict is inference.
  const model = tf.sequential({
    layers: [
      new RandomFlip({ inputShape: [5, 5, 3], seed: 2 }),
      new RandomRotation({ factor: 0.5 }),
    ],
  });
  const predicted = model.predict(x) as tf.Tensor;
  assert.deepEqual([...predicted.dataSync()], original);
  tf.dispose([x, predicted]);
});

test('RandomFlip mirrors whole images, or leaves them, per image', () => {
  const x = tf.tensor4d(
    Array.from({ length: 8 * 3 }, (_, i) => i % 3),
    [8, 1, 3, 1],
  );
  const out = run(new RandomFlip({ mode: 'horizontal', seed: 3 }), x);
  const rows = Array.from({ length: 8 }, (_, b) => out.slice(b * 3, b * 3 + 3).join());
  assert.ok(rows.every((r) => r === '0,1,2' || r === '2,1,0'));
  assert.ok(rows.includes('0,1,2') && rows.includes('2,1,0'), 'both outcomes appear in 8 draws');
  x.dispose();
});

test("RandomRotation of exactly a quarter turn is TF's counter-clockwise rotation", () => {
  // factor [0.25, 0.25] is 90 degrees: out(x, y) = in(x = 2 - y, y = x).
  const layer = new RandomRotation({ factor: [0.25, 0.25], fillMode: 'constant' });
  assertClose(run(layer, grid3), [2, 5, 8, 1, 4, 7, 0, 3, 6]);
});

test('RandomTranslation and RandomZoom sample with the fill mode outside the image', () => {
  // heightFactor 2/3 of 3 rows: content moves down 2 rows; constant fill 9.
  const down = new RandomTranslation({
    heightFactor: [2 / 3, 2 / 3],
    widthFactor: 0,
    fillMode: 'constant',
    fillValue: 9,
  });
  assertClose(run(down, grid3), [9, 9, 9, 9, 9, 9, 0, 1, 2]);
  // reflect (d c b a | a b c d): row -1 reads row 0, row -2 reads row 1.
  const reflect = new RandomTranslation({ heightFactor: [2 / 3, 2 / 3], widthFactor: 0 });
  assertClose(run(reflect, grid3), [3, 4, 5, 0, 1, 2, 0, 1, 2]);
  // Zoom out 2x on rows about the centre: y_in = 2y - 1; rows -1 and 3 are outside.
  const zoom = new RandomZoom({
    heightFactor: [1, 1],
    widthFactor: [0, 0],
    fillMode: 'constant',
  });
  assertClose(run(zoom, grid3), [0, 0, 0, 3, 4, 5, 0, 0, 0]);
});

test('RandomBrightness adds factor x range, clipped; RandomContrast scales about the channel mean', () => {
  const x = tf.tensor4d([0, 100, 240, 250], [1, 2, 2, 1]);
  assertClose(run(new RandomBrightness({ factor: [0.1, 0.1] }), x), [25.5, 125.5, 255, 255]);
  const y = tf.tensor4d([50, 100, 150, 200], [1, 2, 2, 1]);
  const contrast = run(new RandomContrast({ factor: 0.5, seed: 4 }), y);
  // mean 125; every pixel is (v - mean) * c + mean with one c in [0.5, 1.5] (no clipping here)
  const c = (contrast[0]! - 125) / (50 - 125);
  assert.ok(c >= 0.5 && c <= 1.5 && Math.abs(c - 1) > 1e-3);
  assertClose(
    contrast,
    [50, 100, 150, 200].map((v) => (v - 125) * c + 125),
    1e-3,
  );
  tf.dispose([x, y]);
});

test('Resizing is tf.image.resize (half-pixel centres); CenterCrop slices the centre', () => {
  const row = tf.tensor4d([0, 100], [1, 1, 2, 1]);
  assert.deepEqual(run(new Resizing({ height: 1, width: 4 }), row, false), [0, 25, 75, 100]);
  const grid4 = tf.tensor4d(
    Array.from({ length: 16 }, (_, i) => i),
    [1, 4, 4, 1],
  );
  assert.deepEqual(run(new CenterCrop({ height: 2, width: 2 }), grid4, false), [5, 6, 9, 10]);
  assert.deepEqual(run(new CenterCrop({ height: 3, width: 2 }), grid4, false), [1, 2, 5, 6, 9, 10]);
  // cropToAspectRatio: 4x4 to 1x2 crops the centre 2 rows (rows 1-2), then halves the height.
  const cropped = run(new Resizing({ height: 1, width: 2, cropToAspectRatio: true }), grid4, false);
  assertClose(cropped, [6.5, 8.5]);
  const layer = new Resizing({ height: 8, width: 6 });
  assert.deepEqual(layer.computeOutputShape([null, 4, 4, 3]), [null, 8, 6, 3]);
  tf.dispose([row, grid4]);
});

test("a model with the layers saves with Keras's class names and keys, and loads back", async () => {
  const model = tf.sequential({
    layers: [
      new Resizing({ height: 6, width: 6, inputShape: [4, 4, 3] }),
      tf.layers.rescaling({ scale: 1 / 255, offset: -1 }),
      new CenterCrop({ height: 4, width: 4 }),
      new RandomFlip({ mode: 'horizontal', seed: 5 }),
      new RandomRotation({ factor: 0.1, fillMode: 'nearest' }),
      new RandomZoom({ heightFactor: [-0.2, 0.1] }),
      new RandomTranslation({ heightFactor: 0.1, widthFactor: 0.2 }),
      new RandomContrast({ factor: 0.3 }),
      new RandomBrightness({ factor: 0.2, valueRange: [-1, 1] }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2 }),
    ],
  });
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const json = JSON.stringify(saved!.modelTopology);
  for (const key of [
    '"class_name":"RandomZoom"',
    '"height_factor":[-0.2,0.1]',
    '"fill_mode":"nearest"',
    '"crop_to_aspect_ratio":false',
    '"value_range":[-1,1]',
    '"class_name":"Rescaling"',
  ]) {
    assert.ok(json.includes(key), `saved topology has ${key}`);
  }
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
  assert.deepEqual(
    loaded.layers.map((l) => l.getClassName()),
    model.layers.map((l) => l.getClassName()),
  );
  const zoom = loaded.layers[5] as RandomZoom;
  assert.ok(zoom instanceof RandomZoom);
  assert.deepEqual(zoom.heightFactor, [-0.2, 0.1]);
  const x = tf.randomUniform([2, 4, 4, 3], 0, 255);
  const a = model.predict(x) as tf.Tensor;
  const b = loaded.predict(x) as tf.Tensor;
  assertClose([...a.dataSync()], [...b.dataSync()], 1e-5);
  tf.dispose([x, a, b]);
});

test('a model starting with random layers trains with fit (they run, with training: true)', async () => {
  const flip = new RandomFlip({ inputShape: [4, 4, 1], mode: 'horizontal', seed: 9 });
  let trainingCalls = 0;
  const original = flip.call.bind(flip);
  flip.call = (inputs, kwargs) => {
    if (kwargs?.training === true) trainingCalls++;
    return original(inputs, kwargs);
  };
  const model = tf.sequential({
    layers: [
      flip,
      new RandomRotation({ factor: 0.1 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 1 }),
    ],
  });
  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const x = tf.randomUniform([4, 4, 4, 1]);
  const y = tf.zeros([4, 1]);
  const history = await model.fit(x, y, { epochs: 2, batchSize: 2, verbose: 0 });
  assert.equal(history.history.loss!.length, 2);
  assert.ok(trainingCalls >= 4, `RandomFlip ran in training ${trainingCalls} times`);
  tf.dispose([x, y]);
});
