import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { ImageDataGenerator, imageDatasetFromDirectory } from '../src/data/index.js';
import type { DirectoryIterator } from '../src/data/iterator.js';
import type { BatchSource } from '../src/data/source.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { frozenSplit } from '../src/training/accelerate-fit.js';
import type { FeatureCache } from '../src/training/feature-cache.js';
import { FeatureStore } from '../src/training/feature-store.js';
import { Adam, Callback, compile, fit } from '../src/training/index.js';
import { trainableVariables } from '../src/training/steps.js';
import { Random } from '../src/util/random.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

const SIZE = 32;
let root: string;
let trainDir: string;
let valDir: string;
const temps: string[] = [];

/** The seed's model at 32x32: a tiny frozen conv backbone, GAP, Dense(1, sigmoid); fixed names. */
function seedModel(seed: number): tf.Sequential {
  const backbone = tf.sequential({
    name: 'tiny_backbone',
    layers: [
      tf.layers.conv2d({
        inputShape: [SIZE, SIZE, 3],
        filters: 8,
        kernelSize: 3,
        strides: 2,
        activation: 'relu',
        name: 'conv_a',
      }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', name: 'conv_b' }),
    ],
  });
  backbone.trainable = false;
  const model = tf.sequential({
    name: 'seed_model',
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'out' }),
    ],
  });
  setWeights(model, seed);
  compile(model, { optimizer: Adam(1e-2), loss: 'binary_crossentropy', metrics: ['accuracy'] });
  return model;
}

function setWeights(model: tf.LayersModel, seed: number): void {
  const random = new Random(seed);
  const values = model.weights.map((w) => {
    const size = w.shape.reduce((a: number, b) => a * (b as number), 1) as number;
    return tf.tensor(
      Float32Array.from({ length: size }, () => random.uniform(-0.3, 0.3)),
      w.shape as number[],
    );
  });
  model.setWeights(values);
  tf.dispose(values);
}

/** Counts a source's image loads (getBatch) and label-only reads, per epoch. */
function spy(source: BatchSource): { loads: number[]; labels: number[] } {
  const counts = { loads: [0], labels: [0] };
  const getBatch = source.getBatch.bind(source);
  source.getBatch = (index) => {
    counts.loads[counts.loads.length - 1]!++;
    return getBatch(index);
  };
  const getLabels = source.getLabels?.bind(source);
  if (getLabels) {
    source.getLabels = (index) => {
      counts.labels[counts.labels.length - 1]!++;
      return getLabels(index);
    };
  }
  return counts;
}

/** Starts a new count at each epoch (the prefetch of epoch e+1's first batch counts in e). */
class EpochMark extends Callback {
  constructor(private readonly counts: { loads: number[]; labels: number[] }[]) {
    super();
  }
  override async onEpochEnd(): Promise<void> {
    for (const c of this.counts) {
      c.loads.push(0);
      c.labels.push(0);
    }
  }
}

const generator = () => new ImageDataGenerator({ rescale: 1 / 255 });

async function iterators(): Promise<[DirectoryIterator, DirectoryIterator]> {
  const gen = generator();
  return [
    await gen.flowFromDirectory(trainDir, {
      targetSize: [SIZE, SIZE],
      batchSize: 4,
      classMode: 'binary',
      seed: 7,
    }),
    await gen.flowFromDirectory(valDir, {
      targetSize: [SIZE, SIZE],
      batchSize: 4,
      classMode: 'binary',
      shuffle: false,
    }),
  ];
}

/** The same batches with no keys and no generator: fit runs the frozen layers on every batch. */
function uncached(source: BatchSource): BatchSource {
  return {
    length: source.length,
    getBatch: (index) => source.getBatch(index),
    onEpochEnd: () => source.onEpochEnd?.(),
  };
}

async function splitCache(model: tf.LayersModel): Promise<FeatureCache> {
  const split = await frozenSplit(model, trainableVariables(model), [SIZE, SIZE, 3], true);
  assert.ok(split?.cache, 'the model was split with a cache');
  return split.cache;
}

function assertClose(a: number[], b: number[], what: string): void {
  assert.equal(a.length, b.length, what);
  a.forEach((v, i) => {
    assert.ok(Math.abs(v - b[i]!) <= 1e-6, `${what}[${i}]: ${v} vs ${b[i]}`);
  });
}

async function uncachedLosses(seed: number, epochs: number): Promise<number[]> {
  const model = seedModel(seed);
  const [train, val] = await iterators();
  const history = await fit(model, uncached(train), {
    epochs,
    verbose: 0,
    validationData: uncached(val),
  });
  model.dispose();
  return [...(history.history.loss as number[]), ...(history.history.val_loss as number[])];
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  temps.push(dir);
  return dir;
}

async function cacheFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const version of await fsp.readdir(dir)) {
    for (const name of await fsp.readdir(path.join(dir, version))) {
      if (name.endsWith('.xfc')) files.push(path.join(dir, version, name));
    }
  }
  return files;
}

before(async () => {
  await initBackend();
  root = await tempDir('feature-cache');
  await makeImageFolder(root, { splits: { train: 6, validation: 2 }, size: SIZE });
  trainDir = path.join(root, 'train');
  valDir = path.join(root, 'validation');
});

after(async () => {
  for (const dir of temps) await fsp.rm(dir, { recursive: true, force: true });
});

describe('feature cache keyed by file', () => {
  test('epochs after the first load no image, and train as the uncached path does', async () => {
    const model = seedModel(1);
    const [train, val] = await iterators();
    const trainCounts = spy(train);
    const valCounts = spy(val);
    const history = await fit(model, train, {
      epochs: 3,
      verbose: 0,
      validationData: val,
      callbacks: [new EpochMark([trainCounts, valCounts])],
    });
    // 12 training images in 3 batches, 4 validation images in 1: loaded in epoch 1 only.
    assert.deepEqual(trainCounts.loads, [3, 0, 0, 0]);
    assert.deepEqual(trainCounts.labels, [0, 3, 3, 0]);
    assert.deepEqual(valCounts.loads, [1, 0, 0, 0]);
    assert.deepEqual(valCounts.labels, [0, 1, 1, 0]);
    const cache = await splitCache(model);
    assert.equal(cache.misses, 16);
    assert.equal(cache.hits, 16 * 2);
    assert.equal(cache.size, 16);

    const expected = await uncachedLosses(1, 3);
    assertClose(
      [...(history.history.loss as number[]), ...(history.history.val_loss as number[])],
      expected,
      'loss, val_loss',
    );
    const losses = history.history.loss as number[];
    assert.ok(losses[2]! < losses[0]!, 'the head learned (not a comparison of constants)');

    // A rewritten file (new size and modification time) misses; the other 11 are served.
    const file = train.filepaths[0]!;
    const pixels = Buffer.alloc(SIZE * SIZE * 3, 128);
    await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 3 } })
      .png()
      .toFile(file);
    const later = new Date(Date.now() + 5000);
    await fsp.utimes(file, later, later);
    const again = spy(train);
    await fit(model, train, { epochs: 1, verbose: 0 });
    assert.equal(again.loads[0], 1, 'only the batch with the changed file is loaded');
    assert.equal(again.labels[0], 2);
    assert.equal(cache.misses, 17);
    model.dispose();
  });

  test('a change of the frozen weights misses, in memory and on disk', async () => {
    const dir = await tempDir('feature-cache-dir');
    const model = seedModel(2);
    const [train] = await iterators();
    await fit(model, train, { epochs: 1, verbose: 0, featureCacheDir: dir });
    const first = await splitCache(model);
    assert.equal(first.misses, 12);
    assert.equal((await cacheFiles(dir)).length, 12);

    // New backbone weights: a new split and cache; nothing of the old version is served.
    setWeights(model.layers[0] as tf.LayersModel, 99);
    const counts = spy(train);
    await fit(model, train, { epochs: 2, verbose: 0, featureCacheDir: dir });
    const second = await splitCache(model);
    assert.notEqual(second, first);
    assert.notEqual(second.identity, first.identity);
    assert.equal(second.misses, 12);
    assert.equal(second.hits, 12);
    assert.deepEqual(counts.loads, [3]);
    assert.equal((await cacheFiles(dir)).length, 24, 'both versions are kept, apart');
    model.dispose();
  });

  test('a directory cache serves a new model and cache in a later fit; damaged files are recomputed', async () => {
    const dir = await tempDir('feature-cache-dir');
    const a = seedModel(3);
    const [trainA] = await iterators();
    await fit(a, trainA, { epochs: 1, verbose: 0, featureCacheDir: dir });
    a.dispose();
    const files = await cacheFiles(dir);
    assert.equal(files.length, 12);

    // One file truncated, one with a flipped byte in its data: neither may be trusted.
    const truncated = await fsp.readFile(files[0]!);
    await fsp.writeFile(files[0]!, truncated.subarray(0, truncated.length - 7));
    const flipped = await fsp.readFile(files[1]!);
    flipped[80]! ^= 0xff;
    await fsp.writeFile(files[1]!, flipped);

    const b = seedModel(3); // the same layers and weights, built anew: a new split and cache
    const [trainB, valB] = await iterators();
    const counts = spy(trainB);
    const history = await fit(b, trainB, {
      epochs: 3,
      verbose: 0,
      validationData: valB,
      featureCacheDir: dir,
      callbacks: [new EpochMark([counts])],
    });
    const cache = await splitCache(b);
    // 10 intact rows served from disk; the batches with the 2 damaged ones are loaded once.
    assert.equal(cache.misses, 2 + 4);
    assert.ok(counts.loads[0]! >= 1 && counts.loads[0]! <= 2, `${counts.loads}`);
    assert.deepEqual(counts.loads.slice(1), [0, 0, 0]);
    assert.equal((await cacheFiles(dir)).length, 16, 'rewritten whole, validation added');
    assertClose(
      [...(history.history.loss as number[]), ...(history.history.val_loss as number[])],
      await uncachedLosses(3, 3),
      'loss, val_loss',
    );
    b.dispose();
  });

  test('past the memory bound rows spill to a temp folder and are still served', async () => {
    const model = seedModel(4);
    const [train] = await iterators();
    const counts = spy(train);
    const history = await fit(model, train, {
      epochs: 2,
      verbose: 0,
      featureCacheMaxBytes: 16 * 4 * 5, // 5 rows of 16 floats
      callbacks: [new EpochMark([counts])],
    });
    const cache = await splitCache(model);
    assert.equal(cache.bytesInMemory, 16 * 4 * 5);
    const spill = cache.diskRoot!;
    assert.equal((await cacheFiles(spill)).length, 7);
    assert.deepEqual(counts.loads, [3, 0, 0]);
    assert.equal(cache.hits, 12);
    const expected = await (async () => {
      const m = seedModel(4);
      const [t] = await iterators();
      const h = await fit(m, uncached(t), { epochs: 2, verbose: 0 });
      m.dispose();
      return h.history.loss as number[];
    })();
    assertClose(history.history.loss as number[], expected, 'loss');
    cache.dispose();
    await assert.rejects(fsp.access(spill), 'dispose removes the spill folder');
    model.dispose();
  });

  test('imageDatasetFromDirectory batches are cached too', async () => {
    const ds = (await imageDatasetFromDirectory(trainDir, {
      imageSize: [SIZE, SIZE],
      batchSize: 5,
      labelMode: 'binary',
      seed: 3,
      verbose: false,
    })) as BatchSource;
    const keys = await ds.sampleKeys!(0);
    assert.equal(keys?.length, 5);
    const labels = await ds.getLabels!(0);
    const batch = await ds.getBatch(0);
    assert.deepEqual(await labels!.array(), await batch.y!.array());
    tf.dispose([labels!, batch.x, batch.y!]);
    const model = seedModel(5);
    const counts = spy(ds);
    await fit(model, ds, { epochs: 2, verbose: 0, callbacks: [new EpochMark([counts])] });
    assert.deepEqual(counts.loads, [3, 0, 0]);
    model.dispose();
  });

  test('an augmenting generator gives no keys, and nothing is cached', async () => {
    const gen = new ImageDataGenerator({ horizontalFlip: true });
    const iter = await gen.flowFromDirectory(trainDir, {
      targetSize: [SIZE, SIZE],
      batchSize: 4,
      classMode: 'binary',
    });
    assert.equal(await iter.sampleKeys(0), null);
    // A preprocessingFunction that draws random numbers is augmentation too.
    const noisy = new ImageDataGenerator({
      preprocessingFunction: (x) => tf.add(x, tf.randomUniform(x.shape)) as tf.Tensor3D,
    });
    const noisyIter = await noisy.flowFromDirectory(trainDir, {
      targetSize: [SIZE, SIZE],
      batchSize: 4,
      classMode: 'binary',
    });
    assert.equal(await noisyIter.sampleKeys(0), null);
    // Keys change with what changes the pixels: the standardization and the load settings.
    const plain = await generator().flowFromDirectory(trainDir, {
      targetSize: [SIZE, SIZE],
      shuffle: false,
    });
    const scaled = await new ImageDataGenerator({ rescale: 1 / 127.5 }).flowFromDirectory(
      trainDir,
      { targetSize: [SIZE, SIZE], shuffle: false },
    );
    const bilinear = await generator().flowFromDirectory(trainDir, {
      targetSize: [SIZE, SIZE],
      shuffle: false,
      interpolation: 'bilinear',
    });
    const base = (await plain.sampleKeys(0))!;
    assert.deepEqual(
      await generator()
        .flowFromDirectory(trainDir, { targetSize: [SIZE, SIZE], shuffle: false })
        .then((i) => i.sampleKeys(0)),
      base,
    );
    for (const other of [scaled, bilinear]) {
      const keys = (await other.sampleKeys(0))!;
      keys.forEach((key, i) => {
        assert.notEqual(key, base[i]);
      });
    }
  });
});

describe('FeatureStore', () => {
  const row = (v: number) => Float32Array.from({ length: 16 }, (_, i) => v + i);

  test('a directory is bounded (oldest files go first) and shared only within a version', async () => {
    const dir = await tempDir('feature-store');
    const fileSize = 72 + 16 * 4 + 32;
    const store = new FeatureStore('version-a');
    await store.configure({ directory: dir, maxDiskBytes: fileSize * 3 });
    for (let i = 0; i < 5; i++) await store.put(`key${i}`, row(i));
    assert.equal(store.bytesOnDisk, fileSize * 3);
    assert.equal((await cacheFiles(dir)).length, 3);

    const reopened = new FeatureStore('version-a');
    await reopened.configure({ directory: dir, maxDiskBytes: fileSize * 3 });
    assert.equal(reopened.has('key0'), false, 'evicted');
    assert.deepEqual(await reopened.get('key4'), row(4));
    const other = new FeatureStore('version-b');
    await other.configure({ directory: dir, maxDiskBytes: fileSize * 3 });
    assert.equal(other.has('key4'), false);
    // A file of version a copied under version b's folder fails the identity check.
    const source = (await cacheFiles(dir)).find((f) => f.includes('version-a'))!;
    await fsp.copyFile(source, path.join(dir, 'version-b', path.basename(source)));
    const again = new FeatureStore('version-b');
    await again.configure({ directory: dir, maxDiskBytes: fileSize * 10 });
    const key = ['key2', 'key3', 'key4'].find((k) => again.has(k));
    assert.ok(key, 'the copied file is listed');
    assert.equal(await again.get(key), undefined, 'but never served');
    assert.equal(again.has(key), false, 'and dropped');
  });

  test('a spill folder is removed when the process exits', async () => {
    const script = `
      import { FeatureStore } from ${JSON.stringify(path.resolve(fileURLToPath(import.meta.url), '../../src/training/feature-store.ts'))};
      const store = new FeatureStore('v');
      await store.configure({ maxMemoryBytes: 0 });
      await store.put('k', new Float32Array(4));
      console.log(store.diskRoot);
    `;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    ).trim();
    assert.match(out, /xfer-features-/);
    await assert.rejects(fsp.access(out));
  });
});
