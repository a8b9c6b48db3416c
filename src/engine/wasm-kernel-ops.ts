/**
 * Composes kernels of the wasm backend at the TensorInfo level, the way the backends' own kernels
 * call each other. Running them through the engine (`tf.*` ops) would also work, but would pay
 * the ops' argument checks (tf.conv2d refuses a stride and a dilation both above 1, which the
 * filter-gradient rewrite needs) and track every intermediate as a user-visible tensor.
 */
import {
  getKernel,
  type KernelBackend,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm used here (the class is not exported by type). */
interface WasmBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

/**
 * One kernel invocation's scratch space: every tensor made through it is freed by `dispose()`
 * except those handed out with `keep()`.
 */
export class WasmKernelOps {
  private readonly temporaries: TensorInfo[] = [];

  private readonly backend: WasmBackend;

  constructor(backend: KernelBackend) {
    this.backend = backend as WasmBackend;
  }

  /** Runs the wasm kernel `kernelName` and tracks its output as a temporary. */
  run(kernelName: string, inputs: NamedTensorInfoMap, attrs: object = {}): TensorInfo {
    const kernel = getKernel(kernelName, 'wasm');
    if (kernel === undefined) {
      throw new Error(
        `the wasm backend has no '${kernelName}' kernel, which xfer's gradients need.`,
      );
    }
    const out = kernel.kernelFunc({
      inputs,
      attrs: attrs as NamedAttrMap,
      backend: this.backend,
    }) as TensorInfo;
    this.temporaries.push(out);
    return out;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    if (sameShape(x.shape, shape)) return x;
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** Crops `x` to `size` elements from `begin`; a no-op when nothing is cut. */
  slice(x: TensorInfo, begin: number[], size: number[]): TensorInfo {
    if (begin.every((b) => b === 0) && sameShape(x.shape, size)) return x;
    return this.run('Slice', { x }, { begin, size });
  }

  /**
   * `x[index]` of a float32 tensor, kept as a leading axis of 1. The wasm Slice kernel reads the
   * whole of `x` into JavaScript first (`readSync`), which costs far more than this one memmove.
   */
  slab(x: TensorInfo, index: number): TensorInfo {
    const shape = [1, ...x.shape.slice(1)];
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    const out = this.output(shape);
    const heap = this.heap(out);
    const from = this.offset(x) + index * bytes;
    heap.copyWithin(this.offset(out), from, from + bytes);
    return out;
  }

  /**
   * A filter [fh, fw, A, B] cut down to the taps `rows × cols`, in that order: out[i, j] =
   * filter[rows[i], cols[j]]. Reversed index lists flip it, every s-th index subsamples it; each
   * tap is one contiguous block, so this is a few memmoves where the wasm Reverse and StridedSlice
   * kernels take tens of milliseconds on a 3×3×512×512 filter.
   */
  taps(filter: TensorInfo, rows: number[], cols: number[]): TensorInfo {
    const [, fw, a, b] = filter.shape as [number, number, number, number];
    const block = a * b * 4;
    const out = this.output([rows.length, cols.length, a, b]);
    const heap = this.heap(out);
    const [from, to] = [this.offset(filter), this.offset(out)];
    rows.forEach((r, i) => {
      cols.forEach((c, j) => {
        const source = from + (r * fw + c) * block;
        heap.copyWithin(to + (i * cols.length + j) * block, source, source + block);
      });
    });
    return out;
  }

  /**
   * Interleaves the s_h·s_w output phases of a strided layer into NHWC [B, H, W, C]:
   * `phases[ry][rx]` holds the pixels (s_h·i + ry, s_w·j + rx) as [B, ⌈(H − ry)/s_h⌉, …, C], or
   * `undefined` where they are all zero.
   */
  interleave(
    phases: Array<Array<TensorInfo | undefined>>,
    shape: [number, number, number, number],
  ): TensorInfo {
    const [B, H, W, C] = shape;
    const [sh, sw] = [phases.length, phases[0]!.length];
    const out = this.output(shape);
    this.backend.typedArrayFromHeap(out).fill(0);
    const heap = this.heap(out);
    const base = this.offset(out);
    const pixel = C * 4;
    // Wasm tensors share one memory; TypedArray.set between two views of it copies the source to
    // a temporary first, copyWithin does not.
    for (let ry = 0; ry < sh; ry++) {
      for (let rx = 0; rx < sw; rx++) {
        const phase = phases[ry]![rx];
        if (phase === undefined) continue;
        const [, hr, wr] = phase.shape as [number, number, number];
        let from = this.offset(phase);
        for (let b = 0; b < B; b++) {
          for (let i = 0; i < hr; i++) {
            let to = base + ((b * H + sh * i + ry) * W + rx) * pixel;
            if (sw === 1) {
              heap.copyWithin(to, from, from + wr * pixel);
              from += wr * pixel;
              continue;
            }
            for (let j = 0; j < wr; j++, from += pixel, to += sw * pixel)
              heap.copyWithin(to, from, from + pixel);
          }
        }
      }
    }
    return out;
  }

  /** Zero padding, `paddings[axis] = [before, after]`; a no-op when all are 0. */
  pad(x: TensorInfo, paddings: Array<[number, number]>): TensorInfo {
    if (paddings.every(([a, b]) => a === 0 && b === 0)) return x;
    return this.run('PadV2', { x }, { paddings, constantValue: 0 });
  }

  /** Sums over the last axis, which the wasm Sum kernel reduces without a transpose. */
  sumLastAxis(x: TensorInfo): TensorInfo {
    return this.run('Sum', { x }, { axis: [x.shape.length - 1], keepDims: false });
  }

  /** Takes `x` out of the scratch space: the caller owns it now. */
  keep(x: TensorInfo): TensorInfo {
    const index = this.temporaries.lastIndexOf(x);
    if (index >= 0) this.temporaries.splice(index, 1);
    return x;
  }

  /** Frees temporaries early, to bound the memory a loop of kernel calls holds. */
  release(...tensors: TensorInfo[]): void {
    for (const t of tensors) {
      const index = this.temporaries.lastIndexOf(t);
      if (index < 0) continue;
      this.temporaries.splice(index, 1);
      this.backend.disposeData(t.dataId);
    }
  }

  /** Frees every temporary. Reshapes share data with a reference count, so each is released once. */
  dispose(): void {
    for (const t of this.temporaries) this.backend.disposeData(t.dataId);
    this.temporaries.length = 0;
  }

  private output(shape: number[]): TensorInfo {
    const out = this.backend.makeOutput(shape, 'float32');
    this.temporaries.push(out);
    return out;
  }

  /** The whole wasm memory, as bytes; a fresh view, since growing the memory detaches old ones. */
  private heap(any: TensorInfo): Uint8Array {
    return new Uint8Array(this.backend.typedArrayFromHeap(any).buffer);
  }

  private offset(x: TensorInfo): number {
    return this.backend.typedArrayFromHeap(x).byteOffset;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/**
 * How a convolution must pad (or crop) one spatial axis so that its output has exactly `outSize`
 * positions, given the input length, the padding already wanted before it (may be negative:
 * then that many leading elements are cropped), the filter's tap count, dilation and the stride.
 */
export interface AxisFit {
  /** Leading elements to cut off the input. */
  cropBefore: number;
  /** Trailing elements to cut off the input. */
  cropAfter: number;
  /** Zeros the convolution adds before the input. */
  padBefore: number;
  /** Zeros the convolution adds after the input. */
  padAfter: number;
}

export function fitAxis(
  inSize: number,
  before: number,
  outSize: number,
  taps: number,
  dilation: number,
  stride: number,
): AxisFit {
  // Positions read: before + (outSize - 1) * stride + (taps - 1) * dilation + 1 in padded space.
  const span = (outSize - 1) * stride + (taps - 1) * dilation + 1;
  const after = span - before - inSize;
  return {
    cropBefore: Math.max(0, -before),
    cropAfter: Math.max(0, -after),
    padBefore: Math.max(0, before),
    padAfter: Math.max(0, after),
  };
}
