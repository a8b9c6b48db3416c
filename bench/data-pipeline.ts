/**
 * Images per second of xfer's image pipeline (read, decode, resize to 224x224, augment,
 * preprocess, batch) on ~500x375 JPEGs with 0, 1 and 2 worker threads, beside PIL + torchvision
 * (a DataLoader with 2 workers, and 0) on the same files in the same run when Debian's
 * python3-torchvision is at /usr/bin/python3, and where the time goes per image.
 *
 *   node --import tsx bench/data-pipeline.ts [--images 300] [--batch 32] [--rounds 2] [--no-python] [--json]
 *
 * The augmentation is the seed's (rotation 40, shifts 0.2, zoom 0.2, horizontal flip, fill
 * 'constant', VGG16's preprocess_input, nearest resize); torchvision gets the same work: nearest
 * Resize, a bilinear RandomAffine(40, translate 0.2, scale 0.8-1.2), flip, ToTensor, Normalize.
 * Each row is measured `rounds` times, the rows interleaved, and the best round is kept (the
 * machine may be shared); CPU ms per image counts every thread of the process (xfer) or the
 * single process (torchvision, 0 workers), a figure load changes much less than wall time.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { vgg16 } from '../src/applications/index.js';
import { preprocessInput } from '../src/applications/preprocess.js';
import { preprocessPixels } from '../src/applications/preprocess-pixels.js';
import { transformInto } from '../src/data/affine.js';
import { decodeImageBytes, finishImage, resolveLoadOptions } from '../src/data/image.js';
import { ImageDataGenerator, type ImageDataGeneratorOptions } from '../src/data/index.js';
import { decodePlainJpeg, jpegCodec } from '../src/data/jpeg-wasm.js';
import { closeImagePools } from '../src/data/pool.js';
import { nearestSource } from '../src/data/resize.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { setQuiet } from '../src/util/log.js';
import { Random } from '../src/util/random.js';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '300' },
    batch: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
    'no-python': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const IMAGES = Number(args.images);
const BATCH = Number(args.batch);
const ROUNDS = Number(args.rounds);
const log = (line: string) => {
  if (!args.json) console.log(line);
};

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

interface Row {
  name: string;
  library: 'xfer' | 'torchvision';
  workers: number;
  imagesPerSecond: number;
  /** CPU time of the whole process (all its threads) per image; null where not measured. */
  cpuMsPerImage: number | null;
}

/** One epoch through flowFromDirectory (after a warm-up batch): images/s and CPU ms per image. */
async function epoch(
  dir: string,
  generator: ImageDataGenerator,
  interpolation: 'nearest' | 'bilinear',
  workers: number,
): Promise<{ imagesPerSecond: number; cpuMsPerImage: number }> {
  const it = await generator.flowFromDirectory(dir, {
    targetSize: [224, 224],
    batchSize: BATCH,
    classMode: 'binary',
    interpolation,
    seed: 1,
    workers,
  });
  const warm = await it.getBatch(0); // starts the workers, compiles the kernels
  tf.dispose([warm.x, warm.y!]);
  const cpu = process.cpuUsage();
  const start = performance.now();
  // One batch in flight ahead, as fit's prefetch does.
  let next = it.getBatch(0);
  for (let i = 0; i < it.length; i++) {
    const { x, y } = await next;
    if (i + 1 < it.length) next = it.getBatch(i + 1);
    tf.dispose([x, y!]);
  }
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    imagesPerSecond: it.samples / seconds,
    cpuMsPerImage: (used.user + used.system) / 1000 / it.samples,
  };
}

/** Milliseconds per image for each stage, on one thread, over `count` files. */
async function stages(files: string[]) {
  const bytes = await Promise.all(files.map((f) => fsp.readFile(f)));
  const time = async (fn: (i: number) => unknown) => {
    const start = performance.now();
    for (let i = 0; i < bytes.length; i++) await fn(i);
    return (performance.now() - start) / bytes.length;
  };
  const codec = await jpegCodec();
  const raws = await Promise.all(bytes.map((b, i) => decodeImageBytes(b, files[i]!)));
  const nearest = resolveLoadOptions({ targetSize: [224, 224] });
  const bilinear = resolveLoadOptions({ targetSize: [224, 224], interpolation: 'bilinear' });
  const gen = new ImageDataGenerator(SEED_AUGMENTATION);
  const rng = new Random(3);
  const img = finishImage(raws[0]!, nearest);
  const pixels = Float32Array.from(img.data);
  const slot = new Float32Array(pixels.length);
  const result: Record<string, number> = {
    'decode (sharp, one at a time)': await time((i) => decodeImageBytes(bytes[i]!, files[i]!)),
    // What the workers use for plain JPEGs (jpeg-wasm.ts).
    'decode (libjpeg-turbo in WebAssembly)': await time((i) =>
      decodePlainJpeg(codec!, bytes[i]!, Number.POSITIVE_INFINITY),
    ),
    'resize nearest (JS, PIL-exact)': await time((i) => finishImage(raws[i]!, nearest)),
    'resize bilinear (JS, PIL-exact)': await time((i) => finishImage(raws[i]!, bilinear)),
    'augment (affine + flip, JS, float image in and out)': await time(() =>
      gen.transformPixels(pixels, 224, 224, 3, gen.drawTransform([224, 224, 3], rng)),
    ),
    // What a worker runs: the warp reads the decoded image through PIL's nearest picks.
    'nearest resize + affine + flip in one pass (JS)': await time((i) => {
      const raw = raws[i]!;
      const box = { left: 0, top: 0, width: raw.width, height: raw.height };
      const source = nearestSource(raw.data, raw.width, raw.channels, box, 224, 224);
      transformInto(source, gen.drawTransform([224, 224, 3], rng), gen, slot);
    }),
    // (Never return a typed array from tf.tidy: it walks every element looking for tensors.)
    'preprocess_input per image, through tensors': await time(() => {
      tf.tidy(() => slot.set(caffe(tf.tensor3d(pixels, [224, 224, 3])).dataSync()));
    }),
    "preprocess_input in numpy's arithmetic, in place (workers)": await time(() => {
      slot.set(pixels);
      preprocessPixels(slot, 3, 'caffe');
    }),
  };
  const batch = new Float32Array(BATCH * pixels.length);
  for (let k = 0; k < BATCH; k++) batch.set(pixels, k * pixels.length);
  const start = performance.now();
  tf.tidy(() => {
    batch.set(preprocessInput(tf.tensor4d(batch, [BATCH, 224, 224, 3]), 'caffe').dataSync());
  });
  result['preprocess_input once per batch, through tensors'] = (performance.now() - start) / BATCH;
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

/** torchvision rows: DataLoader with 2 and 0 workers, best of ROUNDS epochs each. */
function python(dir: string): Row[] {
  const script = `
import json, time, sys, resource, torch, torchvision
from torchvision import datasets, transforms
from torchvision.transforms import InterpolationMode
torch.set_num_threads(1)
t = transforms.Compose([
    transforms.Resize((224, 224), interpolation=InterpolationMode.NEAREST),
    transforms.RandomAffine(degrees=40, translate=(0.2, 0.2), scale=(0.8, 1.2),
                            interpolation=InterpolationMode.BILINEAR),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
ds = datasets.ImageFolder(sys.argv[1], transform=t)
rows = []
for workers in (2, 0):
    kw = dict(persistent_workers=True) if workers else {}
    dl = torch.utils.data.DataLoader(ds, batch_size=${BATCH}, shuffle=True, num_workers=workers, **kw)
    next(iter(dl))  # warm-up: starts the workers
    best, best_cpu = 0.0, None
    for _ in range(${ROUNDS}):
        start, cpu = time.perf_counter(), time.process_time()
        n = sum(x.shape[0] for x, _ in dl)
        rate = n / (time.perf_counter() - start)
        if rate > best:
            best = rate
            best_cpu = None if workers else (time.process_time() - cpu) * 1000 / n
    rows.append(dict(workers=workers, imagesPerSecond=best, cpuMsPerImage=best_cpu))
    del dl
print(json.dumps(rows))
`;
  const out = execFileSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' });
  const rows = JSON.parse(out.trim().split('\n').pop()!) as Omit<Row, 'name' | 'library'>[];
  return rows.map((r) => ({
    name: `PIL + torchvision DataLoader, num_workers=${r.workers}`,
    library: 'torchvision',
    ...r,
  }));
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
    const machine = {
      cores: os.availableParallelism(),
      loadAverage: os.loadavg()[0]!,
      backend: tf.getBackend(),
    };
    log(
      `${IMAGES} JPEGs of 500x375 to 224x224 batches of ${BATCH}; ${machine.cores} cores, load ${machine.loadAverage.toFixed(1)}, backend ${machine.backend}, best of ${ROUNDS} rounds`,
    );
    await makeImages(dir);
    const files = (await fsp.readdir(path.join(dir, 'cats')))
      .slice(0, 40)
      .map((f) => path.join(dir, 'cats', f));
    const perStage = await stages(files);
    log('\nms per image, per stage (one thread, wall time):');
    for (const [name, ms] of Object.entries(perStage)) log(`  ${name.padEnd(58)} ${ms.toFixed(2)}`);

    const seed = () =>
      new ImageDataGenerator({
        ...SEED_AUGMENTATION,
        preprocessingFunction: caffe,
        preprocessingFunctionOnBatch: true,
      });
    // As the seed writes it: Keras's per-image call of the family's preprocess_input.
    const literal = () =>
      new ImageDataGenerator({
        ...SEED_AUGMENTATION,
        preprocessingFunction: vgg16.preprocessInput as (x: tf.Tensor3D) => tf.Tensor3D,
      });
    const configs: [string, () => ImageDataGenerator, 'nearest' | 'bilinear', number][] = [
      ['xfer, seed augmentation + preprocess_input, workers 0', seed, 'nearest', 0],
      ['xfer, seed augmentation + preprocess_input, workers 1', seed, 'nearest', 1],
      ['xfer, seed augmentation + preprocess_input, workers 2', seed, 'nearest', 2],
      ['xfer, same with bilinear resize, workers 2', seed, 'bilinear', 2],
      ["xfer, seed's style: vgg16.preprocessInput, workers 2", literal, 'nearest', 2],
      [
        'xfer, decode + resize only (nearest), workers 2',
        () => new ImageDataGenerator(),
        'nearest',
        2,
      ],
    ];
    const rows: Row[] = configs.map(([name, , , workers]) => ({
      name,
      library: 'xfer',
      workers,
      imagesPerSecond: 0,
      cpuMsPerImage: null,
    }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [k, [, make, interpolation, workers]] of configs.entries()) {
        const r = await epoch(dir, make(), interpolation, workers);
        if (r.imagesPerSecond > rows[k]!.imagesPerSecond) Object.assign(rows[k]!, r);
      }
    }
    await closeImagePools();
    let torchNote: string | null = null;
    if (args['no-python']) torchNote = 'skipped (--no-python)';
    else if (!hasTorchvision()) torchNote = 'skipped (Debian python3-torchvision is not installed)';
    else rows.push(...python(dir));

    log('\nimages/s, one epoch (one batch prefetched):');
    log(`  ${'pipeline'.padEnd(58)} ${'img/s'.padStart(7)} ${'CPU ms/img'.padStart(11)}`);
    for (const r of rows) {
      const cpu = r.cpuMsPerImage === null ? '' : r.cpuMsPerImage.toFixed(1);
      log(`  ${r.name.padEnd(58)} ${r.imagesPerSecond.toFixed(0).padStart(7)} ${cpu.padStart(11)}`);
    }
    if (torchNote !== null) log(`  PIL + torchvision: ${torchNote}`);
    const torch2 = rows.find((r) => r.library === 'torchvision' && r.workers === 2);
    const xfer2 = rows[2]!;
    if (torch2) {
      log(
        `\nxfer (2 workers) / torchvision (2 workers): ${(xfer2.imagesPerSecond / torch2.imagesPerSecond).toFixed(2)}x`,
      );
    }
    if (args.json) {
      console.log(
        JSON.stringify(
          { images: IMAGES, batchSize: BATCH, rounds: ROUNDS, machine, stages: perStage, rows },
          null,
          2,
        ),
      );
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

await main();
