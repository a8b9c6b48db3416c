/**
 * Images per second of xfer's image pipeline (decode, resize to 224x224, augment, preprocess,
 * batch) on ~500x375 JPEGs, beside PIL + torchvision (a DataLoader with 2 workers) in the same run
 * when Debian's python3-torchvision is installed, and where the time goes per image.
 *
 *   node --import tsx bench/data-pipeline.ts [--images 300] [--batch 32] [--no-python]
 *
 * The seed's training generator is measured as the seed writes it (rotation 40, shifts 0.2,
 * zoom 0.2, horizontal flip, fill 'constant', VGG16's preprocess_input, nearest resize).
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { preprocessInput } from '../src/applications/preprocess.js';
import { decodeImageBytes, finishImage, resolveLoadOptions } from '../src/data/image.js';
import { ImageDataGenerator, type ImageDataGeneratorOptions } from '../src/data/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { setQuiet } from '../src/util/log.js';
import { Random } from '../src/util/random.js';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '300' },
    batch: { type: 'string', default: '32' },
    'no-python': { type: 'boolean', default: false },
  },
});
const IMAGES = Number(args.images);
const BATCH = Number(args.batch);

/** Photo-like JPEGs: smooth gradients, blobs and noise, 500x375, quality 90. */
async function makeImages(dir: string): Promise<void> {
  const random = new Random(7);
  const width = 500;
  const height = 375;
  for (let i = 0; i < IMAGES; i++) {
    const cls = i % 2 === 0 ? 'cats' : 'dogs';
    await fsp.mkdir(path.join(dir, cls), { recursive: true });
    const pixels = Buffer.alloc(width * height * 3);
    const cx = random.uniform(0, width);
    const cy = random.uniform(0, height);
    const base = [random.uniform(0, 255), random.uniform(0, 255), random.uniform(0, 255)];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const d = Math.hypot(x - cx, y - cy) / 300;
        for (let c = 0; c < 3; c++) {
          const v = base[c]! * (1 - d) + (x / width) * 80 + random.uniform(-20, 20);
          pixels[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, v));
        }
      }
    }
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(path.join(dir, cls, `${cls.slice(0, 3)}.${i}.jpg`));
  }
}

const SEED_AUGMENTATION: ImageDataGeneratorOptions = {
  rotationRange: 40,
  widthShiftRange: 0.2,
  heightShiftRange: 0.2,
  zoomRange: 0.2,
  horizontalFlip: true,
  fillMode: 'constant',
};
const caffe = (x: tf.Tensor3D) => preprocessInput(x, 'caffe') as tf.Tensor3D;

/** One epoch through flowFromDirectory; images per second. */
async function epoch(
  dir: string,
  generator: ImageDataGenerator,
  interpolation: 'nearest' | 'bilinear',
) {
  const it = await generator.flowFromDirectory(dir, {
    targetSize: [224, 224],
    batchSize: BATCH,
    classMode: 'binary',
    interpolation,
    seed: 1,
  });
  const start = performance.now();
  for (let i = 0; i < it.length; i++) {
    const { x, y } = await it.getBatch(i);
    tf.dispose([x, y!]);
  }
  return (it.samples / (performance.now() - start)) * 1000;
}

/** Milliseconds per image for each stage, on one thread, over `count` files. */
async function stages(files: string[]) {
  const bytes = await Promise.all(files.map((f) => fsp.readFile(f)));
  const time = async (fn: (i: number) => unknown) => {
    const start = performance.now();
    for (let i = 0; i < bytes.length; i++) await fn(i);
    return (performance.now() - start) / bytes.length;
  };
  const raws = await Promise.all(bytes.map((b, i) => decodeImageBytes(b, files[i]!)));
  const nearest = resolveLoadOptions({ targetSize: [224, 224] });
  const bilinear = resolveLoadOptions({ targetSize: [224, 224], interpolation: 'bilinear' });
  const gen = new ImageDataGenerator(SEED_AUGMENTATION);
  const rng = new Random(3);
  const img = finishImage(raws[0]!, nearest);
  const pixels = Float32Array.from(img.data);
  const result: Record<string, number> = {
    'decode (sharp, one at a time)': await time((i) => decodeImageBytes(bytes[i]!, files[i]!)),
    'resize nearest (JS, PIL-exact)': await time((i) => finishImage(raws[i]!, nearest)),
    'resize bilinear (JS, PIL-exact)': await time((i) => finishImage(raws[i]!, bilinear)),
    'augment (affine + flip, JS)': await time(() =>
      gen.transformPixels(pixels, 224, 224, 3, gen.drawTransform([224, 224, 3], rng)),
    ),
    'preprocess_input per image (tfjs)': await time(() => {
      tf.tidy(() => caffe(tf.tensor3d(pixels, [224, 224, 3])).dataSync());
    }),
  };
  const batch = new Float32Array(BATCH * pixels.length);
  for (let k = 0; k < BATCH; k++) batch.set(pixels, k * pixels.length);
  const start = performance.now();
  tf.tidy(() => preprocessInput(tf.tensor4d(batch, [BATCH, 224, 224, 3]), 'caffe').dataSync());
  result['preprocess_input once per batch (tfjs), per image'] = (performance.now() - start) / BATCH;
  const onBatch = new ImageDataGenerator({
    preprocessingFunction: caffe,
    preprocessingFunctionOnBatch: true,
  });
  onBatch.standardizePixels(batch.slice(0, pixels.length), 1, [224, 224, 3]); // finds the affine map
  const jsStart = performance.now();
  onBatch.standardizePixels(batch, BATCH, [224, 224, 3]);
  result['preprocess_input as a JS affine map, per image'] = (performance.now() - jsStart) / BATCH;
  return result;
}

function python(dir: string): string {
  const script = `
import time, sys, torch, torchvision
from torchvision import datasets, transforms
torch.set_num_threads(1)
t = transforms.Compose([
    transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.NEAREST),
    transforms.RandomAffine(degrees=40, translate=(0.2, 0.2), scale=(0.8, 1.2)),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
ds = datasets.ImageFolder(sys.argv[1], transform=t)
for workers in (2, 0):
    dl = torch.utils.data.DataLoader(ds, batch_size=${BATCH}, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    n = sum(x.shape[0] for x, _ in dl)
    print(f"torchvision DataLoader, {workers} workers: {n / (time.perf_counter() - start):.0f} img/s")
`;
  return execFileSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' });
}

function hasTorchvision(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torchvision'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function main() {
  await initBackend();
  setQuiet(true);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-bench-data-'));
  try {
    console.log(
      `${IMAGES} JPEGs of 500x375 to 224x224 batches of ${BATCH}; ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}, backend ${tf.getBackend()}`,
    );
    await makeImages(dir);
    const files = (await fsp.readdir(path.join(dir, 'cats')))
      .slice(0, 40)
      .map((f) => path.join(dir, 'cats', f));
    console.log('\nms per image, per stage (one thread):');
    for (const [name, ms] of Object.entries(await stages(files))) {
      console.log(`  ${name.padEnd(50)} ${ms.toFixed(2)}`);
    }
    console.log('\nimages/s, one epoch of flowFromDirectory:');
    const runs: [string, ImageDataGenerator, 'nearest' | 'bilinear'][] = [
      ['decode + resize (nearest)', new ImageDataGenerator(), 'nearest'],
      ['decode + resize (bilinear)', new ImageDataGenerator(), 'bilinear'],
      ['+ seed augmentation', new ImageDataGenerator(SEED_AUGMENTATION), 'nearest'],
      [
        "+ preprocess_input per image (the seed's)",
        new ImageDataGenerator({ ...SEED_AUGMENTATION, preprocessingFunction: caffe }),
        'nearest',
      ],
      [
        '+ preprocess_input, preprocessingFunctionOnBatch',
        new ImageDataGenerator({
          ...SEED_AUGMENTATION,
          preprocessingFunction: caffe,
          preprocessingFunctionOnBatch: true,
        }),
        'nearest',
      ],
    ];
    for (const [name, gen, interpolation] of runs) {
      console.log(`  ${name.padEnd(44)} ${(await epoch(dir, gen, interpolation)).toFixed(0)}`);
    }
    if (args['no-python']) return;
    if (!hasTorchvision()) {
      console.log('\nPIL + torchvision: skipped (Debian python3-torchvision is not installed).');
      return;
    }
    console.log('\nPIL + torchvision, same images, same transforms (affine, flip, normalize):');
    process.stdout.write(python(dir).replace(/^/gm, '  '));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

await main();
