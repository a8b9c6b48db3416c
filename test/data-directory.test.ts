import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { type DirectoryIterator, ImageDataGenerator } from '../src/data/index.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

let root: string;

/** A 4x4 PNG filled with one grey level, so a batch row tells which file it came from. */
async function solid(file: string, level: number): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await sharp({
    create: { width: 4, height: 4, channels: 3, background: { r: level, g: level, b: level } },
  })
    .png()
    .toFile(file);
}

/** Runs `fn` and returns what it wrote to stderr (xfer's info and warnings go there). */
async function captureStderr<T>(fn: () => Promise<T>): Promise<{ result: T; stderr: string }> {
  const original = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), stderr };
  } finally {
    process.stderr.write = original;
  }
}

/** The grey level of each image in a batch (first pixel). */
function levels(x: tf.Tensor): number[] {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const data = x.dataSync();
  return Array.from({ length: b }, (_, k) => data[k * h * w * c]!);
}

// Grey level per file: cats 10, 20, 30; dogs 110, 120, 130 (the last one nested in a sub-folder).
const LEVELS: Record<string, number> = {
  'cats/c1.png': 10,
  'cats/c2.png': 20,
  'cats/c3.png': 30,
  'dogs/d1.png': 110,
  'dogs/d2.png': 120,
  'dogs/sub/d3.png': 130,
};

before(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-data-dir-'));
  const train = path.join(root, 'train');
  for (const [name, level] of Object.entries(LEVELS)) await solid(path.join(train, name), level);
  // Ignored: hidden files and folders, non-image extensions.
  await fsp.writeFile(path.join(train, 'cats', '.DS_Store'), 'x');
  await solid(path.join(train, 'cats', '.hidden.png'), 1);
  await fsp.writeFile(path.join(train, 'dogs', 'notes.txt'), 'not an image');
  await solid(path.join(train, '.ipynb_checkpoints', 'x.png'), 1);
});

after(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const flow = (
  dir: string,
  options: Parameters<ImageDataGenerator['flowFromDirectory']>[1],
  gen = new ImageDataGenerator(),
) => captureStderr(() => gen.flowFromDirectory(path.join(root, dir), options));

test("lists classes and files in Keras's order and prints Keras's line", async () => {
  const { result: it, stderr } = await flow('train', {
    targetSize: [4, 4],
    batchSize: 4,
    shuffle: false,
  });
  assert.match(stderr, /^Found 6 images belonging to 2 classes\.$/m);
  assert.equal(it.samples, 6);
  assert.equal(it.length, 2); // ceil(6 / 4)
  assert.equal(it.numClasses, 2);
  assert.deepEqual(it.classIndices, { cats: 0, dogs: 1 });
  assert.deepEqual(
    it.filenames,
    Object.keys(LEVELS).map((f) => f.split('/').join(path.sep)),
  );
  assert.deepEqual([...it.classes], [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(it.imageShape, [4, 4, 3]);
  assert.deepEqual(it.skipped, []);
});

test('batches hold the right images with y per classMode; the last batch is partial', async () => {
  const { result: it } = await flow('train', {
    targetSize: [4, 4],
    batchSize: 4,
    shuffle: false,
    classMode: 'categorical',
  });
  const first = await it.getBatch(0);
  assert.deepEqual(first.x.shape, [4, 4, 4, 3]);
  assert.equal(first.x.dtype, 'float32');
  assert.deepEqual(levels(first.x), [10, 20, 30, 110]);
  assert.deepEqual(first.y!.shape, [4, 2]);
  assert.deepEqual([...first.y!.dataSync()], [1, 0, 1, 0, 1, 0, 0, 1]);
  const last = await it.getBatch(1);
  assert.deepEqual(last.x.shape, [2, 4, 4, 3]);
  assert.deepEqual(levels(last.x), [120, 130]);
  tf.dispose([first.x, first.y!, last.x, last.y!]);

  const expectations: [string | null, number[] | null][] = [
    ['binary', [0, 0, 0, 1]],
    ['sparse', [0, 0, 0, 1]],
    [null, null],
  ];
  for (const [classMode, y] of expectations) {
    const { result } = await flow('train', {
      targetSize: [4, 4],
      batchSize: 4,
      shuffle: false,
      classMode: classMode as never,
    });
    const batch = await result.getBatch(0);
    if (y === null) assert.equal(batch.y, null);
    else {
      assert.deepEqual(batch.y!.shape, [4]);
      assert.equal(batch.y!.dtype, 'float32');
      assert.deepEqual([...batch.y!.dataSync()], y);
    }
    tf.dispose([batch.x, ...(batch.y ? [batch.y] : [])]);
  }
  const { result: auto } = await flow('train', {
    targetSize: [4, 4],
    batchSize: 4,
    shuffle: false,
    classMode: 'input',
  });
  const batch = await auto.getBatch(0);
  assert.deepEqual([...batch.y!.dataSync()], [...batch.x.dataSync()]);
  assert.notEqual(batch.y, batch.x);
  tf.dispose([batch.x, batch.y!]);
});

test('the classes option picks and orders the label indices', async () => {
  const { result: it } = await flow('train', {
    targetSize: [4, 4],
    classes: ['dogs', 'cats'],
    shuffle: false,
    classMode: 'sparse',
  });
  assert.deepEqual(it.classIndices, { dogs: 0, cats: 1 });
  assert.equal(it.filenames[0], path.join('dogs', 'd1.png'));
  assert.deepEqual([...it.classes], [0, 0, 0, 1, 1, 1]);
});

test('shuffle with a seed is a reproducible permutation, reshuffled each epoch; labels follow images', async () => {
  const a = (
    await flow('train', { targetSize: [4, 4], batchSize: 6, seed: 42, classMode: 'sparse' })
  ).result;
  const b = (
    await flow('train', { targetSize: [4, 4], batchSize: 6, seed: 42, classMode: 'sparse' })
  ).result;
  const c = (
    await flow('train', { targetSize: [4, 4], batchSize: 6, seed: 43, classMode: 'sparse' })
  ).result;
  assert.deepEqual(a.indexArray, b.indexArray);
  assert.notDeepEqual(a.indexArray, c.indexArray);
  const orders = new Set<string>();
  for (let epoch = 0; epoch < 4; epoch++) {
    assert.deepEqual([...a.indexArray].sort(), [0, 1, 2, 3, 4, 5]);
    orders.add(a.indexArray.join());
    const batch = await a.getBatch(0);
    const expected = [...a.indexArray].map(
      (i) => LEVELS[a.filenames[i]!.split(path.sep).join('/')],
    );
    assert.deepEqual(levels(batch.x), expected);
    assert.deepEqual(
      [...batch.y!.dataSync()],
      [...a.indexArray].map((i) => a.classes[i]),
    );
    tf.dispose([batch.x, batch.y!]);
    a.onEpochEnd();
  }
  assert.ok(orders.size > 1, 'onEpochEnd reshuffles');
});

test('augmentation in batches is reproducible with a seed and applied per image', async () => {
  // Each 4x4 image is solid, so only the constant fill can change values: shifting by up to
  // 0.5 * 4 px with cval -1 leaves some pixels at -1 in most images.
  const gen = () =>
    new ImageDataGenerator({
      widthShiftRange: 0.5,
      heightShiftRange: 0.5,
      fillMode: 'constant',
      cval: -1,
    });
  const a = (await flow('train', { targetSize: [4, 4], batchSize: 6, seed: 5 }, gen())).result;
  const b = (await flow('train', { targetSize: [4, 4], batchSize: 6, seed: 5 }, gen())).result;
  const xa = (await a.getBatch(0)).x;
  const xb = (await b.getBatch(0)).x;
  const xa2 = (await a.getBatch(0)).x;
  assert.deepEqual([...xa.dataSync()], [...xb.dataSync()]);
  assert.deepEqual(
    [...xa.dataSync()],
    [...xa2.dataSync()],
    'getBatch(i) is the same batch within an epoch',
  );
  assert.ok(
    [...xa.dataSync()].some((v) => v === -1),
    'shifts filled some pixels with cval',
  );
  a.onEpochEnd();
  const next = (await a.getBatch(0)).x;
  assert.notDeepEqual([...next.dataSync()], [...xa.dataSync()]);
  tf.dispose([xa, xb, xa2, next]);
});

test('preprocessingFunction, rescale and dtype apply to every image of a batch', async () => {
  const gen = new ImageDataGenerator({ preprocessingFunction: (x) => tf.sub(x, 10), rescale: 0.5 });
  const { result: it } = await flow(
    'train',
    { targetSize: [4, 4], batchSize: 3, shuffle: false },
    gen,
  );
  const batch = await it.getBatch(0);
  assert.deepEqual(levels(batch.x), [0, 5, 10]); // (level - 10) * 0.5
  tf.dispose([batch.x, batch.y!]);
  const ints = new ImageDataGenerator({ rescale: 0.1, dtype: 'int32' });
  const intBatch = await (
    await flow('train', { targetSize: [4, 4], batchSize: 3, shuffle: false }, ints)
  ).result.getBatch(0);
  assert.equal(intBatch.x.dtype, 'int32');
  assert.deepEqual(levels(intBatch.x), [1, 2, 3]);
  tf.dispose([intBatch.x, intBatch.y!]);
});

test('the async iterator yields one epoch of batches, then resets', async () => {
  const { result: it } = await flow('train', { targetSize: [4, 4], batchSize: 4, shuffle: false });
  const sizes: number[] = [];
  for await (const { x, y } of it) {
    sizes.push(x.shape[0]);
    tf.dispose([x, y!]);
  }
  assert.deepEqual(sizes, [4, 2]);
  assert.equal(it.batchIndex, 0);
  await assert.rejects(it.getBatch(2), /integer batch index in \[0, 2\)/);
});

test('corrupt, truncated and empty files are skipped with one warning naming each', async () => {
  const dir = path.join(root, 'dirty');
  await solid(path.join(dir, 'a', 'ok1.png'), 50);
  await solid(path.join(dir, 'a', 'ok2.png'), 60);
  await solid(path.join(dir, 'b', 'ok3.png'), 70);
  await fsp.writeFile(path.join(dir, 'a', 'empty.jpg'), Buffer.alloc(0));
  await fsp.writeFile(path.join(dir, 'b', 'text.png'), 'definitely not a png');
  const jpeg = await sharp({
    create: { width: 64, height: 64, channels: 3, background: '#336699' },
  })
    .jpeg()
    .toBuffer();
  await fsp.writeFile(path.join(dir, 'b', 'cut.jpg'), jpeg.subarray(0, jpeg.length - 200));
  const { result: it, stderr } = await flow('dirty', { targetSize: [4, 4], shuffle: false });
  const warnings = stderr.split('\n').filter((line) => line.startsWith('xfer: warning'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /skipped 3 unreadable image file\(s\)/);
  for (const name of ['empty.jpg', 'text.png', 'cut.jpg'])
    assert.match(stderr, new RegExp(name.replace('.', '\\.')));
  assert.match(stderr, /Found 3 images belonging to 2 classes\./);
  assert.equal(it.samples, 3);
  assert.deepEqual(it.skipped.map((s) => s.filename).sort(), [
    path.join('a', 'empty.jpg'),
    path.join('b', 'cut.jpg'),
    path.join('b', 'text.png'),
  ]);
  assert.match(it.skipped.find((s) => s.filename.endsWith('empty.jpg'))!.reason, /0 bytes/);
});

test('a file that breaks after the scan is replaced by the next image of its class', async () => {
  const dir = path.join(root, 'breaks');
  await solid(path.join(dir, 'a', '1.png'), 10);
  await solid(path.join(dir, 'a', '2.png'), 20);
  await solid(path.join(dir, 'a', '3.png'), 30);
  await solid(path.join(dir, 'b', '4.png'), 40);
  const { result: it } = await flow('breaks', {
    targetSize: [4, 4],
    batchSize: 4,
    shuffle: false,
    classMode: 'sparse',
  });
  await fsp.writeFile(path.join(dir, 'a', '2.png'), 'broken now');
  const { result: batch, stderr } = await captureStderr(() => it.getBatch(0));
  assert.match(stderr, /2\.png/);
  assert.match(stderr, /3\.png.*same class/);
  assert.deepEqual(levels(batch.x), [10, 30, 30, 40]);
  assert.deepEqual([...batch.y!.dataSync()], [0, 0, 0, 1]);
  assert.ok(it.skipped.some((s) => s.filename === path.join('a', '2.png')));
  tf.dispose([batch.x, batch.y!]);
});

test('BMP and PPM files count as images, as in Keras', async () => {
  const dir = path.join(root, 'netpbm');
  await fsp.mkdir(path.join(dir, 'k'), { recursive: true });
  await fsp.writeFile(
    path.join(dir, 'k', 'p.ppm'),
    Buffer.concat([Buffer.from('P6 1 1 255\n'), Buffer.from([9, 8, 7])]),
  );
  // A 1x1 24-bit BMP: 54 header bytes, one BGR pixel padded to 4 bytes.
  const bmp = Buffer.alloc(58);
  bmp.write('BM', 0, 'latin1');
  bmp.writeUInt32LE(58, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(1, 18);
  bmp.writeInt32LE(1, 22);
  bmp.writeUInt16LE(1, 26);
  bmp.writeUInt16LE(24, 28);
  bmp.set([3, 2, 1], 54);
  await fsp.writeFile(path.join(dir, 'k', 'q.bmp'), bmp);
  const { result: it } = await flow('netpbm', { targetSize: [1, 1], shuffle: false });
  assert.deepEqual(it.filenames, [path.join('k', 'p.ppm'), path.join('k', 'q.bmp')]);
  const batch = await it.getBatch(0);
  assert.deepEqual([...batch.x.dataSync()], [9, 8, 7, 1, 2, 3]);
  tf.dispose([batch.x, batch.y!]);
});

test('unusable trees and options fail with one clear error', async () => {
  const rejects = async (promise: Promise<unknown>, code: string, pattern: RegExp) =>
    assert.rejects(
      promise,
      (e: unknown) => e instanceof XferError && e.code === code && pattern.test(e.message),
    );
  const gen = new ImageDataGenerator();
  await rejects(
    gen.flowFromDirectory(path.join(root, 'missing')),
    'NOT_FOUND',
    /data directory not found: '.*missing'/,
  );
  await fsp.mkdir(path.join(root, 'flat'), { recursive: true });
  await solid(path.join(root, 'flat', 'loose.png'), 1);
  await rejects(
    gen.flowFromDirectory(path.join(root, 'flat')),
    'NO_DATA',
    /no class sub-folders.*1 image file/,
  );
  await fsp.mkdir(path.join(root, 'hollow', 'empty'), { recursive: true });
  await solid(path.join(root, 'hollow', 'full', 'x.png'), 1);
  await rejects(
    gen.flowFromDirectory(path.join(root, 'hollow')),
    'NO_DATA',
    /class folder '.*empty' has no images/,
  );
  await rejects(
    gen.flowFromDirectory(path.join(root, 'train'), { classes: ['cats', 'birds'] }),
    'NOT_FOUND',
    /class folder 'birds' not found/,
  );
  await fsp.mkdir(path.join(root, 'three', 'c'), { recursive: true });
  for (const k of ['a', 'b', 'c']) await solid(path.join(root, 'three', k, 'x.png'), 1);
  await rejects(
    captureStderr(() => gen.flowFromDirectory(path.join(root, 'three'), { classMode: 'binary' })),
    'INVALID_ARGUMENT',
    /'binary' needs at most 2 classes.*a, b, c/,
  );
  await rejects(
    gen.flowFromDirectory(path.join(root, 'train'), { batchSize: 0 }),
    'INVALID_ARGUMENT',
    /batchSize/,
  );
  await rejects(
    gen.flowFromDirectory(path.join(root, 'train'), { class_mode: 'binary' } as never),
    'UNKNOWN_NAME',
    /did you mean 'classMode'/,
  );
  const it: DirectoryIterator = (await flow('train', {})).result;
  await rejects(it.getBatch(-1), 'INVALID_ARGUMENT', /batch index/);
});
