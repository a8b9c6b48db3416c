/**
 * The `xfer` command line. Each command is a thin wrapper over library calls; this file parses,
 * dispatches, and turns errors into one readable line and an exit status.
 */
import { Command, CommanderError } from 'commander';
import { isXferError } from '../errors.js';
import { setQuiet } from '../util/log.js';
import { registerBenchmark } from './commands/benchmark.js';
import { registerDatasets } from './commands/datasets.js';
import { registerDemo } from './commands/demo.js';
import { registerEvaluate } from './commands/evaluate.js';
import { registerExport } from './commands/export.js';
import { registerModels } from './commands/models.js';
import { registerPredict } from './commands/predict.js';
import { registerServe } from './commands/serve.js';
import { registerSummary } from './commands/summary.js';
import { registerTrain } from './commands/train.js';
import { EXIT_INTERNAL, EXIT_USAGE, exitCodeFor } from './exit-codes.js';

function buildProgram(): Command {
  const program = new Command('xfer')
    .description('transfer learning for images: pretrained CNNs, frozen backbones, new heads')
    .version('0.1.0')
    .option('--quiet', 'no progress bars or messages on stderr')
    .option('--debug', 'print stack traces of errors')
    .showHelpAfterError('(run xfer --help for usage)')
    .exitOverride();
  program.hook('preAction', () => setQuiet(Boolean(program.opts().quiet)));
  registerSummary(program);
  registerModels(program);
  registerTrain(program);
  registerPredict(program);
  registerEvaluate(program);
  registerDemo(program);
  registerServe(program);
  registerDatasets(program);
  registerBenchmark(program);
  registerExport(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed its message already (help, version, or a usage error).
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const debug = argv.includes('--debug');
    if (isXferError(error)) {
      process.stderr.write(`xfer: error: ${error.message}\n`);
      if (debug) process.stderr.write(`${error.stack}\n`);
      return exitCodeFor(error.code);
    }
    process.stderr.write(`xfer: internal error: ${(error as Error)?.message ?? String(error)}\n`);
    process.stderr.write(
      debug
        ? `${(error as Error)?.stack}\n`
        : 'run again with --debug for the stack trace, and please report it.\n',
    );
    return EXIT_INTERNAL;
  }
}

process.exitCode = await main(process.argv);
