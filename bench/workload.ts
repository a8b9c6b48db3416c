/**
 * The seed's workload, xfer vs PyTorch on the same generated images: a frozen backbone, GAP,
 * Dense(1, sigmoid), Adam, binary cross-entropy, `--epochs` epochs on `--images` images (two
 * classes) at 224x224, with the seed's augmentation and without it. Reports wall time per epoch
 * and peak RSS; each run is its own process. PyTorch runs through Debian's python3-torch when it
 * is installed, and is skipped (and said so) otherwise.
 *
 *   node --import tsx bench/workload.ts --model vgg16 --images 2000 --epochs 10   # the issue's
 *   node --import tsx bench/workload.ts --model mobilenet_v2 --images 200 --epochs 3 --json
 *   node --import tsx bench/workload.ts --model vgg16 --images 500 --epochs 3 --no-pytorch
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

const AUGMENTATION = {
  rotationRange: 40,
  widthShiftRange: 0.2,
  heightShiftRange: 0.2,
  zoomRange: 0.2,
  horizontalFlip: true,
  fillMode: 'constant' as const,
};

/** `images` PNGs in cats/ and dogs/, a class-dependent pattern plus noise. */
async function makeImages(root: string, images: number, size: number): Promise<void> {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (const [c, name] of ['cats', 'dogs'].entries()) {
    await fs.mkdir(path.join(root, name), { recursive: true });
    for (let i = c; i < images; i += 2) {
      const pixels = Buffer.alloc(size * size * 3);
      for (let p = 0; p < pixels.length; p++) {
        const y = Math.floor(p / (size * 3));
        pixels[p] = Math.min(255, (c === 0 ? y : size - y) + random() * 80);
      }
      await sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
        .jpeg()
        .toFile(path.join(root, name, `${i}.jpg`));
    }
  }
}

async function xferRun(
  dir: string,
  model: string,
  epochs: number,
  augment: boolean,
  batch: number,
) {
  const { getApplication, preprocessInput } = await import('../src/applications/index.js');
  const { ImageDataGenerator } = await import('../src/data/index.js');
  const tf = await import('../src/engine/tf.js');
  const { Adam, Callback, compile, fit } = await import('../src/training/index.js');
  const spec = getApplication(model);
  const backbone = await spec.build({
    includeTop: false,
    weights: null,
    inputShape: [224, 224, 3],
  });
  backbone.trainable = false;
  const net = tf.sequential({
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 1, activation: 'sigmoid' }),
    ],
  });
  compile(net, { optimizer: Adam(1e-3), loss: 'binary_crossentropy', metrics: ['accuracy'] });
  const gen = new ImageDataGenerator({
    ...(augment ? AUGMENTATION : {}),
    preprocessingFunction: (x: import('../src/engine/tf.js').Tensor) =>
      preprocessInput(x, spec.preprocessMode),
    // As `xfer train` does: preprocessInput is a per-pixel affine map, applied per batch in JS.
    preprocessingFunctionOnBatch: true,
  } as never);
  const iter = await gen.flowFromDirectory(dir, {
    targetSize: [224, 224],
    batchSize: batch,
    classMode: 'binary',
    seed: 1,
  });
  const times: number[] = [];
  let start = 0;
  class Timer extends Callback {
    override async onEpochBegin() {
      start = performance.now();
    }
    override async onEpochEnd() {
      times.push((performance.now() - start) / 1000);
    }
  }
  await fit(net, iter, { epochs, verbose: 0, callbacks: [new Timer()] });
  return times;
}

const PYTHON = `
import sys, time, resource, torch, torchvision
from torchvision import transforms as T
d, name, epochs, augment, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1', int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
m = getattr(torchvision.models, name)()
body = m.features if hasattr(m, 'features') else torch.nn.Sequential(*list(m.children())[:-2])
for p in body.parameters(): p.requires_grad = False
body.eval()
# channels_last: this PyTorch build's fastest CPU layout for convolutions (about 2x here).
body = body.to(memory_format=torch.channels_last)
channels = body(torch.zeros(1, 3, 64, 64)).shape[1]
head = torch.nn.Linear(channels, 1)
aug = [T.RandomAffine(40, translate=(0.2, 0.2), scale=(0.8, 1.2)), T.RandomHorizontalFlip()] if augment else []
tf = T.Compose([T.Resize((224, 224)), *aug, T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
data = torchvision.datasets.ImageFolder(d, tf)
loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=1)
opt = torch.optim.Adam(head.parameters(), 1e-3)
loss_fn = torch.nn.BCEWithLogitsLoss()
times = []
for e in range(epochs):
    t = time.perf_counter()
    for x, y in loader:
        with torch.no_grad():
            f = body(x.contiguous(memory_format=torch.channels_last)).mean((2, 3))
        loss = loss_fn(head(f).squeeze(1), y.float())
        opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(' '.join(map(str, times)), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
`;

function torchPython(): string | null {
  for (const python of [process.env.XFER_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(
    Boolean,
  ) as string[]) {
    if (spawnSync(python, ['-c', 'import torch, torchvision']).status === 0) return python;
  }
  return null;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const [, dir, model, epochs, augment, batch] = argv;
    const times = await xferRun(dir!, model!, Number(epochs), augment === '1', Number(batch));
    process.stdout.write(
      `${JSON.stringify({ times, peakRssMB: process.resourceUsage().maxRSS / 1024 })}\n`,
    );
    return;
  }
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'vgg16' },
      images: { type: 'string', default: '2000' },
      epochs: { type: 'string', default: '10' },
      'batch-size': { type: 'string', default: '100' },
      json: { type: 'boolean', default: false },
      // Skips the PyTorch peer (e.g. VGG16's memory figure alone, where PyTorch takes an hour).
      'no-pytorch': { type: 'boolean', default: false },
    },
  });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'xfer-workload-'));
  const threads = Number(process.env.XFER_ORT_THREADS) || 2;
  try {
    await makeImages(dir, Number(values.images), 224);
    const python = values['no-pytorch'] ? null : torchPython();
    if (!python && !values['no-pytorch'])
      process.stderr.write(
        'bench: python3-torch is not installed; the PyTorch runs are skipped.\n',
      );
    const rows: Record<string, unknown>[] = [];
    for (const augment of [true, false]) {
      for (const engine of ['xfer', 'pytorch']) {
        let row: Record<string, unknown>;
        if (engine === 'pytorch' && !python)
          row = {
            engine,
            augment,
            skipped: values['no-pytorch'] ? '--no-pytorch' : 'python3-torch not installed',
          };
        else {
          try {
            const args = [
              dir,
              values.model,
              values.epochs,
              augment ? '1' : '0',
              values['batch-size'],
            ];
            const commandStart = performance.now();
            const out =
              engine === 'xfer'
                ? execFileSync(
                    process.execPath,
                    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', ...args],
                    {
                      encoding: 'utf8',
                      env: { ...process.env, XFER_ORT_THREADS: `${threads}` },
                    },
                  )
                : execFileSync(python!, ['-c', PYTHON, ...args, `${threads}`], {
                    encoding: 'utf8',
                  });
            // The whole command's wall time: start-up, model build, every epoch, exit.
            const commandSeconds = (performance.now() - commandStart) / 1000;
            const last = out.trim().split('\n').pop()!;
            if (engine === 'xfer') row = { engine, augment, commandSeconds, ...JSON.parse(last) };
            else {
              const parts = last.split(/\s+/).map(Number);
              row = {
                engine,
                augment,
                commandSeconds,
                times: parts.slice(0, -1),
                peakRssMB: parts.at(-1),
              };
            }
          } catch (error) {
            row = { engine, augment, failed: (error as Error).message.split('\n')[0] };
          }
        }
        const times = row.times as number[] | undefined;
        if (times) row.totalSeconds = times.reduce((a, b) => a + b, 0);
        rows.push({
          model: values.model,
          images: Number(values.images),
          epochs: Number(values.epochs),
          ...row,
        });
        if (values.json) process.stdout.write(`${JSON.stringify(rows.at(-1))}\n`);
      }
    }
    if (!values.json) {
      const lines = [
        '| augmentation | engine | epoch 1 (s) | later epochs, mean (s) | epochs total (s) | whole command (s) | peak RSS (MB) |',
        '| --- | --- | --- | --- | --- | --- | --- |',
      ];
      for (const r of rows) {
        const t = r.times as number[] | undefined;
        const later =
          t && t.length > 1 ? t.slice(1).reduce((a, b) => a + b, 0) / (t.length - 1) : undefined;
        lines.push(
          `| ${r.augment ? 'yes' : 'no'} | ${r.engine} | ${t ? t[0]!.toFixed(1) : (r.skipped ?? r.failed)} | ${later?.toFixed(2) ?? '—'} | ${(r.totalSeconds as number | undefined)?.toFixed(1) ?? '—'} | ${(r.commandSeconds as number | undefined)?.toFixed(1) ?? '—'} | ${(r.peakRssMB as number | undefined)?.toFixed(0) ?? '—'} |`,
        );
      }
      process.stdout.write(
        `${values.model}, ${values.images} images, ${values.epochs} epochs, ${threads} threads\n${lines.join('\n')}\n`,
      );
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
