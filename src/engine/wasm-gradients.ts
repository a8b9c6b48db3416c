/**
 * Convolution gradients for the wasm backend, so that Conv2D, DepthwiseConv2D and SeparableConv2D
 * layers train on it. tfjs-backend-wasm 4.22.0 has no Conv2DBackpropFilter,
 * DepthwiseConv2dNativeBackpropFilter or DepthwiseConv2dNativeBackpropInput, and its
 * Conv2DBackpropInput is a scalar C++ loop about 8x slower than the forward convolution. Each
 * kernel here is rewritten as forward convolutions that the backend runs in XNNPACK, with only
 * transposes, reshapes and memory copies around them: no arithmetic in JavaScript.
 *
 * Notation (NHWC): x [B, H, W, C], filter [fh, fw, C, Co] (depthwise: [fh, fw, C, M]),
 * dy [B, oh, ow, Co] (depthwise: C·M channels); s = stride, d = dilation, p = leading padding.
 */
import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  DepthwiseConv2dNativeBackpropFilter,
  type DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInput,
  type DepthwiseConv2dNativeBackpropInputAttrs,
  getKernel,
  type KernelBackend,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
// The backend's own kernels must be registered first, so that ours can replace one of them.
import '@tensorflow/tfjs-backend-wasm';
import { fitAxis, WasmKernelOps } from './wasm-kernel-ops.js';
import { type Padding, transposedConv } from './wasm-transposed-conv.js';

/** n − 1, …, 1, 0: the taps of a filter axis, flipped. */
function descending(n: number): number[] {
  return Array.from({ length: n }, (_, i) => n - 1 - i);
}

function withOps(
  backend: KernelBackend,
  inputs: TensorInfo[],
  body: (ops: WasmKernelOps) => TensorInfo,
): TensorInfo {
  for (const t of inputs) {
    if (t.dtype !== 'float32')
      throw new Error(`convolution gradients need float32 tensors, got ${t.dtype}.`);
  }
  const ops = new WasmKernelOps(backend);
  try {
    return ops.keep(body(ops));
  } finally {
    ops.dispose();
  }
}

/**
 * dW[kh, kw, ci, co] = Σ_{b, oy, ox} x[b, oy·s + kh·d − p, ox·s + kw·d − p, ci] · dy[b, oy, ox, co]
 * is a convolution of x viewed as [Ci, H, W, B] (channels = batch) with dy viewed as the filter
 * [oh, ow, B, Co], whose stride is the forward dilation and whose dilation is the forward stride.
 * The result [Ci, fh, fw, Co] is transposed to [fh, fw, Ci, Co].
 */
function conv2DBackpropFilter(args: {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: KernelBackend;
  attrs: Conv2DBackpropFilterAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
  const format = backend_util.convertConv2DDataFormat(dataFormat);
  const info = backend_util.computeConv2DInfo(
    inputs.x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    format,
  );
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: Ci, outChannels: Co } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  return withOps(backend, [inputs.x, inputs.dy], (ops) => {
    let { x, dy } = inputs;
    if (format === 'channelsFirst') {
      x = ops.transpose(ops.reshape(x, [B, Ci, H * W]), [0, 2, 1]);
      dy = ops.transpose(ops.reshape(dy, [B, Co, oh * ow]), [0, 2, 1]);
    }
    const rows = fitAxis(H, info.padInfo.top, fh, oh, info.strideHeight, info.dilationHeight);
    const cols = fitAxis(W, info.padInfo.left, fw, ow, info.strideWidth, info.dilationWidth);
    let xT = ops.reshape(ops.transpose(ops.reshape(x, [B, H * W, Ci]), [2, 1, 0]), [Ci, H, W, B]);
    xT = ops.slice(
      xT,
      [0, rows.cropBefore, cols.cropBefore, 0],
      [Ci, H - rows.cropBefore - rows.cropAfter, W - cols.cropBefore - cols.cropAfter, B],
    );
    const dyT = ops.reshape(ops.transpose(ops.reshape(dy, [B, oh * ow, Co]), [1, 0, 2]), [
      oh,
      ow,
      B,
      Co,
    ]);
    const padding: Padding = [
      [0, 0],
      [rows.padBefore, rows.padAfter],
      [cols.padBefore, cols.padAfter],
      [0, 0],
    ];
    const dW = ops.run(
      'Conv2D',
      { x: xT, filter: dyT },
      {
        strides: [info.dilationHeight, info.dilationWidth],
        dilations: [info.strideHeight, info.strideWidth],
        pad: padding,
        dataFormat: 'NHWC',
      },
    );
    return ops.reshape(ops.transpose(ops.reshape(dW, [Ci, fh * fw, Co]), [1, 0, 2]), filterShape);
  });
}

/**
 * dx[b, y, x, ci] = Σ_{kh, kw, co} dy[b, (y + p − kh) / s, …, co] · f[kh, kw, ci, co] is a
 * convolution of dy by the filter with its channel axes swapped ([fh, fw, Co, Ci]) and its taps
 * reversed; for s > 1, one convolution per output phase (see transposedConv).
 */
function conv2DBackpropInput(args: {
  inputs: { dy: TensorInfo; filter: TensorInfo };
  backend: KernelBackend;
  attrs: Conv2DBackpropInputAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs;
  const format = backend_util.convertConv2DDataFormat(dataFormat);
  const filter = inputs.filter;
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    format,
  );
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: Ci, outChannels: Co } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  return withOps(backend, [inputs.dy, filter], (ops) => {
    let dy = inputs.dy;
    if (format === 'channelsFirst') {
      dy = ops.reshape(ops.transpose(ops.reshape(dy, [B, Co, oh * ow]), [0, 2, 1]), [
        B,
        oh,
        ow,
        Co,
      ]);
    }
    // [fh, fw, Co, Ci] maps dy's channels to x's; its taps are then reversed.
    const swapped = ops.transpose(ops.reshape(filter, [fh * fw, Ci, Co]), [0, 2, 1]);
    const flipped = ops.taps(
      ops.reshape(swapped, [fh, fw, Co, Ci]),
      descending(fh),
      descending(fw),
    );
    const dx = transposedConv(
      ops,
      dy,
      flipped,
      Ci,
      info,
      (x, f, dilations, pad) =>
        ops.run(
          'Conv2D',
          { x, filter: f },
          { strides: [1, 1], dilations, pad, dataFormat: 'NHWC' },
        ),
      'phases',
    );
    if (format === 'channelsLast') return dx;
    return ops.reshape(ops.transpose(ops.reshape(dx, [B, H * W, Ci]), [0, 2, 1]), [B, Ci, H, W]);
  });
}

/**
 * dx[b, y, x, c] = Σ_{kh, kw, m} dy[b, (y + p − kh·d) / s, …, c·M + m] · f[kh, kw, c, m] is a
 * stride-1 depthwise convolution, dilated by d, of dy with s − 1 zeros inserted between its
 * elements, with the spatially flipped filter viewed as [fh, fw, C·M, 1]; the M outputs of each
 * input channel are then summed.
 */
function depthwiseConv2dNativeBackpropInput(args: {
  inputs: { dy: TensorInfo; filter: TensorInfo };
  backend: KernelBackend;
  attrs: DepthwiseConv2dNativeBackpropInputAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { strides, dilations, pad, dimRoundingMode, inputShape } = attrs;
  const filter = inputs.filter;
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    true,
  );
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outChannels: CM } = info;
  const { filterHeight: fh, filterWidth: fw } = info;
  return withOps(backend, [inputs.dy, filter], (ops) => {
    const flipped = ops.taps(ops.reshape(filter, [fh, fw, CM, 1]), descending(fh), descending(fw));
    const dx = transposedConv(
      ops,
      inputs.dy,
      flipped,
      CM,
      info,
      (x, f, dilations, pad) =>
        ops.run('DepthwiseConv2dNative', { x, filter: f }, { strides: [1, 1], dilations, pad }),
      'spread',
    );
    if (CM === C) return dx;
    return ops.reshape(ops.sumLastAxis(ops.reshape(dx, [B, H, W, C, CM / C])), [B, H, W, C]);
  });
}

/**
 * Bytes of input that one depthwise-convolution call of the filter gradient reads. XNNPACK runs
 * that call as one small GEMM per channel, each reading every pixel of its channel; with all
 * channels interleaved in one image, each read is a cache miss. Chunks of about a cache's size
 * made x [16, 112, 112, 96] twice as fast; 32 KiB to 2 MiB measured about the same.
 */
const CHUNK_BYTES = 256 * 1024;

/** The largest divisor of `channels` whose chunk of `bytesPerChannel` each stays in budget. */
function chunkChannels(channels: number, bytesPerChannel: number): number {
  let best = 1;
  for (let g = 1; g <= channels; g++) {
    if (channels % g === 0 && g * bytesPerChannel <= CHUNK_BYTES) best = g;
  }
  return best;
}

/**
 * dW[kh, kw, c, m] = Σ_{b, oy, ox} x[b, oy·s + kh·d − p, …, c] · dy[b, oy, ox, c·M + m] is a
 * depthwise convolution over one image whose channels are the (c, b) pairs: x viewed as
 * [1, H, W, C·B] with dy viewed as the filter [oh, ow, C·B, M], stride d and dilation s. Summing
 * its [fh, fw, C, B, M] output over b gives the gradient. The channels are split into chunks of
 * g input channels, laid out contiguously ([C/g, H, W, g·B]) so each call reads compact memory.
 */
function depthwiseConv2dNativeBackpropFilter(args: {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: KernelBackend;
  attrs: DepthwiseConv2dNativeBackpropFilterAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { strides, dilations, pad, dimRoundingMode, filterShape } = attrs;
  const info = backend_util.computeConv2DInfo(
    inputs.x.shape as [number, number, number, number],
    filterShape,
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    true,
  );
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outChannels: CM } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  const M = CM / C;
  const g = chunkChannels(C, H * W * B * 4);
  const chunks = C / g;
  return withOps(backend, [inputs.x, inputs.dy], (ops) => {
    const rows = fitAxis(H, info.padInfo.top, fh, oh, info.strideHeight, info.dilationHeight);
    const cols = fitAxis(W, info.padInfo.left, fw, ow, info.strideWidth, info.dilationWidth);
    const [h, w] = [H - rows.cropBefore - rows.cropAfter, W - cols.cropBefore - cols.cropAfter];
    // [B, H·W·C] → [H·W, C/g, g·B] is a plain 2-D transpose; chunk-major order needs one more.
    let xT = ops.transpose(ops.reshape(inputs.x, [B, H * W * C]), [1, 0]);
    if (chunks > 1) xT = ops.transpose(ops.reshape(xT, [H * W, chunks, g * B]), [1, 0, 2]);
    xT = ops.slice(
      ops.reshape(xT, [chunks, H, W, g * B]),
      [0, rows.cropBefore, cols.cropBefore, 0],
      [chunks, h, w, g * B],
    );
    let dyT =
      M === 1
        ? ops.transpose(ops.reshape(inputs.dy, [B, oh * ow * C]), [1, 0])
        : ops.transpose(ops.reshape(inputs.dy, [B, oh * ow * C, M]), [1, 0, 2]);
    if (chunks > 1) dyT = ops.transpose(ops.reshape(dyT, [oh * ow, chunks, g * B * M]), [1, 0, 2]);
    const dyChunks = ops.reshape(dyT, [chunks, oh, ow, g * B * M]);
    const attrs = {
      strides: [info.dilationHeight, info.dilationWidth],
      dilations: [info.strideHeight, info.strideWidth],
      pad: [
        [0, 0],
        [rows.padBefore, rows.padAfter],
        [cols.padBefore, cols.padAfter],
        [0, 0],
      ],
    };
    const parts: TensorInfo[] = [];
    for (let j = 0; j < chunks; j++) {
      const xj = chunks === 1 ? xT : ops.slab(xT, j);
      const dyj = chunks === 1 ? dyChunks : ops.slab(dyChunks, j);
      const filter = ops.reshape(dyj, [oh, ow, g * B, M]);
      parts.push(
        ops.reshape(ops.run('DepthwiseConv2dNative', { x: xj, filter }, attrs), [
          fh * fw,
          g * B * M,
        ]),
      );
      if (chunks > 1) ops.release(xj, dyj, filter);
    }
    const perPair =
      parts.length === 1
        ? parts[0]
        : ops.run('Concat', parts as unknown as NamedTensorInfoMap, { axis: 1 });
    const byBatch =
      M === 1
        ? ops.reshape(perPair, [fh * fw * C, B])
        : ops.transpose(ops.reshape(perPair, [fh * fw * C, B, M]), [0, 2, 1]);
    return ops.reshape(ops.sumLastAxis(byBatch), filterShape);
  });
}

/** Kernels that tfjs-backend-wasm 4.22.0 lacks: registered only where none is. */
const MISSING_KERNELS: KernelConfig[] = [
  {
    kernelName: Conv2DBackpropFilter,
    backendName: 'wasm',
    kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
  },
  {
    kernelName: DepthwiseConv2dNativeBackpropInput,
    backendName: 'wasm',
    kernelFunc: depthwiseConv2dNativeBackpropInput as unknown as KernelFunc,
  },
  {
    kernelName: DepthwiseConv2dNativeBackpropFilter,
    backendName: 'wasm',
    kernelFunc: depthwiseConv2dNativeBackpropFilter as unknown as KernelFunc,
  },
];

/** Kernels whose tfjs-backend-wasm 4.22.0 version is far slower than the rewrite: replaced. */
const REPLACED_KERNELS: KernelConfig[] = [
  {
    kernelName: Conv2DBackpropInput,
    backendName: 'wasm',
    kernelFunc: conv2DBackpropInput as unknown as KernelFunc,
  },
];

/** The backend's own versions of REPLACED_KERNELS, for the benchmark that compares them. */
const replacedKernels = new Map<string, KernelConfig>();

/**
 * Registers xfer's convolution-gradient kernels for the wasm backend: `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropInput` and `DepthwiseConv2dNativeBackpropFilter` (missing from
 * tfjs-backend-wasm 4.22.0; a kernel that a later release brings is left alone) and a faster
 * `Conv2DBackpropInput`. Idempotent; importing xfer's engine already does it.
 * @example
 * registerWasmGradients();
 * await tf.setBackend('wasm');
 * const { grads } = tf.variableGrads(() => tf.losses.meanSquaredError(y, model.predict(x)));
 */
export function registerWasmGradients(): void {
  for (const config of MISSING_KERNELS) {
    if (getKernel(config.kernelName, 'wasm') === undefined) registerKernel(config);
  }
  for (const config of REPLACED_KERNELS) {
    const current = getKernel(config.kernelName, 'wasm');
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (current !== undefined) {
      replacedKernels.set(config.kernelName, current);
      unregisterKernel(config.kernelName, 'wasm');
    }
    registerKernel(config);
  }
}

/**
 * The tfjs-backend-wasm kernel that `registerWasmGradients` replaced, if any. Its `setupFunc`
 * has not run (the wasm backend sets up registered kernels only): call it before `kernelFunc`.
 */
export function replacedWasmKernel(kernelName: string): KernelConfig | undefined {
  return replacedKernels.get(kernelName);
}

registerWasmGradients();
