/**
 * Keras 3's `Resizing` and `CenterCrop` layers, active in training and inference alike. tfjs 4.22
 * ships both names, but its `Resizing` resizes with aligned corners (TF's and Keras's default is
 * half-pixel centres), ignores cropToAspectRatio and reports the wrong output shape, and its
 * `CenterCrop` crops through `cropAndResize`, which interpolates between pixels instead of
 * slicing. These replace them under the same registered names (Keras's).
 */
import * as tf from '../../engine/tf.js';
import { invalidParameterError } from '../../errors.js';
import { checkBoolean, checkOneOf, checkPositiveInteger } from '../../util/validate.js';
import { aspectCropBox } from '../resize.js';
import {
  TF_INTERPOLATIONS,
  type TfInterpolation,
  tfResize,
  tfResizeWithPad,
} from '../tf-resize.js';

interface LayerArgs {
  name?: string;
  inputShape?: number[];
  batchInputShape?: number[];
  dtype?: string;
  trainable?: boolean;
}

/** Runs `fn` on each [height, width, channels] image of a rank-3 or rank-4 tensor. */
function mapImages(
  x: tf.Tensor,
  outHeight: number,
  outWidth: number,
  fn: (data: Float32Array, height: number, width: number, channels: number) => Float32Array,
  layer: string,
): tf.Tensor {
  const shape = x.rank === 4 ? x.shape : [1, ...x.shape];
  if (shape.length !== 4) {
    throw invalidParameterError(
      `${layer} input`,
      'images [batch, height, width, channels] or [height, width, channels]',
      `shape [${x.shape}]`,
    );
  }
  const [batch, height, width, channels] = shape as [number, number, number, number];
  const data = new Float32Array(x.dataSync() as Float32Array);
  const size = height * width * channels;
  const outSize = outHeight * outWidth * channels;
  const out = new Float32Array(batch * outSize);
  for (let b = 0; b < batch; b++) {
    out.set(fn(data.subarray(b * size, (b + 1) * size), height, width, channels), b * outSize);
  }
  const outShape =
    x.rank === 4 ? [batch, outHeight, outWidth, channels] : [outHeight, outWidth, channels];
  return tf.tensor(out, outShape, 'float32');
}

function outputShape(inputShape: tf.Shape | tf.Shape[], height: number, width: number): tf.Shape {
  const shape = [...((Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape)];
  shape[shape.length - 3] = height;
  shape[shape.length - 2] = width;
  return shape;
}

/**
 * Keras's `Resizing`: resizes images to height x width with `tf.image.resize` (half-pixel
 * centres, no antialias), optionally cropping (cropToAspectRatio) or padding (padToAspectRatio)
 * to the target aspect ratio first.
 * @example
 * const resize = new Resizing({ height: 224, width: 224, cropToAspectRatio: true });
 */
export class Resizing extends tf.layers.Layer {
  static className = 'Resizing';
  readonly height: number;
  readonly width: number;
  readonly interpolation: TfInterpolation;
  readonly cropToAspectRatio: boolean;
  readonly padToAspectRatio: boolean;

  constructor(
    args: LayerArgs & {
      height: number;
      width: number;
      interpolation?: TfInterpolation;
      cropToAspectRatio?: boolean;
      padToAspectRatio?: boolean;
    },
  ) {
    super(args as never);
    this.height = checkPositiveInteger('height', args?.height);
    this.width = checkPositiveInteger('width', args.width);
    this.interpolation = checkOneOf(
      'interpolation',
      args.interpolation ?? 'bilinear',
      TF_INTERPOLATIONS,
    );
    this.cropToAspectRatio = checkBoolean('cropToAspectRatio', args.cropToAspectRatio ?? false);
    this.padToAspectRatio = checkBoolean('padToAspectRatio', args.padToAspectRatio ?? false);
    if (this.cropToAspectRatio && this.padToAspectRatio) {
      throw invalidParameterError(
        'cropToAspectRatio / padToAspectRatio',
        'at most one of them true',
        'both true',
      );
    }
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return outputShape(inputShape, this.height, this.width);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return mapImages(
      x,
      this.height,
      this.width,
      (data, height, width, channels) => {
        if (this.padToAspectRatio) {
          return tfResizeWithPad(
            data,
            width,
            height,
            channels,
            this.width,
            this.height,
            this.interpolation,
          );
        }
        const box = this.cropToAspectRatio
          ? aspectCropBox(width, height, this.width, this.height)
          : { left: 0, top: 0, width, height };
        return tfResize(data, width, channels, box, this.width, this.height, this.interpolation);
      },
      'Resizing',
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      height: this.height,
      width: this.width,
      interpolation: this.interpolation,
      cropToAspectRatio: this.cropToAspectRatio,
      padToAspectRatio: this.padToAspectRatio,
      ...super.getConfig(),
    };
  }
}

/**
 * Keras's `CenterCrop`: the central height x width pixels (start int((size - target) / 2)); an
 * image smaller than the target on either side is resized to it instead, after a centre crop to
 * the target aspect ratio (Keras's smart_resize).
 * @example
 * const crop = new CenterCrop({ height: 200, width: 200 });
 */
export class CenterCrop extends tf.layers.Layer {
  static className = 'CenterCrop';
  readonly height: number;
  readonly width: number;

  constructor(args: LayerArgs & { height: number; width: number }) {
    super(args as never);
    this.height = checkPositiveInteger('height', args?.height);
    this.width = checkPositiveInteger('width', args.width);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return outputShape(inputShape, this.height, this.width);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return mapImages(
      x,
      this.height,
      this.width,
      (data, height, width, channels) => {
        const hDiff = height - this.height;
        const wDiff = width - this.width;
        const box =
          hDiff < 0 || wDiff < 0
            ? aspectCropBox(width, height, this.width, this.height)
            : {
                left: Math.trunc(wDiff / 2),
                top: Math.trunc(hDiff / 2),
                width: this.width,
                height: this.height,
              };
        return tfResize(data, width, channels, box, this.width, this.height, 'bilinear');
      },
      'CenterCrop',
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { height: this.height, width: this.width, ...super.getConfig() };
  }
}

tf.serialization.registerClass(Resizing as never);
tf.serialization.registerClass(CenterCrop as never);
