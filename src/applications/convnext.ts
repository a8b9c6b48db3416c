/**
 * ConvNeXtTiny, ConvNeXtSmall and ConvNeXtBase (Liu et al., CVPR 2022), as Keras's
 * `applications/convnext.py` builds them: a 4x4 patchify stem, four stages of blocks (7x7
 * depthwise convolution, layer normalization, an inverted MLP with GELU, a learned per-channel
 * scale, a residual addition) joined by 2x2 strided downsampling. The ImageNet normalization is
 * inside the model (`includePreprocessing`), so the models take pixels in [0, 255] and
 * `convnext.preprocessInput` passes them through.
 *
 * Two differences from Keras's graph, neither in the parameters: Keras wraps the stem and each
 * downsampling in a nested `Sequential` (`convnext_tiny_stem`...); here their layers, with
 * Keras's names, sit in the main graph. Keras's 7x7 depthwise convolution is a `Conv2D` with
 * `groups` (kernel `[7, 7, 1, C]`), which tfjs lacks; here it is a `DepthwiseConv2D` (kernel
 * `[7, 7, C, 1]`, the same values in the same order). Keras's own `.h5` files load all the same:
 * the loader opens the nested groups and takes a grouped kernel for a depthwise one, and
 * `saveWeights` writes Keras's layout back (`src/weights/keras-layout.ts`).
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { checkBoolean } from '../util/validate.js';
import { apply, finishModel, imageInput, resolveOptions, resolveWeights } from './build.js';
import { obtainInputShape } from './input-shape.js';
import { KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import { Normalization } from './normalization-layer.js';
import type { ApplicationOptions, ApplicationSpec, WeightSet } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/convnext/';
const LAYER_SCALE_INIT = 1e-6;

/** ConvNeXt's options: the common ones plus Keras's `include_preprocessing`. */
export interface ConvNeXtOptions extends ApplicationOptions {
  /**
   * Whether the model normalizes its [0, 255] input with ImageNet's mean and std itself (Keras's
   * `include_preprocessing`; it must stay true with ImageNet weights). Default true.
   */
  includePreprocessing?: boolean;
}

interface LayerScaleArgs {
  initValues: number;
  projectionDim: number;
  name?: string;
  trainable?: boolean;
}

/** Keras's `LayerScale` (CaiT): the input times a learned per-channel `gamma`. */
export class LayerScale extends tf.layers.Layer {
  static className = 'LayerScale';
  private readonly initValues: number;
  private readonly projectionDim: number;
  private gamma: tf.LayerVariable | null = null;

  constructor(args: LayerScaleArgs) {
    super(args);
    this.initValues = args.initValues;
    this.projectionDim = args.projectionDim;
  }

  override build(): void {
    const init = tf.initializers.constant({ value: this.initValues });
    this.gamma = this.addWeight('gamma', [this.projectionDim], 'float32', init);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.mul(Array.isArray(inputs) ? inputs[0]! : inputs, this.gamma!.read()));
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    // tfjs writes these as Keras's `init_values` and `projection_dim`.
    return { ...super.getConfig(), initValues: this.initValues, projectionDim: this.projectionDim };
  }
}
tf.serialization.registerClass(LayerScale);

function layerNorm(name: string): tf.layers.Layer {
  return tf.layers.layerNormalization({ epsilon: 1e-6, name });
}

/** Keras's `Dense` default initializer is glorot uniform; tfjs's too, said explicitly. */
function dense(units: number, name: string, activation?: string): tf.layers.Layer {
  return tf.layers.dense({
    units,
    activation: activation as 'linear' | undefined,
    kernelInitializer: 'glorotUniform',
    name,
  });
}

function conv(filters: number, size: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({
    filters,
    kernelSize: size,
    strides: size,
    kernelInitializer: 'glorotUniform',
    name,
  });
}

/** Keras's `ConvNeXtBlock` with drop path rate 0 (what every ConvNeXt builder passes). */
function convNeXtBlock(
  inputs: tf.SymbolicTensor,
  projectionDim: number,
  name: string,
  names: KerasNames,
): tf.SymbolicTensor {
  const depthwise = tf.layers.depthwiseConv2d({
    kernelSize: 7,
    padding: 'same',
    depthwiseInitializer: 'glorotUniform',
    name: `${name}_depthwise_conv`,
  });
  let x = apply(depthwise, inputs);
  x = apply(layerNorm(`${name}_layernorm`), x);
  x = apply(dense(4 * projectionDim, `${name}_pointwise_conv_1`), x);
  x = apply(tf.layers.activation({ activation: 'gelu', name: `${name}_gelu` }), x);
  x = apply(dense(projectionDim, `${name}_pointwise_conv_2`), x);
  const scale = new LayerScale({
    initValues: LAYER_SCALE_INIT,
    projectionDim,
    name: `${name}_layer_scale`,
  });
  x = apply(scale, x);
  x = apply(tf.layers.activation({ activation: 'linear', name: `${name}_identity` }), x);
  // Keras's `inputs + x` is an operation named `add`, `add_1`...
  return apply(tf.layers.add({ name: names.next('add') }), [inputs, x]);
}

interface Config {
  depths: readonly [number, number, number, number];
  dims: readonly [number, number, number, number];
}

/** Keras's `ConvNeXt(depths, projection_dims, ...)`. */
async function buildConvNeXt(
  spec: ApplicationSpec,
  config: Config,
  options: ConvNeXtOptions | undefined,
): Promise<tf.LayersModel> {
  await initBackend();
  const o = resolveOptions(spec.className, options);
  const includePreprocessing = checkBoolean(
    'includePreprocessing',
    options?.includePreprocessing ?? true,
  );
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: o.inputShape,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  const set = spec.weightSets.imagenet;
  const weights = await resolveWeights(o, o.includeTop ? set.top : set.noTop);

  const name = spec.name;
  const names = new KerasNames();
  const { image, inputs } = imageInput(o, shape);
  let x = image;
  if (includePreprocessing && shape[2] === 3) {
    const prestem = new Normalization({
      mean: [0.485 * 255, 0.456 * 255, 0.406 * 255],
      variance: [(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
      name: `${name}_prestem_normalization`,
    });
    x = apply(prestem, x);
  }
  x = apply(conv(config.dims[0], 4, `${name}_stem_conv`), x);
  x = apply(layerNorm(`${name}_stem_layernorm`), x);
  for (let i = 0; i < 4; i++) {
    if (i > 0) {
      x = apply(layerNorm(`${name}_downsampling_layernorm_${i - 1}`), x);
      x = apply(conv(config.dims[i]!, 2, `${name}_downsampling_conv_${i - 1}`), x);
    }
    for (let j = 0; j < config.depths[i]!; j++) {
      x = convNeXtBlock(x, config.dims[i]!, `${name}_stage_${i}_block_${j}`, names);
    }
  }

  if (o.includeTop) {
    x = apply(tf.layers.globalAveragePooling2d({ name: `${name}_head_gap` }), x);
    x = apply(layerNorm(`${name}_head_layernorm`), x);
    x = apply(dense(o.classes, `${name}_head_dense`, o.classifierActivation), x);
  } else {
    if (o.pooling === 'avg') {
      const pool = tf.layers.globalAveragePooling2d({
        name: names.next('global_average_pooling2d'),
      });
      x = apply(pool, x);
    } else if (o.pooling === 'max') {
      x = apply(tf.layers.globalMaxPooling2d({ name: names.next('global_max_pooling2d') }), x);
    }
    // Keras normalizes the features without top, pooled or not.
    x = apply(layerNorm(names.next('layer_normalization')), x);
  }
  return finishModel(inputs, x, o.name ?? name, weights);
}

function weightSet(name: string, topHash: string, noTopHash: string): WeightSet {
  return {
    top: { url: `${BASE_URL}${name}.h5`, fileHash: topHash },
    noTop: { url: `${BASE_URL}${name}_notop.h5`, fileHash: noTopHash },
  };
}

function member(
  variant: 'Tiny' | 'Small' | 'Base',
  config: Config,
  hashes: [string, string],
  parameters: { top: number; noTop: number },
): ApplicationSpec {
  const name = `convnext_${variant.toLowerCase()}`;
  const spec: ApplicationSpec = {
    name,
    className: `ConvNeXt${variant}`,
    build: (options) => buildConvNeXt(spec, config, options),
    preprocessMode: 'none',
    defaultInputSize: 224,
    minInputSize: 32,
    weightSets: { imagenet: weightSet(name, ...hashes) },
    firstConvLayer: `${name}_stem_conv`,
    // Keras's unnamed LayerNormalization after the last stage, without top.
    featureLayer: 'layer_normalization',
    classifierLayer: `${name}_head_dense`,
    parameters,
  };
  return spec;
}

export const CONVNEXT_TINY_SPEC = member(
  'Tiny',
  { depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] },
  [
    '8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff',
    'd547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1',
  ],
  { top: 28_589_128, noTop: 27_820_128 },
);
export const CONVNEXT_SMALL_SPEC = member(
  'Small',
  { depths: [3, 3, 27, 3], dims: [96, 192, 384, 768] },
  [
    'ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c',
    '6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab',
  ],
  { top: 50_223_688, noTop: 49_454_688 },
);
export const CONVNEXT_BASE_SPEC = member(
  'Base',
  { depths: [3, 3, 27, 3], dims: [128, 256, 512, 1024] },
  [
    '52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6',
    '40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45',
  ],
  { top: 88_591_464, noTop: 87_566_464 },
);

/**
 * ConvNeXtTiny: 28,589,128 parameters (27,820,128 without top). Takes pixels in [0, 255]: the
 * ImageNet normalization is inside the model.
 * @example
 * const backbone = await ConvNeXtTiny({ includeTop: false, pooling: 'avg' });
 */
export const ConvNeXtTiny: (options?: ConvNeXtOptions) => Promise<tf.LayersModel> =
  CONVNEXT_TINY_SPEC.build;
/** ConvNeXtSmall: 50,223,688 parameters, 224x224, pixels in [0, 255]. */
export const ConvNeXtSmall: (options?: ConvNeXtOptions) => Promise<tf.LayersModel> =
  CONVNEXT_SMALL_SPEC.build;
/** ConvNeXtBase: 88,591,464 parameters, 224x224, pixels in [0, 255]. */
export const ConvNeXtBase: (options?: ConvNeXtOptions) => Promise<tf.LayersModel> =
  CONVNEXT_BASE_SPEC.build;

/** `keras.applications.convnext`: a pass-through `preprocessInput` and ImageNet decoding. */
export const convnext = applicationModule(CONVNEXT_TINY_SPEC);

/** The family, in Keras's order, for the registry. */
export const CONVNEXT_SPECS: readonly ApplicationSpec[] = [
  CONVNEXT_TINY_SPEC,
  CONVNEXT_SMALL_SPEC,
  CONVNEXT_BASE_SPEC,
];
