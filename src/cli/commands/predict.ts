import type { Command } from 'commander';
import { XferError } from '../../errors.js';
import { loadClassifier } from '../../recipes/classifier.js';
import { warn } from '../../util/log.js';
import { announceBackend, printJson } from '../output.js';

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('classify images with a model trained by `xfer train`')
    .argument('<model-dir>', 'the --out folder of xfer train')
    .argument('<image...>', 'image files')
    .option('--json', 'one JSON object per image: file, className, classIndex, probability')
    .action(async (modelDir: string, images: string[], opts: { json?: boolean }) => {
      await announceBackend(Boolean(opts.json) || program.opts().quiet);
      const classifier = await loadClassifier(modelDir);
      let failures = 0;
      for (const file of images) {
        try {
          const p = await classifier.predictFile(file);
          if (opts.json) printJson(p);
          else process.stdout.write(`${file}\t${p.className}\t${p.probability.toFixed(4)}\n`);
        } catch (error) {
          // One unreadable image does not stop the others; it is reported and counted.
          if (!(error instanceof XferError)) throw error;
          failures++;
          warn(error.message);
        }
      }
      if (failures > 0) {
        throw new XferError(
          'CORRUPT_FILE',
          `${failures} of ${images.length} image(s) could not be read (see the warnings above).`,
        );
      }
    });
}
