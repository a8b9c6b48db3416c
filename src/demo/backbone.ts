/**
 * The offline demo's backbone: a small Keras-style CNN for 28x28 grayscale images, pretrained on
 * eight Fashion-MNIST classes (every class except the demo's two) by
 * `scripts/pretrain-demo-backbone.ts`. Its weights ship in `assets/demo/backbone/` (tfjs layers
 * format), so `xfer demo` runs with no network.
 *
 * Input 28x28 (Fashion-MNIST's own size) rather than an upsampled 32x32: upsampling adds 31% more
 * pixels to every conv and no information. Three blocks of conv (no bias, as Keras does before a
 * BatchNormalization) → BN → ReLU; the first two end in a 2x2 max pool (28 → 14 → 7), the third
 * is the 7x7x64 feature map a new head pools globally.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';
import { checkBoolean, checkPositiveInteger } from '../util/validate.js';
import { loadWeights } from '../weights/index.js';

/** Root of the demo's shipped files (`src/demo` and `dist/demo` are both two levels deep). */
export const DEMO_ASSETS_DIR = fileURLToPath(new URL('../../assets/demo/', import.meta.url));
/** The demo's images: `train/`, `validation/` and `test/`, each with one folder per class. */
export const DEMO_DATA_DIR = path.join(DEMO_ASSETS_DIR, 'data');
/** The pretrained backbone, tfjs layers format (`model.json` + `weights.bin`). */
export const DEMO_BACKBONE_DIR = path.join(DEMO_ASSETS_DIR, 'backbone');

/**
 * The demo's two classes (Fashion-MNIST's 'Pullover' and 'T-shirt/top'), in the alphabetical
 * order of their folders, which is the label index `flowFromDirectory` gives them:
 * 0 = pullover, 1 = t_shirt.
 */
export const DEMO_CLASSES = ['pullover', 't_shirt'] as const;

/** The eight Fashion-MNIST classes the backbone was pretrained on, in its output order. */
export const DEMO_PRETRAIN_CLASSES = [
  'Trouser',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** The backbone's native input shape. */
export const DEMO_INPUT_SHAPE: [number, number, number] = [28, 28, 1];

/** Filters of `block1_conv1`, `block2_conv1`, `block3_conv1`. */
const BLOCK_FILTERS = [16, 32, 64] as const;

/** Options of {@link demoBackbone}. */
export interface DemoBackboneOptions {
  /**
   * Include the pretraining classifier: `avg_pool` (GlobalAveragePooling2D) and `predictions`
   * (Dense, softmax over the eight pretraining classes). Default `false`.
   */
  includeTop?: boolean;
  /**
   * `'fashion-mnist'` for the shipped pretrained weights, `null` for random initialization, or
   * the path of a tfjs model folder (or its model.json) saved from this architecture. Weights load
   * by layer name, so a folder saved with the top loads into a model without one.
   * Default `'fashion-mnist'`.
   */
  weights?: string | null;
  /** Height, width and channels (1). Any size of at least 4x4 works without the top. Default [28, 28, 1]. */
  inputShape?: [number, number, number];
  /** Seed of the random initialization (Glorot uniform, as Keras), for reproducible runs. Default 0. */
  seed?: number;
  /** Output classes with `includeTop`; must be 8 to load the pretrained top. Default 8. */
  classes?: number;
}

function convBlock(
  x: tf.SymbolicTensor,
  block: number,
  filters: number,
  seed: number,
  pool: boolean,
) {
  const prefix = `block${block}`;
  x = tf.layers
    .conv2d({
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + block }),
      name: `${prefix}_conv1`,
    })
    .apply(x) as tf.SymbolicTensor;
  // momentum 0.9, not Keras's default 0.99: pretraining runs ~1,000 steps, and at 0.99 the moving
  // variance still carried 10% of its initial 1.0 after 225 steps, 25x the real variance (0.004)
  // of block3's conv output, so inference mode gave chance accuracy.
  x = tf.layers
    .batchNormalization({ axis: -1, momentum: 0.9, name: `${prefix}_bn` })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .activation({ activation: 'relu', name: `${prefix}_relu` })
    .apply(x) as tf.SymbolicTensor;
  if (pool) {
    x = tf.layers
      .maxPooling2d({ poolSize: 2, strides: 2, name: `${prefix}_pool` })
      .apply(x) as tf.SymbolicTensor;
  }
  return x;
}

/** Builds the architecture with random (seeded) weights; synchronous, no backend work. */
export function buildDemoBackbone(
  options: Omit<DemoBackboneOptions, 'weights'> = {},
): tf.LayersModel {
  const includeTop = options.includeTop ?? false;
  const inputShape = options.inputShape ?? DEMO_INPUT_SHAPE;
  const seed = options.seed ?? 0;
  const classes = options.classes ?? DEMO_PRETRAIN_CLASSES.length;
  const input = tf.input({ shape: inputShape, name: 'input_1' });
  let x = input;
  BLOCK_FILTERS.forEach((filters, i) => {
    x = convBlock(x, i + 1, filters, seed, i < BLOCK_FILTERS.length - 1);
  });
  if (includeTop) {
    x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers
      .dense({
        units: classes,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 100 }),
        name: 'predictions',
      })
      .apply(x) as tf.SymbolicTensor;
  }
  return tf.model({ inputs: input, outputs: x, name: 'demo_cnn' });
}

function resolveWeights(weights: string): string {
  return weights === 'fashion-mnist' ? DEMO_BACKBONE_DIR : weights;
}

/**
 * The demo backbone, as Keras's application builders make theirs: `includeTop` and `weights`
 * with the same meaning, layer names `block1_conv1`, `block1_bn`, `block1_relu`, `block1_pool`,
 * ..., `block3_relu` (the feature output), and `avg_pool` / `predictions` with the top.
 * Inputs are grayscale scaled to [0, 1] (x / 255).
 * @example
 * const backbone = await demoBackbone(); // pretrained, no top: [null, 7, 7, 64]
 * backbone.trainable = false;
 */
export async function demoBackbone(options: DemoBackboneOptions = {}): Promise<tf.LayersModel> {
  await initBackend();
  if (options.includeTop !== undefined) checkBoolean('includeTop', options.includeTop);
  if (options.seed !== undefined && !Number.isInteger(options.seed)) {
    throw invalidParameterError('seed', 'integer', options.seed);
  }
  if (options.classes !== undefined) checkPositiveInteger('classes', options.classes);
  const shape = options.inputShape;
  if (
    shape !== undefined &&
    (!Array.isArray(shape) ||
      shape.length !== 3 ||
      shape[2] !== 1 ||
      !shape.every((d) => Number.isInteger(d) && d > 0) ||
      shape[0] < 4 ||
      shape[1] < 4)
  ) {
    throw invalidParameterError('inputShape', '[height >= 4, width >= 4, 1] (grayscale)', shape);
  }
  if (options.includeTop && shape !== undefined && (shape[0] !== 28 || shape[1] !== 28)) {
    throw invalidParameterError('inputShape', '[28, 28, 1] with includeTop: true', shape);
  }
  const weights = options.weights === undefined ? 'fashion-mnist' : options.weights;
  if (weights !== null && typeof weights !== 'string') {
    throw invalidParameterError(
      'weights',
      "'fashion-mnist', null or the path of a model.json",
      weights,
    );
  }
  if (
    weights !== null &&
    options.includeTop &&
    (options.classes ?? 8) !== DEMO_PRETRAIN_CLASSES.length
  ) {
    throw invalidParameterError(
      'classes',
      `${DEMO_PRETRAIN_CLASSES.length} with pretrained weights and includeTop`,
      options.classes,
    );
  }
  const model = buildDemoBackbone(options);
  // A tfjs model folder loads by layer name: the pretraining top in the file is skipped when the
  // model has none.
  if (weights !== null) await loadWeights(model, resolveWeights(weights));
  return model;
}
