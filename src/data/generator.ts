/**
 * Keras's `ImageDataGenerator`: random augmentation (`get_random_transform`, `apply_transform`,
 * `random_transform`), normalization (`standardize`) and `flow_from_directory`. Parameters are
 * drawn from Keras's distributions in Keras's order; the generator is xfer's seeded `Random`
 * (mulberry32), so a seed reproduces xfer's draws, not numpy's.
 */
import * as tf from '../engine/tf.js';
import { describeValue, invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { Random } from '../util/random.js';
import { checkBoolean, checkNonNegativeNumber, checkOneOf } from '../util/validate.js';
import {
  affineTransform,
  brightnessShift,
  channelShift,
  FILL_MODES,
  type FillMode,
  flip,
  kerasAffineMatrix,
} from './affine.js';
import { DirectoryIterator, type FlowFromDirectoryOptions } from './iterator.js';

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
  /** dtype of the batches. Default 'float32'. */
  dtype?: 'float32' | 'int32';
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
  'dtype',
] as const;

/** Keras options xfer does not implement, so that they fail loudly instead of being ignored. */
const UNSUPPORTED_OPTIONS = [
  'featurewiseCenter',
  'samplewiseCenter',
  'featurewiseStdNormalization',
  'samplewiseStdNormalization',
  'zcaWhitening',
  'zcaEpsilon',
  'validationSplit',
  'interpolationOrder',
  'dataFormat',
];

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
  readonly dtype: 'float32' | 'int32';
  /** Draws for calls without a seed. */
  private readonly random = new Random();

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
    this.dtype = checkOneOf('dtype', options.dtype ?? 'float32', ['float32', 'int32'] as const);
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
    const pixels =
      data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
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
    let x = pixels;
    const matrix = kerasAffineMatrix(
      {
        theta: params.theta ?? 0,
        tx: params.tx ?? 0,
        ty: params.ty ?? 0,
        shear: params.shear ?? 0,
        zx: params.zx ?? 1,
        zy: params.zy ?? 1,
      },
      height,
      width,
    );
    if (matrix) x = affineTransform(x, height, width, channels, matrix, this.fillMode, this.cval);
    if (params.channelShiftIntensity != null) x = channelShift(x, params.channelShiftIntensity);
    if (params.flipHorizontal) x = flip(x, height, width, channels, true);
    if (params.flipVertical) x = flip(x, height, width, channels, false);
    if (params.brightness != null) x = brightnessShift(x, channels, params.brightness);
    return x;
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
   * Keras's `standardize` for one image: `preprocessingFunction` first, then `rescale`.
   * @example
   * const ready = gen.standardize(x);
   */
  standardize(x: tf.Tensor3D): tf.Tensor3D {
    checkImageTensor(x);
    return tf.tidy(() => {
      let y = x;
      if (this.preprocessingFunction) {
        y = this.preprocessingFunction(y);
        if (!(y instanceof tf.Tensor) || y.shape.join() !== x.shape.join()) {
          throw new XferError(
            'SHAPE_MISMATCH',
            `preprocessingFunction must return a tensor of the input's shape [${x.shape}] but returned ${y instanceof tf.Tensor ? `shape [${y.shape}]` : describeValue(y)}.`,
          );
        }
      }
      if (this.rescale !== null) y = tf.mul(y, this.rescale);
      if (y.dtype !== 'float32') y = tf.cast(y, 'float32');
      return y === x ? tf.clone(x) : y;
    });
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

function checkImageTensor(x: unknown): asserts x is tf.Tensor3D {
  if (!(x instanceof tf.Tensor) || x.rank !== 3) {
    throw invalidParameterError(
      'x',
      'a rank-3 tensor [height, width, channels]',
      x instanceof tf.Tensor ? `tensor of shape [${x.shape}]` : x,
    );
  }
}
