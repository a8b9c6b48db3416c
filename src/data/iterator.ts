/**
 * Keras's `DirectoryIterator` (what `flow_from_directory` returns) as a `BatchSource`: Keras's
 * attributes and order, batches decoded concurrently (sharp decodes on libuv's thread pool).
 *
 * Randomness: the order comes from a `Random` seeded with `seed` and is reshuffled by each
 * `onEpochEnd()`; the augmentation of batch i in epoch e is drawn from a generator seeded by
 * (seed, e, i). So `getBatch(i)` returns the same batch however often and in whatever order it is
 * called within an epoch (safe for prefetching), and a seed reproduces a whole run. Keras instead
 * reseeds numpy with seed + batches seen, which depends on the call sequence.
 */
import * as path from 'node:path';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { describeValue, invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { info, warn } from '../util/log.js';
import { Random } from '../util/random.js';
import { checkBoolean, checkOneOf, checkPositiveInteger } from '../util/validate.js';
import { batchSeed, checkSubset } from './array-iterator.js';
import { BatchBuffers } from './batch-buffers.js';
import type { DataSubset, ImageDataGenerator, TransformParams } from './generator.js';
import {
  COLOR_MODES,
  type ColorMode,
  checkPixelLimitOption,
  checkTargetSize,
  INTERPOLATIONS,
  type Interpolation,
  type ResolvedLoadOptions,
} from './image.js';
import type { PixelPreprocess } from './pixel-preprocess.js';
import { checkWorkers, loadBatchImage, transformSettings } from './pool.js';
import { fileSampleKeys, settingsFingerprint, standardizationFingerprint } from './sample-keys.js';
import { type SkippedFile, scanDirectory } from './scan.js';
import { type Batch, type BatchSource, batchIndices } from './source.js';

export const CLASS_MODES = ['categorical', 'binary', 'sparse', 'input'] as const;
/** Labels per batch: one-hot, 0/1, class index, the images themselves, or none (null). */
export type ClassMode = (typeof CLASS_MODES)[number] | null;

export interface FlowFromDirectoryOptions {
  /** [height, width] every image is resized to. Default [256, 256]. */
  targetSize?: [number, number];
  /** 'rgb' (3 channels), 'grayscale' (1), 'rgba' (4). Default 'rgb'. */
  colorMode?: ColorMode;
  /** Class sub-folders to use, in label order. Default: every sub-folder, sorted. */
  classes?: string[];
  /** 'categorical' (one-hot), 'binary' (0/1), 'sparse' (index), 'input' (x), null (no y). Default 'categorical'. */
  classMode?: ClassMode;
  /** Images per batch; the last batch of an epoch may be smaller. Default 32. */
  batchSize?: number;
  /** Shuffle the order every epoch; false keeps Keras's file order. Default true. */
  shuffle?: boolean;
  /** Seed for the order and the augmentation; default: a random one. */
  seed?: number;
  /** Resampling filter for resizing (PIL's). Default 'nearest'. */
  interpolation?: Interpolation;
  /** Centre-crop to the target aspect ratio before resizing. Default false. */
  keepAspectRatio?: boolean;
  /** Follow symbolic links to folders inside class folders. Default false. */
  followLinks?: boolean;
  /** Skip images with more pixels than this (decompression-bomb guard); 0 for none. Default 268402689. */
  limitInputPixels?: number;
  /**
   * With the generator's `validationSplit`: 'validation' takes the first fraction of each
   * class's files (in the listing order), 'training' the rest, as Keras does. Default: all files.
   */
  subset?: DataSubset;
  /**
   * Worker threads that read, decode, resize and augment the images (0: the main thread does it).
   * Batches are identical for every count: the random parameters are still drawn here.
   * Default: the number of cores (`os.availableParallelism()`).
   */
  workers?: number;
}

const OPTION_NAMES = [
  'targetSize',
  'colorMode',
  'classes',
  'classMode',
  'batchSize',
  'shuffle',
  'seed',
  'interpolation',
  'keepAspectRatio',
  'followLinks',
  'subset',
  'limitInputPixels',
  'workers',
];

/** How many skipped files a warning names before summarizing. */
const WARN_LIST_LIMIT = 20;

export class DirectoryIterator implements BatchSource {
  readonly directory: string;
  readonly generator: ImageDataGenerator;
  /** Number of images (Keras's `samples`, also `n`). */
  readonly samples: number;
  readonly batchSize: number;
  /** Class name -> label index. */
  readonly classIndices: Record<string, number>;
  readonly numClasses: number;
  /** Paths relative to `directory`, e.g. 'cats/cat.1.jpg', grouped by class in label order. */
  readonly filenames: readonly string[];
  /** The label of each entry of `filenames`. */
  readonly classes: Int32Array;
  readonly classMode: ClassMode;
  readonly targetSize: [number, number];
  readonly colorMode: ColorMode;
  readonly interpolation: Interpolation;
  /** [height, width, channels] of each image in a batch. */
  readonly imageShape: [number, number, number];
  readonly shuffle: boolean;
  /** 'training', 'validation', or null for all files. */
  readonly subset: DataSubset | null;
  /** The seed in use: the given one (as an unsigned 32-bit value) or the random one drawn. */
  readonly seed: number;
  /** Images left out: unreadable at scan time, or failing to decode later. */
  readonly skipped: SkippedFile[];
  /** Worker threads loading the images (0: the main thread). */
  readonly workers: number;
  /** Position of the async iterator within the epoch. */
  batchIndex = 0;
  private epoch = 0;
  private order: Int32Array;
  private readonly shuffleRandom: Random;
  private readonly loadOptions: ResolvedLoadOptions;
  /** Per class, [first, end) indices into `filenames`. */
  private readonly classRanges: [number, number][];
  /** Sample index -> the index actually loaded in its place, for files that failed to decode. */
  private readonly substitutes = new Map<number, number>();
  private readonly buffers = new BatchBuffers();
  private readonly broken = new Set<number>();

  private constructor(
    directory: string,
    generator: ImageDataGenerator,
    options: Required<Omit<FlowFromDirectoryOptions, 'classes' | 'seed' | 'subset'>> & {
      seed: number;
      subset: DataSubset | null;
    },
    scan: Awaited<ReturnType<typeof scanDirectory>>,
  ) {
    this.directory = directory;
    this.generator = generator;
    this.filenames = scan.filenames;
    this.classes = scan.classes;
    this.samples = scan.filenames.length;
    this.skipped = scan.skipped;
    this.numClasses = scan.classNames.length;
    this.classIndices = Object.fromEntries(scan.classNames.map((name, i) => [name, i]));
    this.classRanges = scan.classNames.map(() => [0, 0]);
    for (let i = this.samples - 1; i >= 0; i--) this.classRanges[this.classes[i]!]![0] = i;
    for (let i = 0; i < this.samples; i++) this.classRanges[this.classes[i]!]![1] = i + 1;
    this.classMode = options.classMode;
    this.batchSize = options.batchSize;
    this.targetSize = options.targetSize;
    this.colorMode = options.colorMode;
    this.interpolation = options.interpolation;
    const channels = options.colorMode === 'rgb' ? 3 : options.colorMode === 'rgba' ? 4 : 1;
    this.imageShape = [options.targetSize[0], options.targetSize[1], channels];
    this.shuffle = options.shuffle;
    this.subset = options.subset;
    this.seed = options.seed;
    this.workers = options.workers;
    this.loadOptions = {
      targetSize: options.targetSize,
      colorMode: options.colorMode,
      interpolation: options.interpolation,
      keepAspectRatio: options.keepAspectRatio,
      limitInputPixels: options.limitInputPixels,
    };
    this.shuffleRandom = new Random(options.seed);
    this.order = this.newOrder();
  }

  /** Checks the options, scans the tree, prints Keras's "Found ..." line. Use `flowFromDirectory`. */
  static async create(
    directory: string,
    generator: ImageDataGenerator,
    options: FlowFromDirectoryOptions = {},
  ): Promise<DirectoryIterator> {
    if (typeof directory !== 'string' || directory === '') {
      throw invalidParameterError('directory', 'non-empty string', directory);
    }
    if (options === null || typeof options !== 'object') {
      throw invalidParameterError('options', 'an options object', options);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.includes(key)) {
        throw unknownNameError('flowFromDirectory option', key, OPTION_NAMES);
      }
    }
    const classMode =
      options.classMode === null
        ? null
        : checkOneOf('classMode', options.classMode ?? 'categorical', CLASS_MODES);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw invalidParameterError('seed', 'integer', seed);
    }
    const resolved = {
      targetSize: checkTargetSize('targetSize', options.targetSize ?? [256, 256]),
      colorMode: checkOneOf('colorMode', options.colorMode ?? 'rgb', COLOR_MODES),
      classMode,
      batchSize: checkPositiveInteger('batchSize', options.batchSize ?? 32),
      shuffle: checkBoolean('shuffle', options.shuffle ?? true),
      seed: seed >>> 0,
      interpolation: checkOneOf(
        'interpolation',
        options.interpolation ?? 'nearest',
        INTERPOLATIONS,
      ),
      keepAspectRatio: checkBoolean('keepAspectRatio', options.keepAspectRatio ?? false),
      followLinks: checkBoolean('followLinks', options.followLinks ?? false),
      subset: checkSubset(options.subset, generator),
      limitInputPixels: checkPixelLimitOption(options.limitInputPixels),
      workers: checkWorkers(options.workers),
    };
    await initBackend();
    const split = generator.validationSplit;
    const scan = await scanDirectory(directory, {
      classes: options.classes,
      followLinks: resolved.followLinks,
      limitInputPixels: resolved.limitInputPixels,
      split:
        resolved.subset === null
          ? null
          : resolved.subset === 'validation'
            ? [0, split]
            : [split, 1],
    });
    if (classMode === 'binary' && scan.classNames.length > 2) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `classMode 'binary' needs at most 2 classes but ${describeValue(directory)} has ${scan.classNames.length}: ${scan.classNames.join(', ')}. Use classMode 'categorical' (or 'sparse'), or pass classes: [two names].`,
        { directory, classes: scan.classNames },
      );
    }
    if (scan.skipped.length > 0) warnSkipped(directory, scan.skipped);
    info(`Found ${scan.filenames.length} images belonging to ${scan.classNames.length} classes.`);
    return new DirectoryIterator(directory, generator, resolved, scan);
  }

  /** Batches per epoch: ceil(samples / batchSize). */
  get length(): number {
    return Math.ceil(this.samples / this.batchSize);
  }

  /** Keras's `n`. */
  get n(): number {
    return this.samples;
  }

  /** Full paths of `filenames`. */
  get filepaths(): string[] {
    return this.filenames.map((f) => path.join(this.directory, f));
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
   * Batch `index` of this epoch: x float32 [b, height, width, channels], augmented (when the
   * generator augments) and standardized; y per `classMode`. The caller disposes both tensors.
   * @example
   * const { x, y } = await iterator.getBatch(0);
   */
  async getBatch(index: number): Promise<Batch> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the iterator');
    await initBackend();
    const gen = this.generator;
    let params: TransformParams[] | null = null;
    if (gen.augments) {
      const rng = new Random(batchSeed(this.seed, this.epoch, index));
      params = Array.from(ids, () => gen.drawTransform(this.imageShape, rng));
    }
    const [height, width, channels] = this.imageShape;
    const size = height * width * channels;
    const batch = this.buffers.take(ids.length * size);
    const preprocess = gen.pixelPreprocess(channels);
    await Promise.all(
      Array.from(ids, (id, k) =>
        this.loadSample(
          id,
          params ? params[k]! : null,
          preprocess,
          batch.subarray(k * size, (k + 1) * size),
        ),
      ),
    );
    const data = gen.standardizePixels(batch, ids.length, this.imageShape, preprocess !== null);
    let x: tf.Tensor4D = tf.tensor4d(data, [ids.length, height, width, channels], 'float32');
    this.buffers.give(batch, data);
    if (gen.dtype === 'int32') {
      const cast = tf.cast(x, 'int32');
      x.dispose();
      x = cast;
    }
    return { x, y: this.labels(ids, x) };
  }

  /**
   * `BatchSource.sampleKeys`: for each sample of batch `index`, its file (absolute path, size,
   * modification time) and what turns the file into its x row (target size, color mode,
   * interpolation, aspect handling, the generator's standardization). Null when the generator
   * augments, with classMode 'input' (y is x), or when a file cannot be stat'ed.
   */
  async sampleKeys(index: number): Promise<string[] | null> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the iterator');
    if (this.generator.augments || this.classMode === 'input') return null;
    const standardization = standardizationFingerprint(this.generator, this.imageShape);
    if (standardization === null) return null;
    const fingerprint = `${settingsFingerprint(this.loadOptions)}.${standardization}`;
    const files = Array.from(ids, (id) =>
      path.join(this.directory, this.filenames[this.substitutes.get(id) ?? id]!),
    );
    return fileSampleKeys(files, fingerprint);
  }

  /** `BatchSource.getLabels`: batch `index`'s y without decoding its images (not for 'input'). */
  async getLabels(index: number): Promise<tf.Tensor | null> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the iterator');
    if (this.classMode === 'input') {
      throw new XferError(
        'INVALID_ARGUMENT',
        "with classMode 'input' the labels are the images: call getBatch instead of getLabels.",
        { classMode: this.classMode },
      );
    }
    await initBackend();
    return this.labels(ids);
  }

  private labels(ids: Int32Array, x?: tf.Tensor4D): tf.Tensor | null {
    const dtype = this.generator.dtype;
    switch (this.classMode) {
      case null:
        return null;
      case 'input':
        return tf.clone(x!);
      case 'categorical': {
        const y = new Float32Array(ids.length * this.numClasses);
        ids.forEach((id, k) => {
          y[k * this.numClasses + this.classes[id]!] = 1;
        });
        return tf.tensor2d(y, [ids.length, this.numClasses], dtype);
      }
      default:
        return tf.tensor1d(
          Float32Array.from(ids, (id) => this.classes[id]!),
          dtype,
        );
    }
  }

  /**
   * Loads sample `id`. A file that fails to decode (damaged mid-file, deleted since the scan) is
   * replaced, for good, by the next readable file of the same class in `filenames` order, with a
   * warning naming it: training goes on and the label stays right. Writes the pixels (augmented
   * with `params`, then mapped by `preprocess`) into `dest`; in a worker thread when `workers` > 0.
   */
  private async loadSample(
    id: number,
    params: TransformParams | null,
    preprocess: PixelPreprocess | null,
    dest: Float32Array,
  ): Promise<void> {
    const transform = params && { params, settings: transformSettings(this.generator) };
    let candidate = this.substitutes.get(id) ?? id;
    for (;;) {
      const file = path.join(this.directory, this.filenames[candidate]!);
      try {
        return await loadBatchImage(
          file,
          this.loadOptions,
          transform,
          preprocess,
          dest,
          this.workers,
        );
      } catch (error) {
        if (
          !(error instanceof XferError) ||
          (error.code !== 'CORRUPT_FILE' && error.code !== 'NOT_FOUND')
        )
          throw error;
        if (!this.broken.has(candidate)) {
          this.broken.add(candidate);
          this.skipped.push({ filename: this.filenames[candidate]!, reason: error.message });
        }
        const next = this.nextReadable(candidate);
        if (next < 0) {
          const className = Object.keys(this.classIndices)[this.classes[id]!];
          throw new XferError(
            'NO_DATA',
            `every image of class ${describeValue(className)} in ${describeValue(this.directory)} failed to decode; last: ${error.message}`,
            {
              directory: this.directory,
              class: className,
            },
          );
        }
        warn(
          `${error.message} Using ${describeValue(this.filenames[next])} (same class) in its place from now on.`,
        );
        this.substitutes.set(id, next);
        candidate = next;
      }
    }
  }

  /** The next index of the same class after `index`, cyclically, not known to be broken; -1 if none. */
  private nextReadable(index: number): number {
    const [first, end] = this.classRanges[this.classes[index]!]!;
    for (let step = 1; step < end - first; step++) {
      const candidate = first + ((index - first + step) % (end - first));
      if (!this.broken.has(candidate)) return candidate;
    }
    return -1;
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

  /**
   * The remaining batches of the current epoch, from `batchIndex`; ends with `reset()`. Call
   * `onEpochEnd()` between epochs to reshuffle.
   * @example
   * for await (const { x, y } of iterator) { ...; tf.dispose([x, y]); }
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    while (this.batchIndex < this.length) {
      const index = this.batchIndex++;
      yield await this.getBatch(index);
    }
    this.reset();
  }
}

/** One warning for all files skipped at scan time: each named, with the count. */
function warnSkipped(directory: string, skipped: SkippedFile[]): void {
  const listed = skipped.slice(0, WARN_LIST_LIMIT).map((s) => `  ${s.filename}: ${s.reason}`);
  const more =
    skipped.length > WARN_LIST_LIMIT
      ? [`  ... and ${skipped.length - WARN_LIST_LIMIT} more (see iterator.skipped)`]
      : [];
  warn(
    `skipped ${skipped.length} unreadable image file(s) in ${describeValue(directory)}:\n${[...listed, ...more].join('\n')}`,
  );
}
