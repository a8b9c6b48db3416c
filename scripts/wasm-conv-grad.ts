/**
 * A stopgap `Conv2DBackpropFilter` for the wasm backend, for the demo scripts only: tfjs-backend-wasm
 * 4.22.0 has no such kernel, and tfjs-backend-cpu's takes ~9 s per call on a 64x14x14x16 batch
 * (it indexes a TensorBuffer per element), which makes pretraining take hours. It registers
 * nothing when a real kernel is already registered (src/engine is getting one), so it can stay
 * until that lands and then be deleted.
 *
 * The filter gradient is itself a convolution: dW[kh, kw, ci, co] = sum over n, oh, ow of
 * x[n, oh*s + kh - padTop, ow*s + kw - padLeft, ci] * dy[n, oh, ow, co]. With x transposed to
 * [ci, H, W, n] as the "images" and dy transposed to [OH, OW, n, co] as the "filter", dilated by
 * the stride s, a stride-1 forward Conv2D (XNNPACK) computes [ci, KH, KW, co], which transposes
 * to [KH, KW, ci, co].
 */
import * as tf from '../src/engine/tf.js';

type Info = tf.TensorInfo;
type Run = (args: { inputs: Record<string, Info>; backend: unknown; attrs?: Record<string, unknown> }) => Info;

function kernel(name: string): Run {
  const config = tf.getKernel(name, 'wasm');
  if (config === undefined) throw new Error(`wasm kernel ${name} is not registered`);
  return config.kernelFunc as unknown as Run;
}

/** Registers the stopgap kernel when the wasm backend is active and has none; true if it did. */
export function ensureWasmConvFilterGradient(): boolean {
  if (tf.getBackend() !== 'wasm' || tf.getKernel('Conv2DBackpropFilter', 'wasm') !== undefined) {
    return false;
  }
  const conv2d = kernel('Conv2D');
  const transpose = kernel('Transpose');
  const slice = kernel('Slice');
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      const be = backend as { disposeData(id: object): void };
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        a.filterShape,
        a.strides,
        1,
        a.pad,
        a.dimRoundingMode,
        false,
        tf.backend_util.convertConv2DDataFormat(a.dataFormat),
      );
      if (info.dataFormat !== 'channelsLast') throw new Error('only NHWC is supported');
      const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
      const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w } = info;
      const top = info.padInfo.top;
      const left = info.padInfo.left;
      // The padding after the input that makes the valid output exactly KH x KW; negative means
      // the last rows/columns of x never reach the output and are cropped instead.
      const bottom = kh + (oh - 1) * sh - h - top;
      const right = kw + (ow - 1) * sw - w - left;
      const temps: Info[] = [];
      let xs = x;
      if (bottom < 0 || right < 0) {
        xs = slice({
          inputs: { x },
          backend,
          attrs: { begin: [0, 0, 0, 0], size: [-1, h + Math.min(bottom, 0), w + Math.min(right, 0), -1] },
        });
        temps.push(xs);
      }
      const xT = transpose({ inputs: { x: xs }, backend, attrs: { perm: [3, 1, 2, 0] } });
      const dyT = transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } });
      temps.push(xT, dyT);
      const grad = conv2d({
        inputs: { x: xT, filter: dyT },
        backend,
        attrs: {
          strides: [1, 1],
          pad: [
            [0, 0],
            [top, Math.max(bottom, 0)],
            [left, Math.max(right, 0)],
            [0, 0],
          ],
          dilations: [sh, sw],
          dataFormat: 'NHWC',
          dimRoundingMode: undefined,
        },
      });
      temps.push(grad);
      const out = transpose({ inputs: { x: grad }, backend, attrs: { perm: [1, 2, 0, 3] } });
      for (const t of temps) be.disposeData(t.dataId);
      return out;
    },
  });
  return true;
}
