/**
 * Small pieces the Keras Application builders share beyond `build.ts`: Keras's generated layer
 * names, layers with Keras's default initializers, and the usual classifier top.
 */
import * as tf from '../engine/tf.js';
import { apply, type ResolvedOptions } from './build.js';

/**
 * The names Keras gives layers built without one. Keras 3 names such a layer after its class in
 * snake case, numbered per class in creation order (`conv2d`, `conv2d_1`, `conv2d_2`...: its
 * `naming.uniquify`). The counters are global to a Python session, so these are the names of a
 * model built first in a fresh session, the names Keras's own summaries show. Weight files do not
 * depend on them (Keras loads `.h5` weights by layer order), but `getLayer` and summaries do.
 */
export class KerasNames {
  private readonly counts = new Map<string, number>();

  /** The next Keras name for a layer of the class whose snake-case name is `prefix`. */
  next(prefix: string): string {
    const count = this.counts.get(prefix) ?? 0;
    this.counts.set(prefix, count + 1);
    return count === 0 ? prefix : `${prefix}_${count}`;
  }
}

/**
 * A Conv2D with Keras's default kernel initializer, glorot uniform (tfjs defaults to glorot
 * normal, whose truncated normal sampling also makes large models several times slower to build).
 */
export function conv2d(args: Parameters<typeof tf.layers.conv2d>[0]): tf.layers.Layer {
  return tf.layers.conv2d({ kernelInitializer: 'glorotUniform', ...args });
}

/**
 * The classifier top of ResNet, DenseNet, InceptionV3 and Xception: global average pooling
 * (`avg_pool`) and a dense layer (`predictions`) with Keras's default initializer.
 */
export function classifierTop(x: tf.SymbolicTensor, options: ResolvedOptions): tf.SymbolicTensor {
  x = apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x);
  const dense = tf.layers.dense({
    units: options.classes,
    activation: options.classifierActivation,
    kernelInitializer: 'glorotUniform',
    name: 'predictions',
  });
  return apply(dense, x);
}
