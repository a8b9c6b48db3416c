import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { ImageDataGenerator } from '../src/data/index.js';
import { symmetricEigen, zcaMatrix } from '../src/data/stats.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';
import { setQuiet } from '../src/util/log.js';
import { Random } from '../src/util/random.js';
import { makeTempDir } from './helpers/image-folders.js';

let dir: string;

before(async () => {
  await initBackend();
  setQuiet(true);
  dir = await makeTempDir('standardize');
});

after(async () => {
  setQuiet(false);
  await fsp.rm(dir, { recursive: true, force: true });
});

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tolerance,
      `index ${i}: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

function standardized(gen: ImageDataGenerator, values: number[], shape: [number, number, number]) {
  const x = tf.tensor3d(values, shape);
  const y = gen.standardize(x);
  const out = [...y.dataSync()];
  tf.dispose([x, y]);
  return out;
}

test('samplewise centre and std use the whole image: (x - mean) / (std + 1e-6)', () => {
  const gen = new ImageDataGenerator({ samplewiseStdNormalization: true });
  assert.equal(
    gen.samplewiseCenter,
    true,
    'samplewiseStdNormalization implies samplewiseCenter, as in Keras',
  );
  // mean 2.5, population std sqrt(1.25)
  const s = Math.sqrt(1.25) + 1e-6;
  assertClose(standardized(gen, [1, 2, 3, 4], [2, 2, 1]), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]);
  const centre = new ImageDataGenerator({ samplewiseCenter: true, rescale: 2 });
  // rescale comes first: [2, 4, 6, 8] - 5
  assertClose(standardized(centre, [1, 2, 3, 4], [1, 2, 2]), [-3, -1, 1, 3]);
});

test('fit computes per-channel mean and population std after rescale; standardize applies them', () => {
  const gen = new ImageDataGenerator({ featurewiseStdNormalization: true, rescale: 0.5 });
  assert.equal(gen.featurewiseCenter, true);
  const x = tf.tensor4d([1, 10, 3, 30], [2, 1, 1, 2]);
  gen.fit(x);
  // rescaled [0.5, 5], [1.5, 15]: mean [1, 10], std [0.5, 5]
  assertClose(gen.mean!, [1, 10]);
  assertClose(gen.std!, [0.5, 5]);
  assertClose(standardized(gen, [5, 50], [1, 1, 2]), [1.5 / 0.500001, 15 / 5.000001]);
  // Unfitted featurewise options leave the data alone (Keras warns and goes on).
  const unfit = new ImageDataGenerator({ featurewiseCenter: true });
  assertClose(standardized(unfit, [5, 50], [1, 1, 2]), [5, 50]);
  x.dispose();
});

test('ZCA whitening of a diagonal covariance is diag(1 / sqrt(s + epsilon))', () => {
  const gen = new ImageDataGenerator({ zcaWhitening: true, zcaEpsilon: 1e-6 });
  assert.equal(gen.featurewiseCenter, true, 'zcaWhitening implies featurewiseCenter');
  // 4 samples of 1x1x2, centred; covariance diag(0.5, 2).
  const x = tf.tensor4d([1, 0, -1, 0, 0, 2, 0, -2], [4, 1, 1, 2]);
  gen.fit(x);
  const a = 1 / Math.sqrt(0.5 + 1e-6);
  const b = 1 / Math.sqrt(2 + 1e-6);
  assertClose(gen.principalComponents!, [a, 0, 0, b]);
  assertClose(standardized(gen, [1, 2], [1, 1, 2]), [a, 2 * b]);
  x.dispose();
});

test('the symmetric eigen-decomposition satisfies A v = lambda v with orthonormal v', () => {
  const n = 24;
  const random = new Random(3);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = random.uniform(-1, 1);
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
  const v = a.slice();
  const values = symmetricEigen(v, n);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let k = 0; k < n; k++) av += a[i * n + k]! * v[k * n + r]!;
      assert.ok(Math.abs(av - values[r]! * v[i * n + r]!) < 1e-10, `A v = lambda v for ${r}`);
    }
    for (let s = 0; s < n; s++) {
      let dot = 0;
      for (let k = 0; k < n; k++) dot += v[k * n + r]! * v[k * n + s]!;
      assert.ok(Math.abs(dot - (r === s ? 1 : 0)) < 1e-10, 'orthonormal');
    }
  }
});

test('ZCA from fewer samples than features (the Gram route) equals the full decomposition', () => {
  const random = new Random(5);
  const features = 12;
  const x5 = Float32Array.from({ length: 5 * features }, () => random.uniform(-1, 1));
  // Three copies of the same 5 samples have the same covariance but take the full route.
  const x15 = new Float32Array(15 * features);
  for (let c = 0; c < 3; c++) x15.set(x5, c * x5.length);
  const gram = zcaMatrix(x5, 5, features, 0.1);
  const full = zcaMatrix(x15, 15, features, 0.1);
  assertClose(gram, full, 1e-5);
});

test('flow batches tensors with labels; validationSplit takes the first fraction as validation', async () => {
  const gen = new ImageDataGenerator({ validationSplit: 0.2, rescale: 10 });
  const x = tf.tensor4d(
    Array.from({ length: 10 }, (_, i) => i),
    [10, 1, 1, 1],
  );
  const y = tf.tensor1d([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  const validation = gen.flow(x, y, { subset: 'validation', shuffle: false, batchSize: 4 });
  assert.equal(validation.samples, 2);
  const vb = await validation.getBatch(0);
  assert.deepEqual([...vb.x.dataSync()], [0, 10]);
  assert.deepEqual([...vb.y!.dataSync()], [0, 1]);
  const training = gen.flow(x, y, { subset: 'training', shuffle: false, batchSize: 4 });
  assert.equal(training.samples, 8);
  assert.equal(training.length, 2);
  const last = await training.getBatch(1);
  assert.deepEqual([...last.x.dataSync()], [60, 70, 80, 90]);
  assert.deepEqual(last.x.shape, [4, 1, 1, 1]);
  const shuffled = gen.flow(x, y, { seed: 4, batchSize: 10 });
  const sb = await shuffled.getBatch(0);
  const xs = [...sb.x.dataSync()];
  assert.deepEqual(
    [...sb.y!.dataSync()],
    xs.map((v) => (v / 10) % 2),
    'labels follow their images through the shuffle',
  );
  assert.deepEqual(
    [...xs].sort((a, b) => a - b),
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
  );
  // Sorted labels would give the subsets different classes: Keras refuses, so do we.
  const sorted = tf.tensor1d([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
  assert.throws(
    () => gen.flow(x, sorted, { subset: 'validation' }),
    /different labels after the split.*shuffle them first/,
  );
  assert.throws(
    () => new ImageDataGenerator().flow(x, y, { subset: 'training' }),
    /validationSplit 0/,
  );
  assert.throws(() => gen.flow(x, tf.tensor1d([1, 2]), {}), /same length/);
  assert.throws(() => new ImageDataGenerator({ validationSplit: 1 }), /validationSplit/);
  tf.dispose([x, y, sorted, vb.x, vb.y!, last.x, last.y!, sb.x, sb.y!]);
});

test('flowFromDirectory subsets: per class, the first validationSplit of the sorted files is validation', async () => {
  const root = path.join(dir, 'split');
  const counts = { a: 5, b: 3 };
  for (const [name, count] of Object.entries(counts)) {
    await fsp.mkdir(path.join(root, name), { recursive: true });
    for (let i = 0; i < count; i++) {
      await sharp({
        create: { width: 4, height: 4, channels: 3, background: { r: i, g: 0, b: 0 } },
      })
        .png()
        .toFile(path.join(root, name, `${i}.png`));
    }
  }
  const gen = new ImageDataGenerator({ validationSplit: 0.4 });
  const validation = await gen.flowFromDirectory(root, {
    subset: 'validation',
    targetSize: [4, 4],
  });
  // int(0.4 * 5) = 2 of a, int(0.4 * 3) = 1 of b
  assert.deepEqual(validation.filenames, [
    path.join('a', '0.png'),
    path.join('a', '1.png'),
    path.join('b', '0.png'),
  ]);
  const training = await gen.flowFromDirectory(root, { subset: 'training', targetSize: [4, 4] });
  assert.deepEqual(training.filenames, [
    path.join('a', '2.png'),
    path.join('a', '3.png'),
    path.join('a', '4.png'),
    path.join('b', '1.png'),
    path.join('b', '2.png'),
  ]);
  assert.deepEqual([...training.classes], [0, 0, 0, 1, 1]);
  await assert.rejects(
    new ImageDataGenerator().flowFromDirectory(root, { subset: 'validation' }),
    (e: unknown) => e instanceof XferError && /validationSplit 0/.test(e.message),
  );
});

test('interpolationOrder 0 samples the nearest pixel (scipy order 0)', () => {
  const gen = new ImageDataGenerator({ interpolationOrder: 0 });
  const grid = Array.from({ length: 25 }, (_, i) => i);
  const x = tf.tensor3d(grid, [5, 5, 1]);
  const y = gen.applyTransform(x, { tx: 0.6 });
  // column c reads c + 0.6, rounded to c + 1; the last column clamps (fillMode 'nearest')
  const expected = grid.map((v, i) => (i % 5 === 4 ? v : v + 1));
  assert.deepEqual([...y.dataSync()], expected);
  assert.throws(
    () => new ImageDataGenerator({ interpolationOrder: 3 as never }),
    /interpolationOrder/,
  );
  tf.dispose([x, y]);
});

test('preprocessingFunctionOnBatch gives the per-image values in one call per batch', async () => {
  let calls = 0;
  const fn = (t: tf.Tensor3D) => {
    calls++;
    return tf.sub(tf.mul(t, 2), 1) as tf.Tensor3D;
  };
  const x = tf.tensor4d(
    Array.from({ length: 24 }, (_, i) => i),
    [3, 2, 2, 2],
  );
  const perImage = new ImageDataGenerator({ preprocessingFunction: fn });
  const onBatch = new ImageDataGenerator({
    preprocessingFunction: fn,
    preprocessingFunctionOnBatch: true,
  });
  const a = await perImage.flow(x, null, { shuffle: false }).getBatch(0);
  assert.equal(calls, 3);
  const b = await onBatch.flow(x, null, { shuffle: false }).getBatch(0);
  assert.equal(calls, 4);
  assert.deepEqual([...a.x.dataSync()], [...b.x.dataSync()]);
  assert.deepEqual(
    [...b.x.dataSync()],
    Array.from({ length: 24 }, (_, i) => 2 * i - 1),
  );
  assert.equal(a.y, null);
  tf.dispose([x, a.x, b.x]);
});

/** A Python with Debian's keras_preprocessing and scipy (a pyenv python3 may shadow it). */
function kerasPython(): string | null {
  for (const python of ['/usr/bin/python3', 'python3']) {
    try {
      execFileSync(python, ['-c', 'import keras_preprocessing.image, scipy'], { stdio: 'ignore' });
      return python;
    } catch {}
  }
  return null;
}

test('fit and standardize match keras_preprocessing (when installed)', async (t) => {
  const python = kerasPython();
  if (python === null) {
    t.skip(
      'python3-keras-preprocessing (with scipy) is not installed: the Keras comparison is skipped',
    );
    return;
  }
  const random = new Random(11);
  // More samples than features: a full-rank covariance, so float32 noise in Keras's SVD of a
  // null space (which epsilon then amplifies) does not enter the comparison.
  const shape = [40, 2, 2, 3] as const;
  const values = Array.from({ length: 40 * 2 * 2 * 3 }, () => Math.round(random.uniform(0, 255)));
  const probe = Array.from({ length: 2 * 2 * 3 }, () => Math.round(random.uniform(0, 255)));
  const script = `
import json, sys, warnings
import numpy as np
warnings.simplefilter('ignore')
from keras_preprocessing.image import ImageDataGenerator
d = json.loads(sys.stdin.read())
x = np.array(d['x'], dtype='float32').reshape(${shape.join(',')})
p = np.array(d['p'], dtype='float32').reshape(2, 2, 3)
out = {}
for name, kw in [('feat', dict(featurewise_center=True, featurewise_std_normalization=True)),
                 ('zca', dict(zca_whitening=True, zca_epsilon=0.01)),
                 ('sample', dict(samplewise_center=True, samplewise_std_normalization=True))]:
    g = ImageDataGenerator(dtype='float32', **kw)
    g.fit(x)
    out[name] = g.standardize(np.copy(p)).ravel().tolist()
print(json.dumps(out))
`;
  const result = JSON.parse(
    execFileSync(python, ['-c', script], {
      input: JSON.stringify({ x: values, p: probe }),
    }).toString(),
  ) as Record<string, number[]>;
  const x = tf.tensor4d(values, [...shape]);
  const cases: [string, ConstructorParameters<typeof ImageDataGenerator>[0]][] = [
    ['feat', { featurewiseCenter: true, featurewiseStdNormalization: true }],
    ['zca', { zcaWhitening: true, zcaEpsilon: 0.01 }],
    ['sample', { samplewiseCenter: true, samplewiseStdNormalization: true }],
  ];
  for (const [name, options] of cases) {
    const gen = new ImageDataGenerator(options);
    gen.fit(x);
    assertClose(standardized(gen, probe, [2, 2, 3]), result[name]!, 1e-3);
  }
  x.dispose();
});

test('preprocessingFunctionOnBatch: a per-pixel affine map (caffe) runs in JS; others are called on the batch', async () => {
  const caffe = (t: tf.Tensor3D) =>
    tf.sub(tf.reverse(t, -1), tf.tensor1d([103.939, 116.779, 123.68])) as tf.Tensor3D;
  let calls = 0;
  const nonlinear = (t: tf.Tensor3D) => {
    calls++;
    return tf.relu(tf.sub(t, 100)) as tf.Tensor3D;
  };
  const values = Array.from({ length: 2 * 3 * 2 * 3 }, (_, i) => (i * 41) % 256);
  const x = tf.tensor4d(values, [2, 3, 2, 3]);
  for (const [fn, tolerance] of [
    [caffe, 1e-4],
    [nonlinear, 0],
  ] as const) {
    const a = await new ImageDataGenerator({ preprocessingFunction: fn })
      .flow(x, null, { shuffle: false })
      .getBatch(0);
    const b = await new ImageDataGenerator({
      preprocessingFunction: fn,
      preprocessingFunctionOnBatch: true,
    })
      .flow(x, null, { shuffle: false })
      .getBatch(0);
    assertClose([...b.x.dataSync()], [...a.x.dataSync()], tolerance);
    tf.dispose([a.x, b.x]);
  }
  // Per image: 2 calls; on the batch: the probe, found not affine, then one call for the batch.
  assert.equal(calls, 4);
  // caffe of pixel (r, g, b) = (b - 103.939, g - 116.779, r - 123.68)
  const one = await new ImageDataGenerator({
    preprocessingFunction: caffe,
    preprocessingFunctionOnBatch: true,
  })
    .flow(tf.tensor4d([10, 20, 30], [1, 1, 1, 3]), null)
    .getBatch(0);
  assertClose([...one.x.dataSync()], [30 - 103.939, 20 - 116.779, 10 - 123.68], 1e-4);
  tf.dispose([x, one.x]);
});
