/**
 * Keras 3's `image_dataset_from_directory` (`keras/src/utils/image_dataset_utils.py`) as a
 * `BatchSource`. Keras's semantics where they decide which image lands where:
 * - files: class folders sorted (hidden ones skipped), each walked with roots sorted and files
 *   sorted; with `shuffle`, the whole list is shuffled once by numpy's `RandomState(seed)`
 *   (reproduced bit for bit), so the same seed gives Keras's order;
 * - split: after that shuffle, the last `int(validationSplit * n)` files are validation, the
 *   rest training;
 * - pixels: decoded to the colour mode, resized by `tf.image.resize` (half-pixel centres, no
 *   antialias, float32 values, not rounded), or Keras's `smart_resize` crop, or
 *   `resize_with_pad`; labels 'int' (int32), 'categorical' (one-hot float32), 'binary'
 *   (float32 [b, 1]).
 * Differences: each epoch is reshuffled in full by xfer's seeded generator (tf.data's buffer
 * shuffle with its own generator cannot be reproduced); files that cannot be decoded are dropped
 * with a warning after the split (Keras stops with an error mid-epoch); WebP and TIFF count as
 * images too.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { describeValue, invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { info, warn } from '../util/log.js';
import { Random } from '../util/random.js';
import { checkBoolean, checkOneOf, checkPositiveInteger } from '../util/validate.js';
import { batchSeed } from './array-iterator.js';
import { BatchBuffers } from './batch-buffers.js';
import type { DatasetLoadSettings as LoadSettings } from './dataset-image.js';
import { COLOR_MODES, type ColorMode, checkPixelLimitOption, checkTargetSize } from './image.js';
import { NumpyRandomState } from './numpy-random.js';
import { checkWorkers, loadDatasetPixels } from './pool.js';
import { fileSampleKeys, settingsFingerprint } from './sample-keys.js';
import {
  checkImageFile,
  IMAGE_EXTENSIONS,
  isDirectory,
  listClassFiles,
  mapLimit,
  type SkippedFile,
} from './scan.js';
import { type Batch, type BatchSource, batchIndices } from './source.js';
import { TF_INTERPOLATIONS, type TfInterpolation } from './tf-resize.js';

export const LABEL_MODES = ['int', 'categorical', 'binary'] as const;
/** How labels are encoded: class index, one-hot, 0/1 float, or no labels (null). */
export type LabelMode = (typeof LABEL_MODES)[number] | null;

export interface ImageDatasetOptions {
  /** 'inferred' (from the class sub-folders), null (no labels), or one integer label per file in the sorted file order. Default 'inferred'. */
  labels?: 'inferred' | null | number[];
  /** 'int', 'categorical', 'binary' (exactly 2 classes) or null for no labels. Default 'int'. */
  labelMode?: LabelMode;
  /** Class sub-folders to use, in label order (labels 'inferred' only). Default: all, sorted. */
  classNames?: string[];
  /** 'rgb', 'grayscale' or 'rgba'. Default 'rgb'. */
  colorMode?: ColorMode;
  /** Images per batch. Default 32. */
  batchSize?: number;
  /** [height, width] of the images. Default [256, 256]. */
  imageSize?: [number, number];
  /** Shuffle the files (with `seed`) and each epoch. Default true. */
  shuffle?: boolean;
  /** Seed for the shuffles; required with validationSplit and shuffle. Default: random. */
  seed?: number;
  /** Fraction in (0, 1) of the files held out for validation. Default none. */
  validationSplit?: number;
  /** 'training', 'validation' or 'both' (returns [training, validation]); with validationSplit. */
  subset?: 'training' | 'validation' | 'both';
  /** tf.image.resize method: 'bilinear' or 'nearest'. Default 'bilinear'. */
  interpolation?: TfInterpolation;
  /** Follow symbolic links to folders. Default false. */
  followLinks?: boolean;
  /** Centre-crop to the target aspect ratio before resizing (Keras's smart_resize). Default false. */
  cropToAspectRatio?: boolean;
  /** Resize to fit and pad with zeros to the target aspect ratio. Default false. */
  padToAspectRatio?: boolean;
  /** Refuse images with more pixels than this (decompression bombs); 0 for none. Default 268402689. */
  limitInputPixels?: number;
  /** Print Keras's "Found N files belonging to K classes." lines. Default true. */
  verbose?: boolean;
  /**
   * Worker threads that read, decode and resize the images (0: the main thread). Batches are
   * identical for every count. Default: the number of cores (`os.availableParallelism()`).
   */
  workers?: number;
}

const OPTION_NAMES = [
  'labels',
  'labelMode',
  'classNames',
  'colorMode',
  'batchSize',
  'imageSize',
  'shuffle',
  'seed',
  'validationSplit',
  'subset',
  'interpolation',
  'followLinks',
  'cropToAspectRatio',
  'padToAspectRatio',
  'limitInputPixels',
  'verbose',
  'workers',
];

/** A batched image data set from a folder: what `imageDatasetFromDirectory` returns. */
export class ImageDataset implements BatchSource {
  /** Class names in label order (null without labels). */
  readonly classNames: string[] | null;
  /** Full paths of the images, in the data set's (seeded, shuffled) order. */
  readonly filePaths: string[];
  /** The label of each file (null without labels). */
  readonly labels: Int32Array | null;
  readonly labelMode: LabelMode;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  /** [height, width, channels] of each image. */
  readonly imageShape: [number, number, number];
  /** Files dropped because they could not be read. */
  readonly skipped: SkippedFile[];
  /** Worker threads loading the images (0: the main thread). */
  readonly workers: number;
  private readonly settings: LoadSettings;
  private order: Int32Array;
  private epoch = 0;
  private readonly buffers = new BatchBuffers();

  constructor(
    filePaths: string[],
    labels: Int32Array | null,
    classNames: string[] | null,
    labelMode: LabelMode,
    settings: LoadSettings,
    batching: { batchSize: number; shuffle: boolean; seed: number; workers: number },
    skipped: SkippedFile[],
  ) {
    this.filePaths = filePaths;
    this.labels = labels;
    this.classNames = classNames;
    this.labelMode = labelMode;
    this.settings = settings;
    this.batchSize = batching.batchSize;
    this.shuffle = batching.shuffle;
    this.seed = batching.seed;
    this.workers = batching.workers;
    this.skipped = skipped;
    const channels = settings.colorMode === 'rgb' ? 3 : settings.colorMode === 'rgba' ? 4 : 1;
    this.imageShape = [settings.imageSize[0], settings.imageSize[1], channels];
    this.order = Int32Array.from(filePaths, (_, i) => i);
  }

  /** Batches per epoch. */
  get length(): number {
    return Math.ceil(this.filePaths.length / this.batchSize);
  }

  /** Number of images. */
  get samples(): number {
    return this.filePaths.length;
  }

  /**
   * Batch `index`: x float32 [b, height, width, channels] (0..255, not rescaled, as Keras), y per
   * labelMode or null. The caller disposes both.
   * @example
   * const { x, y } = await ds.getBatch(0);
   */
  async getBatch(index: number): Promise<Batch> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the data set');
    await initBackend();
    const [height, width, channels] = this.imageShape;
    const size = height * width * channels;
    const batch = this.buffers.take(ids.length * size);
    await Promise.all(
      Array.from(ids, (id, k) =>
        loadDatasetPixels(
          this.filePaths[id]!,
          this.settings,
          batch.subarray(k * size, (k + 1) * size),
          this.workers,
        ),
      ),
    );
    const x = tf.tensor4d(batch, [ids.length, height, width, channels], 'float32');
    this.buffers.give(batch, batch);
    return { x, y: this.encodeLabels(ids) };
  }

  /**
   * `BatchSource.sampleKeys`: each sample's file (absolute path, size, modification time) and the
   * load settings (image size, colour mode, interpolation, crop or pad); null when a file cannot
   * be stat'ed. A data set never augments, so its rows are always reproducible.
   */
  async sampleKeys(index: number): Promise<string[] | null> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the data set');
    return fileSampleKeys(
      Array.from(ids, (id) => this.filePaths[id]!),
      settingsFingerprint(this.settings),
    );
  }

  /** `BatchSource.getLabels`: batch `index`'s y without decoding its images. */
  async getLabels(index: number): Promise<tf.Tensor | null> {
    const ids = batchIndices(this.order, index, this.batchSize, 'the data set');
    await initBackend();
    return this.encodeLabels(ids);
  }

  private encodeLabels(ids: Int32Array): tf.Tensor | null {
    if (this.labels === null || this.labelMode === null) return null;
    const labels = Int32Array.from(ids, (id) => this.labels![id]!);
    switch (this.labelMode) {
      case 'int':
        return tf.tensor1d(labels, 'int32');
      case 'binary':
        return tf.tensor2d(Float32Array.from(labels), [labels.length, 1], 'float32');
      default: {
        const classes = this.classNames!.length;
        const y = new Float32Array(labels.length * classes);
        labels.forEach((label, k) => {
          y[k * classes + label] = 1;
        });
        return tf.tensor2d(y, [labels.length, classes], 'float32');
      }
    }
  }

  /** Reshuffles the order for the next epoch (when shuffle). */
  onEpochEnd(): void {
    this.epoch++;
    if (!this.shuffle) return;
    const order = Array.from(this.order);
    new Random(batchSeed(this.seed, this.epoch, 0)).shuffle(order);
    this.order = Int32Array.from(order);
  }
}

async function listSubdirectories(directory: string): Promise<string[]> {
  const names = (await fsp.readdir(directory)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: string[] = [];
  for (const name of names) {
    if (!name.startsWith('.') && (await isDirectory(path.join(directory, name)))) out.push(name);
  }
  return out;
}

/** Keras's `get_training_or_validation_split`: validation is the last fraction. */
function splitIndex(count: number, fraction: number): number {
  return count - Math.trunc(fraction * count);
}

function checkOptions(options: ImageDatasetOptions) {
  if (options === null || typeof options !== 'object') {
    throw invalidParameterError('options', 'an options object', options);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key)) {
      throw unknownNameError('imageDatasetFromDirectory option', key, OPTION_NAMES);
    }
  }
  const labels = options.labels === undefined ? 'inferred' : options.labels;
  if (
    labels !== 'inferred' &&
    labels !== null &&
    !(Array.isArray(labels) && labels.every((v) => Number.isInteger(v) && v >= 0))
  ) {
    throw invalidParameterError(
      'labels',
      "'inferred', null, or an array of non-negative integer labels",
      labels,
    );
  }
  if (options.classNames !== undefined && labels !== 'inferred') {
    throw invalidParameterError(
      'classNames',
      "no classNames unless labels is 'inferred' (class names come from the sub-folders)",
      options.classNames,
    );
  }
  let labelMode: LabelMode =
    options.labelMode === null
      ? null
      : checkOneOf('labelMode', options.labelMode ?? 'int', LABEL_MODES);
  if (labels === null) labelMode = null;
  const interpolation = checkOneOf(
    'interpolation',
    options.interpolation ?? 'bilinear',
    TF_INTERPOLATIONS,
  );
  const cropToAspectRatio = checkBoolean('cropToAspectRatio', options.cropToAspectRatio ?? false);
  const padToAspectRatio = checkBoolean('padToAspectRatio', options.padToAspectRatio ?? false);
  if (cropToAspectRatio && padToAspectRatio) {
    throw new XferError(
      'INVALID_ARGUMENT',
      'only one of cropToAspectRatio and padToAspectRatio can be true; got both.',
    );
  }
  const split = options.validationSplit ?? 0;
  if (typeof split !== 'number' || !(split === 0 || (split > 0 && split < 1))) {
    throw invalidParameterError('validationSplit', 'a fraction strictly between 0 and 1', split);
  }
  const subset =
    options.subset === undefined
      ? null
      : checkOneOf('subset', options.subset, ['training', 'validation', 'both'] as const);
  if ((split === 0) !== (subset === null)) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `subset and validationSplit go together: set both or neither (got subset ${describeValue(options.subset)}, validationSplit ${describeValue(options.validationSplit)}).`,
    );
  }
  const shuffle = checkBoolean('shuffle', options.shuffle ?? true);
  if (split !== 0 && shuffle && options.seed === undefined) {
    throw new XferError(
      'INVALID_ARGUMENT',
      'validationSplit with shuffle needs a seed, so that the training and validation subsets do not overlap: pass the same seed to both calls (e.g. seed: 1337).',
    );
  }
  const seed = options.seed ?? Math.floor(Math.random() * 1e6);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw invalidParameterError('seed', 'integer in [0, 2^32)', seed);
  }
  return {
    labels,
    labelMode,
    split,
    subset,
    shuffle,
    seed,
    batchSize: checkPositiveInteger('batchSize', options.batchSize ?? 32),
    followLinks: checkBoolean('followLinks', options.followLinks ?? false),
    verbose: checkBoolean('verbose', options.verbose ?? true),
    workers: checkWorkers(options.workers),
    settings: {
      imageSize: checkTargetSize('imageSize', options.imageSize ?? [256, 256]),
      colorMode: checkOneOf('colorMode', options.colorMode ?? 'rgb', COLOR_MODES),
      interpolation,
      cropToAspectRatio,
      padToAspectRatio,
      limitInputPixels: checkPixelLimitOption(options.limitInputPixels),
    } satisfies LoadSettings,
  };
}

export function imageDatasetFromDirectory(
  directory: string,
  options: ImageDatasetOptions & { subset: 'both' },
): Promise<[ImageDataset, ImageDataset]>;
export function imageDatasetFromDirectory(
  directory: string,
  options?: ImageDatasetOptions,
): Promise<ImageDataset>;
/**
 * Keras 3's `image_dataset_from_directory`: a batched data set of the images under `directory`
 * (one sub-folder per class), in Keras's seeded order and split. Images come as float32 0..255
 * resized to `imageSize` by TensorFlow's bilinear resize; normalize inside the model (a
 * `Rescaling` layer) or with the backbone's preprocessing.
 * @example
 * const [train, val] = await imageDatasetFromDirectory('data/train', {
 *   validationSplit: 0.2, subset: 'both', seed: 1337, imageSize: [180, 180], batchSize: 32 });
 * const { x, y } = await train.getBatch(0); // x [32, 180, 180, 3], y int32 [32]
 */
export async function imageDatasetFromDirectory(
  directory: string,
  options: ImageDatasetOptions = {},
): Promise<ImageDataset | [ImageDataset, ImageDataset]> {
  if (typeof directory !== 'string' || directory === '') {
    throw invalidParameterError('directory', 'non-empty string', directory);
  }
  const o = checkOptions(options);
  await initBackend();
  if (!(await isDirectory(directory))) {
    throw new XferError(
      'NOT_FOUND',
      `data directory not found: ${describeValue(directory)}. imageDatasetFromDirectory expects a folder with one sub-folder of images per class.`,
      { directory },
    );
  }
  let subdirs = [''];
  if (o.labels === 'inferred') {
    subdirs = await listSubdirectories(directory);
    if (options.classNames !== undefined) {
      const names = options.classNames;
      if (!Array.isArray(names) || !names.every((n) => subdirs.includes(n))) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `classNames must name sub-folders of ${describeValue(directory)} (${subdirs.join(', ') || 'none'}) but received ${describeValue(names)}.`,
          { directory, subdirs },
        );
      }
      subdirs = [...names];
    }
  }
  let filenames: string[] = [];
  let labels: number[] | null = [];
  for (let c = 0; c < subdirs.length; c++) {
    const files = await listClassFiles(directory, subdirs[c]!, o.followLinks);
    filenames = filenames.concat(files);
    for (let i = 0; i < files.length; i++) labels.push(c);
  }
  let classNames: string[] | null = subdirs;
  if (o.labels === null) {
    labels = null;
    classNames = null;
  } else if (Array.isArray(o.labels)) {
    if (o.labels.length !== filenames.length) {
      throw new XferError(
        'SHAPE_MISMATCH',
        `labels has ${o.labels.length} entries but ${describeValue(directory)} holds ${filenames.length} image files; give one label per file, in sorted path order.`,
        { labels: o.labels.length, files: filenames.length },
      );
    }
    labels = [...o.labels];
    classNames = [...new Set(labels)].sort((a, b) => a - b).map(String);
  }
  if (o.labelMode === null) classNames = o.labels === null ? null : classNames;
  if (o.verbose) {
    info(
      classNames === null || o.labelMode === null
        ? `Found ${filenames.length} files.`
        : `Found ${filenames.length} files belonging to ${classNames.length} classes.`,
    );
  }
  if (o.labelMode === 'binary' && classNames!.length !== 2) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `labelMode 'binary' needs exactly 2 classes but found ${classNames!.length}: ${classNames!.join(', ')}. Use labelMode 'int' or 'categorical'.`,
      { classNames },
    );
  }
  const filePaths = filenames.map((f) => path.join(directory, f));
  if (o.shuffle) {
    // Keras shuffles paths and labels with two generators of the same seed: one permutation.
    new NumpyRandomState(o.seed).shuffle(filePaths);
    if (labels) new NumpyRandomState(o.seed).shuffle(labels);
  }
  const useLabels = o.labelMode === null ? null : labels;
  const make = async (which: 'training' | 'validation' | null) => {
    let paths = filePaths;
    let subsetLabels = useLabels;
    if (which !== null) {
      const cut = splitIndex(paths.length, o.split);
      if (o.verbose) {
        info(
          which === 'training'
            ? `Using ${cut} files for training.`
            : `Using ${paths.length - cut} files for validation.`,
        );
      }
      paths = which === 'training' ? paths.slice(0, cut) : paths.slice(cut);
      if (subsetLabels) {
        subsetLabels = which === 'training' ? subsetLabels.slice(0, cut) : subsetLabels.slice(cut);
      }
    }
    const reasons = await mapLimit(paths, 16, (p) =>
      checkImageFile(p, o.settings.limitInputPixels),
    );
    const skipped: SkippedFile[] = [];
    const keep = reasons.map((reason, i) => {
      if (reason) skipped.push({ filename: path.relative(directory, paths[i]!), reason });
      return !reason;
    });
    if (skipped.length > 0) {
      warn(
        `skipped ${skipped.length} unreadable image file(s) in ${describeValue(directory)}: ${skipped
          .slice(0, 5)
          .map((s) => `${s.filename} (${s.reason})`)
          .join('; ')}${skipped.length > 5 ? '; ...' : ''}`,
      );
    }
    paths = paths.filter((_, i) => keep[i]);
    if (subsetLabels) subsetLabels = subsetLabels.filter((_, i) => keep[i]);
    if (paths.length === 0) {
      throw new XferError(
        'NO_DATA',
        `no ${which ? `${which} ` : ''}images found in ${describeValue(directory)} (looked for ${IMAGE_EXTENSIONS.map((e) => `.${e}`).join(', ')}).`,
        { directory },
      );
    }
    return new ImageDataset(
      paths,
      subsetLabels ? Int32Array.from(subsetLabels) : null,
      classNames,
      o.labelMode,
      o.settings,
      { batchSize: o.batchSize, shuffle: o.shuffle, seed: o.seed, workers: o.workers },
      skipped,
    );
  };
  if (o.subset === 'both') return [await make('training'), await make('validation')];
  return make(o.subset);
}
