import * as path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { XferError } from '../../errors.js';
import type { BackboneSource } from '../../recipes/backbones.js';
import { trainClassifier } from '../../recipes/classifier.js';
import { DEMO_BACKBONE } from '../../recipes/demo.js';
import { RUN_FILES, type RunConfig, readJson } from '../../recipes/run-folder.js';
import { trapInterrupts } from '../../recipes/signals.js';
import { Callback, type UnfreezeTarget } from '../../training/index.js';
import { announceBackend, printJson } from '../output.js';
import { nonNegativeInteger, positiveInteger, positiveNumber } from '../parse.js';

interface TrainFlags {
  backbone?: string;
  weights: string;
  epochs: number;
  batchSize: number;
  imageSize?: number;
  learningRate: number;
  augment?: boolean;
  freezeBackbone: boolean;
  patience: number;
  seed?: number;
  out: string;
  config?: string;
  resume?: string;
  json?: boolean;
  fineTune?: UnfreezeTarget;
  fineTuneEpochs?: number;
  fineTuneLearningRate?: number;
  trainBatchNorm?: boolean;
  cacheDir?: string;
}

/** `--fine-tune`: a number is the last N blocks, 'all' everything, anything else a layer name. */
function fineTuneTarget(text: string): UnfreezeTarget {
  const value = text.trim();
  if (value === '')
    throw new InvalidArgumentError("expected a layer name, a number of blocks or 'all', got ''.");
  if (value.toLowerCase() === 'all') return 'all';
  if (/^\d+$/.test(value)) return { blocks: positiveInteger(value) };
  return value;
}

/** Prints one JSON line per epoch: the machine-readable twin of the progress bar. */
class JsonEpochLines extends Callback {
  private started = 0;
  override async onEpochBegin(): Promise<void> {
    this.started = performance.now();
  }
  override async onEpochEnd(epoch: number, logs: Record<string, number> = {}): Promise<void> {
    printJson({
      epoch: epoch + 1,
      loss: logs.loss,
      accuracy: logs.accuracy,
      valLoss: logs.val_loss,
      valAccuracy: logs.val_accuracy,
      seconds: Number(((performance.now() - this.started) / 1000).toFixed(3)),
    });
  }
}

/** config.json keys and the flags that set them. */
const CONFIG_FLAGS = {
  backbone: 'backbone',
  weights: 'weights',
  epochs: 'epochs',
  batchSize: 'batchSize',
  imageSize: 'imageSize',
  learningRate: 'learningRate',
  augment: 'augment',
  freezeBackbone: 'freezeBackbone',
  patience: 'patience',
  seed: 'seed',
  fineTune: 'fineTune',
  fineTuneEpochs: 'fineTuneEpochs',
  fineTuneLearningRate: 'fineTuneLearningRate',
  trainBatchNorm: 'trainBatchNorm',
} as const;

/** What a resumed run may change: how long it trains, not what it trains. */
const RESUME_MAY_CHANGE = new Set(['epochs', 'patience', 'learningRate']);

/** The registered applications by name, and the demo's own backbone by its recorded name. */
function backboneFor(name: string): string | BackboneSource {
  return name === DEMO_BACKBONE.name ? DEMO_BACKBONE : name;
}

function kebab(name: string): string {
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * Flags on the command line win over the config file, which wins over the defaults: commander
 * says where each value came from.
 */
async function resolveFlags(
  command: Command,
  dataDir: string | undefined,
): Promise<{ flags: TrainFlags; dataDir: string; resume: boolean }> {
  const flags = { ...(command.opts() as TrainFlags) };
  const fromCli = (name: string) => command.getOptionValueSource(name) === 'cli';
  if (flags.resume && flags.config) {
    throw new XferError(
      'INVALID_ARGUMENT',
      '--resume and --config cannot be used together: --resume <dir> reads <dir>/config.json itself.',
    );
  }
  const configFile = flags.resume ? path.join(flags.resume, RUN_FILES.config) : flags.config;
  let fileDataDir: string | undefined;
  if (configFile) {
    const config = await readJson<Partial<RunConfig>>(configFile, 'run config');
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new XferError(
        'CORRUPT_FILE',
        `${configFile} is not a JSON object of training settings.`,
        {
          file: configFile,
        },
      );
    }
    for (const [key, flag] of Object.entries(CONFIG_FLAGS)) {
      const value = config[key as keyof RunConfig];
      if (value === undefined) continue;
      if (fromCli(flag)) {
        if (
          flags.resume &&
          !RESUME_MAY_CHANGE.has(flag) &&
          value !== flags[flag as keyof TrainFlags]
        ) {
          throw new XferError(
            'INVALID_ARGUMENT',
            `${kebab(flag)} cannot change when resuming (the run used ${JSON.stringify(value)}); a resumed run may change only --epochs, --patience and --learning-rate. Start a new run with --config ${configFile} ${kebab(flag)} ... --out <new folder> instead.`,
            { flag },
          );
        }
        continue;
      }
      (flags as unknown as Record<string, unknown>)[flag] =
        key === 'weights' && value === null ? 'none' : value;
    }
    fileDataDir = typeof config.dataDir === 'string' ? config.dataDir : undefined;
    if (flags.resume) {
      if (fromCli('out') && path.resolve(flags.out) !== path.resolve(flags.resume)) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `--out ${flags.out} differs from --resume ${flags.resume}: a resumed run continues in its own folder.`,
        );
      }
      flags.out = flags.resume;
    }
  }
  const data = dataDir ?? fileDataDir;
  if (data === undefined) {
    throw new XferError(
      'INVALID_ARGUMENT',
      'xfer train needs a data directory: give it as the argument, or use --config <run>/config.json or --resume <run>, which name it.',
    );
  }
  if (flags.backbone === undefined) {
    throw new XferError(
      'INVALID_ARGUMENT',
      "xfer train needs --backbone (vgg16, vgg19, resnet50, mobilenet, mobilenet_v2...), or --config / --resume with a run's config.json.",
    );
  }
  return { flags, dataDir: data, resume: Boolean(flags.resume) };
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description(
      "the seed's transfer learning: frozen backbone + GlobalAveragePooling2D + Dense, with checkpoint and early stopping; writes a run folder with the model, config, history, checkpoints and report.html",
    )
    .argument(
      '[data-dir]',
      'folder with train/ and validation/ (optionally test/), one sub-folder per class',
    )
    .option('--backbone <model>', 'vgg16, vgg19, resnet50, mobilenet, mobilenet_v2 (any case)')
    .option(
      '--weights <imagenet|none|file>',
      "backbone weights: 'imagenet', 'none' (random) or a .h5 / model.json path or URL",
      'imagenet',
    )
    .option('--epochs <n>', 'epochs', positiveInteger, 10)
    .option('--batch-size <n>', 'images per batch', positiveInteger, 32)
    .option('--image-size <n>', "square input size (default: the backbone's, 224)", positiveInteger)
    .option('--learning-rate <lr>', "Adam's learning rate", positiveNumber, 0.001)
    .option(
      '--augment',
      "the seed's augmentation: rotation 40, shifts 0.2, zoom 0.2, horizontal flip",
    )
    .option(
      '--no-freeze-backbone',
      'train the backbone too (default: frozen, only the head trains)',
    )
    .option('--patience <n>', 'early-stopping patience in epochs', positiveInteger, 10)
    .option(
      '--seed <n>',
      'seed for shuffling and augmentation (default: drawn, and recorded in config.json)',
      nonNegativeInteger,
    )
    .option('--out <dir>', 'run folder to write', 'xfer-run')
    .option(
      '--config <file>',
      "a run's config.json: repeat that run (flags given here override it)",
    )
    .option('--resume <dir>', 'continue an interrupted run from its last complete epoch')
    .option(
      '--fine-tune <layer|N|all>',
      "after the head-only epochs, unfreeze the backbone from a layer (block5_conv1), its last N blocks, or 'all', and fine-tune",
      fineTuneTarget,
    )
    .option(
      '--fine-tune-epochs <n>',
      'fine-tuning epochs, numbered on after --epochs (default 5)',
      positiveInteger,
    )
    .option(
      '--fine-tune-learning-rate <lr>',
      'learning rate while fine-tuning (default: --learning-rate / 10)',
      positiveNumber,
    )
    .option(
      '--train-batch-norm',
      "let the backbone's BatchNormalization layers train while fine-tuning (default: inference mode, as Keras)",
    )
    .option(
      '--cache-dir <dir>',
      "keep the frozen backbone's outputs here across runs (without --augment): a rerun on the same images skips decoding and the backbone",
    )
    .option('--json', 'one JSON line per epoch and one with the test results')
    .action(async (dataDirArg: string | undefined, _opts: TrainFlags, command: Command) => {
      const { flags: opts, dataDir, resume } = await resolveFlags(command, dataDirArg);
      const quiet = Boolean(opts.json) || Boolean(program.opts().quiet);
      await announceBackend(quiet);
      const trap = trapInterrupts({
        onInterrupt: (signal) => {
          if (process.stderr.isTTY) process.stderr.write('\n\x1b[?25h');
          if (!program.opts().quiet) {
            process.stderr.write(
              `xfer: ${signal} received: stopping at the end of this batch; the last complete epoch is kept (press Ctrl+C again to quit at once).\n`,
            );
          }
        },
      });
      try {
        const result = await trainClassifier({
          dataDir,
          backbone: backboneFor(opts.backbone!),
          weights: opts.weights === 'none' ? null : opts.weights,
          epochs: opts.epochs,
          batchSize: opts.batchSize,
          ...(opts.imageSize ? { imageSize: opts.imageSize } : {}),
          learningRate: opts.learningRate,
          augment: Boolean(opts.augment),
          freezeBackbone: opts.freezeBackbone,
          patience: opts.patience,
          ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
          outDir: opts.out,
          verbose: quiet ? 0 : 1,
          callbacks: opts.json ? [new JsonEpochLines()] : [],
          signal: trap.signal,
          resume,
          ...(opts.fineTune !== undefined ? { fineTune: opts.fineTune } : {}),
          ...(opts.fineTuneEpochs !== undefined ? { fineTuneEpochs: opts.fineTuneEpochs } : {}),
          ...(opts.fineTuneLearningRate !== undefined
            ? { fineTuneLearningRate: opts.fineTuneLearningRate }
            : {}),
          ...(opts.trainBatchNorm ? { trainBatchNorm: true } : {}),
          ...(opts.cacheDir !== undefined ? { featureCacheDir: opts.cacheDir } : {}),
        });
        if (opts.json) {
          printJson({
            test: result.test,
            outDir: result.outDir,
            classNames: result.classNames,
            epochs: result.epochSeconds.length,
            report: result.reportPath,
          });
        } else {
          if (result.test) {
            process.stdout.write(
              `test loss ${result.test.loss.toFixed(4)}, test accuracy ${result.test.accuracy.toFixed(4)}\n`,
            );
          }
          process.stdout.write(
            `saved to ${result.outDir}${result.reportPath ? ` (report: ${result.reportPath})` : ''}; predict with: xfer predict ${result.outDir} <image>\n`,
          );
        }
      } finally {
        trap.dispose();
      }
    });
}
