/**
 * Keras's `NumpyArrayIterator` (what `ImageDataGenerator.flow` returns) as a `BatchSource`: images
 * from a tensor, augmented and standardized per batch, labels gathered alongside. Randomness is
 * the DirectoryIterator's: a seeded order reshuffled each epoch, augmentation of batch i in epoch
 * e drawn from (seed, e, i), so `getBatch(i)` is repeatable within an epoch.
 */
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { Random } from '../util/random.js';
import { checkBoolean, checkOneOf, checkPositiveInteger } from '../util/validate.js';
import { BatchBuffers } from './batch-buffers.js';
import type { DataSubset, FlowOptions, ImageDataGenerator } from './generator.js';
import { checkWorkers, transformInPool, transformSettings } from './pool.js';
import { type Batch, type BatchSource, batchIndices } from './source.js';

const OPTION_NAMES = ['batchSize', 'shuffle', 'seed', 'subset', 'ignoreClassSplit', 'workers'];

/** Folds (seed, epoch, batch) into one 32-bit seed with murmur3's finalizer. */
export function batchSeed(seed: number, epoch: number, index: number): number {
  let h = seed ^ Math.imul(epoch + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function checkSubset(subset: unknown, generator: ImageDataGenerator): DataSubset | null {
  if (subset === undefined || subset === null) return null;
  const checked = checkOneOf('subset', subset, ['training', 'validation'] as const);
  if (generator.validationSplit === 0) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `subset '${checked}' needs a validation split, but the ImageDataGenerator has validationSplit 0. Create it with e.g. new ImageDataGenerator({ validationSplit: 0.2 }).`,
      { subset: checked },
    );
  }
  return checked;
}

const sortedUnique = (values: ArrayLike<number>) =>
  [...new Set(Array.from(values))].sort((a, b) => a - b).join();

export class ArrayIterator implements BatchSource {
  readonly generator: ImageDataGenerator;
  /** Number of images in this subset (Keras's `n`). */
  readonly samples: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  /** The seed in use (unsigned 32-bit). */
  readonly seed: number;
  /** Worker threads augmenting the images (0: the main thread). */
  readonly workers: number;
  readonly subset: DataSubset | null;
  /** [height, width, channels] of each image. */
  readonly imageShape: [number, number, number];
  /** Position of the async iterator within the epoch. */
  batchIndex = 0;
  private readonly pixels: Float32Array;
  private readonly labels: tf.Tensor | null;
  private epoch = 0;
  private order: Int32Array;
  private readonly shuffleRandom: Random;
  private readonly buffers = new BatchBuffers();

  constructor(
    x: tf.Tensor4D,
    y: tf.Tensor | null,
    generator: ImageDataGenerator,
    options: FlowOptions = {},
  ) {
    if (!(x instanceof tf.Tensor) || x.rank !== 4) {
      throw invalidParameterError(
        'x',
        'a rank-4 tensor [samples, height, width, channels]',
        x instanceof tf.Tensor ? `tensor of shape [${x.shape}]` : x,
      );
    }
    if (y !== null && y !== undefined && !(y instanceof tf.Tensor)) {
      throw invalidParameterError('y', 'a tensor of labels or null', y);
    }
    if (options === null || typeof options !== 'object') {
      throw invalidParameterError('options', 'an options object', options);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.includes(key)) throw unknownNameError('flow option', key, OPTION_NAMES);
    }
    const total = x.shape[0];
    if (y && y.shape[0] !== total) {
      throw new XferError(
        'SHAPE_MISMATCH',
        `x (images) and y (labels) must have the same length, but x has shape [${x.shape}] and y [${y.shape}].`,
        { x: x.shape, y: y.shape },
      );
    }
    if (![1, 3, 4].includes(x.shape[3])) {
      warn(
        `flow expects images with 1, 3 or 4 channels but x has ${x.shape[3]} (shape [${x.shape}]).`,
      );
    }
    this.generator = generator;
    this.batchSize = checkPositiveInteger('batchSize', options.batchSize ?? 32);
    this.shuffle = checkBoolean('shuffle', options.shuffle ?? true);
    const ignoreClassSplit = checkBoolean('ignoreClassSplit', options.ignoreClassSplit ?? false);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw invalidParameterError('seed', 'integer', seed);
    }
    this.seed = seed >>> 0;
    this.workers = checkWorkers(options.workers);
    this.subset = checkSubset(options.subset, generator);
    let [start, end] = [0, total];
    if (this.subset) {
      // Keras: int(len(x) * validation_split) images, from the front, are the validation subset.
      const splitIndex = Math.trunc(total * generator.validationSplit);
      if (y && !ignoreClassSplit) {
        const values = y.dataSync() as ArrayLike<number>;
        const rowSize = values.length / total;
        const head = sortedUnique(Array.from(values).slice(0, splitIndex * rowSize));
        const tail = sortedUnique(Array.from(values).slice(splitIndex * rowSize));
        if (head !== tail) {
          throw new XferError(
            'INVALID_ARGUMENT',
            `the training and validation subsets hold different labels after the split (validation: ${head || 'none'}; training: ${tail || 'none'}). If x and y are sorted by label, shuffle them first, or pass ignoreClassSplit: true.`,
            { validation: head, training: tail },
          );
        }
      }
      [start, end] = this.subset === 'validation' ? [0, splitIndex] : [splitIndex, total];
    }
    this.samples = end - start;
    if (this.samples === 0) {
      throw new XferError(
        'NO_DATA',
        `the ${this.subset} subset of ${total} images with validationSplit ${generator.validationSplit} is empty. Use more images or another validationSplit.`,
        { total, validationSplit: generator.validationSplit },
      );
    }
    const [, height, width, channels] = x.shape;
    this.imageShape = [height, width, channels];
    const size = height * width * channels;
    const all = x.dataSync() as Float32Array | Int32Array | Uint8Array;
    this.pixels = new Float32Array(all.subarray(start * size, end * size)); // a float32 copy
    this.labels = y ? tf.keep(tf.slice(y, start, end - start)) : null;
    this.shuffleRandom = new Random(this.seed);
    this.order = this.newOrder();
  }

  /** Batches per epoch: ceil(samples / batchSize). */
  get length(): number {
    return Math.ceil(this.samples / this.batchSize);
  }

  /** Keras's `n`. */
  get n(): number {
    return this.samples;
  }

  /** The sample order of the current epoch. */
  get indexArray(): Int32Array {
    return this.order.slice();
  }

  private newOrder(): Int32Array {
    const order = Array.from({ length: this.samples }, (_, i) => i);
    if (this.shuffle) this.shuffleRandom.shuffle(order);
    return Int32Array.from(order);
  }

  /**
   * Batch `index` of this epoch: x [b, height, width, channels] augmented and standardized, y
   * the matching rows of the labels (null without labels). The caller disposes both.
   * @example
   * const { x, y } = await it.getBatch(0);
   */
  async getBatch(index: number): Promise<Batch> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the iterator');
    await initBackend();
    const gen = this.generator;
    const [height, width, channels] = this.imageShape;
    const size = height * width * channels;
    const batch = this.buffers.take(ids.length * size);
    const rng = gen.augments ? new Random(batchSeed(this.seed, this.epoch, index)) : null;
    // Every draw is made here, in order, before any pixel work: the batch is the same with or
    // without workers.
    const params = rng ? Array.from(ids, () => gen.drawTransform(this.imageShape, rng)) : null;
    const settings = transformSettings(gen);
    // Without augmentation the images are copied as they are and standardized here as a batch.
    const preprocess = params ? gen.pixelPreprocess(channels) : null;
    await Promise.all(
      Array.from(ids, (id, k) => {
        const image = this.pixels.subarray(id * size, (id + 1) * size);
        const dest = batch.subarray(k * size, (k + 1) * size);
        if (params === null) {
          dest.set(image);
          return Promise.resolve();
        }
        const transform = { params: params[k]!, settings };
        return transformInPool(image, this.imageShape, transform, preprocess, dest, this.workers);
      }),
    );
    const out = gen.standardizePixels(batch, ids.length, this.imageShape, preprocess !== null);
    let x: tf.Tensor = tf.tensor4d(out, [ids.length, height, width, channels], 'float32');
    this.buffers.give(batch, out);
    if (gen.dtype === 'int32') {
      const cast = tf.cast(x, 'int32');
      x.dispose();
      x = cast;
    }
    const y = this.labels
      ? tf.tidy(() => tf.gather(this.labels!, tf.tensor1d(ids, 'int32')))
      : null;
    return { x, y };
  }

  /** Reshuffles (when `shuffle`) and moves to the next epoch's augmentation draws. */
  onEpochEnd(): void {
    this.epoch++;
    if (this.shuffle) this.order = this.newOrder();
  }

  /** Restarts the async iteration at the first batch of the epoch (Keras's `reset`). */
  reset(): void {
    this.batchIndex = 0;
  }

  /** Frees the iterator's copy of the labels. */
  dispose(): void {
    this.labels?.dispose();
  }

  /**
   * The remaining batches of the current epoch, from `batchIndex`.
   * @example
   * for await (const { x, y } of it) { ...; tf.dispose([x, y]); }
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    while (this.batchIndex < this.length) {
      const index = this.batchIndex++;
      yield await this.getBatch(index);
    }
    this.reset();
  }
}
