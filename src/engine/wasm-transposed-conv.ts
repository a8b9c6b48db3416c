/**
 * The input gradient of a convolution (a "transposed convolution") written as forward
 * convolutions that the wasm backend runs in XNNPACK. dx[y] = Σ_k dy[(y + p − k·d) / s] · f[k],
 * over the k for which the division is exact, in each spatial axis.
 */
import type { backend_util, TensorInfo } from '@tensorflow/tfjs-core';
import { fitAxis, type WasmKernelOps } from './wasm-kernel-ops.js';

export type Padding = Array<[number, number]>;

/**
 * A stride-1 forward convolution of NHWC `x` by `filter`, laid out as the kernel it runs expects
 * (Conv2D: [fh, fw, in, out]; DepthwiseConv2dNative: [fh, fw, in, 1]).
 */
export type ForwardConv = (
  x: TensorInfo,
  filter: TensorInfo,
  dilations: [number, number],
  pad: Padding,
) => TensorInfo;

/**
 * How a stride above 1 is undone. `phases`: one stride-1 convolution per output phase with the
 * filter taps that reach it, no wasted work (for Conv2D, whose GEMM costs what its taps cost).
 * `spread`: one convolution over dy with s − 1 zeros inserted between elements, s² times the
 * work, but with the full 3×3 filter: XNNPACK's depthwise convolution has a fast kernel for 3×3
 * taps and falls back to a slow GEMM for the 2×2, 2×1, … sub-filters of the phases.
 */
export type StrideStrategy = 'phases' | 'spread';

/**
 * dx [B, H, W, outChannels] for `dy` [B, oh, ow, in] and `flipped`, the forward filter reversed in
 * both spatial axes and laid out for `conv`, which maps dy's channels to `outChannels`.
 */
export function transposedConv(
  ops: WasmKernelOps,
  dy: TensorInfo,
  flipped: TensorInfo,
  outChannels: number,
  info: backend_util.Conv2DInfo,
  conv: ForwardConv,
  strategy: StrideStrategy,
): TensorInfo {
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  if (sh === 1 && sw === 1) return dilatedTransposedConv(ops, dy, flipped, info, conv);
  if (strategy === 'phases' && dh === 1 && dw === 1) {
    return phasedTransposedConv(ops, dy, flipped, outChannels, info, conv);
  }
  return dilatedTransposedConv(ops, spread(ops, dy, sh, sw), flipped, info, conv);
}

/**
 * Stride 1 (or dy already spread by the stride): output y reads dy row y + k·d − ((fh − 1)·d − p)
 * for k over the flipped filter's taps, one convolution.
 */
function dilatedTransposedConv(
  ops: WasmKernelOps,
  dy: TensorInfo,
  flipped: TensorInfo,
  info: backend_util.Conv2DInfo,
  conv: ForwardConv,
): TensorInfo {
  const { inHeight: H, inWidth: W, filterHeight: fh, filterWidth: fw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const rows = fitAxis(dy.shape[1]!, (fh - 1) * dh - info.padInfo.top, H, fh, dh, 1);
  const cols = fitAxis(dy.shape[2]!, (fw - 1) * dw - info.padInfo.left, W, fw, dw, 1);
  return conv(
    crop(ops, dy, rows, cols),
    flipped,
    [dh, dw],
    [
      [0, 0],
      [rows.padBefore, rows.padAfter],
      [cols.padBefore, cols.padAfter],
      [0, 0],
    ],
  );
}

/** Inserts `sh − 1` zero rows and `sw − 1` zero columns after every element of NHWC `dy`. */
function spread(ops: WasmKernelOps, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  const [B, oh, ow, C] = dy.shape as [number, number, number, number];
  const padded = ops.pad(ops.reshape(dy, [B * oh, 1, ow, 1, C]), [
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  return ops.reshape(padded, [B, oh * sh, ow * sw, C]);
}

function crop(
  ops: WasmKernelOps,
  x: TensorInfo,
  rows: ReturnType<typeof fitAxis>,
  cols: ReturnType<typeof fitAxis>,
): TensorInfo {
  const [B, h, w, C] = x.shape as [number, number, number, number];
  return ops.slice(
    x,
    [0, rows.cropBefore, cols.cropBefore, 0],
    [B, h - rows.cropBefore - rows.cropAfter, w - cols.cropBefore - cols.cropAfter, C],
  );
}

/** The taps of one output phase along one axis (dilation 1). */
interface AxisPhase {
  /** Outputs of this phase: y = phase, phase + s, … < size. */
  count: number;
  /** Filter taps that reach them. */
  taps: number;
  /** First of those taps in the flipped filter; the others follow every `s`. */
  firstFlipped: number;
  /** Zeros before dy, for the phase's convolution (negative: dy rows cropped). */
  before: number;
}

/** The flipped filter's taps that reach one phase: `firstFlipped`, then every `stride`-th. */
function everyNth(phase: AxisPhase, stride: number): number[] {
  return Array.from({ length: phase.taps }, (_, t) => phase.firstFlipped + stride * t);
}

function axisPhase(
  phase: number,
  size: number,
  stride: number,
  filterSize: number,
  padBefore: number,
): AxisPhase {
  // Output y = s·i + phase takes taps k ≡ phase + p (mod s), k = r + s·t, reading dy row i + q − t.
  const r = (phase + padBefore) % stride;
  const taps = r < filterSize ? Math.ceil((filterSize - r) / stride) : 0;
  const q = (phase + padBefore - r) / stride;
  return {
    count: phase < size ? Math.ceil((size - phase) / stride) : 0,
    taps,
    firstFlipped: filterSize - 1 - r - stride * (taps - 1),
    before: taps - 1 - q,
  };
}

/**
 * Stride s > 1, dilation 1: the outputs whose row is ≡ φ (mod s) only meet every s-th filter
 * tap, so each of the s² output phases is a stride-1 convolution of dy itself with a sub-filter
 * (no zeros inserted, so no wasted work); the phases are then interleaved.
 */
function phasedTransposedConv(
  ops: WasmKernelOps,
  dy: TensorInfo,
  flipped: TensorInfo,
  fout: number,
  info: backend_util.Conv2DInfo,
  conv: ForwardConv,
): TensorInfo {
  const { inHeight: H, inWidth: W, strideHeight: sh, strideWidth: sw } = info;
  const [B, oh, ow] = dy.shape as [number, number, number];
  const phases: Array<Array<TensorInfo | undefined>> = [];
  for (let ry = 0; ry < sh; ry++) {
    const row = axisPhase(ry, H, sh, info.filterHeight, info.padInfo.top);
    phases.push([]);
    for (let rx = 0; rx < sw; rx++) {
      const col = axisPhase(rx, W, sw, info.filterWidth, info.padInfo.left);
      if (row.count === 0 || col.count === 0 || row.taps === 0 || col.taps === 0) {
        phases[ry]!.push(undefined);
        continue;
      }
      const subFilter = ops.taps(flipped, everyNth(row, sh), everyNth(col, sw));
      const rows = fitAxis(oh, row.before, row.count, row.taps, 1, 1);
      const cols = fitAxis(ow, col.before, col.count, col.taps, 1, 1);
      phases[ry]!.push(
        conv(
          crop(ops, dy, rows, cols),
          subFilter,
          [1, 1],
          [
            [0, 0],
            [rows.padBefore, rows.padAfter],
            [cols.padBefore, cols.padAfter],
            [0, 0],
          ],
        ),
      );
    }
  }
  return ops.interleave(phases, [B, H, W, fout]);
}
