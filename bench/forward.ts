/**
 * Backbone forward throughput, side by side in one run: xfer (its ONNX export on its ORT session,
 * the path `predict` and frozen backbones take), raw onnxruntime-node on the same ONNX bytes with
 * default session options, tfjs (`--tfjs`, slow), and PyTorch CPU through Debian's python3-torch
 * when it is installed (nothing is installed here; an absent peer is skipped and said so). Each
 * measurement runs in its own process so that its peak RSS is its own.
 *
 *   npm run bench                       # table
 *   npm run bench -- --json             # one JSON line per measurement
 *   npm run bench -- --models mobilenet_v2 --images 64 --batch-size 32 --image-size 224
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface Measurement {
  model: string;
  engine: string;
  imagesPerSecond: number | null;
  peakRssMB: number | null;
  note?: string;
}

const TORCH_NAMES: Record<string, string> = {
  mobilenet_v2: 'mobilenet_v2',
  resnet50: 'resnet50',
  vgg16: 'vgg16',
};

const PYTHON_BENCH = `
import sys, time, resource, torch, torchvision
name, batch, size, images, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
m = getattr(torchvision.models, name)()
body = m.features if hasattr(m, 'features') else torch.nn.Sequential(*list(m.children())[:-2])
body.eval()
# channels_last: this PyTorch build's fastest CPU layout for convolutions.
body = body.to(memory_format=torch.channels_last)
x = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
with torch.no_grad():
    body(x)
    n = max(1, -(-images // batch))
    t = time.perf_counter()
    for _ in range(n):
        body(x)
    s = time.perf_counter() - t
print(n * batch / s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
`;

/** Runs in a child: one engine on one model; prints `{ imagesPerSecond, peakRssMB }`. */
async function child(model: string, engine: string, batch: number, size: number, images: number) {
  const { getApplication } = await import('../src/applications/index.js');
  const { benchmarkForward } = await import('../src/engine/onnx/benchmark.js');
  const { exportOnnx } = await import('../src/engine/onnx/export.js');
  const built = await getApplication(model).build({
    includeTop: false,
    weights: null,
    inputShape: [size, size, 3],
  });
  let imagesPerSecond: number;
  if (engine === 'ort-raw') {
    const ort = await import('onnxruntime-node');
    const exported = exportOnnx(built);
    built.dispose();
    const session = await ort.InferenceSession.create(exported.bytes, {
      intraOpNumThreads: threads(),
    });
    const data = new Float32Array(batch * size * size * 3).fill(0.5);
    const feed = { [exported.input.name]: new ort.Tensor('float32', data, [batch, size, size, 3]) };
    await session.run(feed);
    const n = Math.max(1, Math.ceil(images / batch));
    const start = performance.now();
    for (let i = 0; i < n; i++) await session.run(feed);
    imagesPerSecond = (n * batch) / ((performance.now() - start) / 1000);
  } else {
    const result = await benchmarkForward(built, [size, size], {
      batchSize: batch,
      images,
      engine: engine === 'tfjs' ? 'tfjs' : 'onnxruntime',
    });
    imagesPerSecond = result.imagesPerSecond;
  }
  const peakRssMB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ imagesPerSecond, peakRssMB })}\n`);
}

function threads(): number {
  return Number(process.env.XFER_ORT_THREADS) || 2;
}

/** The first Python that has torch and torchvision (Debian's is /usr/bin/python3), or null. */
function torchPython(): string | null {
  const candidates = [process.env.XFER_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    Boolean,
  ) as string[];
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return null;
}

let python: string | null = null;

function measure(
  model: string,
  engine: string,
  batch: number,
  size: number,
  images: number,
): Measurement {
  try {
    let out: string;
    if (engine === 'pytorch') {
      out = execFileSync(
        python!,
        [
          '-c',
          PYTHON_BENCH,
          TORCH_NAMES[model]!,
          `${batch}`,
          `${size}`,
          `${images}`,
          `${threads()}`,
        ],
        {
          encoding: 'utf8',
        },
      );
      const [ips, rss] = out.trim().split(/\s+/).map(Number);
      return { model, engine, imagesPerSecond: ips!, peakRssMB: rss! };
    }
    out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--child',
        model,
        engine,
        `${batch}`,
        `${size}`,
        `${images}`,
      ],
      { encoding: 'utf8', env: { ...process.env, XFER_ORT_THREADS: `${threads()}` } },
    );
    const last = out.trim().split('\n').pop()!;
    return {
      model,
      engine,
      ...(JSON.parse(last) as { imagesPerSecond: number; peakRssMB: number }),
    };
  } catch (error) {
    return {
      model,
      engine,
      imagesPerSecond: null,
      peakRssMB: null,
      note: `failed: ${(error as Error).message.split('\n')[0]}`,
    };
  }
}

async function mainBench(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      models: { type: 'string', default: 'mobilenet_v2,resnet50,vgg16' },
      'batch-size': { type: 'string', default: '32' },
      'image-size': { type: 'string', default: '224' },
      images: { type: 'string', default: '64' },
      tfjs: { type: 'boolean', default: false },
    },
  });
  const batch = Number(values['batch-size']);
  const size = Number(values['image-size']);
  const images = Number(values.images);
  const engines = ['xfer', 'ort-raw', ...(values.tfjs ? ['tfjs'] : []), 'pytorch'];
  python = torchPython();
  const hasTorch = python !== null;
  if (!hasTorch)
    process.stderr.write(
      'bench: PyTorch (Debian python3-torch, python3-torchvision) is not installed; its column is skipped.\n',
    );
  const rows: Measurement[] = [];
  for (const model of values.models.split(',')) {
    for (const engine of engines) {
      const row =
        engine === 'pytorch' && !hasTorch
          ? {
              model,
              engine,
              imagesPerSecond: null,
              peakRssMB: null,
              note: 'skipped: python3-torch not installed',
            }
          : measure(model, engine, batch, size, images);
      rows.push(row);
      if (values.json)
        process.stdout.write(`${JSON.stringify({ batchSize: batch, imageSize: size, ...row })}\n`);
      else process.stderr.write(`bench: ${model} ${engine} done\n`);
    }
  }
  if (values.json) return;
  const lines = [
    `Backbone forward, batch ${batch}, ${size}x${size}, ${threads()} threads (images/s, peak RSS MB)`,
    `| model | ${engines.join(' | ')} |`,
    `| --- | ${engines.map(() => '---').join(' | ')} |`,
  ];
  for (const model of values.models.split(',')) {
    const cells = engines.map((engine) => {
      const r = rows.find((x) => x.model === model && x.engine === engine)!;
      return r.imagesPerSecond === null
        ? (r.note ?? '—')
        : `${r.imagesPerSecond.toFixed(1)} (${r.peakRssMB!.toFixed(0)} MB)`;
    });
    lines.push(`| ${model} | ${cells.join(' | ')} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  const [, model, engine, batch, size, images] = argv;
  await child(model!, engine!, Number(batch), Number(size), Number(images));
} else {
  await mainBench();
}
