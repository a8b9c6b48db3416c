/**
 * For tests that compare the onnxruntime-accelerated paths with plain tfjs: weights that make a
 * difference visible, and the tfjs reference run.
 */
import * as tf from '../../src/engine/tf.js';
import { Random } from '../../src/util/random.js';

/**
 * Weights at the scale of trained ones (He-normal kernels, BN statistics away from 0 and 1), so
 * outputs are O(1) and a wrong transpose, pad or fold shows up (tfjs's zero biases, unit BN
 * statistics and shrinking activations would hide them).
 */
export function trainedScaleWeights(
  model: tf.LayersModel,
  seed: number,
  gamma: [number, number] = [0.6, 1.4],
): void {
  const random = new Random(seed);
  const uniform = (n: number, lo: number, hi: number) =>
    Float32Array.from({ length: n }, () => lo + (hi - lo) * random.next());
  const values = model.weights.map((w) => {
    const size = w.shape.reduce((a: number, b) => a * (b as number), 1) as number;
    const name = w.originalName ?? w.name;
    if (w.dtype !== 'float32') return tf.clone(w.read());
    let data: Float32Array;
    if (/kernel$/.test(name)) {
      const fanIn = name.endsWith('depthwise_kernel')
        ? (w.shape[0] as number) * (w.shape[1] as number)
        : size / (w.shape[w.shape.length - 1] as number);
      const scale = Math.sqrt(3 * (2 / fanIn));
      data = uniform(size, -scale, scale);
    } else if (/gamma$/.test(name)) data = uniform(size, gamma[0], gamma[1]);
    else if (/variance$/.test(name)) data = uniform(size, 0.4, 1.6);
    else data = uniform(size, -0.2, 0.2); // bias, beta, moving_mean
    return tf.tensor(data, w.shape as number[]);
  });
  model.setWeights(values);
  tf.dispose(values);
}

/** Runs `fn` with onnxruntime acceleration off (XFER_ACCELERATE=0): the plain tfjs reference. */
export async function withoutAcceleration<T>(fn: () => Promise<T>): Promise<T> {
  process.env.XFER_ACCELERATE = '0';
  try {
    return await fn();
  } finally {
    delete process.env.XFER_ACCELERATE;
  }
}
