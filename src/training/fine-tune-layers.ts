/**
 * Which layers fine-tuning trains: `unfreezeFrom` makes the top of a model trainable from a layer
 * name, the last N layers with weights, the last N blocks, or all of it, and freezes the rest.
 *
 * The order is the model's layers flattened depth-first (a nested backbone's layers in place of
 * the backbone), which for Keras applications is the order of `model.summary()` and of Keras's
 * own recipe `for layer in base_model.layers[:fine_tune_at]: layer.trainable = False`.
 */
import { setBatchNormInferenceMode } from '../engine/batchnorm.js';
import { isContainer, isLayer } from '../engine/layer-classes.js';
import type * as tf from '../engine/tf.js';
import { invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { checkBoolean } from '../util/validate.js';

type Layer = tf.layers.Layer;

/**
 * Where fine-tuning starts:
 * - a layer name (`'block5_conv1'`): that layer and every layer after it;
 * - a number N: the last N layers that own weights (the head's Dense layers count);
 * - `{ blocks: N }`: the last N blocks, a block being the layers that share a Keras name prefix
 *   `blockK_` (VGG, `block5_conv1`), `block_K_` (MobileNetV2, `block_16_project`),
 *   `convK_blockJ_` (ResNet, `conv5_block3_2_conv`) or `conv_{dw,pw,pad}_K` (MobileNet); layers
 *   after the last block without a block name of their own (MobileNetV2's `Conv_1`, the head)
 *   belong to that last block;
 * - `'all'`: the whole model.
 */
export type UnfreezeTarget = string | number | { blocks: number };

export interface UnfreezeOptions {
  /**
   * Let BatchNormalization layers in the trainable part use batch statistics and update their
   * moving mean and variance. Default false: they stay in inference mode (their ImageNet
   * statistics), as Keras recommends since TF 2.0; their gamma and beta still train.
   */
  trainBatchNorm?: boolean;
}

export interface UnfreezeResult {
  /** The first trainable layer. */
  firstLayer: string;
  /** Names of the layers with weights that are now trainable, in order. */
  trainableLayers: string[];
  /** Number of trainable parameters now. */
  trainableParams: number;
}

/**
 * Leaf layers of `root`, depth-first, nested models replaced by their layers.
 * @example
 * flatLayers(model).map((l) => l.name); // ['input_1', 'block1_conv1', ..., 'output_layer']
 */
export function flatLayers(root: Layer): Layer[] {
  const out: Layer[] = [];
  const visit = (layer: Layer) => {
    if (isContainer(layer)) for (const child of layer.layers) visit(child);
    else out.push(layer);
  };
  visit(root);
  return out;
}

const BLOCK_PATTERNS: Array<[RegExp, (m: RegExpMatchArray) => string]> = [
  [/^(conv\d+_block\d+)_/, (m) => m[1]!],
  [/^(block_?\d+)[a-z]?_/, (m) => m[1]!],
  [/^conv_(?:dw|pw|pad)_(\d+)(?:_|$)/, (m) => `conv_${m[1]}`],
];

/**
 * The Keras block a layer name belongs to, or undefined.
 * @example
 * blockOf('conv5_block3_2_conv'); // 'conv5_block3'
 * blockOf('block_16_project_BN'); // 'block_16'
 */
export function blockOf(name: string): string | undefined {
  for (const [pattern, key] of BLOCK_PATTERNS) {
    const match = name.match(pattern);
    if (match) return key(match);
  }
  return undefined;
}

function hasWeights(layer: Layer): boolean {
  return layer.weights.length > 0;
}

function startIndex(layers: Layer[], target: UnfreezeTarget): number {
  if (target === 'all') return 0;
  if (typeof target === 'string') {
    const index = layers.findIndex((l) => l.name === target);
    if (index < 0) {
      throw unknownNameError(
        'layer',
        target,
        layers.filter(hasWeights).map((l) => l.name),
      );
    }
    return index;
  }
  if (typeof target === 'number') {
    if (!Number.isInteger(target) || target < 1) {
      throw invalidParameterError(
        'target',
        "positive integer, layer name, { blocks } or 'all'",
        target,
      );
    }
    const weighted = layers.map((l, i) => (hasWeights(l) ? i : -1)).filter((i) => i >= 0);
    if (target > weighted.length) {
      throw invalidParameterError(
        'target',
        `at most ${weighted.length} (the model's layers with weights)`,
        target,
      );
    }
    return weighted[weighted.length - target]!;
  }
  if (target !== null && typeof target === 'object' && 'blocks' in target) {
    const n = target.blocks;
    if (!Number.isInteger(n) || n < 1) {
      throw invalidParameterError('target.blocks', 'positive integer', n);
    }
    // Block of each layer: its own, or the one before it (trailing layers join the last block).
    const starts: number[] = [];
    let current: string | undefined;
    layers.forEach((layer, i) => {
      const block = blockOf(layer.name);
      if (block !== undefined && block !== current) {
        current = block;
        starts.push(i);
      }
    });
    if (starts.length === 0) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `no layer of this model has a Keras block name (block5_conv1, block_16_project, conv5_block3_1_conv, conv_dw_13), so { blocks: ${n} } cannot be counted. Give a layer name or a number of layers instead.`,
        { target },
      );
    }
    if (n > starts.length) {
      throw invalidParameterError(
        'target.blocks',
        `at most ${starts.length} (the model's blocks)`,
        n,
      );
    }
    return starts[starts.length - n]!;
  }
  throw invalidParameterError(
    'target',
    "layer name, positive integer, { blocks: N } or 'all'",
    target,
  );
}

/**
 * Makes `model` trainable from `target` on and freezes every layer before it. Call `compile`
 * again afterwards (Keras's rule: a change of `trainable` takes effect at the next compile).
 * BatchNormalization layers stay in inference mode unless `trainBatchNorm` is true.
 * @example
 * unfreezeFrom(model, 'block5_conv1');   // VGG16's top block and the head
 * unfreezeFrom(model, { blocks: 1 });    // the same, counted
 * unfreezeFrom(model, 'all', { trainBatchNorm: true });
 * compile(model, { optimizer: Adam(1e-5), loss: 'binary_crossentropy', metrics: ['accuracy'] });
 */
export function unfreezeFrom(
  model: Layer,
  target: UnfreezeTarget,
  options: UnfreezeOptions = {},
): UnfreezeResult {
  if (!isLayer(model)) throw invalidParameterError('model', 'a tfjs-layers model', model);
  const trainBatchNorm = checkBoolean('trainBatchNorm', options.trainBatchNorm ?? false);
  const layers = flatLayers(model);
  const start = startIndex(layers, target);
  // Keras 3 semantics (src/engine/freezing.ts): the recursive setter unfreezes everything, then
  // each leaf before the start is frozen again; ancestors' flags stay true and do not gate.
  model.trainable = true;
  layers.forEach((layer, i) => {
    layer.trainable = i >= start;
  });
  setBatchNormInferenceMode(model, !trainBatchNorm);
  const trainable = layers.slice(start).filter(hasWeights);
  return {
    firstLayer: layers[start]!.name,
    trainableLayers: trainable.map((l) => l.name),
    trainableParams: model.trainableWeights.reduce(
      (n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1),
      0,
    ),
  };
}

/**
 * Freezes every layer of `backbone` inside `model` and makes the rest trainable: the head-only
 * stage of fine-tuning. Compile again afterwards.
 * @example
 * freezeBackbone(model, model.layers[0]!);
 */
export function freezeBackbone(model: Layer, backbone: Layer): void {
  model.trainable = true;
  backbone.trainable = false;
}
