import path from 'node:path';
import type { Command } from 'commander';
import { exportOnnx } from '../../engine/onnx/export.js';
import type * as tf from '../../engine/tf.js';
import { XferError } from '../../errors.js';
import { exportKerasH5, exportTfjs } from '../../recipes/export.js';
import { pathExists, writeFileAtomic } from '../../util/fs.js';
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
    modelDir: string,
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
  // The run folder as a browser-loadable tfjs model (with classes and preprocessing beside it).
  tfjs: {
    defaultOutput: (dir) => `${path.resolve(dir)}-tfjs`,
    write: async (_model, output, _flags, dir) => ({ ...(await exportTfjs(dir, output)) }),
  },
  // Keras's save_weights layout: what `model.load_weights` reads for the same architecture.
  'keras-h5': {
    defaultOutput: (dir) => `${path.resolve(dir)}.weights.h5`,
    write: async (_model, output, _flags, dir) => {
      await exportKerasH5(dir, output);
      return {};
    },
  },
};

/** A run folder (with model/ inside) or a bare tfjs model folder. */
async function modelFolder(dir: string): Promise<string> {
  const inner = path.join(dir, 'model');
  return (await pathExists(path.join(inner, 'model.json'))) ? inner : dir;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'write a trained model in another format: onnx (any ONNX runtime), tfjs (browsers), keras-h5 (Keras load_weights)',
    )
    .argument('<model-dir>', 'the --out folder of xfer train (or a tfjs model folder, for onnx)')
    .option('--format <name>', `one of: ${Object.keys(FORMATS).join(', ')}`, 'onnx')
    .option(
      '-o, --output <file>',
      'where to write; default beside <model-dir> (.onnx, -tfjs/, .weights.h5)',
    )
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
      const model = await loadModel(await modelFolder(modelDir));
      const output = opts.output ?? format.defaultOutput(modelDir);
      const details = await format.write(model, output, opts, modelDir);
      if (opts.json) printJson({ ...details, format: opts.format, path: output });
      else process.stderr.write(`xfer: wrote ${output}\n`);
    });
}
