import type { Command } from 'commander';
import { trainClassifier } from '../../recipes/classifier.js';
import { Callback } from '../../training/index.js';
import { positiveInteger, positiveNumber } from '../parse.js';
import { announceBackend, printJson } from '../output.js';

interface TrainFlags {
  backbone: string;
  weights: string;
  epochs: number;
  batchSize: number;
  imageSize?: number;
  learningRate: number;
  augment?: boolean;
  patience: number;
  seed?: number;
  out: string;
  json?: boolean;
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

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description("the seed's transfer learning: frozen backbone + GlobalAveragePooling2D + Dense, with checkpoint and early stopping")
    .argument('<data-dir>', 'folder with train/ and validation/ (optionally test/), one sub-folder per class')
    .requiredOption('--backbone <model>', 'vgg16, vgg19, resnet50, mobilenet, mobilenet_v2 (any case)')
    .option('--weights <imagenet|none|file>', "backbone weights: 'imagenet', 'none' (random) or a .h5 / model.json path or URL", 'imagenet')
    .option('--epochs <n>', 'epochs', positiveInteger, 10)
    .option('--batch-size <n>', 'images per batch', positiveInteger, 32)
    .option('--image-size <n>', "square input size (default: the backbone's, 224)", positiveInteger)
    .option('--learning-rate <lr>', "Adam's learning rate", positiveNumber, 0.001)
    .option('--augment', "the seed's augmentation: rotation 40, shifts 0.2, zoom 0.2, horizontal flip")
    .option('--patience <n>', 'early-stopping patience in epochs', positiveInteger, 10)
    .option('--seed <n>', 'seed for shuffling and augmentation', positiveInteger)
    .option('--out <dir>', 'run folder to write', 'xfer-run')
    .option('--json', 'one JSON line per epoch and one with the test results')
    .action(async (dataDir: string, opts: TrainFlags) => {
      const quiet = Boolean(opts.json) || program.opts().quiet;
      await announceBackend(quiet);
      const result = await trainClassifier({
        dataDir,
        backbone: opts.backbone,
        weights: opts.weights === 'none' ? null : opts.weights,
        epochs: opts.epochs,
        batchSize: opts.batchSize,
        ...(opts.imageSize ? { imageSize: opts.imageSize } : {}),
        learningRate: opts.learningRate,
        augment: Boolean(opts.augment),
        patience: opts.patience,
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        outDir: opts.out,
        verbose: quiet ? 0 : 1,
        callbacks: opts.json ? [new JsonEpochLines()] : [],
      });
      if (opts.json) {
        printJson({ test: result.test, outDir: result.outDir, classNames: result.classNames });
      } else {
        if (result.test) {
          process.stdout.write(
            `test loss ${result.test.loss.toFixed(4)}, test accuracy ${result.test.accuracy.toFixed(4)}\n`,
          );
        }
        process.stdout.write(`saved to ${result.outDir} (predict with: xfer predict ${result.outDir} <image>)\n`);
      }
    });
}
