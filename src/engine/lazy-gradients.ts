/**
 * Backward passes that compute only the gradients somebody needs: a frozen layer costs no weight
 * gradient, and the first trainable layer no input gradient. Applied on import by patching
 * tfjs-layers' `Conv2D` and `Dense` (`src/engine/tf.ts` imports this module for its effect).
 *
 * Why: inside a gradient tape, tfjs-core runs a conv or matmul with a linear activation as ONE
 * fused op with a custom gradient (`tf.fused.conv2d` / `tf.fused.matMul`; `shouldFuse` in
 * fused_util.ts), and that gradient computes every input's gradient at once: a frozen Conv2D
 * between trainable layers still runs Conv2DBackpropFilter for a kernel nobody trains, and the
 * trainable conv just above a frozen backbone runs Conv2DBackpropInput toward layers nobody
 * trains. Unfused ops register one lazy gradient per input, and tfjs-core's backprop evaluates
 * only the inputs on a path from a trained variable (tape.ts, `getFilteredNodesXToY`). So while
 * a gradient is recorded these two layers run unfused: the same conv (or matmul), bias add and
 * activation, as separate ops. Outside a tape (predict, evaluate) they keep tfjs's fused path.
 *
 * Depthwise and separable convolutions, BatchNormalization and pooling already use unfused ops
 * in tfjs-layers. A frozen prefix (a backbone below every trainable weight) costs no backward
 * work at all once freezing.ts keeps its variables out of the compiled trainable weights.
 */
import {
  add,
  cast,
  conv2d,
  engine,
  matMul,
  reshape,
  type Tensor,
  tidy,
  transpose,
} from '@tensorflow/tfjs-core';
import { registeredLayerClass } from './layer-classes.js';

const PATCHED = Symbol.for('xfer.engine.lazyGradients');

/** True while tfjs-core records ops for a gradient (inside `minimize`, `grads`...). */
function recordingGradients(): boolean {
  return (engine().state as { gradientDepth: number }).gradientDepth > 0;
}

function singleTensor(inputs: Tensor | Tensor[]): Tensor {
  if (!Array.isArray(inputs)) return inputs;
  if (inputs.length !== 1)
    throw new Error(`expected exactly one input tensor, got ${inputs.length}`);
  return inputs[0]!;
}

/** Conv2D.call as tfjs-layers computes it, with unfused ops. */
function unfusedConv2d(layer: any, inputs: Tensor | Tensor[]): Tensor {
  return tidy(() => {
    const channelsFirst = layer.dataFormat === 'channelsFirst';
    let x = singleTensor(inputs);
    if (x.dtype !== 'float32') x = cast(x, 'float32');
    if (channelsFirst) x = transpose(x, [0, 2, 3, 1]);
    let y: Tensor = conv2d(
      x as any,
      layer.kernel.read(),
      layer.strides,
      layer.padding === 'same' ? 'same' : 'valid',
      'NHWC',
      layer.dilationRate,
    );
    if (layer.bias != null) y = add(y, layer.bias.read());
    if (channelsFirst) y = transpose(y, [0, 3, 1, 2]);
    return layer.activation == null ? y : layer.activation.apply(y);
  });
}

/** Dense.call as tfjs-layers computes it, with unfused ops (inputs of any rank ≥ 2). */
function unfusedDense(layer: any, inputs: Tensor | Tensor[], kwargs: unknown): Tensor {
  return tidy(() => {
    layer.invokeCallHook(inputs, kwargs);
    const x = singleTensor(inputs);
    const kernel: Tensor = layer.kernel.read();
    const units = kernel.shape[1]!;
    let y =
      x.rank === 2
        ? matMul(x as any, kernel as any)
        : reshape(matMul(reshape(x, [-1, x.shape[x.rank - 1]!]), kernel as any), [
            ...x.shape.slice(0, -1),
            units,
          ]);
    if (layer.bias != null) y = add(y, layer.bias.read());
    return layer.activation == null ? y : layer.activation.apply(y);
  });
}

function patchCall(
  className: string,
  unfused: (layer: any, inputs: Tensor | Tensor[], kwargs: unknown) => Tensor,
): void {
  const cls = registeredLayerClass(className);
  const call = cls.prototype.call as (inputs: unknown, kwargs: unknown) => unknown;
  cls.prototype.call = function (this: any, inputs: Tensor | Tensor[], kwargs: unknown) {
    if (recordingGradients()) return unfused(this, inputs, kwargs);
    return call.call(this, inputs, kwargs);
  };
}

function applyLazyGradientPatches(): void {
  const proto = registeredLayerClass('Conv2D').prototype as Record<symbol, unknown>;
  if (proto[PATCHED] === true) return;
  // Only rank-2 convolutions take the fused path; Conv2DTranspose has its own call.
  patchCall('Conv2D', unfusedConv2d);
  patchCall('Dense', unfusedDense);
  proto[PATCHED] = true;
}

applyLazyGradientPatches();
