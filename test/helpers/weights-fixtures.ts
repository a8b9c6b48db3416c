/**
 * Fixtures for the weights tests: Keras-format HDF5 files made outside xfer's writer, the numbers
 * in them, and a small model with every layer kind whose weight order matters.
 */

import { promises as fsp } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import h5wasm, { type Group } from 'h5wasm/node';
import * as tf from '../../src/engine/tf.js';
import { Random } from '../../src/util/random.js';

/**
 * The model both h5py fixtures hold, as Keras names it: Input(3) -> Dense(2) 'dense' ->
 * BatchNormalization 'batch_normalization' -> Dense(1) 'dense_1'. Dataset names and order are
 * Keras 2's (`dense/kernel:0`; gamma, beta, moving_mean, moving_variance).
 */
export const KERAS_LAYERS: {
  name: string;
  weights: { name: string; shape: number[]; values: number[] }[];
}[] = [
  { name: 'input_1', weights: [] },
  {
    name: 'dense',
    weights: [
      { name: 'dense/kernel:0', shape: [3, 2], values: [0.5, -1.0, 0.25, 2.0, -0.75, 0.125] },
      { name: 'dense/bias:0', shape: [2], values: [0.1, -0.2] },
    ],
  },
  {
    name: 'batch_normalization',
    weights: [
      { name: 'batch_normalization/gamma:0', shape: [2], values: [1.5, 0.5] },
      { name: 'batch_normalization/beta:0', shape: [2], values: [0.25, -0.5] },
      { name: 'batch_normalization/moving_mean:0', shape: [2], values: [0.2, -0.4] },
      { name: 'batch_normalization/moving_variance:0', shape: [2], values: [4.0, 0.25] },
    ],
  },
  {
    name: 'dense_1',
    weights: [
      { name: 'dense_1/kernel:0', shape: [2, 1], values: [2.0, -3.0] },
      { name: 'dense_1/bias:0', shape: [1], values: [0.5] },
    ],
  },
];

/** The fixture model's output for `x`, computed by hand (float64) from the numbers above. */
export function kerasFixtureOutput(x: readonly number[]): number {
  const [, dense, bn, dense1] = KERAS_LAYERS.map((l) => l.weights.map((w) => w.values));
  const [kernel, bias] = dense!;
  const hidden = [0, 1].map((j) =>
    x.reduce((sum, xi, i) => sum + xi * kernel![i * 2 + j]!, bias![j]!),
  );
  const [gamma, beta, mean, variance] = bn!;
  const normed = hidden.map(
    (h, j) => (gamma![j]! * (h - mean![j]!)) / Math.sqrt(variance![j]! + 1e-3) + beta![j]!,
  );
  const [kernel1, bias1] = dense1!;
  return normed[0]! * kernel1![0]! + normed[1]! * kernel1![1]! + bias1![0]!;
}

/** A tfjs model of the fixture's architecture, with tfjs's default layer names. */
export function kerasFixtureModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [3], units: 2 }),
      tf.layers.batchNormalization({}),
      tf.layers.dense({ units: 1 }),
    ],
  });
}

/*
 * Made with h5py 3.7 (Debian's python3-h5py) by the same calls Keras 2's save_weights_to_hdf5_group
 * makes (`attrs['layer_names'] = [b'input_1', ...]`, `attrs['backend'] = b'tensorflow'`,
 * `create_dataset('dense/kernel:0', ...)`): h5py 3 stores those lists as variable-length strings,
 * and `[]` as an empty float64 array. gzip + base64 of a 17 kB file.
 */
const H5PY3_SAVE_WEIGHTS = [
  'H4sIAAAAAAACA+1bS1MTQRCeXRJYHkmFwioQSo0Hq1ALDIplSlRWHpqDpSn14C0suJIUZEMlEdCLHvHm0Z/AT+AEHDlAFUeP',
  'HvkJ3nB2t3szO2STgCnl0V9V0pmZnkc63T29PZNvqalnkY7+DmZD01iIxZiIQ0B60l/G9hmgCtA1oOsq1oedtj6oj8H48Ra3',
  'rEPHt6+np23uQwneQmCABCNcRKSmn6Zt+g7KSaA7qp9v1ijPZTNWoZg3FnOfjXKuYDn1702rZCLNjLCctfSxzCnqbTxg3m7Q',
  'V1mvu6BG4Z8uceVcND6ZxYxl5M2SU39ZYU7PmGcbmsuvuKUQjIe0rcLi1IWFsm0qPUJZkfhVZz06tGl8PRqXw9yCab0PXgfM',
  '2yGME3bGSUF71BlnwSwapcyyWSy5kqw3XqswXqtT31Ld/ttAnqwx+/81wITZCBfd/tFed1obs39F8huNwrN/MNT1Vtn+I479',
  'r5i5+Wy54gCOa/8DgnLbNtkvlNv567pQtk3nhlDWnDkUn53hulOX3XJ2oPr3ez756oXCYKGCnHrqyFMV/ZbgV2Fbd/2X4HdD',
  'Ej/637DohzjKnL9Q/LBYWBH8iUDvDo/cGx6pjHM9eJ138oXlnDWfyZuG9RDjBvQfN+r3WzaKOcOaM52+7cDfX6PfrFk2cKIO',
  '8XcN4J838nns0MlQrwS53ZnNGSWXAeujvnbunS1z0eaIVGvPjHgjRD3/62+vjODid4R8DYFAIBAIBAKBQCCcR7x5+WpK4U/n',
  '+Fw8E/LnAeS8B+Zdvl7z8yVuuzQ95NJBqN+X+H7cd+nGA+gH9YO6ny8N5aWJsyHHevnL5FW/XAgXC3L+Ukf7kvJymBPCXJKc',
  'w6qWmxLtpq+qfSuefe+0+fnr5QcJKC/3HBMFp4CkMZ+L+VCkLbzdbumOX4PcZ5z1aqz3C7SH+S9it6uq6gygwXgtCrpY+aRj',
  '7VTuG95pcR3Hht9m8EptPu+c6GZtPpwufuus61X187GdIf+vHpTfTw/DPpmoPV4iGaRF2+P8jb++PuF0a2/3xZO93d1NXtah',
  'zm7bgs+8Tuefmc3zmPNuQt22y0cgEAgEAoHiWjGu1c5EXPvv5BEjefjk0Xcm5FEvz3OQqP4tCBczz4PPx0tDfj68F+XlYf5y',
  'XnwelPOwXSwLdnuye2qyfUcF5e6CF5Y7G7AP/R7ZB9nH0Xuc36WL/fK9NLzHdtJ7nHIedF06l5DzKIRG4wE3E6e427l3/7MS',
  'DzQrPoiDqsgZ7tX/Kg9Xr1RvVWujtflR/xJ3SZf+T5yZPBdx5uoY7aO0jx6NM38+qBJnCv9zalacKZ/jNzvOjAnKHZXizggL',
  'Pg/5hYHBWGN2tP+Y7Ijs6Gg8Gh/7t/HoRtIfj8p6TDhZPKoyv1zl8snjCD0gjjhd8WjfeGPx6PYj0qXjxKNK0/QoBXoUOtXx',
  'aNC9ggO4n5f1xa0s+H/8BNpvhf0W/c/3CVnfIC/TpHm9+zI65HkmMG5N1Yxbu+PjsEadjXay0UNIaKAfkPEH8S9juVBDAAA=',
].join('');

/*
 * The same weights as a whole-model file (Keras 2's save_model_to_hdf5: `model_config` on the root,
 * the weights under /model_weights), with numpy fixed-length byte strings ('S19', NULL-padded,
 * "batch_normalization" filling its slot with no terminator): how h5py 2 wrote them, and so how
 * Keras's ImageNet weight files are laid out.
 */
const H5PY2_MODEL_SAVE = [
  'H4sIAAAAAAACA+1azU8TQRSfbYGsUJoiJjTGj80aDBqQghgIiVITMRz8IOqht7KUBRraLWkrVInRI948cvTYo0dPyLEHTPgT',
  'PHrk6A1nd96jO8OyLKV+NMxrYPbNvO3szv7eb34z3Y8zjx53d17uJLapKmkjMeK2A7DEBO9j+xyUCpSbUFZDWN/utMWhPgbf',
  'r4WZvw/1r15MT9vRB4JhP3sdrFSJtPNoM9MPZ+0yBT7iqRbi4/KFBTOXXjezS8vlkguXyQb77QG8iriOkATgO0oxqZIVs2iU',
  '0mtmsZQtWLS+l3bc7up/9M7onTHuPNX5zBuZFdNacOI7XfFl0yoViou5wjr2NwfndTvnsfvMFKzF7BKB/sZc52/omZxRKqUt',
  'I2/qk5r+1I7XBzWdnUKrNnRsc75Lf/fOL1/jkHhxJVi+7nexMiGhK/OVGkwfpNLBx80b5cxy2ioU80Yu+9Yos+whZIHi38Qy',
  'PUKy1urrMi0R39ox/b589vyR4mQX4LeNn58mwE91yGcUhPfE8YoAEyr0SKUskTPemEWHZUoEeajXblfYiMPphyU+R5fho/ZH',
  'BQJBsMb5tDH+VkjYkx8nuk+nZ37GpJ6R/FjnR+Szra5g/KgIvBrUGD+2HeIucYHnxxT4lS7+ur5e5+N+gE90VgzgeuC2sB4A',
  'vzrI6wH1Hh+XAH92vLX4URyvCNlz6bQ4YUq0TpA2r/T78KPH8x5eMvJ5YzLhC4rhebPMxXgG5QtrWWspnTcNi8X6BK0Zxaxh',
  'ZUwWqDifOu/h/c9Gmb8aC8Z7yV4eL9LON+/huuwTv+1AEPMIaxG5niB18Un8BF04EOXjRRxL8zZcH+LAKTDSyGe4HMcyTNvt',
  'lh7tOnCcRvpU0vce2tvpE7HbQ6GQwvQQ+76wsnnJWyFt/lfjgfMpwmbzin/84bx70T8O8bt11T8OebR6rdWRtTNF/9G/Dw9o',
  '+e377pMH33d3t6mfhDq77Rsc07okPSZ2zH0auw11OyxOmjRp0qRJkyZ1pVtXfmoJXfn3xmNLjgc3Hp9bZDy896ErsB9XIcH2',
  'Y770e9+ttPO5H4PrWE3n4/BHGtwvmTljv7h/KO4jR+BK/PZPoz5571zn8IpZtMzcZIJ581mjhBtEx+1jxm8wf6I/WN6oAzJv',
  'ZN4c/f0m1c/HIRLRRyye7feb+j7mvo64Jp44lhZUT7CEVpgcIOEjeqJZ+qIK+kLcoa780/FguAodXtXsLf94xN+vmxJL/0an',
  '7rS0TtWGTqdTUwk538r59qhOrQ166FTXe2LN0qniewxBdGrsJJ2aHuGVKvXr+sBbp+5A3vwYDri+G5V5I/PmqE4VX8z90zp1',
  'a4jXqSKOpTWmU0OEH1fRb1xf1I7RF/+XTv11N5hO/TwisXQanao0DUd7gKO2ltSpNXgfcZnTqeTY+VaanG/d8y3yz+q4iDdY',
  'ZzepX9SH4nu0EVDAtk695KFTe7QpuMYkGesiYwew0YE8INpvH0q1VDA4AAA=',
].join('');

/** Writes one of the h5py-made fixtures to `file`. */
export async function writeH5pyFixture(
  kind: 'save_weights' | 'model_save',
  file: string,
): Promise<void> {
  const encoded = kind === 'save_weights' ? H5PY3_SAVE_WEIGHTS : H5PY2_MODEL_SAVE;
  await fsp.writeFile(file, gunzipSync(Buffer.from(encoded, 'base64')));
}

/** A layer as `writeKerasLayoutByHand` writes it: weights named `owner/.../weight:0`. */
export interface HandLayer {
  name: string;
  weights: { name: string; shape: number[]; values: ArrayLike<number> }[];
}

/**
 * Writes weights (the fixture's by default) in Keras's layout by hand with h5wasm, not with xfer's
 * writer: fixed-length strings exactly as long as the longest (numpy's 'S' itemsize; h5wasm can
 * only make them NULL-terminated where numpy's are NULL-padded), `[]` as an empty float64 array,
 * one group per layer sorted by name, datasets at their `owner/weight:0` paths.
 */
export async function writeKerasLayoutByHand(
  file: string,
  options: { underModelWeights?: boolean; layers?: HandLayer[]; kerasVersion?: string } = {},
): Promise<void> {
  const layers = options.layers ?? KERAS_LAYERS;
  await h5wasm.ready;
  const h5 = new h5wasm.File(file, 'w');
  try {
    const strings = (group: Group, name: string, values: string[]): void => {
      if (values.length === 0) {
        group.create_attribute(name, new Float64Array(0), [0]);
        return;
      }
      const size = Math.max(...values.map((v) => v.length));
      group.create_attribute(name, values, [values.length], `A${size}`);
    };
    let root: Group = h5;
    if (options.underModelWeights) {
      h5.create_attribute('model_config', '{"class_name": "Sequential"}', [], 'A29');
      root = h5.create_group('model_weights');
    }
    strings(
      root,
      'layer_names',
      layers.map((l) => l.name),
    );
    root.create_attribute('backend', 'tensorflow', [], 'A10');
    root.create_attribute('keras_version', options.kerasVersion ?? '2.13.1', [], 'A6');
    for (const layer of [...layers].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const group = root.create_group(layer.name);
      strings(
        group,
        'weight_names',
        layer.weights.map((w) => w.name),
      );
      // h5py makes the intermediate groups of `owner/weight:0` itself; h5wasm needs them made.
      const owners = new Set(layer.weights.map((w) => w.name.split('/')[0]!));
      for (const owner of owners) group.create_group(owner);
      for (const weight of layer.weights) {
        group.create_dataset({
          name: weight.name,
          data: Float32Array.from(weight.values),
          shape: weight.shape,
        });
      }
    }
  } finally {
    h5.close();
  }
}

/**
 * A functional model with every layer whose weights need care: Conv2D, BatchNormalization,
 * DepthwiseConv2D, Dense, and a nested Sequential (conv, BN, conv: a frozen one orders its weights
 * differently). `fcUnits` changes the head for mismatch tests.
 */
export function buildTestModel(options: { fcUnits?: number } = {}): tf.LayersModel {
  const inner = tf.sequential({
    name: 'inner',
    layers: [
      tf.layers.conv2d({
        inputShape: [6, 6, 4],
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        name: 'inner_conv',
      }),
      tf.layers.batchNormalization({ name: 'inner_bn' }),
      tf.layers.conv2d({ filters: 3, kernelSize: 1, name: 'inner_conv2' }),
    ],
  });
  const input = tf.input({ shape: [6, 6, 3], name: 'image' });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor) =>
    layer.apply(x) as tf.SymbolicTensor;
  let x = apply(
    tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv1' }),
    input,
  );
  x = apply(tf.layers.batchNormalization({ name: 'bn1' }), x);
  x = apply(
    tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 1, padding: 'same', name: 'dw1' }),
    x,
  );
  x = apply(inner, x);
  x = apply(tf.layers.globalAveragePooling2d({ name: 'gap' }), x);
  x = apply(tf.layers.dense({ units: options.fcUnits ?? 2, name: 'fc' }), x);
  return tf.model({ inputs: input, outputs: x, name: 'test_model' });
}

/** Sets every weight to seeded random values in [0.5, 1.5) (positive, so BN variances are valid). */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const random = new Random(seed);
  for (const variable of model.weights) {
    const size = (variable.shape as number[]).reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: size }, () => random.uniform(0.5, 1.5));
    const tensor = tf.tensor(values, variable.shape as number[]);
    variable.write(tensor);
    tensor.dispose();
  }
}

export function weightValues(model: tf.LayersModel, layerName: string): number[][] {
  return model
    .getLayer(layerName)
    .getWeights()
    .map((w) => Array.from(w.dataSync()));
}

/** Runs `work` and returns what it wrote to stderr (xfer's warnings) along with its result. */
export async function captureStderr<T>(
  work: () => Promise<T>,
): Promise<{ result: T; stderr: string }> {
  const original = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await work(), stderr };
  } finally {
    process.stderr.write = original;
  }
}
