import type { Command } from 'commander';
import { XferError } from '../../errors.js';
import { loadClassifier } from '../../recipes/classifier.js';
import {
  expandImageArgs,
  type FilePrediction,
  predictFiles,
} from '../../recipes/run-folder-predict.js';
import { warn } from '../../util/log.js';
import { createProgress, type Progress } from '../../util/progress.js';
import { announceBackend, printJson } from '../output.js';
import { positiveInteger } from '../parse.js';

interface PredictFlags {
  top?: number;
  json?: boolean;
  csv?: boolean;
  batchSize: number;
}

/** From this many images on, a progress bar (stderr) when the results go to a file or a pipe. */
const PROGRESS_FROM = 10;

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function csvHeader(top: number): string {
  const extra = Array.from(
    { length: top - 1 },
    (_, i) => `,class_${i + 2},probability_${i + 2}`,
  ).join('');
  return `file,class,class_index,probability${extra}\n`;
}

function csvRow(p: FilePrediction, top: number): string {
  const extra = p.top
    .slice(1, top)
    .map((s) => `,${csvField(s.className)},${s.probability}`)
    .join('');
  return `${csvField(p.file)},${csvField(p.className)},${p.classIndex},${p.confidence}${extra}\n`;
}

function tableRow(p: FilePrediction, top: number, fileWidth: number): string {
  const scores = (top > 1 ? p.top : p.top.slice(0, 1))
    .map((s) => `${s.className} ${(100 * s.probability).toFixed(1)}%`)
    .join('  ');
  return `${p.file.padEnd(fileWidth)}  ${scores}\n`;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description(
      'classify images with a model trained by `xfer train`: files, folders or globs (quote them: "photos/**/*.jpg")',
    )
    .argument('<model-dir>', 'the --out folder of xfer train')
    .argument(
      '<image...>',
      'image files, folders (all images inside, recursively) or * / ** patterns',
    )
    .option('--top <k>', 'list the k most probable classes', positiveInteger)
    .option('--batch-size <n>', 'images per model call', positiveInteger, 32)
    .option(
      '--json',
      'one JSON object per image: file, className, classIndex, probability, confidence[, top]',
    )
    .option('--csv', 'CSV: file,class,class_index,probability[,class_2,probability_2,...]')
    .action(async (modelDir: string, args: string[], opts: PredictFlags) => {
      if (opts.json && opts.csv) {
        throw new XferError(
          'INVALID_ARGUMENT',
          '--json and --csv cannot be used together; pick one output format.',
        );
      }
      // Results stream to stdout: a reader that stops early (`| head`) ends the command quietly.
      process.stdout.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EPIPE') process.exit(0);
        throw error;
      });
      const quiet = Boolean(program.opts().quiet);
      await announceBackend(quiet || Boolean(opts.json) || Boolean(opts.csv));
      const classifier = await loadClassifier(modelDir);
      const files = await expandImageArgs(args);
      const top = Math.min(opts.top ?? 1, Math.max(2, classifier.classNames.length));
      let progress: Progress | undefined;
      if (!quiet && files.length >= PROGRESS_FROM && !process.stdout.isTTY) {
        progress = createProgress({ total: files.length, label: 'predict', unit: 'images' });
      }
      if (opts.csv) process.stdout.write(csvHeader(top));
      const fileWidth = Math.min(60, Math.max(4, ...files.map((f) => f.length)));
      let failures = 0;
      let done = 0;
      try {
        for await (const result of predictFiles(classifier, files, {
          top,
          batchSize: opts.batchSize,
        })) {
          done++;
          progress?.update(done);
          if (result.error) {
            // One unreadable image does not stop the others; it is reported and counted.
            failures++;
            warn(result.error.message);
            continue;
          }
          const p = result.prediction;
          if (opts.json) {
            const { top: ranked, ...rest } = p;
            printJson(opts.top ? { ...rest, top: ranked } : rest);
          } else if (opts.csv) process.stdout.write(csvRow(p, top));
          else process.stdout.write(tableRow(p, opts.top ? top : 1, fileWidth));
        }
      } finally {
        progress?.stop();
      }
      if (failures > 0) {
        throw new XferError(
          'CORRUPT_FILE',
          `${failures} of ${files.length} image(s) could not be read (see the warnings above); the others were classified.`,
          { failures, total: files.length },
        );
      }
    });
}
