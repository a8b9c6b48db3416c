import type { Command } from 'commander';
import { runDemo } from '../../recipes/demo.js';
import { announceBackend, printJson } from '../output.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'offline demo: transfer learning vs training from scratch on shipped Fashion-MNIST images',
    )
    .option('--out <dir>', 'where to keep the two run folders (default: a temp folder)')
    .option(
      '--fine-tune',
      'then unfreeze the pretrained backbone and fine-tune it at a lower rate; prints head-only vs fine-tuned test accuracy',
    )
    .option('--json', 'JSON lines; the last one has transfer.testAccuracy and scratch.testAccuracy')
    .action(async (opts: { out?: string; json?: boolean; fineTune?: boolean }) => {
      const quiet = Boolean(opts.json) || program.opts().quiet;
      await announceBackend(quiet);
      const result = await runDemo({
        ...(opts.out ? { outDir: opts.out } : {}),
        ...(opts.fineTune ? { fineTune: true } : {}),
        verbose: quiet ? 0 : 1,
      });
      if (opts.json) {
        printJson(result);
        return;
      }
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      process.stdout.write(
        [
          '',
          'Pullover vs T-shirt, 28x28 Fashion-MNIST images, same head, same epochs:',
          `  transfer learning (backbone pretrained on the other 8 classes, frozen): test accuracy ${pct(result.transfer.testAccuracy)}  (${result.transfer.seconds.toFixed(1)} s)`,
          ...(result.fineTuned
            ? [
                `  then the backbone unfrozen and fine-tuned, ${result.fineTuned.epochs} more epochs at ${result.fineTuned.learningRate}: test accuracy ${pct(result.fineTuned.testAccuracy)}  (head only: ${pct(result.transfer.testAccuracy)}; ${result.fineTuned.improvement >= 0 ? '+' : ''}${(100 * result.fineTuned.improvement).toFixed(1)} points)`,
              ]
            : []),
          `  the same network trained from scratch:                                  test accuracy ${pct(result.scratch.testAccuracy)}  (${result.scratch.seconds.toFixed(1)} s)`,
          '',
          `Prediction for ${result.prediction.file}:`,
          `  ${result.prediction.className} (class ${result.prediction.classIndex}, sigmoid output ${result.prediction.probability.toFixed(4)})`,
          '',
          `Run folders: ${result.transfer.outDir} and ${result.scratch.outDir}`,
          `  try: npx xfer predict ${result.transfer.outDir} <image.png>`,
          `Total ${result.seconds.toFixed(1)} s.`,
          '',
        ].join('\n'),
      );
    });
}
