import type { Command } from 'commander';
import { type ApplicationSpec, listApplications } from '../../applications/index.js';
import { printJson } from '../output.js';

/** What `xfer models` says about one backbone: its spec's data, nothing built. */
interface ModelRow {
  model: string;
  name: string;
  /** Keras's parameter count with the top classifier; null when the spec records none. */
  parameters: number | null;
  parametersNoTop: number | null;
  defaultInputSize: number;
  minInputSize: number;
  preprocess: string;
  weights: string[];
}

function row(spec: ApplicationSpec): ModelRow {
  return {
    model: spec.className,
    name: spec.name,
    parameters: spec.parameters?.top ?? null,
    parametersNoTop: spec.parameters?.noTop ?? null,
    defaultInputSize: spec.defaultInputSize,
    minInputSize: spec.minInputSize,
    preprocess: spec.preprocessMode,
    weights: Object.keys(spec.weightSets),
  };
}

function table(rows: ModelRow[]): string {
  const header = ['Model', 'Name', 'Parameters', 'Input', 'Preprocess', 'Weights'];
  const cells = rows.map((r) => [
    r.model,
    r.name,
    r.parameters === null ? '?' : r.parameters.toLocaleString('en-US'),
    `${r.defaultInputSize}x${r.defaultInputSize}`,
    r.preprocess,
    r.weights.join(', '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    c
      .map((text, i) => (i === 2 ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[header, ...cells].map(line).join('\n')}\n`;
}

export function registerModels(program: Command): void {
  program
    .command('models')
    .description(
      'list the backbones: parameters (with top), default input size, preprocessing, weight sets',
    )
    .option('--json', 'one JSON line per backbone')
    .action((opts: { json?: boolean }) => {
      // Read from the specs: listing builds no model, so it needs no backend and takes no time.
      const rows = listApplications().map(row);
      if (opts.json) for (const r of rows) printJson(r);
      else process.stdout.write(table(rows));
    });
}
