import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { registerWasmGradients } from '../src/engine/wasm-gradients.js';
import { Random } from '../src/util/random.js';

type Data = { shape: number[]; values: Float32Array };
type Attrs = Record<string, unknown>;
type Pad = 'same' | 'valid' | number[][];

function randomData(shape: number[], seed: number): Data {
  const rng = new Random(seed);
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = rng.uniform(-1, 1);
  return { shape, values };
}

/**
 * Runs one kernel on `backend` and checks that it leaves no tensor behind, neither in the engine
 * nor in the backend's own storage (where a forgotten intermediate would hide).
 */
async function runKernel(
  backend: 'cpu' | 'wasm',
  kernelName: string,
  inputs: Record<string, Data>,
  attrs: Attrs,
): Promise<Data> {
  await tf.setBackend(backend);
  const tensors = Object.fromEntries(
    Object.entries(inputs).map(([name, d]) => [name, tf.tensor(d.values, d.shape)]),
  );
  const tensorsBefore = tf.memory().numTensors;
  const dataIdsBefore = tf.engine().backend.numDataIds();
  const out = tf.engine().runKernel(kernelName, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
  const result = { shape: out.shape, values: (await out.data()) as Float32Array };
  out.dispose();
  assert.equal(
    tf.memory().numTensors,
    tensorsBefore,
    `${kernelName} on ${backend} leaked a tensor`,
  );
  assert.equal(
    tf.engine().backend.numDataIds(),
    dataIdsBefore,
    `${kernelName} on ${backend} leaked data`,
  );
  tf.dispose(Object.values(tensors));
  return result;
}

/** |actual − expected| ≤ 1e-4 · max(1, max |expected|) elementwise: float32 sums of ~100 terms. */
function assertClose(actual: Data, expected: Data, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  let [largest, worst] = [0, 0];
  for (let i = 0; i < expected.values.length; i++) {
    largest = Math.max(largest, Math.abs(expected.values[i]!));
    worst = Math.max(worst, Math.abs(actual.values[i]! - expected.values[i]!));
  }
  // Two all-zero results would agree without testing anything.
  assert.ok(largest > 0, `${what}: the reference is all zeros`);
  const tolerance = 1e-4 * Math.max(1, largest);
  assert.ok(worst <= tolerance, `${what}: max error ${worst} above ${tolerance}`);
}

function outShape(
  xShape: number[],
  filterShape: number[],
  s: number,
  pad: Pad,
  d: number,
  depthwise: boolean,
) {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    s,
    d,
    pad as tf.backend_util.ExplicitPadding,
    undefined,
    depthwise,
  ).outShape;
}

/** The filter with d − 1 zero taps between its taps: a dilated conv is a plain conv with it. */
function dilateFilter(f: Data, d: number): Data {
  const [fh, fw, ci, co] = f.shape as [number, number, number, number];
  const [dfh, dfw] = [(fh - 1) * d + 1, (fw - 1) * d + 1];
  const values = new Float32Array(dfh * dfw * ci * co);
  for (let i = 0; i < fh; i++) {
    for (let j = 0; j < fw; j++) {
      const from = (i * fw + j) * ci * co;
      values.set(f.values.subarray(from, from + ci * co), (i * d * dfw + j * d) * ci * co);
    }
  }
  return { shape: [dfh, dfw, ci, co], values };
}

/** The taps of a dilated filter's gradient that belong to the undilated filter. */
function undilateFilter(g: Data, d: number, fh: number, fw: number): Data {
  const [, dfw, ci, co] = g.shape as [number, number, number, number];
  const values = new Float32Array(fh * fw * ci * co);
  for (let i = 0; i < fh; i++) {
    for (let j = 0; j < fw; j++) {
      const from = (i * d * dfw + j * d) * ci * co;
      values.set(g.values.subarray(from, from + ci * co), (i * fw + j) * ci * co);
    }
  }
  return { shape: [fh, fw, ci, co], values };
}

const X_SHAPE = [2, 7, 9, 3];
const PADS: Array<[string, Pad]> = [
  ['same', 'same'],
  ['valid', 'valid'],
  [
    'explicit',
    [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  ],
];
const CASES = [1, 2].flatMap((stride) => PADS.map(([padName, pad]) => ({ stride, padName, pad })));

before(async () => {
  await initBackend('wasm');
});

describe('Conv2D gradients on wasm equal the cpu backend', () => {
  const filterShape = [3, 3, 3, 5];
  for (const { stride, padName, pad } of CASES) {
    test(`stride ${stride}, ${padName} padding, x ${X_SHAPE} → 5 channels`, async () => {
      const x = randomData(X_SHAPE, 1);
      const filter = randomData(filterShape, 2);
      const dy = randomData(outShape(X_SHAPE, filterShape, stride, pad, 1, false), 3);
      const filterAttrs = { strides: stride, pad, dataFormat: 'NHWC', filterShape };
      assertClose(
        await runKernel('wasm', 'Conv2DBackpropFilter', { x, dy }, filterAttrs),
        await runKernel('cpu', 'Conv2DBackpropFilter', { x, dy }, filterAttrs),
        'dW',
      );
      const inputAttrs = { strides: stride, pad, dataFormat: 'NHWC', inputShape: X_SHAPE };
      assertClose(
        await runKernel('wasm', 'Conv2DBackpropInput', { dy, filter }, inputAttrs),
        await runKernel('cpu', 'Conv2DBackpropInput', { dy, filter }, inputAttrs),
        'dx',
      );
    });
  }

  test('an even 4x2 filter with stride 3 on 8x11, and NCHW data', async () => {
    const shape = [2, 8, 11, 3];
    const filterShape4 = [4, 2, 3, 5];
    const x = randomData(shape, 4);
    const filter = randomData(filterShape4, 5);
    const dy = randomData(outShape(shape, filterShape4, 3, 'same', 1, false), 6);
    for (const dataFormat of ['NHWC', 'NCHW'] as const) {
      const toFormat = (d: Data): Data => {
        if (dataFormat === 'NHWC') return d;
        const t = tf.transpose(tf.tensor(d.values, d.shape), [0, 3, 1, 2]);
        const result = { shape: t.shape, values: t.dataSync() as Float32Array };
        t.dispose();
        return result;
      };
      await tf.setBackend('cpu');
      const [xf, dyf] = [toFormat(x), toFormat(dy)];
      const filterAttrs = { strides: 3, pad: 'same', dataFormat, filterShape: filterShape4 };
      assertClose(
        await runKernel('wasm', 'Conv2DBackpropFilter', { x: xf, dy: dyf }, filterAttrs),
        await runKernel('cpu', 'Conv2DBackpropFilter', { x: xf, dy: dyf }, filterAttrs),
        `dW ${dataFormat}`,
      );
      const inputAttrs = { strides: 3, pad: 'same', dataFormat, inputShape: xf.shape };
      assertClose(
        await runKernel('wasm', 'Conv2DBackpropInput', { dy: dyf, filter }, inputAttrs),
        await runKernel('cpu', 'Conv2DBackpropInput', { dy: dyf, filter }, inputAttrs),
        `dx ${dataFormat}`,
      );
    }
  });
});

describe('edge shapes on wasm equal the cpu backend', () => {
  // One-pixel rows (an output phase with no pixel), a 1x1 filter with stride 2 (phases that no
  // filter tap reaches), a filter as large as the input, strides that differ per axis.
  const cases: Array<[string, number[], number[], number | [number, number], Pad]> = [
    ['1-pixel-high input, stride 2', [2, 1, 3, 3], [3, 3, 3, 4], 2, 'same'],
    ['1x1 filter, stride 2', [1, 5, 5, 2], [1, 1, 2, 3], 2, 'valid'],
    ['filter as large as the input', [1, 5, 4, 2], [5, 4, 2, 3], 1, 'valid'],
    ['strides [2, 1] on a 2x3 filter', [2, 6, 5, 3], [2, 3, 3, 2], [2, 1], 'same'],
  ];
  for (const [name, xShape, filterShape, strides, pad] of cases) {
    test(name, async () => {
      const x = randomData(xShape, 40);
      const filter = randomData(filterShape, 41);
      const conv = tf.backend_util.computeConv2DInfo(
        xShape as [number, number, number, number],
        filterShape as [number, number, number, number],
        strides,
        1,
        pad as 'same',
      );
      const dy = randomData(conv.outShape, 42);
      for (const [kernel, inputs, attrs] of [
        ['Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape }],
        [
          'Conv2DBackpropInput',
          { dy, filter },
          { strides, pad, dataFormat: 'NHWC', inputShape: xShape },
        ],
      ] as const) {
        assertClose(
          await runKernel('wasm', kernel, inputs, attrs),
          await runKernel('cpu', kernel, inputs, attrs),
          kernel,
        );
      }
      const dwShape = [filterShape[0]!, filterShape[1]!, xShape[3]!, 2];
      const dwFilter = randomData(dwShape, 43);
      const dwInfo = tf.backend_util.computeConv2DInfo(
        xShape as [number, number, number, number],
        dwShape as [number, number, number, number],
        strides,
        1,
        pad as 'same',
        undefined,
        true,
      );
      const dwDy = randomData(dwInfo.outShape, 44);
      for (const [kernel, inputs, attrs] of [
        [
          'DepthwiseConv2dNativeBackpropFilter',
          { x, dy: dwDy },
          { strides, dilations: 1, pad, filterShape: dwShape },
        ],
        [
          'DepthwiseConv2dNativeBackpropInput',
          { dy: dwDy, filter: dwFilter },
          { strides, dilations: 1, pad, inputShape: xShape },
        ],
      ] as const) {
        assertClose(
          await runKernel('wasm', kernel, inputs, attrs),
          await runKernel('cpu', kernel, inputs, attrs),
          kernel,
        );
      }
    });
  }
});

describe('DepthwiseConv2dNative gradients on wasm equal the cpu backend', () => {
  for (const multiplier of [1, 2]) {
    for (const { stride, padName, pad } of CASES) {
      test(`stride ${stride}, ${padName} padding, depth multiplier ${multiplier}`, async () => {
        const filterShape = [3, 3, 3, multiplier];
        const x = randomData(X_SHAPE, 7);
        const filter = randomData(filterShape, 8);
        const dy = randomData(outShape(X_SHAPE, filterShape, stride, pad, 1, true), 9);
        const filterAttrs = { strides: stride, dilations: 1, pad, filterShape };
        assertClose(
          await runKernel('wasm', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, filterAttrs),
          await runKernel('cpu', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, filterAttrs),
          'dW',
        );
        const inputAttrs = { strides: stride, dilations: 1, pad, inputShape: X_SHAPE };
        assertClose(
          await runKernel('wasm', 'DepthwiseConv2dNativeBackpropInput', { dy, filter }, inputAttrs),
          await runKernel('cpu', 'DepthwiseConv2dNativeBackpropInput', { dy, filter }, inputAttrs),
          'dx',
        );
      });
    }
  }

  // The cpu backend's depthwise gradients ignore `dilations`, so the reference is the cpu result
  // for the equivalent undilated filter with zeros between its taps.
  for (const [stride, padName, pad, multiplier] of [
    [1, 'same', 'same', 1],
    [1, 'valid', 'valid', 2],
    [2, 'same', 'same', 2],
  ] as const) {
    test(`dilation 2, stride ${stride}, ${padName} padding, depth multiplier ${multiplier}`, async () => {
      const filterShape = [3, 3, 3, multiplier];
      const x = randomData(X_SHAPE, 10);
      const filter = randomData(filterShape, 11);
      const wide = dilateFilter(filter, 2);
      const dy = randomData(outShape(X_SHAPE, filterShape, stride, pad, 2, true), 12);
      assert.deepEqual(dy.shape, outShape(X_SHAPE, wide.shape, stride, pad, 1, true));
      const dW = await runKernel(
        'wasm',
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy },
        { strides: stride, dilations: 2, pad, filterShape },
      );
      const wideDW = await runKernel(
        'cpu',
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy },
        { strides: stride, dilations: 1, pad, filterShape: wide.shape },
      );
      assertClose(dW, undilateFilter(wideDW, 2, 3, 3), 'dW');
      assertClose(
        await runKernel(
          'wasm',
          'DepthwiseConv2dNativeBackpropInput',
          { dy, filter },
          { strides: stride, dilations: 2, pad, inputShape: X_SHAPE },
        ),
        await runKernel(
          'cpu',
          'DepthwiseConv2dNativeBackpropInput',
          { dy, filter: wide },
          { strides: stride, dilations: 1, pad, inputShape: X_SHAPE },
        ),
        'dx',
      );
    });
  }

  test('a large image, whose channels are processed in chunks, gives the same filter gradient', async () => {
    // 96·96·2 floats per channel: the 256 KiB chunk budget holds 3 of the 6 channels.
    const shape = [2, 96, 96, 6];
    const filterShape = [3, 3, 6, 2];
    const x = randomData(shape, 13);
    const dy = randomData(outShape(shape, filterShape, 2, 'same', 1, true), 14);
    const attrs = { strides: 2, dilations: 1, pad: 'same', filterShape };
    assertClose(
      await runKernel('wasm', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs),
      await runKernel('cpu', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs),
      'dW',
    );
  });
});

/** Conv2D + DepthwiseConv2D + SeparableConv2D, ReLU, global average pooling, Dense. */
function tinyModel(): tf.Sequential {
  const model = tf.sequential();
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  model.add(
    tf.layers.conv2d({
      inputShape: [9, 11, 3],
      filters: 5,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(1),
      biasInitializer: 'ones',
    }),
  );
  model.add(
    tf.layers.depthwiseConv2d({
      kernelSize: 3,
      depthMultiplier: 2,
      padding: 'same',
      activation: 'relu',
      depthwiseInitializer: init(2),
      biasInitializer: 'ones',
    }),
  );
  model.add(
    tf.layers.separableConv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'valid',
      activation: 'relu',
      depthwiseInitializer: init(3),
      pointwiseInitializer: init(4),
      biasInitializer: 'ones',
    }),
  );
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: 3, kernelInitializer: init(5) }));
  return model;
}

describe('training a conv model on wasm', () => {
  test('gradients of every weight equal those on cpu, and no tensor leaks', async () => {
    await tf.setBackend('cpu');
    const model = tinyModel();
    const x = randomData([4, 9, 11, 3], 20);
    const y = randomData([4, 3], 21);
    const gradsOn = async (backend: 'cpu' | 'wasm') => {
      await tf.setBackend(backend);
      const [xt, yt] = [tf.tensor(x.values, x.shape), tf.tensor(y.values, y.shape)];
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(
        () => tf.losses.meanSquaredError(yt, model.predict(xt) as tf.Tensor) as tf.Scalar,
      );
      const result: Record<string, Data> = {};
      for (const [name, g] of Object.entries(grads)) {
        result[name] = { shape: g.shape, values: (await g.data()) as Float32Array };
      }
      tf.dispose([value, ...Object.values(grads)]);
      assert.equal(tf.memory().numTensors, before, `a gradient on ${backend} leaked tensors`);
      tf.dispose([xt, yt]);
      return result;
    };
    const cpu = await gradsOn('cpu');
    const wasm = await gradsOn('wasm');
    const names = Object.keys(cpu);
    // conv kernel+bias, depthwise kernel+bias, separable depthwise+pointwise+bias, dense kernel+bias.
    assert.equal(names.length, 9);
    assert.deepEqual(Object.keys(wasm).sort(), names.sort());
    for (const name of names) assertClose(wasm[name]!, cpu[name]!, name);
    model.dispose();
  });

  test('model.fit on wasm lowers the loss', async () => {
    await tf.setBackend('wasm');
    const model = tinyModel();
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const x = randomData([8, 9, 11, 3], 30);
    const y = randomData([8, 3], 31);
    const [xt, yt] = [tf.tensor(x.values, x.shape), tf.tensor(y.values, y.shape)];
    const history = await model.fit(xt, yt, {
      epochs: 15,
      batchSize: 4,
      shuffle: false,
      verbose: 0,
    });
    const losses = history.history.loss as number[];
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses.at(-1)! < 0.8 * losses[0]!, `loss went ${losses[0]} → ${losses.at(-1)}`);
    tf.dispose([xt, yt]);
    model.dispose();
  });
});

test('repeated gradient calls do not grow the wasm heap (no cached XNNPACK operator leaks)', async () => {
  // Each call builds XNNPACK operators whose packed weights are the temporary dy (~200 KB here);
  // they must be freed with it, or 40 calls would need 8 MB more heap.
  await tf.setBackend('wasm');
  const heapBytes = () =>
    (tf.engine().backend as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
  const x = tf.randomNormal([8, 28, 28, 64], 0, 1, 'float32', 1);
  const dy = tf.randomNormal([8, 14, 14, 32], 0, 1, 'float32', 2);
  const dwDy = tf.randomNormal([8, 14, 14, 64], 0, 1, 'float32', 3);
  const [filter, dwFilter] = [tf.randomNormal([3, 3, 64, 32]), tf.randomNormal([3, 3, 64, 1])];
  const step = () =>
    tf.tidy(() => {
      const conv = { strides: 2, pad: 'same', dataFormat: 'NHWC' } as const;
      const dw = { strides: 2, dilations: 1, pad: 'same' } as const;
      tf.engine().runKernel(
        'Conv2DBackpropFilter',
        { x, dy },
        { ...conv, filterShape: [3, 3, 64, 32] },
      );
      tf.engine().runKernel(
        'Conv2DBackpropInput',
        { dy, filter },
        { ...conv, inputShape: x.shape },
      );
      tf.engine().runKernel(
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy: dwDy },
        { ...dw, filterShape: [3, 3, 64, 1] },
      );
      tf.engine().runKernel(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: dwDy, filter: dwFilter },
        { ...dw, inputShape: x.shape },
      );
    });
  for (let i = 0; i < 5; i++) step();
  const settled = heapBytes();
  for (let i = 0; i < 40; i++) step();
  assert.equal(heapBytes(), settled);
  tf.dispose([x, dy, dwDy, filter, dwFilter]);
});

test('registerWasmGradients is idempotent and covers the gradient kernels', () => {
  const names = [
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
  ];
  const before = names.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc);
  assert.ok(before.every((f) => f !== undefined));
  registerWasmGradients();
  registerWasmGradients();
  assert.deepEqual(
    names.map((name) => tf.getKernel(name, 'wasm')?.kernelFunc),
    before,
  );
});
