/**
 * Time per call of xfer's wasm convolution-gradient kernels against the cpu backend (and, for
 * Conv2DBackpropInput, against tfjs-backend-wasm's own kernel), with the forward convolution of
 * the same layer for scale.
 *
 *   node --import tsx bench/wasm-gradients.ts [--batch 16] [--reps 3] [--cpu-batch-vgg 1] [--no-cpu]
 *
 * The cpu backend needs minutes for one VGG16 block5 filter gradient, so it runs that layer at
 * --cpu-batch-vgg images (0: not at all); compare the ms/image column across batches.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { replacedWasmKernel } from '../src/engine/wasm-gradients.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    reps: { type: 'string', default: '3' },
    'cpu-batch-vgg': { type: 'string', default: '1' },
    'no-cpu': { type: 'boolean', default: false },
  },
});
const BATCH = Number(args.batch);
const REPS = Number(args.reps);

interface Layer {
  name: string;
  x: number[];
  filter: number[];
  stride: number;
  depthwise: boolean;
  cpuBatch: number;
}

const LAYERS: Layer[] = [
  {
    name: 'VGG16 block5 conv',
    x: [14, 14, 512],
    filter: [3, 3, 512, 512],
    stride: 1,
    depthwise: false,
    cpuBatch: Number(args['cpu-batch-vgg']),
  },
  {
    name: 'MobileNetV2 block_13 dw',
    x: [14, 14, 576],
    filter: [3, 3, 576, 1],
    stride: 1,
    depthwise: true,
    cpuBatch: BATCH,
  },
  {
    name: 'MobileNetV2 block_6 dw',
    x: [28, 28, 192],
    filter: [3, 3, 192, 1],
    stride: 2,
    depthwise: true,
    cpuBatch: BATCH,
  },
  {
    name: 'MobileNetV2 block_1 dw',
    x: [112, 112, 96],
    filter: [3, 3, 96, 1],
    stride: 2,
    depthwise: true,
    cpuBatch: BATCH,
  },
];

type Run = (t: { x: tf.Tensor; dy: tf.Tensor; filter: tf.Tensor }) => tf.TensorInfo;

function kernelsOf(layer: Layer, batch: number): Array<[string, Run]> {
  const inputShape = [batch, ...layer.x];
  const common = { strides: layer.stride, pad: 'same' };
  const run = (
    name: string,
    inputs: (t: Parameters<Run>[0]) => tf.NamedTensorMap,
    attrs: object,
  ): Run => {
    return (t) => tf.engine().runKernel(name, inputs(t), attrs as tf.NamedAttrMap) as tf.Tensor;
  };
  if (layer.depthwise) {
    const attrs = { ...common, dilations: 1 };
    return [
      [
        'DepthwiseConv2dNative (forward)',
        run('DepthwiseConv2dNative', (t) => ({ x: t.x, filter: t.filter }), attrs),
      ],
      [
        'DepthwiseConv2dNativeBackpropFilter',
        run('DepthwiseConv2dNativeBackpropFilter', (t) => ({ x: t.x, dy: t.dy }), {
          ...attrs,
          filterShape: layer.filter,
        }),
      ],
      [
        'DepthwiseConv2dNativeBackpropInput',
        run('DepthwiseConv2dNativeBackpropInput', (t) => ({ dy: t.dy, filter: t.filter }), {
          ...attrs,
          inputShape,
        }),
      ],
    ];
  }
  const attrs = { ...common, dataFormat: 'NHWC', dilations: 1 };
  return [
    ['Conv2D (forward)', run('Conv2D', (t) => ({ x: t.x, filter: t.filter }), attrs)],
    [
      'Conv2DBackpropFilter',
      run('Conv2DBackpropFilter', (t) => ({ x: t.x, dy: t.dy }), {
        ...attrs,
        filterShape: layer.filter,
      }),
    ],
    [
      'Conv2DBackpropInput',
      run('Conv2DBackpropInput', (t) => ({ dy: t.dy, filter: t.filter }), { ...attrs, inputShape }),
    ],
  ];
}

/** tfjs-backend-wasm's own Conv2DBackpropInput, which xfer replaces. */
function upstreamConv2DBackpropInput(layer: Layer, batch: number): Run | undefined {
  const config = replacedWasmKernel('Conv2DBackpropInput');
  if (config === undefined) return undefined;
  const backend = tf.engine().backend;
  config.setupFunc?.(backend);
  const attrs = {
    strides: layer.stride,
    pad: 'same',
    dataFormat: 'NHWC',
    inputShape: [batch, ...layer.x],
  };
  return (t) => {
    const out = config.kernelFunc({
      inputs: { dy: t.dy, filter: t.filter },
      attrs,
      backend,
    }) as tf.TensorInfo;
    return out;
  };
}

/**
 * Best of `reps` calls, after one warm-up call, in milliseconds of this process's CPU time: both
 * backends compute on the calling thread, and CPU time stays meaningful on a shared machine where
 * wall-clock time does not. Both compute synchronously inside the call, so reading the result
 * back (a copy) is left out.
 */
async function time(run: Run, inputs: Parameters<Run>[0], reps: number): Promise<number> {
  const backend = tf.engine().backend;
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i <= reps; i++) {
    const start = process.cpuUsage();
    const out = run(inputs);
    const used = process.cpuUsage(start);
    if (out instanceof tf.Tensor) out.dispose();
    else backend.disposeData(out.dataId);
    if (i > 0 || reps === 0) best = Math.min(best, (used.user + used.system) / 1000);
  }
  return best;
}

function makeInputs(layer: Layer, batch: number) {
  const x = tf.randomNormal([batch, ...layer.x]);
  const filter = tf.randomNormal(layer.filter);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    layer.filter as [number, number, number, number],
    layer.stride,
    1,
    'same',
    undefined,
    layer.depthwise,
  );
  return { x, filter, dy: tf.randomNormal(info.outShape) };
}

interface Row {
  layer: string;
  kernel: string;
  wasm: number;
  cpu?: number;
  cpuBatch: number;
  upstream?: number;
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const rows: Row[] = [];
  for (const layer of LAYERS) {
    await tf.setBackend('wasm');
    const wasmInputs = makeInputs(layer, BATCH);
    const wasmKernels = kernelsOf(layer, BATCH);
    const layerRows: Row[] = [];
    for (const [kernel, run] of wasmKernels) {
      layerRows.push({
        layer: layer.name,
        kernel,
        wasm: await time(run, wasmInputs, REPS),
        cpuBatch: layer.cpuBatch,
      });
      process.stderr.write('.');
    }
    const upstream = layer.depthwise ? undefined : upstreamConv2DBackpropInput(layer, BATCH);
    if (upstream !== undefined) {
      layerRows.at(-1)!.upstream = await time(upstream, wasmInputs, Math.min(REPS, 1));
    }
    tf.dispose(Object.values(wasmInputs));
    if (!args['no-cpu'] && layer.cpuBatch > 0) {
      await tf.setBackend('cpu');
      const cpuInputs = makeInputs(layer, layer.cpuBatch);
      const cpuKernels = kernelsOf(layer, layer.cpuBatch);
      for (let i = 0; i < cpuKernels.length; i++) {
        layerRows[i]!.cpu = await time(cpuKernels[i]![1], cpuInputs, 0);
        process.stderr.write('.');
      }
      tf.dispose(Object.values(cpuInputs));
    }
    rows.push(...layerRows);
  }
  process.stderr.write('\n');
  printTable(rows);
}

function printTable(rows: Row[]): void {
  const perImage = (ms: number | undefined, batch: number) =>
    ms === undefined ? '—' : (ms / batch).toFixed(1);
  const header = [
    'layer',
    'kernel',
    `wasm ms (batch ${BATCH})`,
    'wasm ms/img',
    'cpu ms/img (batch)',
    'cpu / wasm',
    'tfjs-wasm own ms',
  ];
  const body = rows.map((r) => [
    r.layer,
    r.kernel,
    r.wasm.toFixed(1),
    perImage(r.wasm, BATCH),
    r.cpu === undefined ? '—' : `${perImage(r.cpu, r.cpuBatch)} (${r.cpuBatch})`,
    r.cpu === undefined ? '—' : `${(r.cpu / r.cpuBatch / (r.wasm / BATCH)).toFixed(0)}x`,
    r.upstream === undefined ? '—' : r.upstream.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of body) console.log(line(row));
  console.log(
    `\nms of CPU time, best of ${REPS} runs after a warm-up (cpu backend: one run); node ${process.version}, ` +
      `${os.cpus()[0]?.model ?? 'unknown cpu'}, load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`,
  );
}

await main();
