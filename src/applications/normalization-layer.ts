/**
 * Keras's `Normalization` preprocessing layer, which tfjs-layers lacks: `(x - mean) /
 * sqrt(variance)` per channel. EfficientNet puts one inside the model, built without values, so it
 * owns Keras's three non-trainable weights `mean`, `variance` and `count` (zeros, ones and 0: an
 * identity until ImageNet weights are loaded), which Keras counts among the model's parameters.
 * Registered under Keras's class name with Keras's config keys, so saved models load back.
 */
import * as tf from '../engine/tf.js';

/** Keras's `backend.epsilon()`, the floor of the standard deviation. */
const EPSILON = 1e-7;

export interface NormalizationArgs {
  /** The feature axis, Keras's `axis`; only the last axis is supported. Default -1. */
  axis?: number;
  /** Per-channel mean; with `variance`, fixed values instead of weights. Default: weights. */
  mean?: number[] | null;
  /** Per-channel variance, given together with `mean`. */
  variance?: number[] | null;
  /** Undo the normalization instead (Keras's `invert`). Default false. */
  invert?: boolean;
  name?: string;
  trainable?: boolean;
}

export class Normalization extends tf.layers.Layer {
  static className = 'Normalization';
  private readonly axis: number;
  private readonly fixedMean: number[] | null;
  private readonly fixedVariance: number[] | null;
  private readonly invert: boolean;
  private meanWeight: tf.LayerVariable | null = null;
  private varianceWeight: tf.LayerVariable | null = null;

  constructor(args: NormalizationArgs = {}) {
    super(args);
    this.axis = args.axis ?? -1;
    this.fixedMean = args.mean ?? null;
    this.fixedVariance = args.variance ?? null;
    this.invert = args.invert ?? false;
    if ((this.fixedMean === null) !== (this.fixedVariance === null)) {
      throw new Error('Normalization: mean and variance must be given together.');
    }
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const rank = shape.length;
    const axis = this.axis < 0 ? this.axis + rank : this.axis;
    const channels = shape[axis];
    if (axis !== rank - 1 || channels == null) {
      throw new Error(
        `Normalization supports only a known last axis, but received axis ${this.axis} for input shape [${shape.join(', ')}].`,
      );
    }
    if (this.fixedMean === null) {
      this.meanWeight = this.addWeight(
        'mean',
        [channels],
        'float32',
        tf.initializers.zeros(),
        undefined,
        false,
      );
      this.varianceWeight = this.addWeight(
        'variance',
        [channels],
        'float32',
        tf.initializers.ones(),
        undefined,
        false,
      );
      // Keras keeps the count of adapted samples for older saved models.
      this.addWeight('count', [], 'int32', tf.initializers.zeros(), undefined, false);
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = tf.cast(Array.isArray(inputs) ? inputs[0]! : inputs, 'float32');
      const mean = this.meanWeight ? this.meanWeight.read() : tf.tensor1d(this.fixedMean!);
      const variance = this.varianceWeight
        ? this.varianceWeight.read()
        : tf.tensor1d(this.fixedVariance!);
      const std = tf.maximum(tf.sqrt(variance), EPSILON);
      return this.invert ? tf.add(tf.mul(x, std), mean) : tf.div(tf.sub(x, mean), std);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      axis: this.axis,
      mean: this.fixedMean,
      variance: this.fixedVariance,
      invert: this.invert,
    };
  }
}

tf.serialization.registerClass(Normalization);
