/**
 * One fine-tuning step with the top block unfrozen (VGG16: block5; MobileNetV2: block_16 and
 * Conv_1), batch 16, 224x224, random weights and images: xfer (frozen prefix on onnxruntime-node,
 * trainable suffix in tfjs with autograd and Adam) against PyTorch CPU in the same run (Debian's
 * python3-torch + python3-torchvision; skipped with a note when absent). BatchNormalization runs
 * in inference mode on both sides (Keras's fine-tuning default; PyTorch `model.eval()`).
 *
 *   node --import tsx bench/fine-tune.ts [--batch 16] [--reps 3] [--models vgg16,mobilenet_v2]
 *                                        [--no-torch] [--tfjs-whole] [--threads N]
 *                                        [--wasm-threads 1,2] [--torch-threads 1,2]
 *
 * `--wasm-threads` lists the thread counts of the tfjs wasm backend to time side by side in one
 * process (1: tfjs-backend-wasm's single-threaded build; more: its threaded SIMD build, see
 * src/engine/threads.ts). PyTorch gets `--threads` threads (default: all CPUs; `--torch-threads`
 * lists several to try) and is timed in both memory formats, contiguous (NCHW) and channels_last;
 * the fastest is compared.
 *
 * `--tfjs-whole` also times the whole model in tfjs (the frozen prefix's forward pass on the
 * wasm backend too), the path taken without onnxruntime.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { MobileNetV2, VGG16 } from '../src/applications/index.js';
import { backendName, initBackend } from '../src/engine/backend.js';
import { OrtModel } from '../src/engine/ort.js';
import * as tf from '../src/engine/tf.js';
import { setWasmThreads, wasmThreadCount } from '../src/engine/threads.js';
import {
  Adam,
  compile,
  fit,
  flatLayers,
  type UnfreezeTarget,
  unfreezeFrom,
} from '../src/training/index.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    reps: { type: 'string', default: '3' },
    models: { type: 'string', default: 'vgg16,mobilenet_v2' },
    'no-torch': { type: 'boolean', default: false },
    'tfjs-whole': { type: 'boolean', default: false },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    'wasm-threads': { type: 'string', default: '1,2' },
    'torch-threads': { type: 'string' },
  },
});
const BATCH = Number(args.batch);
const REPS = Number(args.reps);
const SIZE = 224;
/** onnxruntime's and PyTorch's threads (tfjs-wasm has one in Node). */
const THREADS = Number(args.threads);
const WASM_THREADS = args['wasm-threads'].split(',').map(Number);
/** PyTorch's thread counts to try (the fastest is compared): a loaded machine can favour 1. */
const TORCH_THREADS = (args['torch-threads'] ?? String(THREADS)).split(',').map(Number);

interface Case {
  name: string;
  build: () => Promise<tf.LayersModel>;
  /** Keras: where the trainable part starts. */
  unfreeze: UnfreezeTarget;
  /** torchvision: index of `features` where the trainable part starts (the same layers). */
  torchStart: number;
  torchModel: string;
}

const CASES: Record<string, Case> = {
  vgg16: {
    name: 'VGG16, block5',
    build: () => VGG16({ includeTop: false, weights: null, inputShape: [SIZE, SIZE, 3] }),
    unfreeze: 'block5_conv1',
    torchStart: 24,
    torchModel: 'vgg16',
  },
  mobilenet_v2: {
    name: 'MobileNetV2, block_16 + Conv_1',
    build: () => MobileNetV2({ includeTop: false, weights: null, inputShape: [SIZE, SIZE, 3] }),
    unfreeze: 'block_16_expand',
    torchStart: 17,
    torchModel: 'mobilenet_v2',
  },
};

async function median(times: number[]): Promise<number> {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function classifier(backbone: tf.LayersModel): tf.Sequential {
  return tf.sequential({
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'output_layer' }),
    ],
  });
}

/** The layers from `start` on as a model of their own over the prefix's output (a chain). */
function suffixModel(layers: tf.layers.Layer[], inputShape: number[]): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  let x: tf.SymbolicTensor = input;
  for (const layer of layers) x = layer.apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

interface XferTiming {
  stepMs: number;
  /** Per step, with the next batch's prefix on onnxruntime overlapping this batch's tfjs step. */
  pipelinedMs: number;
  prefixMs: number;
  suffixMs: number;
  /** CPU time of the process (all threads) during the tfjs suffix step. */
  suffixCpuMs: number;
  wholeMs?: number;
}

async function timeXfer(c: Case): Promise<XferTiming> {
  const backbone = await c.build();
  const model = classifier(backbone);
  const { firstLayer } = unfreezeFrom(model, c.unfreeze);
  const layers = flatLayers(model);
  const start = layers.findIndex((l) => l.name === firstLayer);
  const prefix = await OrtModel.fromLayersModel(backbone, {
    upTo: layers[start - 1]!.name,
    imageSize: [SIZE, SIZE],
    threads: THREADS,
  });
  const suffix = suffixModel(
    layers.slice(start),
    prefix.exported.output.shape.slice(1) as number[],
  );
  compile(suffix, { optimizer: Adam(1e-4), loss: 'binary_crossentropy' });
  const x = tf.randomUniform([BATCH, SIZE, SIZE, 3], -1, 1, 'float32', 1);
  const y = tf.cast(tf.greater(tf.randomUniform([BATCH], 0, 1, 'float32', 2), 0.5), 'float32');
  const step = async () => {
    const t0 = performance.now();
    const features = await prefix.run(x);
    const t1 = performance.now();
    const cpu = process.cpuUsage();
    await fit(suffix, { x: features, y }, { epochs: 1, batchSize: BATCH, verbose: 0 });
    const t2 = performance.now();
    const used = process.cpuUsage(cpu);
    features.dispose();
    return [t2 - t0, t1 - t0, t2 - t1, (used.user + used.system) / 1000] as const;
  };
  await step();
  const runs: (readonly [number, number, number, number])[] = [];
  for (let i = 0; i < REPS; i++) runs.push(await step());
  // Both cores: onnxruntime runs the next batch's frozen prefix on its own native thread while
  // the main thread runs this batch's tfjs step (wasm, single-threaded in Node).
  const pipelineStart = performance.now();
  let next = prefix.run(x);
  for (let i = 0; i < REPS; i++) {
    const features = await next;
    next = prefix.run(x);
    await fit(suffix, { x: features, y }, { epochs: 1, batchSize: BATCH, verbose: 0 });
    features.dispose();
  }
  (await next).dispose();
  const pipelinedMs = (performance.now() - pipelineStart) / REPS;
  const result: XferTiming = {
    pipelinedMs,
    stepMs: await median(runs.map((r) => r[0])),
    prefixMs: await median(runs.map((r) => r[1])),
    suffixMs: await median(runs.map((r) => r[2])),
    suffixCpuMs: await median(runs.map((r) => r[3])),
  };
  if (args['tfjs-whole']) {
    compile(model, { optimizer: Adam(1e-4), loss: 'binary_crossentropy' });
    const whole = async () => {
      const t0 = performance.now();
      await fit(model, { x, y }, { epochs: 1, batchSize: BATCH, verbose: 0 });
      return performance.now() - t0;
    };
    await whole();
    result.wholeMs = await median([await whole()]);
  }
  await prefix.release();
  tf.dispose([x, y]);
  model.dispose();
  return result;
}

const TORCH_SCRIPT = `
import json, sys, time, torch, torchvision
torch.set_num_threads(int(sys.argv[4]))
name, start, batch, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
net = getattr(torchvision.models, name)()
features = net.features
frozen, trainable = features[:start], features[start:]
head = torch.nn.Linear({'vgg16': 512, 'mobilenet_v2': 1280}[name], 1)
for p in frozen.parameters(): p.requires_grad_(False)
features.eval()
params = list(trainable.parameters()) + list(head.parameters())
opt = torch.optim.Adam(params, lr=1e-4)
x = torch.rand(batch, 3, 224, 224) * 2 - 1
y = (torch.rand(batch, 1) > 0.5).float()
loss_fn = torch.nn.BCEWithLogitsLoss()
def step():
    t0 = time.perf_counter()
    with torch.no_grad():
        f = frozen(x.to(memory_format=fmt))
    out = head(torch.nn.functional.adaptive_avg_pool2d(trainable(f), 1).flatten(1))
    loss = loss_fn(out, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return (time.perf_counter() - t0) * 1000
result = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
for fmt_name, fmt in (('contiguous', torch.contiguous_format), ('channels_last', torch.channels_last)):
    net.to(memory_format=fmt)
    step()
    times = sorted(step() for _ in range(reps))
    result[fmt_name] = times[len(times) // 2]
    if 'stepMs' not in result or result[fmt_name] < result['stepMs']:
        result.update(stepMs=result[fmt_name], format=fmt_name)
print(json.dumps(result))
`;

function findTorchPython(): string | undefined {
  for (const python of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(python, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return undefined;
}

interface TorchTiming {
  stepMs: number;
  /** The faster memory format. */
  format: string;
  contiguous: number;
  channels_last: number;
  torch: string;
  threads: number;
}

function timeTorch(python: string, c: Case, threads: number): TorchTiming {
  const run = spawnSync(
    python,
    [
      '-c',
      TORCH_SCRIPT,
      c.torchModel,
      String(c.torchStart),
      String(BATCH),
      String(threads),
      String(REPS),
    ],
    { encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`PyTorch failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

/** PyTorch at each thread count and memory format; the fastest is the one compared. */
function bestTorch(python: string, c: Case): TorchTiming {
  const runs = TORCH_THREADS.map((threads) => timeTorch(python, c, threads));
  for (const run of runs) {
    console.log(
      `${c.name}: PyTorch ${run.threads} threads: contiguous ${run.contiguous.toFixed(0)} ms, channels_last ${run.channels_last.toFixed(0)} ms`,
    );
  }
  return runs.reduce((a, b) => (b.stepMs < a.stepMs ? b : a));
}

await initBackend();
const python = args['no-torch'] ? undefined : findTorchPython();
console.log(
  `fine-tuning step, batch ${BATCH}, ${SIZE}x${SIZE}, median of ${REPS}; tfjs backend ${backendName()} (wasm threads ${WASM_THREADS.join(' vs ')}), ${os.availableParallelism()} CPUs, onnxruntime threads ${THREADS}, PyTorch threads ${TORCH_THREADS.join(' or ')}, load average ${os.loadavg()[0]!.toFixed(1)}`,
);
if (!python) {
  console.log(
    args['no-torch']
      ? 'PyTorch: skipped (--no-torch)'
      : 'PyTorch: skipped (no python3 with torch and torchvision; apt-get install python3-torch python3-torchvision)',
  );
}
const rows: string[] = [];
rows.push(
  '| top block unfrozen | tfjs wasm threads | xfer step (ORT prefix + tfjs suffix) | of which ORT prefix | of which tfjs suffix (CPU time, all threads) | xfer, prefix overlapped | xfer ms/image (overlapped) | PyTorch step | PyTorch ms/image | xfer (overlapped) / PyTorch |',
);
rows.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
const f = (ms: number) => `${ms.toFixed(0)} ms`;
for (const key of args.models.split(',')) {
  const c = CASES[key.trim()];
  if (!c) throw new Error(`unknown model ${key}; known: ${Object.keys(CASES).join(', ')}`);
  // Side by side in one process: each thread count builds its own models on a fresh backend.
  const timings: { threads: number; xfer: XferTiming }[] = [];
  for (const threads of WASM_THREADS) {
    if (tf.getBackend() === 'wasm') await setWasmThreads(threads);
    timings.push({ threads: wasmThreadCount(), xfer: await timeXfer(c) });
  }
  const torch = python ? bestTorch(python, c) : undefined;
  console.log(JSON.stringify({ model: key, timings, torch }));
  for (const { threads, xfer } of timings) {
    if (xfer.wholeMs !== undefined) {
      console.log(
        `${c.name}, ${threads} wasm threads: whole model in tfjs (wasm prefix) ${f(xfer.wholeMs)}/step`,
      );
    }
    rows.push(
      `| ${c.name} | ${threads} | ${f(xfer.stepMs)} | ${f(xfer.prefixMs)} | ${f(xfer.suffixMs)} (${f(xfer.suffixCpuMs)}) | ${f(xfer.pipelinedMs)} | ${(xfer.pipelinedMs / BATCH).toFixed(1)} | ${torch ? `${f(torch.stepMs)} (${torch.torch}, ${torch.threads} threads, ${torch.format})` : '—'} | ${torch ? (torch.stepMs / BATCH).toFixed(1) : '—'} | ${torch ? (xfer.pipelinedMs / torch.stepMs).toFixed(2) : '—'} |`,
    );
  }
}
console.log(rows.join('\n'));
await setWasmThreads(1);
