import path from 'node:path';
import type { Command } from 'commander';
import { exportOnnx } from '../../engine/onnx/export.js';
import type * as tf from '../../engine/tf.js';
import { XferError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { loadModel } from '../../weights/index.js';
import { announceBackend, printJson } from '../output.js';
import { positiveInteger } from '../parse.js';

interface ExportFlags {
  format: string;
  output?: string;
  imageSize?: number;
  upTo?: string;
  json?: boolean;
}

/** What one export format writes; a format is one entry here. */
interface ExportFormat {
  /** The default output path beside the model folder. */
  defaultOutput(modelDir: string): string;
  write(
    model: tf.LayersModel,
    output: string,
    flags: ExportFlags,
  ): Promise<Record<string, unknown>>;
}

const FORMATS: Record<string, ExportFormat> = {
  onnx: {
    defaultOutput: (dir) => `${path.resolve(dir)}.onnx`,
    async write(model, output, flags) {
      const exported = exportOnnx(model, {
        ...(flags.upTo ? { upTo: flags.upTo } : {}),
        ...(flags.imageSize
          ? { imageSize: [flags.imageSize, flags.imageSize] as [number, number] }
          : {}),
      });
      await writeFileAtomic(output, exported.bytes);
      return {
        bytes: exported.bytes.length,
        input: exported.input,
        output: exported.output,
        foldedBatchNorms: exported.foldedBatchNorms,
      };
    },
  },
};

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a trained model in another format (onnx: runs on any ONNX runtime)')
    .argument('<model-dir>', 'a tfjs model folder (model.json + weights), as xfer train saves')
    .option('--format <name>', `one of: ${Object.keys(FORMATS).join(', ')}`, 'onnx')
    .option('-o, --output <file>', 'where to write; default <model-dir>.onnx')
    .option(
      '--image-size <n>',
      'image height and width, for models that take any size',
      positiveInteger,
    )
    .option('--up-to <layer>', 'export the model up to this layer only (e.g. the backbone)')
    .option('--json', 'one JSON line describing the file written')
    .action(async (modelDir: string, opts: ExportFlags) => {
      const format = FORMATS[opts.format];
      if (!format) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `unknown export format '${opts.format}'. Known formats: ${Object.keys(FORMATS).join(', ')}.`,
          { format: opts.format },
        );
      }
      await announceBackend(Boolean(opts.json) || program.opts().quiet);
      const model = await loadModel(modelDir);
      const output = opts.output ?? format.defaultOutput(modelDir);
      const details = await format.write(model, output, opts);
      if (opts.json) printJson({ format: opts.format, path: output, ...details });
      else process.stderr.write(`xfer: wrote ${output}\n`);
    });
}
