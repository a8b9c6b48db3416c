/**
 * One converter per tfjs-layers class: the ONNX nodes that compute what the layer's `call` does in
 * inference mode, with the layer's weights as initializers. Adding a layer type is one entry in
 * `CONVERTERS`. Semantics follow tfjs-layers 4.22 (and so Keras/TensorFlow): 'same' padding puts
 * the odd pixel at the end, average pooling excludes padding from its count, Flatten orders
 * elements h, w, c.
 */
import type { OnnxGraph } from './graph.js';
import { type ExportContext, layoutFor, type Shape, type Value } from './values.js';

type AnyLayer = any;

export type Converter = (
  ctx: ExportContext,
  layer: AnyLayer,
  inputs: Value[],
  outShape: Shape,
) => Value;

/** A copy of a layer variable's values (folding edits them in place). */
function weight(layer: AnyLayer, field: string): Float32Array | null {
  const variable = layer[field];
  if (variable === null || variable === undefined) return null;
  return (variable.read().dataSync() as Float32Array).slice();
}

function requireWeight(layer: AnyLayer, field: string): Float32Array {
  const w = weight(layer, field);
  if (!w) throw new Error(`layer '${layer.name}' has no ${field} (was it built?)`);
  return w;
}

function config(layer: AnyLayer): Record<string, unknown> {
  return layer.getConfig() as Record<string, unknown>;
}

function checkChannelsLast(layer: AnyLayer): void {
  const format = config(layer).dataFormat;
  if (format !== undefined && format !== 'channelsLast') {
    throw new UnsupportedLayerError(layer, `dataFormat '${String(format)}'`);
  }
}

export class UnsupportedLayerError extends Error {
  constructor(
    readonly layer: AnyLayer,
    readonly what: string,
  ) {
    super(`layer '${layer.name}' (${layer.getClassName()}): ${what} has no ONNX export`);
  }
}

/** [kh, kw, in, out] (tfjs) to [out, in, kh, kw] (ONNX). */
function convKernel(
  data: Float32Array,
  kh: number,
  kw: number,
  ci: number,
  co: number,
): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          out[((o * ci + i) * kh + y) * kw + x] = data[((y * kw + x) * ci + i) * co + o]!;
        }
  return out;
}

/** [kh, kw, in, mult] (tfjs depthwise) to [in * mult, 1, kh, kw] (ONNX grouped conv). */
function depthwiseKernel(
  data: Float32Array,
  kh: number,
  kw: number,
  ci: number,
  mult: number,
): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let m = 0; m < mult; m++) {
          out[((i * mult + m) * kh + y) * kw + x] = data[((y * kw + x) * ci + i) * mult + m]!;
        }
  return out;
}

/**
 * TensorFlow's padding for one spatial axis: 'valid' none; 'same' enough for ceil(in / stride)
 * outputs, the odd pixel at the end. `null` when the size is unknown and the padding depends on it.
 */
function axisPads(
  padding: string,
  size: number | null,
  kernel: number,
  stride: number,
  dilation: number,
): [number, number] | null {
  if (padding === 'valid') return [0, 0];
  const effective = (kernel - 1) * dilation + 1;
  let total: number;
  if (stride === 1) total = effective - 1;
  else if (size === null) return null;
  else total = Math.max((Math.ceil(size / stride) - 1) * stride + effective - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** ONNX spatial attributes: explicit pads where the size is known, SAME_UPPER (TF's) otherwise. */
function spatialAttributes(
  layer: AnyLayer,
  inShape: Shape,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): Record<string, { ints: number[] } | { string: string }> {
  const padding = String(config(layer).padding ?? 'valid');
  if (padding !== 'valid' && padding !== 'same') {
    throw new UnsupportedLayerError(layer, `padding '${padding}'`);
  }
  const h = axisPads(padding, inShape[1] ?? null, kernel[0], strides[0], dilations[0]);
  const w = axisPads(padding, inShape[2] ?? null, kernel[1], strides[1], dilations[1]);
  const attributes: Record<string, { ints: number[] } | { string: string }> = {
    kernel_shape: { ints: kernel },
    strides: { ints: strides },
  };
  if (h && w) attributes.pads = { ints: [h[0], w[0], h[1], w[1]] };
  else attributes.auto_pad = { string: 'SAME_UPPER' };
  return attributes;
}

function pair(value: unknown, fallback: number): [number, number] {
  if (value === undefined || value === null) return [fallback, fallback];
  if (typeof value === 'number') return [value, value];
  const list = value as number[];
  return [list[0]!, list[1] ?? list[0]!];
}

/** Applies a tfjs activation (by its serialized name) to a value; returns the new value's name. */
export function applyActivation(
  graph: OnnxGraph,
  name: string,
  input: string,
  activation: string,
  channelAxis: number,
  layer: AnyLayer,
): string {
  switch (activation) {
    case 'linear':
      return input;
    case 'relu':
      return graph.add('Relu', name, [input]);
    case 'relu6':
      return graph.add('Clip', name, [
        input,
        graph.scalar(`${name}_min`, 0),
        graph.scalar(`${name}_max`, 6),
      ]);
    case 'sigmoid':
      return graph.add('Sigmoid', name, [input]);
    case 'tanh':
      return graph.add('Tanh', name, [input]);
    case 'softmax':
      return graph.add('Softmax', name, [input], { axis: { int: channelAxis } });
    case 'logSoftmax':
      return graph.add('LogSoftmax', name, [input], { axis: { int: channelAxis } });
    case 'elu':
      return graph.add('Elu', name, [input], { alpha: { float: 1 } });
    case 'selu':
      return graph.add('Selu', name, [input]);
    case 'softplus':
      return graph.add('Softplus', name, [input]);
    case 'softsign':
      return graph.add('Softsign', name, [input]);
    case 'hardSigmoid':
      return graph.add('HardSigmoid', name, [input], {
        alpha: { float: 0.2 },
        beta: { float: 0.5 },
      });
    case 'swish':
      return graph.add('Mul', name, [input, graph.add('Sigmoid', `${name}_sigmoid`, [input])]);
    // Keras's hard_silu, `x * relu6(x + 3) / 6` (xfer registers it for MobileNetV3; ONNX's own
    // HardSwish needs opset 14): relu6(x + 3) / 6 is HardSigmoid with alpha 1/6, beta 1/2.
    case 'hardSilu':
    case 'hardSwish': {
      const gate = graph.add('HardSigmoid', `${name}_gate`, [input], {
        alpha: { float: 1 / 6 },
        beta: { float: 0.5 },
      });
      return graph.add('Mul', name, [input, gate]);
    }
    case 'mish': {
      const softplus = graph.add('Softplus', `${name}_softplus`, [input]);
      return graph.add('Mul', name, [input, graph.add('Tanh', `${name}_tanh`, [softplus])]);
    }
    case 'gelu': {
      const scaled = graph.add('Mul', `${name}_scaled`, [
        input,
        graph.scalar(`${name}_rsqrt2`, Math.SQRT1_2),
      ]);
      const erf = graph.add('Erf', `${name}_erf`, [scaled]);
      const onePlus = graph.add('Add', `${name}_1p`, [erf, graph.scalar(`${name}_one`, 1)]);
      const half = graph.add('Mul', `${name}_half`, [input, graph.scalar(`${name}_0.5`, 0.5)]);
      return graph.add('Mul', name, [half, onePlus]);
    }
    default:
      throw new UnsupportedLayerError(layer, `activation '${activation}'`);
  }
}

function activationOf(layer: AnyLayer): string {
  const activation = config(layer).activation;
  return typeof activation === 'string' ? activation : 'linear';
}

/** Axis of the channels inside the graph: 1 for NCHW values, the last for native ones. */
function channelAxis(shape: Shape, layout: Value['layout']): number {
  return layout === 'nchw' ? 1 : shape.length - 1;
}

function withActivation(ctx: ExportContext, layer: AnyLayer, value: Value): Value {
  const name = applyActivation(
    ctx.graph,
    `${layer.name}_act`,
    value.name,
    activationOf(layer),
    channelAxis(value.shape, value.layout),
    layer,
  );
  return { ...value, name };
}

const conv2d: Converter = (ctx, layer, [x], outShape) => {
  checkChannelsLast(layer);
  const kernelValues = requireWeight(layer, 'kernel');
  const [kh, kw] = pair(config(layer).kernelSize, 1);
  const co = Number(config(layer).filters);
  const ci = kernelValues.length / (kh * kw * co);
  const dilations = pair(config(layer).dilationRate, 1);
  const strides = pair(config(layer).strides, 1);
  const g = ctx.graph;
  const inputs = [
    ctx.nchw(x!),
    g.addInitializer(`${layer.name}_W`, [co, ci, kh, kw], convKernel(kernelValues, kh, kw, ci, co)),
  ];
  const bias = weight(layer, 'bias');
  if (bias) inputs.push(g.addInitializer(`${layer.name}_B`, [co], bias));
  const out = g.add('Conv', layer.name, inputs, {
    ...spatialAttributes(layer, x!.shape, [kh, kw], strides, dilations),
    dilations: { ints: dilations },
    group: { int: 1 },
  });
  return withActivation(ctx, layer, { name: out, shape: outShape, layout: 'nchw' });
};

const depthwiseConv2d: Converter = (ctx, layer, [x], outShape) => {
  checkChannelsLast(layer);
  const kernelValues = requireWeight(layer, 'depthwiseKernel');
  const [kh, kw] = pair(config(layer).kernelSize, 1);
  const mult = Number(config(layer).depthMultiplier ?? 1);
  const ci = kernelValues.length / (kh * kw * mult);
  const dilations = pair(config(layer).dilationRate, 1);
  const strides = pair(config(layer).strides, 1);
  const g = ctx.graph;
  const inputs = [
    ctx.nchw(x!),
    g.addInitializer(
      `${layer.name}_W`,
      [ci * mult, 1, kh, kw],
      depthwiseKernel(kernelValues, kh, kw, ci, mult),
    ),
  ];
  const bias = weight(layer, 'bias');
  if (bias) inputs.push(g.addInitializer(`${layer.name}_B`, [ci * mult], bias));
  const out = g.add('Conv', layer.name, inputs, {
    ...spatialAttributes(layer, x!.shape, [kh, kw], strides, dilations),
    dilations: { ints: dilations },
    group: { int: ci },
  });
  return withActivation(ctx, layer, { name: out, shape: outShape, layout: 'nchw' });
};

const separableConv2d: Converter = (ctx, layer, [x], outShape) => {
  checkChannelsLast(layer);
  const depthwise = requireWeight(layer, 'depthwiseKernel');
  const pointwise = requireWeight(layer, 'pointwiseKernel');
  const [kh, kw] = pair(config(layer).kernelSize, 1);
  const mult = Number(config(layer).depthMultiplier ?? 1);
  const co = Number(config(layer).filters);
  const ci = depthwise.length / (kh * kw * mult);
  const dilations = pair(config(layer).dilationRate, 1);
  const strides = pair(config(layer).strides, 1);
  const g = ctx.graph;
  const dw = g.add(
    'Conv',
    `${layer.name}_depthwise`,
    [
      ctx.nchw(x!),
      g.addInitializer(
        `${layer.name}_DW`,
        [ci * mult, 1, kh, kw],
        depthwiseKernel(depthwise, kh, kw, ci, mult),
      ),
    ],
    {
      ...spatialAttributes(layer, x!.shape, [kh, kw], strides, dilations),
      dilations: { ints: dilations },
      group: { int: ci },
    },
  );
  const inputs = [
    dw,
    g.addInitializer(
      `${layer.name}_PW`,
      [co, ci * mult, 1, 1],
      convKernel(pointwise, 1, 1, ci * mult, co),
    ),
  ];
  const bias = weight(layer, 'bias');
  if (bias) inputs.push(g.addInitializer(`${layer.name}_B`, [co], bias));
  const out = g.add('Conv', layer.name, inputs, { kernel_shape: { ints: [1, 1] } });
  return withActivation(ctx, layer, { name: out, shape: outShape, layout: 'nchw' });
};

const batchNormalization: Converter = (ctx, layer, [x], outShape) => {
  const axis = Number(config(layer).axis ?? -1);
  const rank = x!.shape.length;
  if (axis !== -1 && axis !== rank - 1) throw new UnsupportedLayerError(layer, `axis ${axis}`);
  if (rank !== 4 && rank !== 2) throw new UnsupportedLayerError(layer, `rank-${rank} input`);
  const mean = requireWeight(layer, 'movingMean');
  const channels = mean.length;
  const g = ctx.graph;
  const out = g.add(
    'BatchNormalization',
    layer.name,
    [
      ctx.nchw(x!),
      g.addInitializer(
        `${layer.name}_gamma`,
        [channels],
        weight(layer, 'gamma') ?? new Float32Array(channels).fill(1),
      ),
      g.addInitializer(
        `${layer.name}_beta`,
        [channels],
        weight(layer, 'beta') ?? new Float32Array(channels),
      ),
      g.addInitializer(`${layer.name}_mean`, [channels], mean),
      g.addInitializer(`${layer.name}_var`, [channels], requireWeight(layer, 'movingVariance')),
    ],
    { epsilon: { float: Number(config(layer).epsilon ?? 1e-3) } },
  );
  return { name: out, shape: outShape, layout: layoutFor(outShape) };
};

const activation: Converter = (ctx, layer, [x], outShape) => {
  const name = applyActivation(
    ctx.graph,
    layer.name,
    x!.name,
    activationOf(layer),
    channelAxis(x!.shape, x!.layout),
    layer,
  );
  return { name, shape: outShape, layout: x!.layout };
};

const reLU: Converter = (ctx, layer, [x], outShape) => {
  const maxValue = config(layer).maxValue as number | null | undefined;
  const g = ctx.graph;
  const name =
    maxValue === null || maxValue === undefined
      ? g.add('Relu', layer.name, [x!.name])
      : g.add('Clip', layer.name, [
          x!.name,
          g.scalar(`${layer.name}_min`, 0),
          g.scalar(`${layer.name}_max`, maxValue),
        ]);
  return { name, shape: outShape, layout: x!.layout };
};

const leakyReLU: Converter = (ctx, layer, [x], outShape) => ({
  name: ctx.graph.add('LeakyRelu', layer.name, [x!.name], {
    alpha: { float: Number(config(layer).alpha ?? 0.3) },
  }),
  shape: outShape,
  layout: x!.layout,
});

const elu: Converter = (ctx, layer, [x], outShape) => ({
  name: ctx.graph.add('Elu', layer.name, [x!.name], {
    alpha: { float: Number(config(layer).alpha ?? 1) },
  }),
  shape: outShape,
  layout: x!.layout,
});

const softmax: Converter = (ctx, layer, [x], outShape) => {
  const axis = Number(config(layer).axis ?? -1);
  const rank = x!.shape.length;
  if (axis !== -1 && axis !== rank - 1) throw new UnsupportedLayerError(layer, `axis ${axis}`);
  return {
    name: ctx.graph.add('Softmax', layer.name, [x!.name], {
      axis: { int: channelAxis(x!.shape, x!.layout) },
    }),
    shape: outShape,
    layout: x!.layout,
  };
};

const identity: Converter = (_ctx, _layer, [x], outShape) => ({ ...x!, shape: outShape });

const zeroPadding2d: Converter = (ctx, layer, [x], outShape) => {
  checkChannelsLast(layer);
  const padding = config(layer).padding as [[number, number], [number, number]];
  const [[top, bottom], [left, right]] = padding;
  const g = ctx.graph;
  const name = g.add('Pad', layer.name, [
    ctx.nchw(x!),
    g.int64(`${layer.name}_pads`, [0, 0, top, left, 0, 0, bottom, right]),
  ]);
  return { name, shape: outShape, layout: 'nchw' };
};

function pooling(op: 'MaxPool' | 'AveragePool'): Converter {
  return (ctx, layer, [x], outShape) => {
    checkChannelsLast(layer);
    const kernel = pair(config(layer).poolSize, 2);
    const strides = pair(config(layer).strides ?? config(layer).poolSize, 2);
    const name = ctx.graph.add(op, layer.name, [ctx.nchw(x!)], {
      ...spatialAttributes(layer, x!.shape, kernel, strides, [1, 1]),
    });
    return { name, shape: outShape, layout: 'nchw' };
  };
}

function globalPooling(op: 'GlobalAveragePool' | 'GlobalMaxPool'): Converter {
  return (ctx, layer, [x], outShape) => {
    checkChannelsLast(layer);
    const pooled = ctx.graph.add(op, layer.name, [ctx.nchw(x!)]);
    if (outShape.length === 4) return { name: pooled, shape: outShape, layout: 'nchw' };
    return {
      name: ctx.graph.add('Flatten', `${layer.name}_flat`, [pooled], { axis: { int: 1 } }),
      shape: outShape,
      layout: 'native',
    };
  };
}

function elementwise(op: 'Sum' | 'Mul' | 'Mean' | 'Max' | 'Min' | 'Sub'): Converter {
  return (ctx, layer, inputs, outShape) => {
    const ranks = new Set(inputs.map((v) => v.shape.length));
    if (ranks.size !== 1) throw new UnsupportedLayerError(layer, 'inputs of different ranks');
    // Keep the layout most inputs already have: NCHW inside a conv net.
    const nchw = outShape.length === 4 && inputs.some((v) => v.layout === 'nchw');
    const names = inputs.map((v) => (nchw ? ctx.nchw(v) : ctx.native(v)));
    const name = ctx.graph.add(op, layer.name, names);
    return { name, shape: outShape, layout: nchw ? 'nchw' : 'native' };
  };
}

const concatenate: Converter = (ctx, layer, inputs, outShape) => {
  const rank = outShape.length;
  let axis = Number(config(layer).axis ?? -1);
  if (axis < 0) axis += rank;
  const nchw = rank === 4;
  const names = inputs.map((v) => (nchw ? ctx.nchw(v) : ctx.native(v)));
  const onnxAxis = nchw ? [0, 2, 3, 1][axis]! : axis;
  const name = ctx.graph.add('Concat', layer.name, names, { axis: { int: onnxAxis } });
  return { name, shape: outShape, layout: nchw ? 'nchw' : 'native' };
};

const flatten: Converter = (ctx, layer, [x], outShape) => ({
  name: ctx.graph.add('Flatten', layer.name, [ctx.native(x!)], { axis: { int: 1 } }),
  shape: outShape,
  layout: 'native',
});

const reshape: Converter = (ctx, layer, [x], outShape) => {
  const target = config(layer).targetShape as number[];
  const g = ctx.graph;
  // 0 copies the batch size; a -1 in the target stays for ONNX to infer, as tfjs does.
  const name = g.add('Reshape', layer.name, [
    ctx.native(x!),
    g.int64(`${layer.name}_shape`, [0, ...target]),
  ]);
  return { name, shape: outShape, layout: 'native' };
};

const dense: Converter = (ctx, layer, [x], outShape) => {
  const kernel = requireWeight(layer, 'kernel');
  const units = Number(config(layer).units);
  const inDim = kernel.length / units;
  const g = ctx.graph;
  const bias = weight(layer, 'bias');
  let name: string;
  if (x!.shape.length === 4 && x!.layout === 'nchw') {
    // A Dense on a feature map is a 1x1 convolution: the map stays NCHW, no transposes around it
    // (ConvNeXt's pointwise layers between its depthwise convolutions).
    const inputs = [
      x!.name,
      g.addInitializer(
        `${layer.name}_W`,
        [units, inDim, 1, 1],
        convKernel(kernel, 1, 1, inDim, units),
      ),
    ];
    if (bias) inputs.push(g.addInitializer(`${layer.name}_B`, [units], bias));
    name = g.add('Conv', layer.name, inputs, { kernel_shape: { ints: [1, 1] } });
    return withActivation(ctx, layer, { name, shape: outShape, layout: 'nchw' });
  }
  const w = () => g.addInitializer(`${layer.name}_W`, [inDim, units], kernel);
  if (x!.shape.length === 2) {
    const inputs = [x!.name, w()];
    if (bias) inputs.push(g.addInitializer(`${layer.name}_B`, [units], bias));
    name = g.add('Gemm', layer.name, inputs);
  } else {
    name = g.add('MatMul', bias ? `${layer.name}_matmul` : layer.name, [ctx.native(x!), w()]);
    if (bias)
      name = g.add('Add', layer.name, [name, g.addInitializer(`${layer.name}_B`, [units], bias)]);
  }
  return withActivation(ctx, layer, { name, shape: outShape, layout: 'native' });
};

/**
 * A per-channel constant (last axis in tfjs) shaped to broadcast against `x` in its graph layout:
 * `[C, 1, 1]` for NCHW values, `[C]` otherwise; a number stays a scalar.
 */
function channelConstant(
  ctx: ExportContext,
  stem: string,
  x: Value,
  value: number | ArrayLike<number>,
): string {
  if (typeof value === 'number') return ctx.graph.scalar(stem, value);
  const data = Float32Array.from(value);
  const dims = x.layout === 'nchw' ? [data.length, 1, 1] : [data.length];
  return ctx.graph.addInitializer(stem, dims, data);
}

const rescaling: Converter = (ctx, layer, [x], outShape) => {
  const { scale, offset } = config(layer) as { scale: unknown; offset: unknown };
  const valid = (v: unknown) =>
    typeof v === 'number' || (Array.isArray(v) && v.every((e) => typeof e === 'number'));
  if (!valid(scale) || !valid(offset ?? 0)) {
    throw new UnsupportedLayerError(layer, 'a scale or offset that is not a number or list');
  }
  const g = ctx.graph;
  let name = g.add('Mul', `${layer.name}_scale`, [
    x!.name,
    channelConstant(ctx, `${layer.name}_s`, x!, scale as number | number[]),
  ]);
  name = g.add('Add', layer.name, [
    name,
    channelConstant(ctx, `${layer.name}_o`, x!, (offset ?? 0) as number | number[]),
  ]);
  return { name, shape: outShape, layout: x!.layout };
};

/**
 * Keras's `Normalization` (xfer's own layer, tfjs-layers has none): `(x - mean) / max(sqrt(var),
 * 1e-7)` per channel, or its inverse, written as one Mul and one Add.
 */
const normalization: Converter = (ctx, layer, [x], outShape) => {
  const mean = weight(layer, 'meanWeight') ?? Float32Array.from(layer.fixedMean as number[]);
  const variance =
    weight(layer, 'varianceWeight') ?? Float32Array.from(layer.fixedVariance as number[]);
  const channels = mean.length;
  const scale = new Float32Array(channels);
  const offset = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const std = Math.max(Math.sqrt(variance[c]!), 1e-7);
    scale[c] = layer.invert ? std : 1 / std;
    offset[c] = layer.invert ? mean[c]! : -mean[c]! / std;
  }
  const g = ctx.graph;
  let name = g.add('Mul', `${layer.name}_scale`, [
    x!.name,
    channelConstant(ctx, `${layer.name}_s`, x!, scale),
  ]);
  name = g.add('Add', layer.name, [name, channelConstant(ctx, `${layer.name}_o`, x!, offset)]);
  return { name, shape: outShape, layout: x!.layout };
};

/**
 * tfjs's LayerNormalization over the last axis, `(x - mean) / sqrt(var + eps) * gamma + beta`,
 * written out in opset-13 ops in the order ORT's LayerNormFusion recognizes (ONNX's own
 * LayerNormalization op needs opset 17). A 4-D value stays NCHW and is normalized over axis 1.
 */
const layerNormalization: Converter = (ctx, layer, [x], outShape) => {
  const rank = x!.shape.length;
  const axes = [config(layer).axis ?? -1].flat() as number[];
  if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) {
    throw new UnsupportedLayerError(layer, `axis ${JSON.stringify(config(layer).axis)}`);
  }
  const axis = channelAxis(x!.shape, x!.layout);
  const epsilon = Number(config(layer).epsilon ?? 1e-3);
  const g = ctx.graph;
  const n = layer.name;
  const reduce = { axes: { ints: [axis] }, keepdims: { int: 1 } };
  const mean = g.add('ReduceMean', `${n}_mean`, [x!.name], reduce);
  const centered = g.add('Sub', `${n}_centered`, [x!.name, mean]);
  const squared = g.add('Pow', `${n}_squared`, [centered, g.scalar(`${n}_two`, 2)]);
  const variance = g.add('ReduceMean', `${n}_variance`, [squared], reduce);
  const std = g.add('Sqrt', `${n}_std`, [
    g.add('Add', `${n}_var_eps`, [variance, g.scalar(`${n}_epsilon`, epsilon)]),
  ]);
  let name = g.add('Div', `${n}_normalized`, [centered, std]);
  const gamma = weight(layer, 'gamma');
  const beta = weight(layer, 'beta');
  if (gamma)
    name = g.add('Mul', `${n}_scaled`, [name, channelConstant(ctx, `${n}_gamma`, x!, gamma)]);
  if (beta) name = g.add('Add', n, [name, channelConstant(ctx, `${n}_beta`, x!, beta)]);
  return { name, shape: outShape, layout: x!.layout };
};

/** Keras's LayerScale (xfer's, for ConvNeXt): the input times a learned per-channel `gamma`. */
const layerScale: Converter = (ctx, layer, [x], outShape) => {
  const name = ctx.graph.add('Mul', layer.name, [
    x!.name,
    channelConstant(ctx, `${layer.name}_gamma`, x!, requireWeight(layer, 'gamma')),
  ]);
  return { name, shape: outShape, layout: x!.layout };
};

const cropping2d: Converter = (ctx, layer, [x], outShape) => {
  checkChannelsLast(layer);
  const cropping = config(layer).cropping as [[number, number], [number, number]];
  const [[top, bottom], [left, right]] = cropping;
  const g = ctx.graph;
  // A negative end counts from the end, as Python's; no crop there reads to the end.
  const end = (crop: number) => (crop > 0 ? -crop : Number.MAX_SAFE_INTEGER);
  const name = g.add('Slice', layer.name, [
    ctx.nchw(x!),
    g.int64(`${layer.name}_starts`, [top, left]),
    g.int64(`${layer.name}_ends`, [end(bottom), end(right)]),
    g.int64(`${layer.name}_axes`, [2, 3]),
  ]);
  return { name, shape: outShape, layout: 'nchw' };
};

/** tfjs-layers class name → converter. */
export const CONVERTERS: Readonly<Record<string, Converter>> = {
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  BatchNormalization: batchNormalization,
  Activation: activation,
  ReLU: reLU,
  LeakyReLU: leakyReLU,
  ELU: elu,
  Softmax: softmax,
  ZeroPadding2D: zeroPadding2d,
  MaxPooling2D: pooling('MaxPool'),
  AveragePooling2D: pooling('AveragePool'),
  GlobalAveragePooling2D: globalPooling('GlobalAveragePool'),
  GlobalMaxPooling2D: globalPooling('GlobalMaxPool'),
  Add: elementwise('Sum'),
  Multiply: elementwise('Mul'),
  Average: elementwise('Mean'),
  Maximum: elementwise('Max'),
  Minimum: elementwise('Min'),
  Concatenate: concatenate,
  Flatten: flatten,
  Reshape: reshape,
  Dense: dense,
  Rescaling: rescaling,
  Normalization: normalization,
  LayerNormalization: layerNormalization,
  LayerScale: layerScale,
  Cropping2D: cropping2d,
  // Inference-mode identities (Keras applies them only in training).
  Dropout: identity,
  SpatialDropout1D: identity,
  SpatialDropout2D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,
};

/** Layers that compute something else in training mode than in inference mode. */
export const TRAINING_DEPENDENT = new Set([
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
]);
