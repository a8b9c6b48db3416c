/**
 * Keras 3's random augmentation layers (`keras/src/layers/preprocessing/image_preprocessing/`)
 * as tfjs-layers layers: they augment only when called in training (`fit`), and pass their input
 * through unchanged in inference (`predict`, `evaluate`, an exported model), so they can live
 * inside a model. Registered under Keras's class names with Keras's config keys (snake_case in
 * saved files), so models holding them save and load.
 *
 * The transforms are Keras 3's (TF's projective transform, its fill modes, the same parameter
 * ranges); draws come from xfer's seeded generator, so a seed reproduces xfer, not TensorFlow.
 */
import * as tf from '../../engine/tf.js';
import { invalidParameterError } from '../../errors.js';
import { Random } from '../../util/random.js';
import { checkOneOf } from '../../util/validate.js';
import {
  type ProjectiveMatrix,
  projectiveTransform,
  TF_FILL_MODES,
  TF_TRANSFORM_INTERPOLATIONS,
  type TfFillMode,
  type TfTransformInterpolation,
} from './projective.js';

/** A factor as Keras takes it: f means [-f, f] (or [1 - f, 1 + f] for contrast), or [lower, upper]. */
export type Factor = number | [number, number];

interface BaseArgs {
  /** Layer name. Default: Keras's snake_case class name with a counter. */
  name?: string;
  /** Seed of the layer's draws. Default: random. */
  seed?: number | null;
  /** Set by tfjs when the layer is the model's first. */
  inputShape?: number[];
  batchInputShape?: number[];
  dtype?: string;
  trainable?: boolean;
}

type ImageBatch = {
  data: Float32Array;
  batch: number;
  height: number;
  width: number;
  channels: number;
};

function toFactor(name: string, value: unknown, symmetric = true): [number, number] {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return symmetric ? [-Math.abs(value), Math.abs(value)] : [value, value];
  }
  if (
    Array.isArray(value) &&
    value.length === 2 &&
    value.every((v) => typeof v === 'number' && Number.isFinite(v)) &&
    value[0] <= value[1]
  ) {
    return [value[0], value[1]];
  }
  throw invalidParameterError(name, 'a number f (for [-f, f]) or [lower, upper]', value);
}

function checkUnitRange(name: string, range: [number, number]): void {
  if (range[0] < -1 || range[1] > 1) {
    throw invalidParameterError(name, 'fractions within [-1, 1]', range);
  }
}

/** The shared part: seed, training-only call, rank 3 or 4 images. */
abstract class RandomImageLayer extends tf.layers.Layer {
  readonly seed: number | null;
  protected readonly random: Random;

  constructor(args: BaseArgs) {
    super(args as never);
    this.seed = args.seed ?? null;
    this.random = new Random(args.seed ?? undefined);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    if (kwargs?.training !== true) return x;
    return tf.tidy(() => {
      const rank4 = x.rank === 4;
      const shape = rank4 ? x.shape : [1, ...x.shape];
      if (shape.length !== 4) {
        throw invalidParameterError(
          `${this.getClassName()} input`,
          'images [batch, height, width, channels] or [height, width, channels]',
          `shape [${x.shape}]`,
        );
      }
      const [batch, height, width, channels] = shape as [number, number, number, number];
      const data = new Float32Array(x.dataSync() as Float32Array);
      const out = this.augment({ data, batch, height, width, channels });
      return tf.tensor(out, x.shape, 'float32');
    });
  }

  protected abstract augment(images: ImageBatch): Float32Array;

  override getConfig(): tf.serialization.ConfigDict {
    return { seed: this.seed, ...super.getConfig() };
  }
}

/** Applies one projective matrix per image. */
abstract class GeometricLayer extends RandomImageLayer {
  readonly fillMode: TfFillMode;
  readonly fillValue: number;
  readonly interpolation: TfTransformInterpolation;

  constructor(
    args: BaseArgs & {
      fillMode?: TfFillMode;
      fillValue?: number;
      interpolation?: TfTransformInterpolation;
    },
  ) {
    super(args);
    this.fillMode = checkOneOf('fillMode', args.fillMode ?? 'reflect', TF_FILL_MODES);
    this.interpolation = checkOneOf(
      'interpolation',
      args.interpolation ?? 'bilinear',
      TF_TRANSFORM_INTERPOLATIONS,
    );
    const fillValue = args.fillValue ?? 0;
    if (typeof fillValue !== 'number' || !Number.isFinite(fillValue)) {
      throw invalidParameterError('fillValue', 'finite number', fillValue);
    }
    this.fillValue = fillValue;
  }

  protected abstract matrix(height: number, width: number): ProjectiveMatrix;

  protected augment({ data, batch, height, width, channels }: ImageBatch): Float32Array {
    const size = height * width * channels;
    const out = new Float32Array(data.length);
    for (let b = 0; b < batch; b++) {
      const image = data.subarray(b * size, (b + 1) * size);
      out.set(
        projectiveTransform(
          image,
          height,
          width,
          channels,
          this.matrix(height, width),
          this.interpolation,
          this.fillMode,
          this.fillValue,
        ),
        b * size,
      );
    }
    return out;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      fillMode: this.fillMode,
      fillValue: this.fillValue,
      interpolation: this.interpolation,
      ...super.getConfig(),
    };
  }
}

export const FLIP_MODES = ['horizontal', 'vertical', 'horizontal_and_vertical'] as const;
export type FlipMode = (typeof FLIP_MODES)[number];

/**
 * Keras's `RandomFlip`: in training, flips each image left-right and/or upside down with
 * probability 1/2 per direction. Identity in inference.
 * @example
 * const aug = new RandomFlip({ mode: 'horizontal', seed: 1 });
 */
export class RandomFlip extends RandomImageLayer {
  static className = 'RandomFlip';
  readonly mode: FlipMode;

  constructor(args: BaseArgs & { mode?: FlipMode } = {}) {
    super(args);
    this.mode = checkOneOf('mode', args.mode ?? 'horizontal_and_vertical', FLIP_MODES);
  }

  protected augment({ data, batch, height, width, channels }: ImageBatch): Float32Array {
    const size = height * width * channels;
    const out = data.slice();
    for (let b = 0; b < batch; b++) {
      const horizontal = this.mode !== 'vertical' && this.random.next() < 0.5;
      const vertical = this.mode !== 'horizontal' && this.random.next() < 0.5;
      if (!horizontal && !vertical) continue;
      for (let y = 0; y < height; y++) {
        const sy = vertical ? height - 1 - y : y;
        for (let x = 0; x < width; x++) {
          const sx = horizontal ? width - 1 - x : x;
          const s = b * size + (sy * width + sx) * channels;
          const o = b * size + (y * width + x) * channels;
          for (let k = 0; k < channels; k++) out[o + k] = data[s + k]!;
        }
      }
    }
    return out;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { mode: this.mode, ...super.getConfig() };
  }
}

/**
 * Keras's `RandomRotation`: in training, rotates each image by an angle drawn from
 * [lower, upper] x 2π (factor 0.1 is up to ±36°), about the centre; positive turns
 * counter-clockwise. Identity in inference.
 * @example
 * const aug = new RandomRotation({ factor: 0.1, fillMode: 'reflect' });
 */
export class RandomRotation extends GeometricLayer {
  static className = 'RandomRotation';
  readonly factor: [number, number];

  constructor(
    args: BaseArgs & {
      factor: Factor;
      fillMode?: TfFillMode;
      fillValue?: number;
      interpolation?: TfTransformInterpolation;
    },
  ) {
    super(args);
    this.factor = toFactor('factor', args?.factor);
  }

  protected matrix(height: number, width: number): ProjectiveMatrix {
    const angle = this.random.uniform(this.factor[0] * 2 * Math.PI, this.factor[1] * 2 * Math.PI);
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const xOffset = (width - 1 - (cos * (width - 1) - sin * (height - 1))) / 2;
    const yOffset = (height - 1 - (sin * (width - 1) + cos * (height - 1))) / 2;
    return [cos, -sin, xOffset, sin, cos, yOffset, 0, 0];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { factor: this.factor, ...super.getConfig() };
  }
}

/**
 * Keras's `RandomZoom`: in training, zooms each image about its centre by factors drawn from
 * [1 + lower, 1 + upper] per axis; positive values zoom out. Without widthFactor, both axes use
 * the height draw (aspect kept). Identity in inference.
 * @example
 * const aug = new RandomZoom({ heightFactor: 0.2 });
 */
export class RandomZoom extends GeometricLayer {
  static className = 'RandomZoom';
  readonly heightFactor: [number, number];
  readonly widthFactor: [number, number] | null;

  constructor(
    args: BaseArgs & {
      heightFactor: Factor;
      widthFactor?: Factor | null;
      fillMode?: TfFillMode;
      fillValue?: number;
      interpolation?: TfTransformInterpolation;
    },
  ) {
    super(args);
    this.heightFactor = toFactor('heightFactor', args?.heightFactor);
    this.widthFactor = args.widthFactor == null ? null : toFactor('widthFactor', args.widthFactor);
    if (this.heightFactor[0] < -1 || (this.widthFactor && this.widthFactor[0] < -1)) {
      throw invalidParameterError('heightFactor / widthFactor', 'lower bounds >= -1', [
        this.heightFactor,
        this.widthFactor,
      ]);
    }
  }

  protected matrix(height: number, width: number): ProjectiveMatrix {
    const zy = this.random.uniform(1 + this.heightFactor[0], 1 + this.heightFactor[1]);
    const zx = this.widthFactor
      ? this.random.uniform(1 + this.widthFactor[0], 1 + this.widthFactor[1])
      : zy;
    return [zx, 0, ((width - 1) / 2) * (1 - zx), 0, zy, ((height - 1) / 2) * (1 - zy), 0, 0];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { heightFactor: this.heightFactor, widthFactor: this.widthFactor, ...super.getConfig() };
  }
}

/**
 * Keras's `RandomTranslation`: in training, shifts each image by fractions of its height and
 * width drawn from the factors (positive moves content down / right). Identity in inference.
 * @example
 * const aug = new RandomTranslation({ heightFactor: 0.1, widthFactor: 0.1 });
 */
export class RandomTranslation extends GeometricLayer {
  static className = 'RandomTranslation';
  readonly heightFactor: [number, number];
  readonly widthFactor: [number, number];

  constructor(
    args: BaseArgs & {
      heightFactor: Factor;
      widthFactor: Factor;
      fillMode?: TfFillMode;
      fillValue?: number;
      interpolation?: TfTransformInterpolation;
    },
  ) {
    super(args);
    this.heightFactor = toFactor('heightFactor', args?.heightFactor);
    this.widthFactor = toFactor('widthFactor', args?.widthFactor);
    checkUnitRange('heightFactor', this.heightFactor);
    checkUnitRange('widthFactor', this.widthFactor);
  }

  protected matrix(height: number, width: number): ProjectiveMatrix {
    const dy = this.random.uniform(this.heightFactor[0], this.heightFactor[1]) * height;
    const dx = this.random.uniform(this.widthFactor[0], this.widthFactor[1]) * width;
    return [1, 0, -dx, 0, 1, -dy, 0, 0];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { heightFactor: this.heightFactor, widthFactor: this.widthFactor, ...super.getConfig() };
  }
}

function checkValueRange(value: unknown): [number, number] {
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v) => typeof v === 'number' && Number.isFinite(v)) ||
    value[0] >= value[1]
  ) {
    throw invalidParameterError('valueRange', '[low, high] with low < high', value);
  }
  return [value[0], value[1]];
}

/**
 * Keras's `RandomContrast`: in training, per image, (x - mean) * c + mean with c drawn from
 * [1 - lower, 1 + upper] and the mean per channel over the image, clipped to valueRange.
 * Identity in inference.
 * @example
 * const aug = new RandomContrast({ factor: 0.2 });
 */
export class RandomContrast extends RandomImageLayer {
  static className = 'RandomContrast';
  readonly factor: [number, number];
  readonly valueRange: [number, number];

  constructor(args: BaseArgs & { factor: Factor; valueRange?: [number, number] }) {
    super(args);
    const factor = toFactor('factor', args?.factor, false);
    if (factor[0] < 0 || factor[1] < 0 || factor[0] > 1) {
      throw invalidParameterError('factor', 'values in [0, 1] (upper may exceed 1)', args.factor);
    }
    this.factor = factor;
    this.valueRange = checkValueRange(args.valueRange ?? [0, 255]);
  }

  protected augment({ data, batch, height, width, channels }: ImageBatch): Float32Array {
    const pixels = height * width;
    const size = pixels * channels;
    const out = new Float32Array(data.length);
    const [low, high] = this.valueRange;
    for (let b = 0; b < batch; b++) {
      const c = this.random.uniform(1 - this.factor[0], 1 + this.factor[1]);
      const means = new Float64Array(channels);
      for (let i = 0; i < size; i++) means[i % channels]! += data[b * size + i]!;
      for (let k = 0; k < channels; k++) means[k]! /= pixels;
      for (let i = 0; i < size; i++) {
        const mean = means[i % channels]!;
        const v = (data[b * size + i]! - mean) * c + mean;
        out[b * size + i] = Math.min(high, Math.max(low, v));
      }
    }
    return out;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { factor: this.factor, valueRange: this.valueRange, ...super.getConfig() };
  }
}

/**
 * Keras's `RandomBrightness`: in training, adds to each image one delta drawn from
 * [lower, upper] x (valueRange width), then clips to valueRange. Identity in inference.
 * @example
 * const aug = new RandomBrightness({ factor: 0.2 }); // ±51 on 0..255 images
 */
export class RandomBrightness extends RandomImageLayer {
  static className = 'RandomBrightness';
  readonly factor: [number, number];
  readonly valueRange: [number, number];

  constructor(args: BaseArgs & { factor: Factor; valueRange?: [number, number] }) {
    super(args);
    this.factor = toFactor('factor', args?.factor);
    checkUnitRange('factor', this.factor);
    this.valueRange = checkValueRange(args.valueRange ?? [0, 255]);
  }

  protected augment({ data, batch, height, width, channels }: ImageBatch): Float32Array {
    const size = height * width * channels;
    const out = new Float32Array(data.length);
    const [low, high] = this.valueRange;
    for (let b = 0; b < batch; b++) {
      const delta = this.random.uniform(this.factor[0], this.factor[1]) * (high - low);
      for (let i = b * size; i < (b + 1) * size; i++) {
        out[i] = Math.min(high, Math.max(low, data[i]! + delta));
      }
    }
    return out;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { factor: this.factor, valueRange: this.valueRange, ...super.getConfig() };
  }
}

for (const layer of [
  RandomFlip,
  RandomRotation,
  RandomZoom,
  RandomTranslation,
  RandomContrast,
  RandomBrightness,
]) {
  tf.serialization.registerClass(layer as never);
}
