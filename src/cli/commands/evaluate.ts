import type { Command } from 'commander';
import { evaluateRun } from '../../recipes/run-folder-evaluate.js';
import { StepProgress } from '../../training/index.js';
import { announceBackend, printJson } from '../output.js';
import { positiveInteger } from '../parse.js';

interface EvaluateFlags {
  out?: string;
  report: boolean;
  batchSize: number;
  json?: boolean;
}

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description(
      'metrics and report.html of a model trained by `xfer train` on any labelled folder',
    )
    .argument('<model-dir>', 'the --out folder of xfer train')
    .argument('<data-dir>', 'a folder with one sub-folder per class (or a data set with test/)')
    .option(
      '--out <dir>',
      'where report.html and plots/ go (default: <model-dir>/eval-<folder name>)',
    )
    .option('--no-report', 'print the metrics only')
    .option('--batch-size <n>', 'images per batch', positiveInteger, 32)
    .option('--json', 'one JSON object: loss, accuracy, confusion, perClass, macro, report')
    .action(async (modelDir: string, dataDir: string, opts: EvaluateFlags) => {
      await announceBackend(Boolean(opts.json) || Boolean(program.opts().quiet));
      const result = await evaluateRun(modelDir, dataDir, {
        ...(opts.out ? { outDir: opts.out } : {}),
        report: opts.report,
        batchSize: opts.batchSize,
        // On stderr (nothing under --quiet): stdout keeps the metrics, or the one JSON object.
        callbacks: [new StepProgress({ label: 'evaluate' })],
      });
      const m = result.metrics;
      if (opts.json) {
        printJson({
          dataDir: result.dataDir,
          samples: m.samples,
          loss: m.loss,
          accuracy: m.accuracy,
          macro: m.macro,
          perClass: m.perClass,
          confusion: m.confusion,
          mistakes: m.mistakes,
          report: result.reportPath,
        });
        return;
      }
      const names = m.perClass.map((s) => s.className);
      const width = Math.max(12, ...names.map((n) => n.length));
      const lines = [
        `${result.dataDir}: ${m.samples} images, loss ${m.loss.toFixed(4)}, accuracy ${m.accuracy.toFixed(4)}`,
        '',
        `${''.padEnd(width)}  precision     recall         f1    support`,
        ...m.perClass.map(
          (s) =>
            `${s.className.padEnd(width)}  ${s.precision.toFixed(4).padStart(9)}  ${s.recall.toFixed(4).padStart(9)}  ${s.f1.toFixed(4).padStart(9)}  ${String(s.support).padStart(9)}`,
        ),
        `${'macro avg'.padEnd(width)}  ${m.macro.precision.toFixed(4).padStart(9)}  ${m.macro.recall.toFixed(4).padStart(9)}  ${m.macro.f1.toFixed(4).padStart(9)}  ${String(m.samples).padStart(9)}`,
        '',
        'confusion matrix (rows: true class, columns: predicted):',
        `${''.padEnd(width)}  ${names.map((n) => n.padStart(8)).join(' ')}`,
        ...m.confusion.map(
          (row, i) =>
            `${names[i]!.padEnd(width)}  ${row.map((c) => String(c).padStart(8)).join(' ')}`,
        ),
      ];
      if (result.reportPath) lines.push('', `report: ${result.reportPath}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
