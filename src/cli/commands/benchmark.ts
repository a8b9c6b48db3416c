import { type Command, InvalidArgumentError } from 'commander';
import { getApplication } from '../../applications/index.js';
import { benchmarkForward, type ForwardBenchmark } from '../../engine/onnx/benchmark.js';
import { createProgress, type Progress } from '../../util/progress.js';
import { announceBackend, printJson } from '../output.js';
import { positiveInteger } from '../parse.js';

interface BenchmarkFlags {
  top: boolean;
  imageSize?: number;
  batchSize: number;
  images: number;
  engine: 'onnxruntime' | 'tfjs';
  json?: boolean;
}

export function registerBenchmark(program: Command): void {
  program
    .command('benchmark')
    .description('forward throughput of a backbone (images/s), on the engine predict uses')
    .argument(
      '<model>',
      'a Keras application: module or class name, any case (mobilenet_v2, VGG16)',
    )
    .option('--no-top', 'without the classifier (include_top=False)')
    .option(
      '--image-size <n>',
      'height and width of the images; default the model’s (224)',
      positiveInteger,
    )
    .option('--batch-size <n>', 'images per batch', positiveInteger, 32)
    .option('--images <n>', 'images to time, after one warm-up batch', positiveInteger, 128)
    .option(
      '--engine <name>',
      "'onnxruntime' or 'tfjs'",
      (v: string) => {
        if (v !== 'onnxruntime' && v !== 'tfjs')
          throw new InvalidArgumentError(`expected onnxruntime or tfjs, got '${v}'.`);
        return v;
      },
      'onnxruntime',
    )
    .option('--json', 'one JSON line: imagesPerSecond, backend, engine, batchSize, imageSize')
    .action(async (name: string, opts: BenchmarkFlags) => {
      const spec = getApplication(name);
      await announceBackend(Boolean(opts.json) || program.opts().quiet);
      const size = opts.imageSize ?? spec.defaultInputSize;
      const model = await spec.build({
        includeTop: opts.top,
        weights: null,
        inputShape: [size, size, 3],
      });
      // On stderr (nothing under --quiet): stdout keeps the result, or the one JSON object.
      let bar: Progress | undefined;
      let result: ForwardBenchmark;
      try {
        result = await benchmarkForward(model, [size, size], {
          batchSize: opts.batchSize,
          images: opts.images,
          engine: opts.engine,
          onProgress: (done, total) => {
            bar ??= createProgress({
              total,
              label: `benchmark ${spec.className}`,
              unit: 'batches',
            });
            bar.update(done);
          },
        });
      } finally {
        bar?.stop();
        model.dispose();
      }
      if (opts.json) {
        printJson({ model: spec.name, includeTop: opts.top, ...result });
      } else {
        process.stdout.write(
          `${spec.className}${opts.top ? '' : ' (no top)'} ${size}x${size}, batch ${result.batchSize}, ${result.engine}: ${result.imagesPerSecond.toFixed(1)} images/s (${result.images} images in ${result.seconds.toFixed(2)} s)\n`,
        );
      }
    });
}
