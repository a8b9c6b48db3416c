/**
 * Where xfer's graphs differ from Keras's in the weight file but not in the numbers: Keras's
 * ConvNeXt (`applications/convnext.py`) wraps its stem and each downsampling step in a nested
 * `Sequential` (`convnext_tiny_stem`, `convnext_tiny_downsampling_block_0`...) and its 7x7
 * depthwise convolution is a `Conv2D` with `groups` (kernel `[7, 7, 1, C]`, named `kernel`);
 * xfer's ConvNeXt has those layers in the main graph and a `DepthwiseConv2D` (kernel
 * `[7, 7, C, 1]`, named `depthwise_kernel`). Both kernels hold the same values in the same order,
 * so reading is a reshape and writing the reverse.
 */
import type { LayerToWrite, WeightToWrite } from './h5.js';
import type { ModelWeight } from './model-weights.js';

/**
 * Whether a stored kernel of shape `stored` is a grouped `Conv2D` kernel (`groups` = input
 * channels) that fits the DepthwiseConv2D weight `target`: `[kh, kw, 1, C * m]` for
 * `[kh, kw, C, m]`. Output channel `c * m + k` reads input channel `c` in both layers, so the flat
 * values are the same.
 */
export function isGroupedKernelFor(target: ModelWeight, stored: readonly number[]): boolean {
  const shape = target.variable.shape as number[];
  return (
    target.short === 'depthwise_kernel' &&
    target.owner.getClassName() === 'DepthwiseConv2D' &&
    shape.length === 4 &&
    stored.length === 4 &&
    stored[0] === shape[0] &&
    stored[1] === shape[1] &&
    stored[2] === 1 &&
    stored[3] === shape[2]! * shape[3]!
  );
}

/** Keras's ConvNeXt block convolution, `<model>_stage_<i>_block_<j>_depthwise_conv`. */
const CONVNEXT_DEPTHWISE = /_stage_\d+_block_\d+_depthwise_conv\/depthwise_kernel(:\d+)?$/;

/** Keras's nested Sequentials of ConvNeXt: [first layer, second layer] -> group name. */
const CONVNEXT_NESTED: readonly [RegExp, (m: RegExpExecArray) => [string, string]][] = [
  [/^(.+)_stem_conv$/, (m) => [`${m[1]}_stem_layernorm`, `${m[1]}_stem`]],
  [
    /^(.+)_downsampling_layernorm_(\d+)$/,
    (m) => [`${m[1]}_downsampling_conv_${m[2]}`, `${m[1]}_downsampling_block_${m[2]}`],
  ],
];

function groupedKernel(weight: WeightToWrite): WeightToWrite {
  if (!CONVNEXT_DEPTHWISE.test(weight.name) || weight.shape.length !== 4) return weight;
  const [kh, kw, c, m] = weight.shape as [number, number, number, number];
  return {
    ...weight,
    name: weight.name.replace(/depthwise_kernel(:\d+)?$/, 'kernel$1'),
    shape: [kh, kw, 1, c * m],
  };
}

/**
 * The layers to write rearranged as Keras's own model names and shapes them: ConvNeXt's stem and
 * downsampling layers regrouped under their nested `Sequential`'s name, its block convolutions'
 * kernels as grouped `Conv2D` kernels. Every other model passes through unchanged.
 */
export function kerasFileLayout(layers: readonly LayerToWrite[]): LayerToWrite[] {
  const out: LayerToWrite[] = [];
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    const weights = layer.weights.map(groupedKernel);
    const next = layers[i + 1];
    let merged = false;
    for (const [pattern, partner] of CONVNEXT_NESTED) {
      const m = pattern.exec(layer.name);
      if (!m || !next) continue;
      const [second, group] = partner(m);
      if (next.name !== second) continue;
      out.push({
        ...layer,
        name: group,
        weights: [...weights, ...next.weights.map(groupedKernel)],
      });
      i++;
      merged = true;
      break;
    }
    if (!merged) out.push({ ...layer, weights });
  }
  return out;
}
