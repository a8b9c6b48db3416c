/**
 * Keras's `ImageDataGenerator`: random augmentation (`get_random_transform`, `apply_transform`,
 * `random_transform`), normalization (`standardize`) and `flow_from_directory`. Parameters are
 * drawn from Keras's distributions in Keras's order; the generator is xfer's seeded `Random`
 * (mulberry32), so a seed reproduces xfer's draws, not numpy's.
 */

import { preprocessModeOf } from '../applications/preprocess-pixels.js';
import * as tf from '../engine/tf.js';
import { describeValue, invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { warn, warnOnce } from '../util/log.js';
import { Random } from '../util/random.js';
import {
  checkBoolean,
  checkNonNegativeNumber,
  checkOneOf,
  checkPositiveInteger,
} from '../util/validate.js';
import { FILL_MODES, type FillMode, transformPixels } from './affine.js';
import { ArrayIterator } from './array-iterator.js';
import { DirectoryIterator, type FlowFromDirectoryOptions } from './iterator.js';
import {
  applyPixelPreprocess,
  type PixelAffine,
  type PixelPreprocess,
} from './pixel-preprocess.js';
import { channelMean, channelStd, zcaMatrix } from './stats.js';

/** A shift range as Keras takes it: a fraction (< 1) or pixels, or a list of values to pick from. */
export type ShiftRange = number | number[];

export interface ImageDataGeneratorOptions {
  /** Degrees; rotations are drawn uniformly from [-rotationRange, rotationRange]. Default 0. */
  rotationRange?: number;
  /**
   * Keras's `width_shift_range`. A number < 1 is a fraction of the width, >= 1 pixels; an integer
   * n >= 1 draws whole pixels in (-n, n), a list draws one of its values with a random sign.
   * Keras uses it as `ty`, which its matrix applies along rows: in Keras (and here) it shifts
   * images vertically (keras-team/keras#17398). Default 0.
   */
  widthShiftRange?: ShiftRange;
  /** Keras's `height_shift_range`, the same rules; Keras applies it along columns. Default 0. */
  heightShiftRange?: ShiftRange;
  /** Shear angle in degrees, counter-clockwise, drawn from [-shearRange, shearRange]. Default 0. */
  shearRange?: number;
  /** Zoom: z gives [1 - z, 1 + z], or give [lower, upper]. Values > 1 zoom out. Default 0. */
  zoomRange?: number | [number, number];
  /** Added to every channel, drawn from [-channelShiftRange, channelShiftRange]. Default 0. */
  channelShiftRange?: number;
  /** [lower, upper] brightness factor range (PIL's ImageEnhance.Brightness). Default none. */
  brightnessRange?: [number, number];
  /**
   * How points outside the image are filled (scipy's modes): 'constant' (cval), 'nearest'
   * (aaaa|abcd|dddd), 'reflect' (dcba|abcd|dcba), 'wrap'. Default 'nearest'.
   */
  fillMode?: FillMode;
  /** The value for fillMode 'constant'. Default 0. */
  cval?: number;
  /** Flip half of the images left-right. Default false. */
  horizontalFlip?: boolean;
  /** Flip half of the images upside down. Default false. */
  verticalFlip?: boolean;
  /** Multiply by this after everything else (e.g. 1/255); 0 or undefined means none. Default none. */
  rescale?: number;
  /**
   * Applied to each image (a [height, width, channels] tensor) after resizing and augmentation,
   * before rescale, e.g. a backbone's preprocessInput. Must return the same shape. Default none.
   */
  preprocessingFunction?: (x: tf.Tensor3D) => tf.Tensor3D;
  /**
   * The preprocessingFunction treats every pixel alike (as a backbone's `preprocessInput` does):
   * call it once per batch instead of once per image. When it is an affine map of each pixel's
   * channels (every `preprocessInput` mode is; xfer checks this once on probe pixels), it is
   * applied in JS without tfjs kernels, the fastest path; results agree to float32 rounding.
   * Default false (Keras's per-image call).
   */
  preprocessingFunctionOnBatch?: boolean;
  /** dtype of the batches. Default 'float32'. */
  dtype?: 'float32' | 'int32';
  /** Subtract the per-channel mean of the data given to `fit`. Default false. */
  featurewiseCenter?: boolean;
  /** Subtract each image's own mean (over all its pixels and channels). Default false. */
  samplewiseCenter?: boolean;
  /** Divide by the per-channel standard deviation of the `fit` data (+ 1e-6); implies featurewiseCenter. Default false. */
  featurewiseStdNormalization?: boolean;
  /** Divide each image by its own standard deviation (+ 1e-6); implies samplewiseCenter. Default false. */
  samplewiseStdNormalization?: boolean;
  /**
   * ZCA whitening with the matrix `fit` computes; implies featurewiseCenter and overrides
   * featurewiseStdNormalization, as in Keras. Needs height x width x channels <= 8192 (the matrix
   * has that many squared entries). Default false.
   */
  zcaWhitening?: boolean;
  /** Added to the covariance eigenvalues in ZCA whitening. Default 1e-6. */
  zcaEpsilon?: number;
  /**
   * Fraction of the images held out for validation, in (0, 1): `flowFromDirectory` and `flow`
   * with `subset: 'validation'` take the first fraction (of each class's sorted files, or of the
   * array), `subset: 'training'` the rest. Default 0 (no split).
   */
  validationSplit?: number;
  /** Spline order of the affine warp (scipy's `order`): 0 (nearest) or 1 (bilinear). Default 1. */
  interpolationOrder?: 0 | 1;
}

export interface GeneratorFitOptions {
  /** Fit on randomly augmented copies of the data (Keras's `augment`). Default false. */
  augment?: boolean;
  /** With `augment`, how many augmented copies of the data to use. Default 1. */
  rounds?: number;
  /** Seed for the augmentation draws. Default: random. */
  seed?: number;
}

export type DataSubset = 'training' | 'validation';

export interface FlowOptions {
  /** Images per batch; the last batch of an epoch may be smaller. Default 32. */
  batchSize?: number;
  /** Shuffle the order every epoch. Default true. */
  shuffle?: boolean;
  /** Seed for the order and the augmentation. Default: random. */
  seed?: number;
  /** With the generator's `validationSplit`: 'validation' is the first fraction of x, 'training' the rest. Default: all of x. */
  subset?: DataSubset;
  /**
   * Skip Keras's check that both subsets hold the same set of labels (there to catch arrays
   * sorted by label, whose split would leave classes out). Default false.
   */
  ignoreClassSplit?: boolean;
  /**
   * Worker threads that augment the images (0: the main thread); used only when the generator
   * augments. Batches are identical for every count. Default: the number of cores.
   */
  workers?: number;
}

/** One draw of `getRandomTransform`, Keras's `transform_parameters` in camelCase. */
export interface TransformParams {
  /** Rotation in degrees. */
  theta: number;
  /** Keras's tx (from heightShiftRange): read columns c + tx, moving content left by tx pixels. */
  tx: number;
  /** Keras's ty (from widthShiftRange): read rows r + ty, moving content up by ty pixels. */
  ty: number;
  /** Shear in degrees. */
  shear: number;
  /** Zoom of the column axis (> 1 zooms out). */
  zx: number;
  /** Zoom of the row axis. */
  zy: number;
  flipHorizontal: boolean;
  flipVertical: boolean;
  /** Added to every channel, or null. */
  channelShiftIntensity: number | null;
  /** Brightness factor, or null. */
  brightness: number | null;
}

const OPTION_NAMES = [
  'rotationRange',
  'widthShiftRange',
  'heightShiftRange',
  'shearRange',
  'zoomRange',
  'channelShiftRange',
  'brightnessRange',
  'fillMode',
  'cval',
  'horizontalFlip',
  'verticalFlip',
  'rescale',
  'preprocessingFunction',
  'preprocessingFunctionOnBatch',
  'dtype',
  'featurewiseCenter',
  'samplewiseCenter',
  'featurewiseStdNormalization',
  'samplewiseStdNormalization',
  'zcaWhitening',
  'zcaEpsilon',
  'validationSplit',
  'interpolationOrder',
] as const;

/** Keras options xfer does not implement, so that they fail loudly instead of being ignored. */
const UNSUPPORTED_OPTIONS = ['dataFormat'];

/** The most features (height x width x channels) ZCA whitening accepts: its matrix is 256 MB. */
const ZCA_MAX_FEATURES = 8192;

function checkShiftRange(name: string, value: unknown): ShiftRange {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    return [...value];
  }
  throw invalidParameterError(name, 'a number or an array of numbers', value);
}

function checkRangePair(name: string, value: unknown): [number, number] {
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v) => typeof v === 'number' && Number.isFinite(v)) ||
    value[0] > value[1]
  ) {
    throw invalidParameterError(
      name,
      '[lower, upper] of two finite numbers with lower <= upper',
      value,
    );
  }
  return [value[0], value[1]];
}

/**
 * One shift, as Keras's `get_random_transform`: integers and lists use `np.random.choice` (an
 * integer n picks from 0..n-1) times a random sign; other numbers draw uniformly in (-r, r). Then
 * values all < 1 are fractions of `size`.
 */
function drawShift(range: ShiftRange, size: number, rng: Random): number {
  let shift: number;
  if (Array.isArray(range)) {
    if (range.length === 0) return 0;
    shift = range[rng.randint(0, range.length)]! * (rng.next() < 0.5 ? -1 : 1);
  } else if (Number.isInteger(range) && range >= 1) {
    shift = rng.randint(0, range) * (rng.next() < 0.5 ? -1 : 1);
  } else {
    shift = rng.uniform(-range, range);
  }
  const max = Array.isArray(range) ? Math.max(...range) : range;
  return max < 1 ? shift * size : shift;
}

const isActive = (range: ShiftRange) => (Array.isArray(range) ? range.length > 0 : range !== 0);

/**
 * Keras's `ImageDataGenerator`: configures augmentation and normalization, then produces batches
 * from a folder of images with `flowFromDirectory`.
 * @example
 * const gen = new ImageDataGenerator({ rotationRange: 40, widthShiftRange: 0.2, heightShiftRange: 0.2,
 *   zoomRange: 0.2, horizontalFlip: true, fillMode: 'constant', preprocessingFunction: preprocessInput });
 * const train = await gen.flowFromDirectory('data/train', { targetSize: [224, 224], batchSize: 100, classMode: 'binary' });
 */
export class ImageDataGenerator {
  readonly rotationRange: number;
  readonly widthShiftRange: ShiftRange;
  readonly heightShiftRange: ShiftRange;
  readonly shearRange: number;
  readonly zoomRange: [number, number];
  readonly channelShiftRange: number;
  readonly brightnessRange: [number, number] | null;
  readonly fillMode: FillMode;
  readonly cval: number;
  readonly horizontalFlip: boolean;
  readonly verticalFlip: boolean;
  readonly rescale: number | null;
  readonly preprocessingFunction: ((x: tf.Tensor3D) => tf.Tensor3D) | null;
  readonly preprocessingFunctionOnBatch: boolean;
  readonly dtype: 'float32' | 'int32';
  readonly featurewiseCenter: boolean;
  readonly samplewiseCenter: boolean;
  readonly featurewiseStdNormalization: boolean;
  readonly samplewiseStdNormalization: boolean;
  readonly zcaWhitening: boolean;
  readonly zcaEpsilon: number;
  readonly validationSplit: number;
  readonly interpolationOrder: 0 | 1;
  /** Per-channel mean from `fit` (Keras's `mean`), or null before fitting. */
  mean: Float32Array | null = null;
  /** Per-channel standard deviation from `fit` (Keras's `std`), or null. */
  std: Float32Array | null = null;
  /** The ZCA matrix from `fit` (Keras's `principal_components`), features x features, or null. */
  principalComponents: Float32Array | null = null;
  /** Draws for calls without a seed. */
  private readonly random = new Random();
  /** The preprocessingFunction as a per-pixel affine map, per channel count (see pixelAffine). */
  private readonly affineCache = new Map<number, PixelAffine | null>();

  constructor(options: ImageDataGeneratorOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw invalidParameterError('options', 'an options object', options);
    }
    for (const key of Object.keys(options)) {
      if ((OPTION_NAMES as readonly string[]).includes(key)) continue;
      if (UNSUPPORTED_OPTIONS.includes(key)) {
        throw new XferError(
          'UNSUPPORTED',
          `ImageDataGenerator option '${key}' is not supported by xfer. Supported: ${OPTION_NAMES.join(', ')}`,
          { option: key },
        );
      }
      throw unknownNameError('ImageDataGenerator option', key, OPTION_NAMES);
    }
    this.rotationRange = checkNonNegativeNumber('rotationRange', options.rotationRange ?? 0);
    this.widthShiftRange = checkShiftRange('widthShiftRange', options.widthShiftRange ?? 0);
    this.heightShiftRange = checkShiftRange('heightShiftRange', options.heightShiftRange ?? 0);
    this.shearRange = checkNonNegativeNumber('shearRange', options.shearRange ?? 0);
    const zoom = options.zoomRange ?? 0;
    this.zoomRange =
      typeof zoom === 'number' && Number.isFinite(zoom)
        ? [1 - zoom, 1 + zoom]
        : checkRangePair('zoomRange', zoom);
    this.channelShiftRange = checkNonNegativeNumber(
      'channelShiftRange',
      options.channelShiftRange ?? 0,
    );
    this.brightnessRange =
      options.brightnessRange === undefined
        ? null
        : checkRangePair('brightnessRange', options.brightnessRange);
    this.fillMode = checkOneOf('fillMode', options.fillMode ?? 'nearest', FILL_MODES);
    const cval = options.cval ?? 0;
    if (typeof cval !== 'number' || !Number.isFinite(cval)) {
      throw invalidParameterError('cval', 'finite number', cval);
    }
    this.cval = cval;
    this.horizontalFlip = checkBoolean('horizontalFlip', options.horizontalFlip ?? false);
    this.verticalFlip = checkBoolean('verticalFlip', options.verticalFlip ?? false);
    const rescale = options.rescale ?? 0;
    if (typeof rescale !== 'number' || !Number.isFinite(rescale)) {
      throw invalidParameterError('rescale', 'finite number', rescale);
    }
    this.rescale = rescale === 0 ? null : rescale;
    const fn = options.preprocessingFunction ?? null;
    if (fn !== null && typeof fn !== 'function') {
      throw invalidParameterError('preprocessingFunction', 'function', fn);
    }
    this.preprocessingFunction = fn;
    this.preprocessingFunctionOnBatch = checkBoolean(
      'preprocessingFunctionOnBatch',
      options.preprocessingFunctionOnBatch ?? false,
    );
    this.dtype = checkOneOf('dtype', options.dtype ?? 'float32', ['float32', 'int32'] as const);
    let featurewiseCenter = checkBoolean('featurewiseCenter', options.featurewiseCenter ?? false);
    let samplewiseCenter = checkBoolean('samplewiseCenter', options.samplewiseCenter ?? false);
    let featurewiseStd = checkBoolean(
      'featurewiseStdNormalization',
      options.featurewiseStdNormalization ?? false,
    );
    const samplewiseStd = checkBoolean(
      'samplewiseStdNormalization',
      options.samplewiseStdNormalization ?? false,
    );
    const zca = checkBoolean('zcaWhitening', options.zcaWhitening ?? false);
    // Keras's overrides, with its warnings.
    if (zca) {
      if (!featurewiseCenter) {
        featurewiseCenter = true;
        warn('zcaWhitening overrides featurewiseCenter: it is set to true (as Keras does).');
      }
      if (featurewiseStd) {
        featurewiseStd = false;
        warn(
          'zcaWhitening overrides featurewiseStdNormalization: it is set to false (as Keras does).',
        );
      }
    }
    if (featurewiseStd && !featurewiseCenter) {
      featurewiseCenter = true;
      warn(
        'featurewiseStdNormalization overrides featurewiseCenter: it is set to true (as Keras does).',
      );
    }
    if (samplewiseStd && !samplewiseCenter) {
      samplewiseCenter = true;
      warn(
        'samplewiseStdNormalization overrides samplewiseCenter: it is set to true (as Keras does).',
      );
    }
    this.featurewiseCenter = featurewiseCenter;
    this.samplewiseCenter = samplewiseCenter;
    this.featurewiseStdNormalization = featurewiseStd;
    this.samplewiseStdNormalization = samplewiseStd;
    this.zcaWhitening = zca;
    const epsilon = options.zcaEpsilon ?? 1e-6;
    if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon <= 0) {
      throw invalidParameterError('zcaEpsilon', 'positive number', epsilon);
    }
    this.zcaEpsilon = epsilon;
    const split = options.validationSplit ?? 0;
    if (typeof split !== 'number' || !Number.isFinite(split) || split < 0 || split >= 1) {
      throw invalidParameterError(
        'validationSplit',
        'a fraction strictly between 0 and 1 (0 for no split)',
        split,
      );
    }
    this.validationSplit = split;
    const order = options.interpolationOrder ?? 1;
    if (order !== 0 && order !== 1) {
      throw invalidParameterError(
        'interpolationOrder',
        '0 (nearest) or 1 (bilinear); higher spline orders are not supported',
        order,
      );
    }
    this.interpolationOrder = order;
  }

  /** True when `standardize` needs statistics from `fit`. */
  get needsFit(): boolean {
    return this.featurewiseCenter || this.featurewiseStdNormalization || this.zcaWhitening;
  }

  /** True when `randomTransform` can change an image (any augmentation option is set). */
  get augments(): boolean {
    return (
      this.rotationRange !== 0 ||
      isActive(this.widthShiftRange) ||
      isActive(this.heightShiftRange) ||
      this.shearRange !== 0 ||
      this.zoomRange[0] !== 1 ||
      this.zoomRange[1] !== 1 ||
      this.channelShiftRange !== 0 ||
      this.brightnessRange !== null ||
      this.horizontalFlip ||
      this.verticalFlip
    );
  }

  /**
   * Draws transform parameters for an image of `imgShape` ([height, width, channels]) from Keras's
   * distributions, in Keras's order. The same `seed` gives the same parameters.
   * @example
   * const params = gen.getRandomTransform([224, 224, 3], 42);
   */
  getRandomTransform(imgShape: [number, number, number], seed?: number): TransformParams {
    checkImageShape('imgShape', imgShape);
    if (seed !== undefined && (typeof seed !== 'number' || !Number.isInteger(seed))) {
      throw invalidParameterError('seed', 'integer', seed);
    }
    return this.drawTransform(imgShape, seed === undefined ? this.random : new Random(seed));
  }

  /** `getRandomTransform` with a caller's generator: the iterator draws a batch from one stream. */
  drawTransform(imgShape: readonly number[], rng: Random): TransformParams {
    const [height, width] = imgShape as [number, number];
    const theta = this.rotationRange ? rng.uniform(-this.rotationRange, this.rotationRange) : 0;
    const tx = isActive(this.heightShiftRange) ? drawShift(this.heightShiftRange, height, rng) : 0;
    const ty = isActive(this.widthShiftRange) ? drawShift(this.widthShiftRange, width, rng) : 0;
    const shear = this.shearRange ? rng.uniform(-this.shearRange, this.shearRange) : 0;
    let zx = 1;
    let zy = 1;
    if (this.zoomRange[0] !== 1 || this.zoomRange[1] !== 1) {
      zx = rng.uniform(this.zoomRange[0], this.zoomRange[1]);
      zy = rng.uniform(this.zoomRange[0], this.zoomRange[1]);
    }
    // Keras draws both coins whether or not flipping is enabled; so do we, to keep the stream aligned.
    const flipHorizontal = rng.next() < 0.5 && this.horizontalFlip;
    const flipVertical = rng.next() < 0.5 && this.verticalFlip;
    const channelShiftIntensity =
      this.channelShiftRange !== 0
        ? rng.uniform(-this.channelShiftRange, this.channelShiftRange)
        : null;
    const brightness = this.brightnessRange
      ? rng.uniform(this.brightnessRange[0], this.brightnessRange[1])
      : null;
    return {
      theta,
      tx,
      ty,
      shear,
      zx,
      zy,
      flipHorizontal,
      flipVertical,
      channelShiftIntensity,
      brightness,
    };
  }

  /**
   * Keras's `apply_transform`: the affine warp (rotation, shift, shear, zoom about the centre,
   * bilinear, fillMode), then channel shift, flips and brightness. Missing keys are neutral.
   * @example
   * const rotated = gen.applyTransform(x, { theta: 90 });
   */
  applyTransform(x: tf.Tensor3D, params: Partial<TransformParams>): tf.Tensor3D {
    checkImageTensor(x);
    const [height, width, channels] = x.shape;
    const data = x.dataSync();
    const pixels = data instanceof Float32Array ? data : new Float32Array(data as Int32Array);
    const out = this.transformPixels(pixels, height, width, channels, params);
    // dataSync may hand out the backend's own buffer; never share it with the new tensor.
    return tf.tensor3d(out === data ? out.slice() : out, [height, width, channels], 'float32');
  }

  /** `applyTransform` on raw float32 HWC pixels; returns the input itself when nothing applies. */
  transformPixels(
    pixels: Float32Array,
    height: number,
    width: number,
    channels: number,
    params: Partial<TransformParams>,
  ): Float32Array {
    return transformPixels(pixels, height, width, channels, params, this);
  }

  /**
   * Keras's `random_transform`: `applyTransform(x, getRandomTransform(x.shape, seed))`.
   * @example
   * const augmented = gen.randomTransform(x, 7);
   */
  randomTransform(x: tf.Tensor3D, seed?: number): tf.Tensor3D {
    checkImageTensor(x);
    return this.applyTransform(x, this.getRandomTransform(x.shape, seed));
  }

  /**
   * Keras's `standardize` for one image, in Keras's order: `preprocessingFunction`, `rescale`,
   * samplewise centre and std, featurewise centre and std, ZCA whitening. Returns float32.
   * @example
   * const ready = gen.standardize(x);
   */
  standardize(x: tf.Tensor3D): tf.Tensor3D {
    checkImageTensor(x);
    const [height, width, channels] = x.shape;
    const pixels = new Float32Array(x.dataSync() as Float32Array);
    const out = this.standardizePixels(pixels, 1, [height, width, channels]);
    return tf.tensor3d(out, [height, width, channels], 'float32');
  }

  /**
   * `standardize` for `count` images of `shape` in float32 NHWC `pixels` (which it may modify):
   * one pass over the batch, the preprocessingFunction per image (or once, with
   * preprocessingFunctionOnBatch). `preprocessed`: the images already went through
   * `pixelPreprocess` (in the image workers), so the function is skipped here. Returns the
   * standardized pixels.
   */
  standardizePixels(
    pixels: Float32Array,
    count: number,
    shape: readonly [number, number, number],
    preprocessed = false,
  ): Float32Array {
    const [height, width, channels] = shape;
    const size = height * width * channels;
    let data = pixels;
    const fn = this.preprocessingFunction;
    if (fn && !preprocessed) {
      const known = this.pixelPreprocess(channels);
      if (known !== null) {
        applyPixelPreprocess(pixels, channels, known);
      } else if (this.preprocessingFunctionOnBatch) {
        data = tidyFloats(() => {
          const y = (fn as unknown as (t: tf.Tensor) => tf.Tensor)(
            tf.tensor4d(pixels, [count, height, width, channels], 'float32'),
          );
          checkPreprocessed(y, [count, height, width, channels]);
          return y;
        });
      } else {
        for (let k = 0; k < count; k++) {
          const view = pixels.subarray(k * size, (k + 1) * size);
          tf.tidy(() => {
            const y = fn(tf.tensor3d(view, [height, width, channels], 'float32'));
            checkPreprocessed(y, [height, width, channels]);
            view.set(y.dataSync() as ArrayLike<number>);
          });
        }
      }
    }
    // numpy does each step in float32: a Float32Array store rounds like it.
    if (this.rescale !== null) {
      const r = Math.fround(this.rescale);
      for (let i = 0; i < data.length; i++) data[i] = data[i]! * r;
    }
    if (this.samplewiseCenter || this.samplewiseStdNormalization) {
      for (let k = 0; k < count; k++) {
        const image = data.subarray(k * size, (k + 1) * size);
        if (this.samplewiseCenter) {
          const mean = Math.fround(channelMean(image, 1)[0]!);
          for (let i = 0; i < size; i++) image[i] = image[i]! - mean;
        }
        if (this.samplewiseStdNormalization) {
          const divisor = Math.fround(channelStd(image, 1)[0]! + 1e-6);
          for (let i = 0; i < size; i++) image[i] = image[i]! / divisor;
        }
      }
    }
    if (this.featurewiseCenter) {
      const mean = this.mean;
      if (mean === null || mean.length !== channels) {
        warnOnce(
          'featurewise-center-unfit',
          'ImageDataGenerator has featurewiseCenter but was not fit on data: images are not centred. Call generator.fit(x) first, as in Keras.',
        );
      } else {
        for (let i = 0; i < data.length; i++) data[i] = data[i]! - mean[i % channels]!;
      }
    }
    if (this.featurewiseStdNormalization) {
      const std = this.std;
      if (std === null || std.length !== channels) {
        warnOnce(
          'featurewise-std-unfit',
          'ImageDataGenerator has featurewiseStdNormalization but was not fit on data: images are not normalized. Call generator.fit(x) first, as in Keras.',
        );
      } else {
        const divisors = Float32Array.from(std, (v) => v + 1e-6);
        for (let i = 0; i < data.length; i++) data[i] = data[i]! / divisors[i % channels]!;
      }
    }
    if (this.zcaWhitening) {
      const pc = this.principalComponents;
      if (pc === null || pc.length !== size * size) {
        warnOnce(
          'zca-unfit',
          'ImageDataGenerator has zcaWhitening but was not fit on data of this image size: images are not whitened. Call generator.fit(x) first, as in Keras.',
        );
      } else {
        const input = data;
        data = tidyFloats(() =>
          tf.matMul(tf.tensor2d(input, [count, size]), tf.tensor2d(pc, [size, size])),
        );
      }
    }
    return data;
  }

  /**
   * The preprocessingFunction as per-pixel work that an image worker can apply to each image as
   * it is written (then `standardizePixels(..., true)`), or null when it is not such work: a
   * per-family `preprocessInput` (`vgg16.preprocessInput`: its mode, numpy's arithmetic), or with
   * preprocessingFunctionOnBatch a function found to be a colour map. Same numbers as here.
   */
  pixelPreprocess(channels: number): PixelPreprocess | null {
    const fn = this.preprocessingFunction;
    if (!fn) return null;
    const mode = preprocessModeOf(fn);
    // caffe and torch need three channels: otherwise the function is called, and says so.
    if (mode === 'tf' || (mode !== undefined && channels === 3)) return mode;
    if (!this.preprocessingFunctionOnBatch) return null;
    return this.pixelAffine(channels);
  }

  /**
   * With preprocessingFunctionOnBatch: whether the function maps every pixel's channel vector v
   * to A·v + b, found by calling it once on probe pixels (zero, one per channel, and random ones
   * for the check). All of Keras's `preprocess_input` modes are such maps; applying one in JS
   * skips tfjs's broadcasting kernels, the slowest part of the pipeline on wasm. null when the
   * function is anything else (it is then called on the batch).
   */
  private pixelAffine(channels: number): PixelAffine | null {
    const cached = this.affineCache.get(channels);
    if (cached !== undefined) return cached;
    const fn = this.preprocessingFunction as unknown as (t: tf.Tensor) => tf.Tensor;
    const random = new Random(12345);
    const checks = 4;
    const probe = new Float32Array((1 + channels + checks) * channels);
    for (let k = 0; k < channels; k++) probe[(1 + k) * channels + k] = 100;
    for (let i = (1 + channels) * channels; i < probe.length; i++) {
      probe[i] = Math.round(random.uniform(0, 255));
    }
    let out: Float32Array | null = null;
    try {
      const values = tf.tidy(() => {
        const y = fn(tf.tensor4d(probe, [1, 1, 1 + channels + checks, channels], 'float32'));
        // An empty array marks a function that does not keep the shape.
        return y instanceof tf.Tensor && y.size === probe.length
          ? Float32Array.from(y.dataSync() as ArrayLike<number>)
          : new Float32Array(0);
      }) as Float32Array;
      out = values.length === probe.length ? values : null;
    } catch {
      out = null;
    }
    let result: PixelAffine | null = null;
    if (out) {
      const b = Float64Array.from(out.subarray(0, channels));
      const a = new Float64Array(channels * channels); // a[o * channels + k]
      for (let k = 0; k < channels; k++) {
        for (let o = 0; o < channels; o++) {
          a[o * channels + k] = (out[(1 + k) * channels + o]! - b[o]!) / 100;
        }
      }
      result = { a, b };
      for (let p = 1 + channels; p < 1 + channels + checks && result; p++) {
        for (let o = 0; o < channels; o++) {
          let expected = b[o]!;
          for (let k = 0; k < channels; k++)
            expected += a[o * channels + k]! * probe[p * channels + k]!;
          const actual = out[p * channels + o]!;
          if (!(Math.abs(actual - expected) <= 1e-4 * (1 + Math.abs(actual)))) result = null;
        }
      }
    }
    this.affineCache.set(channels, result);
    return result;
  }

  /**
   * Keras's `fit`: computes the statistics that featurewiseCenter, featurewiseStdNormalization
   * and zcaWhitening use, from sample images `x` [n, height, width, channels] (after `rescale`,
   * and on augmented copies with `augment`). Keras's arithmetic: population std, ZCA as
   * U·diag(1/sqrt(S + zcaEpsilon))·Uᵀ of the covariance of the centred data.
   * @example
   * const gen = new ImageDataGenerator({ featurewiseCenter: true, featurewiseStdNormalization: true });
   * gen.fit(xTrain);
   * const it = gen.flow(xTrain, yTrain, { batchSize: 32 });
   */
  fit(x: tf.Tensor4D, options: GeneratorFitOptions = {}): void {
    if (!(x instanceof tf.Tensor) || x.rank !== 4) {
      throw invalidParameterError(
        'x',
        'a rank-4 tensor [samples, height, width, channels]',
        x instanceof tf.Tensor ? `tensor of shape [${x.shape}]` : x,
      );
    }
    if (options === null || typeof options !== 'object') {
      throw invalidParameterError('options', 'an options object', options);
    }
    for (const key of Object.keys(options)) {
      if (!['augment', 'rounds', 'seed'].includes(key)) {
        throw unknownNameError('fit option', key, ['augment', 'rounds', 'seed']);
      }
    }
    const augment = checkBoolean('augment', options.augment ?? false);
    const rounds = checkPositiveInteger('rounds', options.rounds ?? 1);
    if (options.seed !== undefined && !Number.isInteger(options.seed)) {
      throw invalidParameterError('seed', 'integer', options.seed);
    }
    const [n, height, width, channels] = x.shape;
    const shape: [number, number, number] = [height, width, channels];
    const size = height * width * channels;
    if (![1, 3, 4].includes(channels)) {
      warn(
        `fit expects images with 1, 3 or 4 channels (grayscale, RGB, RGBA) but x has ${channels} (shape [${x.shape}]).`,
      );
    }
    if (this.zcaWhitening && size > ZCA_MAX_FEATURES) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `zcaWhitening on ${height}x${width}x${channels} images needs a ${size}x${size} matrix; xfer allows at most ${ZCA_MAX_FEATURES} features (e.g. 48x48x3). Resize the images or leave zcaWhitening off.`,
        { shape: x.shape },
      );
    }
    let data = new Float32Array(x.dataSync() as Float32Array);
    if (this.rescale !== null) {
      const r = Math.fround(this.rescale);
      for (let i = 0; i < data.length; i++) data[i] = data[i]! * r;
    }
    let samples = n;
    if (augment) {
      const rng = options.seed === undefined ? this.random : new Random(options.seed);
      const augmented = new Float32Array(rounds * data.length);
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < n; i++) {
          const image = data.slice(i * size, (i + 1) * size);
          const out = this.transformPixels(
            image,
            height,
            width,
            channels,
            this.drawTransform(shape, rng),
          );
          augmented.set(out, (r * n + i) * size);
        }
      }
      data = augmented;
      samples = rounds * n;
    }
    if (this.featurewiseCenter) {
      const mean = channelMean(data, channels);
      this.mean = mean;
      for (let i = 0; i < data.length; i++) data[i] = data[i]! - mean[i % channels]!;
    }
    if (this.featurewiseStdNormalization) {
      const std = channelStd(data, channels);
      this.std = std;
      const divisors = Float32Array.from(std, (v) => v + 1e-6);
      for (let i = 0; i < data.length; i++) data[i] = data[i]! / divisors[i % channels]!;
    }
    if (this.zcaWhitening) {
      this.principalComponents = zcaMatrix(data, samples, size, this.zcaEpsilon);
    }
  }

  /**
   * Keras's `flow`: batches from image tensors `x` [n, height, width, channels] and labels `y`
   * (any shape with n rows, or null), augmented and standardized like `flowFromDirectory`.
   * With `validationSplit` and `subset`, the first fraction of x is the validation subset.
   * @example
   * const it = gen.flow(xTrain, yTrain, { batchSize: 32, seed: 1 });
   * const { x, y } = await it.getBatch(0);
   */
  flow(x: tf.Tensor4D, y: tf.Tensor | null = null, options: FlowOptions = {}): ArrayIterator {
    return new ArrayIterator(x, y, this, options);
  }

  /**
   * Keras's `flow_from_directory`: one sub-folder per class under `directory`, batches of
   * resized, augmented, standardized images with labels per `classMode`. Prints Keras's
   * "Found N images belonging to K classes." Unreadable images are skipped with one warning.
   * @example
   * const it = await gen.flowFromDirectory('data/train', { targetSize: [224, 224], batchSize: 100, classMode: 'binary' });
   * const { x, y } = await it.getBatch(0);
   */
  flowFromDirectory(
    directory: string,
    options: FlowFromDirectoryOptions = {},
  ): Promise<DirectoryIterator> {
    return DirectoryIterator.create(directory, this, options);
  }
}

function checkImageShape(name: string, shape: unknown): void {
  if (
    !Array.isArray(shape) ||
    shape.length !== 3 ||
    !shape.every((v) => typeof v === 'number' && Number.isInteger(v) && v > 0)
  ) {
    throw invalidParameterError(name, '[height, width, channels] of positive integers', shape);
  }
}

/**
 * The values of the tensor `fn` makes, as float32, read once its intermediates are freed. (tf.tidy
 * must not return a typed array: it walks every element of one looking for tensors, 35 ms for a
 * single 224x224 image.)
 */
function tidyFloats(fn: () => tf.Tensor): Float32Array {
  const y = tf.tidy(fn);
  try {
    const values = y.dataSync();
    return values instanceof Float32Array ? values : new Float32Array(values);
  } finally {
    y.dispose();
  }
}

function checkPreprocessed(y: unknown, shape: number[]): asserts y is tf.Tensor {
  if (!(y instanceof tf.Tensor) || y.shape.join() !== shape.join()) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `preprocessingFunction must return a tensor of the input's shape [${shape}] but returned ${y instanceof tf.Tensor ? `shape [${y.shape}]` : describeValue(y)}.`,
    );
  }
}

function checkImageTensor(x: unknown): asserts x is tf.Tensor3D {
  if (!(x instanceof tf.Tensor) || x.rank !== 3) {
    throw invalidParameterError(
      'x',
      'a rank-3 tensor [height, width, channels]',
      x instanceof tf.Tensor ? `tensor of shape [${x.shape}]` : x,
    );
  }
}
